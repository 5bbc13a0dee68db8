# paas/python:SUITE -- runtime image for Python apps (no compiler): Debian's python3
# (bookworm: 3.11, trixie: 3.13, forky: 3.14). Built offline by deploy/stack/build.sh from paas/stack:SUITE.
ARG SUITE=bookworm
FROM paas/stack:${SUITE}
ARG SUITE=bookworm
# The minor version the builder expects of this suite's python3 (empty: not checked).
ARG PYTHON=
LABEL io.paas.stack=${SUITE} io.paas.language=python io.paas.stage=runtime
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        ca-certificates python3 python3-venv python-is-python3 libpq5 tini; \
    rm -rf /var/lib/apt/lists/*; \
    have=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
    [ -z "$PYTHON" ] || [ "$have" = "$PYTHON" ] || \
        { echo "$SUITE's python3 is $have, not $PYTHON: update LOCAL_PYTHONS in builder/src/config.rs" >&2; exit 1; }
ENV PYTHONUNBUFFERED=1
CMD ["python3"]
