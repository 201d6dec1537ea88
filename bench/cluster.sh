#!/usr/bin/env bash
# make bench, cluster part: what the shipped HAProxy configuration costs and
# what TLS costs, on this machine, in one run (bench/README.md, "Cluster").
#   bench/cluster.sh BUILD      (make bench runs it after bench/run.sh)
# 1. poll (304) and heartbeat through HAProxy's agent endpoint (TLS,
#    keep-alive) with one replica and with three, beside the same load
#    straight to one replica (plain HTTP) in the same round;
# 2. new TLS connections per second, full handshakes and resumed ones,
#    against firebreakd's own TLS, HAProxy and nginx with one certificate.
# Everything on 127.0.0.1 or unix sockets in a temporary directory, every
# load bounded in time, everything torn down on exit. Results:
# bench/cluster-results.json and a table on stdout.
set -euo pipefail

BUILD=${1:-build/bench}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=$SRC/$BUILD/bin
case $BUILD in /*) BIN=$BUILD/bin ;; esac
DUR=${FB_BENCH_SECONDS:-5}
ROUNDS=${FB_BENCH_CLUSTER_ROUNDS:-3}
CONNS=${FB_BENCH_CONNECTIONS:-64}
AGENTS=${FB_BENCH_CLUSTER_AGENTS:-20000}
OUT=${FB_BENCH_CLUSTER_OUT:-$SRC/bench/cluster-results.json}
LUA=$SRC/bench/agents.lua

for tool in wrk nginx haproxy openssl taskset psql curl jq; do
	command -v "$tool" >/dev/null || { echo "bench: '$tool' is missing (run make deps)" >&2; exit 1; }
done
[ -x "$BIN/firebreakd" ] && [ -x "$BIN/fb-bench-setup" ] || { echo "bench: build $BUILD first" >&2; exit 1; }

NCPU=$(nproc)
if [ "$NCPU" -ge 2 ]; then
	SRV_CPUS="0-$((NCPU - 2))" LOAD_CPUS="$((NCPU - 1))" SRV_N=$((NCPU - 1))
else
	SRV_CPUS=0 LOAD_CPUS=0 SRV_N=1
fi

tmp=$(mktemp -d /tmp/fb-bench-cluster.XXXXXX)
chmod 755 "$tmp"
mkdir -p "$tmp/res" "$tmp/www" "$tmp/nginx" "$tmp/tls"
PIDS=()
cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	"$SRC/tests/pg.sh" stop "$tmp/pg" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { printf 'bench: %s\n' "$*" >&2; }
free_port() {
	local p
	for p in $(shuf -i 10000-30000 -n 50); do
		if ! ss -Htan "sport = :$p" | grep -q .; then echo "$p"; return; fi
	done
	echo "bench: no free port" >&2
	exit 1
}
wait_http() { # URL [CURL FLAGS...]
	local u=$1
	shift
	for _ in $(seq 200); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$@" "$u")" = 200 ] && return 0
		sleep 0.1
	done
	echo "bench: $u does not answer" >&2
	exit 1
}

# --- PostgreSQL, agents, replicas -------------------------------------------
say "PostgreSQL in $tmp/pg; $AGENTS agents"
taskset -c "$SRV_CPUS" "$SRC/tests/pg.sh" start "$tmp/pg" >/dev/null
DB=$("$SRC/tests/pg.sh" env "$tmp/pg")
sql() { psql "$DB" -XAtq -v ON_ERROR_STOP=1 "$@"; }
"$BIN/firebreakd" migrate --db="$DB" >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log" >&2; exit 1; }
export FBT_WORK=$tmp FB_SRC=$SRC
mapfile -t WORLD < <("$BIN/fb-bench-setup" world "$tmp")
CAPS=$(cat "$tmp/caps.json")
sql -v n="$AGENTS" -v caps="$CAPS" >/dev/null <<'SQL'
INSERT INTO agents (id, public_key, tags, hostname, agent_version, capabilities)
SELECT i, decode(lpad(to_hex(i), 64, '0'), 'hex'), '{}', 'bench-' || i, '1.0.0', :'caps'::jsonb
FROM generate_series(1, :n::bigint) AS i;
SELECT setval('agents_id_seq', (SELECT max(id) FROM agents));
SQL

# the certificate every TLS server below uses: ECDSA P-256, as deploy/README.md advises
(cd "$tmp/tls" && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem \
	-out cert.pem -days 2 -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1 &&
	cat cert.pem key.pem >haproxy.pem)

REPLICA_PORTS=()
replica() { # [FLAGS...]: start one more replica; its port is appended to REPLICA_PORTS
	local port
	port=$(free_port)
	taskset -c "$SRV_CPUS" "$BIN/firebreakd" serve --listen=127.0.0.1 --port="$port" --db="$DB" \
		--threads="$SRV_N" --log_level=warn "${WORLD[@]}" "$@" >>"$tmp/firebreakd-$port.log" 2>&1 &
	PIDS+=($!)
	REPLICA_PORTS+=("$port")
}
replica
FB="http://127.0.0.1:${REPLICA_PORTS[0]}"
wait_http "$FB/readyz"

KEY=$(sql -c "SELECT encode(value, 'hex') FROM server_secrets WHERE name = 'agent_token_key'")
"$BIN/fb-bench-setup" tokens "$KEY" 1 "$AGENTS" >"$tmp/tokens.txt"
# every agent's ETag: one poll per agent of the first 4,096 (all rings)
head -n 4096 "$tmp/tokens.txt" | while read -r tok; do
	e=$(curl -sS -D - -o /dev/null -H "Authorization: Bearer $tok" "$FB/v1/poll" |
		awk 'tolower($1) == "etag:" {sub(/\r$/, ""); print $2}')
	echo "$tok $e"
done >"$tmp/poll304.txt"
export FB_BENCH_CAPS=$CAPS FB_BENCH_ACTIVE='{}'

HPORT=$(free_port) HSTATS=$(free_port)
HP="https://127.0.0.1:$HPORT"
HAPID=
haproxy_start() { # the shipped configuration in front of REPLICA1..3 (host:port)
	if [ -n "$HAPID" ]; then
		kill "$HAPID" 2>/dev/null || true
		wait "$HAPID" 2>/dev/null || true
	fi
	FB_HAPROXY_NO_DROP=1 FB_HAPROXY_LOG=stderr FB_TLS_PEM="$tmp/tls/haproxy.pem" \
		FB_AGENT_BIND="127.0.0.1:$HPORT" FB_ADMIN_BIND="127.0.0.1:$(free_port)" \
		FB_STATS_BIND="127.0.0.1:$HSTATS" FB_HAPROXY_MAXCONN=4000 FB_CHECK_INTER=1s \
		FB_REPLICA1="$1" FB_REPLICA2="$2" FB_REPLICA3="$3" \
		taskset -c "$SRV_CPUS" haproxy -db -f "$SRC/deploy/haproxy/haproxy.cfg" 2>>"$tmp/haproxy.log" >/dev/null &
	HAPID=$!
	PIDS+=("$HAPID")
	for _ in $(seq 100); do
		[ "$(curl -fsS "http://127.0.0.1:$HSTATS/;csv" 2>/dev/null |
			awk -F, '$1 == "agent_api" && $2 ~ /^fb[0-9]$/ && $18 ~ /^UP/ { n++ } END { print n + 0 }')" = 3 ] && return 0
		sleep 0.1
	done
	echo "bench: haproxy does not see its servers up" >&2
	exit 1
}

run() { # NAME URL MODE FILE
	local name=$1 url=$2 mode=$3 file=$4
	taskset -c "$LOAD_CPUS" wrk -t1 -c"$CONNS" -d"${DUR}s" --timeout 10s -s "$LUA" "$url" -- "$mode" "$file" \
		>"$tmp/res/$name.txt" 2>&1 || { cat "$tmp/res/$name.txt" >&2; return 1; }
	grep '^{' "$tmp/res/$name.txt" | tail -n 1 >"$tmp/res/$name.json"
	jq -r --arg n "$name" '"  \($n): \(.requests * 1e6 / .duration_us | floor) req/s, p99 \(.latency_us.p99) us, status errors \(.errors.status)"' \
		"$tmp/res/$name.json" >&2
}
round() { # TAG: direct and through HAProxy, poll 304 then heartbeat
	run "$1-direct-poll304" "$FB/v1/poll" poll304 "$tmp/poll304.txt"
	run "$1-haproxy-poll304" "$HP/v1/poll" poll304 "$tmp/poll304.txt"
	run "$1-direct-heartbeat" "$FB/v1/heartbeat" heartbeat "$tmp/tokens.txt"
	run "$1-haproxy-heartbeat" "$HP/v1/heartbeat" heartbeat "$tmp/tokens.txt"
}

# --- 1. through HAProxy: one replica, then three ---------------------------
one="127.0.0.1:${REPLICA_PORTS[0]}"
haproxy_start "$one" "$one" "$one"
[ "$(curl -s -o /dev/null -w '%{http_code}' -k "$HP/v1/rollouts")" = 404 ] || { echo "bench: the agent endpoint is not the shipped one" >&2; exit 1; }
for r in $(seq 1 "$ROUNDS"); do
	say "one replica behind HAProxy, round $r of $ROUNDS ($DUR s each, $CONNS connections)"
	round "r$r-n1"
done
replica
replica
wait_http "http://127.0.0.1:${REPLICA_PORTS[1]}/readyz"
wait_http "http://127.0.0.1:${REPLICA_PORTS[2]}/readyz"
haproxy_start "$one" "127.0.0.1:${REPLICA_PORTS[1]}" "127.0.0.1:${REPLICA_PORTS[2]}"
for r in $(seq 1 "$ROUNDS"); do
	say "three replicas behind HAProxy, round $r of $ROUNDS"
	round "r$r-n3"
done

# --- 2. new TLS connections: firebreakd's own TLS, HAProxy, nginx ------------
replica --tls_cert="$tmp/tls/cert.pem" --tls_key="$tmp/tls/key.pem"
FBTLS="https://127.0.0.1:${REPLICA_PORTS[3]}"
wait_http "$FBTLS/healthz" -k
NGPORT=$(free_port)
cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes $SRV_N;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
	log_format reuse '\$ssl_session_reused \$ssl_protocol';
	access_log $tmp/nginx/access.log reuse;
	ssl_protocols TLSv1.2 TLSv1.3;
	ssl_session_cache shared:SSL:10m;
	ssl_session_timeout 10m;
	client_body_temp_path $tmp/nginx/body;
	proxy_temp_path $tmp/nginx/proxy;
	fastcgi_temp_path $tmp/nginx/fastcgi;
	uwsgi_temp_path $tmp/nginx/uwsgi;
	scgi_temp_path $tmp/nginx/scgi;
	server {
		listen 127.0.0.1:$NGPORT ssl;
		ssl_certificate $tmp/tls/cert.pem;
		ssl_certificate_key $tmp/tls/key.pem;
		root $tmp/www;
		location / { }
	}
}
CONF
echo ok >"$tmp/www/healthz"
taskset -c "$SRV_CPUS" nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
PIDS+=($!)
wait_http "https://127.0.0.1:$NGPORT/healthz" -k

# openssl s_time: handshakes (TLS 1.3 and 1.2) with a new session each time,
# then with the first session resumed, for DUR seconds each, one connection
# at a time from the load core. -www fetches /healthz (a small answer).
tls_rate() { # NAME HOST:PORT VERSION MODE
	local out
	out=$(taskset -c "$LOAD_CPUS" openssl s_time -connect "$2" "-$3" "-$4" -time "$DUR" -www /healthz 2>&1 || true)
	echo "$out" >"$tmp/res/tls-$1.txt"
	# "N connections in T real seconds, B bytes read per connection"
	echo "$out" | awk '/connections in [0-9.]+ real seconds/ { r = $1 / $4 } END { printf "%.0f\n", r + 0 }'
}
declare -A TLS
for v in tls1_3 tls1_2; do
	for m in new reuse; do
		for s in firebreakd haproxy nginx; do
			case $s in
			firebreakd) hp="127.0.0.1:${REPLICA_PORTS[3]}" ;;
			haproxy) hp="127.0.0.1:$HPORT" ;;
			nginx) hp="127.0.0.1:$NGPORT" ;;
			esac
			TLS[$s-$v-$m]=$(tls_rate "$s-$v-$m" "$hp" "$v" "$m")
			say "  TLS $v $m connections/s, $s: ${TLS[$s-$v-$m]}"
		done
	done
done

# wrk with "Connection: close": a new TCP and TLS connection for every
# request, 64 at a time; the rate is new connections per second under
# concurrency. nginx logs whether each session was resumed, which tells
# whether wrk resumes (the same client against all three).
close_rate() { # NAME URL
	taskset -c "$LOAD_CPUS" wrk -t1 -c"$CONNS" -d"${DUR}s" --timeout 10s -H "Connection: close" "$2" \
		>"$tmp/res/close-$1.txt" 2>&1 || true
	awk '/^Requests\/sec:/ { printf "%.0f\n", $2 }' "$tmp/res/close-$1.txt"
}
: >"$tmp/nginx/access.log"
for s in firebreakd haproxy nginx; do
	case $s in
	firebreakd) u="$FBTLS/healthz" ;;
	haproxy) u="$HP/healthz" ;;
	nginx) u="https://127.0.0.1:$NGPORT/healthz" ;;
	esac
	TLS[$s-wrk-close]=$(close_rate "$s" "$u")
	say "  TLS new connections/s under $CONNS concurrent clients (wrk, Connection: close), $s: ${TLS[$s-wrk-close]}"
done
WRK_REUSED=$(awk '$1 == "r" { r++ } END { printf "%.3f\n", NR ? r / NR : 0 }' "$tmp/nginx/access.log")
WRK_PROTO=$(awk '{ print $2 }' "$tmp/nginx/access.log" | sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }')
say "  wrk's sessions resumed (nginx's log): $WRK_REUSED, protocol $WRK_PROTO"

# --- results --------------------------------------------------------------------
{
	for f in "$tmp"/res/r*.json; do jq -c --arg n "$(basename "$f" .json)" '{name: $n} + .' "$f"; done
} >"$tmp/runs.jsonl"
tls_json=$(for k in "${!TLS[@]}"; do echo "{\"$k\": ${TLS[$k]}}"; done | jq -s 'add')
jq -n --slurpfile runs "$tmp/runs.jsonl" --argjson tls "$tls_json" \
	--argjson wrk_reused "$WRK_REUSED" --arg wrk_proto "$WRK_PROTO" \
	--arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --argjson ncpu "$NCPU" \
	--arg commit "$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	--arg haproxy "$(haproxy -v | head -n 1)" --arg nginx "$(nginx -v 2>&1 | sed 's/^nginx version: //')" \
	--arg openssl "$(openssl version)" --argjson agents "$AGENTS" --argjson conns "$CONNS" \
	--argjson dur "$DUR" --argjson rounds "$ROUNDS" --arg split "server side (replicas, HAProxy, nginx, PostgreSQL) on CPU $SRV_CPUS; load (wrk, openssl s_time) on CPU $LOAD_CPUS" '
def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
	else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def rps: .requests * 1e6 / .duration_us | floor;
def rate($k): [$runs[] | select(.name | test("^r[0-9]+-" + $k + "$")) | rps] | median;
def ratio($a; $b): [range(1; $rounds + 1) | tostring as $r
	| ([$runs[] | select(.name == "r" + $r + "-" + $a) | rps][0]) as $x
	| ([$runs[] | select(.name == "r" + $r + "-" + $b) | rps][0]) as $y
	| if $x and $y and $y > 0 then $x / $y else empty end] | median;
def errs($k): [$runs[] | select(.name | test("^r[0-9]+-" + $k + "$")) | .errors.status] | add;
{date: $date, commit: $commit, cpus: $ncpu, core_split: $split,
 versions: {haproxy: $haproxy, nginx: $nginx, openssl: $openssl},
 load: {agents: $agents, wrk_connections: $conns, seconds_per_run: $dur, rounds: $rounds,
        haproxy: "deploy/haproxy/haproxy.cfg, agent endpoint, TLS 1.3 keep-alive; direct: plain HTTP to one replica"},
 through_haproxy: (reduce ("poll304", "heartbeat") as $m ({};
   . + {($m): {
     one_replica: {haproxy_rps: rate("n1-haproxy-" + $m), direct_rps: rate("n1-direct-" + $m),
                   ratio_to_direct: ratio("n1-haproxy-" + $m; "n1-direct-" + $m), status_errors: errs("n1-haproxy-" + $m)},
     three_replicas: {haproxy_rps: rate("n3-haproxy-" + $m), direct_rps: rate("n3-direct-" + $m),
                      ratio_to_direct: ratio("n3-haproxy-" + $m; "n3-direct-" + $m), status_errors: errs("n3-haproxy-" + $m)},
     three_to_one: ((rate("n3-haproxy-" + $m) // 0) / (rate("n1-haproxy-" + $m) // 1))}})),
 tls_connections_per_s: $tls,
 tls_notes: {sequential: "openssl s_time, one connection at a time, -new: full handshakes, -reuse: the first session resumed; GET /healthz each",
             wrk_close: "wrk -c CONNS with Connection: close: one TLS connection per request",
             wrk_sessions_resumed: $wrk_reused, wrk_protocol: $wrk_proto},
 runs: $runs}' >"$OUT"

printf '\n%-34s %12s %12s %8s\n' "through HAProxy (req/s, median)" "HAProxy" "direct" "ratio"
for m in poll304 heartbeat; do
	for n in one_replica three_replicas; do
		jq -r --arg m "$m" --arg n "$n" '.through_haproxy[$m][$n] | "\($m), \($n)\t\(.haproxy_rps)\t\(.direct_rps)\t\(.ratio_to_direct * 100 | floor / 100)"' "$OUT" |
			awk -F'\t' '{printf "%-34s %12s %12s %8s\n", $1, $2, $3, $4}'
	done
done
printf '\n%-34s %12s %12s %12s\n' "new TLS connections/s" "firebreakd" "HAProxy" "nginx"
for v in tls1_3 tls1_2; do
	for m in new reuse; do
		printf '%-34s %12s %12s %12s\n' "$v $m (s_time, sequential)" "${TLS[firebreakd-$v-$m]}" "${TLS[haproxy-$v-$m]}" "${TLS[nginx-$v-$m]}"
	done
done
printf '%-34s %12s %12s %12s\n' "$CONNS clients, Connection: close" "${TLS[firebreakd-wrk-close]}" "${TLS[haproxy-wrk-close]}" "${TLS[nginx-wrk-close]}"
echo "(wrk resumed $WRK_REUSED of its sessions, $WRK_PROTO, by nginx's log)"
say "results in ${OUT#$SRC/}"
