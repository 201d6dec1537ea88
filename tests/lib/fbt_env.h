/* The environment of an integration test that drives rollouts: a fresh
 * database, an API token per role, firebreakd (one replica or two) with fast
 * intervals, the channel FBT_CH, the trusted root as an agent pins it, and
 * HTTP calls that fail the running cmocka test instead of returning errors.
 * Every function here fails the test (cmocka fail()) on any error. */
#ifndef FBT_ENV_H
#define FBT_ENV_H

#include <jansson.h>

#include "fbsign.h"
#include "fbt.h"

#define FBT_CH       291 /* the channel fbt_env_up creates ("named-pipes") */
#define FBT_DEADLINE 90  /* seconds a wait may take: generous, for sanitizer builds */

struct fbt_env {
	char *db;                /* connection string of the test's own database */
	struct fbt_server srv;   /* the first replica */
	struct fbt_server srv2;  /* a second one on the same database, if started */
	struct fbt_server *cur;  /* where fbt_env_call() goes: &srv unless moved */
	char *admin;             /* API tokens: admin "ada", */
	char *rel1, *rel2;       /* release "rel-one" and "rel-two", */
	char *soc;               /* soc "soc-one" */
	char *caps;              /* every template's capability (JSON array), for enrolling */
	struct fbsig_root *root; /* the default world's root, loaded as trusted */
	const char *bad;         /* content FBT_CRASHER, FBT_SILENT and FBT_LOOPER agents
	                          * fail on, or NULL (borrowed; see fbt_agent.h) */
	const char *watch;       /* content whose exposure fbt_rollout_drive() checks ring
	                          * by ring, or NULL (borrowed) */
};

/* A fresh database with the tokens above, firebreakd started on it
 * (fbt_env_start(), into e->srv, e->cur pointing at it), every template's
 * capabilities, the default world's root and the channel FBT_CH. flags:
 * more firebreakd flags, NULL-terminated (may be NULL). Undo with
 * fbt_env_down(). */
void fbt_env_up(struct fbt_env *e, const char *const *flags);

/* Start replica s (e->srv again after a kill, or e->srv2) on e->db with
 * --heartbeat_flush_ms, --snapshot_check_ms and --controller_interval_ms all
 * 200, then flags (NULL-terminated, may be NULL; a later flag overrides an
 * earlier one), and wait until it is ready. e->cur is left alone unless it
 * is NULL (then s). */
void fbt_env_start(struct fbt_env *e, struct fbt_server *s, const char *const *flags);

/* Stop the replicas still running with SIGTERM, failing the test unless each
 * exits 0 (a clean exit: no leaks), free everything and zero *e. For
 * teardowns; also after a failure part-way through fbt_env_up(). */
void fbt_env_down(struct fbt_env *e);

/* A request to e->cur; token and body may be NULL. Any status, in *status.
 * Returns the body parsed: an object (a body that is not one gives {}),
 * with its text added as member "_raw" (see fbt_env_raw). Caller decrefs. */
json_t *fbt_env_call(struct fbt_env *e, const char *method, const char *path, const char *token,
                     const char *body, long *status);
/* The same, failing the test with the body unless the status is want. */
json_t *fbt_env_want(struct fbt_env *e, long want, const char *method, const char *path,
                     const char *token, const char *body);
/* The same with the answer dropped. */
void fbt_env_expect(struct fbt_env *e, long want, const char *method, const char *path,
                    const char *token, const char *body);
/* The same, also failing unless the body's error code is code. */
void fbt_env_expect_code(struct fbt_env *e, long want, const char *code, const char *method,
                         const char *path, const char *token, const char *body);

/* The same, also failing unless the body's error message contains each of
 * the NULL-terminated needles. */
void fbt_env_refused(struct fbt_env *e, long want, const char *code, const char *method,
                     const char *path, const char *token, const char *body,
                     const char *const *needles);

/* The body text of an answer of fbt_env_call(), or "" (borrowed from j). */
const char *fbt_env_raw(const json_t *j);

#endif
