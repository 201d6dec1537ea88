/* Pending heartbeats: the latest heartbeat of each agent since the last
 * flush, kept compact (32 bytes a record plus the boot id once) with the
 * agent version, active-content map and capabilities interned per batch, so
 * agents that report the same values share one copy. Not thread-safe: the
 * caller locks. */
#ifndef FB_PENDING_H
#define FB_PENDING_H

#include <stddef.h>
#include <stdint.h>

#include "fb.h"

#define PENDING_MAX_BOOT_ID 255 /* bytes; the API allows 64 */

/* Interned values come in two kinds, numbered separately from 1. */
enum pending_kind {
	PENDING_TEXT = 0, /* the agent version */
	PENDING_JSON = 1, /* the active map and the capabilities, compact JSON */
};

/* One heartbeat as pending_put() takes it: strings are borrowed and copied. */
struct pending_hb {
	int64_t agent_id; /* 1 .. UINT32_MAX */
	int64_t seen_ms;  /* Unix time in milliseconds */
	int64_t uptime_s; /* 0 .. UINT32_MAX */
	const char *boot_id;
	const char *version; /* NULL: not sent */
	const char *active;
	const char *caps; /* NULL: not sent */
};

/* One pending record as pending_get() returns it. boot_id is borrowed and
 * valid while the batch lives; the values are numbers for pending_value(),
 * 0 when the heartbeat did not send the field. */
struct pending_rec {
	int64_t agent_id;
	int64_t seen_ms;
	int64_t uptime_s;
	const char *boot_id;
	uint32_t version; /* PENDING_TEXT */
	uint32_t active;  /* PENDING_JSON */
	uint32_t caps;    /* PENDING_JSON */
};

struct pending;

/* An empty batch, or NULL when out of memory. Caller frees with
 * pending_free(). */
struct pending *pending_new(void);
void pending_free(struct pending *p);

/* Store h as its agent's pending heartbeat, replacing an earlier one of the
 * same agent (the latest call wins). FB_EINVAL for an agent id, uptime or
 * boot id out of range or a missing active map, FB_ENOMEM; p is unchanged
 * on failure. */
enum fb_rc pending_put(struct pending *p, const struct pending_hb *h) FB_MUSTCHECK;
/* Is a heartbeat of this agent pending? */
int pending_has(const struct pending *p, int64_t agent_id);
/* Number of agents with a pending heartbeat. */
size_t pending_count(const struct pending *p);
/* Bytes held (records, index, strings): what freeing the batch returns. */
size_t pending_bytes(const struct pending *p);

/* Put the records in agent-id order and drop the index: after this,
 * pending_get() walks them in that order and pending_put()/pending_has()
 * must not be called. FB_ENOMEM leaves p as it was. */
enum fb_rc pending_sort(struct pending *p) FB_MUSTCHECK;
/* Record i (0 .. pending_count() - 1). */
void pending_get(const struct pending *p, size_t i, struct pending_rec *out);
/* Number of distinct values of a kind; value n (1 .. that number) with its
 * length, borrowed and valid while p lives, NUL-terminated. */
uint32_t pending_nvalues(const struct pending *p, enum pending_kind kind);
const char *pending_value(const struct pending *p, enum pending_kind kind, uint32_t n, size_t *len);

#endif
