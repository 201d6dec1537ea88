/* fb-fleet's engine: simulated agents scheduled on a min-heap of wake-up
 * times and served by a fixed pool of libcurl easy handles in one multi
 * handle (keep-alive, no thread per agent). Each agent runs every channel of
 * the scenario (state per channel, one host to crash). */
#include "fleet.h"

#include <curl/curl.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "health.h"

#define FL_MAX_EVENTS 8
#define FL_MAX_ASG    256           /* cached assignment verifications */
#define FL_MAX_POLL   (1024 * 1024) /* bytes of an assignment */
#define FL_MAX_SMALL  (64 * 1024)   /* bytes of other answers */
#define FL_TOKEN      96
#define FL_VERSION    "fleet-1.0"
#define FL_NCH        SCN_MAX_CHANNELS
#define FL_PLAT_JSON  768 /* bytes of one platform's "platform" object */
#define FL_LAT_N      192 /* latency buckets: below 16 us, then 8 a doubling up to 2^27 us */

enum fl_state { FL_UP = 0, FL_DOWN, FL_DEAD };
enum fl_req { RQ_ENROLL = 0, RQ_POLL, RQ_BLOB, RQ_HB, RQ_EVENTS, RQ_N };
static const char *const rq_names[RQ_N] = {"enroll", "poll", "blob", "heartbeat", "events"};
enum fl_ev { EV_APPLIED = 0, EV_CRASH, EV_BOOT_LOOP };
/* fl_agent.flags[k]: what the agent did with channel k's content under test */
enum fl_flag { FLG_TREATED = 1, FLG_CRASHED_ON = 2, FLG_FAULTED = 4 };

struct fl_event {
	uint8_t kind;
	int8_t content;  /* applied/crash: content; boot_loop: reverted_from */
	int8_t content2; /* boot_loop: reverted_to (-1: none) */
	uint8_t unclean;
	uint8_t faulting; /* crash: 1 + the channel whose content caused it, 0: none */
	uint32_t boot;
	uint32_t id;
	uint32_t at; /* Unix seconds (to 2106): keeps the queue small */
};

struct fl_agent {
	int64_t id; /* server's agent id; 0 until enrolled */
	char token[FL_TOKEN];
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	int64_t wake;
	int64_t next_poll, next_hb, ev_retry, bg_at, up_at, offline_from, offline_until, boot_ms;
	int64_t last_seq;
	int32_t cc_at[FL_NCH];   /* content crash due, ms after fleet.t0; 0: none */
	int32_t applied[FL_NCH]; /* when the active content was applied, ms after fleet.t0 */
	int32_t heap_pos;        /* -1: not in the heap */
	int32_t etag;            /* index into the assignment cache, -1: none; -2 - index:
	                            that assignment, recorded once its downloads are applied */
	uint32_t boot_no, ev_next;
	uint32_t applied_mask;
	uint32_t crash_boot;
	/* per channel: fleet content indexes, -1: none */
	int8_t active[FL_NCH], lkg[FL_NCH], refused[FL_NCH], want[FL_NCH];
	uint8_t flags[FL_NCH]; /* enum fl_flag */
	int8_t ring, plat;     /* plat: index into scenario.platforms, -1: none */
	int8_t tenant;         /* index into scenario.tenants; n_tenants: the default tenant */
	int8_t crash_ch;       /* the crash being rebooted from: faulting channel, -1: background */
	int8_t last_ch;        /* channel of the latest content change (boot-loop guard) */
	uint8_t state, unclean, n_ev, crashed_ever, busy, queued, reverted, crash_report, plat_due;
	uint8_t health_seen; /* bit b: behaviour b (enum scn_behaviour_kind) showed in a heartbeat
	                      */
	uint16_t hb_no; /* health objects sent in this boot (wraps): with boot_no, keys their draws
	                 */
	struct fl_event ev[FL_MAX_EVENTS];
	int32_t hb_from; /* the health interval's start, ms after fleet.t0 (in the padding) */
};

struct fl_asg {
	char etag[80];
	int ok;
	int64_t sequence;
	int8_t content[FL_NCH]; /* fleet content index per channel, -1: channel absent */
};

struct fl_content {
	char sha[FB_SHA256_HEX_LEN + 1];
	int scn; /* scenario content index, -1: unknown to the scenario */
	int ch;  /* scenario channel index */
	int has_manifest;
	struct fbsig_manifest m;
	int parsed; /* 0 not yet, 1 valid, -1 refused by cf_parse */
	int64_t exposure;
	int64_t first_apply_ms;
	int64_t tenant_first_ms[SCN_MAX_TENANTS + 1]; /* per tenant (as fl_agent.tenant) */
};

struct fl_slot {
	CURL *e;
	struct curl_slist *hdrs;
	struct fb_buf resp;
	struct fb_buf req;
	char etag[80];
	int32_t agent; /* -1: free */
	int kind;
	int ch;          /* blob: the channel it is for */
	int plat;        /* heartbeat: carries the platform facts */
	int64_t sent_ms; /* when the request started (a heartbeat's health interval ends) */
};

struct fleet {
	struct fleet_opts o;
	const struct scenario *s;
	int64_t n;
	struct fl_agent *a;
	int32_t *heap;
	int64_t heap_n;
	int32_t *fifo; /* agents waiting for a free slot */
	int64_t fifo_head, fifo_n;
	CURLM *multi;
	struct fl_slot *slots;
	int n_slots;
	int32_t *free_slots;
	int n_free;
	char ring_token[SCN_MAX_TENANTS + 1][SCN_MAX_RINGS][128]; /* per tenant and ring */
	struct fl_content c[FLEET_MAX_CONTENTS];
	int n_c;
	int scn_to_c[SCN_MAX_CONTENTS];
	struct fl_asg asg[FL_MAX_ASG];
	int n_asg, asg_next;
	char caps[4096];
	int test_on;
	int64_t test_start_ms;
	int64_t t0;        /* monotonic ms at fleet_new: the epoch of cc_at and applied */
	int send_platform; /* platform facts in enroll and the first heartbeat of a boot */
	int send_faulting; /* faulting_channel on crash events */
	int send_health;   /* the health object in every heartbeat */
	int64_t hb_health; /* heartbeats sent with it */
	int ro_active[FL_NCH];
	char plat_json[SCN_MAX_PLATFORMS][FL_PLAT_JSON];
	int64_t hb_ms, poll_ms, reboot_ms;
	int64_t req_count[RQ_N], req_err[RQ_N], not_modified;
	int64_t hb_lag_max_ms, hb_late; /* heartbeats sent later than due: overload */
	/* answered requests' latency (curl's total time) by kind: a histogram and the maximum */
	uint64_t lat[RQ_N][FL_LAT_N];
	int64_t lat_max_us[RQ_N];
	/* the window (fleet_window_start): the counts at its start, its own maxima */
	struct {
		int on;
		int64_t t0, req[RQ_N], err[RQ_N], not_modified, hb_lag_max_ms, lat_max_us[RQ_N];
		uint64_t lat[RQ_N][FL_LAT_N];
	} win;
	int64_t crashes, content_crashes, bg_crashes, deaths, boot_loop_reverts,
	        rejected_assignments, rejected_blobs;
	int64_t blip_agents[SCN_MAX_BLIPS];
	char last_err[256];
};

/* ---- randomness: every draw is a pure function of (seed, agent, what) ---- */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Uniform in [0, 1) for (agent, what). */
static double draw(const struct fleet *f, int64_t agent, uint64_t what)
{
	uint64_t h = mix64(f->o.seed ^ mix64((uint64_t)agent * 0x100000001b3ULL + what));
	return (double)(h >> 11) / 9007199254740992.0;
}

static int64_t mono_ms(void)
{
	return fb_mono_ms();
}

/* ---- the wake-up heap --------------------------------------------------- */

static int heap_less(const struct fleet *f, int64_t i, int64_t j)
{
	return f->a[f->heap[i]].wake < f->a[f->heap[j]].wake;
}

static void heap_swap(struct fleet *f, int64_t i, int64_t j)
{
	int32_t t = f->heap[i];
	f->heap[i] = f->heap[j];
	f->heap[j] = t;
	f->a[f->heap[i]].heap_pos = (int32_t)i;
	f->a[f->heap[j]].heap_pos = (int32_t)j;
}

