#!/usr/bin/env bash
# Zero-downtime deploys: steady load (4 loopback clients) through the router while an app is
# rolled out 10 times (config changes) and rolled back once; prints failed requests and
# deploy-to-live / rollback-to-live times as a Markdown row for docs/benchmarks.md.
# Needs Docker and the stack images (bash deploy/stack/build.sh).
#
#   bash bench/deploys.sh
set -euo pipefail
cd "$(dirname "$0")/.."
line=$(cargo nextest run -p paas-tests -E 'test(ten_rollouts_under_load_fail_no_request)' \
  --no-capture 2>&1 | grep '^BENCH' || true)
[ -n "$line" ] || { echo "the benchmark test did not report; run it to see why" >&2; exit 1; }
get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
echo "| requests | failed | first deploy (build + rollout) | rollout to live (median / max) | rollback to live |"
echo "|---|---|---|---|---|"
echo "| $(get requests) | $(get failed) | $(get first_deploy_s) s | $(get rollout_median_s) s / $(get rollout_max_s) s | $(get rollback_s) s |"
