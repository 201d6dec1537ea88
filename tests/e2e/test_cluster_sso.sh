#!/usr/bin/env bash
# Single sign-on through the shipped deploy/haproxy/haproxy.cfg (the real
# haproxy binary): three replicas trust HAProxy's address and the shared
# secret; the "sso" frontend (FB_SSO_BIND, what oauth2-proxy forwards to)
# adds the secret, so the identity oauth2-proxy would pass is believed
# there, and only there: the same headers, secret included, sent to the
# operator or the agent endpoint are stripped and ignored.
source "$(dirname "$0")/rehearsals.sh"
source "$(dirname "$0")/cluster.sh"

secret_file="$FBT_WORK/sso-e2e.secret"
(umask 077 && openssl rand -hex 32 >"$secret_file")
FB_SSO_SECRET=$(cat "$secret_file")
SSO_PORT=$(fbe_free_port)
export FB_SSO_SECRET FB_SSO_BIND="127.0.0.1:$SSO_PORT"
fbc_up sso --sso_proxies=127.0.0.1 "--sso_secret_file=$secret_file"
out="$FBE_DIR/sso.json"

admin() { # METHOD PATH [BODY]: the operator endpoint with the admin token
	curl -sS --cacert "$FBC_CA" -X "$1" -H "Authorization: Bearer $FBE_TOKEN" \
		-H "Content-Type: application/json" ${3:+-d "$3"} "$FBC_ADMIN_URL$2"
}
admin POST /v1/users '{"name":"alice","email":"alice@example.com","roles":["release","soc"]}' >/dev/null
admin POST /v1/users '{"name":"root","email":"root@example.com","roles":["admin"]}' >/dev/null
as() { # EMAIL URL [curl args]: what oauth2-proxy would send for EMAIL
	local email=$1 url=$2
	shift 2
	curl -sS --cacert "$FBC_CA" -H "X-Forwarded-Email: $email" "$@" "$url"
}
code() { # EMAIL URL [curl args]: the status alone
	as "$@" -o /dev/null -w '%{http_code}'
}
sso="http://127.0.0.1:$SSO_PORT"
whoami=$(as alice@example.com "$sso/v1/whoami")
forged_admin=$(code alice@example.com "$FBC_ADMIN_URL/v1/whoami" -H "X-Firebreak-Proxy-Secret: $FB_SSO_SECRET")
forged_agent=$(code alice@example.com "$FBC_AGENT_URL/v1/poll" -H "X-Firebreak-Proxy-Secret: $FB_SSO_SECRET")
unknown=$(as mallory@example.com "$sso/v1/whoami" | jq -c .error.code)
csrf=$(code root@example.com "$sso/v1/channels" -H "Content-Type: application/json" -d '{"id":7,"name":"seven"}')
made=$(code root@example.com "$sso/v1/channels" -H "Content-Type: application/json" \
	-H "X-Requested-With: e2e" -d '{"id":7,"name":"seven"}')
audited=$(psql "$FBE_DB" -qAtXc "SELECT count(*) FROM audit_log a JOIN users u ON u.id = a.user_id
	WHERE u.name = 'root' AND a.token_id IS NULL AND a.object = 'channel/7'")
stream=$(as alice@example.com "$sso/v1/events" --max-time 2 2>/dev/null | head -c 200 | grep -c 'firebreak event stream')
fbc_json "$out" "{\"whoami\": $whoami, \"forged_admin\": $forged_admin, \"forged_agent\": $forged_agent,
  \"unknown\": $unknown, \"csrf\": $csrf, \"made\": $made, \"audited\": $audited, \"stream\": ${stream:-0}}"
cat "$out"
fbe_expect "sso: the sso frontend's identity is believed (alice, her roles, no token)" "$out" \
	'.whoami.user == "alice" and .whoami.via == "proxy" and .whoami.roles == ["release", "soc"] and .whoami.token_id == 0'
fbe_expect "sso: identity and secret sent to the operator endpoint are ignored" "$out" '.forged_admin == 401'
fbe_expect "sso: identity and secret sent to the agent endpoint are ignored" "$out" '.forged_agent == 401'
fbe_expect "sso: an unknown address is refused" "$out" '.unknown == "unknown_user"'
fbe_expect "sso: a change without X-Requested-With is refused" "$out" '.csrf == 403'
fbe_expect "sso: with it, done and audited as the user without a token" "$out" '.made == 201 and .audited == 1'
fbe_expect "sso: the event stream through the sso frontend" "$out" '.stream == 1'
fbe_summary_line
