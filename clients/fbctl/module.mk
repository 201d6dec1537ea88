# fbctl: operator and release-engineer CLI (offline channel-file commands now;
# the online commands are added to its command table later).
BINS += fbctl
fbctl_SRCS := clients/fbctl/main.c
fbctl_LIBS := fbschema fbcommon
