/* fb-fleet's health signals: the `health` object of a simulated agent's
 * heartbeat (server/PROTOCOL.md, "Health (optional)"), drawn from the
 * scenario's noise model and its contents' behaviours (cpu_spike,
 * memory_leak, fp_storm, eval_errors). Pure code: every value is a function
 * of the seed, the agent, its heartbeat number and what it runs. */
#ifndef FLEET_HEALTH_H
#define FLEET_HEALTH_H

#include <stdint.h>

#include "fb.h"
#include "scenario.h"

/* One agent at one heartbeat, as the generator sees it. */
struct fhealth_agent {
	int64_t index;     /* the agent's index in the fleet: keys its draws */
	int plat;          /* index into scenario.platforms, -1: none */
	uint64_t hb_no;    /* its heartbeat number, keys the per-heartbeat draws (40 bits;
	                      fb-fleet: boot << 16 | heartbeat of the boot) */
	double interval_s; /* real seconds since its previous accepted heartbeat or its start */
	double up_s;       /* real seconds since the agent started (a leak starts again) */
	int armed;         /* the test phase: content behaviours on */
	uint32_t channels; /* bit k: channel k has active content */
	int content[SCN_MAX_CHANNELS];      /* its scenario content index, -1: unknown */
	double applied_s[SCN_MAX_CHANNELS]; /* real seconds since that content was applied */
};

/* The counters of one channel over the interval. */
struct fhealth_channel {
	uint64_t evals, errors, timeouts, detections, blocks;
};

/* One health object, every value within the protocol's range. */
struct fhealth {
	uint32_t interval_s;
	uint32_t agent_cpu_p95, agent_cpu_mean, host_cpu;
	uint64_t agent_rss_kb;
	uint32_t channels; /* bit k: ch[k] is sent (channel k has active content) */
	struct fhealth_channel ch[SCN_MAX_CHANNELS];
	uint8_t behaviours; /* bit b (enum scn_behaviour_kind): behaviour b showed in it */
};

/* Draw agent a's health object for one heartbeat under s->health (which
 * must be on) into *out. Content behaviours count only when a->armed, never
 * for a channel's baseline, and only on the agents each behaviour picked
 * (its share, its segments). Counters are the noise model's rates per
 * minute over a->interval_s. */
void fhealth_sample(const struct scenario *s, uint64_t seed, const struct fhealth_agent *a,
                    struct fhealth *out);

/* Append h as a JSON object to b (channel ids from s). */
enum fb_rc fhealth_json(const struct scenario *s, const struct fhealth *h,
                        struct fb_buf *b) FB_MUSTCHECK;

/* 1 when behaviour b of scenario content c is one agent index's (its
 * platform plat in the behaviour's segments and the fixed draw below its
 * share), whatever the phase. */
int fhealth_member(const struct scenario *s, uint64_t seed, int64_t index, int plat, int c, int b);

#endif
