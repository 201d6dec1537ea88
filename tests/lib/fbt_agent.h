/* Simulated agents for rollout tests: each enrolls with a real key, polls
 * and verifies its assignment against the pinned root exactly as an agent
 * does, applies what it is assigned on channel FBT_CH, reports applied,
 * crash and boot_loop events and heartbeats, over HTTP to e->cur of a
 * struct fbt_env. Every function fails the running cmocka test on any
 * error. */
#ifndef FBT_AGENT_H
#define FBT_AGENT_H

#include <stdint.h>

#include "fbt_env.h"

enum fbt_behaviour {
	FBT_GOOD,    /* applies what it is assigned and keeps heartbeating */
	FBT_CRASHER, /* applies e->bad, crashes, reports it on the next boot */
	FBT_SILENT,  /* applies e->bad, heartbeats once, then is never heard again */
	FBT_LOOPER,  /* applies e->bad, boot-loops, reverts locally to what it ran */
};

struct fbt_agent {
	int64_t id;
	char *token; /* its agent token; freed by fbt_agent_free() */
	int ring;    /* index of the ring the test put it in (fbt_agent_rings) */
	enum fbt_behaviour how;
	char etag[160];
	int64_t seq; /* last accepted assignment sequence */
	char audience[128];
	char assigned[65]; /* content named for channel FBT_CH; "" when none */
	int64_t assigned_version;
	char active[65];
	char previous[65]; /* what it ran before active (its A/B slot) */
	int looped;        /* refuses e->bad until something newer is assigned */
	int boot;
	int nev;
	int dead;
	int crashed;
	int64_t bad_seq;      /* sequence of the assignment that named e->bad */
	int replays_expected; /* refuse a replayed sequence instead of failing */
	int replays;
	char caps[1024]; /* the capabilities it reports */
};

/* Enroll a (through an enrollment token made by e->admin, hostname "h")
 * as agent of ring index ring behaving how. tags: a JSON object or NULL
 * ({}); caps: a JSON array or NULL (e->caps); platform: facts as a JSON
 * object or NULL (none sent). */
void fbt_agent_new(struct fbt_env *e, struct fbt_agent *a, int ring, enum fbt_behaviour how,
                   const char *tags, const char *caps, const char *platform);
/* The same, enrolled into host group group (NULL: "default") of tenant
 * tenant (NULL: "default") through an enrollment token naming them. */
void fbt_agent_new_in(struct fbt_env *e, struct fbt_agent *a, int ring, enum fbt_behaviour how,
                      const char *tags, const char *caps, const char *platform, const char *tenant,
                      const char *group);
/* Free the tokens of the n agents ags (ags may be NULL when n is 0). */
void fbt_agent_free(struct fbt_agent *ags, int n);

/* Poll as an agent does: If-None-Match, then verify the assignment against
 * e->root (online-key signature, expiry, sequence above the last accepted
 * one, every embedded manifest). Returns 1 when a new one was accepted, 0
 * on 304 or on a replay refused while a->replays_expected. */
int fbt_agent_poll(struct fbt_env *e, struct fbt_agent *a);
/* A heartbeat with what a runs, expecting 202. */
void fbt_agent_heartbeat(struct fbt_env *e, struct fbt_agent *a);
/* One event, expecting it accepted: "applied" (content), "crash" (content
 * active at the crash, in the boot that crashed) or "boot_loop" (reverted
 * from content to a->previous). */
void fbt_agent_event(struct fbt_env *e, struct fbt_agent *a, const char *kind, const char *content);
/* One round of a's life: poll, apply what changed (failing on e->bad as its
 * behaviour says), report, heartbeat. A dead agent does nothing. */
void fbt_agent_step(struct fbt_env *e, struct fbt_agent *a);
/* Step the n agents until each runs want (or is dead); fails after
 * FBT_DEADLINE. */
void fbt_agent_settle(struct fbt_env *e, struct fbt_agent *ags, int n, const char *want);

/* PUT /v1/rings as e->admin: canary, early and broad by explicit lists (the
 * agents of ring index 0, 1 and 2), ga the rest. */
void fbt_agent_rings(struct fbt_env *e, const struct fbt_agent *ags, int n);

#endif
