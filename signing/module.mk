# signing: libfbsign (keys, canonical JSON, envelopes, trust chain) and fb-sign.
LIBS += fbsign
fbsign_SRCS := signing/canon.c signing/keys.c signing/envelope.c signing/root.c \
	signing/manifest.c

BINS += fb-sign
fb-sign_SRCS := signing/fb-sign.c
fb-sign_LIBS := fbsign fbschema fbcommon

ifneq ($(wildcard tests/unit/test_sign.c),)
UNIT_TESTS += test_sign
test_sign_SRCS := tests/unit/test_sign.c
test_sign_LIBS := fbsign fbcommon
endif
ifneq ($(wildcard tests/unit/test_sign_vectors.c),)
UNIT_TESTS += test_sign_vectors
test_sign_vectors_SRCS := tests/unit/test_sign_vectors.c
test_sign_vectors_LIBS := fbsign fbcommon
endif
