# schema: the channel-file format, its one parser/validator, the JSON text
# form, the interpreter and the preflight gate (libfbschema). The regex engine
# schema/rx.c has no fragment of its own and is linked in here.
LIBS += fbschema
fbschema_SRCS := schema/registry.c schema/parse.c schema/text.c schema/eval.c \
	schema/preflight.c schema/rx.c

UNIT_TESTS += test_schema test_schema_eval
test_schema_SRCS := tests/unit/test_schema.c
test_schema_LIBS := fbschema fbcommon
test_schema_eval_SRCS := tests/unit/test_schema_eval.c
test_schema_eval_LIBS := fbschema fbcommon

# One replay binary per fuzz target tests/fuzz/fuzz_NAME.c: test_fuzz_replay_NAME
# runs the target over tests/fuzz/corpus/NAME/ and tests/fuzz/crashes/NAME/
# (make test); the name comes from argv[0].
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
define FUZZ_REPLAY_template
UNIT_TESTS += test_fuzz_replay_$(1)
test_fuzz_replay_$(1)_SRCS := tests/fuzz/replay_main.c tests/fuzz/fuzz_$(1).c
test_fuzz_replay_$(1)_LIBS := fbsign fbschema fbcommon
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_REPLAY_template,$(t))))
