#!/usr/bin/env bash
# Add-ons: `paas addons:create postgres` until the database accepts connections and the app
# has DATABASE_URL, and `paas pg:backups:capture` / `pg:backups:restore` of a ~100 MB
# database. The peer, measured in the same run on the same image and the same data: by hand,
# `docker run` of paas/postgres:15 until `pg_isready` answers, and a plain `pg_dump -Fc` /
# `pg_restore --clean --single-transaction` through `docker exec`. Prints Markdown rows for
# docs/benchmarks.md. Needs Docker and the stack images (bash deploy/stack/build.sh).
#
#   bash bench/addons.sh [RUNS]     # RUNS creates and dump/restore rounds (default 3; medians)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${1:-3}
cargo build -q -p paas-cli --bin paas
paas="${CARGO_TARGET_DIR:-$root/target}/debug/paas"

work=$(mktemp -d)
network="paas-bench-$$"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  docker ps -aq --filter "label=io.paas.network=$network" | xargs -r docker rm -f -v >/dev/null
  docker rm -f -v paas-bench-peer-pg >/dev/null 2>&1 || true
  docker volume ls -q --filter "label=io.paas.network=$network" | xargs -r docker volume rm -f >/dev/null
  docker volume rm -f paas-bench-peer-pg >/dev/null 2>&1 || true
  docker network ls --format '{{.Name}}' | grep "^$network-app-" | xargs -r docker network rm >/dev/null 2>&1 || true
  docker network rm "$network" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api_port=$(free_port)
"$paas" server --listen "127.0.0.1:$api_port" --router-listen "127.0.0.1:$(free_port)" \
  --data-dir "$work/data" --init-token-file "$work/token" --docker-network "$network" \
  >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$api_port/healthz" >/dev/null && break; sleep 0.1; done
export HOME="$work/home" PAAS_CONFIG_DIR="$work/home/paas"
mkdir -p "$HOME"
"$paas" login "http://127.0.0.1:$api_port" --token "$(cat "$work/token")" >/dev/null 2>&1
"$paas" apps:create bench --no-remote >/dev/null 2>&1

now() { date +%s.%N; }
seconds() { python3 -c "print(f'{$2 - $1:.2f}')"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Create to ready: paas, then the peer by hand; each destroyed before the next round.
: >"$work/create-paas"
: >"$work/create-peer"
for i in $(seq "$runs"); do
  t0=$(now)
  "$paas" addons:create postgres -a bench --name "bench-pg-$i" --as "DB$i" >/dev/null 2>&1
  seconds "$t0" "$(now)" >>"$work/create-paas"
  "$paas" addons:destroy "bench-pg-$i" --confirm "bench-pg-$i" >/dev/null 2>&1

  t0=$(now)
  docker run -d --name paas-bench-peer-pg -v paas-bench-peer-pg:/var/lib/postgresql/data \
    -e POSTGRES_USER=bench -e POSTGRES_PASSWORD=bench -e POSTGRES_DB=bench \
    paas/postgres:15 >/dev/null
  until docker exec paas-bench-peer-pg pg_isready -q -h 127.0.0.1 2>/dev/null; do sleep 0.1; done
  seconds "$t0" "$(now)" >>"$work/create-peer"
  docker rm -f -v paas-bench-peer-pg >/dev/null
  docker volume rm -f paas-bench-peer-pg >/dev/null
done

# A database of ~100 MB in a paas add-on; dump and restore it both ways, alternately.
"$paas" addons:create postgres -a bench --name bench-data >/dev/null 2>&1
container="$network-addon-bench-data"
sql() { docker exec -i -u postgres "$container" psql -qAt -U postgres -d bench_data "$@"; }
sql -c "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS tag, repeat(md5(random()::text), 6) AS body
        FROM generate_series(1, 285000) g; CREATE INDEX ON big (tag);" >/dev/null
size=$(sql -c "SELECT pg_size_pretty(pg_database_size('bench_data'))")
rows=$(sql -c "SELECT count(*) FROM big")
for name in capture-paas capture-peer restore-paas restore-peer; do : >"$work/$name"; done
for i in $(seq "$runs"); do
  t0=$(now)
  id=$("$paas" pg:backups:capture bench-data -a bench 2>/dev/null | sed -n 's/^Backup \(b[0-9]*\) .*/\1/p')
  seconds "$t0" "$(now)" >>"$work/capture-paas"
  t0=$(now)
  docker exec -u postgres "$container" pg_dump --format=custom -d bench_data >"$work/peer.dump"
  seconds "$t0" "$(now)" >>"$work/capture-peer"

  t0=$(now)
  "$paas" pg:backups:restore "$id" bench-data -a bench --confirm bench-data >/dev/null 2>&1
  seconds "$t0" "$(now)" >>"$work/restore-paas"
  t0=$(now)
  docker exec -i -u postgres "$container" \
    pg_restore --clean --if-exists --single-transaction --exit-on-error -d bench_data <"$work/peer.dump"
  seconds "$t0" "$(now)" >>"$work/restore-peer"
done
[ "$(sql -c "SELECT count(*) FROM big")" = "$rows" ] || { echo "restore lost rows" >&2; exit 1; }
dump_size=$(du -h "$work/peer.dump" | cut -f1)

m() { median <"$work/$1"; }
echo "| step | paas | by hand (same image, same data) |"
echo "|---|---|---|"
echo "| create PostgreSQL to ready (median of $runs) | $(m create-paas) s (\`addons:create\`, app gets DATABASE_URL) | $(m create-peer) s (\`docker run\` + \`pg_isready\`) |"
echo "| backup of $size, $rows rows → $dump_size dump (median of $runs) | $(m capture-paas) s (\`pg:backups:capture\`) | $(m capture-peer) s (\`pg_dump -Fc\`) |"
echo "| restore of that backup (median of $runs) | $(m restore-paas) s (\`pg:backups:restore\`) | $(m restore-peer) s (\`pg_restore --clean --single-transaction\`) |"
