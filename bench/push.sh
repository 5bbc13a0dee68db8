#!/usr/bin/env bash
# git push to live: time from `git push paas main` starting to the new release serving (the
# push returns once the router has switched), for a first deploy and for code-only changes
# (dependencies cached), on the python-vendored, node and django-monorepo fixtures (the last
# with Django, gunicorn, WhiteNoise and psycopg2 from PyPI, cold: a fresh requirements.txt,
# then migrations in the release phase). The peer, measured in the
# same run on the same fixtures: a docker-compose style redeploy by hand (`docker build` of a
# hand-written Dockerfile, remove the old container, `docker run` the new one, wait for HTTP).
# Prints Markdown rows for docs/benchmarks.md. Needs Docker and the stack images; PyPI is
# reached through this network's proxy, whose CA is in the host's bundle.
#
#   bash bench/push.sh [CHANGES]      # CHANGES code-only pushes per fixture (default 5)
#   FIXTURES=django-monorepo bash bench/push.sh 3     # only some fixtures
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
changes=${1:-5}
cargo build -q -p paas-cli --bin paas
paas="${CARGO_TARGET_DIR:-$root/target}/debug/paas"

work=$(mktemp -d)
network="paas-bench-$$"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  docker ps -aq --filter "label=io.paas.app" --filter "network=$network" | xargs -r docker rm -f >/dev/null
  docker rm -f paas-bench-peer >/dev/null 2>&1 || true
  docker network rm "$network" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api_port=$(free_port)
router_port=$(free_port)
"$paas" server --listen "127.0.0.1:$api_port" --router-listen "127.0.0.1:$router_port" \
  --data-dir "$work/data" --init-token-file "$work/token" --base-images local \
  --build-ca-file /etc/ssl/certs/ca-certificates.crt \
  --docker-network "$network" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$api_port/healthz" >/dev/null && break; sleep 0.1; done

export HOME="$work/home" PAAS_CONFIG_DIR="$work/home/paas" GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
mkdir -p "$HOME"
"$paas" login "http://127.0.0.1:$api_port" --token "$(cat "$work/token")" >/dev/null 2>&1

now() { date +%s.%N; }
seconds() { python3 -c "print(f'{$2 - $1:.1f}')"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
serves() { # host port: the app answers 200
  for _ in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $1" "127.0.0.1:$2/")" = 200 ] && return 0
    sleep 0.05
  done
  echo "nothing served at $1" >&2; return 1
}

echo "| fixture | deploy | first (s) | code-only change, median of $changes (s) |"
echo "|---|---|---|---|"
for fixture in ${FIXTURES:-python-vendored node django-monorepo}; do
  kind=${fixture%%-*}
  app="bench-$kind"
  dir="$work/$fixture"
  cp -r "tests/fixtures/$fixture" "$dir"
  if [ "$kind" = django ]; then
    # Dependencies nobody has installed yet: the first push compiles psycopg2 for real.
    echo "# bench $$ $(date +%s%N)" >>"$dir/requirements.txt"
  fi
  (cd "$dir" && git init -q -b main && git add -A && git commit -qm first && "$paas" apps:create "$app" >/dev/null 2>&1)

  start=$(now)
  (cd "$dir" && git push -q paas main 2>"$work/push.log") || { cat "$work/push.log" >&2; exit 1; }
  serves "$app.localhost" "$router_port"
  first=$(seconds "$start" "$(now)")
  times=()
  for i in $(seq "$changes"); do
    echo "change $i" >"$dir/CHANGE.txt"
    (cd "$dir" && git add -A && git commit -qm "change $i")
    start=$(now)
    (cd "$dir" && git push -q paas main 2>"$work/push.log") || { cat "$work/push.log" >&2; exit 1; }
    serves "$app.localhost" "$router_port"
    times+=("$(seconds "$start" "$(now)")")
  done
  echo "| $fixture | paas: git push | $first | $(printf '%s\n' "${times[@]}" | median) |"

  # The peer: build by hand, replace the container, wait for it.
  peer_port=$(free_port)
  redeploy() {
    DOCKER_BUILDKIT=0 docker build -q -t paas-bench-peer -f "bench/dockerfiles/$kind.Dockerfile" "$dir" \
      >/dev/null 2>"$work/peer.log" || { cat "$work/peer.log" >&2; exit 1; }
    docker rm -f paas-bench-peer >/dev/null 2>&1 || true
    docker run -d --name paas-bench-peer -e PORT=5000 -p "127.0.0.1:$peer_port:5000" \
      paas-bench-peer >/dev/null 2>&1
    serves peer "$peer_port"
  }
  docker rmi -f paas-bench-peer >/dev/null 2>&1 || true
  cp /etc/ssl/certs/ca-certificates.crt "$dir/.peer-ca.pem"
  start=$(now); redeploy; first=$(seconds "$start" "$(now)")
  times=()
  for i in $(seq "$changes"); do
    echo "peer change $i" >"$dir/CHANGE.txt"
    start=$(now); redeploy; times+=("$(seconds "$start" "$(now)")")
  done
  echo "| $fixture | peer: docker build + run by hand | $first | $(printf '%s\n' "${times[@]}" | median) |"
  docker rm -f paas-bench-peer >/dev/null 2>&1 || true
done
