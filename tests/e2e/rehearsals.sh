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
	trap "fbe_server_stop; ${FBE_EXIT_TRAP:-}" EXIT
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

# 1. A good file under 0.1 % background crash noise.
rehearse_good() {
	fbe_setup good --restart_grace_s=0
	fbe_run good good.json "$1"
	local f="$FBE_DIR/summary.json"
	fbe_expect "good: completed" "$f" '.rollout.state == "completed"'
	fbe_expect "good: reached the last ring" "$f" '.rollout.ring_index == (.rings | length) - 1'
	fbe_expect "good: no false halt" "$f" '.false_halts == 0'
	fbe_expect "good: the whole fleet runs it" "$f" '.exposure_under_test == .agents - .fleet.dead'
	fbe_server_stop
}

# 3. A file that crashes 2 % of hosts: halted before it leaves the early ring.
rehearse_subtle() {
	fbe_setup subtle --restart_grace_s=0
	fbe_run subtle subtle.json "$1"
	local f="$FBE_DIR/summary.json"
	fbe_expect "subtle: halted" "$f" '.rollout.state == "halted" or .rollout.state == "reverted"'
	fbe_expect "subtle: before leaving the early ring" "$f" '.rollout.ring_index <= 1'
	fbe_expect "subtle: exposure within canary + early" "$f" '.exposure_under_test <= .rings[0].agents + .rings[1].agents'
	fbe_expect "subtle: the halt saw crash reports" "$f" '.halt_inputs.crashed > 0'
	fbe_expect "subtle: nobody runs it at the end" "$f" '.on_bad_content == 0'
	fbe_server_stop
}

# 4. Hosts die without any report: halted through heartbeat silence alone.
rehearse_silent() {
	fbe_setup silent --restart_grace_s=0
	fbe_run silent silent.json "$1"
	local f="$FBE_DIR/summary.json"
	fbe_expect "silent: halted" "$f" '.rollout.state == "halted" or .rollout.state == "reverted"'
	fbe_expect "silent: in ring 0" "$f" '.rollout.ring_index == 0'
	fbe_expect "silent: exposure within ring 0" "$f" '.exposure_under_test <= .rings[0].agents'
	fbe_expect "silent: halted on silence, no crash report at all" "$f" \
		'.halt_inputs.silent > 0 and .halt_inputs.crashed == 0 and .halt_inputs.boot_looped == 0 and .fleet.crashes == .fleet.dead'
	fbe_server_stop
}

# 5. 20 % of the early ring offline for less than the silence timeout.
rehearse_blip() {
	fbe_setup blip --restart_grace_s=0
	fbe_run blip blip.json "$1"
	local f="$FBE_DIR/summary.json"
	fbe_expect "blip: completed" "$f" '.rollout.state == "completed"'
	fbe_expect "blip: no false halt" "$f" '.false_halts == 0'
	fbe_expect "blip: the blip happened" "$f" '.fleet.blips[0].agents > 0'
	fbe_server_stop
}

# 6. The 21-field file: refused at upload, never assigned, zero exposure.
rehearse_invalid() {
	fbe_setup invalid --restart_grace_s=0
	fbe_run invalid invalid.json "$1"
	local f="$FBE_DIR/summary.json"
	fbe_expect "invalid: refused at upload (422)" "$f" '.uploads["cf291-21-fields"].accepted == false and .uploads["cf291-21-fields"].status == 422'
	fbe_expect "invalid: the refusal names the field count" "$f" '.uploads["cf291-21-fields"].message | test("field")'
	fbe_expect "invalid: no rollout, zero exposure" "$f" '.rollout.state == "rejected" and .exposure_under_test == 0'
	fbe_expect "invalid: the fleet stayed on the baseline" "$f" '.exposure.base == .agents'
	local n
	n=$(curl -fsS -H "Authorization: Bearer $FBE_TOKEN" "http://127.0.0.1:$FBE_PORT/v1/content" |
		jq '[.content[]? | select(.version == 2)] | length')
	echo "{\"v2\": ${n:-null}}" >"$FBE_DIR/content.json"
	fbe_expect "invalid: not stored on the server" "$FBE_DIR/content.json" '.v2 == 0'
	fbe_server_stop
}