static void heap_up(struct fleet *f, int64_t i)
{
	while (i > 0 && heap_less(f, i, (i - 1) / 2)) {
		heap_swap(f, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct fleet *f, int64_t i)
{
	for (;;) {
		int64_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < f->heap_n && heap_less(f, l, m))
			m = l;
		if (r < f->heap_n && heap_less(f, r, m))
			m = r;
		if (m == i)
			return;
		heap_swap(f, i, m);
		i = m;
	}
}

/* (Re)schedule agent i at time t (monotonic ms). */
static void schedule(struct fleet *f, int32_t i, int64_t t)
{
	struct fl_agent *a = &f->a[i];
	a->wake = t;
	if (a->heap_pos < 0) {
		a->heap_pos = (int32_t)f->heap_n;
		f->heap[f->heap_n++] = i;
		heap_up(f, a->heap_pos);
	} else {
		heap_up(f, a->heap_pos);
		heap_down(f, a->heap_pos);
	}
}

static int32_t heap_pop(struct fleet *f)
{
	int32_t top = f->heap[0];
	heap_swap(f, 0, f->heap_n - 1);
	f->heap_n--;
	f->a[top].heap_pos = -1;
	if (f->heap_n > 0)
		heap_down(f, 0);
	return top;
}

/* ---- set-up ------------------------------------------------------------- */

/* Milliseconds after f->t0 (at least 1: 0 means "none"), and back. */
static int32_t rel_ms(const struct fleet *f, int64_t t)
{
	int64_t d = t - f->t0;
	return d < 1 ? 1 : d > INT32_MAX ? INT32_MAX : (int32_t)d;
}

static int64_t abs_ms(const struct fleet *f, int32_t t)
{
	return f->t0 + t;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
	struct fl_slot *s = ud;
	return fb_buf_add(&s->resp, p, sz * nm) == FB_OK ? sz * nm : 0;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
	struct fl_slot *s = ud;
	size_t n = sz * nm;
	if (n > 5 && strncasecmp(p, "etag:", 5) == 0) {
		size_t i = 5;
		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
		size_t j = n;
		while (j > i && (p[j - 1] == '\r' || p[j - 1] == '\n' || p[j - 1] == ' '))
			j--;
		if (j - i < sizeof s->etag) {
			memcpy(s->etag, p + i, j - i);
			s->etag[j - i] = 0;
		}
	}
	return n;
}

/* The "platform" object of every scenario platform, rendered once. */
static enum fb_rc platform_json(struct fleet *f, struct fb_err *err)
{
	for (int p = 0; p < f->s->n_platforms; p++) {
		const struct scn_platform *q = &f->s->platforms[p];
		char *o = f->plat_json[p];
		size_t cap = sizeof f->plat_json[p];
		int n = snprintf(o, cap, "{\"os\":\"%s\",\"os_build\":\"%s\",\"arch\":\"%s\"",
		                 q->fact[SCN_OS], q->fact[SCN_OS_BUILD], q->fact[SCN_ARCH]);
		for (int x = 0; x < q->n_extra && n > 0 && (size_t)n < cap; x++)
			n += snprintf(o + n, cap - (size_t)n, "%s\"%s\":\"%s\"",
			              x ? "," : ",\"extra\":{", q->extra_key[x], q->extra_val[x]);
		if (n > 0 && (size_t)n < cap)
			n += snprintf(o + n, cap - (size_t)n, "%s}", q->n_extra ? "}" : "");
		if (n < 0 || (size_t)n >= cap) {
			fb_err_set(err, "platforms[%d]: facts longer than %zu bytes", p, cap - 1);
			return FB_EINVAL;
		}
	}
	return FB_OK;
}

/* Give the agents first..first+size-1 of ring r their platforms: the counts
 * of scn_ring_platforms(), shuffled by the seed. */
static void assign_platforms(struct fleet *f, int r, int64_t first)
{
	int64_t counts[SCN_MAX_PLATFORMS], n = f->s->rings[r].agents, i = 0;
	if (f->s->n_platforms == 0) {
		for (int64_t k = 0; k < n; k++)
			f->a[first + k].plat = -1;
		return;
	}
	scn_ring_platforms(f->s, r, counts);
	for (int p = 0; p < f->s->n_platforms; p++)
		for (int64_t k = 0; k < counts[p] && i < n; k++)
			f->a[first + i++].plat = (int8_t)p;
	for (int64_t k = n - 1; k > 0; k--) { /* Fisher-Yates */
		int64_t j = (int64_t)(draw(f, first + k, 9) * (double)(k + 1));
		int8_t t = f->a[first + k].plat;
		f->a[first + k].plat = f->a[first + j].plat;
		f->a[first + j].plat = t;
	}
}

/* Give the agents first..first+size-1 of ring r their tenants: the counts
 * of scn_ring_tenants() in order (the default tenant last). */
static void assign_tenants(struct fleet *f, int r, int64_t first)
{
	int64_t counts[SCN_MAX_TENANTS + 1], n = f->s->rings[r].agents, i = 0;
	if (f->s->n_tenants == 0) {
		for (int64_t k = 0; k < n; k++)
			f->a[first + k].tenant = 0;
		return;
	}
	scn_ring_tenants(f->s, r, counts);
	for (int t = 0; t <= f->s->n_tenants; t++)
		for (int64_t k = 0; k < counts[t] && i < n; k++)
			f->a[first + i++].tenant = (int8_t)t;
}

enum fb_rc fleet_new(const struct fleet_opts *opts, struct fleet **out, struct fb_err *err)
{
	*out = NULL;
	enum fb_rc rc = FB_ENOMEM;
	struct fleet *f = calloc(1, sizeof *f);
	if (!f)
		return FB_ENOMEM;
	f->o = *opts;
	f->s = opts->scn;
	f->n = f->s->agents;
	f->n_slots = opts->max_inflight > 0 ? opts->max_inflight : 64;
	f->a = calloc((size_t)f->n, sizeof *f->a);
	f->heap = calloc((size_t)f->n, sizeof *f->heap);
	f->fifo = calloc((size_t)f->n, sizeof *f->fifo);
	f->slots = calloc((size_t)f->n_slots, sizeof *f->slots);
	f->free_slots = calloc((size_t)f->n_slots, sizeof *f->free_slots);
	f->multi = curl_multi_init();
	if (!f->a || !f->heap || !f->fifo || !f->slots || !f->free_slots || !f->multi)
		goto out;
	curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, (long)f->n_slots);
	for (int i = 0; i < f->n_slots; i++) {
		struct fl_slot *s = &f->slots[i];
		s->agent = -1;
		s->e = curl_easy_init();
		if (!s->e)
			goto out;
		fb_buf_init(&s->resp, FL_MAX_POLL > CF_MAX_FILE ? FL_MAX_POLL : CF_MAX_FILE);
		fb_buf_init(&s->req, FL_MAX_SMALL);
		f->free_slots[f->n_free++] = i;
	}
	for (int i = 0; i < SCN_MAX_CONTENTS; i++)
		f->scn_to_c[i] = -1;
	f->hb_ms = (int64_t)(f->s->heartbeat_s * 1000);
	f->poll_ms = (int64_t)(f->s->poll_s * 1000);
	f->reboot_ms = (int64_t)(f->s->reboot_s * 1000);
	json_t *caps = cf_registry_capabilities(opts->reg);
	char *cs = caps ? json_dumps(caps, JSON_COMPACT) : NULL;
	json_decref(caps);
	if (!cs || strlen(cs) >= sizeof f->caps) {
		free(cs);
		fb_err_set(err, "template capabilities missing or longer than %zu bytes",
		           sizeof f->caps);
		rc = FB_EINVAL;
		goto out;
	}
	snprintf(f->caps, sizeof f->caps, "%s", cs);
	free(cs);
	f->send_platform = f->s->n_platforms > 0 && !opts->protocol_v1;
	f->send_faulting = !opts->protocol_v1;
	f->send_health = f->s->health.on && !opts->protocol_v1;
	if ((rc = platform_json(f, err)))
		goto out;
	int64_t now = mono_ms(), idx = 0;
	f->t0 = now;
	for (int r = 0; r < f->s->n_rings; r++) {
		assign_platforms(f, r, idx);
		assign_tenants(f, r, idx);
		for (int64_t k = 0; k < f->s->rings[r].agents; k++, idx++) {
			struct fl_agent *a = &f->a[idx];
			a->ring = (int8_t)r;
			for (int c = 0; c < FL_NCH; c++)
				a->active[c] = a->lkg[c] = a->refused[c] = a->want[c] = -1;
			a->crash_ch = a->last_ch = -1;
			a->plat_due = 1;
			a->etag = -1;
			a->heap_pos = -1;
			a->boot_no = 1;
			a->boot_ms = now;
			a->hb_from = rel_ms(f, now);
			/* spread the first requests over one interval */
			int64_t j = (int64_t)(draw(f, idx, 1) * (double)f->poll_ms);
			a->next_poll = now + j;
			a->next_hb = now + (int64_t)(draw(f, idx, 2) * (double)f->hb_ms);
			schedule(f, (int32_t)idx, now + (int64_t)(draw(f, idx, 3) * 2000.0));
		}
	}
	*out = f;
	return FB_OK;
out:
	fleet_free(f);
	if (rc == FB_ENOMEM)
		fb_err_set(err, "out of memory for %lld agents", (long long)opts->scn->agents);
	return rc;
}

