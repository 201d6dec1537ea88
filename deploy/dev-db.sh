#!/usr/bin/env bash
# A local PostgreSQL for development: start|stop|status|url.
# Data lives under var/pg (ignored by git); the database 'firebreak' is
# created and migrated on start when firebreakd is built.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/var/pg"
export FB_PGPORT=${FB_PGPORT:-54329}
cmd=${1:-status}
case "$cmd" in
start)
	mkdir -p "$root/var"
	if [ "$(id -u)" -eq 0 ]; then chmod 0755 "$root/var"; fi
	"$root/tests/pg.sh" start "$dir"
	admin=$("$root/tests/pg.sh" env "$dir")
	if ! psql "$admin" -tAXc "SELECT 1 FROM pg_database WHERE datname='firebreak'" | grep -q 1; then
		psql "$admin" -qXc "CREATE DATABASE firebreak"
	fi
	url="${admin% dbname=postgres} dbname=firebreak"
	bin=${FB_BIN:-$root/build/bin}
	if [ -x "$bin/firebreakd" ]; then "$bin/firebreakd" migrate --db "$url"; fi
	echo "database: $url"
	;;
stop) "$root/tests/pg.sh" stop "$dir" ;;
status) "$root/tests/pg.sh" status "$dir" ;;
url)
	admin=$("$root/tests/pg.sh" env "$dir")
	echo "${admin% dbname=postgres} dbname=firebreak"
	;;
*)
	echo "usage: $0 start|stop|status|url" >&2
	exit 2
	;;
esac
