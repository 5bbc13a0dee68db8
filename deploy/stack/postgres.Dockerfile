# paas/postgres:15 -- the PostgreSQL add-on: PostgreSQL 15 with PostGIS 3, from Debian.
# Built offline by deploy/stack/build.sh from paas/stack:bookworm; the context is postgres/.
FROM paas/stack:bookworm
LABEL io.paas.stack=bookworm io.paas.service=postgres io.paas.major=15
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends postgresql-common; \
    # The package's own cluster is not used: paas-postgres makes one in the add-on's volume.
    sed -ri 's/#?(create_main_cluster) .*$/\1 = false/' /etc/postgresql-common/createcluster.conf; \
    apt-get install -y --no-install-recommends postgresql-15 postgresql-15-postgis-3; \
    rm -rf /var/lib/apt/lists/*
COPY paas-postgres /usr/local/bin/paas-postgres
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data/pgdata
# Fast shutdown: open sessions are ended, what was committed is on disk.
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/paas-postgres"]
