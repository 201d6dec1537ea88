#!/usr/bin/env bash
# Helpers for the cluster rehearsals (tests/e2e/test_cluster_*.sh) and
# `make cluster-demo`: three firebreakd replicas on one database behind the
# shipped deploy/haproxy/haproxy.cfg (the real haproxy binary, TLS with a
# throwaway CA, the agent and operator endpoints apart), and the controller
# lease as GET /v1/controller and the database show it. Source it after
# tests/e2e/rehearsals.sh (which sources lib.sh).

FBC_N=3

# fbc_tls DIR: a throwaway CA and, signed by it, a certificate for
# 127.0.0.1 / localhost (DIR/haproxy.pem: the certificate and its key, as
# HAProxy wants them) and one for the replicas (DIR/replica.pem and
# DIR/replica.key), which names "firebreakd" (what HAProxy verifies, its
# FB_REPLICA_NAME) and 127.0.0.1. DIR/ca.pem is what clients trust.
fbc_tls() {
	local d=$1
	mkdir -p "$d"
	[ -f "$d/replica.key" ] && return 0
	(
		cd "$d" || exit 1
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
			-out ca.pem -days 30 -subj "/CN=firebreak test CA" >/dev/null 2>&1 &&
			fbc_cert . srv "/CN=127.0.0.1" "IP:127.0.0.1,DNS:localhost" &&
			cat srv.pem srv.key >haproxy.pem && chmod 0600 haproxy.pem ca.key srv.key &&
			fbc_cert . replica "/CN=firebreakd" "DNS:firebreakd,IP:127.0.0.1"
	) || fbe_die "test certificates"
}

# fbc_cert DIR NAME SUBJECT SAN: DIR/NAME.pem and DIR/NAME.key (ECDSA P-256),
# signed by DIR/ca.pem with subjectAltName SAN.
fbc_cert() {
	local d=$1 n=$2
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/$n.key" \
		-out "$d/$n.csr" -subj "$3" >/dev/null 2>&1 &&
		printf 'subjectAltName=%s\n' "$4" >"$d/$n.ext" &&
		openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
			-extfile "$d/$n.ext" -out "$d/$n.pem" >/dev/null 2>&1 && chmod 0600 "$d/$n.key"
}

