/* Health signals: the heartbeat's health object and the per-host verdict
 * (see signals.h and server/GATE.md, "Health signals"). */
#include "signals.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb.h"

static const char *const g_names[SIG_COUNT] = {"agent_cpu", "memory", "eval_errors", "detections"};
static const char *const g_labels[SIG_COUNT] = {"agent CPU", "memory", "evaluation errors",
                                                "detections"};

const char *sig_name(int s)
{
	return s >= 0 && s < SIG_COUNT ? g_names[s] : NULL;
}

const char *sig_label(int s)
{
	return s >= 0 && s < SIG_COUNT ? g_labels[s] : NULL;
}

int sig_of_name(const char *name)
{
	for (int s = 0; name && s < SIG_COUNT; s++)
		if (strcmp(name, g_names[s]) == 0)
			return s;
	return -1;
}

void sig_health_clear(struct sig_health *h)
{
	h->interval_s = h->agent_cpu_p95 = h->agent_cpu_mean = h->host_cpu = h->agent_rss_kb = -1;
	h->nch = 0;
}

/* ---- validation ------------------------------------------------------------ */

#define MAX_COUNTER 1000000000LL

static int bad(char *field, size_t fn, char *why, size_t wn, const char *f, const char *w)
{
	snprintf(field, fn, "%s", f);
	snprintf(why, wn, "%s", w);
	return 0;
}

int sig_health_check(const struct sig_health *h, char *field, size_t fn, char *why, size_t wn)
{
	static const struct {
		const char *name;
		size_t off;
		int64_t max;
	} top[] = {
	        {"interval_s", offsetof(struct sig_health, interval_s), 86400},
	        {"agent_cpu_p95", offsetof(struct sig_health, agent_cpu_p95), 100000},
	        {"agent_cpu_mean", offsetof(struct sig_health, agent_cpu_mean), 100000},
	        {"host_cpu", offsetof(struct sig_health, host_cpu), 100},
	        {"agent_rss_kb", offsetof(struct sig_health, agent_rss_kb), 1LL << 40},
	};
	char f[96], w[96];
	if (h->interval_s < 1)
		return bad(field, fn, why, wn, "health.interval_s",
		           "is required: an integer 1 .. 86400 (seconds the object covers)");
	for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
		int64_t v = *(const int64_t *)(const void *)((const char *)h + top[i].off);
		if (v > top[i].max) {
			snprintf(f, sizeof f, "health.%s", top[i].name);
			snprintf(w, sizeof w, "must be an integer 0 .. %lld",
			         (long long)top[i].max);
			return bad(field, fn, why, wn, f, w);
		}
	}
	if (h->agent_cpu_mean >= 0 && h->agent_cpu_p95 >= 0 && h->agent_cpu_mean > h->agent_cpu_p95)
		return bad(field, fn, why, wn, "health.agent_cpu_mean",
		           "cannot be above agent_cpu_p95");
	if (h->nch > SIG_MAX_CHANNELS)
		return bad(field, fn, why, wn, "health.channels", "has more than 256 channels");
	for (size_t i = 0; i < h->nch; i++) {
		const struct sig_channel *c = &h->ch[i];
		const int64_t v[] = {c->evals, c->errors, c->timeouts, c->detections, c->blocks};
		static const char *const n[] = {"evals", "errors", "timeouts", "detections",
		                                "blocks"};
		for (int k = 0; k < 5; k++)
			if (v[k] > MAX_COUNTER) {
				snprintf(f, sizeof f, "health.channels.%u.%s", c->channel, n[k]);
				return bad(field, fn, why, wn, f,
				           "must be an integer 0 .. 1000000000");
			}
		int64_t failed =
		        (c->errors > 0 ? c->errors : 0) + (c->timeouts > 0 ? c->timeouts : 0);
		if (c->evals >= 0 && failed > c->evals) {
			snprintf(f, sizeof f, "health.channels.%u.errors", c->channel);
			return bad(field, fn, why, wn, f, "errors + timeouts cannot exceed evals");
		}
		for (size_t j = 0; j < i; j++)
			if (h->ch[j].channel == c->channel) {
				snprintf(f, sizeof f, "health.channels.%u", c->channel);
				return bad(field, fn, why, wn, f, "is given twice");
			}
	}
	return 1;
}

/* An unsigned JSON integer (not a real, not negative), else 0. */
static int uint_of(const json_t *v, int64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return 0;
	*out = (int64_t)json_integer_value(v);
	return 1;
}

