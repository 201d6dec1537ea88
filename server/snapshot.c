/* The in-memory serving snapshot and the poll handler. The state (rings,
 * pins, channels, content, documents) is swapped whole on reload under
 * g_state_lock; the agents' places in it (ring, pin set, capability class)
 * are kept in the agent table of agents.c, which outlives reloads. */
#include "snapshot.h"

#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents.h"
#include "app.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "migrate.h"

enum ring_kind { RK_LIST, RK_TAG, RK_PERCENT, RK_REST };

struct ring_def {
	char name[40];
	enum ring_kind kind;
	int64_t *ids; /* RK_LIST, sorted */
	size_t nids;
	char tag[200];   /* RK_TAG: key=value */
	uint32_t lo, hi; /* RK_PERCENT: bucket range [lo, hi) of 10000 */
};

struct pin_def {
	int id;
	char tag[200];
	uint32_t channel;
	int n_minus_1;
	char sha[FB_SHA256_HEX_LEN + 1]; /* version pins: the named content, or "" */
};

struct content_info {
	char sha[FB_SHA256_HEX_LEN + 1];
	uint32_t channel;
	char *manifest;
	size_t mlen;
	json_t *templates;
};

struct chan_state {
	uint32_t id;
	char ga[FB_SHA256_HEX_LEN + 1];
	char prev[FB_SHA256_HEX_LEN + 1];
	int rollout;
	int64_t rollout_id;
	char rollout_sha[FB_SHA256_HEX_LEN + 1];
	unsigned char exposed[SNAP_MAX_RINGS];
	uint16_t hold_bp[SNAP_MAX_RINGS]; /* holdout of each ring, in 1/10000 */
	int ga_ring;                      /* the rollout plan's last ring: GA */
	int hold_bit;                     /* its bit in a document key, -1: none */
};

/* Customer content policies (migration 0009): what a host group gets on a
 * channel. */
enum cmode { CM_EARLY, CM_GA, CM_DELAYED, CM_PAUSED, CM_NM1, CM_VERSION };

/* A policy class: the mode (and the content it names, for delayed, paused
 * and version) on every channel of the state, in the order of chans. Groups
 * with the same policies share one; class 0 is early everywhere (the default
 * tenant's), class 1 GA everywhere (a group this state does not know yet). */
struct pclass {
	unsigned char *mode;
	char (*sha)[FB_SHA256_HEX_LEN + 1];
};

struct group_def {
	int id;
	uint16_t pcl;
};

struct doc {
	uint64_t key;
	char *bytes;
	size_t len;
	char etag[64];
};

struct state {
	int64_t seq, issued;
	int nrings;
	struct ring_def rings[SNAP_MAX_RINGS];
	int npins;
	struct pin_def pins[SNAP_MAX_PINS];
	int nchans;
	struct chan_state *chans;
	int ncontent;
	struct content_info *content;
	int placed_all;      /* every agent was placed again (rings, pins or groups changed) */
	char load_began[40]; /* the loading transaction's start, as PostgreSQL's text */
	int ngroups;         /* sorted by id; an agent's slot holds its index */
	struct group_def *groups;
	int npcl;
	struct pclass *pcls;
	char config_sig[FB_SHA256_HEX_LEN + 1];
	pthread_mutex_t doc_mu;
	struct doc *docs;
	size_t ndocs, capdocs;
};

#define AGENT_PAGE_S "4096" /* agents a FETCH while loading the snapshot */

static pthread_rwlock_t g_state_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct state *g_state;

/* Append-only tables; entries never move once published. */
static pthread_mutex_t g_tab_mu = PTHREAD_MUTEX_INITIALIZER;
#define MAX_CLASSES 4096
#define MAX_PINSETS 4096
static char *g_cls_key[MAX_CLASSES];
static json_t *g_cls_caps[MAX_CLASSES];
static int g_ncls;
static uint64_t g_pinset_mask[MAX_PINSETS];
static int g_npinsets;

static int g_publish_wanted; /* a capability class changed: publish anew */
/* Run on each new connection until the snapshot is loaded (snapshot_start). */
static enum fb_rc (*g_prepare)(PGconn *c, struct fb_err *err);
static pthread_t g_thread;
static int g_thread_started;
static volatile int g_stop;
static pthread_mutex_t g_why_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_why[256] = "starting";
static int g_ready;

static void set_why(const char *msg)
{
	pthread_mutex_lock(&g_why_mu);
	snprintf(g_why, sizeof g_why, "%s", msg);
	pthread_mutex_unlock(&g_why_mu);
}

int snapshot_ready(char *why, size_t n)
{
	int ready = __atomic_load_n(&g_ready, __ATOMIC_ACQUIRE);
	if (!ready && why) {
		pthread_mutex_lock(&g_why_mu);
		snprintf(why, n, "%s", g_why);
		pthread_mutex_unlock(&g_why_mu);
	}
	return ready;
}

/* ---- tables ------------------------------------------------------------ */

/* Canonical key of a capabilities array: sorted, compact. */
static char *caps_key(const json_t *caps)
{
	json_t *copy = json_is_array(caps) ? json_deep_copy(caps) : json_array();
	size_t n = json_array_size(copy);
	for (size_t i = 1; i < n; i++) { /* insertion sort by (id, version) */
		for (size_t j = i; j > 0; j--) {
			json_t *a = json_array_get(copy, j - 1), *b = json_array_get(copy, j);
			json_int_t ai = json_integer_value(json_object_get(a, "id")),
			           bi = json_integer_value(json_object_get(b, "id"));
			json_int_t av = json_integer_value(json_object_get(a, "version")),
			           bv = json_integer_value(json_object_get(b, "version"));
			if (ai < bi || (ai == bi && av <= bv))
				break;
			json_incref(a);
			json_incref(b);
			json_array_set_new(copy, j - 1, b);
			json_array_set_new(copy, j, a);
		}
	}
	char *s = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(copy);
	return s;
}

static uint16_t class_of(const json_t *caps)
{
	char *key = caps_key(caps);
	if (!key)
		return 0;
	pthread_mutex_lock(&g_tab_mu);
	int found = -1;
	for (int i = 0; i < g_ncls; i++)
		if (strcmp(g_cls_key[i], key) == 0)
			found = i;
	if (found < 0 && g_ncls < MAX_CLASSES) {
		json_error_t je;
		g_cls_caps[g_ncls] = json_loads(key, 0, &je);
		g_cls_key[g_ncls] = key;
		key = NULL;
		found = g_ncls++;
	}
	pthread_mutex_unlock(&g_tab_mu);
	free(key);
	return (uint16_t)(found < 0 ? 0 : found);
}

/* Capability classes by the text of the capabilities as they arrive (a
 * heartbeat's compact JSON, the database's jsonb text): canonicalising them
 * (class_of) on every heartbeat would cost a deep copy, a sort and a dump.
 * Open addressing, CLS_CACHE slots, at most CLS_PROBE probes; a full window
 * evicts its first slot. Hits take only the read lock. */
#define CLS_CACHE 1024
#define CLS_PROBE 8
struct cls_entry {
	uint64_t hash;
	char *text; /* NULL: empty slot */
	size_t len;
	uint16_t cls;
};
static pthread_rwlock_t g_cls_cache_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct cls_entry g_cls_cache[CLS_CACHE];