void fleet_free(struct fleet *f)
{
	if (!f)
		return;
	for (int i = 0; f->slots && i < f->n_slots; i++) {
		struct fl_slot *s = &f->slots[i];
		if (s->e) {
			if (s->agent >= 0)
				curl_multi_remove_handle(f->multi, s->e);
			curl_easy_cleanup(s->e);
		}
		curl_slist_free_all(s->hdrs);
		fb_buf_cleanup(&s->resp);
		fb_buf_cleanup(&s->req);
	}
	if (f->multi)
		curl_multi_cleanup(f->multi);
	if (f->a)
		sodium_memzero(f->a, (size_t)f->n * sizeof *f->a); /* agent tokens */
	free(f->a);
	free(f->heap);
	free(f->fifo);
	free(f->slots);
	free(f->free_slots);
	free(f);
}

enum fb_rc fleet_set_ring_token(struct fleet *f, int tenant, int ring, const char *token)
{
	if (tenant < 0 || tenant > f->s->n_tenants || ring < 0 || ring >= f->s->n_rings ||
	    strlen(token) >= sizeof f->ring_token[0][0])
		return FB_EINVAL;
	snprintf(f->ring_token[tenant][ring], sizeof f->ring_token[tenant][ring], "%s", token);
	return FB_OK;
}

/* Fleet content index of sha, added when new (-1 when the table is full). */
static int content_of(struct fleet *f, const char *sha)
{
	for (int i = 0; i < f->n_c; i++)
		if (strcmp(f->c[i].sha, sha) == 0)
			return i;
	if (f->n_c >= FLEET_MAX_CONTENTS)
		return -1;
	struct fl_content *c = &f->c[f->n_c];
	memset(c, 0, sizeof *c);
	snprintf(c->sha, sizeof c->sha, "%s", sha);
	c->scn = -1;
	c->ch = 0;
	return f->n_c++;
}

void fleet_set_content(struct fleet *f, int scn, const char *sha256)
{
	int i = content_of(f, sha256);
	if (i >= 0 && scn >= 0 && scn < SCN_MAX_CONTENTS) {
		f->c[i].scn = scn;
		f->c[i].ch = f->s->contents[scn].channel;
		f->scn_to_c[scn] = i;
	}
}

/* ---- agent behaviour ---------------------------------------------------- */

static void push_event(struct fleet *f, struct fl_agent *a, int kind, int content, int content2)
{
	if (a->n_ev >= FL_MAX_EVENTS) /* the oldest is dropped: a bounded disk queue */
		memmove(&a->ev[0], &a->ev[1], sizeof a->ev[0] * (FL_MAX_EVENTS - 1)), a->n_ev--;
	struct fl_event *e = &a->ev[a->n_ev++];
	e->kind = (uint8_t)kind;
	e->content = (int8_t)content;
	e->content2 = (int8_t)content2;
	e->faulting = 0;
	e->boot = a->boot_no;
	e->unclean = a->unclean;
	e->id = ++a->ev_next;
	e->at = (uint32_t)(fb_now_ms() / 1000);
	a->ev_retry = 0;
	(void)f;
}

/* The scenario behaviour of fleet content c, or NULL for a well-behaved one
 * (baselines always are). */
static const struct scn_content *behaviour(const struct fleet *f, int c)
{
	if (!f->test_on || c < 0 || f->c[c].scn < 0 || f->c[c].scn == f->s->ch[f->c[c].ch].baseline)
		return NULL;
	const struct scn_content *b = &f->s->contents[f->c[c].scn];
	return b->crash_probability > 0 ? b : NULL;
}

/* Whether agent i is one of content c's victims: its platform is in the
 * content's segments and a fixed draw per (agent, content) falls below the
 * crash probability. */
static int victim(const struct fleet *f, int64_t i, int c)
{
	const struct scn_content *b = behaviour(f, c);
	int p = f->a[i].plat;
	if (!b || (p >= 0 && !(b->platform_mask & (1u << p))))
		return 0;
	return draw(f, i, 100 + (uint64_t)c) < b->crash_probability;
}

/* Arm the crash that channel k's active content causes on agent i, counted
 * from 'from' (the apply, or a boot for boot-loop contents) and never before
 * crash_after_s since the apply. An earlier pending crash is kept. */
static void arm_content_crash(struct fleet *f, int64_t i, int k, int64_t from)
{
	struct fl_agent *a = &f->a[i];
	if (a->active[k] < 0 || !victim(f, i, a->active[k]))
		return;
	const struct scn_content *b = behaviour(f, a->active[k]);
	int64_t t = from + (int64_t)(b->crash_delay_s * 1000);
	int64_t after = abs_ms(f, a->applied[k]) + (int64_t)(b->crash_after_s * 1000);
	int32_t r = rel_ms(f, t > after ? t : after);
	if (!a->cc_at[k] || r < a->cc_at[k])
		a->cc_at[k] = r;
}

/* Content c of channel k becomes active on agent i. */
static void apply(struct fleet *f, int64_t i, int k, int c, int64_t now)
{
	struct fl_agent *a = &f->a[i];
	a->lkg[k] = a->active[k];
	a->active[k] = (int8_t)c;
	a->applied[k] = rel_ms(f, now);
	a->unclean = 0;
	a->last_ch = (int8_t)k;
	if (!(a->applied_mask & (1u << c))) {
		a->applied_mask |= 1u << c;
		f->c[c].exposure++;
		if (!f->c[c].first_apply_ms)
			f->c[c].first_apply_ms = fb_now_ms();
		if (!f->c[c].tenant_first_ms[a->tenant])
			f->c[c].tenant_first_ms[a->tenant] = fb_now_ms();
	}
	if (f->ro_active[k] && f->c[c].scn >= 0 && f->c[c].scn == f->s->ch[k].rollout)
		a->flags[k] |= FLG_TREATED;
	push_event(f, a, EV_APPLIED, c, -1);
	a->cc_at[k] = 0;
	arm_content_crash(f, i, k, now);
}

/* The host crashes: k is the channel whose content caused it, -1 a
 * background crash. */
static void crash(struct fleet *f, int64_t i, int k, int64_t now)
{
	struct fl_agent *a = &f->a[i];
	const struct scn_content *b = k >= 0 ? behaviour(f, a->active[k]) : NULL;
	f->crashes++;
	if (k >= 0) {
		f->content_crashes++;
		a->cc_at[k] = 0;
	} else {
		f->bg_crashes++;
		a->bg_at = 0;
	}
	a->crashed_ever = 1;
	for (int c = 0; c < f->s->n_channels; c++) {
		int u = a->active[c];
		if (u < 0 || f->c[u].scn < 0 || f->c[u].scn != f->s->ch[c].rollout)
			continue;
		a->flags[c] |= FLG_CRASHED_ON;
		if (c == k)
			a->flags[c] |= FLG_FAULTED;
	}
	if (b && b->after_crash == SCN_SILENT) {
		a->state = FL_DEAD; /* dies without a word, never comes back */
		f->deaths++;
		return;
	}
	a->state = FL_DOWN;
	a->crash_report = 1;
	a->crash_ch = (int8_t)k;
	a->crash_boot = a->boot_no;
	a->up_at = now + f->reboot_ms;
}

/* A start after a crash: report it (one event per channel with active
 * content, as fb-agent's queue_crash), count the unclean start, and run the
 * boot-loop guard exactly as fb-agent does: after boot_loop_starts unclean
 * starts since the latest content change, that channel goes back to its
 * last known good. */
