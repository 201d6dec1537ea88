/* fb-agent's health measurements (health.h): the agent's CPU from
 * getrusage sampled about once a second, the host's from /proc/stat, the
 * resident memory from /proc/self/statm, and the per-channel counters. */
#include "health.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

ssize_t ag_proc_read(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t got = 0;
	while (got < n - 1) {
		ssize_t r = read(fd, buf + got, n - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

/* Parse an unsigned decimal at *p (after spaces); advances *p. */
static int parse_u64(const char **p, uint64_t *out)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s < '0' || *s > '9')
		return -1;
	uint64_t v = 0;
	while (*s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
		s++;
	}
	*p = s;
	*out = v;
	return 0;
}

enum fb_rc ag_parse_proc_stat(const char *text, struct ag_cpu_times *out)
{
	memset(out, 0, sizeof *out);
	const char *p = text;
	while (p && strncmp(p, "cpu ", 4) != 0) {
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (!p)
		return FB_EINVAL;
	p += 4;
	uint64_t v[8] = {0};
	int n = 0;
	while (n < 8 && parse_u64(&p, &v[n]) == 0)
		n++;
	if (n < 4)
		return FB_EINVAL;
	uint64_t total = 0;
	for (int k = 0; k < n; k++) {
		if (total > UINT64_MAX - v[k])
			return FB_EINVAL;
		total += v[k];
	}
	out->total = total;
	out->busy = total - v[3] - v[4]; /* idle, iowait */
	return FB_OK;
}

enum fb_rc ag_parse_statm(const char *text, uint64_t page_kb, uint64_t *rss_kb)
{
	const char *p = text;
	uint64_t size = 0, resident = 0;
	*rss_kb = 0;
	if (parse_u64(&p, &size) || parse_u64(&p, &resident))
		return FB_EINVAL;
	if (page_kb && resident > UINT64_MAX / page_kb)
		return FB_EINVAL;
	*rss_kb = resident * page_kb;
	return FB_OK;
}

int ag_host_cpu_pct(const struct ag_cpu_times *a, const struct ag_cpu_times *b)
{
	if (b->total <= a->total || b->busy < a->busy)
		return -1;
	uint64_t dt = b->total - a->total, db = b->busy - a->busy;
	if (db > dt)
		db = dt;
	return (int)((db * 100 + dt / 2) / dt);
}

static int host_read(struct ag_cpu_times *t)
{
	char buf[4096]; /* the "cpu " line comes first */
	if (ag_proc_read("/proc/stat", buf, sizeof buf) < 0)
		return 0;
	return ag_parse_proc_stat(buf, t) == FB_OK;
}

static uint64_t self_cpu_us(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
	       (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

void ag_health_init(struct ag_health *h, int64_t now_ms)
{
	memset(h, 0, sizeof *h);
	h->start_ms = now_ms;
	h->last_ms = now_ms;
	h->last_cpu_us = self_cpu_us();
	h->host0_ok = host_read(&h->host0);
}

void ag_health_add_sample(struct ag_health *h, uint64_t cpu_us, uint64_t wall_us)
{
	if (wall_us == 0)
		return;
	uint64_t pct = (cpu_us * 100 + wall_us / 2) / wall_us;
	uint64_t weight = (wall_us + 500) / 1000; /* ms */
	if (weight == 0)
		weight = 1;
	size_t b = pct < AG_HEALTH_BUCKETS - 1 ? (size_t)pct : AG_HEALTH_BUCKETS - 1;
	if (b == AG_HEALTH_BUCKETS - 1 && pct > h->over_max)
		h->over_max = pct;
	h->hist[b] += weight;
	h->cpu_us += cpu_us;
	h->wall_us += wall_us;
}

void ag_health_sample(struct ag_health *h, int64_t now_ms, int force)
{
	int64_t wall = now_ms - h->last_ms;
	if (wall < AG_HEALTH_MIN_SAMPLE && !(force && h->wall_us == 0))
		return;
	uint64_t cpu = self_cpu_us();
	uint64_t used = cpu >= h->last_cpu_us ? cpu - h->last_cpu_us : 0;
	if (wall <= 0) /* --once can reach the heartbeat within the same ms */
		wall = 1;
	ag_health_add_sample(h, used, (uint64_t)wall * 1000);
	h->last_ms = now_ms;
	h->last_cpu_us = cpu;
}

uint64_t ag_health_cpu_p95(const struct ag_health *h)
{
	uint64_t total = 0;
	for (size_t b = 0; b < AG_HEALTH_BUCKETS; b++)
		total += h->hist[b];
	if (!total)
		return 0;
	uint64_t need = (total * 95 + 99) / 100, acc = 0; /* ceil(0.95 total) */
	for (size_t b = 0; b < AG_HEALTH_BUCKETS; b++) {
		acc += h->hist[b];
		if (acc >= need)
			return b == AG_HEALTH_BUCKETS - 1 ? h->over_max : b;
	}
	return h->over_max;
}

uint64_t ag_health_cpu_mean(const struct ag_health *h)
{
	if (!h->wall_us)
		return 0;
	return (h->cpu_us * 100 + h->wall_us / 2) / h->wall_us;
}

struct ag_chan_health *ag_health_channel(struct ag_health *h, uint32_t ch)
{
	for (size_t i = 0; i < h->n_ch; i++)
		if (h->ch[i].channel == ch)
			return &h->ch[i];
	if (h->n_ch >= AG_MAX_CHANNELS)
		return NULL;
	struct ag_chan_health *c = &h->ch[h->n_ch++];
	memset(c, 0, sizeof *c);
	c->channel = ch;
	return c;
}

static json_int_t cap(uint64_t v)
{
	return (json_int_t)(v > AG_HEALTH_MAX_COUNT ? AG_HEALTH_MAX_COUNT : v);
}

json_t *ag_health_json(const struct ag_health *h, int64_t now_ms, const json_t *active,
                       struct ag_cpu_times *host_now, int *host_now_ok)
{
	json_t *o = json_object(), *chs = json_object();
	if (!o || !chs)
		goto fail;
	int64_t secs = (now_ms - h->start_ms + 500) / 1000;
	if (secs < 1)
		secs = 1;
	if (secs > AG_HEALTH_MAX_INTERVAL)
		secs = AG_HEALTH_MAX_INTERVAL;
	if (json_object_set_new(o, "interval_s", json_integer(secs)))
		goto fail;
	if (h->wall_us &&
	    (json_object_set_new(o, "agent_cpu_p95", json_integer(cap(ag_health_cpu_p95(h)))) ||
	     json_object_set_new(o, "agent_cpu_mean", json_integer(cap(ag_health_cpu_mean(h))))))
		goto fail;
	memset(host_now, 0, sizeof *host_now);
	*host_now_ok = host_read(host_now);
	int pct = h->host0_ok && *host_now_ok ? ag_host_cpu_pct(&h->host0, host_now) : -1;
	if (pct >= 0 && json_object_set_new(o, "host_cpu", json_integer(pct)))
		goto fail;
	char statm[256];
	long page = sysconf(_SC_PAGESIZE);
	uint64_t rss = 0;
	if (page >= 1024 && ag_proc_read("/proc/self/statm", statm, sizeof statm) > 0 &&
	    ag_parse_statm(statm, (uint64_t)page / 1024, &rss) == FB_OK &&
	    json_object_set_new(o, "agent_rss_kb", json_integer((json_int_t)rss)))
		goto fail;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)active, key, v)
	{
		int64_t id = 0;
		if (fb_parse_i64(key, 1, UINT32_MAX, &id))
			continue;
		struct ag_chan_health zero = {0};
		const struct ag_chan_health *c = &zero;
		for (size_t i = 0; i < h->n_ch; i++)
			if (h->ch[i].channel == (uint32_t)id)
				c = &h->ch[i];
		/* errors + timeouts <= evals and blocks <= detections <= evals hold
		 * by construction; keep them when a counter hits its cap */
		json_int_t ev = cap(c->evals), er = cap(c->errors), to = cap(c->timeouts);
		json_int_t de = cap(c->detections), bl = cap(c->blocks);
		er = er > ev ? ev : er;
		to = to > ev - er ? ev - er : to;
		de = de > ev ? ev : de;
		bl = bl > de ? de : bl;
		json_t *one = json_pack("{s:I, s:I, s:I, s:I, s:I}", "evals", ev, "errors", er,
		                        "timeouts", to, "detections", de, "blocks", bl);
		if (!one || json_object_set_new(chs, key, one))
			goto fail;
	}
	if (json_object_set_new(o, "channels", chs))
		goto fail_o;
	return o;
fail:
	json_decref(chs);
fail_o:
	json_decref(o);
	return NULL;
}

void ag_health_reset(struct ag_health *h, int64_t now_ms, const struct ag_cpu_times *host_now,
                     int host_now_ok)
{
	h->start_ms = now_ms;
	memset(h->hist, 0, sizeof h->hist);
	h->over_max = 0;
	h->cpu_us = h->wall_us = 0;
	h->host0 = *host_now;
	h->host0_ok = host_now_ok;
	h->n_ch = 0;
}
