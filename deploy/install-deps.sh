#!/bin/sh
# Installs the Debian 12 packages firebreak needs to build, test, demo and
# benchmark, only those that are missing. Idempotent; works as root or through
# sudo. Used by `make deps` and, first, by every target that builds.
set -eu

PKGS="build-essential pkg-config
libmicrohttpd-dev libjansson-dev libsodium-dev libssl-dev libpq-dev libcurl4-openssl-dev
libcmocka-dev postgresql openssl curl ca-certificates
clang libclang-rt-14-dev clang-format
wrk nginx-light"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "deps: all packages present"
	exit 0
fi

echo "deps: installing:$missing"
if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "deps: need root or sudo to install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
# Debian starts a system PostgreSQL cluster on install; firebreak runs its own
# throwaway clusters and does not need it.
echo "deps: done"