# fbc_haproxy_start DIR [UP]: HAProxy with the shipped configuration in
# front of FBC_PORTS (or the host:port list FBC_TARGETS when set), agents on
# FBC_AGENT_PORT and operators on FBC_ADMIN_PORT (TLS), its stats on
# FBC_STATS_PORT; waits until UP (default: every) replicas are up behind it.
# With FBC_REPLICA_TLS=1 HAProxy reaches the replicas over TLS too
# (FB_REPLICA_CA: the test CA).
fbc_haproxy_start() {
	local d=$1 want=${2:-$FBC_N}
	local t=(${FBC_TARGETS[@]+"${FBC_TARGETS[@]}"})
	[ ${#t[@]} -eq 0 ] && t=("127.0.0.1:${FBC_PORTS[0]}" "127.0.0.1:${FBC_PORTS[1]}" "127.0.0.1:${FBC_PORTS[2]}")
	local replica_tls=()
	[ -n "${FBC_REPLICA_TLS:-}" ] && replica_tls=(FB_REPLICA_CA="$d/tls/ca.pem")
	FBC_AGENT_PORT=$(fbe_free_port)
	FBC_ADMIN_PORT=$(fbe_free_port)
	FBC_STATS_PORT=$(fbe_free_port)
	FBC_AGENT_URL="https://127.0.0.1:$FBC_AGENT_PORT"
	FBC_ADMIN_URL="https://127.0.0.1:$FBC_ADMIN_PORT"
	FBC_CA="$d/tls/ca.pem"
	fbc_tls "$d/tls"
	FB_HAPROXY_NO_DROP=1 FB_HAPROXY_LOG=stderr FB_TLS_PEM="$d/tls/haproxy.pem" \
		FB_AGENT_BIND="127.0.0.1:$FBC_AGENT_PORT" FB_ADMIN_BIND="127.0.0.1:$FBC_ADMIN_PORT" \
		FB_STATS_BIND="127.0.0.1:$FBC_STATS_PORT" FB_CHECK_INTER=${FBC_CHECK_INTER:-500ms} \
		FB_AGENT_TIMEOUT=${FBC_AGENT_TIMEOUT:-1s} FB_HAPROXY_MAXCONN=4000 \
		FB_REPLICA1="${t[0]}" FB_REPLICA2="${t[1]}" FB_REPLICA3="${t[2]}" env "${replica_tls[@]}" \
		haproxy -db -f "$FB_SRC/deploy/haproxy/haproxy.cfg" >>"$d/haproxy.log" 2>&1 &
	FBC_HAPROXY_PID=$!
	for _ in $(seq 200); do
		if [ "$(fbc_up_count agent_api)" = "$want" ] && [ "$(fbc_up_count operator_api)" = "$want" ]; then
			return 0
		fi
		kill -0 "$FBC_HAPROXY_PID" 2>/dev/null || { tail -n 20 "$d/haproxy.log" >&2; fbe_die "haproxy exited"; }
		sleep 0.1
	done
	tail -n 20 "$d/haproxy.log" >&2
	fbe_die "haproxy does not see the replicas up"
}

# fbc_up_count BACKEND: how many of its servers HAProxy has UP.
fbc_up_count() {
	curl -fsS "http://127.0.0.1:$FBC_STATS_PORT/;csv" 2>/dev/null |
		awk -F, -v b="$1" '$1 == b && $2 != "BACKEND" && $18 ~ /^UP/ { n++ } END { print n + 0 }'
}

# fbc_stat BACKEND COLUMN: a column of HAProxy's CSV stats for the backend
# line (e.g. wretr = retries, wredis = redispatches).
fbc_stat() {
	curl -fsS "http://127.0.0.1:$FBC_STATS_PORT/;csv" 2>/dev/null |
		awk -F, -v b="$1" -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col || $i == "# " col) c = i }
			$1 == b && $2 == "BACKEND" { print $c + 0 }'
}

# fbc_up NAME [server flags...]: world, uploads, database, FBC_N replicas and
# HAProxy in $FBT_WORK/cluster-NAME. Sets FBE_DIR FBE_DB FBE_TOKEN FBE_WORLD
# FBE_CONTENT FBC_PIDS FBC_PORTS FBC_AGENT_URL FBC_ADMIN_URL FBC_CA.
fbc_up() {
	local name=$1
	shift
	FBE_DIR="$FBT_WORK/cluster-$name"
	FBE_WORLD="$FBE_DIR/world"
	FBE_CONTENT="$FBE_DIR/content"
	mkdir -p "$FBE_DIR"
	fbe_world "$FBE_WORLD"
	fbe_contents "$FBE_WORLD" "$FBE_CONTENT" 291
	FBE_DB=$(fbe_db "cluster_$name")
	FBC_PIDS=()
	FBC_PORTS=()
	trap fbc_down EXIT
	fbc_tls "$FBE_DIR/tls"
	local i tls=()
	if [ -n "${FBC_REPLICA_TLS:-}" ]; then
		tls=(--tls_cert="$FBE_DIR/tls/replica.pem" --tls_key="$FBE_DIR/tls/replica.key")
		FBE_SERVER_CA="$FBE_DIR/tls/ca.pem"
	fi
	for i in $(seq 0 $((FBC_N - 1))); do
		FBC_PORTS[i]=$(fbe_free_port)
		fbe_server_start "$FBE_WORLD" "$FBE_DB" "${FBC_PORTS[i]}" "$FBE_DIR/firebreakd-$i.log" "${tls[@]}" "$@"
		FBC_PIDS[i]=$FBE_SERVER_PID
	done
	FBE_SERVER_PID=
	FBE_SERVER_CA=
	fbc_haproxy_start "$FBE_DIR"
	FBE_TOKEN=$(fbe_token "$FBE_DB")
}

