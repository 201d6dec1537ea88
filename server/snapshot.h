/* The in-memory serving snapshot: everything a poll needs, so the poll path
 * touches no database. Rebuilt when the publication number changes
 * (LISTEN/NOTIFY plus a periodic check); signed assignment documents are made
 * lazily per (ring, pin set, capability class) and are byte-identical on every
 * replica for one publication. */
#ifndef FB_SNAPSHOT_H
#define FB_SNAPSHOT_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "fb.h"
#include "http.h"

#define SNAP_MAX_RINGS 16
#define SNAP_MAX_PINS  64
/* Rollouts with a holdout served at once (bits of a document key). */
#define SNAP_MAX_HOLD_BITS 24

/* Start the listener thread. It connects (retrying with backoff), checks
 * the schema, runs prepare (may be NULL; the wiring passes what must be read
 * from the database before serving, the agent-token key) and loads the
 * snapshot; until it has, snapshot_ready() is 0. A failure of prepare is
 * retried like a failed connection, with its message as the reason. */
enum fb_rc snapshot_start(enum fb_rc (*prepare)(PGconn *c, struct fb_err *err),
                          struct fb_err *err) FB_MUSTCHECK;
/* 1 when serving; else 0 and why (what start-up is waiting for). */
int snapshot_ready(char *why, size_t n);
void snapshot_stop(void);

/* Within the caller's transaction: take a new publication number and
 * NOTIFY the servers (delivered at COMMIT). */
enum fb_rc snapshot_publish(PGconn *c, const char *reason, struct fb_err *err) FB_MUSTCHECK;

/* Agents' places in the snapshot, stored in the agent table (agents.h). Tags
 * (borrowed) decide ring and pins; caps (borrowed) the capability class, NULL
 * keeps the class in memory; group_id (host_groups.id) the customer content
 * policies. FB_EINTERNAL while no snapshot is loaded. Safe from any thread. */
enum fb_rc snapshot_agent_place(int64_t id, const json_t *tags, const json_t *caps, int group_id,
                                int revoked) FB_MUSTCHECK;
/* The known, not revoked agents in the first ring whose host group is one
 * of groups (host_groups ids, n of them): -1 while no snapshot is loaded. */
int64_t snapshot_first_ring_in_groups(const int *groups, size_t n);
/* Per host group of groups (host_groups ids, n of them), the known, not
 * revoked agents this replica holds in it (memory only: the agent table, as
 * /v1/liveness's ring sizes), into counts[0 .. n-1]; a group the snapshot
 * does not know yet counts 0. 0, or -1 (counts all 0) while no snapshot is
 * loaded or out of memory. */
int snapshot_group_agents(const int *groups, size_t n, int64_t *counts);
/* Update the capability class from a heartbeat's capabilities (JSON text,
 * borrowed). Classes are cached by the text, so a repeated set costs a hash
 * and a compare under a read lock. */
void snapshot_agent_caps(int64_t id, const char *caps);
/* Ring name of an agent known here into buf, and buf; NULL when the agent
 * is not in memory (no database read). */
const char *snapshot_agent_ring(int64_t id, char *buf, size_t n);
/* Agents per ring now (known, not revoked), in ring order; returns the
 * number of rings written (at most n). */
int snapshot_ring_sizes(int64_t *sizes, char (*names)[40], int n);
/* Known channel? (telemetry validation) */
int snapshot_channel_known(uint32_t channel);
/* 1 when every one of the n channels ids is known (under one lock: the
 * heartbeat's active and health channels), else 0. */
int snapshot_channels_known(const uint32_t *ids, size_t n);
/* Per ring (as snapshot_ring_sizes): the agents and how many of them the
 * active rollout rollout_id holds out on the previous content (0 when it
 * is not active or keeps no holdout). Returns the number of rings. */
int snapshot_holdout_counts(int64_t rollout_id, int64_t *sizes, int64_t *held, char (*names)[40],
                            int n);

/* Handlers. */
void snapshot_poll(struct http_req *req);         /* GET /v1/poll */
void snapshot_root_current(struct http_req *req); /* GET /v1/root */
void snapshot_root_version(struct http_req *req); /* GET /v1/roots/{version} */

/* Resolve a ring for tags and agent id with the given ring list (used by the
 * snapshot and by the ring API's preview); exposed for tests. */
int64_t snapshot_publication(void);

#endif
