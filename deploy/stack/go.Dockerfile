# paas/go:bookworm -- Go toolchain (Debian's golang-go) for building Go apps.
# CGO is off by default: binaries are static and run on paas/stack:bookworm.
FROM paas/stack:bookworm
LABEL io.paas.stack=bookworm io.paas.language=go
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates golang-go git tini; \
    rm -rf /var/lib/apt/lists/*
ENV GOPATH=/go CGO_ENABLED=0
ENV PATH=/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["bash"]
