/* fb-bench-hbhealth: the CPU cost of a heartbeat's health object on the
 * server's fast path, without a server: hbbody_parse of the bodies bench/
 * agents.lua sends (with and without health), sig_health_check and
 * sig_observe over many agents, in nanoseconds per heartbeat.
 *   fb-bench-hbhealth [AGENTS [ROUNDS]]   (defaults 100000 and 3) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fb.h"
#include "hbbody.h"
#include "signals.h"

#define VARIANTS 210 /* as bench/agents.lua */
#define NCH      5   /* channels 291 .. 295, as bench/run.sh */
#define REPEATS  9   /* the best of: other load on the machine only slows */

static char *g_plain[VARIANTS], *g_health[VARIANTS];
static size_t g_plain_n[VARIANTS], g_health_n[VARIANTS];

/* This thread's CPU time: time the machine gave to others is not counted. */
static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* The bodies of bench/agents.lua: one agent's heartbeat, and the same with
 * health variant v. Caller frees. */
static char *body(int v, int health, size_t *n)
{
	static const char sha[] =
	        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	char buf[4096];
	int k = snprintf(buf, sizeof buf,
	                 "{\"agent_id\":4242,\"boot_id\":\"bench-4242\",\"uptime_s\":%d,"
	                 "\"agent_version\":\"1.0.0\",\"active\":{",
	                 3600 + v);
	for (int c = 0; c < NCH; c++)
		k += snprintf(buf + k, sizeof buf - (size_t)k, "%s\"%d\":\"%s\"", c ? "," : "",
		              291 + c, sha);
	k += snprintf(buf + k, sizeof buf - (size_t)k,
	              "},\"capabilities\":[{\"id\":1,\"version\":1},{\"id\":2,\"version\":3}]");
	if (health) {
		k += snprintf(buf + k, sizeof buf - (size_t)k,
		              ",\"health\":{\"interval_s\":60,\"agent_cpu_p95\":%d,"
		              "\"agent_cpu_mean\":%d,\"host_cpu\":%d,\"agent_rss_kb\":%d,"
		              "\"channels\":{",
		              3 + v % 7, 1 + v % 3, 20 + v % 30, 50000 + v % 1000 * 7);
		for (int c = 0; c < NCH; c++)
			k += snprintf(buf + k, sizeof buf - (size_t)k,
			              "%s\"%d\":{\"evals\":%d,\"errors\":0,\"timeouts\":0,"
			              "\"detections\":%d,\"blocks\":0}",
			              c ? "," : "", 291 + c, 1200 + v % 50, v % 4);
		k += snprintf(buf + k, sizeof buf - (size_t)k, "}}");
	}
	k += snprintf(buf + k, sizeof buf - (size_t)k, "}");
	*n = (size_t)k;
	return strdup(buf);
}

static struct hbbody g_p;
static volatile int64_t g_sink;

/* ns per heartbeat of n parses of the plain or health bodies. */
static double run_parse(int health, long n)
{
	char **b = health ? g_health : g_plain;
	size_t *bn = health ? g_health_n : g_plain_n;
	double t = now_ns();
	for (long i = 0; i < n; i++) {
		if (!hbbody_parse(b[i % VARIANTS], bn[i % VARIANTS], &g_p)) {
			fprintf(stderr, "fb-bench-hbhealth: body not recognised\n");
			exit(1);
		}
		g_sink += g_p.uptime_s;
	}
	return (now_ns() - t) / (double)n;
}

/* ns per heartbeat of sig_health_check over the parsed health variants. */
static double run_check(struct sig_health *hs, long n)
{
	char f[96], w[96];
	double t = now_ns();
	for (long i = 0; i < n; i++)
		if (!sig_health_check(&hs[i % VARIANTS], f, sizeof f, w, sizeof w)) {
			fprintf(stderr, "fb-bench-hbhealth: %s %s\n", f, w);
			exit(1);
		}
	return (now_ns() - t) / (double)n;
}

