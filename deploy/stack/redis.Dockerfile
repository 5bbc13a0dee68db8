# paas/redis:7 -- the Redis add-on: Redis 7 from Debian, password auth, append-only file.
# Built offline by deploy/stack/build.sh from paas/stack:bookworm; the context is redis/.
FROM paas/stack:bookworm
LABEL io.paas.stack=bookworm io.paas.service=redis io.paas.major=7
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends redis-server; \
    rm -rf /var/lib/apt/lists/*
COPY paas-redis /usr/local/bin/paas-redis
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/paas-redis"]
