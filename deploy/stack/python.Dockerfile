# paas/python:SUITE -- runtime image for Python apps (no compiler): Debian's python3
# (bookworm: 3.11, trixie: 3.13, forky: 3.14). Built offline by deploy/stack/build.sh from paas/stack:SUITE.
ARG SUITE=bookworm
FROM paas/stack:${SUITE}
ARG SUITE=bookworm
LABEL io.paas.stack=${SUITE} io.paas.language=python io.paas.stage=runtime
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        ca-certificates python3 python3-venv python-is-python3 libpq5 tini; \
    rm -rf /var/lib/apt/lists/*
ENV PYTHONUNBUFFERED=1
CMD ["python3"]
