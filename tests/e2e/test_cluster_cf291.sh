#!/usr/bin/env bash
# Cluster rehearsal: a Channel-File-291-shaped file (crashes every host that
# applies it) is rolled out through HAProxy while the replica that runs the
# controller is hung (SIGSTOP) from the moment the rollout starts. The
# replica that takes the lease over halts it in ring 0: exposure within ring
# 0, every exposed agent back on the last known good file; the hung replica,
# woken up, writes nothing.
source "$(dirname "$0")/rehearsals.sh"
source "$(dirname "$0")/cluster.sh"

fbc_up cf291 --restart_grace_s=0
f="$FBE_DIR/summary.json"
status="$FBE_DIR/status.json"

fbc_fleet_bg cf291.json "$status" --agents "${FBE_AGENTS:-300}"
fbc_wait_status "$status" '.phase == "test" and .rollout > 0' || true
old=$(fbc_leader)
e_old=$(fbc_api /v1/controller | jq .epoch)
t0=$(fbc_db_ms)
kill -STOP "${FBC_PIDS[old]}"
echo "cf291: rollout $(jq -c '{rollout, state, ring_index}' "$status") started; SIGSTOP of replica $old (the controller, epoch $e_old)"
took=$(fbc_wait_leader_not "$old" "$t0")
e_new=$(psql "$FBE_DB" -qAtXc "SELECT epoch FROM controller_lease")
echo "cf291: replica $(fbc_leader) took the controller over after $took ms (epoch $e_new)"
# keep it hung until the halt (or the fleet's end)
fbc_wait_status "$status" '.state == "halted" or .state == "reverted"' || true
rows_before=$(fbc_epoch_rows "$e_old")
kill -CONT "${FBC_PIDS[old]}"
wait "$FBC_FLEET"
grep -v '^fb-fleet: [0-9]*s:' "$FBE_DIR/fleet.log"
rows_after=$(fbc_epoch_rows "$e_old")
halted_by=$(psql "$FBE_DB" -qAtXc "SELECT coalesce(max(controller_epoch), 0) FROM gate_evaluations WHERE decision = 'HALT'")
fbc_json "$FBE_DIR/hang.json" "{\"old\": ${old:-null}, \"took_ms\": $took, \"e_old\": $e_old, \"e_new\": $e_new,
  \"rows_before\": $rows_before, \"rows_after\": $rows_after, \"halted_by\": $halted_by}"
fbe_expect "cf291: the leader was hung at the start" "$FBE_DIR/hang.json" '.old != null and .e_new > .e_old'
fbe_expect "cf291: halted by the new leader" "$FBE_DIR/hang.json" '.halted_by == .e_new'
fbe_expect "cf291: the woken stale leader wrote nothing" "$FBE_DIR/hang.json" '.rows_after == .rows_before'
fbe_expect "cf291: halted (or already reverted)" "$f" '.rollout.state == "halted" or .rollout.state == "reverted"'
fbe_expect "cf291: stopped in ring 0" "$f" '.rollout.ring_index == 0'
fbe_expect "cf291: exposure within ring 0" "$f" '.exposure_under_test <= .rings[0].agents and .exposure_under_test > 0'
fbe_expect "cf291: nobody runs the bad file" "$f" '.on_bad_content == 0'
fbe_expect "cf291: every exposed agent on the last known good" "$f" '.exposed_not_on_last_known_good == 0'
fbe_summary_line
