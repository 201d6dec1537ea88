#!/bin/sh
# CLI tests of fbctl's offline channel-file commands (validate, compile,
# decompile, preflight, capabilities): exit codes and messages.
# Run from the repository root with FB_BIN set to the binaries' directory.
set -u
FBCTL="${FB_BIN:-build/bin}/fbctl"
case $FBCTL in /*) ;; *) FBCTL=$(pwd)/$FBCTL ;; esac
SRC=$(pwd)
D=tests/data/schema
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0

# check NAME EXPECTED_EXIT NEEDLE -- command...: runs the command, compares
# its exit status and looks for NEEDLE in its stdout+stderr ("" = any).
check() {
	name=$1 want=$2 needle=$3
	shift 4
	"$@" >"$T/out" 2>&1
	got=$?
	if [ "$got" -ne "$want" ]; then
		echo "FAIL $name: exit $got, expected $want"
		sed 's/^/    /' "$T/out" | head -5
		fail=$((fail + 1))
	elif [ -n "$needle" ] && ! grep -qF -- "$needle" "$T/out"; then
		echo "FAIL $name: output lacks \"$needle\""
		sed 's/^/    /' "$T/out" | head -5
		fail=$((fail + 1))
	else
		echo "ok   $name"
		pass=$((pass + 1))
	fi
}

# ok NAME -- command...: the command must succeed (exit 0), output ignored.
ok() {
	check "$1" 0 "" -- "$@"
}

check help 0 "validate" -- "$FBCTL" --help
check no-command 2 "usage: fbctl" -- "$FBCTL"
check version 0 "fbctl 0." -- "$FBCTL" --version
check mistake-is-two-lines 0 "" -- sh -c "\"$FBCTL\" frobnicate 2>&1 | wc -l | grep -qx 2"
check unknown-command 2 'unknown command "frobnicate"' -- "$FBCTL" frobnicate
check validate-no-file-arg 2 "usage: fbctl validate" -- "$FBCTL" validate
check validate-missing-file 2 "cannot read" -- "$FBCTL" validate "$T/nope.cf"

# compile / validate / decompile round trip
check compile-valid 0 "482 bytes, sha256" -- "$FBCTL" compile $D/valid/basic.json "$T/basic.cf"
check validate-binary 0 "valid: channel 10, content version 1, 5 instances" -- \
	"$FBCTL" validate "$T/basic.cf"
check validate-text-form 0 "valid: channel 291" -- "$FBCTL" validate $D/valid/named_pipe_v2.json
check validate-json-output 0 '"valid":true,"channel":10' -- "$FBCTL" validate --json "$T/basic.cf"
check decompile 0 '"content_version": 1' -- "$FBCTL" decompile "$T/basic.cf"
check decompile-names 0 '"template_name": "process_rule"' -- "$FBCTL" decompile "$T/basic.cf"
cp "$T/out" "$T/basic.json"
check recompile 0 "" -- "$FBCTL" compile "$T/basic.json" "$T/basic2.cf"
check round-trip-identical 0 "" -- cmp "$T/basic.cf" "$T/basic2.cf"

# Channel File 291: 21 fields for a 20-field template
check compile-cf291-refused 1 "expected 20, found 21" -- \
	"$FBCTL" compile $D/invalid/cf291.json "$T/cf291.cf"
check compile-cf291-no-output 1 "" -- test -e "$T/cf291.cf"
check compile-unchecked 0 "(unchecked)" -- \
	"$FBCTL" compile --unchecked $D/invalid/cf291.json "$T/cf291.cf"
check validate-cf291 1 'instance 0 (id 291) at byte 50: field count: template 7 "named_pipe" v1 declares 20 fields, instance has 21 (expected 20, found 21)' -- \
	"$FBCTL" validate "$T/cf291.cf"
check validate-cf291-json 1 '"valid":false' -- "$FBCTL" validate --json "$T/cf291.cf"
check validate-fewer-fields 1 "expected 20, found 19" -- \
	"$FBCTL" validate $D/invalid/fewer_fields.json
check validate-unknown-template 1 "unknown template id 99" -- \
	"$FBCTL" validate $D/invalid/unknown_template.json
check validate-bad-regex 1 "regex does not compile" -- "$FBCTL" validate $D/invalid/bad_regex.json
check validate-text-syntax 1 "text form: line" -- sh -c "echo '{\"format\":' > $T/bad.json; $FBCTL validate $T/bad.json"

# a named 21st field is refused at compile time, before any binary exists
check compile-named-extra-field 1 'declares only 20 fields' -- sh -c "
	\"$FBCTL\" decompile --templates schema/templates \"$T/cf291.cf\" |
	sed 's/null\$/{\"name\": \"pipe_client_name\", \"absent\": true}/' >\"$T/n291.json\";
	\"$FBCTL\" compile \"$T/n291.json\" \"$T/n291.cf\""

# corrupted binaries
cp "$T/basic.cf" "$T/sum.cf"
printf '\377' | dd of="$T/sum.cf" bs=1 seek=100 conv=notrunc 2>/dev/null
check validate-bad-checksum 1 "byte 8: checksum: expected" -- "$FBCTL" validate "$T/sum.cf"
check decompile-bad-checksum 1 "checksum" -- "$FBCTL" decompile "$T/sum.cf"
cp "$T/basic.cf" "$T/magic.cf"
printf 'XXXX' | dd of="$T/magic.cf" bs=1 seek=0 conv=notrunc 2>/dev/null
check validate-bad-magic 1 "byte 0: bad magic" -- "$FBCTL" validate "$T/magic.cf"
cp "$T/basic.cf" "$T/trail.cf"
printf '\000' >>"$T/trail.cf"
check validate-extra-byte 1 "header says 482 bytes, file has 483" -- "$FBCTL" validate "$T/trail.cf"
head -c 2097152 /dev/zero >"$T/big.cf"
check validate-oversize 1 "over the cap of 1048576 bytes" -- "$FBCTL" validate "$T/big.cf"
check validate-empty-file 1 "shorter than the 40-byte header" -- "$FBCTL" validate /dev/null

# registry selection
mkdir "$T/notemplates"
check templates-empty-dir 1 "unknown template id 1" -- \
	"$FBCTL" validate --templates "$T/notemplates" "$T/basic.cf"
check templates-missing-dir 2 "templates" -- \
	"$FBCTL" --templates "$T/nope" validate "$T/basic.cf"
check templates-env 1 "unknown template id 1" -- \
	env FB_TEMPLATES="$T/notemplates" "$FBCTL" validate "$T/basic.cf"
check capabilities 0 '{"id":7,"version":1},{"id":7,"version":2}' -- "$FBCTL" capabilities

# outside the repository: the registry and the corpus from flags, the
# environment or the installed places, and a word about --templates if none
mkdir "$T/elsewhere"
cp "$T/basic.cf" "$T/elsewhere/"
if [ ! -d /usr/local/share/firebreak/templates ] && [ ! -d /usr/share/firebreak/templates ]; then
	check outside-repo-no-templates 2 "no templates directory found" -- \
		sh -c "cd \"$T/elsewhere\" && \"$FBCTL\" validate basic.cf"
	check outside-repo-names-flag 2 "pass --templates DIR or set FB_TEMPLATES" -- \
		sh -c "cd \"$T/elsewhere\" && \"$FBCTL\" validate basic.cf"
	check outside-repo-no-corpus 2 "pass --corpus DIR or set FB_CORPUS" -- \
		sh -c "cd \"$T/elsewhere\" && FB_TEMPLATES=\"$SRC/schema/templates\" \"$FBCTL\" preflight basic.cf"
fi
check outside-repo-env 0 "valid: channel 10" -- \
	sh -c "cd \"$T/elsewhere\" && FB_TEMPLATES=\"$SRC/schema/templates\" \"$FBCTL\" validate basic.cf"
check outside-repo-flag 0 "valid: channel 10" -- \
	sh -c "cd \"$T/elsewhere\" && \"$FBCTL\" validate --templates \"$SRC/schema/templates\" basic.cf"
check outside-repo-preflight 0 "ok: " -- \
	sh -c "cd \"$T/elsewhere\" && FB_TEMPLATES=\"$SRC/schema/templates\" FB_CORPUS=\"$SRC/schema/corpus\" \"$FBCTL\" preflight basic.cf"
check templates-env-not-a-dir 2 "templates /nonexistent (from FB_TEMPLATES) is not a directory" -- \
	env FB_TEMPLATES=/nonexistent "$FBCTL" validate "$T/basic.cf"

# eval: the interpreter on one event
echo '{"process_name":"MIMIKATZ.exe","remote_addr":"2001:db8::7"}' >"$T/ev.json"
check eval-match 0 '{"action":"block","matches":2,"first_match":1,"action_rule":1,' -- \
	"$FBCTL" eval "$T/basic.cf" "$T/ev.json"
echo '{"process_name":"notepad.exe"}' >"$T/ev2.json"
check eval-no-match 0 '{"action":"none","matches":0,' -- "$FBCTL" eval "$T/basic.cf" "$T/ev2.json"
echo '{"process_name":true}' >"$T/ev3.json"
check eval-bad-event 1 'must be a string or an integer' -- "$FBCTL" eval "$T/basic.cf" "$T/ev3.json"
check eval-invalid-file 1 'expected 20, found 21' -- "$FBCTL" eval "$T/cf291.cf" "$T/ev.json"

# preflight
check preflight-ok 0 "ok: " -- "$FBCTL" preflight "$T/basic.cf"
check preflight-invalid 1 "cf291.cf: invalid: instance 0 (id 291)" -- "$FBCTL" preflight "$T/cf291.cf"
check preflight-json 0 '"outcome":"ok","ok":true' -- "$FBCTL" preflight --json "$T/basic.cf"
check preflight-json-invalid 1 '"outcome":"invalid","ok":false' -- "$FBCTL" preflight --json "$T/cf291.cf"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
