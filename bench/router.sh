#!/usr/bin/env bash
# Router benchmark: one small backend hit by wrk directly, through nginx (a plain reverse
# proxy with keep-alive upstreams), and through paas's router, in one run with the same
# connection counts; then both proxies again over HTTPS (TLS terminated by each, the same
# ECDSA P-256 certificate, HTTP/1.1 keep-alive as wrk speaks it), and a WebSocket echo
# through each. A byte relay that reads no HTTP (`copy_floor`) is measured beside them: the
# floor under any proxy on this machine, since it makes the same socket calls and no more.
# For each proxy it also reads the CPU time it used (user + system, all its
# processes) per 10,000 requests, and its memory after the run. Prints Markdown tables for
# docs/benchmarks.md.
#
#   bash bench/router.sh [DURATION_SECONDS] [CONNECTIONS...]     e.g. bash bench/router.sh 10 10 100
#
# Each cell is the median of ROUNDS runs (3 by default), the targets taking turns.
# PAAS_BIN=path/to/paas measures that binary instead of building this checkout (an older
# build, say, to compare in one run).
#
# Loopback only; every process it starts is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
shift || true
rounds=${ROUNDS:-3}
if [ $# -gt 0 ]; then connections=("$@"); else connections=(10 100); fi

for tool in wrk nginx; do
  command -v $tool >/dev/null || {
    [ "$(id -u)" = 0 ] || { echo "install $tool" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
  }
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
echo "building paas and the WebSocket bench client (release)..." >&2
[ -n "${PAAS_BIN:-}" ] || cargo build --release -q -p paas-cli --bin paas
cargo build --release -q -p paas-router --example websocket_bench --example copy_floor
paas=${PAAS_BIN:-$CARGO_TARGET_DIR/release/paas}
websocket_bench="$CARGO_TARGET_DIR/release/examples/websocket_bench"
copy_floor="$CARGO_TARGET_DIR/release/examples/copy_floor"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

backend_port=18081 nginx_port=18082 router_port=18083 nginx_tls_port=18084 router_tls_port=18085
echo_port=18086 floor_port=18087

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
# The peer: nginx as a plain reverse proxy, keep-alive to the upstream, logging like ours
# (buffered, written every 50 ms at most).
cat >"$work/proxy/nginx.conf" <<CONF
daemon off; worker_processes auto; pid $work/proxy/nginx.pid; error_log stderr error;
events { worker_connections 4096; }
http {
  access_log $work/proxy/access.log combined buffer=64k flush=50ms;
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$backend_port; keepalive 256; }
  upstream echo { server 127.0.0.1:$echo_port; }
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
    location /ws {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_read_timeout 1h;
    }
  }
}
CONF
nginx -c "$work/backend/nginx.conf" -p "$work/backend" & pids+=($!)
nginx -c "$work/proxy/nginx.conf" -p "$work/proxy" & pids+=($!)
nginx_pid=$!
"$websocket_bench" echo "127.0.0.1:$echo_port" & pids+=($!)
python3 - "$work" "$backend_port" "$echo_port" >"$work/table.json" <<'PY'
import json, sys
work, port, echo = sys.argv[1], sys.argv[2], sys.argv[3]
read = lambda name: open(f"{work}/{name}").read()
print(json.dumps({
    "routes": [
        {"app": "bench", "hosts": ["bench.localhost"], "backends": [f"127.0.0.1:{port}"]},
        {"app": "echo", "hosts": ["echo.localhost"], "backends": [f"127.0.0.1:{echo}"]},
    ],
    "tls": {"certificates": [{"hosts": ["localhost"], "chain": read("cert.pem"), "key": read("key.pem")}]},
}))
PY
PAAS_LOG=info "$paas" router --router-listen "127.0.0.1:$router_port" \
  --router-https-listen "127.0.0.1:$router_tls_port" --table "$work/table.json" \
  2>"$work/router.log" & pids+=($!)
router_pid=$!
"$copy_floor" "127.0.0.1:$floor_port" "127.0.0.1:$backend_port" & pids+=($!)
floor_pid=$!
sleep 1
for port in $backend_port $nginx_port $floor_port; do
  curl -fsS "http://127.0.0.1:$port/" >/dev/null
done
curl -fsS -H 'Host: bench.localhost' "http://127.0.0.1:$router_port/" >/dev/null
for port in $nginx_tls_port $router_tls_port; do
  curl -fsSk --resolve "localhost:$port:127.0.0.1" -H 'Host: bench.localhost' "https://localhost:$port/" >/dev/null
done

