# bench/capacity.sh's results: the snapshots ($idle0, $idle, $enr, $w0, $w1,
# $r0, $fin, each a one-element array, [null] when not taken) and the fleet's
# summary into bench/capacity-results.json, with the capacity model of
# deploy/README.md beside every figure it predicts and a few report lines.

# The model's per-request figures (deploy/README.md, "Capacity model"),
# as they stood before this check.
def model: {
  firebreakd_us_per_heartbeat: [17, 26], firebreakd_us_per_poll: 17,
  postgres_us_per_heartbeat: [15, 20],
  haproxy_us_per_request: [100, 125],
  replica_bytes_per_agent: 10,
  heartbeat_visible_ms: 5000
};
def agent_routes: ["GET /v1/poll", "POST /v1/heartbeat", "POST /v1/events", "POST /v1/enroll",
  "GET /v1/blobs/{sha256}", "GET /v1/root"];
def r1: . * 10 | round / 10;
def r2: . * 100 | round / 100;
def r3: . * 1000 | round / 1000;

# requests by route (all statuses) of one replica's metrics; of all replicas
def routes_of($m): $m.req | map_values(add);
def sum_objs: reduce .[] as $o ({}; reduce ($o | to_entries[]) as $e (.; .[$e.key] += $e.value));
def all_routes($s): [$s.metrics[] | routes_of(.)] | sum_objs;
def minus($a; $b): $a | with_entries(.value -= ($b[.key] // 0));
def agent_sum($r): [agent_routes[] as $k | $r[$k] // 0] | add;
# server-side latency from the cumulative histogram buckets: the upper edge
# of the bucket where the quantile falls
def hist_q($h; $q): ($h // {} | to_entries | map({le: .key, n: .value})
  | map(.le |= (if . == "+Inf" then 1e9 else tonumber end)) | sort_by(.le)) as $b
  | ($b[-1].n // 0) as $n | if $n == 0 then null else
    ([$b[] | select(.n >= $q * $n)][0].le // null | if . then . * 1000 else null end) end;
def lat_delta($a; $b; $route): [range(0; 3) as $i
  | ($b.metrics[$i].lat[$route] // {}) as $y | ($a.metrics[$i].lat[$route] // {}) as $x
  | $y | with_entries(.value -= ($x[.key] // 0))] | sum_objs;

# Everything between two snapshots; $idle: the cores each process used with
# no agent (null: none), taken out of the "net" figures. PostgreSQL's CPU
# is without the visibility sampler's session.
def window($a; $b; $idle):
  if $a == null or $b == null then null else
  (($b.t - $a.t) / 1000) as $secs
  | minus(all_routes($b); all_routes($a)) as $req
  | agent_sum($req) as $areq
  | ($req["POST /v1/heartbeat"] // 0) as $hb
  | ($req["GET /v1/poll"] // 0) as $poll
  | ([range(0; 3) as $i | minus($b.metrics[$i].req["GET /v1/poll"] // {}; $a.metrics[$i].req["GET /v1/poll"] // {})] | sum_objs) as $pst
  | ($b.cpu_s | with_entries(.value -= ($a.cpu_s[.key] // 0))
     | .postgres -= (.postgres_sampler // 0)
     | if $b.cpu_s.fleet == 0 then .fleet = null else . end) as $cpu
  | ($cpu.fb0 + $cpu.fb1 + $cpu.fb2) as $fbcpu
  | {seconds: ($secs | r1),
     requests_per_s: ($req | with_entries(select(.key | IN(agent_routes[]))) | map_values(. / $secs | r1)
                      + {agent_requests: ($areq / $secs | r1)}),
     requests: $req, poll_status: $pst,
     poll_not_modified_share: (if $poll > 0 then (($pst["304"] // 0) / $poll | r3) else null end),
     cpu_s: ($cpu | map_values(if . then r2 else null end)),
     cores: ($cpu | map_values(if . then . / $secs | r3 else null end)),
     per_replica: [range(0; 3) as $i | ("fb" + ($i | tostring)) as $k
       | agent_sum(minus(routes_of($b.metrics[$i]); routes_of($a.metrics[$i]))) as $n
       | {agent_requests: $n, cpu_s: ($cpu[$k] | r2),
          us_per_agent_request: (if $n > 0 then $cpu[$k] / $n * 1e6 | r1 else null end)}],
     us_per_agent_request: (if $areq > 0 then {
        firebreakd: ($fbcpu / $areq * 1e6 | r1), haproxy: ($cpu.haproxy / $areq * 1e6 | r1),
        postgres: ($cpu.postgres / $areq * 1e6 | r1),
        fleet: (if $cpu.fleet then $cpu.fleet / $areq * 1e6 | r1 else null end)} else null end),
     net_us_per_agent_request: (if $areq > 0 and $idle then
        ({firebreakd: ($fbcpu - ($idle.fb0 + $idle.fb1 + $idle.fb2) * $secs), haproxy: ($cpu.haproxy - $idle.haproxy * $secs),
          postgres: ($cpu.postgres - $idle.postgres * $secs)} | map_values(. / $areq * 1e6 | r1)) else null end),
     postgres_us_per_heartbeat: (if $hb > 0 then $cpu.postgres / $hb * 1e6 | r1 else null end),
     postgres_net_us_per_heartbeat: (if $hb > 0 and $idle then ($cpu.postgres - $idle.postgres * $secs) / $hb * 1e6 | r1 else null end),
     wal_bytes_per_heartbeat: (if $hb > 0 then ($b.wal_bytes - $a.wal_bytes) / $hb | round else null end),
     wal_bytes_per_s: (($b.wal_bytes - $a.wal_bytes) / $secs | round),
     # what the model predicts firebreakd spent on this window's heartbeats and polls
     firebreakd_model_cpu_s: [($hb * model.firebreakd_us_per_heartbeat[0] + $poll * model.firebreakd_us_per_poll) / 1e6 | r2,
                              ($hb * model.firebreakd_us_per_heartbeat[1] + $poll * model.firebreakd_us_per_poll) / 1e6 | r2],
     postgres_model_cpu_s: [($hb * model.postgres_us_per_heartbeat[0] / 1e6 | r2), ($hb * model.postgres_us_per_heartbeat[1] / 1e6 | r2)],
     haproxy_model_cpu_s: [($areq * model.haproxy_us_per_request[0] / 1e6 | r2), ($areq * model.haproxy_us_per_request[1] / 1e6 | r2)],
     server_latency_ms: {poll: (lat_delta($a; $b; "GET /v1/poll") as $h | {p50: hist_q($h; 0.5), p99: hist_q($h; 0.99)}),
                         heartbeat: (lat_delta($a; $b; "POST /v1/heartbeat") as $h | {p50: hist_q($h; 0.5), p99: hist_q($h; 0.99)})},
     haproxy: ($b.haproxy | with_entries(select(.key | test("^(agents|agent_api|operators|operator_api)/")))
               | with_entries(.key as $k | .value |= with_entries(.value -= ($a.haproxy[$k][.key] // 0)))),
     load_average: [$a.load, $b.load]} end;

($idle0[0]) as $I0 | ($idle[0]) as $I | ($enr[0]) as $E | ($w0[0]) as $W0 | ($w1[0]) as $W1 | ($r0[0]) as $R0 | ($fin[0]) as $Z
| ($sum[0]) as $S
| window($I0; $I; null) as $idlew
| ($idlew.cores // null) as $ic
| window($W0; $W1; $ic) as $steady
| window($R0; $Z; $ic) as $rollout
| (if $W1 then [range(0; 3) as $i | ("fb" + ($i | tostring)) as $k
    | {rss_kb_idle: $I.rss_kb[$k], rss_kb_steady: $W1.rss_kb[$k], rss_kb_end: $Z.rss_kb[$k],
       bytes_per_agent: (($W1.rss_kb[$k] - $I.rss_kb[$k]) * 1024 / $agents | r1)}] else null end) as $mem
| {date: $date, commit: $commit,
   machine: {cpus: $ncpu, cpu_model: $cpu, memory: $memtotal,
             placement: "no pinning: fb-fleet, three replicas, HAProxy and PostgreSQL share every core with each other and with other work on the machine"},
   versions: {haproxy: $haproxy, postgres: $pg, openssl: $openssl},
   setup: {agents: $agents, time_scale: $scale, heartbeat_s: (60 * $scale), poll_s: (300 * $scale), steady_s: $steady,
           fleet_inflight: $inflight, replicas: 3, replica_tls: ($replica_tls == 1), health: ($health == 1),
           scenario: (if $health == 1 then "bench/capacity.json (health and platform facts on, as fb-agent sends them)"
                      else "bench/capacity.json without its health section (platform facts on, no health object)" end),
           replicas_config: "firebreakd defaults: threads 2, db_pool 4, heartbeat_flush_ms 2000, controller_interval_ms 2000",
           haproxy: "deploy/haproxy/haproxy.cfg as shipped (TLS 1.3 on the agent endpoint, httplog to a file, checks every 2 s), maxconn 4000",
           postgres: "PostgreSQL 15, fsync on, shared_buffers 128MB, track_commit_timestamp on (for the visibility figure)"},
   model: model,
   fleet: {exit_status: $fleet_rc, seconds: $fleet_s, phases_s: $S.phases_s, ok: $S.ok,
           rollout: ($S.rollout // null | if . then {state, ring, ring_index, states_seen, state_reason} else null end),
           exposure_under_test: $S.exposure_under_test, false_halts: $S.false_halts,
           requests: $S.fleet.requests, request_errors: $S.fleet.request_errors, last_error: $S.fleet.last_error,
           crashes: $S.fleet.crashes, expectations: $S.expectations},
   enrollment: {agents: $agents, seconds: $S.phases_s.enroll,
                per_s: (if $S.phases_s.enroll then $agents / $S.phases_s.enroll | r1 else null end),
                window: window($I; $E; $ic)},
   idle: ($idlew | if . then {seconds, cores, requests} else null end),
   steady: ($steady + {
     heartbeat_visible_ms: {heartbeats: $vis[0], p50: $vis[1], p90: $vis[2], p99: $vis[3], max: $vis[4],
       how: "every 10 s: agents whose latest heartbeat was received 10-20 s before, commit time of the batch that wrote it minus the receive time"},
     newest_heartbeat_age_ms: {samples: $newest[0], p50: $newest[1], max: $newest[4],
       how: "every 10 s: now minus the newest last_seen_at in the database"},
     client_latency_ms: ($S.steady.latency_ms // null), client_rps: ($S.steady.rps // null),
     client_errors: ($S.steady.request_errors // null), fleet_heartbeat_lag_max_s: ($S.steady.heartbeat_lag_max_s // null),
     haproxy_log: $hapwin}),
   rollout: $rollout,
   memory: {replicas: $mem, haproxy_rss_kb: {idle: $I.rss_kb.haproxy, steady: $W1.rss_kb.haproxy},
            haproxy_idle_tls_connections: {held: $held, rss_kb_before: $hap_rss0, rss_kb_held: $hap_rss1,
              bytes_per_connection: (if $held > 0 then ($hap_rss1 - $hap_rss0) * 1024 / $held | round else null end),
              how: "fb-bench-setup hold: that many TLS 1.3 connections to the agent endpoint, one GET /v1/root each, then idle"},
            fleet_rss_kb: $W1.rss_kb.fleet,
            replicas_bytes_per_agent_total: (if $mem then ([$mem[].bytes_per_agent] | add | r1) else null end),
            postgres: ($sizes + {agents_bytes_per_agent: ($sizes.agents_bytes / $agents | round)})},
   gate_queries: ($slow + {how: "PostgreSQL's log of statements over 200 ms during the whole run: the controller's two queries per evaluation"}),
   haproxy_termination_states: $term,
   warnings: {per_replica: $warns, top: ($warntxt | split("\n") | map(select(length > 0)))}}
| . + {report: [
    "capacity check, \(.date), commit \(.commit): \($agents) agents, heartbeat every \(.setup.heartbeat_s) s, poll every \(.setup.poll_s) s, through HAProxy to 3 replicas",
    "fleet: exit \(.fleet.exit_status) after \(.fleet.seconds) s; phases \(.fleet.phases_s // {} | tojson); rollout \(.fleet.rollout.state // "-") in ring \(.fleet.rollout.ring // "-")",
    "enrollment: \(.enrollment.per_s // "-") agents/s",
    (if .steady.seconds then
      "steady \(.steady.seconds) s: \(.steady.requests_per_s | tojson) req/s, polls 304 \(.steady.poll_not_modified_share)",
      "  cores: \(.steady.cores | tojson)",
      "  µs per agent request: \(.steady.us_per_agent_request | tojson), without the idle cost \(.steady.net_us_per_agent_request | tojson)",
      "  PostgreSQL µs per heartbeat \(.steady.postgres_us_per_heartbeat) (without the idle cost \(.steady.postgres_net_us_per_heartbeat)), WAL bytes per heartbeat \(.steady.wal_bytes_per_heartbeat)",
      "  idle cores: \(.idle.cores | tojson)",
      "  firebreakd CPU \(.steady.cpu_s.fb0 + .steady.cpu_s.fb1 + .steady.cpu_s.fb2 | r2) s, model \(.steady.firebreakd_model_cpu_s | tojson); PostgreSQL \(.steady.cpu_s.postgres) s, model \(.steady.postgres_model_cpu_s | tojson); HAProxy \(.steady.cpu_s.haproxy) s, model at most \(.steady.haproxy_model_cpu_s | tojson)",
      "  heartbeat visible (ms): \(.steady.heartbeat_visible_ms | tojson)",
      "  client latency (ms): poll \(.steady.client_latency_ms.poll | tojson), heartbeat \(.steady.client_latency_ms.heartbeat | tojson)",
      "  HAProxy Ta (ms): \(.steady.haproxy_log | tojson)",
      "  replica RSS bytes per agent: \([.memory.replicas[]?.bytes_per_agent] | tojson); HAProxy bytes per idle TLS connection \(.memory.haproxy_idle_tls_connections.bytes_per_connection)"
     else "steady: not reached" end),
    (if .rollout then "rollout \(.rollout.seconds) s: \(.rollout.requests_per_s | tojson) req/s; µs per agent request \(.rollout.us_per_agent_request | tojson)" else "rollout: not reached" end),
    "gate queries over 200 ms: \(.gate_queries | del(.how) | tojson)",
    "errors: fleet \(.fleet.request_errors | tojson), last \(.fleet.last_error // "-"); replica warnings \(.warnings.per_replica | tojson); HAProxy session ends \(.haproxy_termination_states | tojson)"
  ]}
