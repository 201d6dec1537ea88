#!/usr/bin/env bash
# Cluster rehearsal: a good file is rolled out through HAProxy to three
# replicas while PostgreSQL is restarted (down for a second) once the rollout
# has left ring 0. The replicas reconnect, one of them leads again, the
# rollout completes, no false halt.
source "$(dirname "$0")/rehearsals.sh"
source "$(dirname "$0")/cluster.sh"

fbc_up pgrestart --restart_grace_s=0
f="$FBE_DIR/summary.json"
status="$FBE_DIR/status.json"

fbc_fleet_bg good.json "$status" --agents "${FBE_AGENTS:-300}"
fbc_wait_status "$status" '.phase == "test" and .state == "rolling" and .ring_index >= 1' || true
e_old=$(psql "$FBE_DB" -qAtXc "SELECT epoch FROM controller_lease")
echo "pgrestart: rollout in $(jq -c '{state, ring_index}' "$status"); restarting PostgreSQL"
FB_PGPORT=$FBT_PGPORT "$FB_SRC/tests/pg.sh" stop "$FBT_PGDIR"
sleep 1
FB_PGPORT=$FBT_PGPORT "$FB_SRC/tests/pg.sh" start "$FBT_PGDIR" >/dev/null
for _ in $(seq 200); do [ -n "$(fbc_leader)" ] && break; sleep 0.1; done
echo "pgrestart: replica $(fbc_leader) leads after the restart"
wait "$FBC_FLEET"
grep -v '^fb-fleet: [0-9]*s:' "$FBE_DIR/fleet.log"
echo "pgrestart: fleet request errors $(jq -c .fleet.request_errors "$f")"
fbc_json "$FBE_DIR/after.json" "{\"leader\": \"$(fbc_leader)\", \"e_old\": $e_old, \"controller\": $(fbc_api /v1/controller)}"
fbe_expect "pgrestart: a replica leads after the restart" "$FBE_DIR/after.json" '.leader != "" and .controller.healthy == true'
fbe_expect "pgrestart: fb-fleet expectations held" "$f" '.ok == true'
fbe_expect "pgrestart: completed" "$f" '.rollout.state == "completed"'
fbe_expect "pgrestart: no false halt" "$f" '.false_halts == 0'
fbe_summary_line