# The processes of a proxy: nginx's master and its workers, or the router.
processes() {
  case $1 in
    nginx*) echo "$nginx_pid" $(pgrep -P "$nginx_pid") ;;
    paas*) echo "$router_pid" ;;
    floor) echo "$floor_pid" ;;
  esac
}
# CPU time used so far by those processes, in clock ticks (all threads, user + system).
cpu_ticks() {
  local total=0 pid fields
  for pid in "$@"; do
    # Fields after the command name, which is in parentheses: utime and stime are 12 and 13.
    read -r -a fields < <(sed 's/^.*) //' "/proc/$pid/stat")
    total=$(( total + fields[11] + fields[12] ))
  done
  echo "$total"
}
# Resident memory of those processes, in MiB (nginx's workers share pages: this sums them).
rss_mib() {
  local kib=0 pid
  for pid in "$@"; do kib=$(( kib + $(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status") )); done
  awk -v k="$kib" 'BEGIN { printf "%.1f", k / 1024 }'
}
ticks_per_second=$(getconf CLK_TCK)

# wrk's summary → "req/s p50 p99 requests" (latencies in ms).
measure() {
  local url=$1 conns=$2
  wrk -t2 -c"$conns" -d"${duration}s" --latency -H 'Host: bench.localhost' "$url" >"$work/wrk.out"
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps = $2 }
    / requests in / { requests = $1 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx|Socket errors/ { errors = errors " " $0 }
    END { printf "%.0f %.2f %.2f %d%s\n", rps, p50, p99, requests, (errors ? " ERRORS:" errors : "") }
  ' "$work/wrk.out"
}

# One measurement of `target` at `conns` connections, as a line of
# "rate p50 p99 cpu_ms_per_10k rss_mib [errors…]" ("-" where there is no proxy).
run_http() {
  local target=$1 conns=$2 url pids_of before rps p50 p99 requests rest cpu=- rss=-
  case $target in
    direct) url="http://127.0.0.1:$backend_port/" ;;
    nginx) url="http://127.0.0.1:$nginx_port/" ;;
    paas) url="http://127.0.0.1:$router_port/" ;;
    floor) url="http://127.0.0.1:$floor_port/" ;;
    "nginx https") url="https://localhost:$nginx_tls_port/" ;;
    "paas https") url="https://localhost:$router_tls_port/" ;;
  esac
  pids_of=$(processes "$target")
  before=$(cpu_ticks $pids_of)
  read -r rps p50 p99 requests rest < <(measure "$url" "$conns")
  if [ -n "$pids_of" ]; then
    cpu=$(per_10k $(( $(cpu_ticks $pids_of) - before )) "$requests")
    rss=$(rss_mib $pids_of)
  fi
  echo "$rps $p50 $p99 $cpu $rss${rest:+ $rest}"
}
# The same for the WebSocket echo: each connection sends a 32-byte message and waits for
# its echo, again and again.
run_ws() {
  local target=$1 conns=$2 port pids_of before rate p50 p99 errors messages cpu=- rss=-
  case $target in
    direct) port=$echo_port ;;
    nginx) port=$nginx_port ;;
    paas) port=$router_port ;;
  esac
  pids_of=$(processes "$target")
  before=$(cpu_ticks $pids_of)
  read -r rate p50 p99 errors messages < <("$websocket_bench" load "127.0.0.1:$port" echo.localhost "$conns" "$duration")
  if [ -n "$pids_of" ]; then
    cpu=$(per_10k $(( $(cpu_ticks $pids_of) - before )) "$messages")
    rss=$(rss_mib $pids_of)
  fi
  echo "$rate $p50 $p99 $cpu $rss$( [ "$errors" = 0 ] || echo " ERRORS: $errors connections failed")"
}
# CPU milliseconds per 10,000 of `count`, from clock ticks.
per_10k() {
  awk -v t="$1" -v hz="$ticks_per_second" -v n="$2" 'BEGIN { if (n > 0) printf "%.0f", t / hz * 1000 / n * 10000; else printf "-" }'
}
# Each column's median over the rounds' lines; any errors are kept.
medians() {
  python3 -c '
import statistics, sys
rows = [line.split(" ", 5) for line in sys.stdin.read().splitlines()]
cells = []
for column in range(5):
    values = [row[column] for row in rows if row[column] != "-"]
    cells.append(f"{statistics.median(map(float, values)):g}" if values else "-")
errors = " ".join(row[5] for row in rows if len(row) > 5)
print(" | ".join(cells) + " |" + (" " + errors if errors else ""))
'
}

# Every target is measured once per round, in turn, so a disturbance of the machine falls
# on all of them alike; each cell is the median over the rounds.
table() {
  local kind=$1; shift
  local conns target round
  for conns in "${connections[@]}"; do
    for round in $(seq "$rounds"); do
      for target in "$@"; do
        "run_$kind" "$target" "$conns" >>"$work/$kind-$conns-${target// /-}"
      done
    done
    for target in "$@"; do
      echo "| $conns | $target | $(medians <"$work/$kind-$conns-${target// /-}")"
    done
  done
}

echo "| connections | target | req/s | p50 (ms) | p99 (ms) | proxy CPU per 10k requests (ms) | proxy RSS (MiB) |"
echo "|---|---|---|---|---|---|---|"
table http direct floor nginx paas "nginx https" "paas https"
echo
echo "| connections | WebSocket echo through | messages/s | p50 (ms) | p99 (ms) | proxy CPU per 10k messages (ms) | proxy RSS (MiB) |"
echo "|---|---|---|---|---|---|---|"
table ws direct nginx paas
