#!/usr/bin/env bash
# deploy/stack/build.sh -- build paas's base ("stack") images offline from Debian packages.
#
# Servers running paas often cannot pull from a container registry. This script builds
# every base image the builder uses from nothing but a Debian package mirror (plain HTTP):
#
#   paas/stack:bookworm          debootstrap --variant=minbase root, `docker import`ed
#   paas/python:bookworm         python3 + venv + libpq5 (runtime, no compiler)
#   paas/python-build:bookworm   paas/python + python3-dev, build-essential, libpq-dev, git, curl
#   paas/node:bookworm           nodejs + npm
#   paas/go:bookworm             golang-go + git
#   paas/ruby:bookworm           ruby + bundler
#   paas/static:bookworm         busybox httpd serving $STATIC_ROOT on $PORT
#   paas/postgres:15             the PostgreSQL add-on: PostgreSQL 15 + PostGIS 3
#   paas/redis:7                 the Redis add-on: Redis 7
#   paas/stack:trixie            Debian 13's base, for Python 3.13
#   paas/python:trixie           Python 3.13 (runtime)
#   paas/python-build:trixie     Python 3.13 (build stage)
#   paas/stack:forky             Debian testing's base, for Python 3.14
#   paas/python:forky            Python 3.14 (runtime)
#   paas/python-build:forky      Python 3.14 (build stage)
#   (The builder takes the Python pair of the version an app asks for; bookworm's is 3.11.)
#
# Usage: deploy/stack/build.sh [--force] [--verbose] [IMAGE...]
#   IMAGE is one of: stack python python-build node go ruby static postgres redis
#   stack-trixie python-trixie python-build-trixie stack-forky python-forky
#   python-build-forky (default: all).
#   Images that already exist are skipped; --force rebuilds the named ones (with no args:
#   all of them, the bases included). The images one is built FROM are built first
#   whenever they are missing.
#
# Environment:
#   DEBIAN_MIRROR           default http://deb.debian.org/debian
#   DEBIAN_SECURITY_MIRROR  default http://deb.debian.org/debian-security ("" = no security suite)
#   STACK_SLIM              1 (default) strips man pages, docs and locales from the images
#   PAAS_BUILD_CA_FILE      a PEM bundle every image trusts (system store), for servers behind
#                           a TLS-intercepting proxy: apps' own Dockerfiles FROM these images
#                           then reach PyPI unchanged. Images built with another bundle, or
#                           none, are rebuilt.
#
# Building the base image needs root (debootstrap); debootstrap is installed with apt-get
# when missing. Language images only need access to the Docker daemon.
set -euo pipefail

SUITE=bookworm    # every image; names ending in -trixie or -forky are built on that suite
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR-http://deb.debian.org/debian-security}
STACK_SLIM=${STACK_SLIM:-1}
CA_FILE=${PAAS_BUILD_CA_FILE:-}
CA_ID=none    # which bundle the images trust: a label on each, so a change rebuilds them
DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE=stack
# Build order; the base is built first.
LANGS=(python python-build node go ruby static postgres redis
       stack-trixie python-trixie python-build-trixie
       stack-forky python-forky python-build-forky)
# image -> image it is built FROM, when that is not the base.
declare -A DEP=([python-build]=python
                [python-trixie]=stack-trixie [python-build-trixie]=python-trixie
                [python-forky]=stack-forky [python-build-forky]=python-forky)
# Service images are tagged with the major version they run, which an add-on records.
declare -A TAG=([postgres]=15 [redis]=7)
declare -A PYTHON_OF=([bookworm]=3.11 [trixie]=3.13 [forky]=3.14)

FORCE=0
VERBOSE=0
ROOTFS=""     # debootstrap dir, removed by the EXIT trap
LOGDIR=""     # build logs, removed on success, kept on failure
OK=0