# 7. firebreakd killed with SIGKILL mid-rollout and restarted.
rehearse_restart() {
	fbe_setup restart
	local status="$FBE_DIR/status.json" f="$FBE_DIR/summary.json" extra=()
	[ -n "$1" ] && extra+=(--agents "$1")
	fbe_fleet "$FBE_WORLD" "$FBE_CONTENT" "$FBE_PORT" "$FBE_TOKEN" "$FBE_SCN/restart.json" \
		--status-file "$status" "${extra[@]}" >"$f" 2>"$FBE_DIR/fleet.log" &
	local fleet=$! before="" after=""
	# wait until the rollout under test has left ring 0, then kill -9
	# (enrollment and the baseline come first: minutes at 10,000 agents)
	for _ in $(seq 9000); do
		if [ -f "$status" ] && jq -e '.phase == "test" and .state == "rolling" and .ring_index >= 1' "$status" >/dev/null 2>&1; then
			break
		fi
		kill -0 "$fleet" 2>/dev/null || break
		sleep 0.1
	done
	local id
	id=$(jq -r .rollout "$status" 2>/dev/null)
	before=$(curl -fsS -H "Authorization: Bearer $FBE_TOKEN" "http://127.0.0.1:$FBE_PORT/v1/rollouts/$id" | jq -c '{state, ring_index}')
	kill -9 "$FBE_SERVER_PID"
	wait "$FBE_SERVER_PID" 2>/dev/null
	sleep 2
	fbe_server_start "$FBE_WORLD" "$FBE_DB" "$FBE_PORT" "$FBE_DIR/firebreakd.log"
	after=$(curl -fsS -H "Authorization: Bearer $FBE_TOKEN" "http://127.0.0.1:$FBE_PORT/v1/rollouts/$id" | jq -c '{state, ring_index}')
	echo "{\"before\": ${before:-null}, \"after\": ${after:-null}}" >"$FBE_DIR/restart.json"
	echo "restart: before kill -9 $before, after restart $after"
	wait "$fleet"
	FBE_RC=$?
	grep -v '^fb-fleet: [0-9]*s:' "$FBE_DIR/fleet.log"
	fbe_expect "restart: killed mid-rollout (rolling, past ring 0)" "$FBE_DIR/restart.json" '.before.state == "rolling" and .before.ring_index >= 1'
	fbe_expect "restart: resumed in the same state" "$FBE_DIR/restart.json" '.after.state == "rolling" and .after.ring_index >= .before.ring_index'
	fbe_expect "restart: fb-fleet expectations held" "$f" '.ok == true'
	fbe_expect "restart: completed" "$f" '.rollout.state == "completed"'
	fbe_expect "restart: no false halt" "$f" '.false_halts == 0'
	fbe_server_stop
}

# ---- gate v2 rehearsals (issue 14) -------------------------------------------
# They need a server with the gate v2 (holdout, two-sample test, platform
# segments, watching, crash attribution): the scenarios send platform facts,
# faulting_channel and the v2 policy keys, which the first server refuses.
# Not run by make test until then; by hand: tests/e2e/rehearse.sh BUILD 3000
# one_percent segment concurrent latent.

# 8. A 1 % crasher (10x the 0.1 % background): halted before GA.
rehearse_one_percent() {
	fbe_setup one_percent --restart_grace_s=0
	fbe_run one_percent one_percent.json "$1"
	local f="$FBE_DIR/summary.json"
	fbe_expect "one_percent: halted" "$f" '.rollout.state == "halted" or .rollout.state == "reverted"'
	fbe_expect "one_percent: before leaving the early ring" "$f" '.rollout.ring_index <= 1'
	fbe_expect "one_percent: exposure within canary + early" "$f" '.exposure_under_test <= .rings[0].agents + .rings[1].agents'
	fbe_expect "one_percent: the halt saw crash reports" "$f" '.halt_inputs.crashed > 0'
	fbe_expect "one_percent: nobody runs it at the end" "$f" '.on_bad_content == 0'
	fbe_server_stop
}