static uint64_t text_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static int cls_cache_find(uint64_t h, const char *text, size_t n, uint16_t *cls)
{
	for (size_t k = 0; k < CLS_PROBE; k++) {
		const struct cls_entry *e = &g_cls_cache[(h + k) & (CLS_CACHE - 1)];
		if (!e->text)
			return 0;
		if (e->hash == h && e->len == n && memcmp(e->text, text, n) == 0) {
			*cls = e->cls;
			return 1;
		}
	}
	return 0;
}

/* The class of capabilities given as JSON text (an array of {id, version});
 * text that does not parse is the empty class, as class_of(NULL) is. */
static uint16_t class_of_text(const char *text)
{
	size_t n = strlen(text);
	uint64_t h = text_hash(text, n);
	uint16_t cls;
	pthread_rwlock_rdlock(&g_cls_cache_lock);
	int hit = cls_cache_find(h, text, n, &cls);
	pthread_rwlock_unlock(&g_cls_cache_lock);
	if (hit)
		return cls;
	json_t *caps = json_loadb(text, n, 0, NULL);
	cls = class_of(caps);
	json_decref(caps);
	char *copy = strndup(text, n);
	if (!copy)
		return cls;
	pthread_rwlock_wrlock(&g_cls_cache_lock);
	uint16_t again;
	if (cls_cache_find(h, text, n, &again)) {
		free(copy);
	} else {
		struct cls_entry *e = &g_cls_cache[h & (CLS_CACHE - 1)];
		for (size_t k = 0; k < CLS_PROBE; k++)
			if (!g_cls_cache[(h + k) & (CLS_CACHE - 1)].text) {
				e = &g_cls_cache[(h + k) & (CLS_CACHE - 1)];
				break;
			}
		free(e->text);
		*e = (struct cls_entry){h, copy, n, cls};
	}
	pthread_rwlock_unlock(&g_cls_cache_lock);
	return cls;
}

static void cls_cache_clear(void)
{
	pthread_rwlock_wrlock(&g_cls_cache_lock);
	for (size_t i = 0; i < CLS_CACHE; i++) {
		free(g_cls_cache[i].text);
		g_cls_cache[i] = (struct cls_entry){0};
	}
	pthread_rwlock_unlock(&g_cls_cache_lock);
}

static uint16_t pinset_of(uint64_t mask)
{
	pthread_mutex_lock(&g_tab_mu);
	int found = -1;
	for (int i = 0; i < g_npinsets; i++)
		if (g_pinset_mask[i] == mask)
			found = i;
	if (found < 0 && g_npinsets < MAX_PINSETS) {
		g_pinset_mask[g_npinsets] = mask;
		found = g_npinsets++;
	}
	pthread_mutex_unlock(&g_tab_mu);
	return (uint16_t)(found < 0 ? 0 : found);
}

/* ---- ring and pin resolution -------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Whether agent id is in the holdout of rollout rollout_id at share bp
 * (1/10000): a hash of both, the same on every replica and after restarts,
 * independent of the ring selection's hash and of other rollouts'. */
static int held_out(int64_t rollout_id, int64_t id, uint16_t bp)
{
	if (!bp)
		return 0;
	uint64_t h = mix64((uint64_t)rollout_id * 0xd6e8feb86659fd93ull ^ mix64((uint64_t)id));
	return (uint32_t)(h % 10000u) < bp;
}

