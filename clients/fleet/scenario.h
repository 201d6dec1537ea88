/* fb-fleet scenarios: the JSON file that describes a simulated fleet, the
 * behaviour of each content file, network blips, the rollout under test and
 * the expectations checked against the summary (format: README.md). */
#ifndef FLEET_SCENARIO_H
#define FLEET_SCENARIO_H

#include <jansson.h>
#include <stdint.h>

#include "fb.h"

#define SCN_MAX_RINGS    16
#define SCN_MAX_CONTENTS 16
#define SCN_MAX_BLIPS    8
#define SCN_MAX_NAME     64
#define SCN_MAX_FILE     (1024 * 1024) /* bytes of a scenario file */

enum scn_after_crash { SCN_REBOOT = 0, SCN_SILENT };

struct scn_ring {
	char name[SCN_MAX_NAME];
	int64_t agents; /* after scaling to the fleet size */
};

/* What a content file does to the hosts that apply it. */
struct scn_content {
	char name[SCN_MAX_NAME];
	char upload[1024];        /* path of the POST /v1/content body */
	double crash_probability; /* per host that applies it */
	double crash_delay_s;     /* from apply (and from each boot) to the crash */
	enum scn_after_crash after_crash;
	int boot_loop; /* 1: every boot with it active crashes again */
};

/* A fraction of one ring offline for a while, starting after_s after the
 * rollout under test enters that ring. */
struct scn_blip {
	int ring;
	double fraction;
	double after_s;
	double duration_s;
};

struct scn_expect {
	int n_states;
	char states[8][16];      /* acceptable final states; none: not checked */
	int max_ring;            /* index of the last ring it may reach; -1: not checked */
	int64_t max_exposure;    /* -1: not checked; -2: the size of ring 0 */
	int64_t max_on_bad;      /* -1: not checked */
	int exposed_on_lkg;      /* 1: every exposed live agent runs the baseline at the end */
	int64_t max_false_halts; /* -1: not checked */
	int upload_rejected;     /* 1: the rollout content must be refused at upload */
	int halted_by_silence;   /* 1: the halting evaluation saw silence and no crash report */
};

struct scenario {
	char name[SCN_MAX_NAME];
	uint32_t channel_id;
	char channel_name[SCN_MAX_NAME];
	int n_rings;
	struct scn_ring rings[SCN_MAX_RINGS];
	int64_t agents; /* sum of the ring sizes */
	int n_contents;
	struct scn_content contents[SCN_MAX_CONTENTS];
	int baseline;          /* index into contents */
	int rollout;           /* index into contents: the content under test */
	json_t *policy;        /* owned; NULL when absent; time keys already scaled */
	json_t *ring_policies; /* owned; NULL when absent; ditto */
	double heartbeat_s, poll_s, reboot_s;
	int boot_loop_starts;
	double background_crash_rate, background_window_s;
	int n_blips;
	struct scn_blip blips[SCN_MAX_BLIPS];
	double settle_s, timeout_s;
	double time_scale;
	struct scn_expect expect;
};

/* Parse a scenario from text. base_dir resolves relative upload paths (NULL:
 * as given). agents > 0 rescales the rings to that many agents (each ring
 * keeps its share, at least 1). time_scale <= 0 picks max(1, agents / 1250).
 * Every duration of the scenario (timing, delays, blips, timeouts, and the
 * policies' min_bake_s and silence_timeout_s) is multiplied by the time
 * scale. On success *out is filled (release with scn_cleanup()); on failure
 * err names the field. */
enum fb_rc scn_parse(const char *text, size_t len, const char *base_dir, int64_t agents,
                     double time_scale, struct scenario *out, struct fb_err *err) FB_MUSTCHECK;
/* Read and parse a scenario file; relative uploads resolve against
 * content_dir, or the file's folder when content_dir is NULL. */
enum fb_rc scn_load(const char *path, const char *content_dir, int64_t agents, double time_scale,
                    struct scenario *out, struct fb_err *err) FB_MUSTCHECK;
void scn_cleanup(struct scenario *s);
/* Index of the ring named name, or -1. */
int scn_ring_index(const struct scenario *s, const char *name);

/* Check the expectations against a summary object (as printed by --json).
 * Appends one {"name","ok","detail"} per checked expectation to results
 * (a JSON array, borrowed) and returns 1 when all held. */
int scn_check(const struct scenario *s, const json_t *summary, json_t *results);

#endif