# 9. 50 % of one platform segment (5 % of the fleet) crash: halted in early
# at the latest, the reason names the segment, nobody else crashed.
rehearse_segment() {
	fbe_setup segment --restart_grace_s=0
	fbe_run segment segment.json "$1"
	local f="$FBE_DIR/summary.json"
	fbe_expect "segment: halted" "$f" '.rollout.state == "halted" or .rollout.state == "reverted"'
	fbe_expect "segment: before leaving the early ring" "$f" '.rollout.ring_index <= 1'
	fbe_expect "segment: exposure within canary + early" "$f" '.exposure_under_test <= .rings[0].agents + .rings[1].agents'
	fbe_expect "segment: the reason names the segment" "$f" '.rollout.state_reason | test("19045")'
	fbe_expect "segment: ring 0 held the segment" "$f" '.segments.os_build["19045"].agents >= 5'
	fbe_expect "segment: only 19045 crashed on the file" "$f" '.segments.os_build["22631"].content_crashed == 0 and .segments.os_build["19045"].content_crashed > 0'
	fbe_server_stop
}

# 10. Two channels at once, one bad: only the bad one halted.
rehearse_concurrent() {
	fbe_setup concurrent --restart_grace_s=0
	fbe_content "$FBE_WORLD" "$FBE_CONTENT/c292/base.json" 292 1
	fbe_content "$FBE_WORLD" "$FBE_CONTENT/c292/next.json" 292 2
	fbe_run concurrent concurrent.json "$1"
	local f="$FBE_DIR/summary.json"
	fbe_expect "concurrent: the good one completed" "$f" '.rollouts[0].rollout.state == "completed" and .rollouts[0].false_halts == 0'
	fbe_expect "concurrent: the good one reached the whole fleet" "$f" '.rollouts[0].exposure_under_test == .agents - .fleet.dead'
	fbe_expect "concurrent: the bad one halted" "$f" '.rollouts[1].rollout.state == "halted" or .rollouts[1].rollout.state == "reverted"'
	fbe_expect "concurrent: the bad one stayed in ring 0" "$f" '.rollouts[1].exposure_under_test <= .rings[0].agents'
	fbe_expect "concurrent: hosts crashed while running the good file, none because of it" "$f" \
		'.rollouts[0].totals.crashed > 0 and .rollouts[0].totals.content_crashed == 0'
	fbe_server_stop
}

# 11. A latent crasher (crashes start after the last promotion): halted in
# the watch window and reverted fleet-wide.
rehearse_latent() {
	fbe_setup latent --restart_grace_s=0
	fbe_run latent latent.json "$1"
	local f="$FBE_DIR/summary.json"
	fbe_expect "latent: halted" "$f" '.rollout.state == "halted" or .rollout.state == "reverted"'
	fbe_expect "latent: in the watch window after the last promotion" "$f" \
		'(.rollout.states_seen | index("watching")) != null and .rollout.ring_index == (.rings | length) - 1'
	fbe_expect "latent: reverted fleet-wide" "$f" '.on_bad_content == 0 and .exposed_not_on_last_known_good == 0'
	fbe_server_stop
}

# ---- health signals (issue 17) -----------------------------------------------
# The scenarios' health section makes every heartbeat carry a health object
# (server/PROTOCOL.md, "Health (optional)"); the server refuses a malformed
# one with 400, so no heartbeat error means every one was accepted (202).
# The server learns a host's normal count signals in 5 heartbeats instead of
# 20 (--signal_warmup=5): the baseline phase of a small rehearsal is short.