static void boot(struct fleet *f, int64_t i, int64_t now)
{
	struct fl_agent *a = &f->a[i];
	for (int k = 0; a->crash_report && k < f->s->n_channels; k++) {
		if (a->active[k] < 0)
			continue;
		push_event(f, a, EV_CRASH, a->active[k], -1);
		a->ev[a->n_ev - 1].boot = a->crash_boot;
		a->ev[a->n_ev - 1].faulting = (uint8_t)(a->crash_ch + 1);
	}
	a->crash_report = 0;
	a->boot_no++;
	a->boot_ms = now;
	a->unclean++;
	a->state = FL_UP;
	a->plat_due = 1;
	a->hb_from = rel_ms(f, now); /* a new agent process: its health starts here */
	a->hb_no = 0;
	int k = a->last_ch;
	if (k >= 0 && a->unclean >= f->s->boot_loop_starts && a->active[k] >= 0 &&
	    a->active[k] != a->lkg[k]) {
		int from = a->active[k];
		a->refused[k] = a->active[k];
		a->active[k] = a->lkg[k];
		a->applied[k] = rel_ms(f, now);
		a->cc_at[k] = 0;
		push_event(f, a, EV_BOOT_LOOP, from, a->lkg[k]);
		a->unclean = 0;
		a->reverted = 1;
		f->boot_loop_reverts++;
	}
	for (k = 0; k < f->s->n_channels; k++) {
		const struct scn_content *b = behaviour(f, a->active[k]);
		if (b && b->boot_loop)
			arm_content_crash(f, i, k, now);
	}
	a->next_hb = now;
	a->next_poll = now;
}

/* When agent i crashes next (0: no crash pending); *k: the channel that
 * causes it, -1 for a background crash. */
static int64_t next_crash(const struct fleet *f, const struct fl_agent *a, int *k)
{
	int64_t t = a->bg_at;
	*k = -1;
	for (int c = 0; c < f->s->n_channels; c++) {
		if (!a->cc_at[c])
			continue;
		int64_t u = abs_ms(f, a->cc_at[c]);
		if (!t || u < t) {
			t = u;
			*k = c;
		}
	}
	return t;
}

/* ---- requests ------------------------------------------------------------ */

/* The version agent i reports (its platform's, else fb-fleet's own). */
static const char *agent_version(const struct fleet *f, const struct fl_agent *a)
{
	if (a->plat >= 0 && f->s->platforms[a->plat].fact[SCN_AGENT_VERSION][0])
		return f->s->platforms[a->plat].fact[SCN_AGENT_VERSION];
	return FL_VERSION;
}

/* Agent i's health object at now (the interval since its last accepted
 * heartbeat), appended to b as `,"health":{...}`. */
static enum fb_rc body_health(struct fleet *f, int64_t i, int64_t now, struct fb_buf *b)
{
	struct fl_agent *a = &f->a[i];
	struct fhealth_agent in = {.index = i,
	                           .plat = a->plat,
	                           .hb_no = (uint64_t)a->boot_no << 16 | a->hb_no++,
	                           .interval_s = (double)(now - abs_ms(f, a->hb_from)) / 1000.0,
	                           .up_s = (double)(now - a->boot_ms) / 1000.0,
	                           .armed = f->test_on};
	for (int k = 0; k < f->s->n_channels; k++) {
		in.content[k] = -1;
		if (a->active[k] < 0)
			continue;
		in.channels |= 1u << k;
		in.content[k] = f->c[a->active[k]].scn;
		in.applied_s[k] = (double)(now - abs_ms(f, a->applied[k])) / 1000.0;
	}
	struct fhealth h;
	fhealth_sample(f->s, f->o.seed, &in, &h);
	a->health_seen |= h.behaviours;
	f->hb_health++;
	enum fb_rc rc = fb_buf_addstr(b, ",\"health\":");
	return rc ? rc : fhealth_json(f->s, &h, b);
}

/* Agent i's heartbeat at now; with_platform: add its "platform" object. */
static enum fb_rc body_heartbeat(struct fleet *f, int64_t i, int with_platform, int64_t now,
                                 struct fb_buf *b)
{
	struct fl_agent *a = &f->a[i];
	enum fb_rc rc =
	        fb_buf_printf(b,
	                      "{\"agent_id\":%lld,\"boot_id\":\"b%lld-%u\",\"uptime_s\":%lld,"
	                      "\"agent_version\":\"%s\",\"active\":{",
	                      (long long)a->id, (long long)a->id, a->boot_no,
	                      (long long)((now - a->boot_ms) / 1000), agent_version(f, a));
	for (int k = 0, n = 0; !rc && k < f->s->n_channels; k++)
		if (a->active[k] >= 0)
			rc = fb_buf_printf(b, "%s\"%u\":\"%s\"", n++ ? "," : "", f->s->ch[k].id,
			                   f->c[a->active[k]].sha);
	if (!rc)
		rc = fb_buf_printf(b, "},\"capabilities\":%s", f->caps);
	if (!rc && with_platform)
		rc = fb_buf_printf(b, ",\"platform\":%s", f->plat_json[a->plat]);
	if (!rc && f->send_health)
		rc = body_health(f, i, now, b);
	if (!rc)
		rc = fb_buf_addstr(b, "}");
	return rc;
}

static enum fb_rc body_events(struct fleet *f, struct fl_agent *a, struct fb_buf *b)
{
	enum fb_rc rc = fb_buf_printf(b, "{\"agent_id\":%lld,\"events\":[", (long long)a->id);
	for (int k = 0; !rc && k < a->n_ev; k++) {
		const struct fl_event *e = &a->ev[k];
		static const char *const kinds[] = {"applied", "crash", "boot_loop"};
		rc = fb_buf_printf(
		        b,
		        "%s{\"id\":\"e%u\",\"kind\":\"%s\",\"at\":%lld,\"boot_id\":\"b%lld-%u\","
		        "\"channel\":%u,",
		        k ? "," : "", e->id, kinds[e->kind], (long long)e->at, (long long)a->id,
		        e->boot, f->s->ch[f->c[e->content].ch].id);
		if (!rc && e->kind == EV_CRASH && e->faulting && f->send_faulting)
			rc = fb_buf_printf(b, "\"faulting_channel\":%u,",
			                   f->s->ch[e->faulting - 1].id);
		if (rc)
			break;
		if (e->kind == EV_BOOT_LOOP)
			rc = fb_buf_printf(b,
			                   "\"reverted_from\":\"%s\",\"reverted_to\":\"%s\","
			                   "\"unclean_starts\":%u}",
			                   f->c[e->content].sha,
			                   e->content2 >= 0 ? f->c[e->content2].sha : "",
			                   e->unclean ? e->unclean : 1);
		else if (e->kind == EV_CRASH)
			rc = fb_buf_printf(b,
			                   "\"content\":\"%s\",\"code\":\"0xC0000005\",\"module\":"
			                   "\"csagent.sys\"}",
			                   f->c[e->content].sha);
		else
			rc = fb_buf_printf(b, "\"content\":\"%s\"}", f->c[e->content].sha);
	}
	if (!rc)
		rc = fb_buf_addstr(b, "]}");
	return rc;
}

static enum fb_rc body_enroll(struct fleet *f, int64_t i, struct fb_buf *b)
{
	struct fl_agent *a = &f->a[i];
	char pk64[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES,
	                                    sodium_base64_VARIANT_ORIGINAL)];
	if (sodium_is_zero(a->pk, sizeof a->pk)) {
		/* a real Ed25519 key per agent, made once (a retry reuses it, so a
		 * retried enrollment is idempotent); nothing here signs with it */
		unsigned char sk[crypto_sign_SECRETKEYBYTES];
		crypto_sign_keypair(a->pk, sk);
		sodium_memzero(sk, sizeof sk);
	}
	sodium_bin2base64(pk64, sizeof pk64, a->pk, sizeof a->pk, sodium_base64_VARIANT_ORIGINAL);
	enum fb_rc rc = fb_buf_printf(
	        b,
	        "{\"enrollment_token\":\"%s\",\"public_key\":\"%s\",\"hostname\":\"sim-%s-%lld\","
	        "\"agent_version\":\"%s\",\"capabilities\":%s",
	        f->ring_token[a->tenant][a->ring], pk64, f->s->rings[a->ring].name, (long long)i,
	        agent_version(f, a), f->caps);
	if (!rc && f->send_platform && a->plat >= 0)
		rc = fb_buf_printf(b, ",\"platform\":%s", f->plat_json[a->plat]);
	return rc ? rc : fb_buf_addstr(b, "}");
}

