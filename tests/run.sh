#!/usr/bin/env bash
# Runs every firebreak test against the binaries in BUILD (default build/san):
# source checks (lint, format), unit tests, integration tests (a throwaway PostgreSQL cluster, started here
# and torn down on any exit), fuzz-corpus replays and CLI scripts. Prints one
# line per test program and, last, "N passed, N failed"; exits non-zero on
# any failure.
set -u
BUILD=${1:-build/san}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
export FB_BUILD="$BUILD" FB_BIN="$BUILD/bin" FB_SRC="$ROOT"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

work=$(mktemp -d /tmp/fbtest.XXXXXX)
chmod 0755 "$work"
export FBT_WORK="$work"
cleanup() {
	# Children (servers, agents) first, then the database, then the files.
	pkill -KILL -P $$ 2>/dev/null || true
	if [ -n "${FBT_PGDIR:-}" ]; then FB_PGPORT=$FBT_PGPORT tests/pg.sh stop "$FBT_PGDIR" || true; fi
	if [ -z "${FBT_KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
failures=()

# count LOG -> sets p f from cmocka's or the plain summary lines
count() {
	p=0 f=0
	local cp cf pp pf
	cp=$(grep -aoE '^\[  PASSED  \] [0-9]+ test' "$1" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
	cf=$(grep -aoE '^\[  FAILED  \] [0-9]+ test' "$1" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
	pp=$(grep -aoE '^([A-Za-z_-]+: )?[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
	if [ -n "$pp" ]; then
		pf=${pp##*passed, }
		p=$(echo "$pp" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
		f=${pf%% failed*}
	fi
	p=$((p + ${cp:-0}))
	f=$((f + ${cf:-0}))
}

# run NAME CMD... : run one test program, fold its result into the totals
run() {
	local name=$1
	shift
	# FBT_ONLY=substring runs only the matching test programs (development aid)
	if [ -n "${FBT_ONLY:-}" ] && [[ "$name" != *"$FBT_ONLY"* ]]; then return; fi
	local log="$work/$name.log" rc start end
	start=$(date +%s)
	"$@" >"$log" 2>&1
	rc=$?
	end=$(date +%s)
	count "$log"
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # crashed or failed without saying so (sanitizer, assertion)
	fi
	if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		p=1 # a program that only reports by exit status
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$f" -eq 0 ]; then
		printf 'ok    %-34s %4d passed  (%ss)\n' "$name" "$p" "$((end - start))"
	else
		printf 'FAIL  %-34s %4d passed, %d failed (exit %d)\n' "$name" "$p" "$f" "$rc"
		failures+=("$name")
		# the failing assertions first (a sanitizer's leak report after an
		# aborted test would push them out of the tail), then the tail
		grep -a -E '^\[  (ERROR|FAILED)  \]|^ERROR: |error: Failure|runtime error|^FAIL' "$log" |
			head -n 20 | sed 's/^/      ! /'
		sed 's/^/      | /' "$log" | tail -n 60
	fi
}

echo "== source checks"
# STYLE.md's banned calls and the committed clang-format style, so that a
# red format-check cannot land unnoticed
run lint make -s --no-print-directory lint
if command -v clang-format >/dev/null; then
	run format-check make -s --no-print-directory format-check
fi

echo "== unit tests ($BUILD)"
for t in "$FB_BUILD"/tests/unit/*; do
	[ -x "$t" ] || continue
	run "$(basename "$t")" "$t"
done

echo "== integration tests (throwaway PostgreSQL)"
export FBT_PGDIR="$work/pg"
export FBT_PGPORT=$((20000 + RANDOM % 20000))
if ! FB_PGPORT=$FBT_PGPORT tests/pg.sh start "$FBT_PGDIR" >"$work/pg-start.log" 2>&1; then
	cat "$work/pg-start.log"
	echo "0 passed, 1 failed"
	exit 1
fi
export FBT_PG="$(FB_PGPORT=$FBT_PGPORT tests/pg.sh env "$FBT_PGDIR")"
template="${FBT_PG% dbname=postgres} dbname=fbt_template"
psql "$FBT_PG" -qXc "CREATE DATABASE fbt_template" >/dev/null &&
	"$FB_BIN/firebreakd" migrate --db "$template" >"$work/migrate.log" 2>&1 ||
	{ cat "$work/migrate.log"; echo "0 passed, 1 failed"; exit 1; }
for t in "$FB_BUILD"/tests/integration/*; do
	[ -x "$t" ] || continue
	run "$(basename "$t")" "$t"
done

echo "== command-line and end-to-end scripts"
for t in tests/cli/*.sh tests/e2e/test_*.sh; do
	[ -f "$t" ] || continue
	run "$(basename "$t" .sh)" bash "$t"
done

echo
if [ "$failed" -ne 0 ]; then
	echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