static int tag_matches(const json_t *tags, const char *kv)
{
	const char *eq = strchr(kv, '=');
	if (!eq || !json_is_object(tags))
		return 0;
	char key[200];
	snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
	const char *v = json_string_value(json_object_get(tags, key));
	return v && strcmp(v, eq + 1) == 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Resolution order (documented in server/README.md): explicit lists in ring
 * order, then tags in ring order, then hash buckets of the agent id. */
static int resolve_ring(const struct state *s, int64_t id, const json_t *tags)
{
	for (int i = 0; i < s->nrings; i++)
		if (s->rings[i].kind == RK_LIST &&
		    bsearch(&id, s->rings[i].ids, s->rings[i].nids, sizeof(int64_t), cmp_i64))
			return i;
	for (int i = 0; i < s->nrings; i++)
		if (s->rings[i].kind == RK_TAG && tag_matches(tags, s->rings[i].tag))
			return i;
	uint32_t bucket = (uint32_t)(mix64((uint64_t)id) % 10000u);
	for (int i = 0; i < s->nrings; i++) {
		if (s->rings[i].kind == RK_PERCENT && bucket >= s->rings[i].lo &&
		    bucket < s->rings[i].hi)
			return i;
		if (s->rings[i].kind == RK_REST)
			return i;
	}
	return s->nrings - 1;
}

static uint16_t resolve_pins(const struct state *s, const json_t *tags)
{
	uint64_t mask = 0;
	for (int i = 0; i < s->npins; i++)
		if (tag_matches(tags, s->pins[i].tag))
			mask |= 1ull << i;
	return pinset_of(mask);
}

/* ---- agents' places ------------------------------------------------------ */

/* Caller holds g_state_lock (read) so s is stable. cls < 0 (no
 * capabilities), or keep_cls with the agent already known: keep the
 * capability class in memory (a heartbeat may have set it after the
 * database's copy). */
/* The index of host group group_id in s, or AGENT_GROUP_UNKNOWN. */
static uint16_t group_index(const struct state *s, int group_id)
{
	int lo = 0, hi = s->ngroups - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (s->groups[mid].id == group_id)
			return (uint16_t)mid;
		if (s->groups[mid].id < group_id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return AGENT_GROUP_UNKNOWN;
}

/* The policy class of an agent's group: a group this state does not know
 * (created after it was loaded) gets GA everywhere until the next one. */
static uint16_t pclass_of(const struct state *s, uint16_t group)
{
	return group < s->ngroups ? s->groups[group].pcl : 1;
}

static enum fb_rc place_locked_state(const struct state *s, int64_t id, const json_t *tags, int cls,
                                     int group_id, int revoked, int keep_cls)
{
	if (id <= 0 || id > AGENTS_ID_MAX)
		return FB_EINVAL;
	struct agent_slot a = {0};
	a.ring = (uint8_t)resolve_ring(s, id, tags);
	a.pinset = resolve_pins(s, tags);
	a.cls = (uint16_t)(cls < 0 ? 0 : cls);
	a.group = group_index(s, group_id);
	a.flags = revoked ? AGENT_REVOKED : 0;
	return agents_store(id, &a, keep_cls || cls < 0);
}

enum fb_rc snapshot_agent_place(int64_t id, const json_t *tags, const json_t *caps, int group_id,
                                int revoked)
{
	pthread_rwlock_rdlock(&g_state_lock);
	int cls = caps ? class_of(caps) : -1;
	enum fb_rc rc = g_state ? place_locked_state(g_state, id, tags, cls, group_id, revoked, 0)
	                        : FB_EINTERNAL;
	pthread_rwlock_unlock(&g_state_lock);
	return rc;
}

void snapshot_agent_caps(int64_t id, const char *caps)
{
	/* The agent's document changes with its class; it accepts only a higher
	 * sequence, so ask for a new publication (coalesced by the listener). */
	if (agents_set_class(id, class_of_text(caps)))
		__atomic_store_n(&g_publish_wanted, 1, __ATOMIC_RELEASE);
}

const char *snapshot_agent_ring(int64_t id, char *buf, size_t n)
{
	struct agent_slot a;
	if (!agents_get(id, &a))
		return NULL;
	pthread_rwlock_rdlock(&g_state_lock);
	const char *res = NULL;
	if (g_state && a.ring < g_state->nrings) {
		snprintf(buf, n, "%s", g_state->rings[a.ring].name);
		res = buf;
	}
	pthread_rwlock_unlock(&g_state_lock);
	return res;
}

int snapshot_ring_sizes(int64_t *sizes, char (*names)[40], int n)
{
	pthread_rwlock_rdlock(&g_state_lock);
	int nr = g_state ? (g_state->nrings < n ? g_state->nrings : n) : 0;
	for (int i = 0; i < nr; i++)
		snprintf(names[i], 40, "%s", g_state->rings[i].name);
	pthread_rwlock_unlock(&g_state_lock);
	agents_count_by_ring(nr, sizes, NULL, NULL, NULL);
	return nr;
}

struct holdout_arg {
	int64_t rollout_id;
	const uint16_t *bp; /* the rollout's holdout share of each ring */
};

static int is_held(int64_t id, int ring, void *arg)
{
	const struct holdout_arg *h = arg;
	return held_out(h->rollout_id, id, h->bp[ring]);
}

int snapshot_holdout_counts(int64_t rollout_id, int64_t *sizes, int64_t *held, char (*names)[40],
                            int n)
{
	uint16_t bp[SNAP_MAX_RINGS] = {0};
	pthread_rwlock_rdlock(&g_state_lock);
	int nr = g_state ? (g_state->nrings < n ? g_state->nrings : n) : 0;
	for (int i = 0; i < nr; i++)
		snprintf(names[i], 40, "%s", g_state->rings[i].name);
	for (int i = 0; g_state && i < g_state->nchans; i++)
		if (g_state->chans[i].rollout_id == rollout_id && g_state->chans[i].rollout)
			memcpy(bp, g_state->chans[i].hold_bp, sizeof bp);
	pthread_rwlock_unlock(&g_state_lock);
	struct holdout_arg h = {rollout_id, bp};
	agents_count_by_ring(nr, sizes, held, is_held, &h);
	return nr;
}

struct in_groups {
	const unsigned char *member; /* by group index */
	int ngroups;
};

static int first_ring_in(int64_t id, const struct agent_slot *a, void *arg)
{
	(void)id;
	const struct in_groups *g = arg;
	return a->ring == 0 && a->group < g->ngroups && g->member[a->group];
}

int64_t snapshot_first_ring_in_groups(const int *groups, size_t n)
{
	pthread_rwlock_rdlock(&g_state_lock);
	if (!g_state) {
		pthread_rwlock_unlock(&g_state_lock);
		return -1;
	}
	struct in_groups g = {calloc((size_t)g_state->ngroups + 1, 1), g_state->ngroups};
	for (size_t i = 0; g.member && i < n; i++) {
		uint16_t k = group_index(g_state, groups[i]);
		if (k < g_state->ngroups)
			((unsigned char *)g.member)[k] = 1;
	}
	pthread_rwlock_unlock(&g_state_lock);
	if (!g.member)
		return -1;
	int64_t count = agents_count_if(first_ring_in, &g);
	free((void *)g.member);
	return count;
}

int snapshot_group_agents(const int *groups, size_t n, int64_t *counts)
{
	for (size_t i = 0; i < n; i++)
		counts[i] = 0;
	pthread_rwlock_rdlock(&g_state_lock);
	if (!g_state) {
		pthread_rwlock_unlock(&g_state_lock);
		return -1;
	}
	int ng = g_state->ngroups;
	int64_t *by = calloc((size_t)ng + 1, sizeof *by);
	uint16_t *idx = calloc(n + 1, sizeof *idx);
	for (size_t i = 0; idx && i < n; i++)
		idx[i] = group_index(g_state, groups[i]);
	pthread_rwlock_unlock(&g_state_lock);
	if (!by || !idx) {
		free(by);
		free(idx);
		return -1;
	}
	agents_count_by_group(ng, by);
	for (size_t i = 0; i < n; i++)
		if (idx[i] < ng)
			counts[i] = by[idx[i]];
	free(by);
	free(idx);
	return 0;
}

int snapshot_channel_known(uint32_t channel)
{
	int known = 0;
	pthread_rwlock_rdlock(&g_state_lock);
	for (int i = 0; g_state && i < g_state->nchans; i++)
		if (g_state->chans[i].id == channel)
			known = 1;
	pthread_rwlock_unlock(&g_state_lock);
	return known;
}

int snapshot_channels_known(const uint32_t *ids, size_t n)
{
	size_t i = 0;
	pthread_rwlock_rdlock(&g_state_lock);
	for (; g_state && i < n; i++) {
		int c = 0;
		while (c < g_state->nchans && g_state->chans[c].id != ids[i])
			c++;
		if (c == g_state->nchans)
			break;
	}
	pthread_rwlock_unlock(&g_state_lock);
	return i == n;
}

/* ---- state load ---------------------------------------------------------- */

static void state_free(struct state *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->npcl; i++) {
		free(s->pcls[i].mode);
		free(s->pcls[i].sha);
	}
	free(s->pcls);
	free(s->groups);
	for (int i = 0; i < s->nrings; i++)
		free(s->rings[i].ids);
	free(s->chans);
	for (int i = 0; i < s->ncontent; i++) {
		free(s->content[i].manifest);
		json_decref(s->content[i].templates);
	}
	free(s->content);
	for (size_t i = 0; i < s->ndocs; i++)
		free(s->docs[i].bytes);
	free(s->docs);
	pthread_mutex_destroy(&s->doc_mu);
	free(s);
}

static enum fb_rc parse_ring(struct ring_def *rd, const char *name, const char *selector,
                             uint32_t *acc, struct fb_err *err)
{
	snprintf(rd->name, sizeof rd->name, "%s", name);
	json_t *sel = json_loads(selector, 0, NULL);
	enum fb_rc rc = FB_OK;
	json_t *v;
	if ((v = json_object_get(sel, "agents"))) {
		rd->kind = RK_LIST;
		rd->nids = json_array_size(v);
		rd->ids = calloc(rd->nids ? rd->nids : 1, sizeof(int64_t));
		if (!rd->ids) {
			rc = FB_ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < rd->nids; i++)
			rd->ids[i] = json_integer_value(json_array_get(v, i));
		qsort(rd->ids, rd->nids, sizeof(int64_t), cmp_i64);
	} else if ((v = json_object_get(sel, "tag"))) {
		rd->kind = RK_TAG;
		snprintf(rd->tag, sizeof rd->tag, "%s",
		         json_string_value(v) ? json_string_value(v) : "");
	} else if ((v = json_object_get(sel, "percent"))) {
		rd->kind = RK_PERCENT;
		double pct = json_number_value(v);
		uint32_t width = (uint32_t)(pct * 100.0 + 0.5);
		rd->lo = *acc;
		rd->hi = *acc + width > 10000 ? 10000 : *acc + width;
		*acc = rd->hi;
	} else if (json_object_get(sel, "rest")) {
		rd->kind = RK_REST;
	} else {
		fb_err_set(err, "ring %s: unknown selector %s", name, selector);
		rc = FB_EINVAL;
	}
out:
	json_decref(sel);
	return rc;
}

static struct content_info *content_find(const struct state *s, const char *sha)
{
	for (int i = 0; sha && *sha && i < s->ncontent; i++)
		if (strcmp(s->content[i].sha, sha) == 0)
			return &s->content[i];
	return NULL;
}

/* The policy class with these modes and contents, added when new: its
 * index, or -1 (out of memory, or more than MAX_PCLASSES). */
#define MAX_PCLASSES 4096
static int pclass_add(struct state *s, const unsigned char *mode,
                      const char (*sha)[FB_SHA256_HEX_LEN + 1]);
static int pclass_intern(struct state *s, const unsigned char *mode,
                         const char (*sha)[FB_SHA256_HEX_LEN + 1])
{
	size_t n = (size_t)s->nchans; /* the arrays hold one more, never compared */
	for (int i = 0; i < s->npcl; i++)
		if (memcmp(s->pcls[i].mode, mode, n) == 0 &&
		    memcmp(s->pcls[i].sha, sha, n * sizeof *sha) == 0)
			return i;
	return pclass_add(s, mode, sha);
}

/* Add a policy class (pclass_intern without looking for an equal one). */
static int pclass_add(struct state *s, const unsigned char *mode,
                      const char (*sha)[FB_SHA256_HEX_LEN + 1])
{
	size_t n = (size_t)s->nchans + 1;
	if (s->npcl == MAX_PCLASSES)
		return -1;
	struct pclass *np = realloc(s->pcls, ((size_t)s->npcl + 1) * sizeof *np);
	if (!np)
		return -1;
	s->pcls = np;
	struct pclass *pc = &s->pcls[s->npcl];
	pc->mode = malloc(n);
	pc->sha = malloc(n * sizeof *sha);
	if (!pc->mode || !pc->sha) {
		free(pc->mode);
		free(pc->sha);
		return -1;
	}
	memcpy(pc->mode, mode, n);
	memcpy(pc->sha, sha, n * sizeof *sha);
	return s->npcl++;
}

static int cmode_parse(const char *m)
{
	static const char *const names[] = {"early", "ga", "delayed", "paused", "n-1", "version"};
	for (int i = 0; i < 6; i++)
		if (strcmp(m, names[i]) == 0)
			return i;
	return CM_GA;
}

/* Host groups and their policy classes (migration 0009): the mode of each
 * group on each channel by the most specific policy, and the content that
 * delayed, paused and version name, as of the publication (so that every
 * replica builds the same documents for one publication). The group ids go
 * into sig (agents are placed again when they change), the contents into
 * want as a PostgreSQL array. */
static enum fb_rc load_groups(PGconn *c, struct state *s, struct fb_buf *sig, struct fb_buf *want,
                              struct fb_err *err)
{
	size_t n = (size_t)s->nchans + 1;
	unsigned char *mode = calloc(n, 1);
	char(*sha)[FB_SHA256_HEX_LEN + 1] = calloc(n, sizeof *sha);
	PGresult *r = NULL;
	enum fb_rc rc = FB_ENOMEM;
	if (!mode || !sha)
		goto out;
	/* class 0: early everywhere (the default tenant's); 1: GA everywhere */
	if (pclass_add(s, mode, sha) != 0)
		goto out;
	memset(mode, CM_GA, n);
	if (pclass_add(s, mode, sha) != 1)
		goto out;
	rc = FB_EDB;
	r = db_exec(c, err, "SELECT id FROM host_groups ORDER BY id", 0, NULL);
	if (!r)
		goto out;
	s->ngroups = PQntuples(r) < (int)AGENT_GROUP_UNKNOWN ? PQntuples(r)
	                                                     : (int)AGENT_GROUP_UNKNOWN - 1;
	s->groups = calloc((size_t)s->ngroups + 1, sizeof *s->groups);
	if (!s->groups) {
		rc = FB_ENOMEM;
		goto out;
	}
	for (int i = 0; i < s->ngroups; i++) {
		s->groups[i].id = (int)strtol(PQgetvalue(r, i, 0), NULL, 10);
		s->groups[i].pcl = 1;
		if (fb_buf_printf(sig, "g%d;", s->groups[i].id)) {
			rc = FB_ENOMEM;
			goto out;
		}
	}
	PQclear(r);
	r = db_exec(
	        c, err,
	        "SELECT g.id, ch.id, coalesce(p.mode, t.default_mode), coalesce(vc.sha256, ''), "
	        " coalesce(p.paused_at ->> ch.id::text, ''), "
	        " coalesce((SELECT h.sha256 FROM ga_history h WHERE p.mode = 'delayed' AND "
	        "  h.channel_id = ch.id AND h.since <= pub.published_at - "
	        "  make_interval(secs => p.delay_s) ORDER BY h.since DESC LIMIT 1), '') "
	        "FROM host_groups g JOIN tenants t ON t.id = g.tenant_id CROSS JOIN channels ch "
	        "CROSS JOIN publication pub LEFT JOIN LATERAL (SELECT * FROM content_policies "
	        " p WHERE p.tenant_id = g.tenant_id AND (p.group_id = g.id OR p.group_id IS "
	        " NULL) AND (p.channel_id = ch.id OR p.channel_id IS NULL) ORDER BY p.group_id "
	        " IS NULL, p.channel_id IS NULL LIMIT 1) p ON true LEFT JOIN content vc ON "
	        " p.mode = 'version' AND vc.channel_id = ch.id AND vc.version = p.version "
	        "ORDER BY g.id, ch.id",
	        0, NULL);
	if (!r)
		goto out;
	rc = FB_ENOMEM;
	if (fb_buf_addstr(want, "{"))
		goto out;
	int rows = PQntuples(r), row = 0, nwant = 0;
	for (int g = 0; g < s->ngroups; g++) {
		memset(mode, CM_GA, n);
		memset(sha, 0, n * sizeof *sha);
		for (int k = 0; k < s->nchans; k++) {
			if (row >= rows ||
			    (int)strtol(PQgetvalue(r, row, 0), NULL, 10) != s->groups[g].id ||
			    (uint32_t)strtoul(PQgetvalue(r, row, 1), NULL, 10) != s->chans[k].id)
				continue; /* a group or channel created since: GA */
			int m = cmode_parse(PQgetvalue(r, row, 2));
			const char *t = m == CM_VERSION   ? PQgetvalue(r, row, 3)
			                : m == CM_PAUSED  ? PQgetvalue(r, row, 4)
			                : m == CM_DELAYED ? PQgetvalue(r, row, 5)
			                                  : "";
			mode[k] = (unsigned char)m;
			snprintf(sha[k], sizeof sha[k], "%s", t);
			if (t[0] && fb_buf_printf(want, "%s%s", nwant++ ? "," : "", t))
				goto out;
			row++;
		}
		int pcl = pclass_intern(s, mode, sha);
		if (pcl < 0) {
			log_error(
			        "snapshot: more than %d distinct sets of customer content "
			        "policies; "
			        "host group %d is served GA content on every channel, whatever its "
			        "policies say",
			        MAX_PCLASSES, s->groups[g].id);
			pcl = 1;
		}
		s->groups[g].pcl = (uint16_t)pcl;
	}
	if (fb_buf_addstr(want, "}"))
		goto out;
	rc = FB_OK;
out:
	PQclear(r);
	free(mode);
	free(sha);
	return rc;
}

static enum fb_rc state_load(PGconn *c, const struct state *old, struct state **out,
                             struct fb_err *err)
{
	*out = NULL;
	enum fb_rc rc = FB_EDB;
	PGresult *r = NULL;
	struct state *s = calloc(1, sizeof *s);
	if (!s)
		return FB_ENOMEM;
	pthread_mutex_init(&s->doc_mu, NULL);
	struct fb_buf sig;
	fb_buf_init(&sig, 1 << 24);

	/* No JIT: on small, never-analysed tables the planner's default
	 * estimates make the groups-by-channels join look expensive enough to
	 * compile, which took half a second per load for a one-row answer. */
	if (db_cmd(c, err, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") ||
	    db_cmd(c, err, "SET LOCAL jit = off"))
		goto out;
	r = db_exec(c, err,
	            "SELECT seq, extract(epoch FROM published_at)::bigint, now()::text FROM "
	            "publication",
	            0, NULL);
	if (!r || PQntuples(r) != 1)
		goto out;
	s->seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	s->issued = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	snprintf(s->load_began, sizeof s->load_began, "%s", PQgetvalue(r, 0, 2));
	PQclear(r);

	r = db_exec(c, err, "SELECT name, selector::text FROM rings ORDER BY position", 0, NULL);
	if (!r)
		goto out;
	uint32_t acc = 0;
	for (int i = 0; i < PQntuples(r) && i < SNAP_MAX_RINGS; i++) {
		rc = parse_ring(&s->rings[i], PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), &acc, err);
		if (rc)
			goto out;
		s->nrings = i + 1;
		if (fb_buf_printf(&sig, "%s|%s;", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1)))
			goto oom;
	}
	rc = FB_EDB;
	PQclear(r);
	if (s->nrings == 0) {
		fb_err_set(err, "no rings are defined");
		rc = FB_EINVAL;
		goto out;
	}

	r = db_exec(c, err,
	            "SELECT p.id, p.tag, p.channel_id, p.mode, coalesce(c.sha256, '') FROM pins p "
	            "LEFT JOIN content c ON c.channel_id = p.channel_id AND c.version = p.version "
	            "ORDER BY p.id",
	            0, NULL);
	if (!r)
		goto out;
	for (int i = 0; i < PQntuples(r) && i < SNAP_MAX_PINS; i++) {
		struct pin_def *p = &s->pins[i];
		p->id = (int)strtol(PQgetvalue(r, i, 0), NULL, 10);
		snprintf(p->tag, sizeof p->tag, "%s", PQgetvalue(r, i, 1));
		p->channel = (uint32_t)strtoul(PQgetvalue(r, i, 2), NULL, 10);
		p->n_minus_1 = strcmp(PQgetvalue(r, i, 3), "n-1") == 0;
		snprintf(p->sha, sizeof p->sha, "%s", PQgetvalue(r, i, 4));
		s->npins = i + 1;
		if (fb_buf_printf(&sig, "pin%d|%s;", p->id, p->tag))
			goto oom;
	}
	PQclear(r);

	r = db_exec(c, err,
	            "SELECT ch.id, coalesce(ch.ga_sha256, ''), coalesce(ch.prev_ga_sha256, ''), "
	            "coalesce(ro.content_sha256, ''), coalesce(ro.ring_index, -1), "
	            "coalesce(ro.ring_plan::text, '[]'), coalesce(ro.id, 0), "
	            "coalesce(ro.holdout::text, '[]') FROM channels ch LEFT JOIN rollouts ro "
	            "ON ro.channel_id = ch.id AND ro.state IN ('rolling', 'paused', 'watching') "
	            "ORDER BY ch.id",
	            0, NULL);
	if (!r)
		goto out;
	s->nchans = PQntuples(r);
	s->chans = calloc((size_t)s->nchans + 1, sizeof *s->chans);
	if (!s->chans)
		goto oom;
	int nbits = 0;
	for (int i = 0; i < s->nchans; i++) {
		struct chan_state *ch = &s->chans[i];
		ch->id = (uint32_t)strtoul(PQgetvalue(r, i, 0), NULL, 10);
		snprintf(ch->ga, sizeof ch->ga, "%s", PQgetvalue(r, i, 1));
		snprintf(ch->prev, sizeof ch->prev, "%s", PQgetvalue(r, i, 2));
		snprintf(ch->rollout_sha, sizeof ch->rollout_sha, "%s", PQgetvalue(r, i, 3));
		ch->rollout = ch->rollout_sha[0] != '\0';
		ch->rollout_id = strtoll(PQgetvalue(r, i, 6), NULL, 10);
		ch->hold_bit = -1;
		long ring_index = strtol(PQgetvalue(r, i, 4), NULL, 10);
		json_t *plan = json_loads(PQgetvalue(r, i, 5), 0, NULL);
		json_t *hold = json_loads(PQgetvalue(r, i, 7), 0, NULL);
		int held_any = 0;
		ch->ga_ring = s->nrings - 1;
		for (long k = 0; ch->rollout && k < (long)json_array_size(plan); k++) {
			const char *rn = json_string_value(json_array_get(plan, (size_t)k));
			double share = json_number_value(json_array_get(hold, (size_t)k));
			for (int j = 0; rn && j < s->nrings; j++) {
				if (strcmp(s->rings[j].name, rn) != 0)
					continue;
				if (k == (long)json_array_size(plan) - 1)
					ch->ga_ring = j;
				ch->exposed[j] = k <= ring_index;
				if (share > 0.0 && share <= 0.5) {
					ch->hold_bp[j] = (uint16_t)(share * 10000.0 + 0.5);
					held_any = 1;
				}
			}
		}
		/* Each channel with a holdout gets a bit of the document key: an
		 * agent's document depends on which rollouts hold it out. */
		if (held_any && nbits < SNAP_MAX_HOLD_BITS)
			ch->hold_bit = nbits++;
		else if (held_any)
			log_warn("snapshot: more than %d rollouts with a holdout at once; rollout "
			         "%lld serves its holdout the new content",
			         SNAP_MAX_HOLD_BITS, (long long)ch->rollout_id);
		json_decref(plan);
		json_decref(hold);
	}
	PQclear(r);
	r = NULL;

	struct fb_buf want;
	fb_buf_init(&want, 1 << 24);
	rc = load_groups(c, s, &sig, &want, err);
	if (rc) {
		fb_buf_cleanup(&want);
		goto out;
	}
	rc = FB_EDB;
	const char *pw[] = {want.data ? want.data : "{}"};
	r = db_exec(
	        c, err,
	        "SELECT sha256, channel_id, manifest, templates::text FROM content WHERE sha256 IN "
	        "(SELECT ga_sha256 FROM channels UNION SELECT prev_ga_sha256 FROM channels "
	        " UNION SELECT content_sha256 FROM rollouts WHERE state IN ('rolling', 'paused', "
	        "'watching') "
	        " UNION SELECT c.sha256 FROM pins p JOIN content c ON c.channel_id = p.channel_id "
	        " AND c.version = p.version UNION SELECT unnest($1::text[]))",
	        1, pw);
	fb_buf_cleanup(&want);
	if (!r)
		goto out;
	s->ncontent = PQntuples(r);
	s->content = calloc((size_t)s->ncontent + 1, sizeof *s->content);
	if (!s->content)
		goto oom;
	for (int i = 0; i < s->ncontent; i++) {
		struct content_info *ci = &s->content[i];
		snprintf(ci->sha, sizeof ci->sha, "%s", PQgetvalue(r, i, 0));
		ci->channel = (uint32_t)strtoul(PQgetvalue(r, i, 1), NULL, 10);
		ci->mlen = (size_t)PQgetlength(r, i, 2);
		ci->manifest = strndup(PQgetvalue(r, i, 2), ci->mlen);
		ci->templates = json_loads(PQgetvalue(r, i, 3), 0, NULL);
		if (!ci->manifest)
			goto oom;
	}
	PQclear(r);
	r = NULL;
	fb_sha256_hex(sig.data ? sig.data : "", sig.len, s->config_sig);

	/* Agents: everyone again when rings or pins changed, else the new ones.
	 * Read through a cursor, AGENT_PAGE rows at a time: a million agents in
	 * one result would be a transient of hundreds of megabytes. */
	int all = !old || strcmp(old->config_sig, s->config_sig) != 0;
	s->placed_all = all;
	char since[24];
	snprintf(since, sizeof since, "%lld", all ? 0LL : (long long)agents_max_id());
	const char *p[] = {since};
	r = db_exec(c, err, "SELECT max(id) FROM agents WHERE id > $1", 1, p);
	if (!r)
		goto out;
	int64_t top = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	r = NULL;
	if (top > 0 && top <= AGENTS_ID_MAX && agents_reserve(top))
		goto oom;
	r = db_exec(c, err,
	            "DECLARE snapshot_agents NO SCROLL CURSOR FOR SELECT id, tags::text, "
	            "coalesce(capabilities, '[]')::text, revoked_at IS NOT NULL, group_id "
	            "FROM agents WHERE id > $1 OR revoked_at IS NOT NULL",
	            1, p);
	if (!r)
		goto out;
	PQclear(r);
	json_t *no_tags = json_object();
	int64_t loaded = 0;
	rc = FB_OK;
	while (!rc) {
		r = db_exec(c, err, "FETCH " AGENT_PAGE_S " FROM snapshot_agents", 0, NULL);
		if (!r) {
			rc = FB_EDB;
			break;
		}
		int n = PQntuples(r);
		for (int i = 0; i < n && !rc; i++) {
			int64_t id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
			const char *tt = PQgetvalue(r, i, 1);
			json_t *tags = strcmp(tt, "{}") == 0 ? json_incref(no_tags)
			                                     : json_loads(tt, 0, NULL);
			rc = place_locked_state(s, id, tags, class_of_text(PQgetvalue(r, i, 2)),
			                        (int)strtol(PQgetvalue(r, i, 4), NULL, 10),
			                        strcmp(PQgetvalue(r, i, 3), "t") == 0, 1);
			json_decref(tags);
		}
		loaded += n;
		PQclear(r);
		r = NULL;
		if (n == 0)
			break;
	}
	json_decref(no_tags);
	if (rc)
		goto out;
	rc = FB_EDB;
	/* glibc keeps what a large load freed (results, parsed tags). */
	if (loaded >= 10000)
		malloc_trim(0);
	if (db_cmd(c, err, "COMMIT"))
		goto out;
	*out = s;
	s = NULL;
	rc = FB_OK;
	goto out;
oom:
	rc = FB_ENOMEM;
	fb_err_set(err, "out of memory loading the snapshot");
out:
	PQclear(r);
	if (rc)
		PQclear(PQexec(c, "ROLLBACK"));
	fb_buf_cleanup(&sig);
	state_free(s);
	return rc;
}

