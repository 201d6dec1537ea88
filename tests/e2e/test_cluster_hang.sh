#!/usr/bin/env bash
# Cluster rehearsal: a good file is rolled out through HAProxy while the
# replica that runs the controller hangs (SIGSTOP) for several leases once
# the rollout has left ring 0. Another replica takes the lease over within
# about one lease, the rollout completes without a false halt, and the hung
# replica, woken up (SIGCONT), makes no decision and writes nothing.
source "$(dirname "$0")/rehearsals.sh"
source "$(dirname "$0")/cluster.sh"

fbc_up hang --restart_grace_s=0
f="$FBE_DIR/summary.json"
status="$FBE_DIR/status.json"
hang_s=${FBC_HANG_S:-4}

fbc_fleet_bg good.json "$status" --agents "${FBE_AGENTS:-300}"
fbc_wait_status "$status" '.phase == "test" and .state == "rolling" and .ring_index >= 1' || true
old=$(fbc_leader)
e_old=$(fbc_api /v1/controller | jq .epoch)
lease_ms=$(fbc_api /v1/controller | jq .lease_ms)
echo "hang: rollout in $(jq -c '{state, ring_index}' "$status"); SIGSTOP of replica $old (the controller, epoch $e_old, lease $lease_ms ms) for ${hang_s}s"
t0=$(fbc_db_ms)
kill -STOP "${FBC_PIDS[old]}"
took=$(fbc_wait_leader_not "$old" "$t0")
e_new=$(psql "$FBE_DB" -qAtXc "SELECT epoch FROM controller_lease")
echo "hang: replica $(fbc_leader) took the controller over after $took ms (epoch $e_new)"
sleep "$hang_s"
rows_before=$(fbc_epoch_rows "$e_old")
kill -CONT "${FBC_PIDS[old]}"
sleep 3
rows_after=$(fbc_epoch_rows "$e_old")
late=$(psql "$FBE_DB" -qAtXc "SELECT count(*) FROM gate_evaluations WHERE controller_epoch = $e_old
	AND created_at > (SELECT acquired_at FROM controller_epochs WHERE epoch = $e_new)")
woken=$(curl -fsS -H "Authorization: Bearer $FBE_TOKEN" "http://127.0.0.1:${FBC_PORTS[old]}/v1/controller")
echo "hang: woken, the stale leader's epoch $e_old has $rows_before rows before SIGCONT, $rows_after after; $late evaluations after the takeover"
wait "$FBC_FLEET"
grep -v '^fb-fleet: [0-9]*s:' "$FBE_DIR/fleet.log"
echo "hang: HAProxy agent_api retries $(fbc_stat agent_api wretr), redispatches $(fbc_stat agent_api wredis); fleet request errors $(jq -c .fleet.request_errors "$f")"
fbc_json "$FBE_DIR/hang.json" "{\"old\": ${old:-null}, \"took_ms\": $took, \"lease_ms\": $lease_ms, \"e_old\": $e_old, \"e_new\": $e_new,
  \"rows_before\": $rows_before, \"rows_after\": $rows_after, \"late\": $late, \"woken\": $woken}"
fbe_expect "hang: the leader was hung" "$FBE_DIR/hang.json" '.old != null'
fbe_expect "hang: another replica took over within a lease and a second" "$FBE_DIR/hang.json" '.took_ms >= 0 and .took_ms <= .lease_ms + 1000 and .e_new > .e_old'
fbe_expect "hang: the woken stale leader wrote nothing" "$FBE_DIR/hang.json" '.rows_after == .rows_before and .late == 0'
fbe_expect "hang: the woken replica knows it does not lead" "$FBE_DIR/hang.json" '.woken.this_replica_leads == false and .woken.leader != .woken.this_replica'
fbe_expect "hang: fb-fleet expectations held" "$f" '.ok == true'
fbe_expect "hang: completed" "$f" '.rollout.state == "completed"'
fbe_expect "hang: no false halt" "$f" '.false_halts == 0'
fbe_summary_line
