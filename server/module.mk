# server: firebreakd. Migrations are compiled in by tools/embed.c.
BINS += firebreakd
firebreakd_SRCS := server/main.c server/app.c server/config.c server/log.c server/http.c server/routes.c \
	server/db.c server/migrate.c server/auth.c server/metrics.c server/health.c \
	server/audit.c server/tokens.c server/users.c server/sso.c server/netlist.c server/trust.c server/snapshot.c server/agents.c \
	server/validate.c server/telemetry.c server/pending.c server/hbbody.c \
	server/content.c server/controller.c server/lease.c server/gate.c \
	server/segments.c server/signals.c server/counts.c server/events.c server/rollouts.c server/policy.c server/rings.c server/tenants.c server/stream.c server/reads.c server/www.c \
	$(BUILD)/gen/migrations_data.c $(BUILD)/gen/www_data.c
firebreakd_LIBS := fbsign fbschema fbcommon

MIGRATIONS := $(sort $(wildcard migrations/*.sql))
$(BUILD)/tools/embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -O1 -Wall -Wextra -Werror -o $@ $<
$(BUILD)/gen/migrations_data.c: $(BUILD)/tools/embed $(MIGRATIONS)
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed $@ $(MIGRATIONS)
$(BUILD)/obj/$(BUILD)/gen/migrations_data.o: $(BUILD)/gen/migrations_data.c $(BUILD)/.settings
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Iserver -c $< -o $@

# The dashboard's static files, compiled in by tools/embed_www.c.
WWW_FILES := $(sort $(wildcard server/www/*))
$(BUILD)/tools/embed_www: tools/embed_www.c
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -O1 -Wall -Wextra -Werror -o $@ $<
$(BUILD)/gen/www_data.c: $(BUILD)/tools/embed_www $(WWW_FILES)
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed_www $@ $(WWW_FILES)
$(BUILD)/obj/$(BUILD)/gen/www_data.o: $(BUILD)/gen/www_data.c $(BUILD)/.settings
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Iserver -c $< -o $@

# Admin policy bounds and emergency rollouts, end to end.
ifneq ($(wildcard tests/integration/test_policy.c),)
INT_TESTS += test_policy
test_policy_SRCS := tests/integration/test_policy.c
test_policy_LIBS := fbt fbsign fbschema fbcommon
endif
