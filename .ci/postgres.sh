#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the test suite on port ${PAAS_TEST_PG_PORT:-55432}
# of loopback and of the Docker bridges (trust auth, no fsync: test data only) and prints the admin URL the tests create their
# databases from. Installs PostgreSQL from Debian's packages when it is missing.
set -euo pipefail

port=${PAAS_TEST_PG_PORT:-55432}
dir=${PAAS_TEST_PG_DIR:-/var/tmp/paas-test-pg}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "installing PostgreSQL from Debian's packages" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# PostgreSQL refuses to run as root: run it as the `postgres` user the package creates.
as_pg=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
  as_pg=(runuser -u postgres --)
fi

if [ -f "$dir/postmaster.pid" ]; then
  "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir" stop -m immediate >&2 || true
fi
rm -rf "$dir"
mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
"${as_pg[@]}" "$bindir/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >/dev/null
# App containers in the tests reach it too, as host.docker.internal: Docker's default
# bridge gateway (docker0), the only address it listens on beside loopback, so nothing
# beyond this machine reaches it. From there a password is needed (loopback trusts).
password=paas-test
gateway=$(ip -4 -o addr show docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 || true)
if [ -z "$gateway" ]; then # no iproute2: the first address of the bridge's subnet
  subnet=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' 2>/dev/null || true)
  [ -n "$subnet" ] && gateway=${subnet%.0/*}.1
fi
listen=127.0.0.1${gateway:+,$gateway}
printf 'host all all 172.16.0.0/12 scram-sha-256\nhost all all 192.168.0.0/16 scram-sha-256\n' \
  >>"$dir/pg_hba.conf"
"${as_pg[@]}" "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w start \
  -o "-p $port -k $dir -c listen_addresses=$listen -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >&2
"${as_pg[@]}" "$bindir/psql" -h "$dir" -p "$port" -U postgres -q \
  -c "ALTER USER postgres PASSWORD '$password'" >&2
echo "postgres://postgres:$password@127.0.0.1:$port/postgres"
