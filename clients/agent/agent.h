/* fb-agent's protocol cycle (server/PROTOCOL.md): enroll, poll, verify with
 * libfbsign, validate with libfbschema, stage and switch A/B slots, heartbeat,
 * report events. main.c owns flags and the daemon loop. */
#ifndef FB_AGENT_H
#define FB_AGENT_H

#include "fb.h"
#include "fbclient.h"
#include "fbschema.h"
#include "fbsign.h"
#include "health.h"
#include "scan.h"
#include "state.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define AG_VERSION          "1.0.0"
#define AG_CRASH_STATUS     70          /* exit status of the test-only crash hook */
#define AG_MAX_CRASH_ON     16          /* digests in FB_AGENT_TEST_CRASH_ON */
#define AG_MAX_ROOT_STEPS   32          /* root versions fetched in one update */
#define AG_MAX_SMALL_RESP   (64 * 1024) /* bytes of an enroll/heartbeat/events answer */
#define AG_EVENTS_PER_POST  100
#define AG_EVENT_MAX_REASON 512           /* bytes of a rejected event's reason (PROTOCOL.md) */
#define AG_HEALTH_RETRY_MS  (3600 * 1000) /* after the server refused "health" */

/* Configuration (flags and config file; defaults in main.c's table). */
struct ag_config {
	char *server; /* base URL */
	char *root;   /* pinned root file */
	char *state_dir;
	char *templates;    /* template registry directory: what this build interprets */
	char *channels;     /* comma-separated channel ids; "" = every assigned channel */
	char *enroll_token; /* first start only */
	char *ca_bundle;    /* PEM CA file for HTTPS, or NULL for the system store */
	char *hostname;     /* reported at enrollment; NULL = gethostname() */
	char *log_level;    /* debug, info, warn or error */
	int64_t poll_interval_s;
	int64_t poll_jitter_s;
	int64_t heartbeat_interval_s;
	int64_t backoff_max_s;
	int64_t timeout_s;
	int64_t boot_loop_starts;
	int64_t boot_loop_minutes;
	int64_t health;          /* 1: heartbeats carry the health object */
	char *scan_input;        /* JSON Lines events to evaluate; "": the host's processes */
	int64_t scan_interval_s; /* between evaluation passes (0: only after each poll) */
	int64_t scan_max_events; /* events per pass (0: no evaluation) */
	int64_t scan_max_ms;     /* wall-clock cap of one pass */
};

/* A running agent. */
struct ag {
	const struct ag_config *cfg;
	struct ag_state *st;
	struct ag_identity id;
	struct fbsig_root *root;
	struct cf_registry *reg;
	json_t *caps; /* cf_registry_capabilities(reg) */
	struct fbc *http;
	struct ag_boot boot;
	int64_t started_mono_ms;
	uint32_t channels[AG_MAX_CHANNELS];
	size_t n_channels; /* 0: follow every channel of the assignment */
	char crash_on[AG_MAX_CRASH_ON][FB_SHA256_HEX_LEN + 1];
	size_t n_crash_on;
	int platform_sent;         /* this run's first heartbeat carried the platform facts */
	struct ag_health health;   /* measurements since the last accepted heartbeat */
	struct ag_scanner scanner; /* the active channel files, parsed */
	int64_t health_refused_ms; /* monotonic ms the server last refused "health", 0 */
};

/* Load everything local (root, registry, state, identity), start a boot
 * (crash report of an unclean previous boot), run the boot-loop guard, then
 * the test crash hook on the content now active. a is zeroed first; free with
 * ag_close(). */
enum fb_rc ag_open(struct ag *a, const struct ag_config *cfg, struct fb_err *err) FB_MUSTCHECK;
/* Clean stop when clean is 1 (writes the clean-stop marker), then frees. */
void ag_close(struct ag *a, int clean);

/* One step each; FB_OK when done (a refused assignment is FB_OK: it was
 * reported), an error when the server could not be reached or answered
 * unexpectedly (err says what). */
enum fb_rc ag_enroll(struct ag *a, struct fb_err *err) FB_MUSTCHECK;
enum fb_rc ag_poll(struct ag *a, struct fb_err *err) FB_MUSTCHECK;
enum fb_rc ag_heartbeat(struct ag *a, struct fb_err *err) FB_MUSTCHECK;
enum fb_rc ag_flush_events(struct ag *a, struct fb_err *err) FB_MUSTCHECK;
/* One evaluation pass of the active content over local events (scan.h),
 * counted for the next heartbeat's health object; logs what went wrong and
 * never fails. */
void ag_evaluate(struct ag *a);
/* enroll if needed, poll and apply, evaluate, heartbeat, report pending
 * events. */
enum fb_rc ag_cycle(struct ag *a, struct fb_err *err) FB_MUSTCHECK;

/* Parse "291,292" into ids (at most max); FB_EINVAL on junk. */
enum fb_rc ag_parse_channels(const char *s, uint32_t *ids, size_t max, size_t *n,
                             struct fb_err *err) FB_MUSTCHECK;

/* One log line to stderr: "<UTC time> fb-agent[pid] <level>: <message>";
 * level is "debug", "info", "warn" or "error". Lines below the level set with
 * ag_log_set_level (default "info") are not formatted. */
void ag_log(const char *level, const char *fmt, ...) FB_PRINTF(2, 3);
/* FB_EINVAL for an unknown level name. */
enum fb_rc ag_log_set_level(const char *level) FB_MUSTCHECK;

#endif
