#!/usr/bin/env bash
# Zero-downtime deploys: steady load (4 loopback clients) through the router while an app is
# rolled out 10 times (config changes) and rolled back once; prints failed requests and
# deploy-to-live / rollback-to-live times as a Markdown row for docs/benchmarks.md. A second
# row: the same ten updates rolled out by Docker Swarm (`--scheduler swarm`, a single-node
# swarm), when this engine is a swarm manager.
# Needs Docker and the stack images (bash deploy/stack/build.sh).
#
#   bash bench/deploys.sh
set -euo pipefail
cd "$(dirname "$0")/.."
report() {
  cargo nextest run -p paas-tests -E "test($1)" --no-capture 2>&1 | grep '^BENCH' || true
}
line=$(report ten_rollouts_under_load_fail_no_request)
[ -n "$line" ] || { echo "the benchmark test did not report; run it to see why" >&2; exit 1; }
get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
echo "| scheduler | requests | failed | first deploy (build + rollout) | rollout to live (median / max) | rollback to live |"
echo "|---|---|---|---|---|---|"
echo "| docker (paas's own rollout) | $(get requests) | $(get failed) | $(get first_deploy_s) s | $(get rollout_median_s) s / $(get rollout_max_s) s | $(get rollback_s) s |"
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = active ]; then
  line=$(report ten_swarm_rolling_updates_under_load_fail_no_request)
  [ -n "$line" ] || { echo "the Swarm benchmark test did not report; run it to see why" >&2; exit 1; }
  echo "| swarm (Swarm's rolling update) | $(get requests) | $(get failed) | — | $(get rollout_median_s) s / $(get rollout_max_s) s | — |"
fi
