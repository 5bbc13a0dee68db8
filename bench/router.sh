#!/usr/bin/env bash
# Router benchmark: one small backend hit by wrk directly, through nginx (a plain reverse
# proxy with keep-alive upstreams), and through paas's router, in one run with the same
# connection counts; then both proxies again over HTTPS (TLS terminated by each, the same
# ECDSA P-256 certificate, HTTP/1.1 keep-alive as wrk speaks it). Prints a Markdown table
# for docs/benchmarks.md.
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

backend_port=18081 nginx_port=18082 router_port=18083 nginx_tls_port=18084 router_tls_port=18085

# The backend: nginx answering a small fixed body, one worker of its own.
mkdir -p "$work/backend" "$work/proxy"
# One certificate for both proxies, for `localhost` (the name wrk sends as SNI).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
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
    listen 127.0.0.1:$nginx_tls_port ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
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
python3 - "$work" "$backend_port" >"$work/table.json" <<'PY'
import json, sys
work, port = sys.argv[1], sys.argv[2]
read = lambda name: open(f"{work}/{name}").read()
print(json.dumps({
    "routes": [{"app": "bench", "hosts": ["bench.localhost"], "backends": [f"127.0.0.1:{port}"]}],
    "tls": {"certificates": [{"hosts": ["localhost"], "chain": read("cert.pem"), "key": read("key.pem")}]},
}))
PY
PAAS_LOG=info "$paas" router --router-listen "127.0.0.1:$router_port" \
  --router-https-listen "127.0.0.1:$router_tls_port" --table "$work/table.json" \
  2>"$work/router.log" & pids+=($!)
sleep 1
for port in $backend_port $nginx_port; do
  curl -fsS "http://127.0.0.1:$port/" >/dev/null
done
curl -fsS -H 'Host: bench.localhost' "http://127.0.0.1:$router_port/" >/dev/null
for port in $nginx_tls_port $router_tls_port; do
  curl -fsSk --resolve "localhost:$port:127.0.0.1" -H 'Host: bench.localhost' "https://localhost:$port/" >/dev/null
done

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
  for target in direct nginx paas "nginx https" "paas https"; do
    case $target in
      direct) url="http://127.0.0.1:$backend_port/" ;;
      nginx) url="http://127.0.0.1:$nginx_port/" ;;
      paas) url="http://127.0.0.1:$router_port/" ;;
      "nginx https") url="https://localhost:$nginx_tls_port/" ;;
      "paas https") url="https://localhost:$router_tls_port/" ;;
    esac
    read -r rps p50 p99 rest < <(measure "$url" "$conns")
    echo "| $conns | $target | $rps | $p50 | $p99 |${rest:+ $rest}"
  done
done
