# paas/python:bookworm -- runtime image for Python apps (no compiler).
# Built offline by deploy/stack/build.sh from paas/stack:bookworm.
FROM paas/stack:bookworm
LABEL io.paas.stack=bookworm io.paas.language=python io.paas.stage=runtime
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        ca-certificates python3 python3-venv python-is-python3 libpq5 tini; \
    rm -rf /var/lib/apt/lists/*
ENV PYTHONUNBUFFERED=1
CMD ["python3"]