/* After rings, pins or groups changed: the agents that enrolled while the
 * new state was loading were placed by the old one (the enrollment handler
 * places with the state in force) and the loading transaction did not see
 * them. Place them again, now that the new state is in force: an agent that
 * commits after this query is placed by the new state anyway. */
static void place_latecomers(PGconn *c, const struct state *s)
{
	struct fb_err err;
	const char *p[] = {s->load_began};
	PGresult *r = db_exec(c, &err,
	                      "SELECT id, tags::text, coalesce(capabilities, '[]')::text, "
	                      "revoked_at IS NOT NULL, group_id FROM agents WHERE enrolled_at >= "
	                      "$1::timestamptz - interval '1 second'",
	                      1, p);
	if (!r) {
		log_warn("snapshot: agents enrolled during the reload not placed again: %s",
		         err.msg);
		return;
	}
	pthread_rwlock_rdlock(&g_state_lock);
	for (int i = 0; g_state == s && i < PQntuples(r); i++) {
		json_t *tags = json_loads(PQgetvalue(r, i, 1), 0, NULL);
		if (place_locked_state(s, strtoll(PQgetvalue(r, i, 0), NULL, 10), tags,
		                       class_of_text(PQgetvalue(r, i, 2)),
		                       (int)strtol(PQgetvalue(r, i, 4), NULL, 10),
		                       strcmp(PQgetvalue(r, i, 3), "t") == 0, 1))
			log_warn("snapshot: agent %s not placed again", PQgetvalue(r, i, 0));
		json_decref(tags);
	}
	pthread_rwlock_unlock(&g_state_lock);
	PQclear(r);
}

