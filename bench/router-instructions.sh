#!/usr/bin/env bash
# Instructions per proxied request, nginx's reverse proxy beside paas's router: each runs
# alone under valgrind's callgrind (user-space instructions only, counted, not timed), one
# worker each, while wrk sends requests for a fixed time; counting starts after a warm-up and
# stops before the proxy is stopped, so start-up is not in the count. On a shared or virtual
# machine where timings drift by a third between runs, this count stays put within a percent.
#
#   bash bench/router-instructions.sh [CONNECTIONS] [SECONDS]     e.g. bash bench/router-instructions.sh 10 10
#
# PAAS_BIN=path/to/paas counts that binary instead of building this checkout. Loopback only;
# every process it starts is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-10}
seconds=${2:-10}
for tool in wrk nginx valgrind; do
  command -v $tool >/dev/null || {
    [ "$(id -u)" = 0 ] || { echo "install $tool (apt-get install wrk nginx-light valgrind)" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light valgrind >/dev/null
  }
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
if [ -z "${PAAS_BIN:-}" ]; then
  echo "building paas (release)..." >&2
  cargo build --release -q -p paas-cli --bin paas
fi
paas=${PAAS_BIN:-$CARGO_TARGET_DIR/release/paas}

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
backend_port=18095 proxy_port=18096
mkdir -p "$work/backend" "$work/proxy"
cat >"$work/backend/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $work/backend/nginx.pid; error_log stderr error;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$backend_port; location / { return 200 "hello from the backend\n"; } } }
CONF
# The peer in one process (no master), configured as bench/router.sh configures it.
cat >"$work/proxy/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $work/proxy/nginx.pid; error_log stderr error;
events { worker_connections 4096; }
http { access_log $work/proxy/access.log combined buffer=64k flush=50ms; keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$backend_port; keepalive 256; }
  server { listen 127.0.0.1:$proxy_port;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Request-ID \$request_id; } } }
CONF
echo "{\"routes\": [{\"app\": \"bench\", \"hosts\": [\"bench.localhost\"], \"backends\": [\"127.0.0.1:$backend_port\"]}]}" >"$work/table.json"
nginx -c "$work/backend/nginx.conf" -p "$work/backend" & pids+=($!)

# count NAME COMMAND...: runs COMMAND under callgrind, loads it, prints instructions per request.
count() {
  local name=$1; shift
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/$name.%p" \
    "$@" 2>"$work/$name.log" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 120); do
    curl -fsS -H 'Host: bench.localhost' "http://127.0.0.1:$proxy_port/" >/dev/null 2>&1 && break
    sleep 0.5
  done
  wrk -t1 -c"$conns" -d2s -H 'Host: bench.localhost' "http://127.0.0.1:$proxy_port/" >/dev/null
  callgrind_control -i on "$pid" >/dev/null 2>&1
  wrk -t1 -c"$conns" -d"${seconds}s" -H 'Host: bench.localhost' "http://127.0.0.1:$proxy_port/" >"$work/wrk.out"
  callgrind_control -i off "$pid" >/dev/null 2>&1
  kill -INT "$pid"
  wait "$pid" 2>/dev/null || true
  local requests instructions
  requests=$(awk '/ requests in /{print $1}' "$work/wrk.out")
  instructions=$(cat "$work/$name".* | awk '/^totals:/ {s += $2} END {printf "%.0f", s}')
  awk -v n="$name" -v r="$requests" -v i="$instructions" \
    'BEGIN { printf "| %s | %d | %.0f |\n", n, r, i / r }'
}
echo "| proxy ($conns connections, ${seconds} s under callgrind) | requests | instructions per request |"
echo "|---|---|---|"
count nginx nginx -c "$work/proxy/nginx.conf" -p "$work/proxy"
count paas "$paas" router --router-workers "${WORKERS:-1}" \
  --router-listen "127.0.0.1:$proxy_port" --table "$work/table.json"
