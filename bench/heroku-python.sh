#!/usr/bin/env bash
# Heroku Python parity: `paas build` over every fixture of Heroku's Python buildpack test
# suite (../shared/compat/heroku-buildpack-python, used in place, never copied into the
# repository) and a table of Heroku's outcome beside paas's, what paas said when it refused,
# and `match`, a difference paas documents on purpose (the table in docs/builds.md, "Where
# paas differs on purpose"), or `DIFFERS`. Needs Docker and the stack images (bash deploy/stack/build.sh); PyPI through
# PAAS_BUILD_CA_FILE (default: the host's bundle) where the network re-signs TLS.
#
#   bash bench/heroku-python.sh [FIXTURE...]     # default: all 77
#
# Environment: COMPAT (the fixtures' folder), OUT (build logs, default a temporary folder,
# kept), PAAS_BASE_IMAGES (default local). Exits non-zero when a fixture DIFFERS.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
compat=${COMPAT:-$root/../shared/compat/heroku-buildpack-python}
[[ -f "$compat/expected.tsv" ]] || { echo "no $compat/expected.tsv: set COMPAT" >&2; exit 2; }
out=${OUT:-$(mktemp -d /var/tmp/heroku-python.XXXXXX)}
mkdir -p "$out"
cargo build -q -p paas-cli --bin paas
paas="${CARGO_TARGET_DIR:-$root/target}/debug/paas"
export PAAS_BASE_IMAGES=${PAAS_BASE_IMAGES:-local}
if [[ -z "${PAAS_BUILD_CA_FILE:-}" && -r /etc/ssl/certs/ca-certificates.crt ]]; then
  export PAAS_BUILD_CA_FILE=/etc/ssl/certs/ca-certificates.crt
fi

# Config vars Heroku's specs set for a fixture (their settings check for them).
config_for() {
  local bad=/invalid-path
  case $1 in
    django_staticfiles_latest_django) echo "-c EXPECTED_ENV_VAR=1" ;;
    django_staticfiles_legacy_django)
      echo "-c EXPECTED_ENV_VAR=1"
      for var in BUILD_DIR C_INCLUDE_PATH CACHE_DIR CPLUS_INCLUDE_PATH ENV_DIR LD_LIBRARY_PATH \
        LIBRARY_PATH PATH PKG_CONFIG_PATH PYTHONHOME PYTHONPATH; do
        echo "-c $var=$bad"
      done ;;
    hooks_pre_compile_pass_post_compile_fail) echo "-c SOME_APP_CONFIG_VAR=1" ;;
    django_staticfiles_misconfigured) echo "-c DEBUG_COLLECTSTATIC=1" ;;
  esac
}

# The copy in ../shared lost two symlinks (a file holding only the link's target): put them
# back in the scratch copy, as git would check them out.
restore_symlinks() {
  local dir=$1 file target
  while IFS= read -r -d '' file; do
    [[ $(wc -l <"$file") -eq 0 && $(wc -c <"$file") -lt 200 ]] || continue
    target=$(cat "$file")
    [[ "$target" == */* && -f "$(dirname "$file")/$target" ]] || continue
    ln -sf "$target" "$file"
  done < <(find "$dir" -type f -name '*.txt' -print0)
}

# What paas said when it refused: the hint under the failure, else the tool's last error
# line for a failed step, else the failure itself; one line, pipes escaped for Markdown.
said() {
  local log=$1 line
  line=$(awk '/^ !     Build failed: / { found = 1; msg = substr($0, 22); next }
              found && /^ !     / { hint = substr($0, 8) }
              END { print (hint != "" ? hint : msg) }' "$log")
  if [[ "$line" == "build step failed"* ]]; then
    line=$(grep -E '^ +(ERROR|error|Error|E:|[A-Za-z.]*Error:)' "$log" | tail -1 | sed 's/^ *//') || true
    # Else the step's last words.
    [[ -n "$line" ]] ||
      line=$(grep -B1 '^ !     Build failed: ' "$log" | head -1 | sed 's/^ *//')
  fi
  printf '%s' "${line:0:160}" | sed 's/|/\\|/g'
}

# Documented differences: rows `| \`fixture\` | … |` of the table under docs/builds.md's
# heading "Where paas differs on purpose" (the measured table further down does not count).
documented() {
  awk '/^#+ Where paas differs on purpose/ { on = 1; next } /^#/ { on = 0 } on' \
    "$root/docs/builds.md" | grep -qF "| \`$1\` |"
}

fixtures=("$@")
if (( ${#fixtures[@]} == 0 )); then
  mapfile -t fixtures < <(tail -n +2 "$compat/expected.tsv" | cut -f1)
fi
matched=0 documented_n=0 differs=0
printf '| fixture | Heroku | paas | paas says | result |\n|---|---|---|---|---|\n'
for fixture in "${fixtures[@]}"; do
  heroku=$(awk -F'\t' -v f="$fixture" '$1 == f { print $2 }' "$compat/expected.tsv")
  work=$(mktemp -d)
  cp -a "$compat/fixtures/$fixture/." "$work/"
  restore_symlinks "$work"
  app="compat-$(tr -c 'a-z0-9\n' '-' <<<"$fixture" | tr -s '-')"
  app=${app%-}
  # shellcheck disable=SC2046 # one word per option
  says=""
  if PAAS_BUILD_TIMEOUT=900 "$paas" build "$work" --app "$app" $(config_for "$fixture") \
    >"$out/$fixture.log" 2>&1; then
    ours=builds
  else
    ours="refuses ($(sed -n 's/^error: build failed (\(.*\))$/\1/p' "$out/$fixture.log" | tail -1))"
    says=$(said "$out/$fixture.log")
  fi
  docker images -q "paas/app-$app" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
  rm -rf "$work"
  if [[ "${ours%% *}" == "$heroku" ]]; then
    result=match; matched=$((matched + 1))
  elif documented "$fixture"; then
    result="documented difference"; documented_n=$((documented_n + 1))
  else
    result=DIFFERS; differs=$((differs + 1))
  fi
  printf '| `%s` | %s | %s | %s | %s |\n' "$fixture" "$heroku" "$ours" "$says" "$result"
done
printf '\n%d fixtures: %d match, %d differ as documented, %d differ. Logs: %s\n' \
  "${#fixtures[@]}" "$matched" "$documented_n" "$differs" "$out"
(( differs == 0 ))
