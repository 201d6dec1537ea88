# common: result codes, bounded buffers, files, hex, sha256.
LIBS += fbcommon
fbcommon_SRCS := common/fb.c
