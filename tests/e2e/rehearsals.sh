#!/usr/bin/env bash
# The seven rollout rehearsals, as functions shared by tests/e2e/test_*.sh
# (small fleets, make test) and tests/e2e/rehearse.sh (10,000 agents, make
# rehearse). Each sets up its own database, trust world and firebreakd, runs
# fb-fleet on a scenario of tests/e2e/scenarios/ and asserts on the JSON
# summary. Needs FB_BIN, FB_SRC, FBT_PG (with the fbt_template database) and
# FBT_WORK, as tests/run.sh sets them.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
FBE_SCN="$FB_SRC/tests/e2e/scenarios"

# fbe_setup NAME [server flags...]: world, uploads, database, server, token in
# $FBT_WORK/NAME. Sets FBE_DIR FBE_DB FBE_PORT FBE_TOKEN FBE_WORLD FBE_CONTENT.
fbe_setup() {
	local name=$1
	shift
	FBE_DIR="$FBT_WORK/e2e-$name"
	FBE_WORLD="$FBE_DIR/world"
	FBE_CONTENT="$FBE_DIR/content"
	mkdir -p "$FBE_DIR"
	fbe_world "$FBE_WORLD"
	fbe_contents "$FBE_WORLD" "$FBE_CONTENT" 291
	FBE_DB=$(fbe_db "e2e_$name")
	FBE_PORT=$(fbe_free_port)
	fbe_server_start "$FBE_WORLD" "$FBE_DB" "$FBE_PORT" "$FBE_DIR/firebreakd.log" "$@"
	FBE_TOKEN=$(fbe_token "$FBE_DB")
	trap fbe_server_stop EXIT
}

# fbe_run NAME SCENARIO AGENTS [fb-fleet flags...]: run fb-fleet; the summary
# goes to $FBE_DIR/summary.json, the human one to stdout.
fbe_run() {
	local name=$1 scn=$2 agents=$3
	shift 3
	local extra=()
	[ -n "$agents" ] && extra+=(--agents "$agents")
	fbe_fleet "$FBE_WORLD" "$FBE_CONTENT" "$FBE_PORT" "$FBE_TOKEN" "$FBE_SCN/$scn" "${extra[@]}" "$@" \
		>"$FBE_DIR/summary.json" 2>"$FBE_DIR/fleet.log"
	FBE_RC=$?
	grep -v '^fb-fleet: [0-9]*s:' "$FBE_DIR/fleet.log"
	fbe_expect "$name: fb-fleet exit status 0 (expectations held)" "$FBE_DIR/summary.json" '.ok == true'
}

# 2. Channel File 291: crash on every host, boot-loop.
rehearse_cf291() {
	fbe_setup cf291 --restart_grace_s=0
	fbe_run cf291 cf291.json "$1"
	local f="$FBE_DIR/summary.json"
	fbe_expect "cf291: halted (or already reverted)" "$f" '.rollout.state == "halted" or .rollout.state == "reverted"'
	fbe_expect "cf291: stopped in ring 0" "$f" '.rollout.ring_index == 0'
	fbe_expect "cf291: exposure within ring 0" "$f" '.exposure_under_test <= .rings[0].agents and .exposure_under_test > 0'
	fbe_expect "cf291: nobody runs the bad file" "$f" '.on_bad_content == 0'
	fbe_expect "cf291: every exposed agent on the last known good" "$f" '.exposed_not_on_last_known_good == 0'
	fbe_expect "cf291: the crashes were reported" "$f" '.halt_inputs.crashed + .halt_inputs.boot_looped > 0'
	fbe_server_stop
}
