/* fb-fleet scenarios: the JSON file that describes a simulated fleet (its
 * rings, platform segments and tenants), the behaviour of each content file, the
 * noise of the agents' health signals, network blips, the rollouts under
 * test (one per channel) and the expectations checked against the summary
 * (format: README.md). */
#ifndef FLEET_SCENARIO_H
#define FLEET_SCENARIO_H

#include <jansson.h>
#include <stdint.h>

#include "fb.h"

#define SCN_MAX_RINGS      16
#define SCN_MAX_CONTENTS   16 /* over all channels */
#define SCN_MAX_CHANNELS   4  /* per-agent state is kept per channel: keep it small */
#define SCN_MAX_BLIPS      8
#define SCN_MAX_PLATFORMS  16
#define SCN_MAX_EXTRA      8       /* extra platform facts per platform */
#define SCN_MAX_SEG_VALUES 8       /* values per key of a content's segments */
#define SCN_MAX_TENANTS    8       /* besides the server's default tenant */
#define SCN_MAX_DELAY_S    7776000 /* a delayed tenant's delay, scaled (the server's limit) */
#define SCN_MAX_NAME       64
#define SCN_MAX_FACT       32            /* bytes of a platform fact, NUL included */
#define SCN_MAX_FILE       (1024 * 1024) /* bytes of a scenario file */

enum scn_after_crash { SCN_REBOOT = 0, SCN_SILENT };

/* The platform facts a segment is keyed by (the order of scn_fact_names). */
enum scn_fact { SCN_OS = 0, SCN_OS_BUILD, SCN_ARCH, SCN_AGENT_VERSION, SCN_N_FACTS };
extern const char *const scn_fact_names[SCN_N_FACTS];

struct scn_ring {
	char name[SCN_MAX_NAME];
	int64_t agents; /* after scaling to the fleet size */
};

/* One platform segment of the fleet: its share and the facts its agents
 * report. fact[SCN_AGENT_VERSION] is "" when the scenario gives none (the
 * agents then report fb-fleet's own version). */
struct scn_platform {
	double share;
	char fact[SCN_N_FACTS][SCN_MAX_FACT];
	int n_extra;
	char extra_key[SCN_MAX_EXTRA][SCN_MAX_FACT];
	char extra_val[SCN_MAX_EXTRA][SCN_MAX_FACT];
};

/* A tenant's customer content policy on the scenario's channels (the
 * server's modes, server/README.md), in the order of scn_mode_names. */
enum scn_mode { SCN_EARLY = 0, SCN_GA, SCN_DELAYED, SCN_PAUSED, SCN_N_MODES };
extern const char *const scn_mode_names[SCN_N_MODES];

/* A customer organisation owning a share of every ring: created with
 * default_mode early (SCN_EARLY) or ga (the others); a delayed or paused
 * tenant gets that policy on each channel of the scenario (delayed before
 * the baseline, paused once the baselines are GA). */
struct scn_tenant {
	char name[SCN_MAX_NAME]; /* ^[a-z0-9][a-z0-9_-]{0,63}$, not "default" */
	double share;            /* of every ring */
	enum scn_mode mode;
	int64_t delay_s; /* SCN_DELAYED: whole seconds, scaled; else 0 */
};

/* The health behaviours a content may have (issue 17), in the order of
 * scn_behaviour_names. */
enum scn_behaviour_kind {
	SCN_CPU_SPIKE = 0, /* agent CPU goes to a level */
	SCN_MEMORY_LEAK,   /* agent RSS grows */
	SCN_FP_STORM,      /* detections and blocks multiplied */
	SCN_EVAL_ERRORS,   /* a share of the evaluations fail */
	SCN_N_BEHAVIOURS
};
extern const char *const scn_behaviour_names[SCN_N_BEHAVIOURS];

/* One health behaviour of a content, on the hosts that applied it: a share
 * of them (a fixed draw per agent, content and behaviour) whose platform is
 * in platform_mask, from after_s after the apply on. */
struct scn_behaviour {
	int on;                 /* given in the scenario */
	double share;           /* of the hosts that apply it */
	double after_s;         /* from apply (scaled) */
	double value;           /* cpu_spike: level, per cent of one CPU; memory_leak:
	                           KiB per minute of real time (scaled: the scenario's
	                           kb_per_min / time scale); fp_storm: factor;
	                           eval_errors: share of the evaluations that fail */
	uint32_t platform_mask; /* its own segments, else the content's */
};

