#!/usr/bin/env bash
# Set-up helpers for the rollout rehearsals (tests/e2e) and the demo: a trust
# world made with the real fb-sign (root, release and online keys, a signed
# root), signed upload bodies made with fbctl + fb-sign, a database, a
# firebreakd on a free port, an admin token, and fb-fleet runs.
# Source it; it needs FB_BIN (built binaries) and FB_SRC (repository root).

FB_BIN=${FB_BIN:-build/bin}
FB_SRC=${FB_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
case $FB_BIN in /*) ;; *) FB_BIN=$FB_SRC/$FB_BIN ;; esac

fbe_die() {
	echo "e2e: $*" >&2
	exit 2
}

# fbe_world DIR: keys (no passphrase, 0600), root.json signed by its root key,
# release threshold 2 of 2, and the online key the server signs with.
fbe_world() {
	local d=$1 s="$FB_BIN/fb-sign"
	mkdir -p "$d"
	[ -f "$d/root.json" ] && return 0
	for k in root1 release1 release2 online; do
		"$s" keygen --no-passphrase --out "$d/$k" >/dev/null 2>&1 || fbe_die "keygen $k"
	done
	"$s" root init --root-key "$d/root1.pub" --release-key "$d/release1.pub" \
		--release-key "$d/release2.pub" --threshold 2 --online-key "$d/online.pub" \
		--out "$d/root.json.tmp" >/dev/null 2>&1 || fbe_die "root init"
	"$s" sign --key "$d/root1.key" --type root "$d/root.json.tmp" >/dev/null 2>&1 || fbe_die "sign root"
	mv "$d/root.json.tmp" "$d/root.json"
}

# fbe_content WORLD OUT CHANNEL VERSION [TEXT.json] [--unchecked]: compile the
# text form (default tests/data/schema/valid/basic.json) for CHANNEL/VERSION,
# write a manifest signed by both release keys and the POST /v1/content body
# to OUT (a .json file). --unchecked compiles files the schema refuses.
fbe_content() {
	local w=$1 out=$2 ch=$3 ver=$4 src=${5:-$FB_SRC/tests/data/schema/valid/basic.json}
	local mode=${6:-} tmp="$out.d"
	mkdir -p "$tmp"
	jq --argjson c "$ch" --argjson v "$ver" '.channel = $c | .content_version = $v' "$src" >"$tmp/text.json" ||
		fbe_die "jq $src"
	"$FB_BIN/fbctl" --templates "$FB_SRC/schema/templates" $mode compile "$tmp/text.json" "$tmp/blob.cf" \
		>/dev/null || fbe_die "fbctl compile $src"
	local tpl=()
	while read -r t; do tpl+=(--template "$t"); done < <(jq -r '.instances[] | "\(.template):\(.template_version)"' \
		"$tmp/text.json" | sort -u)
	rm -f "$tmp/manifest.json"
	"$FB_BIN/fb-sign" manifest create --channel "$ch" --version "$ver" --content "$tmp/blob.cf" \
		"${tpl[@]}" --out "$tmp/manifest.json" >/dev/null 2>&1 || fbe_die "manifest create"
	for k in release1 release2; do
		"$FB_BIN/fb-sign" sign --key "$w/$k.key" --type manifest "$tmp/manifest.json" >/dev/null 2>&1 ||
			fbe_die "sign manifest"
	done
	base64 -w0 "$tmp/blob.cf" >"$tmp/blob.b64"
	jq -n --slurpfile m "$tmp/manifest.json" --rawfile b "$tmp/blob.b64" \
		'{manifest: $m[0], blob: $b}' >"$out" || fbe_die "upload body"
}

# fbe_contents WORLD DIR CHANNEL: the uploads every rehearsal uses: base (v1,
# the baseline), next (v2, the file under test; its behaviour is the
# scenario's) and cf291 (v2 of the 21-field Channel File 291 shape).
fbe_contents() {
	local w=$1 d=$2 ch=$3
	mkdir -p "$d"
	fbe_content "$w" "$d/base.json" "$ch" 1
	fbe_content "$w" "$d/next.json" "$ch" 2
	fbe_content "$w" "$d/cf291.json" "$ch" 2 "$FB_SRC/tests/data/schema/invalid/cf291.json" --unchecked
}

# fbe_free_port: a TCP port no socket uses (best effort), below the
# kernel's ephemeral range (32768 and up), so that the many client
# connections of a rehearsal cannot hold it when a server binds it.
fbe_free_port() {
	local p
	for _ in $(seq 50); do
		p=$((10000 + RANDOM % 22000))
		if ! ss -Htan "sport = :$p" 2>/dev/null | grep -q . &&
			! (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	fbe_die "no free port"
}

# fbe_db NAME: a fresh database from the migrated template of tests/run.sh
# (FBT_PG); prints its conninfo.
fbe_db() {
	psql "$FBT_PG" -qXc "DROP DATABASE IF EXISTS $1" >/dev/null 2>&1
	psql "$FBT_PG" -qXc "CREATE DATABASE $1 TEMPLATE fbt_template" >/dev/null || fbe_die "create database $1"
	echo "${FBT_PG% dbname=postgres} dbname=$1"
}

# Scaled-time server flags: heartbeats flushed, snapshots checked and the
# controller run several times a second.
FBE_SERVER_FLAGS=(--heartbeat_flush_ms=200 --snapshot_check_ms=200 --controller_interval_ms=300
	--assignment_ttl=3600)

# fbe_server_start WORLD DB PORT LOG [FLAGS...]: start firebreakd in the
# background and wait until it is ready; sets FBE_SERVER_PID. With
# FBE_SERVER_CA set (the server given --tls_cert/--tls_key), readiness is
# asked over HTTPS, trusting that CA file.
fbe_server_start() {
	local w=$1 db=$2 port=$3 log=$4
	shift 4
	"$FB_BIN/firebreakd" serve --db="$db" --port="$port" --online_key="$w/online.key" \
		--root="$w/root.json" --templates="$FB_SRC/schema/templates" --corpus="$FB_SRC/schema/corpus" \
		"${FBE_SERVER_FLAGS[@]}" "$@" >>"$log" 2>&1 &
	FBE_SERVER_PID=$!
	local url="http://127.0.0.1:$port/readyz" tls=()
	if [ -n "${FBE_SERVER_CA:-}" ]; then
		url="https://127.0.0.1:$port/readyz"
		tls=(--cacert "$FBE_SERVER_CA")
	fi
	for _ in $(seq 300); do
		if curl -fsS "${tls[@]}" "$url" >/dev/null 2>&1; then return 0; fi
		kill -0 "$FBE_SERVER_PID" 2>/dev/null || { tail -n 20 "$log" >&2; fbe_die "firebreakd exited"; }
		sleep 0.1
	done
	tail -n 20 "$log" >&2
	fbe_die "firebreakd did not become ready"
}

# fbe_server_stop: stop the server started last (SIGTERM, then SIGKILL).
fbe_server_stop() {
	[ -n "${FBE_SERVER_PID:-}" ] || return 0
	kill "$FBE_SERVER_PID" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$FBE_SERVER_PID" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$FBE_SERVER_PID" 2>/dev/null
	wait "$FBE_SERVER_PID" 2>/dev/null
	FBE_SERVER_PID=
}

# fbe_token DB: a new admin token (printed).
fbe_token() {
	"$FB_BIN/firebreakd" token create --role admin --name "e2e-$RANDOM-$$" --db="$1" 2>/dev/null ||
		fbe_die "token create"
}

# fbe_fleet WORLD CONTENTS PORT TOKEN SCENARIO [fb-fleet flags...]: run
# fb-fleet; its JSON summary goes to stdout, the human one to stderr.
fbe_fleet() {
	local w=$1 c=$2 port=$3 tok=$4 scn=$5
	shift 5
	"$FB_BIN/fb-fleet" --server "http://127.0.0.1:$port" --token "$tok" --root "$w/root.json" \
		--templates "$FB_SRC/schema/templates" --scenario "$scn" --content-dir "$c" --json "$@"
}

# Assertions on a JSON summary. fbe_expect NAME FILE JQ-FILTER: passes when
# the filter is true on the summary in FILE.
FBE_PASS=0
FBE_FAIL=0
fbe_expect() {
	local name=$1 file=$2 filter=$3
	if jq -e -s "length == 1 and (.[0] | $filter)" "$file" >/dev/null 2>&1; then
		echo "ok: $name"
		FBE_PASS=$((FBE_PASS + 1))
	else
		echo "FAIL: $name ($filter)"
		jq -c '{rollout, exposure, on_bad_content, exposed_not_on_last_known_good, false_halts, halt_inputs, expectations}' "$file" 2>/dev/null | head -c 3000
		echo
		FBE_FAIL=$((FBE_FAIL + 1))
	fi
}

fbe_summary_line() {
	echo "$FBE_PASS passed, $FBE_FAIL failed"
	[ "$FBE_FAIL" -eq 0 ]
}