static enum fb_rc reload(PGconn *c, struct fb_err *err)
{
	pthread_rwlock_rdlock(&g_state_lock);
	struct state *old = g_state;
	struct state *s;
	enum fb_rc rc = state_load(c, old, &s, err);
	pthread_rwlock_unlock(&g_state_lock);
	if (rc)
		return rc;
	pthread_rwlock_wrlock(&g_state_lock);
	old = g_state;
	g_state = s;
	pthread_rwlock_unlock(&g_state_lock);
	if (old && s->placed_all)
		place_latecomers(c, s);
	if (!old || old->seq != s->seq)
		log_info("snapshot: publication %lld, %d ring(s), %d channel(s), %d pin(s)",
		         (long long)s->seq, s->nrings, s->nchans, s->npins);
	state_free(old);
	return FB_OK;
}

enum fb_rc snapshot_publish(PGconn *c, const char *reason, struct fb_err *err)
{
	const char *p[] = {reason};
	PGresult *r =
	        db_exec(c, err,
	                "UPDATE publication SET seq = nextval('assignment_seq'), reason = $1, "
	                "published_at = now()",
	                1, p);
	if (!r)
		return FB_EDB;
	PQclear(r);
	return db_cmd(c, err, "NOTIFY firebreak_publication");
}

/* ---- documents ----------------------------------------------------------- */