int sig_health_from_json(const json_t *j, struct sig_health *h, char *field, size_t fn, char *why,
                         size_t wn)
{
	static const char *const top[] = {"interval_s", "agent_cpu_p95", "agent_cpu_mean",
	                                  "host_cpu", "agent_rss_kb"};
	static const char *const cn[] = {"evals", "errors", "timeouts", "detections", "blocks"};
	char f[96];
	sig_health_clear(h);
	if (!json_is_object(j))
		return bad(field, fn, why, wn, "health", "must be an object");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)j, k, v)
	{
		int64_t *dst = NULL;
		int64_t *slots[] = {&h->interval_s, &h->agent_cpu_p95, &h->agent_cpu_mean,
		                    &h->host_cpu, &h->agent_rss_kb};
		for (int i = 0; i < 5; i++)
			if (strcmp(k, top[i]) == 0)
				dst = slots[i];
		snprintf(f, sizeof f, "health.%s", k);
		if (dst) {
			if (!uint_of(v, dst))
				return bad(field, fn, why, wn, f, "must be an unsigned integer");
			continue;
		}
		if (strcmp(k, "channels") != 0)
			return bad(field, fn, why, wn, f, "is not a health field");
		if (!json_is_object(v) || json_object_size(v) > SIG_MAX_CHANNELS)
			return bad(field, fn, why, wn, f,
			           "must be an object of at most 256 channel -> counters");
		const char *ck;
		json_t *cv;
		json_object_foreach(v, ck, cv)
		{
			int64_t ch;
			snprintf(f, sizeof f, "health.channels.%.40s", ck);
			if (fb_parse_i64(ck, 1, 0xffffffffLL, &ch) || !json_is_object(cv))
				return bad(
				        field, fn, why, wn, f,
				        "must be a channel id (1 .. 4294967295) with an object of "
				        "counters");
			struct sig_channel *c = &h->ch[h->nch++];
			c->channel = (uint32_t)ch;
			c->evals = c->errors = c->timeouts = c->detections = c->blocks = -1;
			int64_t *cs[] = {&c->evals, &c->errors, &c->timeouts, &c->detections,
			                 &c->blocks};
			const char *n;
			json_t *x;
			json_object_foreach(cv, n, x)
			{
				int64_t *d = NULL;
				for (int i = 0; i < 5; i++)
					if (strcmp(n, cn[i]) == 0)
						d = cs[i];
				snprintf(f, sizeof f, "health.channels.%u.%.20s", c->channel, n);
				if (!d)
					return bad(field, fn, why, wn, f,
					           "is not a channel counter");
				if (!uint_of(x, d))
					return bad(field, fn, why, wn, f,
					           "must be an unsigned integer");
			}
		}
	}
	return sig_health_check(h, field, fn, why, wn);
}

/* ---- the per-host verdict ------------------------------------------------------ */

void sig_thresholds_default(struct sig_thresholds *t)
{
	memset(t, 0, sizeof *t);
	/* agent CPU p95: twice its normal and 30 points above it, 5 beats
	 * (an on-demand scan of a few minutes is not a storm) */
	t->factor[SIG_AGENT_CPU] = 2.0;
	t->floor[SIG_AGENT_CPU] = 30.0;
	t->k[SIG_AGENT_CPU] = 5;
	/* memory: half again its normal and 100 MiB above it, 3 beats */
	t->factor[SIG_MEMORY] = 1.5;
	t->floor[SIG_MEMORY] = 102400.0;
	t->k[SIG_MEMORY] = 3;
	/* evaluation errors per minute: any where there were none, more than
	 * Poisson scatter where there were some, 2 beats */
	t->factor[SIG_EVAL_ERRORS] = 4.0;
	t->floor[SIG_EVAL_ERRORS] = 0.5;
	t->k[SIG_EVAL_ERRORS] = 2;
	t->scatter[SIG_EVAL_ERRORS] = 3.0;
	/* detections + blocks per minute: five times normal and 20 above (and
	 * Poisson scatter), 3 beats (a user unpacking a sample archive makes a
	 * burst of a minute or two) */
	t->factor[SIG_DETECTIONS] = 5.0;
	t->floor[SIG_DETECTIONS] = 20.0;
	t->k[SIG_DETECTIONS] = 3;
	t->scatter[SIG_DETECTIONS] = 3.0;
	/* the baseline's pace: a moving mean of ~20 samples; memory ~500 (8 h
	 * at one heartbeat a minute) */
	t->pace[SIG_AGENT_CPU] = t->pace[SIG_EVAL_ERRORS] = t->pace[SIG_DETECTIONS] = 1.0 / 20;
	t->pace[SIG_MEMORY] = 1.0 / 500;
	/* a level needs a few samples; a rate of rare counts needs more */
	t->warmup[SIG_AGENT_CPU] = t->warmup[SIG_MEMORY] = 5;
	t->warmup[SIG_EVAL_ERRORS] = t->warmup[SIG_DETECTIONS] = 20;
}

