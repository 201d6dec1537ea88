#!/usr/bin/env bash
# Structure check: no include cycle among server/ modules (a module is its
# .c and .h; app.c and main.c are the wiring and may include anything). An
# edge A -> B is "a file of module A includes B.h"; tsort(1) finds the loops.
# The check first proves it can fail, on a made-up tree with a cycle.
set -u
src=${FB_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
pass=0 fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

# edges DIR: "A B" lines for the modules of DIR
edges() {
	local dir=$1 f m d
	for f in "$dir"/*.c "$dir"/*.h; do
		[ -e "$f" ] || continue
		m=$(basename "$f"); m=${m%.*}
		case $m in app | main) continue ;; esac
		grep -o '^#include "[a-z0-9_]*\.h"' "$f" | sed 's/^#include "//; s/\.h"$//' |
			while read -r d; do
				[ -f "$dir/$d.h" ] && [ "$d" != "$m" ] && echo "$m $d"
			done
	done | sort -u
}

# cycles DIR: the modules tsort reports in loops, one line; empty when none
cycles() {
	edges "$1" | tsort 2>&1 >/dev/null | grep -v 'input contains a loop' | sed 's/^tsort: //' | tr '\n' ' '
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#include "b.h"\n' >"$tmp/a.c"; : >"$tmp/a.h"
printf '#include "c.h"\n' >"$tmp/b.c"; : >"$tmp/b.h"
printf '#include "a.h"\n' >"$tmp/c.h"
printf '#include "a.h"\n#include "b.h"\n' >"$tmp/main.c"
got=$(cycles "$tmp")
case $got in *a*b*c* | *a*c*b* | *b*a*c* | *b*c*a* | *c*a*b* | *c*b*a*) ok "the check finds a made-up cycle (a -> b -> c -> a): $got" ;;
*) bad "the check missed a made-up cycle a -> b -> c -> a (got '$got')" ;; esac
rm -f "$tmp/c.h"; : >"$tmp/c.h"
got=$(cycles "$tmp")
[ -z "$got" ] && ok "no cycle once it is broken (main.c's wiring does not count)" || bad "a cycle reported in a tree without one: $got"

n=$(edges "$src/server" | wc -l)
[ "$n" -gt 50 ] && ok "server/: $n include edges between modules read" || bad "server/: only $n include edges read"
got=$(cycles "$src/server")
[ -z "$got" ] && ok "server/: no include cycle among modules" || bad "server/: include cycle among: $got"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