/* Noise of one health signal: every agent has its own level, the fleet's
 * median `base` times exp(spread x N(0,1)) drawn once per agent (and
 * channel), and each heartbeat multiplies it by exp(jitter x N(0,1)). */
struct scn_signal {
	double base, spread, jitter;
};

/* The noise model of the heartbeats' health object (README.md, "Health
 * signals"); on = 0: no health object is sent. Counters are rates per minute
 * of real time (the server judges them per minute: the same at any
 * heartbeat interval and time scale), per channel with content. */
struct scn_health {
	int on;
	int cpus;                     /* CPUs of a simulated host */
	struct scn_signal agent_cpu;  /* mean, per cent of one CPU */
	double agent_cpu_p95;         /* median p95 (same per-agent level, own jitter) */
	double burst_probability;     /* per heartbeat: a burst (a scan) starts */
	double burst_p95;             /* its p95 (median), per cent of one CPU */
	int burst_beats;              /* it lasts 1..burst_beats heartbeats */
	struct scn_signal host_cpu;   /* per cent of the host */
	struct scn_signal rss_kb;     /* KiB */
	struct scn_signal evals;      /* per minute and channel */
	double error_rate;            /* share of evaluations that fail (median host) */
	double timeout_rate;          /* share of evaluations that time out (median host) */
	double error_spread;          /* sigma of ln of a host's (channel's) error rates */
	struct scn_signal detections; /* Poisson mean per minute and channel (jitter unused) */
	struct scn_signal blocks;     /* ditto */
	double det_burst_probability; /* per heartbeat and channel: a burst starts */
	double det_burst_factor;      /* detections and blocks x this in a burst */
	int det_burst_beats;          /* it lasts 1..det_burst_beats heartbeats */
};

/* What a content file does to the hosts that apply it. */
struct scn_content {
	char name[SCN_MAX_NAME];
	char upload[1024];        /* path of the POST /v1/content body */
	int channel;              /* index into scenario.ch */
	double crash_probability; /* per host that applies it (and matches segments) */
	double crash_delay_s;     /* from apply (and from each boot) to the crash */
	double crash_after_s;     /* no content crash before this long after apply */
	enum scn_after_crash after_crash;
	int boot_loop;          /* 1: every boot with it active crashes again */
	uint32_t platform_mask; /* bit p: platform p's agents can be victims */
	struct scn_behaviour health[SCN_N_BEHAVIOURS]; /* ignored on a baseline */
};

/* A fraction of one ring offline for a while, starting after_s after the
 * first channel's rollout under test enters that ring. */
struct scn_blip {
	int ring;
	double fraction;
	double after_s;
	double duration_s;
};

/* Expectations on one tenant's agents and channel k's content under test. */
struct scn_tenant_expect {
	int tenant;           /* index into scenario.tenants; n_tenants: the default tenant */
	int64_t max_exposure; /* -1: not checked; else most of its agents that applied it */
	int max_ring;    /* -1: not checked; else none of its agents in a later ring applied it */
	int reached;     /* -1: not checked; 1: every live agent of it runs the content at
	                    the end; 0: none of its agents ever applied it */
	int after_delay; /* 1: its first apply came at least its delay_s after the rollout
	                    completed (to the second) */
};

struct scn_expect {
	int n_states;
	char states[8][16];        /* acceptable final states; none: not checked */
	int max_ring;              /* index of the last ring it may reach; -1: not checked */
	int min_ring;              /* index of a ring it must reach; -1: not checked */
	int64_t max_exposure;      /* -1: not checked; -2: the size of ring 0 */
	int max_exposure_ring;     /* >= 0: at most the agents of rings 0..this one */
	int64_t max_on_bad;        /* -1: not checked */
	int exposed_on_lkg;        /* 1: every exposed live agent runs the baseline at the end */
	int64_t max_false_halts;   /* -1: not checked */
	int upload_rejected;       /* 1: the rollout content must be refused at upload */
	int halted_by_silence;     /* 1: the halting evaluation saw silence and no crash report */
	char seen_state[16];       /* "": not checked; else the rollout was seen in this state */
	char reason_contains[128]; /* "": not checked; else a substring of state_reason */
	int n_tenants;             /* expectations per tenant (expect.tenants) */
	struct scn_tenant_expect tenants[SCN_MAX_TENANTS + 1];
};

