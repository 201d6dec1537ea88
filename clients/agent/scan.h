/* fb-agent's content evaluation: each pass builds a small set of real local
 * events (the host's processes from /proc, or the lines of an input file)
 * and runs every active channel file over them with libfbschema's
 * interpreter (cf_content_eval), counting evaluations, errors, time-outs,
 * detections and the blocks it would perform into struct ag_health. It never
 * acts on a verdict. No network here (unit-tested). */
#ifndef FB_AGENT_SCAN_H
#define FB_AGENT_SCAN_H

#include "fb.h"
#include "fbschema.h"
#include "health.h"
#include "state.h"

#include <stddef.h>
#include <stdint.h>

#define AG_SCAN_MAX_INPUT  (1024 * 1024) /* bytes of a scan-input file */
#define AG_SCAN_MAX_EVENTS 10000         /* events in one pass */

/* Log sink: level "debug", "info", "warn" or "error" (ag_log in the agent). */
typedef void (*ag_scan_log_fn)(const char *level, const char *fmt, ...) FB_PRINTF(2, 3);

struct ag_scan_opts {
	const char *input;  /* JSON Lines file of events; NULL or "": the host's processes */
	size_t max_events;  /* events per pass (<= AG_SCAN_MAX_EVENTS); 0: no evaluation */
	int64_t budget;     /* interpreter steps per event (<= 0: CF_DEFAULT_BUDGET) */
	int64_t max_ms;     /* wall-clock cap of one pass (<= 0: none) */
	ag_scan_log_fn log; /* NULL: silent */
};

/* One channel's parsed active file, kept between passes. */
struct ag_loaded {
	uint32_t channel;
	char sha256[FB_SHA256_HEX_LEN + 1]; /* the content this entry is for */
	struct cf_file *f;                  /* NULL when it did not load */
	char why[256];                      /* why it did not load */
};

/* Parsed active files; embed and zero, free with ag_scanner_cleanup(). */
struct ag_scanner {
	size_t n;
	struct ag_loaded files[AG_MAX_CHANNELS];
};

/* What one pass did. */
struct ag_scan_result {
	size_t events;    /* events built */
	size_t channels;  /* channels with active content */
	uint64_t evals;   /* evaluations counted (all channels) */
	uint64_t matches; /* of which detections */
	int truncated;    /* max_ms ran out before every evaluation was done */
	int64_t ms;       /* wall-clock time of the pass */
};

/* Frees the parsed files; the scanner can be used again. */
void ag_scanner_cleanup(struct ag_scanner *sc);

/* Build at most max events into evs (an array of at least max): from the
 * input file (one JSON object per line, cf_event_from_text; blank lines and
 * lines starting with '#' skipped) or, without one, the user-space
 * processes of /proc (those with a command line; the highest pids when
 * there are more), each {"process_name", "command_line", "parent_name",
 * "pid"}. *n receives the count; each event is the caller's to free with
 * cf_event_free(). A malformed input line is skipped and logged. FB_EIO
 * when the input (file or /proc) cannot be read, FB_ETOOBIG when the file
 * is over AG_SCAN_MAX_INPUT. */
enum fb_rc ag_scan_events(const struct ag_scan_opts *o, struct cf_event **evs, size_t max,
                          size_t *n, struct fb_err *err) FB_MUSTCHECK;

/* One pass: (re)load each channel's active file from st when its content
 * changed (read the active slot, check its sha256, cf_parse with reg), build
 * the events and evaluate every one against every active file, counting
 * into h: each evaluation is an eval; a time-out (FB_ETIMEOUT at the step
 * budget) a timeout; any other interpreter failure, or a file that does not
 * load, an error (each event counts as one failed evaluation); a verdict
 * with matches a detection, and one of "block" a block. Stops early when
 * o->max_ms runs out. *res says what was done. FB_OK unless the events
 * could not be built (err says why; nothing counted). */
enum fb_rc ag_scan_pass(struct ag_scanner *sc, struct ag_state *st, const struct cf_registry *reg,
                        const struct ag_scan_opts *o, struct ag_health *h,
                        struct ag_scan_result *res, struct fb_err *err) FB_MUSTCHECK;

#endif
