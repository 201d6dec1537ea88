#!/usr/bin/env bash
# Cluster with TLS on both hops: three replicas that serve only HTTPS
# (tls_cert / tls_key, a certificate of a private CA naming "firebreakd")
# behind the shipped HAProxy configuration with FB_REPLICA_CA set, so that
# HAProxy reaches them over TLS and verifies their certificate. The real
# agent (fb-agent --once: enroll, poll, verify, heartbeat) goes through the
# agent endpoint and an operator through the operator endpoint; then
# replicas with a certificate of another CA, or of the right CA for another
# name, are kept out (HAProxy marks them down) although they answer HTTPS.
# And an idle agent connection outlives the heartbeat interval's worth of
# client time-out (35 s of it: the test's longest wait).
source "$(dirname "$0")/rehearsals.sh"
source "$(dirname "$0")/cluster.sh"

FBC_REPLICA_TLS=1
fbc_up tls --restart_grace_s=0
d=$FBE_DIR
tls=$d/tls

# the replicas speak TLS only: HAProxy's checks passed (fbc_up waited for
# every replica up in both backends), so they went over TLS
plain=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:${FBC_PORTS[0]}/readyz")
direct=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 --cacert "$tls/ca.pem" "https://127.0.0.1:${FBC_PORTS[0]}/readyz")
fbc_json "$d/hop.json" "{\"plain\": \"$plain\", \"https\": \"$direct\", \"up_agents\": $(fbc_up_count agent_api),
  \"up_operators\": $(fbc_up_count operator_api), \"up_stream\": $(fbc_up_count event_stream)}"
fbe_expect "tls: the replicas refuse plain HTTP and answer HTTPS" "$d/hop.json" '.plain != "200" and .https == "200"'
fbe_expect "tls: HAProxy sees every replica up over TLS (agent, operator, event-stream backends)" "$d/hop.json" \
	'.up_agents == 3 and .up_operators == 3 and .up_stream == 3'

# an operator request (a POST) and a read through the operator endpoint
curl -sS --cacert "$FBC_CA" -H "Authorization: Bearer $FBE_TOKEN" -H 'Content-Type: application/json' \
	-d '{"name": "tls-hop", "tags": {"ring": "canary"}, "max_uses": 1}' \
	"$FBC_ADMIN_URL/v1/enrollment-tokens" >"$d/enroll-token.json"
fbc_json "$d/operator.json" "{\"token\": $(cat "$d/enroll-token.json"), \"controller\": $(fbc_api /v1/controller)}"
fbe_expect "tls: an operator POST through HAProxy (an enrollment token)" "$d/operator.json" '.token.token | type == "string"'
fbe_expect "tls: an operator GET through HAProxy names a leader" "$d/operator.json" '.controller.leader != null'

# the real agent, one cycle, through the agent endpoint
"$FB_BIN/fb-agent" --once --server "$FBC_AGENT_URL" --ca-bundle "$FBC_CA" --root "$FBE_WORLD/root.json" \
	--templates "$FB_SRC/schema/templates" --state-dir "$d/agent" --hostname tls-hop \
	--enroll-token "$(jq -r .token "$d/enroll-token.json")" --scan-max-events 0 >"$d/agent.log" 2>&1
arc=$?
id=$(grep -o 'enrolled as agent [0-9]*' "$d/agent.log" | grep -o '[0-9]*$')
seen=null
for _ in $(seq 50); do # the heartbeat is written within heartbeat_flush_ms (200 ms)
	[ -n "$id" ] || break
	seen=$(fbc_api "/v1/agents/$id" | jq '.last_seen')
	[ "$seen" != null ] && break
	sleep 0.1
