#!/usr/bin/env bash
# Router benchmark: one small backend hit by wrk directly, through nginx (a plain reverse
# proxy with keep-alive upstreams), and through paas's router, in one run with the same
# connection counts. Prints a Markdown table for docs/benchmarks.md.
#
#   bash bench/router.sh [DURATION_SECONDS] [CONNECTIONS...]     e.g. bash bench/router.sh 10 10 100
#
# Loopback only; every process it starts is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
shift || true
if [ $# -gt 0 ]; then connections=("$@"); else connections=(10 100); fi

for tool in wrk nginx; do
  command -v $tool >/dev/null || {
    [ "$(id -u)" = 0 ] || { echo "install $tool" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
  }
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
echo "building paas (release)..." >&2
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

backend_port=18081 nginx_port=18082 router_port=18083

# The backend: nginx answering a small fixed body, one worker of its own.
mkdir -p "$work/backend" "$work/proxy"
cat >"$work/backend/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $work/backend/nginx.pid; error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$backend_port; location / { return 200 "hello from the backend\n"; } }
}
CONF
# The peer: nginx as a plain reverse proxy, keep-alive to the upstream, logging like ours.
cat >"$work/proxy/nginx.conf" <<CONF
daemon off; worker_processes auto; pid $work/proxy/nginx.pid; error_log stderr error;
events { worker_connections 4096; }
http {
  access_log $work/proxy/access.log;
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$backend_port; keepalive 256; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Request-ID \$request_id;
    }
  }
}
CONF
nginx -c "$work/backend/nginx.conf" -p "$work/backend" & pids+=($!)
nginx -c "$work/proxy/nginx.conf" -p "$work/proxy" & pids+=($!)
cat >"$work/table.json" <<JSON
{"routes": [{"app": "bench", "hosts": ["bench.localhost"], "backends": ["127.0.0.1:$backend_port"]}]}
JSON
PAAS_LOG=info "$paas" router --router-listen "127.0.0.1:$router_port" --table "$work/table.json" \
  2>"$work/router.log" & pids+=($!)
sleep 1
for port in $backend_port $nginx_port; do
  curl -fsS "http://127.0.0.1:$port/" >/dev/null
done
curl -fsS -H 'Host: bench.localhost' "http://127.0.0.1:$router_port/" >/dev/null

# wrk's summary → "req/s p50 p99" (latencies in ms).
measure() {
  local url=$1 conns=$2
  wrk -t2 -c"$conns" -d"${duration}s" --latency -H 'Host: bench.localhost' "$url" >"$work/wrk.out"
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx|Socket errors/ { errors = errors " " $0 }
    END { printf "%.0f %.2f %.2f%s\n", rps, p50, p99, (errors ? " ERRORS:" errors : "") }
  ' "$work/wrk.out"
}

echo "| connections | target | req/s | p50 (ms) | p99 (ms) |"
echo "|---|---|---|---|---|"
for conns in "${connections[@]}"; do
  for target in direct nginx paas; do
    case $target in
      direct) url="http://127.0.0.1:$backend_port/" ;;
      nginx) url="http://127.0.0.1:$nginx_port/" ;;
      paas) url="http://127.0.0.1:$router_port/" ;;
    esac
    read -r rps p50 p99 rest < <(measure "$url" "$conns")
    echo "| $conns | $target | $rps | $p50 | $p99 |${rest:+ $rest}"
  done
done