/* Start request kind for agent i on a free slot (the caller checked one is free). */
static void start(struct fleet *f, int32_t i, int kind)
{
	struct fl_agent *a = &f->a[i];
	int si = f->free_slots[--f->n_free];
	struct fl_slot *s = &f->slots[si];
	char url[1024];
	enum fb_rc rc = FB_OK;
	fb_buf_reset(&s->resp);
	fb_buf_reset(&s->req);
	s->resp.max = kind == RQ_POLL ? FL_MAX_POLL : kind == RQ_BLOB ? CF_MAX_FILE : FL_MAX_SMALL;
	s->etag[0] = 0;
	s->agent = i;
	s->kind = kind;
	s->ch = 0;
	s->plat = 0;
	s->sent_ms = mono_ms();
	curl_slist_free_all(s->hdrs);
	s->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	if (a->id && kind != RQ_BLOB && kind != RQ_ENROLL) {
		char h[FL_TOKEN + 32];
		snprintf(h, sizeof h, "Authorization: Bearer %s", a->token);
		s->hdrs = curl_slist_append(s->hdrs, h);
	}
	const char *method = "POST";
	switch (kind) {
	case RQ_ENROLL:
		snprintf(url, sizeof url, "%s/v1/enroll", f->o.base_url);
		rc = body_enroll(f, i, &s->req);
		break;
	case RQ_POLL:
		method = "GET";
		snprintf(url, sizeof url, "%s/v1/poll", f->o.base_url);
		if (a->etag >= 0 && f->asg[a->etag].etag[0]) {
			char h[128];
			snprintf(h, sizeof h, "If-None-Match: %s", f->asg[a->etag].etag);
			s->hdrs = curl_slist_append(s->hdrs, h);
		}
		break;
	case RQ_BLOB:
		method = "GET";
		while (s->ch < f->s->n_channels - 1 && a->want[s->ch] < 0)
			s->ch++;
		snprintf(url, sizeof url, "%s/v1/blobs/%s", f->o.base_url,
		         f->c[a->want[s->ch]].sha);
		break;
	case RQ_HB:
		snprintf(url, sizeof url, "%s/v1/heartbeat", f->o.base_url);
		s->plat = f->send_platform && a->plat_due && a->plat >= 0;
		rc = body_heartbeat(f, i, s->plat, s->sent_ms, &s->req);
		break;
	default:
		snprintf(url, sizeof url, "%s/v1/events", f->o.base_url);
		rc = body_events(f, a, &s->req);
		break;
	}
	CURL *e = s->e;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 15000L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "fb-fleet");
	if (f->o.ca_bundle)
		curl_easy_setopt(e, CURLOPT_CAINFO, f->o.ca_bundle);
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
	} else {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, rc ? "{}" : s->req.data);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(rc ? 2 : s->req.len));
	}
	a->busy = 1;
	f->req_count[kind]++;
	if (kind == RQ_HB) {
		int64_t lag = mono_ms() - a->next_hb;
		if (f->test_on) { /* the rollout under test only */
			if (lag > f->hb_lag_max_ms)
				f->hb_lag_max_ms = lag;
			f->hb_late += lag > f->hb_ms;
		}
		if (f->win.on && lag > f->win.hb_lag_max_ms)
			f->win.hb_lag_max_ms = lag;
	}
	curl_multi_add_handle(f->multi, e);
}

static struct fl_asg *asg_lookup(struct fleet *f, const char *etag, int *idx)
{
	for (int k = 0; k < f->n_asg; k++)
		if (strcmp(f->asg[k].etag, etag) == 0) {
			*idx = k;
			return &f->asg[k];
		}
	return NULL;
}

/* Verify an assignment body once per ETag, as fb-agent does for each poll. */
static struct fl_asg *asg_verify(struct fleet *f, const char *etag, const struct fb_buf *body,
                                 int *idx)
{
	struct fl_asg *g = asg_lookup(f, etag, idx);
	if (g)
		return g;
	*idx = f->asg_next;
	g = &f->asg[f->asg_next];
	f->asg_next = (f->asg_next + 1) % FL_MAX_ASG;
	if (f->n_asg < FL_MAX_ASG)
		f->n_asg++;
	/* agents pointing at the evicted entry just refetch */
	for (int64_t k = 0; k < f->n; k++)
		if (f->a[k].etag == *idx || f->a[k].etag == -2 - *idx)
			f->a[k].etag = -1;
	memset(g, 0, sizeof *g);
	snprintf(g->etag, sizeof g->etag, "%s", etag);
	for (int k = 0; k < FL_NCH; k++)
		g->content[k] = -1;
	struct fbsig_assignment *as = NULL;
	struct fb_err err;
	if (fbsig_assignment_verify(f->o.root, body->data, body->len, fb_now_ms() / 1000, 0, &as,
	                            &err)) {
		snprintf(f->last_err, sizeof f->last_err, "assignment refused: %s", err.msg);
		return g;
	}
	g->ok = 1;
	g->sequence = as->sequence;
	for (size_t j = 0; j < as->n_channels; j++) {
		int k = 0;
		while (k < f->s->n_channels && as->channels[j].channel != f->s->ch[k].id)
			k++;
		if (k == f->s->n_channels)
			continue; /* a channel the scenario does not run */
		int c = content_of(f, as->channels[j].sha256);
		if (c < 0) {
			g->ok = 0;
			snprintf(f->last_err, sizeof f->last_err, "more than %d contents",
			         FLEET_MAX_CONTENTS);
			break;
		}
		g->content[k] = (int8_t)c;
		f->c[c].ch = k;
		if (!f->c[c].has_manifest) {
			f->c[c].m = as->channels[j].manifest;
			f->c[c].has_manifest = 1;
		}
	}
	fbsig_assignment_free(as);
	return g;
}

static void on_poll(struct fleet *f, int32_t i, struct fl_slot *s, int64_t now)
{
	struct fl_agent *a = &f->a[i];
	a->next_poll = now + f->poll_ms;
	int idx;
	struct fl_asg *g = asg_verify(f, s->etag, &s->resp, &idx);
	if (!g->ok || g->sequence < a->last_seq) {
		f->rejected_assignments++;
		a->etag = idx; /* refused: not fetched again */
		return;
	}
	a->last_seq = g->sequence;
	int fetch = 0;
	for (int k = 0; k < f->s->n_channels; k++) {
		int c = g->content[k];
		if (c < 0) {
			a->active[k] = -1; /* channel absent: deactivate */
			a->cc_at[k] = 0;
			continue;
		}
		if (a->refused[k] >= 0 && c != a->refused[k])
			a->refused[k] = -1;
		if (c == a->active[k] || c == a->refused[k])
			continue;
		a->want[k] = (int8_t)c;
		fetch = 1;
	}
	/* with a download pending the ETag is recorded once the blobs are applied,
	 * as fb-agent records it after applying the assignment (its next poll is
	 * a 304, not a second download of the same document) */
	a->etag = fetch ? -2 - idx : idx;
}

/* A download for agent a ended; ok: applied. The pending assignment's ETag
 * is recorded when it was the last one; a failure forgets it (the next poll
 * fetches the assignment again, as fb-agent retries an assignment it could
 * not apply). */
static void blob_done(struct fleet *f, struct fl_agent *a, int ok)
{
	if (!ok) {
		a->etag = -1;
		return;
	}
	for (int k = 0; k < f->s->n_channels; k++)
		if (a->want[k] >= 0)
			return;
	if (a->etag <= -2)
		a->etag = -2 - a->etag;
}

static void on_blob(struct fleet *f, int32_t i, struct fl_slot *s, int64_t now)
{
	struct fl_agent *a = &f->a[i];
	int ch = s->ch, c = a->want[ch];
	a->want[ch] = -1;
	if (c < 0)
		return;
	struct fl_content *k = &f->c[c];
	uint32_t id = f->s->ch[ch].id;
	struct fb_err err;
	if (!k->has_manifest ||
	    fbsig_manifest_check_blob(&k->m, s->resp.data, s->resp.len, id, &err)) {
		f->rejected_blobs++;
		blob_done(f, a, 0);
		return;
	}
	if (!k->parsed) {
		struct cf_file *cf = NULL;
		k->parsed = cf_parse(f->o.reg, s->resp.data, s->resp.len, &cf, &err) == FB_OK &&
		                            cf_file_channel(cf) == id
		                    ? 1
		                    : -1;
		if (k->parsed < 0)
			snprintf(f->last_err, sizeof f->last_err, "blob %.12s refused: %s", k->sha,
			         err.msg);
		cf_file_free(cf);
	}
	if (k->parsed < 0) {
		f->rejected_blobs++;
		blob_done(f, a, 0);
		return;
	}
	apply(f, i, ch, c, now);
	blob_done(f, a, 1);
}

/* The latency bucket of us microseconds: 0 below 16 us, then eight buckets
 * for each doubling (about 9 % wide), the last one open-ended. */
static int lat_bucket(int64_t us)
{
	if (us < 16)
		return 0;
	int msb = 63 - __builtin_clzll((unsigned long long)us);
	int b = 1 + (msb - 4) * 8 + (int)((us >> (msb - 3)) & 7);
	return b < FL_LAT_N ? b : FL_LAT_N - 1;
}

/* The upper edge of bucket b in microseconds. */
static double lat_upper_us(int b)
{
	if (b == 0)
		return 16;
	int msb = (b - 1) / 8 + 4, sub = (b - 1) % 8;
	return (double)((int64_t)(9 + sub) << (msb - 3));
}

