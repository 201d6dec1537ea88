#!/usr/bin/env bash
# make bench: firebreakd measured against nginx on this machine, in the same
# run, under the same wrk load (bench/README.md explains every figure).
#   bench/run.sh BUILD     (make bench builds BUILD=build/bench -O2, no sanitizers)
# Everything runs on 127.0.0.1 or unix sockets inside a temporary directory,
# every load is bounded in time, and everything is torn down on exit.
set -euo pipefail

BUILD=${1:-build/bench}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=$SRC/$BUILD/bin
DUR=${FB_BENCH_SECONDS:-5}            # seconds of each wrk run
ROUNDS=${FB_BENCH_ROUNDS:-5}          # interleaved rounds (firebreak, nginx, ...)
CONNS=${FB_BENCH_CONNECTIONS:-64}     # wrk connections
AGENTS=${FB_BENCH_AGENTS:-100000}     # enrolled agents of the realistic snapshot
MEM_AGENTS=${FB_BENCH_MEM_AGENTS:-1000000} # agents added for the memory figure
OUT=${FB_BENCH_OUT:-$SRC/bench/results.json}
LUA=$SRC/bench/agents.lua

for tool in wrk nginx taskset psql curl jq bc; do
	command -v "$tool" >/dev/null || { echo "bench: '$tool' is missing (run make deps)" >&2; exit 1; }
done
[ -x "$BIN/firebreakd" ] && [ -x "$BIN/fb-bench-setup" ] || { echo "bench: build $BUILD first" >&2; exit 1; }

# --- cores: the server side (firebreakd or nginx, and PostgreSQL) on all
# cores but the last, the load generator alone on the last one.
NCPU=$(nproc)
HZ=$(getconf CLK_TCK)
if [ "$NCPU" -ge 2 ]; then
	SRV_CPUS="0-$((NCPU - 2))"
	LOAD_CPUS="$((NCPU - 1))"
	SRV_N=$((NCPU - 1))
	LOAD_N=1
else
	SRV_CPUS=0 LOAD_CPUS=0 SRV_N=1 LOAD_N=1
fi
CORE_SPLIT="server side (firebreakd or nginx, PostgreSQL) on CPU $SRV_CPUS; wrk ($LOAD_N thread) on CPU $LOAD_CPUS"

