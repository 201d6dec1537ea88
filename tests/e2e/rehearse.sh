#!/usr/bin/env bash
# make rehearse: the seven rollout rehearsals of tests/e2e at fleet size N
# (default 10,000 agents) against the optimised binaries in BUILD, each with a
# fresh database in a throwaway PostgreSQL, printing every summary.
# Usage: tests/e2e/rehearse.sh [BUILD] [N] [rehearsal...]
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
N=${2:-10000}
shift $(($# > 2 ? 2 : $#))
export FB_SRC="$ROOT" FB_BIN="$ROOT/$BUILD/bin"
case $BUILD in /*) FB_BIN="$BUILD/bin" ;; esac
export FBT_WORK=$(mktemp -d /tmp/fbrehearse.XXXXXX)
chmod 0755 "$FBT_WORK"
pgdir="$FBT_WORK/pg"
export FB_PGPORT=$((20000 + RANDOM % 20000))
cleanup() {
	[ -n "${FBE_SERVER_PID:-}" ] && kill -9 "$FBE_SERVER_PID" 2>/dev/null
	"$ROOT/tests/pg.sh" stop "$pgdir" >/dev/null 2>&1
	if [ -z "${FBT_KEEP:-}" ]; then rm -rf "$FBT_WORK"; else echo "kept $FBT_WORK"; fi
}
trap cleanup EXIT
"$ROOT/tests/pg.sh" start "$pgdir" >"$FBT_WORK/pg.log" 2>&1 || { cat "$FBT_WORK/pg.log"; exit 1; }
export FBT_PG="$("$ROOT/tests/pg.sh" env "$pgdir")"
psql "$FBT_PG" -qXc "CREATE DATABASE fbt_template" >/dev/null &&
	"$FB_BIN/firebreakd" migrate --db "${FBT_PG% dbname=postgres} dbname=fbt_template" >/dev/null 2>&1 ||
	{ echo "cannot create the template database"; exit 1; }
FBE_EXIT_TRAP=cleanup
source "$ROOT/tests/e2e/rehearsals.sh"

list=("$@")
[ ${#list[@]} -eq 0 ] && list=(good cf291 subtle silent blip invalid restart)
echo "rehearsing ${list[*]} with $N agents ($FB_BIN)"
for r in "${list[@]}"; do
	echo
	echo "=== $r"
	start=$(date +%s)
	"rehearse_$r" "$N"
	echo "    ($(($(date +%s) - start))s)"
done
echo
fbe_summary_line
