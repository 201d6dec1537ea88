/* The heartbeat body's common shape, read without building a JSON tree: a
 * recogniser for a strict subset of JSON (ASCII strings without escapes,
 * integers without sign, fraction or exponent, no duplicate keys, the
 * heartbeat's fields with their types and sizes). Whatever it does not
 * recognise, valid or not, is left to jansson and the full validation, which
 * give the same answer or the precise error; so it may refuse anything, but
 * what it accepts, jansson reads the same way. */
#ifndef FB_HBBODY_H
#define FB_HBBODY_H

#include <stddef.h>
#include <stdint.h>

#include "signals.h"

#define HBBODY_MAX_ENTRIES 256 /* active channels, capabilities */
#define HBBODY_MAX_TEXT    64  /* boot_id, agent_version */

struct hbbody_text {
	const char *p; /* into the body; not NUL-terminated */
	size_t n;
};

struct hbbody {
	int64_t agent_id; /* 1 .. 10^18 - 1 */
	int64_t uptime_s; /* 0 .. 10^18 - 1 */
	struct hbbody_text boot_id;
	int has_version;
	struct hbbody_text version; /* when has_version */
	size_t nactive;
	struct hbbody_text active_key[HBBODY_MAX_ENTRIES];
	struct hbbody_text active_val[HBBODY_MAX_ENTRIES];
	int has_caps;
	size_t ncaps; /* when has_caps */
	uint32_t cap_id[HBBODY_MAX_ENTRIES];
	uint16_t cap_version[HBBODY_MAX_ENTRIES];
	int has_health;
	struct sig_health health; /* when has_health; ranges not checked here */
};

/* 1 when body (n bytes) is a JSON object with exactly the heartbeat's keys
 * (agent_id, boot_id, uptime_s and active; agent_version, capabilities
 * and health optional), each once, of these types: agent_id and uptime_s integers;
 * boot_id and agent_version strings of 1 to 64 characters; active an object
 * of at most 256 strings; capabilities an array of at most 256 objects of
 * exactly {"id": 0 .. 2^32-1, "version": 0 .. 65535}; health an object of
 * the integer fields of server/PROTOCOL.md and channels, an object of
 * channel ids -> objects of integer counters (sig_health_check is the
 * caller's). out then points into
 * body. 0 otherwise (out undefined): parse with jansson instead. */
int hbbody_parse(const char *body, size_t n, struct hbbody *out);

#endif
