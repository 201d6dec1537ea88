/* fb-agent's persistent state: identity, accepted sequence, A/B slots per
 * channel, refused contents, pending events, boot markers and the boot-loop
 * guard. Everything lives in one state directory as small JSON files written
 * atomically; no network here (unit-tested with a temporary directory). */
#ifndef FB_AGENT_STATE_H
#define FB_AGENT_STATE_H

#include "fb.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define AG_MAX_CHANNELS   64   /* channels one agent tracks */
#define AG_MAX_REFUSED    64   /* refused (channel, content) pairs kept */
#define AG_MAX_EVENTS     1000 /* pending events kept; the oldest are dropped past it */
#define AG_MAX_UNCLEAN    64   /* unclean-start times kept for the boot-loop guard */
#define AG_MAX_STATE_FILE (2 * 1024 * 1024) /* bytes of state.json */
#define AG_MAX_TOKEN      512               /* bytes of the agent token */
#define AG_MAX_REASON     400               /* bytes of a refusal reason kept */
#define AG_BOOT_ID_LEN    32                /* hex digits of a boot id */
#define AG_EVENT_MAX_AGE  (7 * 86400)       /* seconds; older pending events are dropped */

/* Slot indexes; AG_SLOT_NONE means the channel has no active content. */
enum { AG_SLOT_NONE = -1, AG_SLOT_A = 0, AG_SLOT_B = 1 };

struct ag_channel {
	uint32_t id;
	char slot_sha[2][FB_SHA256_HEX_LEN + 1]; /* content staged in slot A / B, "" empty */
	int64_t slot_version[2];
	int active;                      /* AG_SLOT_*: the slot the pointer names */
	char lkg[FB_SHA256_HEX_LEN + 1]; /* last known good content, "" none */
	int64_t changed_at;              /* Unix s of the last switch to new content;
	                                  * 0 after a revert (no longer a suspect) */
};

struct ag_refusal {
	uint32_t channel;
	char sha256[FB_SHA256_HEX_LEN + 1];
	int64_t sequence; /* assignment sequence when refused; lifted by a newer one
	                   * that names other content for the channel */
	char reason[AG_MAX_REASON];
};

struct ag_state {
	char *dir;                           /* state directory (owned) */
	int64_t sequence;                    /* last accepted assignment sequence, 0 none */
	char doc_sha[FB_SHA256_HEX_LEN + 1]; /* sha256 of that assignment's bytes */
	char etag[256];                      /* its ETag for If-None-Match */
	size_t n_channels;
	struct ag_channel ch[AG_MAX_CHANNELS];
	size_t n_refused;
	struct ag_refusal refused[AG_MAX_REFUSED];
	size_t n_unclean;
	int64_t unclean[AG_MAX_UNCLEAN]; /* Unix s of each unclean start seen */
	json_t *events;                  /* pending events (array, owned) */
};

/* The agent's identity (identity.json, mode 0600). */
struct ag_identity {
	int64_t agent_id; /* 0: not enrolled yet */
	char token[AG_MAX_TOKEN + 1];
	unsigned char seed[32]; /* Ed25519 seed (secret) */
	unsigned char pk[32];
};

/* Boot-loop guard policy. */
struct ag_guard {
	int64_t starts;  /* N unclean starts ... */
	int64_t minutes; /* ... within M minutes following a content change */
};

/* What ag_boot_begin found. */
struct ag_boot {
	char boot_id[AG_BOOT_ID_LEN + 1];      /* this process's new boot id */
	int prev_unclean;                      /* 1: the previous boot did not stop cleanly */
	char prev_boot_id[AG_BOOT_ID_LEN + 1]; /* "" when there was no previous boot */
	uint32_t prev_interpreting; /* the channel whose content that boot was interpreting
	                               when it stopped (its breadcrumb), 0: none */
};

/* Open (creating if needed, mode 0700) the state directory and load
 * state.json; a missing file gives a fresh state. A malformed file is an
 * error (FB_EFORMAT naming the field): the agent never guesses its state.
 * *out: caller frees with ag_state_free(). */
enum fb_rc ag_state_open(const char *dir, struct ag_state **out, struct fb_err *err) FB_MUSTCHECK;
void ag_state_free(struct ag_state *s);
/* Write state.json atomically (mode 0600). */
enum fb_rc ag_state_save(struct ag_state *s, struct fb_err *err) FB_MUSTCHECK;

/* The channel record, or NULL. ag_state_channel_add creates it when missing
 * (NULL when AG_MAX_CHANNELS are tracked). Borrowed, valid while s lives. */
struct ag_channel *ag_state_channel(struct ag_state *s, uint32_t id);
struct ag_channel *ag_state_channel_add(struct ag_state *s, uint32_t id);
/* sha256 of the active content of channel id, or NULL. Borrowed. */
const char *ag_state_active(struct ag_state *s, uint32_t id);
/* New JSON object channel id (decimal string) -> active sha256. */
json_t *ag_state_active_json(struct ag_state *s);

/* Path of a slot file (slot AG_SLOT_A/B) or of the channel's "active"
 * pointer (slot AG_SLOT_NONE) into buf. FB_EINVAL when it does not fit. */
