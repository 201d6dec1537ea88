#!/bin/sh
# make fuzz FUZZ_SECONDS=N: builds every tests/fuzz/fuzz_*.c target with clang,
# libFuzzer, ASan and UBSan into build/fuzz/ and runs each for N seconds.
# Seeds come from tests/fuzz/corpus/NAME/ (read-only); inputs libFuzzer finds
# go to build/fuzz/corpus/NAME/; crashes are written to tests/fuzz/crashes/NAME/
# so that they are committed with the fix and replayed by make test.
# Usage: tests/fuzz/run.sh SECONDS [TARGET...]   (TARGET: parse, rx, ...)
set -eu
secs=${1:-60}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/../.."
out=build/fuzz
CC=${FUZZ_CC:-clang}
mkdir -p "$out"
pkgs="jansson libcrypto libsodium"
cflags="-std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -fno-omit-frame-pointer -Icommon -Isigning -Ischema \
	$(pkg-config --cflags $pkgs)"
# libfbsign without its CLI (fb-sign.c has a main)
libsrc="common/fb.c $(ls schema/*.c) $(ls signing/*.c | grep -v fb-sign.c)"
targets=${*:-$(ls tests/fuzz/fuzz_*.c | sed 's|tests/fuzz/fuzz_||; s|\.c$||')}
status=0
for n in $targets; do
	src=tests/fuzz/fuzz_$n.c
	echo "fuzz: building $out/fuzz_$n"
	# shellcheck disable=SC2086
	$CC $cflags -o "$out/fuzz_$n" "$src" $libsrc $(pkg-config --libs $pkgs) -lm
	mkdir -p "tests/fuzz/corpus/$n" "tests/fuzz/crashes/$n" "$out/corpus/$n"
	echo "fuzz: running fuzz_$n for ${secs}s"
	if ! "./$out/fuzz_$n" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-max_len=65536 -print_final_stats=1 \
		-artifact_prefix="tests/fuzz/crashes/$n/" \
		"$out/corpus/$n" "tests/fuzz/corpus/$n"; then
		echo "fuzz: fuzz_$n FAILED; the input is in tests/fuzz/crashes/$n/" >&2
		status=1
	fi
done
exit $status