static int covered(uint16_t cls, const struct content_info *ci)
{
	const json_t *caps = cls < MAX_CLASSES ? g_cls_caps[cls] : NULL;
	return ci && caps && cf_capabilities_cover(caps, ci->templates, NULL) == FB_OK;
}

/* The ring whose exposure decides whether a host of ring gets channel k's
 * rollout: its own when its group may have early content there, else the
 * rollout's last ring (GA); -1 when its group never gets a rollout there
 * (delayed, paused, pinned). */
static int rollout_ring(const struct state *s, const struct pclass *pc, int k, int ring)
{
	switch (pc->mode[k]) {
	case CM_EARLY: return ring;
	case CM_GA: return s->chans[k].ga_ring;
	default: return -1;
	}
}

/* The bits of the document key for agent id in ring with policy class pc:
 * one per channel whose rollout holds it out there. */
static uint32_t hold_mask(const struct state *s, int ring, const struct pclass *pc, int64_t id)
{
	uint32_t m = 0;
	for (int i = 0; i < s->nchans; i++) {
		const struct chan_state *ch = &s->chans[i];
		int rr = ch->hold_bit >= 0 ? rollout_ring(s, pc, i, ring) : -1;
		if (rr >= 0 && ch->exposed[rr] && held_out(ch->rollout_id, id, ch->hold_bp[rr]))
			m |= 1u << ch->hold_bit;
	}
	return m;
}

