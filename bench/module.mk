# bench: make bench (bench/run.sh) and its set-up helper.
BINS += fb-bench-setup
fb-bench-setup_SRCS := bench/setup.c
fb-bench-setup_LIBS := fbt fbsign fbschema fbcommon
NOINST_BINS += fb-bench-setup
