/* fb-fleet's engine: N simulated agents in one process on libcurl's multi
 * interface. Each agent enrolls with its own Ed25519 key, polls its signed
 * assignment with If-None-Match, verifies it with libfbsign (once per ETag),
 * downloads and checks blobs (libfbsign + libfbschema, parse once per
 * digest), applies, heartbeats and reports events, and crashes, reboots,
 * boot-loops, reverts or dies as the scenario says. */
#ifndef FLEET_H
#define FLEET_H

#include <jansson.h>
#include <stdint.h>

#include "fb.h"
#include "fbschema.h"
#include "fbsign.h"
#include "scenario.h"

#define FLEET_MAX_CONTENTS 32 /* distinct content digests one run tracks */

struct fleet;

struct fleet_opts {
	const char *base_url;          /* "http://127.0.0.1:PORT": the agent protocol */
	const char *ca_bundle;         /* PEM file of trusted CAs for https, or NULL */
	const struct scenario *scn;    /* borrowed, outlives the fleet */
	const struct fbsig_root *root; /* borrowed: the agents' pinned root */
	const struct cf_registry *reg; /* borrowed: the agents' template registry */
	uint64_t seed;                 /* every random draw derives from it */
	int max_inflight;              /* concurrent requests (<= 0: 64) */
	int verbose;                   /* progress lines on stderr */
	int protocol_v1;               /* never send the gate v2 fields (platform,
	                                  faulting_channel), whatever the scenario */
};

/* Called about every 250 ms of fleet_run; return 1 to stop the run. */
typedef int (*fleet_tick_cb)(void *ctx, struct fleet *f);

/* New fleet of scn->agents agents (not enrolled yet). *out: caller frees with
 * fleet_free(). */
enum fb_rc fleet_new(const struct fleet_opts *opts, struct fleet **out,
                     struct fb_err *err) FB_MUSTCHECK;
void fleet_free(struct fleet *f);

/* The enrollment token of the agents of tenant t in ring r (copied; t is a
 * scenario tenant index, n_tenants or 0 without tenants: the default
 * tenant). Set one for every pair that has agents (scn_ring_tenants())
 * before running. */
enum fb_rc fleet_set_ring_token(struct fleet *f, int tenant, int ring,
                                const char *token) FB_MUSTCHECK;
/* Tie scenario content index scn to its digest (learnt from the upload). */
void fleet_set_content(struct fleet *f, int scn, const char *sha256);

/* Run the event loop until cb returns 1 or max_ms pass (FB_ETIMEOUT). */
enum fb_rc fleet_run(struct fleet *f, int64_t max_ms, fleet_tick_cb cb, void *ctx,
                     struct fb_err *err) FB_MUSTCHECK;

/* Start the test phase now: content behaviours and background crashes are
 * armed from here on (the baseline rollout runs without them). */
void fleet_test_start(struct fleet *f);
/* The rollout under test entered ring r: start the blips of that ring. */
void fleet_ring_entered(struct fleet *f, int ring);

/* Counts over the fleet. scn is a scenario content index (its channel is
 * the content's). */
int64_t fleet_enrolled(const struct fleet *f);
int64_t fleet_dead(const struct fleet *f);
int64_t fleet_running(const struct fleet *f, int scn, int alive_only);
int64_t fleet_exposure(const struct fleet *f, int scn);
/* Live agents of the tenants of mode m. */
int64_t fleet_live_in_mode(const struct fleet *f, enum scn_mode m);
/* Agents that applied exposed_scn, are alive, and do not run lkg_scn. */
int64_t fleet_exposed_not_on(const struct fleet *f, int exposed_scn, int lkg_scn);
/* Wall-clock ms of the first apply of scn (0: never). */
int64_t fleet_first_apply_ms(const struct fleet *f, int scn);
/* Channel k's rollout under test is active (created and not ended; watching
 * counts as active) or not: applies while it is active are "treated". */
void fleet_rollout_active(struct fleet *f, int k, int active);
/* Channel k's rollout as the simulated agents saw it, over rings
 * 0..max_ring (the rings it reached): {"holdout": {"agents", "rings":
 * [{"ring","agents","holdout"}]}, "totals": {"agents","applied","treated",
 * "crashed","content_crashed","holdout"}, "segments": {fact: {value: {the
 * same as totals}}}}; segments only with platforms. Holdout: agents of
 * those rings that never applied the content while the rollout was active.
 * Agents of delayed or paused tenants count in neither the rings nor the
 * holdout. New reference. */
json_t *fleet_rollout_json(const struct fleet *f, int k, int max_ring);
/* Channel k as each tenant's agents saw it: {tenant name ("default": the
 * agents outside every share, when there are any): {"mode", "delay_s"
 * (delayed only), "agents", "live", "applied": {content: agents that ever
 * applied it}, "running": {content: live agents running it now},
 * "applied_by_ring": {ring: agents that applied the content under test},
 * "first_apply_after_end_s": seconds from end_ms (wall-clock ms the rollout
 * under test completed, 0: unknown) to the tenant's first apply of the
 * content under test, null when either is unknown}}; {} without tenants.
 * New reference. */
json_t *fleet_tenants_json(const struct fleet *f, int k, int64_t end_ms);
/* Every other figure (agents up/down/dead/offline, crashes, reverts,
 * requests and errors by kind, answered requests' latency by kind). New
 * reference. */
json_t *fleet_stats_json(const struct fleet *f);

/* A measurement window: fleet_window_start() marks its start;
 * fleet_window_json() ends it and returns what happened since: {"seconds",
 * "requests", "rps" (by kind and "all"), "request_errors",
 * "poll_not_modified", "latency_ms": {kind: {"p50","p90","p99","max"} or
 * null}, "heartbeat_lag_max_s"} (null when no window was started). New
 * reference. */
void fleet_window_start(struct fleet *f);
json_t *fleet_window_json(struct fleet *f);

#endif
