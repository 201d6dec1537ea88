/* Content and rollouts on channel FBT_CH for integration tests: upload
 * signed content, start a rollout, read and check its state, act on it,
 * push it through, and drive simulated agents (fbt_agent.h) until it
 * reaches a state. Requests go to e->cur of a struct fbt_env (fbt_env.h);
 * every function fails the running cmocka test on any error. */
#ifndef FBT_ROLLOUT_H
#define FBT_ROLLOUT_H

#include <jansson.h>
#include <stdint.h>

#include "fbt_agent.h"
#include "fbt_env.h"

/* A fast gate: seconds instead of hours, one healthy agent per ring. */
#define FBT_FAST_POLICY                                                                            \
	"{\"min_bake_s\":1,\"min_healthy\":1,\"max_failure_rate\":0.5,\"max_excess\":1,\"watch_"   \
	"s\":0,\"confidence\":0.8,"                                                                \
	"\"hard_cap\":3,\"silence_timeout_s\":20}"

/* Upload a valid file for FBT_CH/version signed by two release keys, as
 * e->rel1, expecting 201; sha receives its digest. */
void fbt_rollout_upload(struct fbt_env *e, int64_t version, char sha[65]);

/* Start a rollout of sha on FBT_CH as e->rel1 with reason "test"; extra:
 * more members of the body ("" or ",\"k\":v"). Checks 201, "rolling" and
 * ring index 0; returns the rollout's id. */
int64_t fbt_rollout_start(struct fbt_env *e, const char *sha, const char *extra);

/* GET /v1/rollouts/{id} as e->soc, expecting 200. Caller decrefs. */
json_t *fbt_rollout_get(struct fbt_env *e, int64_t id);

/* 1 when state is one of list ("a|b|c"), else 0. */
int fbt_rollout_state_in(const char *state, const char *list);

/* Check that rollout id is in one of states ("a|b") and, unless ring is -1,
 * at ring index ring. */
void fbt_rollout_expect(struct fbt_env *e, int64_t id, const char *states, int ring);

/* POST /v1/rollouts/{id}/{act} with body as token, expecting want. Returns
 * the answer (see fbt_env_call); caller decrefs. */
json_t *fbt_rollout_action(struct fbt_env *e, long want, int64_t id, const char *act,
                           const char *token, const char *body);

/* Forced promotions (two release approvers each, e->rel1 and e->rel2)
 * until rollout id completes. */
void fbt_rollout_force_complete(struct fbt_env *e, int64_t id);

/* Make sha GA on FBT_CH: a one-ring rollout (canary), pushed through by
 * fbt_rollout_force_complete() (the gate would take hours). Returns its id. */
int64_t fbt_rollout_make_ga(struct fbt_env *e, const char *sha);

/* Step the n agents ags (may be NULL when n is 0) until rollout id is in one
 * of states ("a|b") and, unless ring is -1, at ring index ring; fails after
 * FBT_DEADLINE. While e->watch is set, every agent that was assigned it must
 * sit in a ring the rollout had reached (read after the poll, so a promotion
 * in between cannot excuse it). */
void fbt_rollout_drive(struct fbt_env *e, int64_t id, struct fbt_agent *ags, int n,
                       const char *states, int ring);

#endif
