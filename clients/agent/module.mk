# clients/agent: fb-agent, the reference endpoint agent, and libfbclient, the
# client code shared with fbctl and fb-fleet (HTTP through libcurl, config
# files). The library is registered here because the Makefile includes only
# */module.mk and clients/*/module.mk.
LIBS += fbclient
fbclient_SRCS := clients/lib/fbclient.c

BINS += fb-agent
fb-agent_SRCS := clients/agent/main.c clients/agent/agent.c clients/agent/state.c \
	clients/agent/health.c clients/agent/scan.c
fb-agent_LIBS := fbclient fbsign fbschema fbcommon

# Unit tests: state, slots, refusals, events and the boot-loop guard in a
# temporary directory; the config reader of libfbclient.
UNIT_TESTS += test_agent_state
test_agent_state_SRCS := tests/unit/test_agent_state.c clients/agent/state.c
test_agent_state_LIBS := fbclient fbcommon

# Unit tests: the health measurements (/proc parsing, the CPU sampler and its
# percentile, the heartbeat's health object) and content evaluation over
# /proc and an input file, with a channel file staged in a temporary state.
UNIT_TESTS += test_agent_health
test_agent_health_SRCS := tests/unit/test_agent_health.c clients/agent/health.c \
	clients/agent/scan.c clients/agent/state.c
test_agent_health_LIBS := fbschema fbcommon

# End to end: the real firebreakd, database and fb-agent binary.
ifneq ($(wildcard tests/integration/test_agent.c),)
INT_TESTS += test_agent
test_agent_SRCS := tests/integration/test_agent.c
test_agent_LIBS := fbt fbclient fbsign fbschema fbcommon
endif
