# firebreak — the one top-level Makefile. Each module contributes a fragment
# (common/module.mk, signing/module.mk, ...) that lists its sources; nothing
# recurses. Libraries come from pkg-config; a fresh Debian 12 machine gets them
# from deploy/install-deps.sh, which every building target runs first.
#
# Knobs (set on the command line or in the environment):
#   BUILD ?= build             output directory (make test uses build/san)
#   CC ?= cc                   C compiler (make fuzz uses clang)
#   OPT ?= -O2 -g              optimisation and debug flags
#   SANITIZER ?=               e.g. address,undefined (the default for make test)
#   PREFIX ?= /usr/local       install prefix; DESTDIR is honoured too
#   FUZZ_SECONDS ?= 60         how long make fuzz runs each fuzz target
#   FLEET ?= 1000              simulated agents for make demo / cluster-demo / rehearse
BUILD ?= build
CC ?= cc
OPT ?= -O2 -g
SANITIZER ?=
PREFIX ?= /usr/local
DESTDIR ?=
FUZZ_SECONDS ?= 60
FLEET ?= 1000
NPROC := $(shell nproc 2>/dev/null || echo 2)

PKGS := libmicrohttpd jansson libsodium libpq libcrypto libcurl cmocka
NOCONFIG_GOALS := deps clean lint format-check format help

.PHONY: all deps test demo cluster-demo rehearse bench fuzz lint format-check format install clean help tests-bin
all:

# --- configuration: dependencies installed, pkg-config flags cached --------
ifeq ($(filter-out $(NOCONFIG_GOALS),$(or $(MAKECMDGOALS),all)),)
else
-include $(BUILD)/config.mk
endif

$(BUILD)/.deps-ok: deploy/install-deps.sh
	@mkdir -p $(BUILD)
	deploy/install-deps.sh
	@touch $@

$(BUILD)/config.mk: mk/configure.sh Makefile $(BUILD)/.deps-ok
	@mkdir -p $(BUILD)
	mk/configure.sh $(PKGS) > $@.tmp && mv $@.tmp $@

deps:
	deploy/install-deps.sh

