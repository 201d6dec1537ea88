# tests: unit tests of modules that have no fragment of their own (the regex
# engine, the common library), the integration-test harness and its tests.
ifneq ($(wildcard tests/unit/test_rx.c),)
UNIT_TESTS += test_rx
test_rx_SRCS := tests/unit/test_rx.c schema/rx.c
test_rx_LIBS := fbcommon
endif