static void record_latency(struct fleet *f, int kind, CURL *e)
{
	curl_off_t us = 0;
	if (curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &us) != CURLE_OK || us < 0)
		return;
	f->lat[kind][lat_bucket(us)]++;
	if (us > f->lat_max_us[kind])
		f->lat_max_us[kind] = us;
	if (f->win.on && us > f->win.lat_max_us[kind])
		f->win.lat_max_us[kind] = us;
}

static void complete(struct fleet *f, struct fl_slot *s, CURLcode cc)
{
	int32_t i = s->agent;
	struct fl_agent *a = &f->a[i];
	int kind = s->kind;
	long status = 0;
	curl_easy_getinfo(s->e, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_OK)
		record_latency(f, kind, s->e);
	curl_multi_remove_handle(f->multi, s->e);
	s->agent = -1;
	f->free_slots[f->n_free++] = (int32_t)(s - f->slots);
	a->busy = 0;
	int64_t now = mono_ms();
	int not_modified = kind == RQ_POLL && cc == CURLE_OK && status == 304;
	int ok = (cc == CURLE_OK && status >= 200 && status < 300) || not_modified;
	if (!ok) {
		f->req_err[kind]++;
		if (cc != CURLE_OK)
			snprintf(f->last_err, sizeof f->last_err, "%s: %s", rq_names[kind],
			         curl_easy_strerror(cc));
		else
			snprintf(f->last_err, sizeof f->last_err, "%s: HTTP %ld: %.160s",
			         rq_names[kind], status, s->resp.data ? s->resp.data : "");
	}
	if (a->state == FL_DEAD)
		return;
	switch (kind) {
	case RQ_ENROLL:
		if (ok) {
			json_t *j = json_loadb(s->resp.data, s->resp.len, 0, NULL);
			json_t *id = json_object_get(j, "agent_id");
			const char *tok = json_string_value(json_object_get(j, "agent_token"));
			if (json_is_integer(id) && tok && strlen(tok) < sizeof a->token) {
				a->id = json_integer_value(id);
				a->next_hb = now; /* the first heartbeat right away */
				snprintf(a->token, sizeof a->token, "%s", tok);
			}
			json_decref(j);
		}
		if (!a->id)
			a->next_poll = now + 1000; /* retry enrollment after a second */
		break;
	case RQ_POLL:
		if (not_modified)
			f->not_modified++, a->next_poll = now + f->poll_ms;
		else if (ok && a->state == FL_UP && s->etag[0])
			on_poll(f, i, s, now);
		else
			a->next_poll = now + f->poll_ms;
		break;
	case RQ_BLOB:
		if (ok && a->state == FL_UP)
			on_blob(f, i, s, now);
		else {
			a->want[s->ch] = -1;
			blob_done(f, a, 0);
		}
		break;
	case RQ_HB:
		a->next_hb = now + f->hb_ms;
		if (ok && s->plat)
			a->plat_due = 0;
		if (ok) /* the next health object covers the time since this one */
			a->hb_from = rel_ms(f, s->sent_ms);
		break;
	default:
		if (ok || status == 400) {
			/* accepted (duplicates included); a 400 would repeat forever */
			a->n_ev = 0;
		} else
			a->ev_retry = now + 1000;
		break;
	}
	schedule(f, i, now);
}

/* Decide what agent i does now: local events (crash, boot) first, then at
 * most one request. Returns the request kind to start, or -1 (rescheduled,
 * dead or waiting). */
static int next_action(struct fleet *f, int32_t i, int64_t now)
{
	struct fl_agent *a = &f->a[i];
	if (a->state == FL_DEAD || a->busy)
		return -1;
	if (a->state == FL_DOWN) {
		if (now < a->up_at) {
			schedule(f, i, a->up_at);
			return -1;
		}
		boot(f, i, now);
	}
	int cause;
	int64_t due = next_crash(f, a, &cause);
	if (due && now >= due) {
		crash(f, i, cause, now);
		if (a->state == FL_DOWN)
			schedule(f, i, a->up_at);
		return -1;
	}
	int64_t next = due ? due : INT64_MAX;
	if (now >= a->offline_from && now < a->offline_until) {
		schedule(f, i, a->offline_until < next ? a->offline_until : next);
		return -1;
	}
	if (!a->id) {
		if (now >= a->next_poll)
			return RQ_ENROLL;
		schedule(f, i, a->next_poll < next ? a->next_poll : next);
		return -1;
	}
	for (int k = 0; k < f->s->n_channels; k++)
		if (a->want[k] >= 0)
			return RQ_BLOB;
	if (a->n_ev && now >= a->ev_retry)
		return RQ_EVENTS;
	if (now >= a->next_poll)
		return RQ_POLL;
	if (now >= a->next_hb)
		return RQ_HB;
	if (a->next_poll < next)
		next = a->next_poll;
	if (a->next_hb < next)
		next = a->next_hb;
	if (a->n_ev && a->ev_retry < next)
		next = a->ev_retry;
	schedule(f, i, next);
	return -1;
}

static void run_agent(struct fleet *f, int32_t i, int64_t now)
{
	int kind = next_action(f, i, now);
	if (kind < 0)
		return;
	if (f->n_free == 0) {
		if (!f->a[i].queued) {
			f->a[i].queued = 1;
			f->fifo[(f->fifo_head + f->fifo_n++) % f->n] = i;
		}
		return;
	}
	start(f, i, kind);
}

