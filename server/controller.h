/* The rollout controller: the replica that holds the controller lease
 * (lease.h) evaluates every rolling rollout each controller_interval_ms,
 * stores each evaluation with its inputs and reason, and promotes or halts. */
#ifndef FB_CONTROLLER_H
#define FB_CONTROLLER_H

#include <jansson.h>
#include <libpq-fe.h>

#include "fb.h"
#include "gate.h"
#include "http.h"

enum fb_rc controller_start(struct fb_err *err) FB_MUSTCHECK;
void controller_stop(void);
/* 1 while this replica holds the controller lease. */
int controller_is_leader(void);

/* Gather the gate inputs of rollout id at its current ring on c (inside the
 * caller's transaction) and decide, the ring and each platform segment big
 * enough to judge. *policy_out and *in are filled too; segments (may be
 * NULL) gets a new reference to the segments' figures and test states,
 * stored with the evaluation; signals (may be NULL) the same for each health
 * signal (GATE.md, "Health signals"), which may halt the ring too. */
enum fb_rc controller_evaluate(PGconn *c, int64_t id, struct gate_policy *policy_out,
                               struct gate_inputs *in, struct gate_result *res, json_t **segments,
                               json_t **signals, struct fb_err *err) FB_MUSTCHECK;

/* Within the caller's transaction: halt rollout id (rolling or paused),
 * mark its content bad, publish the revert. actor for the audit record. */
enum fb_rc controller_halt_tx(PGconn *c, int64_t id, const struct auth *who, const char *request_id,
                              const char *reason, struct fb_err *err) FB_MUSTCHECK;
/* Within the caller's transaction: move rollout id to its next ring, or
 * complete it after the last (the content becomes GA). */
enum fb_rc controller_promote_tx(PGconn *c, int64_t id, const struct auth *who,
                                 const char *request_id, const char *reason,
                                 struct fb_err *err) FB_MUSTCHECK;

#endif
