/* Health signals beyond crashes (server/GATE.md, "Health signals"): the
 * heartbeat's `health` object, its validation, and the per-host verdict.
 *
 * Each host's signals are compared with that host's own history: a
 * baseline learnt from its samples while they were normal. A signal that
 * stays above max(factor x baseline, baseline + floor) for k consecutive
 * heartbeats makes the host *degraded* on it; the caller records that as a
 * `degraded` event naming the signal and the content each channel ran, and
 * the gate compares degraded treated hosts with degraded control hosts per
 * signal, as it compares crashes. Treated and control hosts are judged by
 * the same rule, so the comparison stays fair. State is in memory, a fixed
 * size per host; it is rebuilt after a restart (warm-up). */
#ifndef FB_SIGNALS_H
#define FB_SIGNALS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SIG_MAX_CHANNELS 256 /* as the heartbeat's active map */

enum sig_signal {
	SIG_AGENT_CPU = 0, /* agent_cpu_p95 */
	SIG_MEMORY,        /* agent_rss_kb */
	SIG_EVAL_ERRORS,   /* errors + timeouts per minute, per channel */
	SIG_DETECTIONS,    /* detections + blocks per minute, per channel */
	SIG_COUNT
};

/* "agent_cpu", "memory", "eval_errors", "detections"; NULL out of range. */
const char *sig_name(int s);
/* "agent CPU", "memory", "evaluation errors", "detections" (for reasons). */
const char *sig_label(int s);
/* The signal of a name, or -1. */
int sig_of_name(const char *name);

/* A counter absent from the body is -1. */
struct sig_channel {
	uint32_t channel;
	int64_t evals, errors, timeouts, detections, blocks;
};

struct sig_health {
	int64_t interval_s;
	int64_t agent_cpu_p95, agent_cpu_mean, host_cpu, agent_rss_kb;
	size_t nch;
	struct sig_channel ch[SIG_MAX_CHANNELS];
};

/* Clear to "nothing reported" (every field -1, no channels). */
void sig_health_clear(struct sig_health *h);

/* Range and consistency checks (server/PROTOCOL.md): 1 when valid; else 0
 * with field naming the first bad one ("health.channels.291.errors") and
 * why describing it. */
int sig_health_check(const struct sig_health *h, char *field, size_t fn, char *why, size_t wn);

/* Read the JSON object (types, unknown keys, ranges); 1 when valid, else 0
 * with field and why as sig_health_check. */
int sig_health_from_json(const json_t *j, struct sig_health *h, char *field, size_t fn, char *why,
                         size_t wn);

/* The verdict thresholds (defaults in GATE.md; config keys signal_*). */
struct sig_thresholds {
	double factor[SIG_COUNT];  /* above factor x baseline ... */
	double floor[SIG_COUNT];   /* ... and above baseline + floor + scatter x sqrt(baseline) */
	double scatter[SIG_COUNT]; /* counts scatter like Poisson: a host with a few errors a
	                              minute is not degraded by one more */
	int k[SIG_COUNT];          /* for this many consecutive heartbeats */
	int warmup[SIG_COUNT];     /* samples that make a baseline before any verdict */
	double pace[SIG_COUNT];    /* share of the way to each (capped) sample the baseline moves */
};
void sig_thresholds_default(struct sig_thresholds *t);

/* A host just became degraded on a signal (for channel signals, on one
 * channel; for host signals channel is 0: it counts for every channel). */
struct sig_verdict {
	int signal;
	uint32_t channel;
	double value, baseline;
};

/* Start/stop the per-host state (thresholds copied). */
void sig_init(const struct sig_thresholds *t);
void sig_shutdown(void);

/* One heartbeat's health of agent_id: update its baselines and streaks;
 * write the verdicts that this heartbeat made (a signal that just reached
 * k consecutive heartbeats above its threshold) into out (at most max) and
 * return how many. Thread-safe. */
size_t sig_observe(int64_t agent_id, const struct sig_health *h, struct sig_verdict *out,
                   size_t max);

/* Start loading agent_id's state into the CPU cache, for a sig_observe a
 * little later (it is two cache lines, and at 100,000 hosts rarely cached):
 * a hint only, no lock, no effect on the state. Thread-safe. */
void sig_prefetch(int64_t agent_id);

/* Hosts with state, and bytes of it (for /metrics and the bench). */
void sig_stats(size_t *hosts, size_t *bytes);

#endif
