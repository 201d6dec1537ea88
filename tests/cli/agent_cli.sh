#!/bin/sh
# CLI tests of fb-agent: --help, flags, the config file (flags win over it),
# and start-up refusals, with the real binary ($FB_BIN/fb-agent). No server:
# the protocol is tested end to end in tests/integration/test_agent.c.
# Run from the repository root: FB_BIN=build/bin tests/cli/agent_cli.sh
set -u
FB_BIN=${FB_BIN:-build/bin}
case $FB_BIN in /*) ;; *) FB_BIN=$(pwd)/$FB_BIN ;; esac
SRC=$(cd "$(dirname "$0")/../.." && pwd)
A="$FB_BIN/fb-agent"
S="$FB_BIN/fb-sign"
T=$(mktemp -d "${TMPDIR:-/tmp}/fb-agent-cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
pass=0
fail=0

# run NAME WANT_EXIT WANT_TEXT CMD...: run CMD, check its exit status and that
# WANT_TEXT (may be empty) appears in its stdout+stderr.
run() {
	name=$1 want=$2 text=$3
	shift 3
	"$@" >out.txt 2>err.txt
	got=$?
	if [ "$got" -ne "$want" ]; then
		echo "FAIL: $name: exit $got, expected $want"
		sed 's/^/    /' err.txt out.txt | head -n 5
		fail=$((fail + 1))
		return
	fi
	if [ -n "$text" ] && ! grep -qF -- "$text" out.txt err.txt; then
		echo "FAIL: $name: output lacks \"$text\""
		sed 's/^/    /' err.txt out.txt | head -n 5
		fail=$((fail + 1))
		return
	fi
	echo "ok: $name"
	pass=$((pass + 1))
}

[ -x "$A" ] || { echo "FAIL: $A not built"; echo "0 passed, 1 failed"; exit 1; }

# --help lists every setting and the test-only hook.
for opt in --config --once --server --root --state-dir --templates --channels --enroll-token \
	--ca-bundle --hostname --log-level --poll-interval --poll-jitter --heartbeat-interval \
	--backoff-max --timeout --boot-loop-starts --boot-loop-minutes --health --scan-interval \
	--scan-input --scan-max-events --scan-max-ms FB_AGENT_TEST_CRASH_ON "TEST ONLY"; do
	run "--help lists $opt" 0 "$opt" "$A" --help
done
run "unknown flag" 2 "see fb-agent --help" "$A" --bogus
run "no server" 2 "--server and --root are required" "$A" --root x
run "bad integer" 2 "poll-interval: \"soon\" is not an integer" "$A" --poll-interval soon
run "integer out of range" 2 "is not an integer in 1..1000" "$A" --boot-loop-starts 0
run "health is 0 or 1" 2 "health: \"2\" is not an integer in 0..1" "$A" --health 2
run "scan-max-events is capped" 2 "is not an integer in 0..10000" "$A" --scan-max-events 10001
run "stray argument" 2 "unexpected argument" "$A" --server http://x --root r extra

# A root to start with (fb-sign's worked example, shortened).
"$S" keygen --no-passphrase --out rk >/dev/null 2>&1 &&
	"$S" keygen --no-passphrase --out l1 >/dev/null 2>&1 &&
	"$S" keygen --no-passphrase --out l2 >/dev/null 2>&1 &&
	"$S" keygen --no-passphrase --out on >/dev/null 2>&1 &&
	"$S" root init --root-key rk.pub --release-key l1.pub --release-key l2.pub --threshold 2 \
		--online-key on.pub --out root.json >/dev/null 2>&1 &&
	"$S" sign --key rk.key --type root root.json >/dev/null 2>&1 ||
	{ echo "FAIL: cannot make a root with fb-sign"; fail=$((fail + 1)); }

# The config file: keys with '_' or '-', comments, quotes; flags win.
cat >agent.conf <<CONF
# fb-agent test configuration
server = http://127.0.0.1:1
root = $T/root.json
state_dir = "$T/state"
templates = $SRC/schema/templates
enroll-token = fe_test
timeout = 2
CONF
run "config file: unreachable server fails the cycle" 1 "http://127.0.0.1:1/v1/enroll" \
	"$A" --config agent.conf --once
run "config file: boot started with the root" 1 "root version 1, 5 template types" \
	"$A" --config agent.conf --once
run "flags win over the config file" 1 "http://127.0.0.1:2/v1/enroll" \
	"$A" --config agent.conf --server http://127.0.0.1:2 --once
if [ "$(stat -c %a "$T/state/identity.json" 2>/dev/null)" = 600 ]; then
	echo "ok: identity.json (key kept for an idempotent enrollment) is 0600"
	pass=$((pass + 1))
else
	echo "FAIL: identity.json missing or not 0600"
	fail=$((fail + 1))
fi
if grep -q '"clean":true' "$T/state/boot.json" 2>/dev/null; then
	echo "ok: a failed --once cycle still stops cleanly"
	pass=$((pass + 1))
else
	echo "FAIL: boot.json lacks the clean-stop mark"
	fail=$((fail + 1))
fi
echo "bogus = 1" >>agent.conf
run "unknown config key names file and line" 2 "agent.conf:8: unknown setting \"bogus\"" \
	"$A" --config agent.conf --once
run "missing config file" 2 "cannot be read" "$A" --config nope.conf --once
cat >bad.conf <<CONF
server = http://127.0.0.1:1
root = $T/root.json
state_dir = $T/state2
templates = $T/no-templates
CONF
run "missing templates directory" 2 "templates $T/no-templates" "$A" --config bad.conf --once
cat >bad2.conf <<CONF
server = http://127.0.0.1:1
root = $T/agent.conf
state_dir = $T/state3
templates = $SRC/schema/templates
CONF
run "a root that is not a root" 2 "pinned root" "$A" --config bad2.conf --once
mkdir -p state4 && echo '{"sequence": "x"}' >state4/state.json
cat >state.conf <<CONF
server = http://127.0.0.1:1
root = $T/root.json
state_dir = $T/state4
templates = $SRC/schema/templates
CONF
run "malformed state.json is named, not guessed" 2 "state4/state.json" \
	"$A" --config state.conf --once

sed -i '/^bogus/d' agent.conf
run "bad channel list" 2 "channels: \"abc\" is not a channel id" \
	"$A" --config agent.conf --channels 291,abc --once
run "channel 0 is not a channel" 2 "channels: \"0\" is not a channel id" \
	"$A" --config agent.conf --channels 0 --once
run "bad log level" 2 "is not debug, info, warn or error" "$A" --config agent.conf --log-level loud

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
