#!/usr/bin/env bash
# deploy/install.sh -- install (or upgrade) paas on a server with systemd.
#
# Puts `paas` in /usr/local/bin (a given binary, or a release build of this checkout),
# creates /var/lib/paas and /etc/paas/paas.toml (commented defaults; an existing one is
# kept), installs paas.service and paas-router.service (the router on its own, so restarting
# the control plane drops no app request), builds the offline stack images, starts both, and
# prints the admin token and the next commands. Running it again upgrades: the binary and the
# units are replaced and paas.service restarts (paas-router.service only with
# --restart-router: it keeps serving through the control plane's restart).
#
# Usage: deploy/install.sh [--binary PATH] [--root DIR] [--no-start] [--no-stack]
#                          [--restart-router]
#   --binary PATH     install this paas binary (default: cargo build --release here)
#   --root DIR        install under DIR instead of / (packaging, tests); implies --no-start
#   --no-start        install files only: no images, no systemctl
#   --no-stack        do not build the stack images (deploy/stack/build.sh)
#   --restart-router  also restart paas-router.service on an upgrade
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=/
BINARY=""
START=1
STACK=1
RESTART_ROUTER=0

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^#/{s/^# \{0,1\}//;p}}' "${BASH_SOURCE[0]}"; }

while (( $# )); do
  case "$1" in
    --binary) BINARY=${2:?--binary needs a path}; shift ;;
    --root) ROOT=${2:?--root needs a folder}; START=0; shift ;;
    --no-start) START=0 ;;
    --no-stack) STACK=0 ;;
    --restart-router) RESTART_ROUTER=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
ROOT=${ROOT%/}
if [[ "$ROOT" == "" && $EUID -ne 0 ]]; then
  die "installing into / needs root: run it with sudo, or use --root DIR"
fi

if [[ -z "$BINARY" ]]; then
  command -v cargo >/dev/null || die "no --binary given and no cargo to build one"
  say "building paas (cargo build --release -p paas-cli)"
  (cd "$HERE/.." && cargo build --release -q -p paas-cli)
  BINARY="${CARGO_TARGET_DIR:-$HERE/../target}/release/paas"
fi
[[ -x "$BINARY" ]] || die "$BINARY is not an executable paas binary"

say "installing $BINARY as $ROOT/usr/local/bin/paas"
install -D -m 0755 "$BINARY" "$ROOT/usr/local/bin/paas"
install -d -m 0750 "$ROOT/var/lib/paas"
install -d -m 0755 "$ROOT/var/lib/paas/router"
install -d -m 0755 "$ROOT/etc/paas"
install -D -m 0644 "$HERE/../docs/operations.md" "$ROOT/usr/local/share/doc/paas/operations.md"

config="$ROOT/etc/paas/paas.toml"
if [[ -e "$config" ]]; then
  say "keeping $config"
else
  say "writing $config"
  cat >"$config" <<'TOML'
# paas server settings: `paas server --help` explains each; flags and PAAS_* variables
# override this file. Keys are the settings' names with `_`.

data_dir = "/var/lib/paas"
# The API, git and the dashboard. Put a TLS proxy in front, or keep it on loopback.
listen = "127.0.0.1:7000"
# Apps are served at APP.DOMAIN: point a wildcard DNS record at this server.
# domain = "example.com"

# The router runs in paas-router.service and follows this table; its port makes the apps'
# URLs.
router_mode = "external"
router_table = "/var/lib/paas/router/routes.json"
router_listen = "0.0.0.0:80"

# HTTPS: certificates from Let's Encrypt for every app and custom domain (docs/https.md).
# Set both, and PAAS_ROUTER_HTTPS_LISTEN=0.0.0.0:443 in /etc/paas/router.env.
# acme_email = "ops@example.com"
# router_https_listen = "0.0.0.0:443"

# The admin's API token, written once at the first start (mode 0600).
init_token_file = "/var/lib/paas/initial-admin-token"

# Behind a proxy that re-signs TLS, builds trust this bundle:
# build_ca_file = "/etc/ssl/certs/ca-certificates.crt"
TOML
fi
if [[ ! -e "$ROOT/etc/paas/router.env" ]]; then
  printf '# paas-router.service settings, e.g.:\n# PAAS_ROUTER_LISTEN=0.0.0.0:80\nPAAS_ROUTER_LISTEN=0.0.0.0:80\n# With HTTPS on (acme_email in paas.toml):\n# PAAS_ROUTER_HTTPS_LISTEN=0.0.0.0:443\n' \
    >"$ROOT/etc/paas/router.env"
fi
for unit in paas.service paas-router.service; do
  install -D -m 0644 "$HERE/systemd/$unit" "$ROOT/etc/systemd/system/$unit"
done
say "installed paas.service and paas-router.service"

(( START )) || { say "files installed under ${ROOT:-/}; not starting anything"; exit 0; }

command -v systemctl >/dev/null || die "systemctl not found: start paas by hand (docs/operations.md)"
if (( STACK )); then
  say "building the stack images (a few minutes the first time)"
  bash "$HERE/stack/build.sh"
fi
systemctl daemon-reload
upgrade=0
systemctl is-active --quiet paas.service && upgrade=1
systemctl enable --now paas-router.service
(( RESTART_ROUTER )) && systemctl restart paas-router.service
systemctl enable paas.service
systemctl restart paas.service

token_file=/var/lib/paas/initial-admin-token
for _ in $(seq 1 60); do
  curl -fsS http://127.0.0.1:7000/healthz >/dev/null 2>&1 && break
  sleep 1
done
if (( upgrade )); then
  say "paas upgraded and restarted; the router kept serving"
elif [[ -s "$token_file" ]]; then
  token=$(cat "$token_file")
  say ""
  say "paas runs. The admin's API token (also in $token_file, readable by root only):"
  say ""
  say "    $token"
  say ""
  say "Next, from your machine:"
  say "    paas login http://THIS-SERVER:7000 --token $token"
  say "    paas passwd                       # a password, for the dashboard too"
  say "    paas apps:create myapp && git push paas main"
else
  say "paas runs (journalctl -u paas -f for its log)"
fi
