/* The promotion gate: pure decision code (no I/O, no clock, no database).
 * Given a ring's policy and the telemetry counts of its treated agents (on
 * the new content) and its control agents (still on the previous content),
 * decide PROMOTE, WAIT or HALT and say why in words. */
#ifndef FB_GATE_H
#define FB_GATE_H

#include <jansson.h>
#include <stdint.h>

#include "fb.h"

struct gate_policy {
	int64_t min_bake_s;      /* time in the ring before a promotion is possible */
	int64_t min_healthy;     /* treated agents that applied and stayed healthy */
	double max_failure_rate; /* the treated failure rate's upper bound must stay below */
	double min_excess; /* HALT by the relative test only when the treated failed share is at
	                      least this far (a fraction of hosts) above what the control's
	                      rate predicts; JSON key "min_excess" ("tolerance" is its old name) */
	double confidence; /* e.g. 0.95, for the bounds and the sequential test */
	int64_t hard_cap;  /* crashed + boot-looped treated agents that halt at once; 0 = off */
	int64_t attributed_cap;    /* treated agents whose crash report named this channel as the
	                              one being interpreted (faulting_channel), beyond what the
	                              control explains, that halt at once; 0 = off */
	int64_t silence_timeout_s; /* heartbeat silence after applying that counts as failure */
	int64_t max_wait_s;        /* WAIT this long past min_bake_s (and since the last resume) ->
	                              stalled: the controller pauses for an operator; 0 = never */
	/* Gate v2: the relative test against the live control (GATE.md). */
	double max_ratio;       /* HALT when the treated failure rate per host-time is confidently
	                           above max_ratio x the control's */
	double max_excess;      /* PROMOTE only while the treated failed share's upper bound is less
	                           than this above what the control's rate predicts */
	int64_t min_exposure_s; /* a treated host counts toward min_healthy only after this
	                           long on the file */
	double holdout;         /* share of each ring kept on the previous content (control) */
	int64_t holdout_min;    /* ... but at least this many agents of a ring (capped at 20 %) */
	int64_t min_segment_agents;   /* a segment is judged on its own from this many treated */
	int64_t min_segment_canaries; /* ring 0 must hold this many agents of every segment that
	                                 later rings hold (checked at start) */
	int64_t watch_s; /* last ring: after its promotion the rollout watches this long */
};

/* The relative test's state, carried from one look to the next (stored with
 * each evaluation): the cumulative counts at the last look and the log
 * likelihood ratio of each alternative of the mixture. */
#define GATE_RHOS 3
struct gate_seq {
	int64_t failed, control_failed;
	double exposure_s, control_exposure_s;
	double llr[GATE_RHOS];
};

/* One comparison group (a ring's treated agents, or a segment of them) and
 * its control, cumulative since the rollout started. */
struct gate_group {
	int64_t treated, failed; /* hosts that applied the file; of those failed */
	double exposure_s;       /* host-seconds on the file until now or the failure */
	int64_t control, control_failed;
	double control_exposure_s; /* host-seconds on the previous content in the same window */
};

/* The relative test of one group: update prev with the increments since the
 * last look (prev may be NULL: first look) into *next, and report. */
struct gate_rel {
	double treated_rate, control_rate; /* failures per host-hour */
	double ratio;                      /* treated / control rate (0 without control data) */
	double excess;    /* treated failed share - the share the control's rate predicts */
	double statistic; /* log of the mixture likelihood ratio */
	double threshold; /* ln(1 / alpha) (+ the multiplicity correction for segments) */
	int halt;         /* statistic >= threshold and excess >= min_excess */
};
void gate_relative(const struct gate_policy *p, const struct gate_seq *prev,
                   const struct gate_group *g, double threshold, struct gate_seq *next,
                   struct gate_rel *out);

/* Telemetry of one ring at one evaluation. */
struct gate_inputs {
	int64_t treated;            /* applied the new content */
	int64_t healthy;            /* treated, not failed, heartbeating after applying */
	int64_t crashed;            /* treated agents with a crash report naming the new content */
	int64_t boot_looped;        /* treated agents that reported a boot loop off it */
	int64_t silent;             /* treated agents silent past the timeout */
	int64_t attributed;         /* of the crashed: a report on the new content named this
	                               channel as the one it was interpreting (faulting_channel) */
	int64_t control_attributed; /* control agents whose crash on the previous content
	                               named this channel */
	int64_t control;        /* agents of this and later rings still on the previous content */
	int64_t control_failed; /* of those: crashed, boot-looped or silent in the same window */
	int64_t bake_elapsed_s; /* time since the ring started receiving the content */
	int64_t wait_elapsed_s; /* time rolling in this ring: since it entered it or resumed */
	int silence_counted;    /* 0 during the grace period after a server restart */
	int64_t seasoned;       /* healthy treated agents on the file for >= min_exposure_s */
	double exposure_s;      /* treated host-seconds on the file (until now or the failure) */
	double control_exposure_s; /* control host-seconds on the previous content, same window */
	int has_prev;              /* prev holds the relative test's state of the last look */
	struct gate_seq prev;
	int looks; /* how many evaluations of this ring came before (for alpha spending) */
};