/* One channel of the scenario with its contents' baseline, the content under
 * test, its rollout policy and its expectations. */
struct scn_channel {
	uint32_t id;
	char name[SCN_MAX_NAME];
	int baseline;          /* index into scenario.contents */
	int rollout;           /* index into scenario.contents: the content under test */
	json_t *policy;        /* owned; NULL when absent; time keys already scaled */
	json_t *ring_policies; /* owned; NULL when absent; ditto */
	struct scn_expect expect;
};

struct scenario {
	char name[SCN_MAX_NAME];
	int n_channels; /* 1 for the single-channel form */
	struct scn_channel ch[SCN_MAX_CHANNELS];
	int n_rings;
	struct scn_ring rings[SCN_MAX_RINGS];
	int64_t agents;  /* sum of the ring sizes */
	int n_platforms; /* 0: no platform facts are sent */
	struct scn_platform platforms[SCN_MAX_PLATFORMS];
	int n_tenants; /* 0: every agent is the server's default tenant's */
	struct scn_tenant tenants[SCN_MAX_TENANTS];
	int n_contents;
	struct scn_content contents[SCN_MAX_CONTENTS];
	json_t *baseline_policy; /* owned; NULL when absent; overrides for the baselines */
	int gate_v2; /* the scenario uses platforms, several channels or gate v2 policy keys */
	double heartbeat_s, poll_s, reboot_s;
	int boot_loop_starts;
	double background_crash_rate, background_window_s;
	int n_blips;
	struct scn_blip blips[SCN_MAX_BLIPS];
	double settle_s, timeout_s;
	double time_scale;
	struct scn_health health;
};

/* Parse a scenario from text. base_dir resolves relative upload paths (NULL:
 * as given). agents > 0 rescales the rings to that many agents (each ring
 * keeps its share, at least 1). time_scale <= 0 picks max(1, agents / 1250).
 * Every duration of the scenario (timing, delays, blips, timeouts, and the
 * policies' min_bake_s, silence_timeout_s, max_wait_s, min_exposure_s and
 * watch_s) is multiplied by the time scale; agent counts of the policies
 * (min_healthy, holdout_min, min_segment_agents, min_segment_canaries) are
 * passed as written. On success *out is filled (release with scn_cleanup());
 * on failure err names the field. */
enum fb_rc scn_parse(const char *text, size_t len, const char *base_dir, int64_t agents,
                     double time_scale, struct scenario *out, struct fb_err *err) FB_MUSTCHECK;
/* Read and parse a scenario file; relative uploads resolve against
 * content_dir, or the file's folder when content_dir is NULL. */
enum fb_rc scn_load(const char *path, const char *content_dir, int64_t agents, double time_scale,
                    struct scenario *out, struct fb_err *err) FB_MUSTCHECK;
void scn_cleanup(struct scenario *s);
/* 1 when content i misbehaves in any way (crashes or a health behaviour). */
int scn_content_bad(const struct scenario *s, int i);
/* Index of the ring named name, or -1. */
int scn_ring_index(const struct scenario *s, const char *name);

/* The number of agents of ring r per platform, in counts[0..n_platforms-1]
 * (summing to the ring's size): floor(share x size) each, the remaining
 * agents to the largest remainders (the lower index first on a tie), and a
 * platform with share x size >= 0.5 that got none takes one from the
 * platform with the most, so a 5 % platform is in every ring of >= 10
 * agents. Nothing is written without platforms. */
void scn_ring_platforms(const struct scenario *s, int r, int64_t *counts);

/* The number of agents of ring r per tenant, in counts[0..n_tenants]
 * (summing to the ring's size; counts[n_tenants]: the agents outside every
 * tenant's share, the server's default tenant's), split as
 * scn_ring_platforms() splits platforms: a tenant with share x size >= 0.5
 * has at least one agent in the ring. Nothing is written without tenants. */
void scn_ring_tenants(const struct scenario *s, int r, int64_t *counts);
/* Index of the tenant named name, or -1. */
int scn_tenant_index(const struct scenario *s, const char *name);
/* The longest delay of the scenario's delayed tenants (seconds, scaled; 0:
 * none). */
int64_t scn_max_delay_s(const struct scenario *s);

#endif
