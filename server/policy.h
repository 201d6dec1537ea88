/* Admin-set bounds on rollout gate policies: the bounds document (global
 * bounds per policy key, bounds per ring name, the emergency floor), its
 * validation and storage (GET/PUT /v1/policy-bounds), and the check of a
 * rollout's resolved per-ring policies against it (server/GATE.md, "Admin
 * bounds and emergency policy"). */
#ifndef FB_POLICY_H
#define FB_POLICY_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "fb.h"
#include "http.h"

/* The floor of min_bake_s for emergency rollouts when the bounds document
 * sets none ("emergency": {"min_bake_s": {"min": N}}), in seconds. */
#define POLICY_EMERGENCY_MIN_BAKE_S 300

/* A bounds document and its version (0: none was ever set). */
struct policy_bounds {
	int64_t version;
	json_t *doc; /* {"bounds": {}, "rings": {}, "emergency": {}}, owned */
};

/* Read the bounds in force (the newest version) on c, inside the caller's
 * transaction if any. On success *out holds them (release with
 * policy_bounds_cleanup); on failure err says why and *out is empty. */
enum fb_rc policy_bounds_current(PGconn *c, struct policy_bounds *out,
                                 struct fb_err *err) FB_MUSTCHECK;
void policy_bounds_cleanup(struct policy_bounds *b);

/* Check the resolved policy of ring (the object gate_policy_to_json gives;
 * borrowed) against b: each key's value must lie within the global bounds
 * and the ring's own; for an emergency rollout the bake-time keys take the
 * emergency floor as their lower bound instead. global_ovr and ring_ovr are
 * the rollout's "policy" and "ring_policies".<ring> overrides (may be NULL),
 * used to say where an offending value came from. On a violation replies
 * 422 policy_out_of_bounds naming the ring, key, value and bound, and
 * returns 0; 1 when the policy is within bounds. */
int policy_check_or_reply(struct http_req *req, const struct policy_bounds *b, const char *ring,
                          const json_t *policy, const json_t *global_ovr, const json_t *ring_ovr,
                          int emergency);

void policy_bounds_get(struct http_req *req); /* GET /v1/policy-bounds */
void policy_bounds_put(struct http_req *req); /* PUT /v1/policy-bounds */

#endif
