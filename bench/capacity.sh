#!/usr/bin/env bash
# The capacity check (bench/README.md, "Capacity"): N simulated agents
# (fb-fleet, default 100,000) through the shipped HAProxy configuration to
# three firebreakd replicas on one PostgreSQL, heartbeating every 60 s and
# polling every 300 s as deploy/README.md's capacity model assumes; a
# measured steady state, then a good file rolled out ring by ring. What each
# process spent (CPU from /proc/PID/stat, memory), the requests by kind (the
# replicas' /metrics), heartbeat visibility (PostgreSQL's commit timestamps
# against each heartbeat's receive time), latencies, errors.
#   bench/capacity.sh BUILD     (by hand, about 20 minutes; not in make test)
# Knobs: FB_CAP_AGENTS (100000), FB_CAP_TIME_SCALE (1: the scenario's 60 s /
# 300 s; 0.1 makes a quick trial of 10,000 agents at the same request rate),
# FB_CAP_STEADY_S (150), FB_CAP_INFLIGHT (64), FB_CAP_REPLICA_TLS (0; 1:
# TLS from HAProxy to the replicas), FB_CAP_HEALTH (1; 0: heartbeats
# without the health object), FB_CAP_IDLE_S (30: the servers measured with
# no agent first), FB_CAP_MAX_S (1800, the fleet is stopped after that),
# FB_CAP_HOLD (3000: idle TLS connections held open against HAProxy at the
# end, for its memory per connection; 0: none), FB_CAP_OUT
# (bench/capacity-results.json).
set -euo pipefail