/* What channel k offers to (ring, pins, class, policy class, holdout bits).
 * A tag pin (the vendor's) wins; then the customer's policy: early and GA
 * follow the rollout (GA only once it reached its last ring), delayed,
 * paused and version name their content, n-1 the GA before. */
static const struct content_info *desired(const struct state *s, int k, int ring, uint64_t pins,
                                          uint16_t cls, const struct pclass *pc, uint32_t held)
{
	const struct chan_state *ch = &s->chans[k];
	const char *want = ch->ga;
	int pinned = 0;
	for (int i = 0; i < s->npins; i++) {
		if (!(pins & (1ull << i)) || s->pins[i].channel != ch->id)
			continue;
		pinned = 1;
		want = s->pins[i].n_minus_1 ? (ch->prev[0] ? ch->prev : ch->ga) : s->pins[i].sha;
	}
	int m = pc->mode[k];
	if (!pinned && m == CM_NM1)
		want = ch->prev[0] ? ch->prev : ch->ga;
	else if (!pinned && m != CM_EARLY && m != CM_GA)
		want = pc->sha[k]; /* delayed, paused, version: that content only */
	int holdout = ch->hold_bit >= 0 && (held >> ch->hold_bit & 1u);
	int rr = pinned ? -1 : rollout_ring(s, pc, k, ring);
	if (!holdout && ch->rollout && rr >= 0 && rr < SNAP_MAX_RINGS && ch->exposed[rr])
		want = ch->rollout_sha;
	/* The compatibility gate: never offer what this build cannot interpret
	 * (a delayed or paused group never falls forward to newer content). */
	const char *order[] = {want, ch->ga, ch->prev};
	int tries = pinned || m == CM_EARLY || m == CM_GA || m == CM_NM1 || m == CM_VERSION ? 3 : 1;
	for (int i = 0; i < tries; i++) {
		const struct content_info *ci = content_find(s, order[i]);
		if (covered(cls, ci))
			return ci;
	}
	return NULL;
}

static enum fb_rc doc_build(struct state *s, int ring, uint16_t pinset, uint16_t cls, uint16_t pcl,
                            uint32_t held, struct doc *d, struct fb_err *err)
{
	const struct pclass *pc = &s->pcls[pcl];
	uint64_t pins = pinset < MAX_PINSETS ? g_pinset_mask[pinset] : 0;
	char audience[FBSIG_MAX_AUDIENCE + 1];
	int n = snprintf(audience, sizeof audience, "%s", s->rings[ring].name);
	for (int i = 0; i < s->npins && n < (int)sizeof audience - 12; i++)
		if (pins & (1ull << i))
			n += snprintf(audience + n, sizeof audience - (size_t)n, "%spin%d",
			              n == (int)strlen(s->rings[ring].name) ? "+" : ",",
			              s->pins[i].id);
	if (pcl && n < (int)sizeof audience - 12)
		n += snprintf(audience + n, sizeof audience - (size_t)n, "~c%u", (unsigned)pcl);
	if (held && n < (int)sizeof audience - 12)
		snprintf(audience + n, sizeof audience - (size_t)n, "~h%x", (unsigned)held);
	json_t *obj = NULL;
	enum fb_rc rc =
	        fbsig_assignment_build(audience, s->seq, s->issued, s->issued + cfg.assignment_ttl,
	                               fbsig_root_version(app.root), &obj, err);
	if (rc)
		return rc;
	for (int i = 0; i < s->nchans; i++) {
		const struct content_info *ci = desired(s, i, ring, pins, cls, pc, held);
		if (!ci)
			continue;
		rc = fbsig_assignment_add(obj, ci->manifest, ci->mlen, err);
		if (rc)
			goto out;
	}
	rc = fbsig_assignment_sign(app.online_key, obj, &d->bytes, &d->len, err);
	if (rc)
		goto out;
	char h[FB_SHA256_HEX_LEN + 1];
	fb_sha256_hex(d->bytes, d->len, h);
	snprintf(d->etag, sizeof d->etag, "\"%lld-%.16s\"", (long long)s->seq, h);
out:
	json_decref(obj);
	return rc;
}

void snapshot_poll(struct http_req *req)
{
	int64_t id = http_req_auth(req)->agent_id;
	struct agent_slot a;
	int found = agents_find(id, &a);
	if (found < 0) {
		http_error(req, 503, "unavailable",
		           "agent %lld is not loaded here and the database cannot be asked; retry",
		           (long long)id);
		return;
	}
	if (!found) {
		http_error(req, 403, "forbidden", "agent %lld is not enrolled", (long long)id);
		return;
	}
	if (a.flags & AGENT_REVOKED) {
		http_error(req, 403, "forbidden", "agent %lld is revoked", (long long)id);
		return;
	}
	pthread_rwlock_rdlock(&g_state_lock);
	struct state *s = g_state;
	if (!s) {
		pthread_rwlock_unlock(&g_state_lock);
		http_error(req, 503, "unavailable",
		           "the server is starting (no snapshot loaded yet)");
		return;
	}
	int ring = a.ring < s->nrings ? a.ring : s->nrings - 1;
	uint16_t pcl = pclass_of(s, a.group);
	uint32_t held = hold_mask(s, ring, &s->pcls[pcl], id);
	/* ring 4 bits, pin set, class and policy class 12 each, holdout 24 */
	uint64_t key = (uint64_t)ring << 60 | (uint64_t)a.pinset << 48 | (uint64_t)a.cls << 36 |
	               (uint64_t)pcl << 24 | held;
	pthread_mutex_lock(&s->doc_mu);
	struct doc *d = NULL;
	for (size_t i = 0; i < s->ndocs; i++)
		if (s->docs[i].key == key)
			d = &s->docs[i];
	if (!d) {
		struct fb_err err;
		struct doc nd = {.key = key};
		if (s->ndocs == s->capdocs) {
			size_t ncap = s->capdocs ? s->capdocs * 2 : 16;
			struct doc *nds = realloc(s->docs, ncap * sizeof *nds);
			if (!nds) {
				pthread_mutex_unlock(&s->doc_mu);
				pthread_rwlock_unlock(&g_state_lock);
				http_unavailable(req, "out of memory");
				return;
			}
			s->docs = nds;
			s->capdocs = ncap;
		}
		if (doc_build(s, ring, a.pinset, a.cls, pcl, held, &nd, &err)) {
			pthread_mutex_unlock(&s->doc_mu);
			pthread_rwlock_unlock(&g_state_lock);
			http_error(req, 500, "internal", "cannot build the assignment: %s",
			           err.msg);
			return;
		}
		s->docs[s->ndocs] = nd;
		d = &s->docs[s->ndocs++];
	}
	const char *inm = http_req_header(req, "If-None-Match");
	struct http_hdr hdrs[] = {{"ETag", d->etag}, {"Cache-Control", "private, no-cache"}};
	if (inm && strcmp(inm, d->etag) == 0)
		http_reply(req, 304, NULL, "", 0, hdrs, 2);
	else
		http_reply(req, 200, "application/json", d->bytes, d->len, hdrs, 2);
	pthread_mutex_unlock(&s->doc_mu);
	pthread_rwlock_unlock(&g_state_lock);
}

