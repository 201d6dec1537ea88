#!/bin/sh
# Prints make variables with the compiler and linker flags of the given
# pkg-config packages; fails naming the first one that is missing.
set -eu
for p in "$@"; do
	if ! pkg-config --exists "$p"; then
		echo "configure: library '$p' not found by pkg-config; run 'make deps'" >&2
		exit 1
	fi
done
echo "PKG_CFLAGS := $(pkg-config --cflags "$@")"
echo "PKG_LIBS := $(pkg-config --libs "$@")"
