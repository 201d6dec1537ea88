# tests: unit tests of modules that have no fragment of their own (the regex
# engine, the common library), the integration-test harness and its tests.
ifneq ($(wildcard tests/unit/test_rx.c),)
UNIT_TESTS += test_rx
test_rx_SRCS := tests/unit/test_rx.c schema/rx.c
test_rx_LIBS := fbcommon
endif

# The one duration syntax of the command-line tools (common/fb.c).
UNIT_TESTS += test_duration
test_duration_SRCS := tests/unit/test_duration.c
test_duration_LIBS := fbcommon

# Integration tests: real PostgreSQL (started by tests/run.sh), real firebreakd.
LIBS += fbt
fbt_SRCS := tests/lib/fbt.c tests/lib/fbt_world.c tests/lib/fbt_env.c tests/lib/fbt_agent.c \
	tests/lib/fbt_rollout.c tests/lib/fbt_hook.c
INT_TESTS += test_server test_migrate test_config test_protocol
test_server_SRCS := tests/integration/test_server.c
test_server_LIBS := fbt fbsign fbschema fbcommon
test_migrate_SRCS := tests/integration/test_migrate.c
test_migrate_LIBS := fbt fbsign fbschema fbcommon
test_config_SRCS := tests/integration/test_config.c
test_config_LIBS := fbt fbsign fbschema fbcommon

# The promotion gate is pure code; its unit tests (statistics, simulations).
ifneq ($(wildcard tests/unit/test_gate.c),)
UNIT_TESTS += test_gate
test_gate_SRCS := tests/unit/test_gate.c server/gate.c
test_gate_LIBS := fbcommon
endif

# The pending-heartbeat store and the heartbeat-body recogniser
# (server/pending.c, server/hbbody.c) are pure code too.
UNIT_TESTS += test_pending
test_pending_SRCS := tests/unit/test_pending.c server/pending.c
test_pending_LIBS := fbcommon
UNIT_TESTS += test_hbbody
test_hbbody_SRCS := tests/unit/test_hbbody.c server/hbbody.c server/signals.c
test_hbbody_LIBS := fbcommon
UNIT_TESTS += test_signals
test_signals_SRCS := tests/unit/test_signals.c server/signals.c
test_signals_LIBS := fbcommon

# Heartbeat ingest, the capability-class cache, agent tokens, the agent load.
INT_TESTS += test_heartbeat
test_heartbeat_SRCS := tests/integration/test_heartbeat.c
test_heartbeat_LIBS := fbt fbsign fbschema fbcommon

test_protocol_SRCS := tests/integration/test_protocol.c
test_protocol_LIBS := fbt fbsign fbschema fbcommon

# Rollouts and the controller, end to end (registered when present).
ifneq ($(wildcard tests/integration/test_rollout.c),)
INT_TESTS += test_rollout
test_rollout_SRCS := tests/integration/test_rollout.c
test_rollout_LIBS := fbt fbsign fbschema fbcommon
endif
ifneq ($(wildcard tests/integration/test_controller.c),)
INT_TESTS += test_controller
test_controller_SRCS := tests/integration/test_controller.c
test_controller_LIBS := fbt fbsign fbschema fbcommon
endif

# The controller lease: takeover, fencing, controller.lost, visibility.
INT_TESTS += test_lease
test_lease_SRCS := tests/integration/test_lease.c
test_lease_LIBS := fbt fbsign fbschema fbcommon

# The dashboard in a real browser (headless chromium driven by playwright-core).
ifneq ($(wildcard tests/integration/test_dashboard.c),)
INT_TESTS += test_dashboard
test_dashboard_SRCS := tests/integration/test_dashboard.c
test_dashboard_LIBS := fbt fbsign fbschema fbcommon
endif

INT_TESTS += test_operator
test_operator_SRCS := tests/integration/test_operator.c
test_operator_LIBS := fbt fbsign fbschema fbcommon

INT_TESTS += test_openapi
test_openapi_SRCS := tests/integration/test_openapi.c
test_openapi_LIBS := fbt fbsign fbschema fbcommon

INT_TESTS += test_rootchain
test_rootchain_SRCS := tests/integration/test_rootchain.c
test_rootchain_LIBS := fbt fbsign fbschema fbcommon

INT_TESTS += test_webhook
test_webhook_SRCS := tests/integration/test_webhook.c
test_webhook_LIBS := fbt fbsign fbschema fbcommon

INT_TESTS += test_publication
test_publication_SRCS := tests/integration/test_publication.c
test_publication_LIBS := fbt fbsign fbschema fbcommon

# What operators see of the health signals: GET .../signals and /metrics.
INT_TESTS += test_signal_reads
test_signal_reads_SRCS := tests/integration/test_signal_reads.c
test_signal_reads_LIBS := fbt fbsign fbschema fbcommon

# Operators are people: users, tokens of a user, the two-person rule by
# person, migration 0008.
INT_TESTS += test_users
test_users_SRCS := tests/integration/test_users.c
test_users_LIBS := fbt fbsign fbschema fbcommon

# Tenants: migration 0009 on a database from before tenants.
INT_TESTS += test_tenant_migration
test_tenant_migration_SRCS := tests/integration/test_tenant_migration.c
test_tenant_migration_LIBS := fbt fbsign fbschema fbcommon

# Customer content policies as agents see them: early, ga, delayed, paused.
INT_TESTS += test_customer_policy
test_customer_policy_SRCS := tests/integration/test_customer_policy.c
test_customer_policy_LIBS := fbt fbsign fbschema fbcommon

# Single sign-on: the trusted proxy's address lists (pure code) and the
# whole path through a real server, the test playing proxy and attacker.
UNIT_TESTS += test_netlist
test_netlist_SRCS := tests/unit/test_netlist.c server/netlist.c
test_netlist_LIBS := fbcommon
INT_TESTS += test_sso
test_sso_SRCS := tests/integration/test_sso.c
test_sso_LIBS := fbt fbsign fbschema fbcommon

# Tenants: isolation over every route of schema/openapi.json, a tenant's
# own scope beside the vendor's, refused tenant input storing nothing.
INT_TESTS += test_tenants
test_tenants_SRCS := tests/integration/test_tenants.c
test_tenants_LIBS := fbt fbsign fbschema fbcommon