# fbe_degraded SHA OUT: agents with a degraded event per signal, on content
# SHA and on any other content, as {"on_file": {signal: n}, "elsewhere": {...}}.
fbe_degraded() {
	psql "$FBE_DB" -qXAt -v sha="$1" >"$2" <<'SQL'
SELECT json_build_object(
  'on_file', (SELECT coalesce(json_object_agg(sig, n), '{}') FROM (
     SELECT details->>'signal' AS sig, count(DISTINCT agent_id) AS n FROM events
     WHERE kind = 'degraded' AND content_sha256 = :'sha' GROUP BY 1) a),
  'elsewhere', (SELECT coalesce(json_object_agg(sig, n), '{}') FROM (
     SELECT details->>'signal' AS sig, count(DISTINCT agent_id) AS n FROM events
     WHERE kind = 'degraded' AND content_sha256 <> :'sha' GROUP BY 1) b))
SQL
}

# 12. A good file under the noise of every health signal: completed, no
# false halt, every heartbeat with health accepted.
rehearse_health_noise() {
	fbe_setup health_noise --restart_grace_s=0 --signal_warmup=5
	fbe_run health_noise health_noise.json "$1"
	local f="$FBE_DIR/summary.json"
	fbe_expect "health_noise: completed" "$f" '.rollout.state == "completed"'
	fbe_expect "health_noise: no false halt" "$f" '.false_halts == 0'
	fbe_expect "health_noise: every heartbeat carried health" "$f" \
		'.fleet.health.heartbeats == .fleet.requests.heartbeat and .fleet.health.heartbeats > 0'
	fbe_expect "health_noise: every heartbeat accepted (202)" "$f" '.fleet.request_errors.heartbeat == 0'
	fbe_degraded "$(jq -r .uploads.good.sha256 "$f")" "$FBE_DIR/degraded.json"
	echo "health_noise: degraded agents per signal: $(cat "$FBE_DIR/degraded.json")"
	fbe_server_stop
}

# 13-16. rehearse_health_bad NAME LABEL AGENTS: a file with one health
# behaviour (health_cpu, health_leak, health_fp, health_errors) is halted
# before it leaves early with LABEL (the signal, as the gate names it) first
# in the reason; the server's degraded hosts are on the file, not on the
# baseline.
rehearse_health_bad() {
	local name=$1 label=$2
	fbe_setup "$name" --restart_grace_s=0 --signal_warmup=5
	fbe_run "$name" "$name.json" "$3"
	local f="$FBE_DIR/summary.json"
	fbe_expect "$name: halted" "$f" '.rollout.state == "halted" or .rollout.state == "reverted"'
	fbe_expect "$name: before leaving the early ring" "$f" '.rollout.ring_index <= 1'
	fbe_expect "$name: exposure within canary + early" "$f" '.exposure_under_test <= .rings[0].agents + .rings[1].agents'
	fbe_expect "$name: the reason names $label first" "$f" \
		".rollout.state_reason | startswith(\"HALT: $label:\")"
	fbe_expect "$name: every heartbeat accepted (202)" "$f" \
		'.fleet.request_errors.heartbeat == 0 and .fleet.health.heartbeats == .fleet.requests.heartbeat'
	fbe_degraded "$(jq -r .uploads.bad.sha256 "$f")" "$FBE_DIR/degraded.json"
	echo "$name: degraded agents per signal: $(cat "$FBE_DIR/degraded.json"); behaviour showed on: $(jq -c .fleet.health.agents "$f")"
	fbe_expect "$name: degraded hosts on the file only" "$FBE_DIR/degraded.json" \
		'(.on_file | length) > 0 and ([.elsewhere[]] | add // 0) <= 1'
	if [ "$name" = health_leak ]; then
		fbe_expect "$name: only os_build 19045 leaked" "$f" \
			'.fleet.health.agents.memory_leak > 0 and .fleet.health.agents.memory_leak <= .segments.os_build["19045"].applied'
	fi
	fbe_server_stop
}

# ---- tenants and customer content policies (issue 18) --------------------------
# Each tenant owns a share of every ring, enrolled through enrollment tokens
# naming it; fb-fleet creates the tenants (default_mode early or ga) and
# PUTs the delayed policy before the baseline and the paused one once the
# baseline is GA (clients/fleet/README.md, "Tenants").

