# fbctl: operator and release-engineer CLI (README.md): offline channel-file
# commands and every online operator action, through libfbclient (libcurl).
BINS += fbctl
fbctl_SRCS := clients/fbctl/main.c clients/fbctl/ctl.c clients/fbctl/online.c \
	clients/fbctl/watch.c clients/fbctl/tenants.c
fbctl_LIBS := fbclient fbschema fbcommon

# End to end: the real fbctl binary against the real firebreakd and database.
INT_TESTS += test_fbctl
test_fbctl_SRCS := tests/integration/test_fbctl.c
test_fbctl_LIBS := fbt fbsign fbschema fbcommon

# fbctl's tenant and policy commands end to end, with their exits.
INT_TESTS += test_fbctl_tenants
test_fbctl_tenants_SRCS := tests/integration/test_fbctl_tenants.c
test_fbctl_tenants_LIBS := fbt fbsign fbschema fbcommon
