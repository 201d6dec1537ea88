# bench: make bench (bench/run.sh) and its set-up helper.
BINS += fb-bench-setup
fb-bench-setup_SRCS := bench/setup.c
fb-bench-setup_LIBS := fbt fbsign fbschema fbcommon
NOINST_BINS += fb-bench-setup

# The CPU cost of the heartbeat's health object (parse, checks, per-host
# state) without a server: a microbenchmark for work on that path.
BINS += fb-bench-hbhealth
fb-bench-hbhealth_SRCS := bench/hbhealth.c server/hbbody.c server/signals.c
fb-bench-hbhealth_LIBS := fbcommon
NOINST_BINS += fb-bench-hbhealth