done
polls=$(for p in "${FBC_PORTS[@]}"; do
	curl -fsS --cacert "$tls/ca.pem" "https://127.0.0.1:$p/metrics"
done | awk 'index($0, "firebreak_http_requests_total{route=\"GET /v1/poll\",status=\"200\"}") == 1 { n += $NF }
	END { print n + 0 }')
fbc_json "$d/agent.json" "{\"exit\": $arc, \"id\": ${id:-null}, \"last_seen\": $seen, \"polls\": $polls}"
echo "tls: fb-agent --once exit $arc, agent ${id:-none}, last seen $seen, polls answered by the replicas: $polls"
fbe_expect "tls: fb-agent enrolled, polled (signed assignment verified) and heartbeated through HAProxy" "$d/agent.json" \
	'.exit == 0 and .id != null and .polls >= 1'
fbe_expect "tls: its heartbeat reached the database" "$d/agent.json" '.last_seen != null'

# an agent's connection stays open between heartbeats: one request, 35 s
# idle (longer than timeout client in the defaults), a second request on the
# same TLS connection (timeout http-keep-alive, 75 s, applies only when the
# agents frontend's timeout client is longer; it was not until 7 Dec 2026)
mkfifo "$d/ka.in"
openssl s_client -quiet -CAfile "$FBC_CA" -verify_return_error -connect "127.0.0.1:$FBC_AGENT_PORT" \
	<"$d/ka.in" >"$d/ka.out" 2>"$d/ka.err" &
ka=$!
exec 7>"$d/ka.in"
ka_get() { (printf 'GET /v1/root HTTP/1.1\r\nHost: firebreak\r\n\r\n' >&7) 2>/dev/null; } # closed: SIGPIPE in the subshell only
ka_get
sleep 35
ka_get
for _ in $(seq 30); do [ "$(grep -c '^HTTP/1.1 200' "$d/ka.out")" -ge 2 ] && break; sleep 0.1; done
exec 7>&-
kill "$ka" 2>/dev/null
wait "$ka" 2>/dev/null
fbc_json "$d/keepalive.json" "{\"answers\": $(grep -c '^HTTP/1.1 200' "$d/ka.out")}"
echo "tls: two requests 35 s apart on one agent connection: $(grep -c '^HTTP/1.1 200' "$d/ka.out") answered"
fbe_expect "tls: an idle agent connection is kept past 35 s (the next heartbeat needs no new TLS connection)" \
	"$d/keepalive.json" '.answers == 2'

# verification is real: a replica with another CA's certificate, and one
# with this CA's certificate for another name, both answering HTTPS
mkdir -p "$tls/other"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tls/other/ca.key" \
	-out "$tls/other/ca.pem" -days 30 -subj "/CN=another CA" >/dev/null 2>&1 &&
	fbc_cert "$tls/other" impostor "/CN=firebreakd" "DNS:firebreakd,IP:127.0.0.1" &&
	fbc_cert "$tls" misnamed "/CN=elsewhere" "DNS:elsewhere,IP:127.0.0.1" || fbe_die "impostor certificates"
fake=()
for c in "$tls/other/impostor" "$tls/misnamed"; do
	p=$(fbe_free_port)
	openssl s_server -quiet -www -accept "$p" -cert "$c.pem" -key "$c.key" >/dev/null 2>&1 &
	FBC_PIDS+=($!)
	fake+=("$p")
done
for p in "${fake[@]}"; do
	for _ in $(seq 50); do
		[ "$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$p/readyz")" = 200 ] && break
		sleep 0.1
	done
done
kill "$FBC_HAPROXY_PID" 2>/dev/null
wait "$FBC_HAPROXY_PID" 2>/dev/null
FBC_TARGETS=("127.0.0.1:${FBC_PORTS[0]}" "127.0.0.1:${fake[0]}" "127.0.0.1:${fake[1]}")
fbc_haproxy_start "$d" 1
sleep 1.5 # three more check intervals: they stay down
csv=$(curl -fsS "http://127.0.0.1:$FBC_STATS_PORT/;csv")
echo "$csv" | awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i }
	$1 == "agent_api" && $2 ~ /^fb[0-9]$/ { print "tls: " $2 " " $h["status"] " " $h["check_status"] " " $h["last_chk"] }'
st=$(echo "$csv" | awk -F, '$1 == "agent_api" && $2 ~ /^fb[0-9]$/ { printf "%s\"%s\": \"%s\"", n++ ? ", " : "", $2, $18 }')
real=$(curl -sS --cacert "$FBC_CA" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $FBE_TOKEN" "$FBC_ADMIN_URL/v1/controller")
fbc_json "$d/impostors.json" "{$st, \"operator_status\": $real}"
fbe_expect "tls: the impostors are down, the real replica up" "$d/impostors.json" \
	'(.fb1 | startswith("UP")) and (.fb2 | startswith("DOWN")) and (.fb3 | startswith("DOWN"))'
fbe_expect "tls: requests still go to the real replica" "$d/impostors.json" '.operator_status == 200'
fbe_summary_line
