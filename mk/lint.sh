#!/bin/sh
# Refuses calls that STYLE.md bans (curl checksrc style): strcpy, strcat,
# sprintf, vsprintf, gets, atoi, atol, strtok. Prints file:line for each.
set -u
status=0
for f in "$@"; do
	hits=$(grep -nE '(^|[^_a-zA-Z0-9])(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|strtok)[[:space:]]*\(' "$f")
	if [ -n "$hits" ]; then
		printf '%s\n' "$hits" | sed "s|^|$f:|"
		status=1
	fi
done
if [ $status -eq 0 ]; then echo "lint: no banned calls"; else echo "lint: banned calls found" >&2; fi
exit $status