tmp=$(mktemp -d /tmp/fb-bench.XXXXXX)
chmod 755 "$tmp"
mkdir -p "$tmp/res" "$tmp/www" "$tmp/nginx" "$tmp/work"
FBPID= NGPID=
cleanup() {
	set +e
	[ -n "$FBPID" ] && kill "$FBPID" 2>/dev/null && wait "$FBPID" 2>/dev/null
	[ -n "$NGPID" ] && kill "$NGPID" 2>/dev/null && wait "$NGPID" 2>/dev/null
	"$SRC/tests/pg.sh" stop "$tmp/pg" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf 'bench: %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
free_port() {
	local p
	# below the ephemeral range, and used by no socket at all
	for p in $(shuf -i 10000-30000 -n 50); do
		if ! ss -Htan "sport = :$p" | grep -q .; then echo "$p"; return; fi
	done
	echo "bench: no free port" >&2
	exit 1
}
kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
# CPU time (clock ticks, user + system) of firebreakd, and of PostgreSQL
# (the postmaster and its children: the pool's backends live through a run).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# CPU ticks of firebreakd's HTTP threads (libmicrohttpd's, named MHD-*):
# what handling the requests costs, without the batch writer and the
# controller, whose work does not grow with the requests
mhd_ticks() {
	local t=0 d c
	for d in /proc/"$FBPID"/task/*; do
		read -r c <"$d/comm" 2>/dev/null || continue
		case $c in MHD*) t=$((t + $(awk '{print $14 + $15}' "$d/stat" 2>/dev/null || echo 0))) ;; esac
	done
	echo "$t"
}
# CPU time (ms, user + system) of this shell's children that have ended
# (`times` in this shell, not in a $(...) subshell, whose children are others)
child_cpu_ms() { # VAR
	times >"$tmp/times"
	printf -v "$1" '%s' "$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60000 + a[2] * 1000 } printf "%d", t }' "$tmp/times")"
}
pg_ticks() {
	local pm t=0 p
	pm=$(head -n 1 "$tmp/pg/data/postmaster.pid")
	for p in "$pm" $(pgrep -P "$pm"); do t=$((t + $(ticks "$p"))); done
	echo "$t"
}

# --- PostgreSQL, firebreakd -------------------------------------------------
t_setup=$(now_ms)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "PostgreSQL in $tmp/pg"
taskset -c "$SRV_CPUS" "$SRC/tests/pg.sh" start "$tmp/pg" >/dev/null
DB=$("$SRC/tests/pg.sh" env "$tmp/pg")
sql() { psql "$DB" -XAtq -v ON_ERROR_STOP=1 "$@"; }
"$BIN/firebreakd" migrate --db="$DB" >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log" >&2; exit 1; }
ADMIN=$("$BIN/firebreakd" token create --role admin --name bench-admin --db="$DB" 2>>"$tmp/setup.log")
RELEASE=$("$BIN/firebreakd" token create --role release --name bench-release --db="$DB" 2>>"$tmp/setup.log")

export FBT_WORK=$tmp/work FB_SRC=$SRC
mapfile -t WORLD < <("$BIN/fb-bench-setup" world "$tmp")
CAPS=$(cat "$tmp/caps.json")

# Agents are inserted in bulk with one INSERT ... SELECT generate_series (set
# based, as fast as COPY), the rows enrollment would write; the server loads
# them from the database on the next publication (NOTIFY), as it does agents
# enrolled through another replica.
insert_agents() { # FIRST LAST
	sql -v first="$1" -v last="$2" -v caps="$CAPS" <<'SQL'
INSERT INTO agents (id, public_key, tags, hostname, agent_version, capabilities)
SELECT i, decode(lpad(to_hex(i), 64, '0'), 'hex'), '{}', 'bench-' || i, '1.0.0', :'caps'::jsonb
FROM generate_series(:first::bigint, :last::bigint) AS i;
SELECT setval('agents_id_seq', (SELECT max(id) FROM agents));
SQL
}
publish() {
	sql -c "UPDATE publication SET seq = nextval('assignment_seq'), reason = '$1', published_at = now(); NOTIFY firebreak_publication" >/dev/null
}
say "inserting $AGENTS agents"
t0=$(now_ms)
insert_agents 1 "$AGENTS" >/dev/null
T_INSERT_100K=$(($(now_ms) - t0))

FBPORT=$(free_port)
FB="http://127.0.0.1:$FBPORT"
taskset -c "$SRV_CPUS" "$BIN/firebreakd" serve --listen=127.0.0.1 --port="$FBPORT" --db="$DB" \
	--threads="$SRV_N" --log_level=warn "${WORLD[@]}" >"$tmp/firebreakd.log" 2>&1 &
FBPID=$!
for _ in $(seq 200); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$FB/readyz")" = 200 ] && break
	kill -0 "$FBPID" 2>/dev/null || { cat "$tmp/firebreakd.log" >&2; exit 1; }
	sleep 0.1
done
api() { # METHOD PATH TOKEN [BODY] -> body on stdout; fails on a non-2xx status
	local code
	code=$(curl -sS -o "$tmp/api.out" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $3" \
		-H 'Content-Type: application/json' ${4:+--data-binary "$4"} "$FB$2")
	case "$code" in 2??) cat "$tmp/api.out" ;; *) echo "bench: $1 $2: $code $(cat "$tmp/api.out")" >&2; return 1 ;; esac
}

# --- channels and content: four small channels and a 1 MiB one, all GA at
# version 1 (set in the database, as a completed rollout leaves it), and a
# rollout of version 2 on channel 291 in the canary ring.
declare -A SHA
CHANNELS="291 292 293 294 295"
for ch in $CHANNELS; do
	api POST /v1/channels "$ADMIN" "{\"id\":$ch,\"name\":\"bench-$ch\"}" >/dev/null
	bytes=0
	[ "$ch" = 295 ] && bytes=1048576
	read -r sha size < <("$BIN/fb-bench-setup" content "$tmp" "$ch" 1 "$bytes")
	api POST /v1/content "$RELEASE" "@$tmp/content-$ch-1.json" >/dev/null
	SHA[$ch]=$sha
	[ "$ch" = 295 ] && BLOB_SHA=$sha BLOB_SIZE=$size
done
read -r SHA_V2 _ < <("$BIN/fb-bench-setup" content "$tmp" 291 2 0)
api POST /v1/content "$RELEASE" "@$tmp/content-291-2.json" >/dev/null
sql -c "UPDATE channels SET ga_sha256 = c.sha256 FROM content c WHERE c.channel_id = channels.id AND c.version = 1" >/dev/null
publish 'bench: GA content'
ROLLOUT=$(api POST /v1/rollouts "$RELEASE" "{\"channel\":291,\"content\":\"$SHA_V2\",\"reason\":\"bench\",\"policy\":{\"holdout\":0,\"holdout_min\":0}}" | jq -r .id)
# Paused for the serving runs: the controller evaluates only rolling rollouts,
# and its gate query over all 100,000 agents (bench/capacity.sh measures it)
# would share the server core with every run below at random moments. The
# paused rollout still offers version 2 to the canary ring. Resumed for the
# gate reaction.
api POST "/v1/rollouts/$ROLLOUT/pause" "$RELEASE" '{"reason":"bench: serving runs"}' >/dev/null
ACTIVE=$(jq -cn --arg a "${SHA[291]}" --arg b "${SHA[292]}" --arg c "${SHA[293]}" --arg d "${SHA[294]}" --arg e "${SHA[295]}" \
	'{"291":$a,"292":$b,"293":$c,"294":$d,"295":$e}')
export FB_BENCH_ACTIVE=$ACTIVE FB_BENCH_CAPS=$CAPS FB_BENCH_THREADS=$LOAD_N

# Wait until the server holds agent $1 in memory (GET /v1/agents/ID names its ring).
wait_loaded() {
	for _ in $(seq 1200); do
		[ "$(api GET "/v1/agents/$1" "$ADMIN" 2>/dev/null | jq -r '.ring // empty')" != "" ] && return 0
		sleep 0.05
	done
	echo "bench: agent $1 never appeared in the server" >&2
	return 1
}
wait_loaded "$AGENTS"

# --- agent tokens; the poll sample (agents 1..10000 with their ring's ETag) --
KEY=$(sql -c "SELECT encode(value, 'hex') FROM server_secrets WHERE name = 'agent_token_key'")
"$BIN/fb-bench-setup" tokens "$KEY" 1 "$AGENTS" >"$tmp/tokens.txt"
api GET "/v1/agents?limit=10000" "$ADMIN" | jq -r '.agents[] | "\(.id) \(.ring)"' >"$tmp/rings.txt"
declare -A ETAG
for ring in $(awk '{print $2}' "$tmp/rings.txt" | sort -u); do
	id=$(awk -v r="$ring" '$2 == r {print $1; exit}' "$tmp/rings.txt")
	tok=$(sed -n "${id}p" "$tmp/tokens.txt")
	ETAG[$ring]=$(curl -sS -D - -o "$tmp/doc-$ring.json" -H "Authorization: Bearer $tok" "$FB/v1/poll" |
		awk 'tolower($1) == "etag:" {sub(/\r$/, ""); print $2}')
done
awk 'NR == FNR {tok[FNR] = $0; next} {print tok[$1]}' "$tmp/tokens.txt" "$tmp/rings.txt" >"$tmp/poll-tokens.txt"
while read -r id ring; do echo "${ETAG[$ring]}"; done <"$tmp/rings.txt" | paste -d' ' "$tmp/poll-tokens.txt" - >"$tmp/poll304.txt"
RING_COUNTS=$(awk '{n[$2]++} END {for (r in n) printf "%s%s:%d", (i++ ? "," : ""), r, n[r]}' "$tmp/rings.txt")
# the nginx twins: the GA ring's assignment (same bytes), and the same 1 MiB blob
cp "$tmp/doc-ga.json" "$tmp/www/poll.json"
POLL_SIZE=$(stat -c %s "$tmp/www/poll.json")
curl -sS -o "$tmp/www/blob.bin" "$FB/v1/blobs/$BLOB_SHA"
T_SETUP=$(($(now_ms) - t_setup))
say "set up in $((T_SETUP / 1000)) s: $AGENTS agents ($RING_COUNTS in the first 10000), poll answer $POLL_SIZE bytes, blob $BLOB_SIZE bytes"

# --- nginx --------------------------------------------------------------------
NGPORT=$(free_port)
NG="http://127.0.0.1:$NGPORT"
cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes $SRV_N;
daemon off;
master_process on;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; use epoll; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	open_file_cache max=16 inactive=600s;
	open_file_cache_valid 600s;
	keepalive_timeout 60s;
	keepalive_requests 100000000;
	client_body_temp_path $tmp/nginx/body;
	proxy_temp_path $tmp/nginx/proxy;
	fastcgi_temp_path $tmp/nginx/fastcgi;
	uwsgi_temp_path $tmp/nginx/uwsgi;
	scgi_temp_path $tmp/nginx/scgi;
	types { application/json json; application/octet-stream bin; }
	server {
		listen 127.0.0.1:$NGPORT;
		root $tmp/www;
		location / { }
	}
}
CONF
taskset -c "$SRV_CPUS" nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
NGPID=$!
for _ in $(seq 100); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$NG/poll.json")" = 200 ] && break
	kill -0 "$NGPID" 2>/dev/null || { echo "bench: nginx did not start" >&2; exit 1; }
	sleep 0.05
done
NG_ETAG=$(curl -sS -D - -o /dev/null "$NG/poll.json" | awk 'tolower($1) == "etag:" {sub(/\r$/, ""); print $2}')
awk -v e="$NG_ETAG" '{print $1, e}' "$tmp/poll-tokens.txt" >"$tmp/ng304.txt"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $NG_ETAG" "$NG/poll.json")" = 304 ] ||
	{ echo "bench: nginx does not answer 304" >&2; exit 1; }
tok1=$(head -n 1 "$tmp/poll304.txt")
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${tok1%% *}" -H "If-None-Match: ${tok1#* }" "$FB/v1/poll")" = 304 ] ||
	{ echo "bench: firebreakd does not answer 304" >&2; exit 1; }

# --- the interleaved runs ---------------------------------------------------
run() { # NAME URL MODE FILE [LIMIT [SECONDS]]
	local name=$1 url=$2 mode=$3 file=$4 limit=${5:-0} secs=${6:-$DUR}
	rm -f "$tmp"/done.*
	FB_BENCH_DONE=$tmp/done taskset -c "$LOAD_CPUS" wrk -t"$LOAD_N" -c"$CONNS" -d"${secs}s" --timeout 10s \
		-s "$LUA" "$url" -- "$mode" "$file" "$limit" >"$tmp/res/$name.txt" 2>&1 &
	local pid=$! c0 c1
	child_cpu_ms c0
	if [ "$limit" != 0 ]; then
		# each wrk thread marks the end of its share; wrk itself would sleep on
		while kill -0 "$pid" 2>/dev/null && [ "$(find "$tmp" -maxdepth 1 -name 'done.*' | wc -l)" -lt "$LOAD_N" ]; do
			sleep 0.1
		done
		kill -INT "$pid" 2>/dev/null || true
	fi
	wait "$pid" || { cat "$tmp/res/$name.txt" >&2; return 1; }
	child_cpu_ms c1
	# wrk's own CPU time: its one thread has one core, so a figure whose
	# client_cpu_s is near the run's length was the client's limit
	grep '^{' "$tmp/res/$name.txt" | tail -n 1 |
		jq -c --argjson c "$(((c1 - c0)))" '. + {client_cpu_s: ($c / 1000)}' >"$tmp/res/$name.json"
	jq -r --arg n "$name" '"  \($n): \(.requests * 1e6 / .duration_us | floor) req/s, p99 \(.latency_us.p99) us, status errors \(.errors.status)"' \
		"$tmp/res/$name.json" >&2
}
# Heartbeats are visible when every agent that got a 202 in the run has its
# last_seen_at at or after the run's start in the database and, with PROBE,
# when agent 1 has the boot id PROBE, which one more heartbeat sent right
# after the load carried: a run that reached every agent early (more
# heartbeats than agents) would otherwise hide the last ones.
# Gives up (-1) after 120 s.
hb_visible() { # T_END SINCE EXPECTED FIRST_ID LAST_ID [PROBE] -> "ms-after-T_END count"
	local t_end=$1 since=$2 want=$3 lo=$4 hi=$5 probe=${6:-} n=0 p
	while [ $(($(now_ms) - t_end)) -lt 120000 ]; do
		# the probe first: one row by primary key, where the count reads
		# the whole table (its CPU is counted as PostgreSQL's)
		p=1
		[ -n "$probe" ] && p=$(sql -c "SELECT count(*) FROM agents WHERE id = 1 AND boot_id = '$probe'")
		if [ "$p" = 1 ]; then
			n=$(sql -c "SELECT count(*) FROM agents WHERE id BETWEEN $lo AND $hi AND last_seen_at >= '$since'")
			[ "$n" -ge "$want" ] && { echo "$(($(now_ms) - t_end)) $n"; return; }
		fi
		sleep 0.05
	done
	echo "-1 $n"
}
probe_heartbeat() { # BOOT_ID: agent 1 heartbeats once more; fails unless 202
	local tok code
	tok=$(head -n 1 "$tmp/tokens.txt")
	code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $tok" \
		-H 'Content-Type: application/json' --data-binary \
		"{\"agent_id\":1,\"boot_id\":\"$1\",\"uptime_s\":1,\"agent_version\":\"1.0.0\",\"active\":$ACTIVE,\"capabilities\":$CAPS}" \
		"$FB/v1/heartbeat")
	[ "$code" = 202 ] || { echo "bench: probe heartbeat: $code" >&2; return 1; }
}

# One heartbeat run, then one more heartbeat (the probe) and the wait until
# all of them are in the database; the server's and PostgreSQL's CPU time
# over all of that goes to NAME_VIS.json beside the visibility figures.
heartbeat_run() { # NAME MODE NAME_VIS
	local since fb0 pg0 h0 h1 t_end sent want lag seen fbc pgc
	since=$(sql -c "SELECT now()")
	fb0=$(ticks "$FBPID") pg0=$(pg_ticks) h0=$(mhd_ticks)
	run "$1" "$FB/v1/heartbeat" "$2" "$tmp/tokens.txt" 0 "$d"
	h1=$(mhd_ticks)
	t_end=$(now_ms)
	probe_heartbeat "bench-probe-$1"
	sent=$(jq '.requests - .errors.status' "$tmp/res/$1.json")
	want=$((sent < AGENTS ? sent : AGENTS))
	read -r lag seen < <(hb_visible "$t_end" "$since" "$want" 1 "$AGENTS" "bench-probe-$1")
	fbc=$(($(ticks "$FBPID") - fb0)) pgc=$(($(pg_ticks) - pg0))
	echo "{\"requests\":$sent,\"expected\":$want,\"visible\":$seen,\"lag_ms\":$lag,\"firebreakd_cpu_s\":$(echo "scale=2; $fbc / $HZ" | bc),\"postgres_cpu_s\":$(echo "scale=2; $pgc / $HZ" | bc),\"handler_cpu_s\":$(echo "scale=2; ($h1 - $h0) / $HZ" | bc)}" >"$tmp/res/$3.json"
	say "  heartbeats: $seen of $want distinct agents visible in the database ${lag} ms after the load ended (CPU: firebreakd $(echo "scale=2; $fbc / $HZ" | bc) s, PostgreSQL $(echo "scale=2; $pgc / $HZ" | bc) s)"
}

for r in $(seq 0 "$ROUNDS"); do
	if [ "$r" = 0 ]; then
		say "warm-up"
		d=2 tag=warm
	else
		say "round $r of $ROUNDS ($DUR s each, $CONNS connections)"
		d=$DUR tag=r$r
	fi
	run "$tag-fb-poll304" "$FB/v1/poll" poll304 "$tmp/poll304.txt" 0 "$d"
	run "$tag-ng-poll304" "$NG/poll.json" poll304 "$tmp/ng304.txt" 0 "$d"
	run "$tag-fb-poll200" "$FB/v1/poll" poll "$tmp/poll-tokens.txt" 0 "$d"
	run "$tag-ng-poll200" "$NG/poll.json" poll "$tmp/poll-tokens.txt" 0 "$d"
	run "$tag-fb-blob" "$FB/v1/blobs/$BLOB_SHA" get - 0 "$d"
	run "$tag-ng-blob" "$NG/blob.bin" get - 0 "$d"
	# the same heartbeats with a health object (issue 17: within 10 %),
	# measured the same way: the server's CPU per heartbeat, until written;
	# which of the two goes first alternates from round to round
	if [ $((r % 2)) = 1 ]; then
		heartbeat_run "$tag-fb-heartbeat" heartbeat "$tag-fb-hbvis"
		heartbeat_run "$tag-fb-hbhealth" heartbeat_health "$tag-fb-hbhvis"
	else
		heartbeat_run "$tag-fb-hbhealth" heartbeat_health "$tag-fb-hbhvis"
		heartbeat_run "$tag-fb-heartbeat" heartbeat "$tag-fb-hbvis"
	fi
done

# --- gate reaction: crash reports from canary agents -> the halt in their poll
say "gate reaction"
api POST "/v1/rollouts/$ROLLOUT/resume" "$RELEASE" '{"reason":"bench: gate reaction"}' >/dev/null
mapfile -t CANARY < <(awk '$2 == "canary" {print $1}' "$tmp/rings.txt" | head -n 6)
POLICY=$(api GET "/v1/rollouts/$ROLLOUT" "$ADMIN")
HARD_CAP=$(jq -r '(.policy[0] // .policy).hard_cap // empty' <<<"$POLICY")
HARD_CAP=${HARD_CAP:-3}
at=$(date +%s)
for id in "${CANARY[@]}"; do
	tok=$(sed -n "${id}p" "$tmp/tokens.txt")
	api POST /v1/events "$tok" "{\"agent_id\":$id,\"events\":[{\"id\":\"bench-applied\",\"kind\":\"applied\",\"at\":$at,\"boot_id\":\"bench-$id\",\"channel\":291,\"content\":\"$SHA_V2\"}]}" >/dev/null
done
tok1=$(sed -n "${CANARY[0]}p" "$tmp/tokens.txt")
etag1=${ETAG[canary]}
etag1=$(curl -sS -D - -o "$tmp/gate-before.json" -H "Authorization: Bearer $tok1" "$FB/v1/poll" | awk 'tolower($1) == "etag:" {sub(/\r$/, ""); print $2}')
grep -q "$SHA_V2" "$tmp/gate-before.json" || { echo "bench: the canary agent is not offered the rollout" >&2; exit 1; }
g0=$(now_ms)
for i in $(seq 0 $((HARD_CAP - 1))); do
	id=${CANARY[$i]}
	tok=$(sed -n "${id}p" "$tmp/tokens.txt")
	api POST /v1/events "$tok" "{\"agent_id\":$id,\"events\":[{\"id\":\"bench-crash\",\"kind\":\"crash\",\"at\":$at,\"boot_id\":\"bench-$id\",\"channel\":291,\"content\":\"$SHA_V2\",\"code\":\"0xC0000005\",\"module\":\"bench.sys\"}]}" >/dev/null
done
g_reported=$(($(now_ms) - g0))
GATE_MS=-1 polls=0
for _ in $(seq 3000); do
	polls=$((polls + 1))
	code=$(curl -sS -o "$tmp/gate-after.json" -w '%{http_code}' -H "Authorization: Bearer $tok1" -H "If-None-Match: $etag1" "$FB/v1/poll")
	if [ "$code" = 200 ] && ! grep -q "$SHA_V2" "$tmp/gate-after.json"; then
		GATE_MS=$(($(now_ms) - g0))
		break
	fi
	sleep 0.01
done
GATE_STATE=$(api GET "/v1/rollouts/$ROLLOUT" "$ADMIN" | jq -r .state)
# The server's side of it, from the database: when the crash was stored, when
# the controller decided HALT, when the rollout was reverted (ms after the
# first crash report was sent, on the same clock).
GATE_DB=$(sql -v g0="$g0" -v id="$ROLLOUT" <<'SQL'
SELECT json_build_object(
	'crash_stored_ms', round(extract(epoch FROM (SELECT min(received_at) FROM events WHERE kind = 'crash')) * 1000 - :g0),
	'halt_decided_ms', round(extract(epoch FROM (SELECT min(created_at) FROM gate_evaluations
		WHERE rollout_id = :id AND decision = 'HALT')) * 1000 - :g0),
	'rollout_finished_ms', round(extract(epoch FROM (SELECT updated_at FROM rollouts WHERE id = :id)) * 1000 - :g0))
SQL
)
CTL_MS=$("$BIN/firebreakd" --help 2>&1 | awk '$1 == "--controller_interval_ms" {print $NF}' | tr -d ')')
say "  halt visible in the canary agent's poll $GATE_MS ms after the first crash report ($HARD_CAP reports sent in $g_reported ms; rollout $GATE_STATE; server: $GATE_DB)"

# --- memory per tracked agent -------------------------------------------------
say "memory: $MEM_AGENTS more agents enroll and send a heartbeat"
# Not a comparison: the server and PostgreSQL may use every core now.
taskset -a -p -c "0-$((NCPU - 1))" "$FBPID" >/dev/null
for p in $(head -n 1 "$tmp/pg/data/postmaster.pid") $(pgrep -P "$(head -n 1 "$tmp/pg/data/postmaster.pid")"); do
	taskset -a -p -c "0-$((NCPU - 1))" "$p" >/dev/null 2>&1 || true
done
sleep 3 # the last heartbeat flush
# The peak of this phase, not of the process's life: reset the high-water
# mark to the current RSS (Linux >= 4.0), so a higher peak earlier (the
# heartbeat rounds) cannot hide this phase's.
echo 5 >"/proc/$FBPID/clear_refs" 2>/dev/null || say "  cannot reset VmHWM; the peak is the process's"
RSS0=$(kb "$FBPID" VmRSS)
HWM0=$(kb "$FBPID" VmHWM)
lo=$((AGENTS + 1)) hi=$((AGENTS + MEM_AGENTS))
t0=$(now_ms)
insert_agents "$lo" "$hi" >/dev/null
T_INSERT_MEM=$(($(now_ms) - t0))
t0=$(now_ms)
publish 'bench: more agents'
wait_loaded "$hi"
T_LOAD_MEM=$(($(now_ms) - t0))
RSS_LOADED=$(kb "$FBPID" VmRSS)
"$BIN/fb-bench-setup" tokens "$KEY" "$lo" "$hi" >"$tmp/tokens-mem.txt"
since=$(sql -c "SELECT now()")
t0=$(now_ms)
run mem-fb-heartbeat "$FB/v1/heartbeat" heartbeat "$tmp/tokens-mem.txt" "$MEM_AGENTS" "${FB_BENCH_MEM_SECONDS:-420}"
t_end=$(now_ms)
T_HB_MEM=$((t_end - t0))
MEM_SENT=$(jq '.requests - .errors.status' "$tmp/res/mem-fb-heartbeat.json")
MEM_SENT=$((MEM_SENT < MEM_AGENTS ? MEM_SENT : MEM_AGENTS))
read -r MEM_LAG MEM_SEEN < <(hb_visible "$t_end" "$since" "$MEM_SENT" "$lo" "$hi")
sleep 1
RSS1=$(kb "$FBPID" VmRSS)
HWM1=$(kb "$FBPID" VmHWM)
say "  RSS $RSS0 -> $RSS1 KiB (peak $HWM1 KiB); $MEM_SEEN of $MEM_AGENTS heartbeats in the database ${MEM_LAG} ms after the load"

# --- results --------------------------------------------------------------------
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
cpu_model=$(lscpu | awk -F: '/^Model name/ {gsub(/^ +/, "", $2); print $2; exit}')
jq -n \
	--arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	--arg cpu "$cpu_model" --argjson ncpu "$NCPU" \
	--arg mem "$(awk '/^MemTotal/ {print $2 " kB"}' /proc/meminfo)" \
	--arg kernel "$(uname -r)" \
	--arg commit "$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	--arg firebreakd "$("$BIN/firebreakd" version 2>&1 | head -n 1)" \
	--arg nginx "$(nginx -v 2>&1 | sed 's/^nginx version: //')" \
	--arg wrk "$(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}')" \
	--arg postgres "$(sql -c 'SHOW server_version')" \
	--arg mhd "$(pkg-config --modversion libmicrohttpd 2>/dev/null || echo unknown)" \
	--arg gcc "$(cc --version | head -n 1)" \
	--arg split "$CORE_SPLIT" --arg load_start "$LOAD_START" --arg load_end "$LOAD_END" \
	--argjson dur "$DUR" --argjson rounds "$ROUNDS" --argjson conns "$CONNS" \
	--argjson agents "$AGENTS" --argjson mem_agents "$MEM_AGENTS" \
	--arg rings "$RING_COUNTS" --argjson poll_size "$POLL_SIZE" --argjson blob_size "$BLOB_SIZE" \
	--argjson t_setup "$T_SETUP" --argjson t_insert "$T_INSERT_100K" \
	--argjson gate_ms "$GATE_MS" --arg gate_state "$GATE_STATE" --argjson hard_cap "$HARD_CAP" \
	--argjson gate_reported "$g_reported" --argjson ctl_ms "${CTL_MS:-2000}" --argjson gate_db "$GATE_DB" \
	--argjson rss0 "$RSS0" --argjson rss_loaded "$RSS_LOADED" --argjson rss1 "$RSS1" \
	--argjson hwm0 "$HWM0" --argjson hwm1 "$HWM1" \
	--argjson t_insert_mem "$T_INSERT_MEM" --argjson t_load_mem "$T_LOAD_MEM" \
	--argjson t_hb_mem "$T_HB_MEM" --argjson mem_lag "$MEM_LAG" --argjson mem_seen "$MEM_SEEN" \
	--argjson mem_sent "$MEM_SENT" --slurpfile mem_run "$tmp/res/mem-fb-heartbeat.json" \
	--slurpfile runs <(for f in "$tmp"/res/r*-*.json; do
		n=$(basename "$f" .json)
		jq -c --arg n "$n" '{name: $n} + .' "$f"
	done) '
def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
	else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def rps: .requests * 1e6 / .duration_us;
def runs($k): [$runs[] | select(.name | test("^r[0-9]+-" + $k + "$"))];
def rounds($k): [runs($k)[] | rps];
def pair($fb; $ng; $target; $what):
	[range(0; $rounds)] as $i
	| (rounds($fb)) as $f | (rounds($ng)) as $g
	| {what: $what,
	   firebreak_rps: ($f | median | floor), nginx_rps: ($g | median | floor),
	   ratio: ([range(0; $f | length) | $f[.] / $g[.]] | median * 1000 | round / 1000),
	   per_round: {firebreak: ($f | map(floor)), nginx: ($g | map(floor))},
	   firebreak_p99_us: (runs($fb) | map(.latency_us.p99) | median),
	   nginx_p99_us: (runs($ng) | map(.latency_us.p99) | median),
	   status_errors: (runs($fb) | map(.errors.status) | add),
	   target_ratio: $target};
{
	date: $date,
	machine: {cpus: $ncpu, cpu_model: $cpu, memory: $mem, kernel: $kernel, core_split: $split,
		  loadavg_at_start: $load_start, loadavg_at_end: $load_end},
	versions: {firebreak: $firebreakd, commit: $commit, compiler: $gcc, libmicrohttpd: $mhd,
		   nginx: $nginx, wrk: $wrk, postgresql: $postgres},
	load: {wrk_connections: $conns, seconds_per_run: $dur, rounds: $rounds,
	       interleaving: "per round: fb poll304, nginx 304, fb poll200, nginx 200, fb blob, nginx blob, fb heartbeat and fb heartbeat with health (each followed by the wait until written; odd rounds plain first, even rounds health first)"},
	snapshot: {agents: $agents, rings_of_poll_sample: $rings, poll_sample_agents: 10000,
		   channels: 5, poll_answer_bytes: $poll_size, blob_bytes: $blob_size,
		   setup_ms: $t_setup, agents_insert_ms: $t_insert},
	poll_304: pair("fb-poll304"; "ng-poll304"; 0.8; "GET /v1/poll with If-None-Match (304) vs nginx static file with If-None-Match"),
	poll_200: pair("fb-poll200"; "ng-poll200"; null; "GET /v1/poll (200, signed assignment) vs nginx static file of the same bytes"),
	blob_1mib: (pair("fb-blob"; "ng-blob"; null; "GET /v1/blobs/{sha256}, 1 MiB, vs nginx static file of the same bytes")
		+ {firebreak_mib_s: ((rounds("fb-blob") | median) * $blob_size / 1048576 | floor)}),
	heartbeat: (pair("fb-heartbeat"; "ng-poll200"; 0.5; "POST /v1/heartbeat (distinct agents, agent tokens) vs nginx static GET 200 of the same round")
		+ {visible: [$runs[] | select(.name | test("-fb-hbvis$"))],
		   visible_lag_ms_max: ([$runs[] | select(.name | test("-fb-hbvis$")) | .lag_ms] | max),
		   cpu_us_per_heartbeat: {
			firebreakd: ([$runs[] | select(.name | test("-fb-hbvis$")) | .firebreakd_cpu_s * 1e6 / .requests] | median | round),
			postgresql: ([$runs[] | select(.name | test("-fb-hbvis$")) | .postgres_cpu_s * 1e6 / .requests] | median | round)},
		   target_visible_ms: 5000}),
	heartbeat_health: (pair("fb-hbhealth"; "fb-heartbeat"; null; "POST /v1/heartbeat with a health object (CPU, memory, per-channel counters; judged per host) vs the same heartbeats without it, same round")
		+ (runs("fb-hbhvis") as $h | runs("fb-hbvis") as $p
		   | [range(0; [$h, $p] | map(length) | min)
		      | {h: ($h[.].requests / $h[.].handler_cpu_s), p: ($p[.].requests / $p[.].handler_cpu_s)}] as $c
		   | {capacity_what: "heartbeats per CPU-second of the HTTP threads of firebreakd during the run, with health vs without: the handling cost (the share of the batch writer grows with distinct agents, the same 100,000 in both); req/s above also moves with PostgreSQL on the server core and with the one wrk thread (client_cpu_s)",
		      capacity_per_cpu_s: {with_health: ($c | map(.h) | median | floor), without: ($c | map(.p) | median | floor)},
		      capacity_ratio: ($c | map(.h / .p) | median * 1000 | round / 1000),
		      capacity_per_round: ($c | map(.h / .p * 1000 | round / 1000)),
		      client_cpu_s: {with_health: (runs("fb-hbhealth") | map(.client_cpu_s) | median),
				     without: (runs("fb-heartbeat") | map(.client_cpu_s) | median),
				     run_s: $dur},
		      target_ratio: 0.9})),
	memory: {agents_added: $mem_agents, rss_before_kib: $rss0, rss_after_load_kib: $rss_loaded,
		 rss_after_kib: $rss1, peak_before_kib: $hwm0, peak_after_kib: $hwm1,
		 bytes_per_agent: (($rss1 - $rss0) * 1024 / $mem_agents | round),
		 peak_bytes_per_agent: (($hwm1 - $hwm0) * 1024 / $mem_agents | round),
		 target_bytes_per_agent: 128,
		 insert_ms: $t_insert_mem, server_load_ms: $t_load_mem,
		 heartbeat_ms: $t_hb_mem, heartbeats_acknowledged: $mem_sent,
		 heartbeat_rps: ($mem_run[0].requests * 1e6 / $mem_run[0].duration_us | floor),
		 heartbeats_visible: $mem_seen, visible_lag_ms: $mem_lag,
		 cores: "all (not a comparison)"},
	gate: {reaction_ms: $gate_ms, hard_cap: $hard_cap, reports_sent_ms: $gate_reported,
	       controller_interval_ms: $ctl_ms, rollout_state: $gate_state, server_timeline: $gate_db}
}' >"$tmp/results.json"
cp "$tmp/results.json" "$OUT"

# --- the table ---------------------------------------------------------------------
jq -r '
def row($n; $o): "\($n)\t\($o.firebreak_rps)\t\($o.nginx_rps)\t\($o.ratio)\t\(if $o.target_ratio then "≥ \($o.target_ratio)" else "-" end)";
"figure\tfirebreak\tnginx\tratio\ttarget",
row("poll 304 (req/s)"; .poll_304),
row("poll 200 (req/s)"; .poll_200),
row("blob 1 MiB (req/s)"; .blob_1mib),
row("heartbeat (req/s)"; .heartbeat),
"heartbeat with health (per HTTP-thread CPU-s, vs without)\t\(.heartbeat_health.capacity_per_cpu_s.with_health)\t\(.heartbeat_health.capacity_per_cpu_s.without)\t\(.heartbeat_health.capacity_ratio)\t≥ 0.9",
"heartbeat with health (req/s, vs without)\t\(.heartbeat_health.firebreak_rps)\t\(.heartbeat_health.nginx_rps)\t\(.heartbeat_health.ratio)\t-",
"heartbeats visible (ms after load, max)\t\(.heartbeat.visible_lag_ms_max)\t-\t-\t≤ 5000",
"memory per agent (bytes, RSS)\t\(.memory.bytes_per_agent)\t-\t-\t≤ 128",
"memory per agent (bytes, peak)\t\(.memory.peak_bytes_per_agent)\t-\t-\t-",
"gate reaction (ms, hard cap \(.gate.hard_cap))\t\(.gate.reaction_ms)\t-\t-\t-"' "$OUT" | column -t -s $'\t'
jq -r '"\(.date), \(.machine.cpus) × \(.machine.cpu_model); \(.machine.core_split)"' "$OUT"
say "wrote $OUT"