# fbe_tenant_agents SUMMARY OUT: the agents per tenant as the server lists
# them (GET /v1/agents, "tenant") and as fb-fleet enrolled them, as
# {"server": {tenant: n}, "fleet": {tenant: n}}, in OUT.
fbe_tenant_agents() {
	curl -fsS -H "Authorization: Bearer $FBE_TOKEN" "http://127.0.0.1:$FBE_PORT/v1/agents?limit=10000" |
		jq -c '[.agents[] | .tenant // "none"] | group_by(.) | map({(.[0]): length}) | add' >"$2.server"
	jq -c --slurpfile srv "$2.server" '{server: $srv[0], fleet: (.tenants | map_values(.agents))}' "$1" >"$2"
	echo "agents per tenant: $(cat "$2")"
}

# 17. Three tenants (early, ga, delayed) and a Channel-File-291 file: halted
# in canary; only the early tenant's canary hosts ever applied it.
rehearse_tenants_cf291() {
	fbe_setup tenants_cf291 --restart_grace_s=0
	fbe_run tenants_cf291 tenants_cf291.json "$1"
	local f="$FBE_DIR/summary.json"
	fbe_expect "tenants_cf291: halted (or already reverted) in ring 0" "$f" \
		'(.rollout.state == "halted" or .rollout.state == "reverted") and .rollout.ring_index == 0'
	fbe_expect "tenants_cf291: the early tenant's canary hosts applied it" "$f" \
		'.tenants.acme.applied_by_ring.canary > 0 and .tenants.acme.applied.bad == .tenants.acme.applied_by_ring.canary'
	fbe_expect "tenants_cf291: nobody else did (ga and delayed tenants untouched)" "$f" \
		'.tenants.globex.applied.bad == 0 and .tenants.initech.applied.bad == 0 and .exposure_under_test == .tenants.acme.applied.bad'
	fbe_expect "tenants_cf291: every tenant back on (or still on) the baseline" "$f" \
		'[.tenants[] | .running.base == .live] | all'
	fbe_tenant_agents "$f" "$FBE_DIR/agents.json"
	fbe_expect "tenants_cf291: the server has each tenant's agents" "$FBE_DIR/agents.json" \
		'.server == .fleet'
	fbe_server_stop
}

# 18. Four tenants (early, ga, delayed, paused) and a good file: completed;
# the delayed tenant gets it only its delay after completion, the paused
# tenant never.
rehearse_tenants_good() {
	fbe_setup tenants_good --restart_grace_s=0
	fbe_run tenants_good tenants_good.json "$1"
	local f="$FBE_DIR/summary.json"
	fbe_expect "tenants_good: completed, no false halt" "$f" '.rollout.state == "completed" and .false_halts == 0'
	fbe_expect "tenants_good: the early and ga tenants run it" "$f" \
		'.tenants.acme.running.good == .tenants.acme.live and .tenants.globex.running.good == .tenants.globex.live'
	# two bakes of 6 s from the canary's start, less a poll interval (2 s) of acme's lag and 1 s
	fbe_expect "tenants_good: the ga tenant got it two bakes after the early one" "$f" \
		'.tenants.globex.first_apply_after_end_s - .tenants.acme.first_apply_after_end_s >= 9'
	fbe_expect "tenants_good: the delayed tenant not before completion + delay" "$f" \
		'.tenants.initech.first_apply_after_end_s >= .tenants.initech.delay_s - 1'
	fbe_expect "tenants_good: the delayed tenant after it" "$f" '.tenants.initech.running.good == .tenants.initech.live'
	fbe_expect "tenants_good: the paused tenant never, still on the baseline" "$f" \
		'.tenants.umbrella.applied.good == 0 and .tenants.umbrella.running.base == .tenants.umbrella.live'
	fbe_tenant_agents "$f" "$FBE_DIR/agents.json"
	fbe_expect "tenants_good: the server has each tenant's agents" "$FBE_DIR/agents.json" \
		'.server == .fleet'
	fbe_server_stop
}
