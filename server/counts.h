/* The gate's inputs from the database: treated and control agents of one
 * rollout, their failures and host-time, for the ring as a whole and per
 * platform segment (server/GATE.md, "What the controller counts"). */
#ifndef FB_COUNTS_H
#define FB_COUNTS_H

#include <libpq-fe.h>
#include <stdint.h>

#include "fb.h"
#include "gate.h"

/* What to count: the rollout's content, the content before it (NULL: none),
 * its channel, when it started, and the policy's silence time-out and the
 * exposure a healthy agent needs to be seasoned. */
struct counts_req {
	const char *content, *previous, *channel, *started;
	int64_t silence_timeout_s, exposure_needed_s;
};

#define COUNTS_MAX_SEGMENTS 256
struct counts_segment {
	int dim;             /* index into segment_dims */
	char value[72];      /* the fact's value */
	struct gate_group g; /* treated and failed count silent agents */
	int64_t seasoned, healthy, silent;
	int64_t attributed; /* treated agents whose crash named this channel */
};

/* Fill in's counts (treated, healthy, seasoned, crashed, boot_looped, silent,
 * control, control_failed, both exposures, attributed and
 * control_attributed; nothing else is touched) and
 * up to COUNTS_MAX_SEGMENTS segments into segs (*nsegs of them). One query,
 * on c, inside the caller's transaction. */
enum fb_rc counts_gather(PGconn *c, const struct counts_req *q, struct gate_inputs *in,
                         struct counts_segment *segs, size_t *nsegs,
                         struct fb_err *err) FB_MUSTCHECK;

/* A platform segment's figures for one health signal. */
struct counts_signal_seg {
	int signal;     /* signals.h */
	int dim;        /* index into segment_dims */
	char value[72]; /* the fact's value */
	struct gate_group g;
};

/* Per health signal (signals.h order) into g[SIG_COUNT]: the ring's treated
 * hosts, those of them degraded on the new content after applying it, and
 * their host-time while observed (until the verdict or the last heartbeat);
 * the control: hosts on the previous content, degraded there, and their
 * host-time. The same per platform segment into segs (at most max, *nsegs
 * of them). One query, on c, inside the caller's transaction. */
enum fb_rc counts_signals(PGconn *c, const struct counts_req *q, struct gate_group *g,
                          struct counts_signal_seg *segs, size_t max, size_t *nsegs,
                          struct fb_err *err) FB_MUSTCHECK;

#endif