# --- flags -------------------------------------------------------------------
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Wno-format-truncation
CFLAGS_ALL := -std=c17 -D_GNU_SOURCE $(WARN) $(OPT) -fstack-protector-strong \
	-Icommon -Isigning -Ischema -Iserver -Iclients/lib -Itests/lib -I$(BUILD)/gen \
	$(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := $(LDFLAGS)
ifneq ($(SANITIZER),)
CFLAGS_ALL += -fsanitize=$(SANITIZER) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS_ALL += -fsanitize=$(SANITIZER)
endif
LDLIBS_ALL := $(PKG_LIBS) -lm -lpthread

# A change of compiler or flags rebuilds everything (Redis .make-settings).
SETTINGS := $(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL)
ifneq ($(filter-out $(NOCONFIG_GOALS),$(or $(MAKECMDGOALS),all)),)
$(shell mkdir -p $(BUILD); echo '$(SETTINGS)' | cmp -s - $(BUILD)/.settings || echo '$(SETTINGS)' > $(BUILD)/.settings)
endif

# --- module registry -------------------------------------------------------
# A fragment appends to these and sets, per name N:
#   LIBS:  N_SRCS                  -> $(BUILD)/libN.a
#   BINS:  N_SRCS, N_LIBS          -> $(BUILD)/bin/N
#   UNIT_TESTS / INT_TESTS: N_SRCS, N_LIBS -> $(BUILD)/tests/{unit,integration}/N
#   GEN_HEADERS: generated files objects must wait for
LIBS :=
BINS :=
NOINST_BINS := # built but not installed (development and benchmark tools)
UNIT_TESTS :=
INT_TESTS :=
GEN_HEADERS :=
include $(sort $(wildcard */module.mk) $(wildcard clients/*/module.mk))

objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
libfiles = $(foreach l,$(1),$(BUILD)/lib$(l).a)

$(BUILD)/obj/%.o: %.c $(BUILD)/.settings $(BUILD)/config.mk | $(GEN_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

define LIB_template
$(BUILD)/lib$(1).a: $(call objs,$($(1)_SRCS))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
endef
define BIN_template
$(2)/$(1): $(call objs,$($(1)_SRCS)) $(call libfiles,$($(1)_LIBS))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS_ALL) -o $$@ $(call objs,$($(1)_SRCS)) $(call libfiles,$($(1)_LIBS)) $$(LDLIBS_ALL)
endef
$(foreach l,$(LIBS),$(eval $(call LIB_template,$(l))))
$(foreach b,$(BINS),$(eval $(call BIN_template,$(b),$(BUILD)/bin)))
$(foreach t,$(UNIT_TESTS),$(eval $(call BIN_template,$(t),$(BUILD)/tests/unit)))
$(foreach t,$(INT_TESTS),$(eval $(call BIN_template,$(t),$(BUILD)/tests/integration)))

ALL_BINS := $(addprefix $(BUILD)/bin/,$(BINS))
ALL_TESTS := $(addprefix $(BUILD)/tests/unit/,$(UNIT_TESTS)) \
	$(addprefix $(BUILD)/tests/integration/,$(INT_TESTS))

all: $(ALL_BINS)
tests-bin: $(ALL_TESTS)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# --- the commands the README promises ---------------------------------------
# make test: sanitizer build (ASan+UBSan) of everything, then unit,
# integration, fuzz-replay and CLI tests against a throwaway PostgreSQL.
test:
	$(MAKE) -j$(NPROC) BUILD=build/san SANITIZER=address,undefined OPT='-O1 -g' all tests-bin
	tests/run.sh build/san

demo: all
	deploy/demo.sh $(BUILD) $(FLEET)

# make cluster-demo: PostgreSQL, three replicas and HAProxy (TLS, agent and
# operator endpoints apart), the two rehearsals of make demo through it.
cluster-demo: all
	deploy/cluster-demo.sh $(BUILD) $(FLEET)

rehearse: all
	tests/e2e/rehearse.sh $(BUILD) 10000

bench:
	$(MAKE) -j$(NPROC) BUILD=build/bench OPT='-O2 -g' all
	bench/run.sh build/bench
	bench/cluster.sh build/bench

fuzz:
	tests/fuzz/run.sh $(FUZZ_SECONDS)

# --- hygiene ------------------------------------------------------------------
C_SOURCES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
lint:
	mk/lint.sh $(C_SOURCES)
format-check:
	clang-format --dry-run --Werror $(C_SOURCES)
format:
	clang-format -i $(C_SOURCES)

# --- install -------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/firebreak/migrations \
		$(DESTDIR)$(PREFIX)/share/firebreak/templates $(DESTDIR)$(PREFIX)/share/firebreak/corpus \
		$(DESTDIR)$(PREFIX)/lib/systemd/system \
		$(DESTDIR)$(PREFIX)/share/doc/firebreak
	install -m 0755 $(filter-out $(addprefix $(BUILD)/bin/,$(NOINST_BINS)),$(ALL_BINS)) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 migrations/*.sql $(DESTDIR)$(PREFIX)/share/firebreak/migrations/
	install -m 0644 schema/templates/*.json $(DESTDIR)$(PREFIX)/share/firebreak/templates/
	install -m 0644 schema/corpus/*.json $(DESTDIR)$(PREFIX)/share/firebreak/corpus/
	sed 's|@PREFIX@|$(PREFIX)|g' deploy/systemd/firebreakd.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/firebreakd.service
	install -m 0644 deploy/firebreakd.conf.example $(DESTDIR)$(PREFIX)/share/doc/firebreak/

clean:
	rm -rf build

help:
	@sed -n '2,/^BUILD/p' Makefile | sed 's/^# \{0,1\}//' | head -n -1