# fbc_down: every replica (woken first, should one be stopped), then HAProxy.
fbc_down() {
	local p
	for p in "${FBC_PIDS[@]}" ${FBC_HAPROXY_PID:-}; do
		kill -CONT "$p" 2>/dev/null
		kill "$p" 2>/dev/null
	done
	for p in "${FBC_PIDS[@]}" ${FBC_HAPROXY_PID:-}; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	FBC_PIDS=()
	FBC_HAPROXY_PID=
}

# fbc_api PATH: GET through the operator endpoint as the admin.
fbc_api() {
	curl -fsS --cacert "$FBC_CA" -H "Authorization: Bearer $FBE_TOKEN" "$FBC_ADMIN_URL$1"
}

# fbc_db_ms: the database's clock in milliseconds (the lease's clock).
fbc_db_ms() {
	psql "$FBE_DB" -qAtXc "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"
}

# fbc_leader: the index (0..FBC_N-1) of the replica that holds a valid
# lease, or nothing when none does (from the lease row: a hung replica
# behind the balancer cannot delay the answer).
fbc_leader() {
	local pid i
	pid=$(psql "$FBE_DB" -qAtXc "SELECT split_part(holder, ':', 2) FROM controller_lease
		WHERE expires_at > clock_timestamp()")
	for i in "${!FBC_PIDS[@]}"; do
		[ -n "$pid" ] && [ "${FBC_PIDS[i]}" = "$pid" ] && echo "$i"
	done
}

# fbc_wait_leader_not I T0: wait (up to 30 s) until a replica other than I
# leads; prints how many ms after T0 (fbc_db_ms) it took the lease, by the
# database's clock, or -1.
fbc_wait_leader_not() {
	local old=$1 t0=$2 l
	for _ in $(seq 600); do
		l=$(fbc_leader)
		if [ -n "$l" ] && [ "$l" != "$old" ]; then
			psql "$FBE_DB" -qAtXc "SELECT (extract(epoch FROM acquired_at) * 1000)::bigint - $t0
				FROM controller_lease"
			return 0
		fi
		sleep 0.05
	done
	echo -1
}

# fbc_fleet_bg SCENARIO STATUS [fb-fleet flags...]: fb-fleet through
# HAProxy (agents on the agent endpoint, the set-up on the operator one) in
# the background; the summary goes to $FBE_DIR/summary.json. Sets FBC_FLEET.
fbc_fleet_bg() {
	local scn=$1 status=$2
	shift 2
	"$FB_BIN/fb-fleet" --server "$FBC_ADMIN_URL" --agent-server "$FBC_AGENT_URL" --cacert "$FBC_CA" \
		--token "$FBE_TOKEN" --root "$FBE_WORLD/root.json" --templates "$FB_SRC/schema/templates" \
		--scenario "$FBE_SCN/$scn" --content-dir "$FBE_CONTENT" --status-file "$status" --json "$@" \
		>"$FBE_DIR/summary.json" 2>"$FBE_DIR/fleet.log" &
	FBC_FLEET=$!
}

# fbc_wait_status STATUS JQ-FILTER: wait until the fleet's status file
# matches (or the fleet ended); 0 when it matched.
fbc_wait_status() {
	local status=$1 filter=$2
	for _ in $(seq 3000); do
		if [ -f "$status" ] && jq -e "$filter" "$status" >/dev/null 2>&1; then return 0; fi
		kill -0 "$FBC_FLEET" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# fbc_epoch_rows EPOCH: rows the controller wrote in that epoch.
fbc_epoch_rows() {
	psql "$FBE_DB" -qAtXc "SELECT (SELECT count(*) FROM gate_evaluations WHERE controller_epoch = $1) +
		(SELECT count(*) FROM audit_log WHERE controller_epoch = $1) +
		(SELECT count(*) FROM notifications WHERE controller_epoch = $1)"
}

# fbc_json FILE JSON: write a small JSON document for fbe_expect.
fbc_json() {
	echo "$2" >"$1"
}
