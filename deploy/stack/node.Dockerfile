# paas/node:bookworm -- Node.js (Debian's nodejs) with npm.
FROM paas/stack:bookworm
LABEL io.paas.stack=bookworm io.paas.language=node
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates nodejs npm tini; \
    rm -rf /var/lib/apt/lists/*
CMD ["node"]
