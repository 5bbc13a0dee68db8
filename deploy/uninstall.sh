#!/usr/bin/env bash
# deploy/uninstall.sh -- stop and remove paas's systemd units and binary. paas's state
# (/var/lib/paas, /etc/paas) and the apps' containers and images stay unless --purge is
# given, which removes /var/lib/paas and /etc/paas too.
#
# Usage: deploy/uninstall.sh [--purge] [--root DIR]
set -euo pipefail

ROOT=/
PURGE=0
while (( $# )); do
  case "$1" in
    --purge) PURGE=1 ;;
    --root) ROOT=${2:?--root needs a folder}; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/{s/^# \{0,1\}//;p}}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) printf 'uninstall.sh: unknown option %s\n' "$1" >&2; exit 1 ;;
  esac
  shift
done
ROOT=${ROOT%/}
if [[ -z "$ROOT" ]] && command -v systemctl >/dev/null; then
  systemctl disable --now paas.service paas-router.service 2>/dev/null || true
fi
rm -f "$ROOT/etc/systemd/system/paas.service" "$ROOT/etc/systemd/system/paas-router.service"
rm -f "$ROOT/usr/local/bin/paas"
rm -rf "$ROOT/usr/local/share/doc/paas"
[[ -z "$ROOT" ]] && command -v systemctl >/dev/null && systemctl daemon-reload || true
if (( PURGE )); then
  rm -rf "$ROOT/var/lib/paas" "$ROOT/etc/paas"
  echo "paas removed, with its state"
else
  echo "paas removed; its state stays in ${ROOT}/var/lib/paas and ${ROOT}/etc/paas (--purge removes them)"
fi