/* ns per heartbeat of sig_observe, the agents in turn (as wrk sends them:
 * consecutive heartbeats are from different agents). */
static double run_observe(struct sig_health *hs, long agents, long n, long *seq)
{
	struct sig_verdict v[16];
	double t = now_ns();
	for (long i = 0; i < n; i++, (*seq)++)
		g_sink += (int64_t)sig_observe(*seq % agents + 1, &hs[*seq % VARIANTS], v, 16);
	return (now_ns() - t) / (double)n;
}

/* The same, each agent's state prefetched one heartbeat before its
 * sig_observe: as firebreakd does when it has parsed a body (the rest of the
 * handler runs in between), here with the previous agent's observe. */
static double run_observe_prefetched(struct sig_health *hs, long agents, long n, long *seq)
{
	struct sig_verdict v[16];
	double t = now_ns();
	sig_prefetch(*seq % agents + 1);
	for (long i = 0; i < n; i++, (*seq)++) {
		sig_prefetch((*seq + 1) % agents + 1);
		g_sink += (int64_t)sig_observe(*seq % agents + 1, &hs[*seq % VARIANTS], v, 16);
	}
	return (now_ns() - t) / (double)n;
}

static double best(double a, double b)
{
	return a < b ? a : b;
}

int main(int argc, char **argv)
{
	int64_t agents = 100000, rounds = 3;
	if ((argc > 1 && fb_parse_i64(argv[1], 1, 100000000, &agents)) ||
	    (argc > 2 && fb_parse_i64(argv[2], 1, 1000, &rounds))) {
		fprintf(stderr, "usage: fb-bench-hbhealth [AGENTS [ROUNDS]]\n");
		return 2;
	}
	static struct sig_health hs[VARIANTS];
	for (int v = 0; v < VARIANTS; v++) {
		g_plain[v] = body(v, 0, &g_plain_n[v]);
		g_health[v] = body(v, 1, &g_health_n[v]);
		if (!g_plain[v] || !g_health[v] || !hbbody_parse(g_health[v], g_health_n[v], &g_p))
			return 1;
		hs[v] = g_p.health;
	}
	struct sig_thresholds th;
	sig_thresholds_default(&th);
	sig_init(&th);
	long seq = 0;
	run_observe(hs, (long)agents, (long)agents, &seq); /* every agent has state */
	long n = 1000000;
	double plain = 1e18, health = 1e18, check = 1e18, observe = 1e18, prefetched = 1e18;
	for (int r = 0; r < REPEATS; r++) {
		plain = best(plain, run_parse(0, n));
		health = best(health, run_parse(1, n));
		check = best(check, run_check(hs, n));
		long m = (long)(agents * rounds);
		observe = best(observe, run_observe(hs, (long)agents, m, &seq));
		prefetched = best(prefetched, run_observe_prefetched(hs, (long)agents, m, &seq));
	}
	size_t hosts, bytes;
	sig_stats(&hosts, &bytes);
	printf("bodies: %zu bytes without health, %zu with (%d channels)\n", g_plain_n[0],
	       g_health_n[0], NCH);
	printf("parse without health     %7.1f ns\n", plain);
	printf("parse with health        %7.1f ns (+%.1f)\n", health, health - plain);
	printf("sig_health_check         %7.1f ns\n", check);
	printf("sig_observe (%" PRId64 " agents) %7.1f ns\n", agents, observe);
	printf("sig_observe, prefetched  %7.1f ns\n", prefetched);
	printf("health part              %7.1f ns per heartbeat (%.1f prefetched)\n",
	       health - plain + check + observe, health - plain + check + prefetched);
	printf("signal state: %zu hosts, %zu bytes (%.0f per host)\n", hosts, bytes,
	       hosts ? (double)bytes / (double)hosts : 0.0);
	sig_shutdown();
	for (int v = 0; v < VARIANTS; v++) {
		free(g_plain[v]);
		free(g_health[v]);
	}
	return (int)(g_sink & 0);
}
