/* Agents: the per-agent table in memory (what the serving snapshot reads on
 * every poll), enrollment tokens, enrollment (the agent's token comes from
 * auth_agent_token), the agent list, revocation. */
#ifndef FB_AGENTS_H
#define FB_AGENTS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "fb.h"
#include "http.h"

/* ---- the agent table ------------------------------------------------------
 * 8 bytes per agent, indexed by id (1 .. AGENTS_ID_MAX), kept across snapshot
 * reloads; safe from any thread (a read-write lock). ring, pinset and cls are
 * indexes into the serving snapshot's rings, pin sets and capability classes:
 * the snapshot computes them (snapshot_agent_place), this module keeps them. */
struct agent_slot {
	uint8_t ring;
	uint8_t flags; /* AGENT_KNOWN, AGENT_REVOKED */
	uint16_t pinset;
	uint16_t cls;
	uint16_t group; /* its host group's index in the snapshot (AGENT_GROUP_UNKNOWN) */
};
#define AGENT_GROUP_UNKNOWN 0xffffu
#define AGENT_KNOWN         1
#define AGENT_REVOKED       2
#define AGENTS_ID_MAX       ((int64_t)1 << 31)

/* Copy agent id's slot into *out: 1 when it is in memory, else 0 (memory
 * only, never the database). */
int agents_get(int64_t id, struct agent_slot *out);
/* As agents_get, but an agent not in memory (enrolled through another
 * replica) is loaded from the database and placed by the snapshot: 1 with
 * *out (revoked or not), 0 not enrolled, -1 not here and the database cannot
 * be asked (the caller answers 503, so a load balancer retries elsewhere:
 * not 403). */
int agents_find(int64_t id, struct agent_slot *out);
/* 1 when agent id is enrolled and not revoked (agents_find), 0 not enrolled
 * or revoked, -1 the database cannot be asked. */
int agents_ok(int64_t id);
/* Store agent id with a's ring, pin set and class, known, revoked when a has
 * AGENT_REVOKED. keep_cls and the agent already known: keep the class in
 * memory (a heartbeat may have set it after the database's copy). FB_EINVAL
 * for an id out of range, FB_ENOMEM when the table cannot grow. */
enum fb_rc agents_store(int64_t id, const struct agent_slot *a, int keep_cls) FB_MUSTCHECK;
/* Set the class of a known agent; 1 when that changed it, else 0 (unknown,
 * or the same class: then only a read lock was taken). */
int agents_set_class(int64_t id, uint16_t cls);
/* Make room for ids up to top before a large load (FB_ENOMEM). */
enum fb_rc agents_reserve(int64_t top) FB_MUSTCHECK;
/* The highest id stored so far (0 when none). */
int64_t agents_max_id(void);
/* Per ring index below nr, the known agents that are not revoked: sizes[ring]
 * and, when held is not NULL, held[ring] those for which is_held(id, ring,
 * arg) is 1. Both are zeroed first. is_held runs under the table's read lock
 * and must not call back into this module. */
void agents_count_by_ring(int nr, int64_t *sizes, int64_t *held,
                          int (*is_held)(int64_t id, int ring, void *arg), void *arg);
/* The known agents that are not revoked and for which pred(id, slot, arg)
 * is 1 (pred runs under the table's read lock and must not call back into
 * this module). */
int64_t agents_count_if(int (*pred)(int64_t id, const struct agent_slot *a, void *arg), void *arg);
/* Free the table (at shutdown, after the snapshot has stopped). */
void agents_cleanup(void);

/* What this module needs from the serving snapshot, handed over by the
 * wiring (main.c) before the server starts, so that agents.c does not
 * include snapshot.h (the snapshot includes this header). */
struct agents_snapshot {
	/* Resolve ring and pin set from tags (borrowed), the class from caps
	 * (borrowed; NULL keeps the class in memory) and the host group from
	 * group_id (host_groups.id) and agents_store them;
	 * FB_EINTERNAL while no snapshot is loaded. */
	enum fb_rc (*place)(int64_t id, const json_t *tags, const json_t *caps, int group_id,
	                    int revoked);
	/* The name of agent id's ring into buf (n bytes) and buf, or NULL. */
	const char *(*ring)(int64_t id, char *buf, size_t n);
	/* Within the caller's transaction: a new publication. */
	enum fb_rc (*publish)(PGconn *c, const char *reason, struct fb_err *err);
};
/* ops is borrowed and must outlive the server. */
void agents_set_snapshot(const struct agents_snapshot *ops);

/* ---- handlers ------------------------------------------------------------- */
void agents_enroll(struct http_req *req);                  /* POST /v1/enroll */
void agents_enrollment_token_create(struct http_req *req); /* POST /v1/enrollment-tokens */
void agents_list(struct http_req *req);                    /* GET /v1/agents */
void agents_show(struct http_req *req);                    /* GET /v1/agents/{id} */
void agents_revoke(struct http_req *req);                  /* POST /v1/agents/{id}/revoke */

#endif