/* One host's state, two cache lines (aligned so): agent_id, the channels
 * and the baselines in the first, what judge() also reads in the second.
 * Slot s of each array is one signal of the host or of one of its channels
 * (SLOT_CPU, SLOT_MEM, SLOT_ERR + k, SLOT_DET + k for channel ch[k]). */
#define CH_SLOTS 4 /* channels judged per host; more are judged on a host's first four */
enum { SLOT_CPU, SLOT_MEM, SLOT_ERR, SLOT_DET = SLOT_ERR + CH_SLOTS, NSLOTS = SLOT_DET + CH_SLOTS };
struct host {
	_Alignas(128) int64_t agent_id; /* 0: empty */
	uint32_t ch[CH_SLOTS];
	float base[NSLOTS];     /* the host's normal (running mean, then moving) */
	float before[NSLOTS];   /* the normal when the current streak began */
	uint8_t n[NSLOTS];      /* normal samples seen, up to 255 */
	uint8_t streak[NSLOTS]; /* consecutive heartbeats above the threshold */
	uint16_t fired;         /* bit s: the verdict was given for slot s's streak */
};
_Static_assert(sizeof(struct host) == 128, "a host's signal state is two cache lines");
_Static_assert(NSLOTS <= 16, "fired has a bit per slot");

#define SHARDS 64
struct shard {
	pthread_mutex_t mu;
	struct host *tab;
	size_t cap, n; /* cap a power of two, or 0 */
};

static struct shard g_sh[SHARDS];
static struct sig_thresholds g_t;
static int g_ready;

void sig_init(const struct sig_thresholds *t)
{
	g_t = *t;
	for (int i = 0; i < SHARDS; i++) {
		pthread_mutex_init(&g_sh[i].mu, NULL);
		g_sh[i].tab = NULL;
		g_sh[i].cap = g_sh[i].n = 0;
	}
	g_ready = 1;
}