suite_of() { case $1 in *-trixie | *-forky) printf '%s' "${1##*-}" ;; *) printf '%s' "$SUITE" ;; esac; }
kind_of() { printf '%s' "${1%-"$(suite_of "$1")"}"; }   # python-build-trixie -> python-build
image() { printf 'paas/%s:%s' "$(kind_of "$1")" "${TAG[$1]:-$(suite_of "$1")}"; }
say() { printf '%s\n' "$*"; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^#/{s/^# \{0,1\}//;p}}' "${BASH_SOURCE[0]}"; }

now_us() { printf '%s' "${EPOCHREALTIME/[.,]/}"; }
since() { # since START_US -> "12.3s"
  local d=$(( ($(now_us) - $1) / 100000 ))
  printf '%d.%ds' $((d / 10)) $((d % 10))
}
size_of() {
  local b
  b=$(docker image inspect -f '{{.Size}}' "$1" 2>/dev/null) || { printf '?'; return; }
  printf '%d MB' $(( (b + 500000) / 1000000 ))
}
exists() { docker image inspect "$1" >/dev/null 2>&1; }
# The CA bundle an image was built trusting ("none" for images older than the label).
ca_of() {
  local id
  id=$(docker image inspect -f '{{index .Config.Labels "io.paas.ca"}}' "$1" 2>/dev/null) || true
  [[ -n "$id" && "$id" != "<no value>" ]] || id=none
  printf '%s' "$id"
}

# run LOGNAME CMD... : run a step, its output in $LOGDIR/LOGNAME.log (and on the terminal
# with --verbose); on failure show the end of the log.
run() {
  local log="$LOGDIR/$1.log"; shift
  local rc=0
  if (( VERBOSE )); then
    "$@" 2>&1 | tee -a "$log" || rc=$?
  else
    "$@" >>"$log" 2>&1 || rc=$?
  fi
  if (( rc != 0 )); then
    printf 'build.sh: step failed (exit %d): %s\n--- last lines of %s ---\n' "$rc" "$*" "$log" >&2
    tail -n 40 "$log" >&2
    exit "$rc"
  fi
}

# Unmount anything left mounted below DIR (debootstrap mounts /proc, /sys in the target).
umount_below() {
  local dir=$1 m
  awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

cleanup() {
  if [[ -n "$ROOTFS" && -d "$ROOTFS" ]]; then
    umount_below "$ROOTFS"
    rm -rf --one-file-system "$ROOTFS"
  fi
  if [[ -n "$LOGDIR" && -d "$LOGDIR" ]]; then
    if (( OK )); then rm -rf "$LOGDIR"; else say "build.sh: logs kept in $LOGDIR" >&2; fi
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_debootstrap() {
  local pkgs=()
  command -v debootstrap >/dev/null 2>&1 || pkgs+=(debootstrap)
  [[ -e /usr/share/keyrings/debian-archive-keyring.gpg ]] || pkgs+=(debian-archive-keyring)
  (( ${#pkgs[@]} )) || return 0
  command -v apt-get >/dev/null 2>&1 ||
    die "${pkgs[*]} missing and apt-get unavailable: install ${pkgs[*]} by hand"
  say "installing ${pkgs[*]} with apt-get"
  run host-apt apt-get update
  run host-apt env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${pkgs[@]}"
}

# Turn the fresh debootstrap tree into a clean container root filesystem.
configure_rootfs() {
  local r=${1:?} suite=${2:?}
  {
    printf 'deb %s %s main\n' "$DEBIAN_MIRROR" "$suite"
    printf 'deb %s %s-updates main\n' "$DEBIAN_MIRROR" "$suite"
    [[ -z "$DEBIAN_SECURITY_MIRROR" ]] ||
      printf 'deb %s %s-security main\n' "$DEBIAN_SECURITY_MIRROR" "$suite"
  } >"$r/etc/apt/sources.list"
  rm -f "$r"/etc/apt/sources.list.d/*

  # Same container tweaks as Debian's official images: no service starts during
  # installs, no apt package caches, no translation indexes.
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
  chmod 755 "$r/usr/sbin/policy-rc.d"
  cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  printf 'Acquire::Languages "none";\n' >"$r/etc/apt/apt.conf.d/docker-no-languages"
  # Testing's Release files expire within a week, and a mirror that lags (or a clock ahead of
  # it) would stop apt in these images and in every app build on them. Signatures are still
  # checked; only the freshness date is not.
  if [[ "$suite" == forky ]]; then
    printf 'Acquire::Check-Valid-Until "false";\n' >"$r/etc/apt/apt.conf.d/paas-testing-suite"
  fi
  if (( STACK_SLIM )); then
    cat >"$r/etc/dpkg/dpkg.cfg.d/paas-slim" <<'EOF'
# paas stack images: no man pages, docs (copyright files kept) or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
  fi

  # Pull in the point-release and security updates published since the suite release.
  local in_root=(env -i PATH="$DEFAULT_PATH" LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$r")
  run base "${in_root[@]}" apt-get update
  run base "${in_root[@]}" apt-get -y -o Dpkg::Options::=--force-confold dist-upgrade
  run base "${in_root[@]}" apt-get clean
  # Where update-ca-certificates looks, so the package's later runs in child images keep it.
  if [[ -n "$CA_FILE" ]]; then
    install -m 0644 "$CA_FILE" "$r/usr/local/share/ca-certificates/paas-build-ca.crt"
    run base "${in_root[@]}" update-ca-certificates
  fi

  if (( STACK_SLIM )); then
    rm -rf "$r"/usr/share/{man,info,groff,linda,locale}/* "$r"/usr/share/lintian/overrides/*
    find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  fi
  umount_below "$r"
  rm -rf --one-file-system "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* \
    "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old \
    "$r"/dev/* "$r"/proc/* "$r"/sys/* "$r"/run/* "$r"/tmp/* "$r"/var/tmp/*
  find "$r/var/log" -type f -delete
  : >"$r/etc/resolv.conf"
  : >"$r/etc/hostname"
  [[ ! -e "$r/etc/machine-id" ]] || : >"$r/etc/machine-id"
}

# build_base NAME : the debootstrap root of NAME's suite, imported as NAME's image.
build_base() {
  local name=$1 suite
  suite=$(suite_of "$1")
  (( EUID == 0 )) || die "building $(image "$name") needs root (debootstrap); re-run as root, e.g. with sudo"
  ensure_debootstrap
  ROOTFS=$(mktemp -d "${TMPDIR:-/var/tmp}/paas-stack-rootfs.XXXXXX")
  # A debootstrap older than the suite (bookworm's knows no forky) bootstraps it with the
  # script testing and unstable share.
  local script=()
  [[ -e "/usr/share/debootstrap/scripts/$suite" ]] || script=(/usr/share/debootstrap/scripts/sid)
  run base debootstrap --variant=minbase --include=ca-certificates --components=main \
    "$suite" "$ROOTFS" "$DEBIAN_MIRROR" "${script[@]}"
  configure_rootfs "$ROOTFS" "$suite"
  run base bash -c 'tar --numeric-owner -C "$1" -cf - . | docker import \
      --change "ENV PATH=$2" --change "ENV LANG=C.UTF-8" \
      --change "LABEL io.paas.stack=$3" --change "LABEL io.paas.ca=$6" --change "CMD [\"bash\"]" \
      --message "paas stack: debootstrap minbase $3 from $4" - "$5"' \
    _ "$ROOTFS" "$DEFAULT_PATH" "$suite" "$DEBIAN_MIRROR" "$(image "$name")" "$CA_ID"
  umount_below "$ROOTFS"
  rm -rf --one-file-system "$ROOTFS"
  ROOTFS=""
}

build_lang() {
  local name=$1 df
  df="$HERE/$(kind_of "$1").Dockerfile"
  [[ -f "$df" ]] || die "missing $df"
  local args=(build -t "$(image "$name")")
  (( ! FORCE )) || args+=(--no-cache)
  [[ "$(suite_of "$name")" == "$SUITE" ]] || args+=(--build-arg "SUITE=$(suite_of "$name")")
  # The Python each suite ships, as the builder expects it (LOCAL_PYTHONS in
  # builder/src/config.rs): the image build fails if the suite has moved on.
  [[ "$(kind_of "$name")" != python ]] || args+=(--build-arg "PYTHON=${PYTHON_OF[$(suite_of "$name")]}")
  # Classic builder on purpose: it needs no BuildKit, no registry and no frontend image.
  # The build context is the image's folder beside its Dockerfile (its entrypoint script),
  # or, without one, the Dockerfile alone.
  if [[ -d "$HERE/$(kind_of "$name")" ]]; then
    run "$name" env DOCKER_BUILDKIT=0 docker "${args[@]}" -f "$df" "$HERE/$(kind_of "$name")"
  else
    run "$name" env DOCKER_BUILDKIT=0 docker "${args[@]}" - <"$df"
  fi
}

# ensure NAME FORCED : build NAME unless present (or FORCED), print one status line.
ensure() {
  local name=$1 forced=$2 img t0 old=""
  img=$(image "$name")
  t0=$(now_us)
  if exists "$img" && (( ! forced )); then
    if [[ "$(ca_of "$img")" == "$CA_ID" ]]; then
      printf '%-28s already present  (%s, %s)\n' "$img" "$(size_of "$img")" "$(since "$t0")"
      return
    fi
    say "$img trusts a different CA bundle than PAAS_BUILD_CA_FILE ($(ca_of "$img"), not $CA_ID): rebuilding"
  fi
  old=$(docker image inspect -f '{{.Id}}' "$img" 2>/dev/null || true)
  if [[ "$(kind_of "$name")" == "$BASE" ]]; then build_base "$name"; else build_lang "$name"; fi
  printf '%-28s built            (%s, %s)\n' "$img" "$(size_of "$img")" "$(since "$t0")"
  # Drop the image this one replaced, unless something (a container, a child image) uses it.
  if [[ -n "$old" && "$old" != "$(docker image inspect -f '{{.Id}}' "$img")" ]]; then
    docker image rm "$old" >/dev/null 2>&1 || true
  fi
}

main() {
  local -a names=()
  while (( $# )); do
    case "$1" in
      -f|--force) FORCE=1 ;;
      -v|--verbose) VERBOSE=1 ;;
      -h|--help) usage; exit 0 ;;
      -*) die "unknown option $1 (see --help)" ;;
      *) names+=("$1") ;;
    esac
    shift
  done

  declare -A want=()
  local n
  if (( ${#names[@]} == 0 )); then
    want[$BASE]=1
    for n in "${LANGS[@]}"; do want[$n]=1; done
  else
    for n in "${names[@]}"; do
      case " $BASE ${LANGS[*]} " in
        *" $n "*) want[$n]=1 ;;
        *) die "unknown image '$n' (known: $BASE ${LANGS[*]})" ;;
      esac
    done
  fi

  if [[ -n "$CA_FILE" ]]; then
    [[ -r "$CA_FILE" ]] || die "PAAS_BUILD_CA_FILE=$CA_FILE cannot be read"
    grep -q -- '-----BEGIN CERTIFICATE-----' "$CA_FILE" ||
      die "PAAS_BUILD_CA_FILE=$CA_FILE holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    CA_ID=$(sha256sum <"$CA_FILE" | cut -c1-16)
  fi
  command -v docker >/dev/null 2>&1 || die "docker CLI not found"
  docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (is it running, may this user use it?)"

  # One build at a time on a machine; a second caller waits and then finds the images.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/paas-stack-build.lock"
    flock 9
  fi

  LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/paas-stack-logs.XXXXXX")
  local t0 plan=()
  t0=$(now_us)
  # with_deps NAME : add NAME to the plan after the images it is built FROM.
  with_deps() {
    [[ -z "${DEP[$1]:-}" ]] || with_deps "${DEP[$1]}"
    [[ " ${plan[*]} " == *" $1 "* ]] || plan+=("$1")
  }
  for n in "${LANGS[@]}"; do
    [[ -z "${want[$n]:-}" ]] || with_deps "$n"
  done

  ensure "$BASE" $(( FORCE && ${want[$BASE]:-0} ))
  for n in "${plan[@]}"; do
    ensure "$n" $(( FORCE && ${want[$n]:-0} ))
  done
  say "stack images ready in $(since "$t0")"
  OK=1
}

main "$@"
