#!/usr/bin/env bash
# Cluster rehearsal: three replicas behind the shipped HAProxy configuration
# (TLS, agent and operator endpoints apart). A good file is rolled out while
# the replica that runs the controller is killed with SIGKILL once the
# rollout has left ring 0: another replica takes the lease over, the rollout
# completes, no false halt, and the agents never notice (HAProxy retries
# their idempotent requests on the survivors).
source "$(dirname "$0")/rehearsals.sh"
source "$(dirname "$0")/cluster.sh"

fbc_up kill --restart_grace_s=0
f="$FBE_DIR/summary.json"
status="$FBE_DIR/status.json"

# the endpoints are apart: no operator API on the agents' side, and TLS only
st=$(curl -sS --cacert "$FBC_CA" -o "$FBE_DIR/refused.json" -w '%{http_code}' -H "Authorization: Bearer $FBE_TOKEN" "$FBC_AGENT_URL/v1/rollouts")
fbc_json "$FBE_DIR/sep.json" "{\"status\": $st, \"body\": $(cat "$FBE_DIR/refused.json"), \"controller\": $(fbc_api /v1/controller)}"
fbe_expect "kill: the agent endpoint refuses the operator API (404 JSON)" "$FBE_DIR/sep.json" '.status == 404 and .body.error.code == "not_found"'
fbe_expect "kill: GET /v1/controller through the operator endpoint names a leader" "$FBE_DIR/sep.json" '.controller.leader != null and .controller.healthy == true'

fbc_fleet_bg good.json "$status" --agents "${FBE_AGENTS:-300}"
fbc_wait_status "$status" '.phase == "test" and .state == "rolling" and .ring_index >= 1' || true
old=$(fbc_leader)
epoch_before=$(fbc_api /v1/controller | jq .epoch)
echo "kill: rollout in $(jq -c '{state, ring_index}' "$status"); kill -9 of replica $old (the controller)"
t0=$(fbc_db_ms)
kill -9 "${FBC_PIDS[old]}"
took=$(fbc_wait_leader_not "$old" "$t0")
echo "kill: replica $(fbc_leader) took the controller over after $took ms"
wait "$FBC_FLEET"
grep -v '^fb-fleet: [0-9]*s:' "$FBE_DIR/fleet.log"
c=$(fbc_api /v1/controller)
fbc_json "$FBE_DIR/takeover.json" "{\"old\": ${old:-null}, \"took_ms\": $took, \"epoch_before\": $epoch_before, \"controller\": $c,
  \"retries\": $(fbc_stat agent_api wretr), \"redispatches\": $(fbc_stat agent_api wredis)}"
echo "kill: HAProxy agent_api retries $(fbc_stat agent_api wretr), redispatches $(fbc_stat agent_api wredis); fleet request errors $(jq .fleet.request_errors "$f")"
fbe_expect "kill: a leader was killed" "$FBE_DIR/takeover.json" '.old != null'
fbe_expect "kill: another replica took over (new epoch)" "$FBE_DIR/takeover.json" '.took_ms >= 0 and .controller.epoch > .epoch_before and .controller.healthy == true'
fbe_expect "kill: fb-fleet expectations held" "$f" '.ok == true'
fbe_expect "kill: completed" "$f" '.rollout.state == "completed"'
fbe_expect "kill: no false halt" "$f" '.false_halts == 0'
fbe_expect "kill: the whole fleet runs it" "$f" '.exposure_under_test == .agents - .fleet.dead'
fbe_summary_line