enum fb_rc fleet_run(struct fleet *f, int64_t max_ms, fleet_tick_cb cb, void *ctx,
                     struct fb_err *err)
{
	int64_t t0 = mono_ms(), last_tick = 0, last_report = t0;
	for (;;) {
		int64_t now = mono_ms();
		if (now - last_tick >= 250) {
			last_tick = now;
			if (cb && cb(ctx, f))
				return FB_OK;
			now = mono_ms();
		}
		if (now - t0 > max_ms) {
			fb_err_set(err, "did not finish within %llds (last error: %s)",
			           (long long)(max_ms / 1000),
			           f->last_err[0] ? f->last_err : "none");
			return FB_ETIMEOUT;
		}
		if (f->o.verbose && now - last_report >= 5000) {
			last_report = now;
			fprintf(stderr,
			        "fb-fleet: %llds: %lld enrolled, %lld crashes, %lld reverts, "
			        "requests %lld/%lld/%lld/%lld/%lld (errors %lld), last error: %s\n",
			        (long long)((now - t0) / 1000), (long long)fleet_enrolled(f),
			        (long long)f->crashes, (long long)f->boot_loop_reverts,
			        (long long)f->req_count[0], (long long)f->req_count[1],
			        (long long)f->req_count[2], (long long)f->req_count[3],
			        (long long)f->req_count[4],
			        (long long)(f->req_err[0] + f->req_err[1] + f->req_err[2] +
			                    f->req_err[3] + f->req_err[4]),
			        f->last_err[0] ? f->last_err : "none");
		}
		/* waiting agents first (they were due earlier), then the heap */
		while (f->n_free > 0 && f->fifo_n > 0) {
			int32_t i = f->fifo[f->fifo_head];
			f->fifo_head = (f->fifo_head + 1) % f->n;
			f->fifo_n--;
			f->a[i].queued = 0;
			run_agent(f, i, now);
		}
		int budget = 4 * f->n_slots; /* bounded work between network turns */
		while (f->heap_n > 0 && f->a[f->heap[0]].wake <= now && budget-- > 0) {
			if (f->n_free == 0)
				break;
			run_agent(f, heap_pop(f), now);
		}
		int running = 0;
		curl_multi_perform(f->multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(f->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			for (int k = 0; k < f->n_slots; k++)
				if (f->slots[k].e == m->easy_handle && f->slots[k].agent >= 0) {
					complete(f, &f->slots[k], m->data.result);
					break;
				}
		}
		now = mono_ms();
		int64_t wait = 50;
		if (f->n_free > 0 && f->heap_n > 0) {
			int64_t d = f->a[f->heap[0]].wake - now;
			wait = d < 0 ? 0 : d < wait ? d : wait;
		}
		if (f->n_free > 0 && f->fifo_n > 0)
			wait = 0;
		curl_multi_poll(f->multi, NULL, 0, (int)wait, NULL);
	}
}

/* ---- test phase ------------------------------------------------------------- */

void fleet_test_start(struct fleet *f)
{
	int64_t now = mono_ms();
	f->test_on = 1;
	f->test_start_ms = now;
	for (int64_t i = 0; i < f->n; i++) {
		struct fl_agent *a = &f->a[i];
		if (draw(f, i, 7) >= f->s->background_crash_rate)
			continue;
		int64_t t = now + (int64_t)(draw(f, i, 8) * f->s->background_window_s * 1000);
		a->bg_at = t;
		if (!a->busy && !a->queued && a->state != FL_DEAD)
			schedule(f, (int32_t)i, a->wake < t ? a->wake : t);
	}
}

void fleet_ring_entered(struct fleet *f, int ring)
{
	int64_t now = mono_ms();
	for (int b = 0; b < f->s->n_blips; b++) {
		const struct scn_blip *p = &f->s->blips[b];
		if (p->ring != ring)
			continue;
		int64_t from = now + (int64_t)(p->after_s * 1000),
		        to = from + (int64_t)(p->duration_s * 1000);
		for (int64_t i = 0; i < f->n; i++) {
			struct fl_agent *a = &f->a[i];
			if (a->ring != ring || draw(f, i, 200 + (uint64_t)b) >= p->fraction)
				continue;
			/* offline from 'from' to 'to': requests due in between wait */
			a->offline_from = from;
			a->offline_until = to;
			f->blip_agents[b]++;
		}
	}
}

/* ---- counts ---------------------------------------------------------------- */

int64_t fleet_enrolled(const struct fleet *f)
{
	int64_t n = 0;
	for (int64_t i = 0; i < f->n; i++)
		n += f->a[i].id != 0;
	return n;
}

int64_t fleet_dead(const struct fleet *f)
{
	int64_t n = 0;
	for (int64_t i = 0; i < f->n; i++)
		n += f->a[i].state == FL_DEAD;
	return n;
}

/* Channel of scenario content scn and its fleet content index (-1: none). */
static int scn_content(const struct fleet *f, int scn, int *ch)
{
	*ch = scn >= 0 && scn < f->s->n_contents ? f->s->contents[scn].channel : 0;
	return scn >= 0 && scn < SCN_MAX_CONTENTS ? f->scn_to_c[scn] : -1;
}

int64_t fleet_running(const struct fleet *f, int scn, int alive_only)
{
	int k, c = scn_content(f, scn, &k);
	int64_t n = 0;
	for (int64_t i = 0; c >= 0 && i < f->n; i++)
		n += f->a[i].active[k] == c && (!alive_only || f->a[i].state != FL_DEAD);
	return n;
}

int64_t fleet_live_in_mode(const struct fleet *f, enum scn_mode m)
{
	int64_t n = 0;
	for (int64_t i = 0; f->s->n_tenants && i < f->n; i++) {
		const struct fl_agent *a = &f->a[i];
		n += a->tenant < f->s->n_tenants && f->s->tenants[a->tenant].mode == m &&
		     a->state != FL_DEAD;
	}
	return n;
}

int64_t fleet_exposure(const struct fleet *f, int scn)
{
	int k, c = scn_content(f, scn, &k);
	return c >= 0 ? f->c[c].exposure : 0;
}

int64_t fleet_exposed_not_on(const struct fleet *f, int exposed_scn, int lkg_scn)
{
	int k, c = scn_content(f, exposed_scn, &k), l = scn_content(f, lkg_scn, &k);
	int64_t n = 0;
	for (int64_t i = 0; c >= 0 && i < f->n; i++) {
		const struct fl_agent *a = &f->a[i];
		n += (a->applied_mask & (1u << c)) && a->state != FL_DEAD && a->active[k] != l;
	}
	return n;
}

int64_t fleet_first_apply_ms(const struct fleet *f, int scn)
{
	int k, c = scn_content(f, scn, &k);
	return c >= 0 ? f->c[c].first_apply_ms : 0;
}

void fleet_rollout_active(struct fleet *f, int k, int active)
{
	if (k >= 0 && k < FL_NCH)
		f->ro_active[k] = active;
}

/* Per-platform counts of one rollout (see fleet_rollout_json). */
struct fl_seg {
	int64_t agents, applied, treated, crashed, faulted, holdout;
};

static json_t *seg_json(const struct fl_seg *g)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "agents", (json_int_t)g->agents, "applied",
	                 (json_int_t)g->applied, "treated", (json_int_t)g->treated, "crashed",
	                 (json_int_t)g->crashed, "content_crashed", (json_int_t)g->faulted,
	                 "holdout", (json_int_t)g->holdout);
}

json_t *fleet_rollout_json(const struct fleet *f, int k, int max_ring)
{
	const struct scenario *s = f->s;
	int kk, c = scn_content(f, s->ch[k].rollout, &kk);
	struct fl_seg plat[SCN_MAX_PLATFORMS + 1]; /* the last: agents without a platform */
	int64_t ring_n[SCN_MAX_RINGS] = {0}, ring_hold[SCN_MAX_RINGS] = {0}, hold = 0;
	memset(plat, 0, sizeof plat);
	for (int64_t i = 0; i < f->n; i++) {
		const struct fl_agent *a = &f->a[i];
		struct fl_seg *g = &plat[a->plat >= 0 ? a->plat : SCN_MAX_PLATFORMS];
		/* a delayed or paused tenant's hosts are outside every rollout by
		 * their customer's choice: neither reached nor holdout */
		int outside =
		        a->tenant < s->n_tenants && (s->tenants[a->tenant].mode == SCN_DELAYED ||
		                                     s->tenants[a->tenant].mode == SCN_PAUSED);
		int reached = a->ring <= max_ring && !outside;
		int held = reached && !(a->flags[k] & FLG_TREATED);
		g->agents++;
		g->applied += c >= 0 && (a->applied_mask & (1u << c)) != 0;
		g->treated += (a->flags[k] & FLG_TREATED) != 0;
		g->crashed += (a->flags[k] & FLG_CRASHED_ON) != 0;
		g->faulted += (a->flags[k] & FLG_FAULTED) != 0;
		g->holdout += held;
		ring_n[a->ring] += reached;
		ring_hold[a->ring] += held;
		hold += held;
	}
	json_t *rings = json_array();
	for (int r = 0; r < s->n_rings && r <= max_ring; r++)
		json_array_append_new(rings, json_pack("{s:s,s:I,s:I}", "ring", s->rings[r].name,
		                                       "agents", (json_int_t)ring_n[r], "holdout",
		                                       (json_int_t)ring_hold[r]));
	struct fl_seg all = {0};
	for (int p = 0; p <= SCN_MAX_PLATFORMS; p++) {
		all.agents += plat[p].agents;
		all.applied += plat[p].applied;
		all.treated += plat[p].treated;
		all.crashed += plat[p].crashed;
		all.faulted += plat[p].faulted;
		all.holdout += plat[p].holdout;
	}
	json_t *j = json_pack("{s:{s:I,s:o},s:o}", "holdout", "agents", (json_int_t)hold, "rings",
	                      rings, "totals", seg_json(&all));
	if (!j || s->n_platforms == 0)
		return j;
	/* by fact value: the sum over the platforms that have it */
	json_t *segs = json_object();
	for (int fct = 0; fct < SCN_N_FACTS; fct++) {
		json_t *byval = json_object();
		for (int p = 0; p < s->n_platforms; p++) {
			const char *v = s->platforms[p].fact[fct];
			if (fct == SCN_AGENT_VERSION && !v[0])
				v = FL_VERSION;
			if (json_object_get(byval, v))
				continue;
			struct fl_seg sum = {0};
			for (int q = p; q < s->n_platforms; q++) {
				const char *w = s->platforms[q].fact[fct];
				if (strcmp(w[0] ? w : FL_VERSION, v) != 0)
					continue;
				sum.agents += plat[q].agents;
				sum.applied += plat[q].applied;
				sum.treated += plat[q].treated;
				sum.crashed += plat[q].crashed;
				sum.faulted += plat[q].faulted;
				sum.holdout += plat[q].holdout;
			}
			json_object_set_new(byval, v, seg_json(&sum));
		}
		json_object_set_new(segs, scn_fact_names[fct], byval);
	}
	json_object_set_new(j, "segments", segs);
	return j;
}

