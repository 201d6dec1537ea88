/* fb-agent's health measurements for the heartbeat's "health" object
 * (server/PROTOCOL.md, "Health"): its own CPU sampled about once a second,
 * the host's CPU from /proc/stat, its resident memory, and per-channel
 * evaluation counters over the interval since the last accepted heartbeat.
 * No network here (unit-tested). */
#ifndef FB_AGENT_HEALTH_H
#define FB_AGENT_HEALTH_H

#include "fb.h"
#include "state.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define AG_HEALTH_BUCKETS      1024       /* agent CPU histogram: whole per cent 0..1023 */
#define AG_HEALTH_MIN_SAMPLE   100        /* ms: shorter samples wait for the next one */
#define AG_HEALTH_MAX_INTERVAL 86400      /* interval_s cap (PROTOCOL.md) */
#define AG_HEALTH_MAX_COUNT    1000000000 /* per-channel counter cap (PROTOCOL.md) */

/* The host's CPU time from the first line of /proc/stat, in clock ticks. */
struct ag_cpu_times {
	uint64_t busy;  /* everything but idle and iowait */
	uint64_t total; /* user .. steal */
};

/* One channel's counters over the interval. */
struct ag_chan_health {
	uint32_t channel;
	uint64_t evals;      /* content evaluations (events run through its file) */
	uint64_t errors;     /* evaluations the interpreter failed (file did not load) */
	uint64_t timeouts;   /* evaluations stopped at the step budget */
	uint64_t detections; /* evaluations where at least one rule matched */
	uint64_t blocks;     /* evaluations whose verdict was "block" (never acted on) */
};

/* The measurements of one interval; embedded in struct ag. */
struct ag_health {
	int64_t start_ms; /* monotonic ms the interval began (last accepted heartbeat) */
	/* agent CPU: samples weighted by their length, by whole per cent of one CPU */
	int64_t last_ms;                  /* monotonic ms of the last sample */
	uint64_t last_cpu_us;             /* the process's CPU time (user + system) then */
	uint64_t hist[AG_HEALTH_BUCKETS]; /* ms of samples at each per cent; the last
	                                   * bucket holds every sample >= its index */
	uint64_t over_max;                /* largest per cent that went into the last bucket */
	uint64_t cpu_us, wall_us;         /* sums over the interval's samples */
	/* host CPU at the start of the interval */
	struct ag_cpu_times host0;
	int host0_ok;
	/* per channel, in the order first counted */
	size_t n_ch;
	struct ag_chan_health ch[AG_MAX_CHANNELS];
};

/* Read at most n-1 (n >= 1) bytes of a small file such as /proc/<pid>/stat
 * into buf, NUL-terminated; the byte count, or -1 when it cannot be opened
 * or read (a process that is gone). */
ssize_t ag_proc_read(const char *path, char *buf, size_t n);

/* Parse the text of /proc/stat: the "cpu " line's user, nice, system, idle,
 * iowait, irq, softirq and steal (at least the first four; guest time is
 * already in user and nice). FB_EINVAL when there is no such line. */
enum fb_rc ag_parse_proc_stat(const char *text, struct ag_cpu_times *out) FB_MUSTCHECK;
/* Parse the text of /proc/self/statm: resident pages (second number) times
 * page_kb. FB_EINVAL when malformed. */
enum fb_rc ag_parse_statm(const char *text, uint64_t page_kb, uint64_t *rss_kb) FB_MUSTCHECK;
/* Whole per cent busy between two readings, 0..100; -1 when the counters
 * did not advance (or went back). */
int ag_host_cpu_pct(const struct ag_cpu_times *a, const struct ag_cpu_times *b);

/* Start measuring at now_ms (monotonic): the interval, the CPU sampler's
 * reference point and the host's CPU reading. h is zeroed first. */
void ag_health_init(struct ag_health *h, int64_t now_ms);
/* Take an agent-CPU sample ending at now_ms (getrusage): the CPU used since
 * the last sample over the wall time since then. Skipped while the last
 * sample is less than AG_HEALTH_MIN_SAMPLE ms old, unless force is set and
 * the interval has no sample yet. */
void ag_health_sample(struct ag_health *h, int64_t now_ms, int force);
/* Record one sample: cpu_us of CPU time over wall_us of wall time (the pure
 * part of ag_health_sample; wall_us 0 is ignored). */
void ag_health_add_sample(struct ag_health *h, uint64_t cpu_us, uint64_t wall_us);
/* 95th percentile of the samples weighted by length (the smallest per cent
 * at or below which 95 % of the sampled time lies) and the mean (CPU time
 * over wall time), whole per cent of one CPU. Both 0 without samples. */
uint64_t ag_health_cpu_p95(const struct ag_health *h);
uint64_t ag_health_cpu_mean(const struct ag_health *h);

/* Channel ch's counters, created at zero when missing; NULL when
 * AG_MAX_CHANNELS channels are counted. Borrowed, valid while h lives. */
struct ag_chan_health *ag_health_channel(struct ag_health *h, uint32_t ch);

/* The health object for a heartbeat sent at now_ms: interval_s (seconds
 * since the interval began, 1 .. 86400), agent_cpu_p95 and agent_cpu_mean
 * (when sampled), host_cpu (when /proc/stat advanced), agent_rss_kb (when
 * /proc/self/statm was readable) and channels: one entry per key of active
 * (the heartbeat's "active" object), its counters or zeros, each capped at
 * AG_HEALTH_MAX_COUNT. *host_now receives the host reading taken (for
 * ag_health_reset; ok 0 when unreadable). A new reference; NULL on
 * allocation failure. */
json_t *ag_health_json(const struct ag_health *h, int64_t now_ms, const json_t *active,
                       struct ag_cpu_times *host_now, int *host_now_ok);
/* The heartbeat carrying the interval was accepted: start the next interval
 * at now_ms with host_now as the host's reference (as ag_health_json gave
 * it); the CPU sampler's reference point carries on. */
void ag_health_reset(struct ag_health *h, int64_t now_ms, const struct ag_cpu_times *host_now,
                     int host_now_ok);

#endif
