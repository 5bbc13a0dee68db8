# paas/python-build:SUITE -- build stage for Python apps: the runtime image plus a C
# toolchain and headers, so wheels with C extensions (psycopg2, ...) can be compiled. Same
# python3 as paas/python:SUITE, so a venv built here can be copied into the runtime image.
ARG SUITE=bookworm
FROM paas/python:${SUITE}
ARG SUITE=bookworm
LABEL io.paas.stack=${SUITE} io.paas.language=python io.paas.stage=build
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        python3-dev build-essential libpq-dev pkg-config git curl; \
    rm -rf /var/lib/apt/lists/*
