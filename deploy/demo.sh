#!/usr/bin/env bash
# make demo: start the local database and firebreakd, show that it answers,
# and say how to stop. (Later work turns this into a full rollout rehearsal.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
export FB_BIN="$root/$BUILD/bin"
"$root/deploy/dev-db.sh" start
db=$("$root/deploy/dev-db.sh" url)
port=${FB_DEMO_PORT:-8080}
mkdir -p "$root/var"
if [ -f "$root/var/firebreakd.pid" ] && kill -0 "$(cat "$root/var/firebreakd.pid")" 2>/dev/null; then
	kill "$(cat "$root/var/firebreakd.pid")"
	sleep 0.5
fi
nohup "$FB_BIN/firebreakd" serve --db "$db" --port "$port" >"$root/var/firebreakd.log" 2>&1 &
echo $! >"$root/var/firebreakd.pid"
for _ in $(seq 50); do
	curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
	sleep 0.1
done
echo
echo "firebreakd is running: http://127.0.0.1:$port (log: var/firebreakd.log)"
echo "  readiness: $(curl -fsS "http://127.0.0.1:$port/readyz")"
tok=$("$FB_BIN/firebreakd" token create --role admin --name "demo-$(date +%s)" --db "$db" 2>/dev/null)
echo "  an admin token for you (shown once): $tok"
echo "  try: curl -H 'Authorization: Bearer $tok' http://127.0.0.1:$port/v1/whoami"
echo
echo "stop it with: kill \$(cat var/firebreakd.pid) && deploy/dev-db.sh stop"