void sig_shutdown(void)
{
	if (!g_ready)
		return;
	for (int i = 0; i < SHARDS; i++) {
		free(g_sh[i].tab);
		g_sh[i].tab = NULL;
		g_sh[i].cap = g_sh[i].n = 0;
		pthread_mutex_destroy(&g_sh[i].mu);
	}
	g_ready = 0;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static struct host *find(struct shard *s, int64_t id, uint64_t hv, int create)
{
	if (s->cap) {
		for (size_t i = (size_t)(hv >> 6) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
			if (s->tab[i].agent_id == id)
				return &s->tab[i];
			if (s->tab[i].agent_id == 0)
				break;
		}
	}
	if (!create)
		return NULL;
	if ((s->n + 1) * 4 > s->cap * 3) { /* grow at 3/4 */
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct host *t = aligned_alloc(_Alignof(struct host), cap * sizeof *t);
		if (!t)
			return NULL;
		memset(t, 0, cap * sizeof *t);
		for (size_t j = 0; j < s->cap; j++) {
			if (!s->tab[j].agent_id)
				continue;
			size_t i = (size_t)(mix((uint64_t)s->tab[j].agent_id) >> 6) & (cap - 1);
			while (t[i].agent_id)
				i = (i + 1) & (cap - 1);
			t[i] = s->tab[j];
		}
		free(s->tab);
		/* atomic for sig_prefetch, which reads them without the lock */
		__atomic_store_n(&s->tab, t, __ATOMIC_RELAXED);
		__atomic_store_n(&s->cap, cap, __ATOMIC_RELAXED);
	}
	size_t i = (size_t)(hv >> 6) & (s->cap - 1);
	while (s->tab[i].agent_id)
		i = (i + 1) & (s->cap - 1);
	memset(&s->tab[i], 0, sizeof s->tab[i]);
	s->tab[i].agent_id = id;
	s->n++;
	return &s->tab[i];
}

void sig_prefetch(int64_t agent_id)
{
	if (!g_ready || agent_id <= 0)
		return;
	uint64_t hv = mix((uint64_t)agent_id);
	struct shard *s = &g_sh[hv & (SHARDS - 1)];
	/* Read without the lock: a table being replaced gives a stale or
	 * out-of-range address, which a prefetch ignores (it never faults),
	 * so the address is made as an integer and nothing is dereferenced. */
	uintptr_t tab = (uintptr_t)__atomic_load_n(&s->tab, __ATOMIC_RELAXED);
	size_t cap = __atomic_load_n(&s->cap, __ATOMIC_RELAXED);
	if (!tab || !cap)
		return;
	uintptr_t at = tab + ((size_t)(hv >> 6) & (cap - 1)) * sizeof(struct host);
	__builtin_prefetch((const void *)at, 1);
	__builtin_prefetch((const void *)(at + 64), 1);
}

/* One sample of signal sig in slot k of host h: 1 when it just made a
 * verdict. */
static int judge(struct host *h, int k, int sig, double v, double *baseline)
{
	double b = h->base[k];
	if (h->n[k] < g_t.warmup[sig]) { /* learning what is normal for this host */
		h->base[k] = (float)((b * h->n[k] + v) / (h->n[k] + 1));
		h->n[k]++;
		return 0;
	}
	double thr = fmax(g_t.factor[sig] * b, b + g_t.floor[sig] + g_t.scatter[sig] * sqrt(b));
	/* The baseline moves towards each sample, capped at the threshold
	 * (so that it estimates a noisy host's level without bias, while a
	 * storm moves it by at most a step per heartbeat and makes its verdict
	 * first), at the signal's pace: memory slowly, so that a leak cannot
	 * drag it along. */
	h->base[k] = (float)(b + (fmin(v, thr) - b) * g_t.pace[sig]);
	if (h->n[k] < 255)
		h->n[k]++;
	uint16_t bit = (uint16_t)(1u << k);
	if (v <= thr) {
		h->streak[k] = 0;
		h->fired &= (uint16_t)~bit;
		return 0;
	}
	if (h->streak[k] == 0)
		h->before[k] = (float)b;
	if (h->streak[k] < 255)
		h->streak[k]++;
	if (h->streak[k] >= g_t.k[sig] && !(h->fired & bit)) {
		h->fired |= bit;
		*baseline = h->before[k];
		return 1;
	}
	return 0;
}

static int channel_slot(struct host *h, uint32_t ch)
{
	for (int i = 0; i < CH_SLOTS; i++)
		if (h->ch[i] == ch)
			return i;
	for (int i = 0; i < CH_SLOTS; i++)
		if (h->ch[i] == 0) {
			h->ch[i] = ch;
			return i;
		}
	return -1;
}

size_t sig_observe(int64_t agent_id, const struct sig_health *h, struct sig_verdict *out,
                   size_t max)
{
	if (!g_ready || agent_id <= 0 || h->interval_s < 1)
		return 0;
	uint64_t hv = mix((uint64_t)agent_id);
	struct shard *s = &g_sh[hv & (SHARDS - 1)];
	size_t n = 0;
	double per_min = 60.0 / (double)h->interval_s, base;
	pthread_mutex_lock(&s->mu);
	struct host *st = find(s, agent_id, hv, 1);
	if (st) {
		if (h->agent_cpu_p95 >= 0 &&
		    judge(st, SLOT_CPU, SIG_AGENT_CPU, (double)h->agent_cpu_p95, &base) && n < max)
			out[n++] = (struct sig_verdict){SIG_AGENT_CPU, 0, (double)h->agent_cpu_p95,
			                                base};
		if (h->agent_rss_kb >= 0 &&
		    judge(st, SLOT_MEM, SIG_MEMORY, (double)h->agent_rss_kb, &base) && n < max)
			out[n++] =
			        (struct sig_verdict){SIG_MEMORY, 0, (double)h->agent_rss_kb, base};
		for (size_t i = 0; i < h->nch; i++) {
			const struct sig_channel *c = &h->ch[i];
			int k = channel_slot(st, c->channel);
			if (k < 0)
				continue;
			if (c->errors >= 0 || c->timeouts >= 0) {
				double v = per_min * (double)((c->errors > 0 ? c->errors : 0) +
				                              (c->timeouts > 0 ? c->timeouts : 0));
				if (judge(st, SLOT_ERR + k, SIG_EVAL_ERRORS, v, &base) && n < max)
					out[n++] = (struct sig_verdict){SIG_EVAL_ERRORS, c->channel,
					                                v, base};
			}
			if (c->detections >= 0 || c->blocks >= 0) {
				double v =
				        per_min * (double)((c->detections > 0 ? c->detections : 0) +
				                           (c->blocks > 0 ? c->blocks : 0));
				if (judge(st, SLOT_DET + k, SIG_DETECTIONS, v, &base) && n < max)
					out[n++] = (struct sig_verdict){SIG_DETECTIONS, c->channel,
					                                v, base};
			}
		}
	}
	pthread_mutex_unlock(&s->mu);
	return n;
}

void sig_stats(size_t *hosts, size_t *bytes)
{
	size_t h = 0, b = 0;
	for (int i = 0; g_ready && i < SHARDS; i++) {
		pthread_mutex_lock(&g_sh[i].mu);
		h += g_sh[i].n;
		b += g_sh[i].cap * sizeof(struct host);
		pthread_mutex_unlock(&g_sh[i].mu);
	}
	*hosts = h;
	*bytes = b;
}