enum gate_decision {
	GATE_WAIT = 0,
	GATE_PROMOTE,
	GATE_HALT,
};

struct gate_result {
	enum gate_decision decision;
	char reason[1024];   /* in words, e.g. "HALT: 3 treated agents crashed ... hard cap 3" */
	double treated_rate; /* failures / outcomes (agents with a known outcome) */
	double treated_lower, treated_upper; /* confidence bounds on it */
	double control_rate;
	double control_upper;
	double statistic; /* the sequential test's statistic (e.g. SPRT log-likelihood ratio) */
	double threshold; /* the boundary it is compared with */
	/* The figures behind the rates and the test (see server/GATE.md). */
	int64_t failures;     /* crashed + boot-looped (+ silent when counted) */
	int64_t outcomes;     /* treated agents with a known outcome: healthy + failures */
	double baseline_rate; /* SPRT null: acceptable rate (control upper + tolerance, <= limit) */
	double alt_rate;      /* SPRT alternative: the rate treated as "bad" */
	int64_t background;   /* crash/boot-loop reports background noise explains */
	int64_t excess;       /* reports beyond that: what the hard cap counts */
	int64_t attributed_background; /* attributed crashes background explains */
	int64_t attributed_excess;     /* attributed crashes beyond that: the attributed cap's */
	int stalled;                   /* WAIT past max_wait_s: the controller pauses the rollout */
	struct gate_rel rel;           /* the relative test against the control */
	struct gate_seq seq;           /* its state after this look: pass it as prev next time */
	double excess_upper;           /* treated upper bound - the share the control predicts */
};

/* Decide for one ring. Never fails; the result is fully written. Rules that
 * hold whatever the statistics say:
 *  - hard cap reached by the reports beyond what the control's background
 *    rate explains -> HALT;
 *  - no promotion before min_bake_s, nor with fewer than min_healthy healthy;
 *  - treated agents that all went silent past the timeout -> HALT (telemetry
 *    loss is failure, never success); zero treated is WAIT, never PROMOTE;
 *  - a WAIT past min_bake_s + max_wait_s of bake and max_wait_s since the
 *    last resume is marked stalled (never turned into PROMOTE or HALT). */
void gate_decide(const struct gate_policy *p, const struct gate_inputs *in,
                 struct gate_result *out);

const char *gate_decision_name(enum gate_decision d); /* "PROMOTE", "WAIT", "HALT" */

/* The documented default policy for ring index i of n (ring 0 strictest). */
void gate_policy_default(int ring_index, int nrings, struct gate_policy *out);

/* Apply overrides from a JSON object (keys as the struct fields) onto *p,
 * refusing unknown keys, wrong types and values outside the admin bounds
 * (e.g. confidence in [0.8, 0.999], max_failure_rate in (0, 0.5], hard_cap
 * >= 0, min_bake_s >= 0). err names the key. */
enum fb_rc gate_policy_apply_json(struct gate_policy *p, const json_t *overrides,
                                  struct fb_err *err) FB_MUSTCHECK;
/* The per-host exposure a treated host needs before it counts toward
 * min_healthy: min_exposure_s, never more than the ring's min_bake_s. */
int64_t gate_exposure_needed(const struct gate_policy *p);
/* The share of a ring of ring_size agents kept on the previous content as
 * the control: holdout, at least holdout_min agents; 0 when that would be
 * more than a fifth of the ring (its control is then the later rings). */
double gate_holdout_share(const struct gate_policy *p, int64_t ring_size);
/* The relative test's threshold when `judged` segments are tested at once
 * (Bonferroni: ln(judged / alpha)). */
double gate_segment_threshold(const struct gate_policy *p, int judged);
/* Read a stored state back; 0 (and *q zeroed) when j is not one. */
int gate_seq_from_json(const json_t *j, struct gate_seq *q);
/* New references. */
json_t *gate_seq_to_json(const struct gate_seq *q);
json_t *gate_rel_to_json(const struct gate_rel *r);
json_t *gate_policy_to_json(const struct gate_policy *p);
json_t *gate_inputs_to_json(const struct gate_inputs *in);
json_t *gate_result_to_json(const struct gate_result *r);

#endif
