/* Prometheus metrics in the text exposition format. */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

static const double bucket_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                   0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
#define NBUCKETS (sizeof bucket_le / sizeof bucket_le[0])
#define NSTATUS  600

struct route_metrics {
	uint64_t by_status[NSTATUS];
	uint64_t buckets[NBUCKETS + 1]; /* last = +Inf */
	uint64_t sum_us;
	uint64_t count;
};

static struct route_metrics *g_m; /* nroutes + 1 (last = unmatched) */
static size_t g_n;

static char **g_labels; /* per route "METHOD /pattern", owned */

enum fb_rc metrics_init(const char *const *labels, size_t nroutes)
{
	g_m = calloc(nroutes + 1, sizeof *g_m);
	g_labels = calloc(nroutes + 1, sizeof *g_labels);
	if (!g_m || !g_labels)
		goto oom;
	for (size_t i = 0; labels && i < nroutes; i++)
		if (labels[i] && !(g_labels[i] = strdup(labels[i])))
			goto oom;
	g_n = nroutes + 1;
	return FB_OK;
oom:
	metrics_cleanup();
	return FB_ENOMEM;
}

void metrics_cleanup(void)
{
	for (size_t i = 0; g_labels && i < g_n; i++)
		free(g_labels[i]);
	free(g_labels);
	g_labels = NULL;
	free(g_m);
	g_m = NULL;
	g_n = 0;
}

void metrics_observe_request(int route_idx, unsigned status, int64_t micros)
{
	if (!g_m)
		return;
	struct route_metrics *m = &g_m[route_idx < 0 ? g_n - 1 : (size_t)route_idx];
	if (status >= NSTATUS)
		status = 0;
	__atomic_add_fetch(&m->by_status[status], 1, __ATOMIC_RELAXED);
	double s = (double)micros / 1e6;
	size_t b = 0;
	while (b < NBUCKETS && s > bucket_le[b])
		b++;
	__atomic_add_fetch(&m->buckets[b], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&m->sum_us, (uint64_t)(micros < 0 ? 0 : micros), __ATOMIC_RELAXED);
	__atomic_add_fetch(&m->count, 1, __ATOMIC_RELAXED);
}

static const char *route_label(size_t i, char *buf, size_t n)
{
	if (i == g_n - 1 || !g_labels || !g_labels[i])
		return "unmatched";
	snprintf(buf, n, "%s", g_labels[i]);
	return buf;
}

enum fb_rc metrics_render(struct fb_buf *b)
{
	enum fb_rc rc = FB_OK;
	char lb[256];
	rc = fb_buf_addstr(
	        b, "# HELP firebreak_http_requests_total HTTP requests by route and status.\n"
	           "# TYPE firebreak_http_requests_total counter\n");
	for (size_t i = 0; !rc && i < g_n; i++) {
		const char *label = route_label(i, lb, sizeof lb);
		for (unsigned s = 0; !rc && s < NSTATUS; s++) {
			uint64_t v = __atomic_load_n(&g_m[i].by_status[s], __ATOMIC_RELAXED);
			if (v)
				rc = fb_buf_printf(b,
				                   "firebreak_http_requests_total{route=\"%s\","
				                   "status=\"%u\"} %llu\n",
				                   label, s, (unsigned long long)v);
		}
	}
	if (!rc)
		rc = fb_buf_addstr(
		        b, "# HELP firebreak_http_request_duration_seconds Request latency.\n"
		           "# TYPE firebreak_http_request_duration_seconds histogram\n");
	for (size_t i = 0; !rc && i < g_n; i++) {
		uint64_t count = __atomic_load_n(&g_m[i].count, __ATOMIC_RELAXED);
		if (!count)
			continue;
		const char *label = route_label(i, lb, sizeof lb);
		uint64_t cum = 0;
		for (size_t k = 0; !rc && k <= NBUCKETS; k++) {
			cum += __atomic_load_n(&g_m[i].buckets[k], __ATOMIC_RELAXED);
			if (k < NBUCKETS)
				rc = fb_buf_printf(b,
				                   "firebreak_http_request_duration_seconds_bucket{"
				                   "route=\"%s\",le=\"%g\"} %llu\n",
				                   label, bucket_le[k], (unsigned long long)cum);
			else
				rc = fb_buf_printf(b,
				                   "firebreak_http_request_duration_seconds_bucket{"
				                   "route=\"%s\",le=\"+Inf\"} %llu\n",
				                   label, (unsigned long long)cum);
		}
		if (!rc)
			rc = fb_buf_printf(
			        b,
			        "firebreak_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
			        "firebreak_http_request_duration_seconds_count{route=\"%s\"} "
			        "%llu\n",
			        label,
			        (double)__atomic_load_n(&g_m[i].sum_us, __ATOMIC_RELAXED) / 1e6,
			        label, (unsigned long long)count);
	}
	if (rc)
		return rc;
	struct db_pool_stats st;
	db_pool_get_stats(app.db, &st);
	rc = fb_buf_printf(
	        b,
	        "# HELP firebreak_db_pool_connections Connections in the database pool.\n"
	        "# TYPE firebreak_db_pool_connections gauge\n"
	        "firebreak_db_pool_connections{state=\"busy\"} %d\n"
	        "firebreak_db_pool_connections{state=\"idle\"} %d\n"
	        "# TYPE firebreak_db_pool_waits_total counter\n"
	        "firebreak_db_pool_waits_total %llu\n"
	        "# TYPE firebreak_db_pool_timeouts_total counter\n"
	        "firebreak_db_pool_timeouts_total %llu\n"
	        "# TYPE firebreak_db_reconnects_total counter\n"
	        "firebreak_db_reconnects_total %llu\n"
	        "# TYPE firebreak_db_errors_total counter\n"
	        "firebreak_db_errors_total %llu\n",
	        st.busy, st.size - st.busy, (unsigned long long)st.waits,
	        (unsigned long long)st.timeouts, (unsigned long long)st.reconnects,
	        (unsigned long long)st.errors);
	return rc;
}
