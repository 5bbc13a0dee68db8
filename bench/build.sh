#!/usr/bin/env bash
# bench/build.sh -- cold and warm build times of `paas build` for the Python and Node fixtures,
# with `docker build` (classic builder, a hand-written Dockerfile) on the same fixtures as the
# peer, measured in the same run. Prints a Markdown table for docs/benchmarks.md.
#
# Usage: bench/build.sh [RUNS]      (default 3 runs per cell; the table shows the median)
#
#   cold  the fixture's dependency manifest has changed (a fresh comment in requirements.txt,
#         a fresh description in package.json): the install step and all after it run again.
#         Base images are present; steps before the manifest copy may come from the cache,
#         for both tools alike.
#   warm  only application code has changed since the previous build.
#
# Needs Docker and the stack images (bash deploy/stack/build.sh); builds on them offline
# (PAAS_BASE_IMAGES=local). PAAS_BIN picks the paas binary (default: target/debug/paas, built
# if missing). Images and layers the run creates are removed at the end.
set -euo pipefail

RUNS=${1:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PAAS=${PAAS_BIN:-$ROOT/target/debug/paas}
export PAAS_BASE_IMAGES=local
export DOCKER_BUILDKIT=0

[[ -x "$PAAS" ]] || (cd "$ROOT" && cargo build -q -p paas-cli --bin paas)
docker info >/dev/null 2>&1 || { echo "bench/build.sh: cannot reach Docker" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/paas-bench.XXXXXX")
IDS="$WORK/layer-ids"
TAGS="$WORK/tags"
: >"$IDS"
: >"$TAGS"
cleanup() {
  local tag
  while read -r tag; do docker rmi "$tag" >/dev/null 2>&1 || true; done <"$TAGS"
  # Untagged layers these builds made (a changed manifest makes new ones). Tagged ones are
  # the base images; layers others still use refuse to go.
  tac "$IDS" | while read -r id; do
    [[ "$(docker image inspect -f '{{len .RepoTags}}' "$id" 2>/dev/null)" == 0 ]] &&
      docker rmi "$id" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

now_us() { printf '%s' "${EPOCHREALTIME/[.,]/}"; }

# change_manifest DIR KIND: a new dependency manifest, so the install layer is not reused.
change_manifest() {
  local nonce="bench $RANDOM$RANDOM"
  case "$2" in
    python) printf '# %s\n' "$nonce" >>"$1/requirements.txt" ;;
    node) sed -i "s/\"description\": \"[^\"]*\"/\"description\": \"$nonce\"/" "$1/package.json" ;;
  esac
}
# change_code DIR KIND: an application-code-only change.
change_code() {
  case "$2" in
    python) printf '\n# edited %s\n' "$RANDOM" >>"$1/app.py" ;;
    node) printf '\n// edited %s\n' "$RANDOM" >>"$1/server.js" ;;
  esac
}

# timed TOOL DIR KIND N: one build; prints its wall-clock seconds. Notes the tag and the
# layer ids it printed, for the cleanup.
timed() {
  local tool=$1 dir=$2 kind=$3 n=$4 tag log t0 t1
  log="$WORK/$tool-$kind-$n.log"
  t0=$(now_us)
  if [[ $tool == paas ]]; then
    "$PAAS" build "$dir" --app "bench-$kind" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    tag=$(sed -n 's/^-----> Built \([^ ]*\) .*/\1/p' "$log")
  else
    tag="bench-docker-$kind:$n"
    docker build -q=false -t "$tag" -f "$ROOT/bench/dockerfiles/$kind.Dockerfile" "$dir" \
      >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  fi
  t1=$(now_us)
  echo "$tag" >>"$TAGS"
  grep -o -- '---> [0-9a-f]\{12\}$' "$log" | cut -c6- >>"$IDS" || true
  printf '%d.%d' $(( (t1 - t0) / 1000000 )) $(( (t1 - t0) / 100000 % 10 ))
}

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

declare -A FIXTURE=([python]=python-vendored [node]=node)
printf '| fixture | tool | cold (s) | warm (s) |\n|---|---|---|---|\n'
for kind in python node; do
  for tool in paas docker; do
    dir="$WORK/$tool-$kind"
    cp -r "$ROOT/tests/fixtures/${FIXTURE[$kind]}" "$dir"
    colds=() warms=()
    for n in $(seq "$RUNS"); do
      change_manifest "$dir" "$kind"
      colds+=("$(timed "$tool" "$dir" "$kind" "c$n")")
      change_code "$dir" "$kind"
      warms+=("$(timed "$tool" "$dir" "$kind" "w$n")")
    done
    label=$([[ $tool == paas ]] && echo 'paas build' || echo 'docker build (hand-written)')
    printf '| %s | %s | %s | %s |\n' "${FIXTURE[$kind]}" "$label" \
      "$(median "${colds[@]}")" "$(median "${warms[@]}")"
  done
done
