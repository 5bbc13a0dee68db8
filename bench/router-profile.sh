#!/usr/bin/env bash
# Where the router's time goes: a CPU profile (perf, call graphs by frame pointers) of the
# standalone `paas router` while wrk drives it, beside `perf stat` of the router and of an
# nginx reverse proxy under the same load: CPU time per request for each. Prints the top of
# the profile; docs/benchmarks.md says what it showed.
#
#   bash bench/router-profile.sh [CONNECTIONS] [SECONDS]     e.g. bash bench/router-profile.sh 100 8
#
# Builds a release binary that keeps its symbols in its own target folder (the release
# profile strips them). Loopback only; every process it starts is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-100}
seconds=${2:-8}
for tool in wrk nginx perf; do
  command -v $tool >/dev/null || {
    [ "$(id -u)" = 0 ] || { echo "install $tool (apt-get install wrk nginx-light linux-perf)" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light linux-perf >/dev/null
  }
done

export CARGO_TARGET_DIR=${PROFILE_TARGET_DIR:-/var/tmp/paas-prof}
export CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
export RUSTFLAGS="-C force-frame-pointers=yes"
echo "building paas (release, with symbols)..." >&2
cargo build --release -q -p paas-cli --bin paas
paas="$CARGO_TARGET_DIR/release/paas"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
backend_port=18091 nginx_port=18092 router_port=18093
mkdir -p "$work/backend" "$work/proxy"
cat >"$work/backend/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $work/backend/nginx.pid; error_log stderr error;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$backend_port; location / { return 200 "hello from the backend\n"; } } }
CONF
cat >"$work/proxy/nginx.conf" <<CONF
daemon off; worker_processes auto; pid $work/proxy/nginx.pid; error_log stderr error;
events { worker_connections 4096; }
http { access_log $work/proxy/access.log combined buffer=64k flush=50ms; keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$backend_port; keepalive 256; }
  server { listen 127.0.0.1:$nginx_port;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Request-ID \$request_id; } } }
CONF
nginx -c "$work/backend/nginx.conf" -p "$work/backend" & pids+=($!)
nginx -c "$work/proxy/nginx.conf" -p "$work/proxy" & pids+=($!)
echo "{\"routes\": [{\"app\": \"bench\", \"hosts\": [\"bench.localhost\"], \"backends\": [\"127.0.0.1:$backend_port\"]}]}" >"$work/table.json"
PAAS_LOG=info "$paas" router --router-listen "127.0.0.1:$router_port" --table "$work/table.json" \
  2>"$work/router.log" & router=$!
pids+=("$router")
sleep 1
curl -fsS -H 'Host: bench.localhost' "http://127.0.0.1:$router_port/" >/dev/null

# load URL: wrk for SECONDS+3 in the background; its req/s lands in $work/wrk.out.
load() {
  wrk -t2 -c"$conns" -d"$((seconds + 3))s" -H 'Host: bench.localhost' "$1" >"$work/wrk.out" &
  pids+=($!)
  sleep 2
}
# cpu_per_request PIDS...: task-clock of PIDS over SECONDS, per request wrk counted.
cpu_per_request() {
  local pids_csv
  pids_csv=$(IFS=,; echo "$*")
  perf stat -x, -e task-clock -p "$pids_csv" -- sleep "$seconds" 2>"$work/stat.out" >/dev/null
  wait "${pids[-1]}" || true
  local ms rps
  ms=$(awk -F, '/task-clock/ { print $1 }' "$work/stat.out")
  rps=$(awk '/Requests\/sec/ { print $2 }' "$work/wrk.out")
  awk -v ms="$ms" -v rps="$rps" -v s="$seconds" \
    'BEGIN { printf "%.0f req/s, %.1f CPU-µs per request\n", rps, ms * 1000 / (rps * s) }'
}

load "http://127.0.0.1:$nginx_port/"
nginx_workers=$(pgrep -P "$(cat "$work/proxy/nginx.pid")" | tr '\n' ' ')
printf 'nginx (workers): '
# shellcheck disable=SC2086 # one pid a word
cpu_per_request $nginx_workers
load "http://127.0.0.1:$router_port/"
printf 'paas router:     '
cpu_per_request "$router"

load "http://127.0.0.1:$router_port/"
perf record -q -e cpu-clock -F 999 -g -p "$router" -o "$work/perf.data" -- sleep "$seconds" 2>/dev/null
wait "${pids[-1]}" || true
echo
echo "Where the router's CPU goes (self time, $conns connections):"
perf report -i "$work/perf.data" --no-children --sort symbol --percent-limit 1 --stdio 2>/dev/null |
  grep -E '^ +[0-9.]+%' | head -40
echo
echo "By area (self time):"
perf report -i "$work/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
  awk '/^ +[0-9.]+%/ {
    pct = $1 + 0; line = $0
    if (line ~ /\[k\]/) area = "kernel (syscalls, network stack)"
    else if (line ~ /tracing|fmt::|Formatter|write_fmt|core::fmt/) area = "log formatting (tracing, fmt)"
    else if (line ~ /malloc|free|realloc|alloc::|_int_/) area = "allocator"
    else if (line ~ /tokio::runtime::(scheduler|task)|park|futex|steal/) area = "tokio scheduler"
    else if (line ~ /tokio::runtime::time|timer|Sleep/) area = "timers"
    else if (line ~ /hyper::/) area = "hyper (HTTP parsing, dispatch)"
    else if (line ~ /paas_router/) area = "paas_router (our code)"
    else if (line ~ /http::header|HeaderMap|HeaderValue/) area = "header maps"
    else area = "other"
    sum[area] += pct
  }
  END { for (a in sum) printf "  %5.1f%%  %s\n", sum[a], a }' | sort -rn
