# clients/fleet: fb-fleet, the fleet simulator (README.md), and its unit tests.
BINS += fb-fleet
fb-fleet_SRCS := clients/fleet/main.c clients/fleet/fleet.c clients/fleet/scenario.c \
	clients/fleet/outcome.c clients/fleet/health.c
fb-fleet_LIBS := fbclient fbsign fbschema fbcommon

# Scenario parsing, scaling and expectation checks (no network).
UNIT_TESTS += test_fleet_scenario
test_fleet_scenario_SRCS := tests/unit/test_fleet_scenario.c clients/fleet/scenario.c \
	clients/fleet/outcome.c
test_fleet_scenario_LIBS := fbcommon

# The health objects of the heartbeats: noise model and content behaviours
# (no network).
UNIT_TESTS += test_fleet_health
test_fleet_health_SRCS := tests/unit/test_fleet_health.c clients/fleet/health.c \
	clients/fleet/scenario.c
test_fleet_health_LIBS := fbcommon
