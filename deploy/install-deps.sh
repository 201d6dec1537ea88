#!/bin/sh
# Installs the Debian 12 packages firebreak needs to build, test, demo and
# benchmark, only those that are missing. Idempotent; works as root or through
# sudo. Used by `make deps` and, first, by every target that builds.
set -eu

PKGS="build-essential pkg-config
libmicrohttpd-dev libjansson-dev libsodium-dev libssl-dev libpq-dev libcurl4-openssl-dev
libcmocka-dev postgresql openssl curl ca-certificates jq
clang libclang-rt-14-dev clang-format
wrk nginx-light haproxy bc iproute2
chromium fonts-dejavu-core"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

# Node.js runs the browser test (playwright-core drives Debian's chromium).
# The machine image may ship its own nodejs; install Debian's only if none.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	missing="$missing nodejs npm"
fi

browser_deps() {
	# playwright-core, pinned by tests/browser/package-lock.json (no browser download).
	root=$(cd "$(dirname "$0")/.." && pwd)
	if [ -f "$root/tests/browser/package-lock.json" ] && [ ! -d "$root/tests/browser/node_modules/playwright-core" ]; then
		echo "deps: npm ci in tests/browser"
		(cd "$root/tests/browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
	fi
}

if [ -z "$missing" ]; then
	echo "deps: all packages present"
	browser_deps
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
browser_deps
echo "deps: done"