enum fb_rc ag_slot_path(const struct ag_state *s, uint32_t ch, int slot, char *buf,
                        size_t n) FB_MUSTCHECK;

/* Stage blob (already verified) into the inactive slot of channel ch (temp
 * file, fsync, rename, fsync dir), switch the active pointer atomically
 * (symlink renamed over the old one), record it (the previously active
 * content becomes the last known good), mark the change time now and save.
 * On any failure the previously active slot stays active. */
enum fb_rc ag_slot_apply(struct ag_state *s, uint32_t ch, const char *sha256, int64_t version,
                         const void *blob, size_t len, int64_t now,
                         struct fb_err *err) FB_MUSTCHECK;
/* Remove channel ch's active pointer (no content on it) and save. The slot
 * files stay; the content that was active becomes the last known good. */
enum fb_rc ag_slot_deactivate(struct ag_state *s, uint32_t ch, int64_t now,
                              struct fb_err *err) FB_MUSTCHECK;

/* Is (ch, sha256) refused? Returns the refusal (borrowed) or NULL. */
const struct ag_refusal *ag_refused(const struct ag_state *s, uint32_t ch, const char *sha256);
/* Refuse (ch, sha256) from assignment sequence on (idempotent). */
enum fb_rc ag_refuse(struct ag_state *s, uint32_t ch, const char *sha256, int64_t sequence,
                     const char *reason) FB_MUSTCHECK;
/* An assignment with sequence names sha256 ("" = channel absent) for ch:
 * lift refusals of ch made at an older sequence for other content. Returns
 * the number lifted. */
size_t ag_refusals_lift(struct ag_state *s, uint32_t ch, const char *sha256, int64_t sequence);

/* Queue an event (steals ev; it must carry a string "id"). An event whose
 * id is already pending is dropped (idempotent). Past AG_MAX_EVENTS the oldest
 * is dropped. Not saved: call ag_state_save. */
enum fb_rc ag_event_add(struct ag_state *s, json_t *ev) FB_MUSTCHECK;
/* Remove the first n pending events (those just acknowledged). Not saved. */
void ag_events_remove_first(struct ag_state *s, size_t n);
/* Drop pending events older than AG_EVENT_MAX_AGE at now; returns how many. */
size_t ag_events_expire(struct ag_state *s, int64_t now);

/* Start of a boot: read boot.json; when the previous boot has no clean-stop
 * mark, queue a "crash" event per channel with active content (crashed boot
 * id, that content; id "crash-<boot>-<channel>"; faulting_channel when the
 * breadcrumb named one) and remember the unclean
 * start time now. Then write a new boot.json (fresh random boot id, not
 * clean) and save the state. */
enum fb_rc ag_boot_begin(struct ag_state *s, int64_t now, struct ag_boot *out,
                         struct fb_err *err) FB_MUSTCHECK;
/* Mark the current boot (boot_id) as cleanly stopped. */
enum fb_rc ag_boot_end(struct ag_state *s, const char *boot_id, struct fb_err *err) FB_MUSTCHECK;
/* Record in boot.json why this boot is about to die (test hook: the crash
 * code reported with the next start's crash event). Best effort. */
void ag_boot_note_crash(struct ag_state *s, const char *boot_id, const char *code);
/* The breadcrumb: channel ch's content is being interpreted from now on (0:
 * none is). A start after an unclean stop names that channel as the
 * faulting one in its crash events (faulting_channel, server/PROTOCOL.md).
 * A small file in the state directory, written without fsync: a host crash
 * may lose it, and then the crash names no channel (never a wrong one: the
 * next boot clears it). Best effort. */
void ag_breadcrumb(struct ag_state *s, uint32_t ch);

/* Boot-loop guard, after ag_boot_begin: let T be the latest change time among
 * channels with changed_at > 0; when at least g->starts unclean starts
 * happened at or after T and within the last g->minutes, switch every channel
 * changed at T back to its last known good slot (or deactivate it when there
 * is none), refuse the content it ran (at the current sequence), queue a
 * "boot_loop" event per channel (reverted_from, reverted_to, unclean_starts),
 * forget the unclean starts and save. *reverted: channels switched back. */
enum fb_rc ag_bootloop_check(struct ag_state *s, const struct ag_guard *g, const char *boot_id,
                             int64_t now, size_t *reverted, struct fb_err *err) FB_MUSTCHECK;

/* identity.json: *found = 0 when absent (id zeroed). FB_EPERM when the file
 * is accessible by group or other; FB_EFORMAT when malformed. */
enum fb_rc ag_identity_load(const char *dir, struct ag_identity *id, int *found,
                            struct fb_err *err) FB_MUSTCHECK;
enum fb_rc ag_identity_save(const char *dir, const struct ag_identity *id,
                            struct fb_err *err) FB_MUSTCHECK;
/* Fresh Ed25519 key into id (agent_id and token cleared). */
void ag_identity_generate(struct ag_identity *id);
/* Wipe secrets. */
void ag_identity_wipe(struct ag_identity *id);

#endif
