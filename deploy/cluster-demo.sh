#!/usr/bin/env bash
# make cluster-demo: the production shape on one machine. A local PostgreSQL,
# three firebreakd replicas, HAProxy with deploy/haproxy/haproxy.cfg (TLS
# with a throwaway CA; agents and operators on separate endpoints), then the
# two rehearsals of `make demo` through it: a good file that reaches the
# whole fleet, and a Channel-File-291-shaped file halted in the canary ring.
# Everything lives under var/ (re-runnable; new channels each run).
# Usage: deploy/cluster-demo.sh [BUILD] [AGENTS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
N=${2:-1000}
export FB_SRC="$root" FB_BIN="$root/$BUILD/bin"
case $BUILD in /*) FB_BIN="$BUILD/bin" ;; esac
base=${FB_CLUSTER_PORT:-8080}  # replicas on base+1..base+3
agent_port=${FB_CLUSTER_AGENT_PORT:-8443}
admin_port=${FB_CLUSTER_ADMIN_PORT:-9443}
stats_port=${FB_CLUSTER_STATS_PORT:-8404}
var="$root/var"
cl="$var/cluster"
mkdir -p "$cl"
source "$root/tests/e2e/lib.sh"
source "$root/tests/e2e/cluster.sh"
command -v haproxy >/dev/null || { echo "haproxy is missing: make deps" >&2; exit 1; }

stop_pidfile() {
	local f=$1 p
	[ -f "$f" ] || return 0
	p=$(cat "$f")
	if kill -0 "$p" 2>/dev/null; then
		kill -CONT "$p" 2>/dev/null || true
		kill "$p"
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -f "$f"
}
port_free() {
	if (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then
		echo "port $1 is in use by another program: set FB_CLUSTER_PORT / FB_CLUSTER_*_PORT" >&2
		exit 1
	fi
}

echo "== 1. local database (var/pg)"
"$root/deploy/dev-db.sh" start | tail -n 1
db=$("$root/deploy/dev-db.sh" url)

echo "== 2. keys and root of trust (var/trust), TLS certificates (var/cluster/tls)"
fbe_world "$var/trust"
fbc_tls "$cl/tls"
echo "   CA: var/cluster/tls/ca.pem; server certificate for 127.0.0.1 and localhost"

echo "== 3. three firebreakd replicas on 127.0.0.1:$((base + 1))..$((base + 3))"
stop_pidfile "$cl/haproxy.pid"
FBC_PORTS=()
FBC_PIDS=()
for i in 0 1 2; do
	stop_pidfile "$cl/firebreakd-$i.pid"
	FBC_PORTS[i]=$((base + 1 + i))
	port_free "${FBC_PORTS[i]}"
	setsid "$FB_BIN/firebreakd" serve --db="$db" --port="${FBC_PORTS[i]}" --online_key="$var/trust/online.key" \
		--root="$var/trust/root.json" --templates="$root/schema/templates" --corpus="$root/schema/corpus" \
		"${FBE_SERVER_FLAGS[@]}" --restart_grace_s=0 >>"$cl/firebreakd-$i.log" 2>&1 </dev/null &
	FBC_PIDS[i]=$!
	echo "${FBC_PIDS[i]}" >"$cl/firebreakd-$i.pid"
done
for i in 0 1 2; do
	for _ in $(seq 300); do
		curl -fsS "http://127.0.0.1:${FBC_PORTS[i]}/readyz" >/dev/null 2>&1 && break
		kill -0 "${FBC_PIDS[i]}" 2>/dev/null || { tail -n 20 "$cl/firebreakd-$i.log"; exit 1; }
		sleep 0.1
	done
done
echo "   ready (logs: var/cluster/firebreakd-{0,1,2}.log)"

echo "== 4. HAProxy: agents https://127.0.0.1:$agent_port, operators https://127.0.0.1:$admin_port"
for p in "$agent_port" "$admin_port" "$stats_port"; do port_free "$p"; done
FBC_STATS_PORT=$stats_port
FB_HAPROXY_NO_DROP=1 FB_HAPROXY_LOG=stderr FB_TLS_PEM="$cl/tls/haproxy.pem" \
	FB_AGENT_BIND="127.0.0.1:$agent_port" FB_ADMIN_BIND="127.0.0.1:$admin_port" \
	FB_STATS_BIND="127.0.0.1:$stats_port" FB_HAPROXY_MAXCONN=4000 \
	FB_REPLICA1="127.0.0.1:${FBC_PORTS[0]}" FB_REPLICA2="127.0.0.1:${FBC_PORTS[1]}" \
	FB_REPLICA3="127.0.0.1:${FBC_PORTS[2]}" \
	setsid haproxy -db -f "$root/deploy/haproxy/haproxy.cfg" >>"$cl/haproxy.log" 2>&1 </dev/null &
echo $! >"$cl/haproxy.pid"
for _ in $(seq 200); do
	[ "$(fbc_up_count agent_api)" = 3 ] && [ "$(fbc_up_count operator_api)" = 3 ] && break
	sleep 0.1
done
echo "   $(fbc_up_count agent_api) of 3 replicas up behind it (stats: http://127.0.0.1:$stats_port/)"
if [ ! -s "$var/admin.token" ]; then
	(umask 077 && "$FB_BIN/firebreakd" token create --role admin --name "demo-admin-$(date +%s)" --db="$db" \
		>"$var/admin.token" 2>/dev/null)
fi
tok=$(cat "$var/admin.token")
ctl=$(curl -fsS --cacert "$cl/tls/ca.pem" -H "Authorization: Bearer $tok" "https://127.0.0.1:$admin_port/v1/controller")
echo "   controller: $(jq -r '"replica \(.leader), epoch \(.epoch), lease \(.lease_ms) ms"' <<<"$ctl")"

seq_file="$var/demo.seq"
run=$(($(cat "$seq_file" 2>/dev/null || echo 0) + 1))
echo "$run" >"$seq_file"
rc=0
rehearse() {
	local scn=$1 ch=$2 label=$3
	local dir="$var/demo/cluster-run$run-$scn"
	mkdir -p "$dir"
	fbe_contents "$var/trust" "$dir" "$ch"
	echo
	echo "== $label ($N simulated agents through HAProxy, channel $ch)"
	if ! "$FB_BIN/fb-fleet" --server "https://127.0.0.1:$admin_port" --agent-server "https://127.0.0.1:$agent_port" \
		--cacert "$cl/tls/ca.pem" --token-file "$var/admin.token" --root "$var/trust/root.json" \
		--templates "$root/schema/templates" --scenario "$root/tests/e2e/scenarios/$scn.json" \
		--content-dir "$dir" --agents "$N" --channel "$ch" --json >"$dir/summary.json" 2>"$dir/fleet.log"; then
		rc=1
	fi
	grep -v '^fb-fleet: [0-9]*s:' "$dir/fleet.log" || true
	echo "   (JSON summary: ${dir#$root/}/summary.json)"
}
rehearse demo-good $((1000 + 2 * run)) "5. rehearsal: a good file, rolled out ring by ring"
rehearse demo-bad $((1001 + 2 * run)) "6. rehearsal: a Channel-File-291-shaped file (crashes every host, boot-loop)"

echo
if [ "$rc" -eq 0 ]; then echo "Both rehearsals behaved as expected."; else echo "A rehearsal did NOT behave as expected (see above)."; fi
echo "HAProxy: agent_api retries $(fbc_stat agent_api wretr), redispatches $(fbc_stat agent_api wredis)"
echo
echo "The cluster keeps running:"
echo "  dashboard:   https://127.0.0.1:$admin_port/  (trust var/cluster/tls/ca.pem; token in var/admin.token)"
echo "  controller:  curl --cacert var/cluster/tls/ca.pem -H \"Authorization: Bearer \$(cat var/admin.token)\" https://127.0.0.1:$admin_port/v1/controller"
echo "  try:         kill -STOP <pid of the leading replica>, watch another take over, kill -CONT it"
echo "  stop:        for f in var/cluster/*.pid; do kill \$(cat \$f); done; deploy/dev-db.sh stop"
exit "$rc"
