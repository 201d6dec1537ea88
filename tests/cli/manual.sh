#!/bin/bash
# The operator's manual (docs/MANUAL.md) run as written: every fenced
# ```console block preceded by the line <!-- manual-test: run --> is run,
# command by command, in one bash session in a throwaway directory, against
# a firebreakd the manual itself starts on a fresh database of the test
# cluster (tests/run.sh's FBT_PG). Blocks preceded by
# <!-- manual-test: file NAME --> are written to NAME first.
#
# A "$ " line is a command (a trailing backslash continues it on the next
# line); the lines after it, up to the next command, are its output. Every
# output line shown must appear in what the command printed (stdout and
# stderr together), in the same order; "..." inside a line matches any
# text, a line of just "..." stands for lines left out. "[exit N]" is the
# exit status expected (0 when absent). Two substitutions, and no others:
# the trial address 127.0.0.1:8080 becomes a free port, and the database
# "dbname=firebreak" becomes the fresh one; and the environment says where
# the template registry and the corpus are, as an installation would
# (FB_TEMPLATES, FB_CORPUS, FIREBREAK_TEMPLATES, FIREBREAK_CORPUS), and
# gives firebreakd the free port (FIREBREAK_PORT, which wins over the
# file's "port = 8080").
#
# The harness checks itself first: a made-up page whose output or exit
# status is wrong must fail, or the real run would prove nothing.
#
# Run from the repository root: FB_BIN=build/bin tests/cli/manual.sh
# (MANUAL=FILE runs another page; used by the self-check).
set -u
FB_BIN=${FB_BIN:-build/bin}
case $FB_BIN in /*) ;; *) FB_BIN=$(pwd)/$FB_BIN ;; esac
FB_SRC=${FB_SRC:-$(pwd)}
MANUAL=${MANUAL:-$FB_SRC/docs/MANUAL.md}
pass=0
fail=0

# glob_of LINE: the shell pattern of an expected line ("..." = anything).
glob_of() {
	local s=$1 out="" c
	while [ -n "$s" ]; do
		if [ "${s:0:3}" = "..." ]; then
			out+="*"
			s=${s:3}
			continue
		fi
		c=${s:0:1}
		case $c in
		'*' | '?' | '[' | ']' | '\') out+="\\$c" ;;
		*) out+="$c" ;;
		esac
		s=${s:1}
	done
	printf '%s' "$out"
}

# matches OUT EXP: every line of EXP (a pattern) appears in OUT in order.
matches() {
	local out=$1 exp=$2 pat line
	local -a lines
	mapfile -t lines <"$out"
	local i=0 n=${#lines[@]}
	while IFS= read -r pat; do
		[ "$pat" = "..." ] && continue
		pat=$(glob_of "$pat")
		while [ "$i" -lt "$n" ]; do
			line=${lines[$i]}
			i=$((i + 1))
			# shellcheck disable=SC2053
			[[ $line == $pat ]] && continue 2
		done
		printf 'missing: %s\n' "$pat"
		return 1
	done <"$exp"
	return 0
}

subst() {
	sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$PORT/g" -e "s|dbname=firebreak\$|$DB|"
}

# run_step: run the command in $W/cmd, compare with $W/exp and $WANT.
run_step() {
	local cmd rc
	cmd=$(subst <"$W/cmd")
	eval "$cmd" </dev/null >"$W/out" 2>&1
	rc=$?
	local head
	head=$(head -n 1 "$W/cmd")
	if [ "$rc" -ne "$WANT" ]; then
		echo "FAIL line $LINE: \$ $head: exit $rc, expected $WANT"
		sed 's/^/    | /' "$W/out" | head -n 20
		fail=$((fail + 1))
	elif ! matches "$W/out" "$W/exp" >"$W/why"; then
		echo "FAIL line $LINE: \$ $head: $(cat "$W/why")"
		sed 's/^/    | /' "$W/out" | head -n 30
		fail=$((fail + 1))
	else
		echo "ok   line $LINE: \$ $head"
		pass=$((pass + 1))
	fi
}

flush_cmd() {
	if [ -n "$HAVE_CMD" ]; then
		run_step
		HAVE_CMD=
	fi
}

# run_page FILE: run every marked block of FILE in the current shell (its
# working directory is $W/work). Sets pass and fail.
run_page() {
	local mode="" inblock=0 file="" cont=0 n=0 line
	HAVE_CMD=
	exec 3<"$1"
	while IFS= read -r line <&3; do
		n=$((n + 1))
		if [ "$inblock" = 0 ]; then
			case $line in
			'<!-- manual-test: run -->') mode=run ;;
			'<!-- manual-test: file '*' -->')
				mode=file
				file=${line#<!-- manual-test: file }
				file=${file% -->}
				;;
			'```'*)
				if [ -n "$mode" ]; then
					inblock=1
					[ "$mode" = file ] && : >"$W/work/$file"
					BLOCKS=$((BLOCKS + 1))
				else
					inblock=2 # a block that is only shown
				fi
				;;
			'') ;;
			*) mode="" ;;
			esac
			continue
		fi
		if [ "$line" = '```' ]; then
			[ "$inblock" = 1 ] && [ "$mode" = run ] && flush_cmd
			inblock=0
			mode=""
			continue
		fi
		[ "$inblock" = 2 ] && continue
		if [ "$mode" = file ]; then
			printf '%s\n' "$line" | subst >>"$W/work/$file"
			continue
		fi
		if [ "$cont" = 1 ]; then
			printf '%s\n' "$line" >>"$W/cmd"
			case $line in *\\) ;; *) cont=0 ;; esac
			continue
		fi
		case $line in
		'$ '*)
			flush_cmd
			printf '%s\n' "${line#\$ }" >"$W/cmd"
			: >"$W/exp"
			WANT=0
			LINE=$n
			HAVE_CMD=1
			case $line in *\\) cont=1 ;; esac
			;;
		'[exit '*']')
			WANT=${line#\[exit }
			WANT=${WANT%\]}
			;;
		*) [ -n "$HAVE_CMD" ] && printf '%s\n' "$line" >>"$W/exp" ;;
		esac
	done
	exec 3<&-
}

W=$(mktemp -d "${TMPDIR:-/tmp}/fb-manual.XXXXXX") || exit 1
mkdir -p "$W/work" "$W/home"
PORT=1
DB=dbname=none
BLOCKS=0

# --- the harness checks itself --------------------------------------------
if [ -z "${MANUAL_SELF:-}" ]; then
	cat >"$W/bad.md" <<'EOF'
<!-- manual-test: run -->
```console
$ echo hello
goodbye
```
EOF
	cat >"$W/badexit.md" <<'EOF'
<!-- manual-test: run -->
```console
$ false
```
EOF
	cat >"$W/good.md" <<'EOF'
<!-- manual-test: file note.txt -->
```
a [bracket] and a * star
```
<!-- manual-test: run -->
```console
$ cat note.txt; echo done; \
    echo continued
a [bracket] ... star
continued
$ exit_with() { return "$1"; }; exit_with 3
[exit 3]
```
EOF
	for page in bad badexit good; do
		out=$(MANUAL_SELF=1 MANUAL="$W/$page.md" FB_BIN="$FB_BIN" "$0" 2>&1)
		rc=$?
		want=1
		[ "$page" = good ] && want=0
		if [ "$rc" -ne "$want" ]; then
			echo "FAIL the harness itself: page $page exited $rc, expected $want"
			printf '%s\n' "$out" | sed 's/^/    | /' | head -n 10
			echo "0 passed, 1 failed"
			rm -rf "$W"
			exit 1
		fi
	done
	echo "ok   the harness fails a wrong output and a wrong exit status"
	pass=$((pass + 1))
fi

# --- the real run -----------------------------------------------------------
if [ -z "${MANUAL_SELF:-}" ]; then
	[ -n "${FBT_PG:-}" ] || {
		echo "FAIL no test cluster (run through tests/run.sh)"
		echo "$pass passed, 1 failed"
		exit 1
	}
	# shellcheck source=../e2e/lib.sh
	. "$FB_SRC/tests/e2e/lib.sh"
	DB=$(fbe_db "manual_$$")
	PORT=$(fbe_free_port)
fi
export HOME="$W/home" PATH="$FB_BIN:$PATH"
# the registry and the corpus where an installed system has them, for the
# CLIs and for firebreakd (whose default is /usr/local/share/firebreak)
export FB_TEMPLATES="$FB_SRC/schema/templates" FB_CORPUS="$FB_SRC/schema/corpus"
export FIREBREAK_TEMPLATES="$FB_TEMPLATES" FIREBREAK_CORPUS="$FB_CORPUS"
# the trial's port 8080 (firebreakd.conf) on a free one
export FIREBREAK_PORT="$PORT"
unset FIREBREAK_URL FIREBREAK_TOKEN FIREBREAK_CA FIREBREAK_CONFIG
cd "$W/work" || exit 1
run_page "$MANUAL"
cd / || exit 1
# whatever the page left running (its own firebreakd)
for p in $(jobs -p); do kill "$p" 2>/dev/null; done
wait 2>/dev/null
if [ "$BLOCKS" -eq 0 ]; then
	echo "FAIL $MANUAL has no block marked <!-- manual-test: run -->"
	fail=$((fail + 1))
fi
[ -n "${FBT_KEEP:-}" ] && echo "kept $W" || rm -rf "$W"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
