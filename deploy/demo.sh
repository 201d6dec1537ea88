#!/usr/bin/env bash
# make demo: on a fresh machine after `make`, set up everything under var/ (a
# local PostgreSQL, keys and a root of trust, an admin token), start
# firebreakd, and rehearse two rollouts with simulated agents (fb-fleet): a
# good file that reaches the whole fleet, and a Channel-File-291-shaped file
# that is halted in the canary ring and reverted. Re-runnable: each run uses
# new channels; the database, keys and server are reused or restarted.
# Usage: deploy/demo.sh [BUILD] [AGENTS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
N=${2:-1000}
export FB_SRC="$root" FB_BIN="$root/$BUILD/bin"
case $BUILD in /*) FB_BIN="$BUILD/bin" ;; esac
port=${FB_DEMO_PORT:-8080}
var="$root/var"
mkdir -p "$var"
source "$root/tests/e2e/lib.sh"

echo "== 1. local database (var/pg)"
"$root/deploy/dev-db.sh" start | tail -n 1
db=$("$root/deploy/dev-db.sh" url)

echo "== 2. keys and root of trust (var/trust)"
fbe_world "$var/trust"
echo "   root: var/trust/root.json (root key root1, release keys release1 + release2, threshold 2; online key online)"

echo "== 3. firebreakd on http://127.0.0.1:$port/"
if [ -f "$var/firebreakd.pid" ] && kill -0 "$(cat "$var/firebreakd.pid")" 2>/dev/null; then
	kill "$(cat "$var/firebreakd.pid")"
	for _ in $(seq 100); do kill -0 "$(cat "$var/firebreakd.pid")" 2>/dev/null || break; sleep 0.1; done
fi
if (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
	echo "port $port is in use by another program: set FB_DEMO_PORT" >&2
	exit 1
fi
# scaled time: heartbeats flushed, snapshots checked and the controller run
# several times a second, so bake times of seconds mean something
setsid "$FB_BIN/firebreakd" serve --db="$db" --port="$port" --online_key="$var/trust/online.key" \
	--root="$var/trust/root.json" --templates="$root/schema/templates" --corpus="$root/schema/corpus" \
	"${FBE_SERVER_FLAGS[@]}" --restart_grace_s=0 >>"$var/firebreakd.log" 2>&1 </dev/null &
echo $! >"$var/firebreakd.pid"
for _ in $(seq 300); do
	curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
	kill -0 "$(cat "$var/firebreakd.pid")" 2>/dev/null || { tail -n 20 "$var/firebreakd.log"; exit 1; }
	sleep 0.1
done
echo "   ready (log: var/firebreakd.log)"
if [ ! -s "$var/admin.token" ]; then
	(umask 077 && "$FB_BIN/firebreakd" token create --role admin --name "demo-admin-$(date +%s)" --db="$db" \
		>"$var/admin.token" 2>/dev/null)
fi
tok=$(cat "$var/admin.token")
echo "   admin token: var/admin.token"

# Each run gets two channels of its own, so versions start afresh.
seq_file="$var/demo.seq"
run=$(($(cat "$seq_file" 2>/dev/null || echo 0) + 1))
echo "$run" >"$seq_file"
rc=0
rehearse() {
	local scn=$1 ch=$2 label=$3
	local dir="$var/demo/run$run-$scn"
	mkdir -p "$dir"
	fbe_contents "$var/trust" "$dir" "$ch"
	echo
	echo "== $label ($N simulated agents, channel $ch)"
	if ! "$FB_BIN/fb-fleet" --server "http://127.0.0.1:$port" --token-file "$var/admin.token" \
		--root "$var/trust/root.json" --templates "$root/schema/templates" \
		--scenario "$root/tests/e2e/scenarios/$scn.json" --content-dir "$dir" --agents "$N" \
		--channel "$ch" --json >"$dir/summary.json" 2>"$dir/fleet.log"; then
		rc=1
	fi
	grep -v '^fb-fleet: [0-9]*s:' "$dir/fleet.log" || true
	echo "   (JSON summary: ${dir#$root/}/summary.json)"
}
rehearse demo-good $((1000 + 2 * run)) "4. rehearsal: a good file, rolled out ring by ring"
rehearse demo-bad $((1001 + 2 * run)) "5. rehearsal: a Channel-File-291-shaped file (crashes every host, boot-loop)"

echo
if [ "$rc" -eq 0 ]; then echo "Both rehearsals behaved as expected."; else echo "A rehearsal did NOT behave as expected (see above)."; fi
echo
echo "firebreakd keeps running: http://127.0.0.1:$port/  (dashboard; sign in with the token in var/admin.token)"
echo "  API example: curl -H \"Authorization: Bearer \$(cat var/admin.token)\" http://127.0.0.1:$port/v1/rollouts"
echo "  again:       make demo        (re-runnable; new channels each time)"
echo "  stop:        kill \$(cat var/firebreakd.pid) && deploy/dev-db.sh stop"
exit "$rc"
