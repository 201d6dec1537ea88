/* Platform segments: the facts agents report (os, os_build, arch,
 * agent_version) and the canary-coverage check a rollout must pass at start. */
#ifndef FB_SEGMENTS_H
#define FB_SEGMENTS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "fb.h"

/* The segment dimensions the gate judges, in the order it reports them. */
#define SEGMENT_DIMS 4
extern const char *const segment_dims[SEGMENT_DIMS]; /* "os", "os_build", ... */

/* The segments that the rings of plan after the first contain with at least
 * min_later agents and that plan's first ring holds fewer than min_canaries
 * agents of: a new reference to an array of {"dimension", "value",
 * "canaries", "later"} in *gaps (empty when covered), caller decrefs. Ring
 * membership comes from the serving snapshot, facts from the database. */
enum fb_rc segments_coverage(PGconn *c, const json_t *plan, int64_t min_canaries, int64_t min_later,
                             json_t **gaps, struct fb_err *err) FB_MUSTCHECK;

#endif