json_t *fleet_tenants_json(const struct fleet *f, int k, int64_t end_ms)
{
	const struct scenario *s = f->s;
	int nt = s->n_tenants;
	int kk, under = scn_content(f, s->ch[k].rollout, &kk);
	int64_t agents[SCN_MAX_TENANTS + 1] = {0}, live[SCN_MAX_TENANTS + 1] = {0};
	int64_t by_ring[SCN_MAX_TENANTS + 1][SCN_MAX_RINGS];
	int64_t applied[SCN_MAX_TENANTS + 1][FLEET_MAX_CONTENTS];
	int64_t running[SCN_MAX_TENANTS + 1][FLEET_MAX_CONTENTS];
	if (nt == 0)
		return json_object();
	memset(by_ring, 0, sizeof by_ring);
	memset(applied, 0, sizeof applied);
	memset(running, 0, sizeof running);
	for (int64_t i = 0; i < f->n; i++) {
		const struct fl_agent *a = &f->a[i];
		int t = a->tenant;
		agents[t]++;
		live[t] += a->state != FL_DEAD;
		for (int c = 0; c < f->n_c; c++)
			applied[t][c] += (a->applied_mask & (1u << c)) != 0;
		if (a->active[k] >= 0 && a->state != FL_DEAD)
			running[t][a->active[k]]++;
		if (under >= 0 && (a->applied_mask & (1u << under)))
			by_ring[t][a->ring]++;
	}
	json_t *j = json_object();
	for (int t = 0; t <= nt; t++) {
		if (t == nt && agents[t] == 0)
			continue; /* the shares cover the fleet */
		json_t *ap = json_object(), *ru = json_object(), *br = json_object();
		for (int i = 0; i < s->n_contents; i++) {
			if (s->contents[i].channel != k)
				continue;
			int c = f->scn_to_c[i];
			json_object_set_new(ap, s->contents[i].name,
			                    json_integer(c >= 0 ? applied[t][c] : 0));
			json_object_set_new(ru, s->contents[i].name,
			                    json_integer(c >= 0 ? running[t][c] : 0));
		}
		for (int r = 0; r < s->n_rings; r++)
			json_object_set_new(br, s->rings[r].name, json_integer(by_ring[t][r]));
		int64_t first = under >= 0 ? f->c[under].tenant_first_ms[t] : 0;
		json_t *o = json_pack("{s:s?,s:o?,s:I,s:I,s:o,s:o,s:o,s:o}", "mode",
		                      t < nt ? scn_mode_names[s->tenants[t].mode] : NULL, "delay_s",
		                      t < nt && s->tenants[t].mode == SCN_DELAYED
		                              ? json_integer(s->tenants[t].delay_s)
		                              : NULL,
		                      "agents", (json_int_t)agents[t], "live", (json_int_t)live[t],
		                      "applied", ap, "running", ru, "applied_by_ring", br,
		                      "first_apply_after_end_s",
		                      first && end_ms ? json_real((double)(first - end_ms) / 1000.0)
		                                      : json_null());
		json_object_set_new(j, t < nt ? s->tenants[t].name : "default", o);
	}
	return j;
}

/* {"p50","p90","p99","max"} in ms of a histogram (the buckets' upper edges,
 * the maximum exact), or null when it is empty. New reference. */
static json_t *latency_json(const uint64_t *h, int64_t max_us)
{
	uint64_t n = 0;
	for (int b = 0; b < FL_LAT_N; b++)
		n += h[b];
	if (!n)
		return json_null();
	static const double q[] = {0.5, 0.9, 0.99};
	static const char *const name[] = {"p50", "p90", "p99"};
	json_t *j = json_object();
	for (size_t k = 0; k < sizeof q / sizeof q[0]; k++) {
		uint64_t want = (uint64_t)ceil(q[k] * (double)n), cum = 0;
		int b = 0;
		while (b < FL_LAT_N - 1 && (cum += h[b]) < want)
			b++;
		double ms = lat_upper_us(b) / 1000.0;
		if (ms > (double)max_us / 1000.0)
			ms = (double)max_us / 1000.0;
		json_object_set_new(j, name[k], json_real(ms));
	}
	json_object_set_new(j, "max", json_real((double)max_us / 1000.0));
	return j;
}

void fleet_window_start(struct fleet *f)
{
	f->win.on = 1;
	f->win.t0 = mono_ms();
	memcpy(f->win.req, f->req_count, sizeof f->win.req);
	memcpy(f->win.err, f->req_err, sizeof f->win.err);
	memcpy(f->win.lat, f->lat, sizeof f->win.lat);
	f->win.not_modified = f->not_modified;
	f->win.hb_lag_max_ms = 0;
	memset(f->win.lat_max_us, 0, sizeof f->win.lat_max_us);
}

json_t *fleet_window_json(struct fleet *f)
{
	if (!f->win.on)
		return json_null();
	double secs = (double)(mono_ms() - f->win.t0) / 1000.0;
	json_t *req = json_object(), *rps = json_object(), *errs = json_object(),
	       *lat = json_object();
	int64_t all = 0;
	for (int k = 0; k < RQ_N; k++) {
		int64_t n = f->req_count[k] - f->win.req[k];
		uint64_t h[FL_LAT_N];
		for (int b = 0; b < FL_LAT_N; b++)
			h[b] = f->lat[k][b] - f->win.lat[k][b];
		all += n;
		json_object_set_new(req, rq_names[k], json_integer(n));
		json_object_set_new(rps, rq_names[k], json_real(secs > 0 ? (double)n / secs : 0));
		json_object_set_new(errs, rq_names[k], json_integer(f->req_err[k] - f->win.err[k]));
		json_object_set_new(lat, rq_names[k], latency_json(h, f->win.lat_max_us[k]));
	}
	json_object_set_new(rps, "all", json_real(secs > 0 ? (double)all / secs : 0));
	json_t *j = json_pack("{s:f,s:o,s:o,s:o,s:I,s:o,s:f}", "seconds", secs, "requests", req,
	                      "rps", rps, "request_errors", errs, "poll_not_modified",
	                      (json_int_t)(f->not_modified - f->win.not_modified), "latency_ms",
	                      lat, "heartbeat_lag_max_s", (double)f->win.hb_lag_max_ms / 1000.0);
	f->win.on = 0;
	return j;
}

json_t *fleet_stats_json(const struct fleet *f)
{
	int64_t up = 0, down = 0, dead = 0, crashed = 0, offline = 0, now = mono_ms();
	for (int64_t i = 0; i < f->n; i++) {
		const struct fl_agent *a = &f->a[i];
		up += a->state == FL_UP;
		down += a->state == FL_DOWN;
		dead += a->state == FL_DEAD;
		crashed += a->crashed_ever;
		offline += a->offline_from <= now && a->offline_until > now;
	}
	json_t *req = json_object(), *errs = json_object();
	for (int k = 0; k < RQ_N; k++) {
		json_object_set_new(req, rq_names[k], json_integer(f->req_count[k]));
		json_object_set_new(errs, rq_names[k], json_integer(f->req_err[k]));
	}
	json_t *blips = json_array();
	for (int b = 0; b < f->s->n_blips; b++)
		json_array_append_new(blips, json_pack("{s:s,s:I}", "ring",
		                                       f->s->rings[f->s->blips[b].ring].name,
		                                       "agents", (json_int_t)f->blip_agents[b]));
	json_object_set_new(req, "poll_not_modified", json_integer(f->not_modified));
	json_object_set_new(req, "heartbeat_lag_max_s",
	                    json_real((double)f->hb_lag_max_ms / 1000.0));
	json_object_set_new(req, "heartbeats_late_by_an_interval", json_integer(f->hb_late));
	json_t *lat = json_object();
	for (int k = 0; k < RQ_N; k++)
		json_object_set_new(lat, rq_names[k], latency_json(f->lat[k], f->lat_max_us[k]));
	json_object_set_new(req, "latency_ms", lat);
	json_t *j = json_pack(
	        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:o,s:s}", "agents",
	        (json_int_t)f->n, "up", (json_int_t)up, "rebooting", (json_int_t)down, "dead",
	        (json_int_t)dead, "offline", (json_int_t)offline, "crashed_agents",
	        (json_int_t)crashed, "crashes", (json_int_t)f->crashes, "content_crashes",
	        (json_int_t)f->content_crashes, "background_crashes", (json_int_t)f->bg_crashes,
	        "boot_loop_reverts", (json_int_t)f->boot_loop_reverts, "rejected_assignments",
	        (json_int_t)f->rejected_assignments, "rejected_blobs",
	        (json_int_t)f->rejected_blobs, "requests", req, "request_errors", errs, "blips",
	        blips, "last_error", f->last_err);
	if (j && f->s->health.on) {
		/* agents in which each behaviour showed in at least one heartbeat */
		int64_t seen[SCN_N_BEHAVIOURS] = {0};
		for (int64_t i = 0; i < f->n; i++)
			for (int b = 0; b < SCN_N_BEHAVIOURS; b++)
				seen[b] += (f->a[i].health_seen >> b) & 1;
		json_t *agents = json_object();
		for (int b = 0; b < SCN_N_BEHAVIOURS; b++)
			json_object_set_new(agents, scn_behaviour_names[b], json_integer(seen[b]));
		json_object_set_new(j, "health",
		                    json_pack("{s:I,s:o}", "heartbeats", (json_int_t)f->hb_health,
		                              "agents", agents));
	}
	return j;
}