void snapshot_root_current(struct http_req *req)
{
	size_t len;
	const char *b = fbsig_root_bytes(app.root, &len);
	http_reply(req, 200, "application/json", b, len, NULL, 0);
}

void snapshot_root_version(struct http_req *req)
{
	int64_t v;
	if (fb_parse_i64(http_req_param(req, "version"), 1, INT64_MAX, &v)) {
		http_error(req, 400, "invalid", "root version must be a positive integer");
		return;
	}
	size_t len;
	const char *b = app_root_version(v, &len);
	if (!b) {
		http_error(req, 404, "not_found", "no root version %lld here (current is %lld)",
		           (long long)v, (long long)fbsig_root_version(app.root));
		return;
	}
	http_reply(req, 200, "application/json", b, len, NULL, 0);
}

int64_t snapshot_publication(void)
{
	pthread_rwlock_rdlock(&g_state_lock);
	int64_t seq = g_state ? g_state->seq : 0;
	pthread_rwlock_unlock(&g_state_lock);
	return seq;
}

/* ---- the listener thread -------------------------------------------------- */

static void *listener(void *arg)
{
	(void)arg;
	PGconn *c = NULL;
	int64_t backoff = 100;
	int64_t last_check = 0;
	while (!g_stop) {
		struct fb_err err;
		if (!c || PQstatus(c) != CONNECTION_OK) {
			if (c)
				PQfinish(c);
			c = PQconnectdb(cfg.db);
			if (PQstatus(c) != CONNECTION_OK ||
			    db_cmd(c, &err, "LISTEN firebreak_publication") ||
			    (!g_ready &&
			     (migrate_check(c, &err) || (g_prepare && g_prepare(c, &err))))) {
				char msg[600];
				snprintf(msg, sizeof msg, "database: %s",
				         PQstatus(c) != CONNECTION_OK ? PQerrorMessage(c)
				                                      : err.msg);
				for (size_t k = strlen(msg); k && msg[k - 1] == '\n'; k--)
					msg[k - 1] = '\0';
				set_why(msg);
				log_warn("snapshot listener: %s", msg);
				PQfinish(c);
				c = NULL;
				for (int64_t t = 0; t < backoff && !g_stop; t += 50)
					poll(NULL, 0, 50);
				backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
				continue;
			}
			backoff = 100;
			last_check = 0; /* reload at once: we may have missed notifications */
		}
		static int64_t last_pub_req;
		if (g_ready && __atomic_load_n(&g_publish_wanted, __ATOMIC_ACQUIRE) &&
		    fb_mono_ms() - last_pub_req >= 1000) {
			__atomic_store_n(&g_publish_wanted, 0, __ATOMIC_RELEASE);
			last_pub_req = fb_mono_ms();
			if (db_cmd(c, &err, "BEGIN") ||
			    snapshot_publish(c, "agent capabilities changed", &err) ||
			    db_cmd(c, &err, "COMMIT")) {
				log_warn(
				        "snapshot: publication for changed capabilities failed: %s",
				        err.msg);
				PQclear(PQexec(c, "ROLLBACK"));
				__atomic_store_n(&g_publish_wanted, 1, __ATOMIC_RELEASE);
			}
		}
		int64_t now = fb_mono_ms();
		/* Notifications that arrived while we were reloading are already in
		 * libpq's queue, and the socket stays quiet: take them first. */
		int notified = 0;
		PGnotify *n;
		while ((n = PQnotifies(c))) {
			notified = 1;
			PQfreemem(n);
		}
		struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
		int64_t wait = last_check + cfg.snapshot_check_ms - now;
		if (wait > 200)
			wait = 200; /* wake up to notice g_stop */
		if (!notified && wait > 0 && poll(&pfd, 1, (int)wait) > 0) {
			if (!PQconsumeInput(c))
				continue;
			while ((n = PQnotifies(c))) {
				notified = 1;
				PQfreemem(n);
			}
		}
		now = fb_mono_ms();
		if (!notified && now - last_check < cfg.snapshot_check_ms)
			continue;
		last_check = now;
		if (reload(c, &err)) {
			log_warn("snapshot reload failed: %s", err.msg);
			set_why(err.msg);
			continue;
		}
		if (!g_ready) {
			__atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
			log_info("serving: snapshot loaded");
		}
		/* Re-sign before assignments expire: a new publication at half-life. */
		pthread_rwlock_rdlock(&g_state_lock);
		int64_t issued = g_state ? g_state->issued : 0;
		pthread_rwlock_unlock(&g_state_lock);
		if (fb_now_ms() / 1000 - issued > cfg.assignment_ttl / 2) {
			if (db_cmd(c, &err, "BEGIN") || snapshot_publish(c, "refresh", &err) ||
			    db_cmd(c, &err, "COMMIT")) {
				log_warn("snapshot refresh failed: %s", err.msg);
				PQclear(PQexec(c, "ROLLBACK"));
			}
		}
	}
	if (c)
		PQfinish(c);
	return NULL;
}

enum fb_rc snapshot_start(enum fb_rc (*prepare)(PGconn *c, struct fb_err *err), struct fb_err *err)
{
	g_prepare = prepare;
	g_stop = 0;
	g_ready = 0;
	if (pthread_create(&g_thread, NULL, listener, NULL)) {
		fb_err_set(err, "snapshot: cannot start the listener thread");
		return FB_EINTERNAL;
	}
	g_thread_started = 1;
	return FB_OK;
}

void snapshot_stop(void)
{
	if (g_thread_started) {
		g_stop = 1;
		pthread_join(g_thread, NULL);
		g_thread_started = 0;
	}
	state_free(g_state);
	g_state = NULL;
	pthread_mutex_lock(&g_tab_mu);
	for (int i = 0; i < g_ncls; i++) {
		free(g_cls_key[i]);
		json_decref(g_cls_caps[i]);
	}
	g_ncls = 0;
	g_npinsets = 0;
	pthread_mutex_unlock(&g_tab_mu);
	cls_cache_clear();
}
