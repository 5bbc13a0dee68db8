# paas/static:bookworm -- serves a directory of static files with busybox httpd.
# Default command serves $STATIC_ROOT (default /app) on $PORT (default 8080):
#   busybox httpd -f -v -p "$PORT" -h "$STATIC_ROOT"
FROM paas/stack:bookworm
LABEL io.paas.stack=bookworm io.paas.language=static
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends busybox tini; \
    rm -rf /var/lib/apt/lists/*; \
    mkdir -p /app
WORKDIR /app
CMD ["tini", "--", "sh", "-c", "exec busybox httpd -f -v -p \"${PORT:-8080}\" -h \"${STATIC_ROOT:-/app}\""]