BUILD=${1:-build/bench}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=$SRC/$BUILD/bin
case $BUILD in /*) BIN=$BUILD/bin ;; esac
AGENTS=${FB_CAP_AGENTS:-100000}
SCALE=${FB_CAP_TIME_SCALE:-1}
STEADY=${FB_CAP_STEADY_S:-150}
INFLIGHT=${FB_CAP_INFLIGHT:-64}
REPLICA_TLS=${FB_CAP_REPLICA_TLS:-0}
HEALTH=${FB_CAP_HEALTH:-1}
HOLD=${FB_CAP_HOLD:-3000}
IDLE_S=${FB_CAP_IDLE_S:-30}
MAX_S=${FB_CAP_MAX_S:-1800}
OUT=${FB_CAP_OUT:-$SRC/bench/capacity-results.json}
SCN=$SRC/bench/capacity.json

for tool in haproxy openssl psql curl jq awk pgrep; do
	command -v "$tool" >/dev/null || { echo "capacity: '$tool' is missing (run make deps)" >&2; exit 1; }
done
for b in firebreakd fb-fleet fb-sign fbctl fb-bench-setup; do
	[ -x "$BIN/$b" ] || { echo "capacity: build $BUILD first ($b)" >&2; exit 1; }
done
[ "$STEADY" -ge 30 ] || { echo "capacity: FB_CAP_STEADY_S must be at least 30" >&2; exit 1; }

tmp=$(mktemp -d /tmp/fb-capacity.XXXXXX)
chmod 755 "$tmp"
mkdir -p "$tmp/snap"
if [ "$HEALTH" = 0 ]; then
	jq 'del(.health)' "$SCN" >"$tmp/scenario.json"
	SCN=$tmp/scenario.json
fi
export FB_BIN=$BIN FB_SRC=$SRC FBT_WORK=$tmp
# shellcheck source=../tests/e2e/lib.sh
source "$SRC/tests/e2e/lib.sh"
# shellcheck source=../tests/e2e/cluster.sh
source "$SRC/tests/e2e/cluster.sh"
FLEET= SAMPLER_PID=
cleanup() {
	set +e
	[ -n "$FLEET" ] && kill "$FLEET" 2>/dev/null
	[ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
	fbc_down
	"$SRC/tests/pg.sh" stop "$tmp/pg" >/dev/null 2>&1
	if [ -z "${FB_CAP_KEEP:-}" ]; then rm -rf "$tmp"; else echo "capacity: kept $tmp" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { printf 'capacity: %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
HZ=$(getconf CLK_TCK)
: >"$tmp/visible.txt"
: >"$tmp/newest.txt"

# --- PostgreSQL: fsync on, commit timestamps on (heartbeat visibility) -------
say "PostgreSQL in $tmp/pg"
export FB_PGPORT=$(fbe_free_port)
"$SRC/tests/pg.sh" start "$tmp/pg" >/dev/null
PGADMIN=$("$SRC/tests/pg.sh" env "$tmp/pg")
psql "$PGADMIN" -qXc "ALTER SYSTEM SET track_commit_timestamp = on" >/dev/null
# statements slower than 200 ms in the log (the controller's gate queries)
psql "$PGADMIN" -qXc "ALTER SYSTEM SET log_min_duration_statement = 200" >/dev/null
"$SRC/tests/pg.sh" restart "$tmp/pg" >/dev/null
psql "$PGADMIN" -qXc "CREATE DATABASE firebreak" >/dev/null
DB="${PGADMIN% dbname=postgres} dbname=firebreak"
sql() { psql "$DB" -XAtq -v ON_ERROR_STOP=1 "$@"; }
"$BIN/firebreakd" migrate --db="$DB" >"$tmp/migrate.log" 2>&1 || { cat "$tmp/migrate.log" >&2; exit 1; }

# --- trust, uploads, certificates, three replicas with production clocks ----
fbe_world "$tmp/world"
fbe_contents "$tmp/world" "$tmp/content" 291
fbc_tls "$tmp/tls"
FBE_WORLD=$tmp/world
FBE_SERVER_FLAGS=(--assignment_ttl=3600) # the defaults: heartbeat_flush_ms 2000, controller 2000 ms
tls_flags=() CURL_REPLICA=() SCHEME=http
if [ "$REPLICA_TLS" = 1 ]; then
	tls_flags=(--tls_cert="$tmp/tls/replica.pem" --tls_key="$tmp/tls/replica.key")
	FBE_SERVER_CA=$tmp/tls/ca.pem FBC_REPLICA_TLS=1 CURL_REPLICA=(--cacert "$tmp/tls/ca.pem") SCHEME=https
fi
FBC_PIDS=() FBC_PORTS=()
for i in 0 1 2; do
	FBC_PORTS[i]=$(fbe_free_port)
	fbe_server_start "$tmp/world" "$DB" "${FBC_PORTS[i]}" "$tmp/firebreakd-$i.log" "${tls_flags[@]}"
	FBC_PIDS[i]=$FBE_SERVER_PID
done
FBE_SERVER_PID=
say "replicas on ${FBC_PORTS[*]} ($SCHEME), pids ${FBC_PIDS[*]}"
FBC_CHECK_INTER=2s FBC_AGENT_TIMEOUT=5s fbc_haproxy_start "$tmp"
say "HAProxy (deploy/haproxy/haproxy.cfg) agents $FBC_AGENT_URL, operators $FBC_ADMIN_URL, pid $FBC_HAPROXY_PID"
TOKEN=$("$BIN/firebreakd" token create --role admin --name capacity --db="$DB" 2>/dev/null)
PM=$(head -n 1 "$tmp/pg/data/postmaster.pid")

# --- sampling ------------------------------------------------------------------
# CPU: user + system clock ticks; PostgreSQL: every live process of the
# cluster plus what the postmaster reaped (cutime, cstime).
ticks() {
	local v
	v=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }')
	echo "${v:-0}"
}
pg_ticks() {
	local t p
	t=$(sed 's/^.*) //' "/proc/$PM/stat" | awk '{ print $12 + $13 + $14 + $15 }')
	for p in $(pgrep -P "$PM"); do t=$((t + $(ticks "$p"))); done
	echo "$t"
}
rss() {
	local v
	v=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null)
	echo "${v:-0}"
}
# one replica's /metrics as {"req": {route: {status: n}}, "lat": {route: {le: n}}}
metrics() {
	curl -fsS "${CURL_REPLICA[@]}" "$SCHEME://127.0.0.1:$1/metrics" | awk '
		function between(s, a, b,   i, j) { i = index(s, a); if (!i) return ""; s = substr(s, i + length(a)); j = index(s, b); return substr(s, 1, j - 1) }
		/^firebreak_http_requests_total\{/ { print "req\t" between($0, "route=\"", "\"") "\t" between($0, "status=\"", "\"") "\t" $NF }
		/^firebreak_http_request_duration_seconds_bucket\{/ { print "lat\t" between($0, "route=\"", "\"") "\t" between($0, "le=\"", "\"") "\t" $NF }' |
		jq -R -s 'split("\n") | map(select(length > 0) | split("\t")) |
			reduce .[] as $l ({req: {}, lat: {}}; .[$l[0]][$l[1]][$l[2]] = ($l[3] | tonumber))'
}
haproxy_stats() {
	curl -fsS "http://127.0.0.1:$FBC_STATS_PORT/;csv" | jq -R -s '
		split("\n") | map(select(length > 0) | split(",")) | (.[0] | map(ltrimstr("# "))) as $h |
		[.[1:][] | select(.[1] == "BACKEND" or .[1] == "FRONTEND") | [$h, .] | transpose | map({(.[0]): .[1]}) | add] |
		map({key: "\(.pxname)/\(.svname)", value: {stot: (.stot | tonumber? // 0), wretr: (.wretr | tonumber? // 0),
			wredis: (.wredis | tonumber? // 0), eresp: (.eresp | tonumber? // 0), econ: (.econ | tonumber? // 0),
			hrsp_5xx: (.hrsp_5xx | tonumber? // 0), ereq: (.ereq | tonumber? // 0)}}) | from_entries'
}
# snap NAME: everything at one moment, to $tmp/snap/NAME.json
snap() {
	local m=() i
	for i in 0 1 2; do m+=("$(metrics "${FBC_PORTS[i]}")"); done
	jq -n --argjson t "$(now_ms)" --argjson hz "$HZ" \
		--argjson fb0 "$(ticks "${FBC_PIDS[0]}")" --argjson fb1 "$(ticks "${FBC_PIDS[1]}")" \
		--argjson fb2 "$(ticks "${FBC_PIDS[2]}")" --argjson hap "$(ticks "$FBC_HAPROXY_PID")" \
		--argjson pg "$(pg_ticks)" --argjson fleet "$( [ -n "$FLEET" ] && ticks "$FLEET" || echo 0)" \
		--argjson sampler "$( [ -n "${SAMPLER_BACKEND:-}" ] && ticks "$SAMPLER_BACKEND" || echo 0)" \
		--argjson r0 "$(rss "${FBC_PIDS[0]}")" --argjson r1 "$(rss "${FBC_PIDS[1]}")" \
		--argjson r2 "$(rss "${FBC_PIDS[2]}")" --argjson rh "$(rss "$FBC_HAPROXY_PID")" \
		--argjson rf "$( [ -n "$FLEET" ] && rss "$FLEET" || echo 0)" \
		--argjson wal "$(psql "$PGADMIN" -XAtqc "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")" \
		--argjson m0 "${m[0]}" --argjson m1 "${m[1]}" --argjson m2 "${m[2]}" --argjson hs "$(haproxy_stats)" \
		--argjson loglines "$(wc -l <"$tmp/haproxy.log")" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '
		{t: $t, load: $load, cpu_s: ({fb0: $fb0, fb1: $fb1, fb2: $fb2, haproxy: $hap, postgres: $pg, fleet: $fleet,
		  postgres_sampler: $sampler} | map_values(. / $hz)),
		 rss_kb: {fb0: $r0, fb1: $r1, fb2: $r2, haproxy: $rh, fleet: $rf}, wal_bytes: $wal,
		 metrics: [$m0, $m1, $m2], haproxy: $hs, haproxy_log_lines: $loglines}' >"$tmp/snap/$1.json"
}
phase() { jq -r '.phase // ""' "$tmp/status.json" 2>/dev/null || true; }
# wait_phase P...: until the fleet's status names one of the phases (0), or the fleet ended (1)
wait_phase() {
	local p want
	while kill -0 "$FLEET" 2>/dev/null; do
		p=$(phase)
		for want in "$@"; do [ "$p" = "$want" ] && return 0; done
		sleep 0.2
	done
	return 1
}

# --- the run -------------------------------------------------------------------------
# first the servers with no agent: health checks, controller loops, lease
# renewals, snapshot checks (what costs the same with any fleet)
snap idle0
say "idle for ${IDLE_S}s"
sleep "$IDLE_S"
snap idle
say "fb-fleet: $AGENTS agents, time scale $SCALE, steady state ${STEADY}s, at most ${MAX_S}s in all"
T0=$(now_ms)
"$BIN/fb-fleet" --server "$FBC_ADMIN_URL" --agent-server "$FBC_AGENT_URL" --cacert "$FBC_CA" \
	--token "$TOKEN" --root "$tmp/world/root.json" --templates "$SRC/schema/templates" \
	--scenario "$SCN" --content-dir "$tmp/content" --agents "$AGENTS" --time-scale "$SCALE" \
	--steady-s "$STEADY" --inflight "$INFLIGHT" --status-file "$tmp/status.json" --json --verbose \
	>"$tmp/summary.json" 2>"$tmp/fleet.log" &
FLEET=$!
( sleep "$MAX_S"; kill "$FLEET" 2>/dev/null ) &
WATCHDOG=$!
declare -A PHASE_T
for p in baseline steady test done; do
	if ! wait_phase "$p"; then
		say "fb-fleet ended before phase $p"
		break
	fi
	PHASE_T[$p]=$(now_ms)
	say "phase $p after $(((PHASE_T[$p] - T0) / 1000))s: $(tail -n 1 "$tmp/fleet.log")"
	case $p in
	baseline) snap enrolled ;;
	steady)
		# the window: 10 s after the steady state began until 5 s before it ends
		sleep 10
		snap w0
		# heartbeat visibility, every 10 s: the agents whose latest heartbeat
		# the replicas received 10 to 20 s before (written long since: the
		# flush is every 2 s), from that receive time to the commit of the
		# batch that wrote it; and how old the newest heartbeat in the
		# database is (a stalled flush shows there). One session, into
		# unlogged tables; its backend's CPU is taken out of PostgreSQL's.
		sql -c "CREATE UNLOGGED TABLE cap_visible (ms float8); CREATE UNLOGGED TABLE cap_newest (ms float8)"
		mkfifo "$tmp/sampler.in"
		psql "$DB" -XAtq -v ON_ERROR_STOP=1 <"$tmp/sampler.in" >"$tmp/sampler.out" 2>&1 &
		SAMPLER_PID=$!
		exec 7>"$tmp/sampler.in"
		echo "SELECT pg_backend_pid();" >&7
		for _ in $(seq 100); do [ -s "$tmp/sampler.out" ] && break; sleep 0.05; done
		SAMPLER_BACKEND=$(head -n 1 "$tmp/sampler.out")
		snap w0
		(
			while sleep 10; do
				echo "INSERT INTO cap_visible SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - last_seen_at) * 1000
					FROM agents WHERE last_seen_at >= clock_timestamp() - interval '20 s'
					AND last_seen_at < clock_timestamp() - interval '10 s';
					INSERT INTO cap_newest SELECT extract(epoch FROM clock_timestamp() - max(last_seen_at)) * 1000 FROM agents;"
			done
		) >&7 &
		VIS=$!
		sleep $((STEADY - 15))
		snap w1
		kill "$VIS" 2>/dev/null || true
		wait "$VIS" 2>/dev/null || true
		echo '\q' >&7
		exec 7>&-
		wait "$SAMPLER_PID" 2>/dev/null || true
		SAMPLER_PID= SAMPLER_BACKEND=
		sql -c "SELECT round(ms) FROM cap_visible" >"$tmp/visible.txt"
		sql -c "SELECT round(ms) FROM cap_newest" >"$tmp/newest.txt"
		sql -c "DROP TABLE cap_visible; DROP TABLE cap_newest"
		;;
	test) snap r0 ;;
	done) ;;
	esac
done
set +e
wait "$FLEET"
FLEET_RC=$?
set -e
snap end
kill "$WATCHDOG" 2>/dev/null || true
FLEET_S=$((($(now_ms) - T0) / 1000))
say "fb-fleet ended after ${FLEET_S}s"

# What an agent's kept-alive TLS connection costs HAProxy between requests:
# HOLD connections, one request each, then idle (HAProxy keeps them for
# timeout http-keep-alive, 75 s).
HELD=0 HAP_RSS0=$(rss "$FBC_HAPROXY_PID") HAP_RSS1=0
if [ "$HOLD" -gt 0 ]; then
	mkfifo "$tmp/hold.in"
	"$BIN/fb-bench-setup" hold "$FBC_AGENT_URL/v1/root" "$HOLD" "$FBC_CA" <"$tmp/hold.in" >"$tmp/hold.out" 2>&1 &
	HOLDER=$!
	exec 8>"$tmp/hold.in"
	for _ in $(seq 600); do grep -q '^held' "$tmp/hold.out" 2>/dev/null && break; sleep 0.1; done
	sleep 1
	HELD=$(awk '/^held/ { print $2 }' "$tmp/hold.out")
	HAP_RSS1=$(rss "$FBC_HAPROXY_PID")
	exec 8>&-
	wait "$HOLDER" || true
	say "HAProxy RSS ${HAP_RSS0} kB, with ${HELD:-0} idle TLS connections ${HAP_RSS1} kB"
fi
grep -v '^fb-fleet: [0-9]*s:' "$tmp/fleet.log" | tail -n 40 >&2 || true
jq -e . "$tmp/summary.json" >/dev/null 2>&1 || echo null >"$tmp/summary.json"

# HAProxy's own timings of the window's agent requests (httplog: Tq/Tw/Tc/Tr/Ta)
haproxy_window() {
	local a b
	a=$(jq .haproxy_log_lines "$tmp/snap/w0.json") b=$(jq .haproxy_log_lines "$tmp/snap/w1.json")
	sed -n "$((a + 1)),${b}p" "$tmp/haproxy.log" | awk '
		$0 ~ /agents~ agent_api\// && match($0, /"[A-Z]+ \/v1\/[a-z]+/) {
			split(substr($0, RSTART + 1, RLENGTH - 1), rq, " "); k = rq[1] " " rq[2]
			for (i = 1; i <= NF; i++) if ($i ~ /^-?[0-9]+\/-?[0-9]+\/-?[0-9]+\/-?[0-9]+\/-?[0-9]+$/) { split($i, t, "/"); print k "\t" t[4] "\t" t[5]; break }
		}' | sort -t "$(printf '\t')" -k1,1 -k3,3n | awk -F '\t' '
		{ k[NR] = $1; ta[NR] = $3; n[$1]++ }
		END { for (r = 1; r <= NR; r++) { c[k[r]]++; q = c[k[r]] / n[k[r]]
				if (!(k[r] in p50) && q >= 0.5) p50[k[r]] = ta[r]
				if (!(k[r] in p99) && q >= 0.99) p99[k[r]] = ta[r]
				mx[k[r]] = ta[r] }
			for (x in n) printf "%s\t%d\t%s\t%s\t%s\n", x, n[x], p50[x], p99[x], mx[x] }' |
		jq -R -s 'split("\n") | map(select(length > 0) | split("\t")) |
			map({key: .[0], value: {requests: (.[1] | tonumber), ta_ms_p50: (.[2] | tonumber), ta_ms_p99: (.[3] | tonumber),
				ta_ms_max: (.[4] | tonumber)}}) | from_entries'
}
if [ -f "$tmp/snap/w1.json" ]; then HAPWIN=$(haproxy_window); else HAPWIN=null; fi
for s in idle0 idle enrolled w0 w1 r0 end; do [ -f "$tmp/snap/$s.json" ] || echo null >"$tmp/snap/$s.json"; done
# count p50 p90 p99 max of a file of numbers, one a line
quantiles() {
	sort -n "$1" | awk 'function q(p,   i) { i = p * n; if (i > int(i)) i = int(i) + 1; return a[i < 1 ? 1 : i] }
		/^-?[0-9.]+$/ { a[++n] = $1 } END { if (n) print n, q(0.5), q(0.9), q(0.99), a[n]; else print 0 }'
}
read -r VIS_N VIS_P50 VIS_P90 VIS_P99 VIS_MAX < <(quantiles "$tmp/visible.txt") || true
read -r NEW_N NEW_P50 NEW_P90 NEW_P99 NEW_MAX < <(quantiles "$tmp/newest.txt") || true
SIZES=$(sql -c "SELECT json_build_object('agents_bytes', pg_total_relation_size('agents'), 'agents_heap_bytes',
	pg_relation_size('agents'), 'events_bytes', pg_total_relation_size('events'), 'database_bytes',
	pg_database_size(current_database()), 'agents', (SELECT count(*) FROM agents), 'events', (SELECT count(*) FROM events),
	'agents_updates', n_tup_upd, 'agents_hot_updates', n_tup_hot_upd, 'agents_autovacuums', autovacuum_count,
	'agents_dead_rows', n_dead_tup) FROM pg_stat_user_tables WHERE relname = 'agents'")
# the controller's gate queries (crash counts, health-signal counts), from the slow-statement log
SLOW=$(awk '/duration: [0-9.]+ ms/ && /WITH ap AS/ { for (i = 1; i <= NF; i++) if ($i == "duration:") d = $(i + 1)
		print (/dg AS/ ? "signals" : "counts") "\t" d }' "$tmp/pg/postgres.log" | sort -t "$(printf '\t')" -k1,1 -k2,2n |
	awk -F '\t' '{ k[NR] = $1; v[NR] = $2; n[$1]++ } END { for (r = 1; r <= NR; r++) { c[k[r]]++
		if (c[k[r]] == int((n[k[r]] + 1) / 2)) med[k[r]] = v[r]; mx[k[r]] = v[r] }
		for (x in n) printf "%s\t%d\t%s\t%s\n", x, n[x], med[x], mx[x] }' |
	jq -R -s 'split("\n") | map(select(length > 0) | split("\t")) |
		map({key: .[0], value: {over_200ms: (.[1] | tonumber), median_ms: (.[2] | tonumber), max_ms: (.[3] | tonumber)}}) | from_entries')
# how HAProxy's agent sessions ended (httplog termination state; ---- is normal)
HAPTERM=$(awk '/agents~ agent_api\// { for (i = 1; i <= NF; i++) if ($i ~ /^[-A-Za-z][-A-Za-z][-A-Za-z][-A-Za-z]$/) { print $i; break } }' "$tmp/haproxy.log" |
	sort | uniq -c | jq -R -s 'split("\n") | map(select(length > 0) | ltrimstr(" ") | sub("^ +"; "") | split(" ")) |
		map({key: .[1], value: (.[0] | tonumber)}) | from_entries')
WARNS=$(for i in 0 1 2; do grep -c '"level":"\(warn\|error\)"' "$tmp/firebreakd-$i.log" || true; done | jq -s .)
grep -h '"level":"\(warn\|error\)"' "$tmp"/firebreakd-*.log | sed 's/"ts":"[^"]*",//' | sort | uniq -c | sort -rn |
	head -n 10 >"$tmp/warnings.txt" || true

# --- results ---------------------------------------------------------------------------
jq -n --slurpfile idle0 "$tmp/snap/idle0.json" --slurpfile idle "$tmp/snap/idle.json" \
	--slurpfile enr "$tmp/snap/enrolled.json" \
	--slurpfile w0 "$tmp/snap/w0.json" --slurpfile w1 "$tmp/snap/w1.json" \
	--slurpfile r0 "$tmp/snap/r0.json" --slurpfile fin "$tmp/snap/end.json" \
	--slurpfile sum "$tmp/summary.json" --argjson hapwin "$HAPWIN" --argjson sizes "$SIZES" \
	--argjson warns "$WARNS" --rawfile warntxt "$tmp/warnings.txt" --argjson slow "$SLOW" --argjson term "$HAPTERM" \
	--argjson vis "[${VIS_N:-null}, ${VIS_P50:-null}, ${VIS_P90:-null}, ${VIS_P99:-null}, ${VIS_MAX:-null}]" \
	--argjson newest "[${NEW_N:-null}, ${NEW_P50:-null}, ${NEW_P90:-null}, ${NEW_P99:-null}, ${NEW_MAX:-null}]" \
	--argjson agents "$AGENTS" --argjson scale "$SCALE" --argjson steady "$STEADY" --argjson inflight "$INFLIGHT" \
	--argjson replica_tls "$REPLICA_TLS" --argjson health "$HEALTH" \
	--argjson held "${HELD:-0}" --argjson hap_rss0 "$HAP_RSS0" --argjson hap_rss1 "$HAP_RSS1" --argjson fleet_rc "$FLEET_RC" --argjson fleet_s "$FLEET_S" \
	--arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	--arg commit "$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	--arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" --argjson ncpu "$(nproc)" \
	--arg memtotal "$(awk '/^MemTotal/ { print $2 " kB" }' /proc/meminfo)" \
	--arg haproxy "$(haproxy -v | head -n 1)" --arg pg "$(psql "$PGADMIN" -XAtqc 'SHOW server_version')" \
	--arg openssl "$(openssl version)" -f "$SRC/bench/capacity.jq" >"$OUT"
say "results in ${OUT#"$SRC"/}"
jq -r '.report[]' "$OUT"
