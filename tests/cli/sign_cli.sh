#!/bin/sh
# CLI tests of fb-sign: drives the real binary ($FB_BIN/fb-sign) through the
# worked example (keys, root, manifest signed twice, verify) and the refusals.
# Run from the repository root: FB_BIN=build/bin tests/cli/sign_cli.sh
set -u
FB_BIN=${FB_BIN:-build/bin}
case $FB_BIN in /*) ;; *) FB_BIN=$(pwd)/$FB_BIN ;; esac
S="$FB_BIN/fb-sign"
T=$(mktemp -d "${TMPDIR:-/tmp}/fb-sign-cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
pass=0
fail=0

# run NAME WANT_EXIT WANT_TEXT CMD...: run CMD, check its exit status and that
# WANT_TEXT (may be empty) appears in its stdout+stderr.
run() {
	name=$1 want=$2 text=$3
	shift 3
	"$@" >out.txt 2>err.txt
	got=$?
	if [ "$got" -ne "$want" ]; then
		echo "FAIL: $name: exit $got, expected $want"
		sed 's/^/    /' err.txt out.txt | head -n 5
		fail=$((fail + 1))
		return
	fi
	if [ -n "$text" ] && ! grep -qF -- "$text" out.txt err.txt; then
		echo "FAIL: $name: output lacks \"$text\""
		sed 's/^/    /' err.txt out.txt | head -n 5
		fail=$((fail + 1))
		return
	fi
	echo "ok: $name"
	pass=$((pass + 1))
}

[ -x "$S" ] || { echo "FAIL: $S not built"; echo "0 passed, 1 failed"; exit 1; }

for c in keygen sign verify inspect "root" "manifest"; do
	run "$c --help" 0 "usage: fb-sign $c" $S $c --help
done
run "no command" 2 "usage: fb-sign COMMAND" $S
run "--version" 0 "fb-sign 0." $S --version
run "a top-level mistake is one line and a hint" 2 "Run 'fb-sign --help'" $S frobnicate
run "the hint is all: no command list" 0 "" sh -c "$S frobnicate 2>&1 | wc -l | grep -qx 2"
run "an unknown option is named" 2 "unknown option or missing value: --frob" $S sign --frob x
run "unknown command" 2 "unknown command" $S frobnicate
run "sign without a key" 2 "--key, --type and one DOC are required" $S sign --type root x.json

# --- keys -------------------------------------------------------------------
for k in root1 root2 release1 release2 release3 online attacker; do
	run "keygen $k" 0 "" $S keygen --no-passphrase --out $k
	cp out.txt $k.id
done
run "keygen --json" 0 '"encrypted":false' $S keygen --no-passphrase --out extra --json
cp out.txt keygen.json
run "keygen --json keyid" 0 "" grep -qE '"keyid":"[0-9a-f]{16}"' keygen.json
run "secret key is 0600" 0 "600" stat -c %a root1.key
run "keygen refuses to overwrite" 1 "already exists" $S keygen --no-passphrase --out root1
printf 'correct horse battery staple\n' >pass.txt
printf 'wrong\n' >wrong.txt
run "keygen encrypted" 0 "" $S keygen --passphrase-file pass.txt --out release4
run "encrypted key file holds no seed" 1 "" grep -q '"seed"' release4.key
run "keygen without tty or passphrase" 1 "passphrase" sh -c "$S keygen --out nopass </dev/null"

# --- root ----------------------------------------------------------------------
run "root init" 0 "unsigned root version 1" $S root init --root-key root1.pub --root-key root2.pub \
	--root-threshold 2 --release-key release1.pub --release-key release2.pub \
	--release-key release3.pub --threshold 2 --online-key online.pub --out root.json
run "root init: online key may hold no other role" 1 "online key must hold no other role" \
	$S root init --root-key root1.pub --release-key release1.pub --release-key release2.pub \
	--online-key release1.pub --out bad-root.json
run "root init: threshold above key count" 1 "expected 1..3" $S root init --root-key root1.pub \
	--release-key release1.pub --release-key release2.pub --release-key release3.pub \
	--threshold 4 --online-key online.pub --out bad-root.json
run "sign root (1 of 2)" 0 "signed root.json" $S sign --key root1.key --type root root.json
run "root below its own threshold" 1 "1 of 2 required distinct root-key" \
	$S verify --root root.json root.json
run "sign root (2 of 2)" 0 "" $S sign --key root2.key --type root root.json
run "root verifies" 0 "valid: root" $S verify --root root.json root.json
run "root expired" 1 "root version 1 expired" $S verify --root root.json root.json --now 4000000000

# --- manifest --------------------------------------------------------------
printf 'channel file 291, version 7\n' >cf291.bin
run "manifest create" 0 "unsigned manifest" $S manifest create --channel 291 --version 7 \
	--content cf291.bin --template 1:3 --template 2:1 --out m.json
run "manifest create: bad template" 2 "ID:VERSION" $S manifest create --channel 291 --version 7 \
	--content cf291.bin --template 13 --out m2.json
run "sign manifest with release1" 0 "" $S sign --key release1.key --type manifest m.json
run "one release signature is not enough" 1 "1 of 2 required distinct release-key signatures" \
	$S verify --root root.json m.json
run "sign manifest with release2 (encrypted key, wrong passphrase)" 1 "wrong passphrase" \
	$S sign --key release4.key --passphrase-file wrong.txt --type manifest m.json
cp m.json m-attacker.json
run "attacker key signs" 0 "" $S sign --key attacker.key --type manifest m-attacker.json
run "unknown key is not counted" 1 "1 by keys that are not release keys" \
	$S verify --root root.json m-attacker.json
run "sign manifest with release2" 0 "" $S sign --key release2.key --type manifest m.json
cp m.json m-before.json
run "signing again with the same key is refused" 1 "already signed by key $(cat release2.id)" \
	$S sign --key release2.key --type manifest m.json
run "refused: the file is unchanged" 0 "" cmp m.json m-before.json
run "manifest verifies" 0 "valid: manifest" $S verify --root root.json m.json
run "manifest and content verify (--json)" 0 '"valid":true' $S verify --root root.json m.json \
	--content cf291.bin --channel 291 --json
printf 'channel file 291, version 8\n' >cf-tampered.bin
run "tampered content byte" 1 "does not match the signed manifest" \
	$S verify --root root.json m.json --content cf-tampered.bin
run "manifest served for another channel" 1 "for channel 291, not channel 292" \
	$S verify --root root.json m.json --content cf291.bin --channel 292
run "manifest expired" 1 "expired at" $S verify --root root.json m.json --now 4000000000
run "verify --json on failure" 1 '"valid":false' $S verify --root root.json m.json \
	--content cf-tampered.bin --json
sed 's/"version":7/"version":8/' m.json >m-tampered.json
run "tampered manifest field" 1 "does not verify over this manifest" \
	$S verify --root root.json m-tampered.json
run "a stale signature by the same key is replaced" 0 "earlier signature, over other signed fields, replaced" \
	$S sign --key release1.key --type manifest m-tampered.json
run "manifest signed as a root is refused" 1 'document type is "manifest", expected "root"' \
	$S sign --key root1.key --type root m.json
run "inspect --json" 0 '"type":"manifest"' $S inspect --json m.json
run "inspect shows two signers" 0 "signatures (2, not verified)" $S inspect m.json

# --- key file hygiene --------------------------------------------------------
chmod 644 release3.key
run "loose key file permissions" 1 "must not be accessible by group or other" \
	$S sign --key release3.key --type manifest m.json
chmod 600 release3.key

# --- root rotation: replace root2 by a new key, retire release3 ---------------
run "keygen root3" 0 "" $S keygen --no-passphrase --out root3
run "root rotate" 0 "unsigned root version 2" $S root rotate --from root.json \
	--root-key root1.pub --root-key root3.pub --root-threshold 2 \
	--release-key release1.pub --release-key release2.pub --release-key release4.pub \
	--threshold 2 --online-key online.pub --out root2.json
run "rotate: sign with root1 (old+new)" 0 "" $S sign --key root1.key --type root root2.json
run "rotate: sign with root3 (new)" 0 "" $S sign --key root3.key --type root root2.json
run "rotation with too few old root keys" 1 "1 of 2 required distinct previous-root-key" \
	$S verify --root root.json root2.json
run "rotate: sign with root2 (old)" 0 "" $S sign --key root2.key --type root root2.json
run "rotation verifies" 0 "valid: root" $S verify --root root.json root2.json
run "rotation replayed backwards" 1 "not newer" $S verify --root root2.json root.json
run "old manifest still valid under the new root" 0 "valid" $S verify --root root2.json m.json

# manifest create --templates: the one parser decides what a file is.
SRC=${FB_SRC:-$OLDPWD}
TPL="$SRC/schema/templates"
run "compile a valid channel file" 0 "" "$FB_BIN/fbctl" compile --templates "$TPL" \
	"$SRC/tests/data/schema/valid/basic.json" basic.cf
run "manifest from the parsed file" 0 "channel 10, version 1" $S manifest create \
	--content basic.cf --templates "$TPL" --out parsed.json
run "manifest lists the file's template types" 0 "" \
	grep -q '"templates":\[{"id":1,"version":1},{"id":2,"version":1},{"id":3,"version":1}\]' parsed.json
run "compile the Channel File 291 shape (unchecked)" 0 "" "$FB_BIN/fbctl" compile --unchecked \
	--templates "$TPL" "$SRC/tests/data/schema/invalid/cf291.json" cf291.cf
run "no manifest for a file the parser refuses" 1 "expected 20, found 21" $S manifest create \
	--content cf291.cf --templates "$TPL" --out cf291.json
run "nothing written for it" 1 "" test -e cf291.json
run "--channel must agree with the file" 1 "is channel 10 version 1" $S manifest create \
	--content basic.cf --templates "$TPL" --channel 11 --out wrong.json
run "--template and --templates exclude each other" 2 "exclude each other" $S manifest create \
	--content basic.cf --templates "$TPL" --template 1:1 --out both.json
# the registry from $FB_TEMPLATES, and a clear word when there is none
run "manifest from \$FB_TEMPLATES" 0 "channel 10, version 1" env FB_TEMPLATES="$TPL" \
	$S manifest create --content basic.cf --out env.json
run "\$FB_TEMPLATES that is not a directory" 2 "templates /nonexistent (from FB_TEMPLATES) is not a directory" \
	env FB_TEMPLATES=/nonexistent $S manifest create --content basic.cf --out env2.json
if [ ! -d /usr/local/share/firebreak/templates ] && [ ! -d /usr/share/firebreak/templates ]; then
	run "no registry anywhere names --templates" 2 "pass --templates DIR or set FB_TEMPLATES" \
		$S manifest create --content basic.cf --out env3.json
fi

# expiry as a duration (--expires-days still works)
run "manifest --expires 30d" 0 "" $S manifest create --content basic.cf --templates "$TPL" \
	--created 1000000000 --expires 30d --out exp30.json
run "30d is 2592000 s after created" 0 "" grep -q '"expires":1002592000' exp30.json
run "manifest --expires-days 2" 0 "" $S manifest create --content basic.cf --templates "$TPL" \
	--created 1000000000 --expires-days 2 --out exp2.json
run "2 days" 0 "" grep -q '"expires":1000172800' exp2.json
run "a bad duration is named" 2 '--expires: "3 weeks" is not a duration' $S manifest create \
	--content basic.cf --templates "$TPL" --expires "3 weeks" --out bad.json
run "a duration out of range is named" 2 "--expires: 10s is out of range: 1m to 36500d" \
	$S manifest create --content basic.cf --templates "$TPL" --expires 10s --out bad.json

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
