/* Unit tests of fb-agent's health measurements: /proc/stat and statm
 * parsing, host CPU from two readings, the CPU sampler's percentile and mean
 * (time-weighted, overflow, real getrusage samples), the heartbeat's health
 * object (fields, ranges, caps, reset). */
#include "../../clients/agent/health.h" /* the agent has no -I of its own */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define CH 291

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ---- /proc parsing ---------------------------------------------------------- */

static void test_parse_proc_stat(void **state)
{
	struct ag_cpu_times t;
	/* user nice system idle iowait irq softirq steal guest guest_nice */
	assert_int_equal(ag_parse_proc_stat("cpu  100 5 50 800 20 3 2 20 7 0\n"
	                                    "cpu0 50 2 25 400 10 1 1 10 3 0\nintr 1 2\n",
	                                    &t),
	                 FB_OK);
	assert_int_equal(t.total, 1000); /* guest is already in user */
	assert_int_equal(t.busy, 180);   /* total - idle - iowait */
	/* an old kernel's four columns */
	assert_int_equal(ag_parse_proc_stat("cpu 1 2 3 4\n", &t), FB_OK);
	assert_int_equal(t.total, 10);
	assert_int_equal(t.busy, 6);
	/* the line need not be first */
	assert_int_equal(ag_parse_proc_stat("x 1\ncpu 1 1 1 1 1\n", &t), FB_OK);
	assert_int_equal(t.total, 5);
	assert_int_equal(t.busy, 3);
	assert_int_equal(ag_parse_proc_stat("cpu0 1 2 3 4\n", &t), FB_EINVAL);
	assert_int_equal(ag_parse_proc_stat("cpu 1 2 3\n", &t), FB_EINVAL);
	assert_int_equal(ag_parse_proc_stat("cpu a b c d\n", &t), FB_EINVAL);
	assert_int_equal(ag_parse_proc_stat("", &t), FB_EINVAL);
	assert_int_equal(ag_parse_proc_stat("cpu 99999999999999999999 1 1 1\n", &t), FB_EINVAL);
	/* this host's */
	char buf[4096];
	assert_true(ag_proc_read("/proc/stat", buf, sizeof buf) > 0);
	assert_int_equal(ag_parse_proc_stat(buf, &t), FB_OK);
	assert_true(t.total > 0 && t.busy <= t.total);
}

static void test_host_cpu_pct(void **state)
{
	struct ag_cpu_times a = {100, 1000}, b = {150, 1100};
	assert_int_equal(ag_host_cpu_pct(&a, &b), 50);
	b = (struct ag_cpu_times){100, 1100};
	assert_int_equal(ag_host_cpu_pct(&a, &b), 0);
	b = (struct ag_cpu_times){200, 1100};
	assert_int_equal(ag_host_cpu_pct(&a, &b), 100);
	b = (struct ag_cpu_times){101, 1003}; /* 1/3 rounds to 33 */
	assert_int_equal(ag_host_cpu_pct(&a, &b), 33);
	b = (struct ag_cpu_times){102, 1003}; /* 2/3 rounds to 67 */
	assert_int_equal(ag_host_cpu_pct(&a, &b), 67);
	/* no ticks in between, or counters that went back: no figure */
	assert_int_equal(ag_host_cpu_pct(&a, &a), -1);
	b = (struct ag_cpu_times){50, 1100};
	assert_int_equal(ag_host_cpu_pct(&a, &b), -1);
	b = (struct ag_cpu_times){100, 900};
	assert_int_equal(ag_host_cpu_pct(&a, &b), -1);
	/* busy grew more than the total (inconsistent reads): at most 100 */
	b = (struct ag_cpu_times){400, 1100};
	assert_int_equal(ag_host_cpu_pct(&a, &b), 100);
}

static void test_parse_statm(void **state)
{
	uint64_t kb = 1;
	assert_int_equal(ag_parse_statm("12345 678 90 1 0 200 0\n", 4, &kb), FB_OK);
	assert_int_equal(kb, 678 * 4);
	assert_int_equal(ag_parse_statm("12345\n", 4, &kb), FB_EINVAL);
	assert_int_equal(kb, 0);
	assert_int_equal(ag_parse_statm("x y\n", 4, &kb), FB_EINVAL);
	char buf[256];
	assert_true(ag_proc_read("/proc/self/statm", buf, sizeof buf) > 0);
	assert_int_equal(ag_parse_statm(buf, (uint64_t)sysconf(_SC_PAGESIZE) / 1024, &kb), FB_OK);
	assert_true(kb > 0);
	/* a file that is not there */
	assert_int_equal(ag_proc_read("/proc/no-such-file", buf, sizeof buf), -1);
}

/* ---- the CPU sampler -------------------------------------------------------- */

static void test_percentile_and_mean(void **state)
{
	static struct ag_health h;
	memset(&h, 0, sizeof h);
	assert_int_equal(ag_health_cpu_p95(&h), 0);
	assert_int_equal(ag_health_cpu_mean(&h), 0);
	/* 100 one-second samples at 0 .. 99 % */
	for (uint64_t v = 0; v < 100; v++)
		ag_health_add_sample(&h, v * 10000, 1000000);
	assert_int_equal(ag_health_cpu_p95(&h), 94); /* 95 % of the time at or below */
	assert_int_equal(ag_health_cpu_mean(&h), 50); /* 49.5 rounds up */

	/* weighted by length: one 10 s sample at 100 % and 90 s at 0 % */
	memset(&h, 0, sizeof h);
	ag_health_add_sample(&h, 10000000, 10000000);
	for (int i = 0; i < 90; i++)
		ag_health_add_sample(&h, 0, 1000000);
	assert_int_equal(ag_health_cpu_p95(&h), 100);
	assert_int_equal(ag_health_cpu_mean(&h), 10);
	/* ... and with 4 s at 100 % the 95th percentile is idle */
	memset(&h, 0, sizeof h);
	ag_health_add_sample(&h, 4000000, 4000000);
	for (int i = 0; i < 96; i++)
		ag_health_add_sample(&h, 0, 1000000);
	assert_int_equal(ag_health_cpu_p95(&h), 0);
	assert_int_equal(ag_health_cpu_mean(&h), 4);

	/* several CPUs' worth (threads): beyond the histogram, the largest seen */
	memset(&h, 0, sizeof h);
	for (int i = 0; i < 10; i++)
		ag_health_add_sample(&h, 25000000, 1000000); /* 2500 % */
	ag_health_add_sample(&h, 12000000, 1000000);         /* 1200 % */
	assert_int_equal(ag_health_cpu_p95(&h), 2500);
	assert_int_equal(ag_health_cpu_mean(&h), (10 * 2500 + 1200 + 5) / 11);

	/* a zero-length sample is ignored; a sub-millisecond one still counts */
	memset(&h, 0, sizeof h);
	ag_health_add_sample(&h, 5, 0);
	assert_int_equal(h.wall_us, 0);
	ag_health_add_sample(&h, 100, 200);
	assert_int_equal(ag_health_cpu_p95(&h), 50);
}

static uint64_t cpu_us(void)
{
	struct rusage ru;
	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
	       (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

/* The real sampler: an idle second reads low, a busy one high. */
static void test_sampler_real(void **state)
{
	static struct ag_health h;
	int64_t t0 = fb_mono_ms();
	ag_health_init(&h, t0);
	assert_int_equal(h.start_ms, t0);
	/* too soon: no sample */
	ag_health_sample(&h, t0 + 10, 0);
	assert_int_equal(h.wall_us, 0);
	sleep_ms(400);
	ag_health_sample(&h, fb_mono_ms(), 0);
	assert_true(h.wall_us >= 350000);
	uint64_t idle_mean = ag_health_cpu_mean(&h);
	assert_true(idle_mean <= 25); /* sleeping (sanitizer builds are slower) */
	/* burn 300 ms of CPU time */
	uint64_t c0 = cpu_us();
	volatile uint64_t x = 0;
	while (cpu_us() - c0 < 300000)
		for (int i = 0; i < 100000; i++)
			x += (uint64_t)i;
	int64_t t1 = fb_mono_ms();
	ag_health_sample(&h, t1, 0);
	assert_true(ag_health_cpu_p95(&h) >= 20); /* shared machine: wall may exceed CPU */
	assert_true(ag_health_cpu_p95(&h) <= 100 * (uint64_t)sysconf(_SC_NPROCESSORS_ONLN) + 5);
	assert_true(ag_health_cpu_mean(&h) > idle_mean);
	/* force takes a short sample only when the interval has none */
	uint64_t w = h.wall_us;
	ag_health_sample(&h, t1 + 5, 1);
	assert_int_equal(h.wall_us, w);
	struct ag_cpu_times now = {0};
	ag_health_reset(&h, t1 + 5, &now, 0);
	assert_int_equal(h.wall_us, 0);
	ag_health_sample(&h, t1 + 6, 1);
	assert_true(h.wall_us > 0);
}

/* ---- the health object ------------------------------------------------------ */

static json_int_t get(const json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v))
		fail_msg("field %s is not an integer", k);
	assert_true(json_integer_value(v) >= 0);
	return json_integer_value(v);
}

static void test_health_json(void **state)
{
	static struct ag_health h;
	const char *sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	int64_t t0 = fb_mono_ms();
	ag_health_init(&h, t0);
	sleep_ms(150); /* let /proc/stat advance */
	struct ag_chan_health *c = ag_health_channel(&h, CH);
	assert_non_null(c);
	assert_ptr_equal(ag_health_channel(&h, CH), c);
	c->evals = 10, c->errors = 1, c->timeouts = 2, c->detections = 3, c->blocks = 1;
	/* counted for a channel no longer active: not reported */
	ag_health_channel(&h, 5)->evals = 4;
	json_t *active = json_pack("{s:s, s:s}", "291", sha, "292", sha);
	struct ag_cpu_times host;
	int host_ok = 0;
	int64_t now = fb_mono_ms();
	ag_health_sample(&h, now, 1);
	json_t *o = ag_health_json(&h, now, active, &host, &host_ok);
	assert_non_null(o);
	assert_int_equal(get(o, "interval_s"), 1); /* at least one second */
	assert_true(get(o, "agent_cpu_p95") <= 100000);
	assert_true(get(o, "agent_cpu_mean") <= get(o, "agent_cpu_p95") + 100);
	assert_true(host_ok);
	assert_true(get(o, "host_cpu") <= 100);
	assert_true(get(o, "agent_rss_kb") > 0);
	json_t *chs = json_object_get(o, "channels");
	assert_int_equal(json_object_size(chs), 2);
	json_t *a = json_object_get(chs, "291"), *b = json_object_get(chs, "292");
	assert_int_equal(get(a, "evals"), 10);
	assert_int_equal(get(a, "errors"), 1);
	assert_int_equal(get(a, "timeouts"), 2);
	assert_int_equal(get(a, "detections"), 3);
	assert_int_equal(get(a, "blocks"), 1);
	assert_int_equal(json_object_size(b), 5); /* active, nothing evaluated: zeros */
	assert_int_equal(get(b, "evals"), 0);
	assert_null(json_object_get(chs, "5"));
	/* nothing but the protocol's fields */
	const char *known[] = {"interval_s", "agent_cpu_p95", "agent_cpu_mean", "host_cpu",
	                       "agent_rss_kb", "channels"};
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v)
	{
		int ok = 0;
		for (size_t i = 0; i < 6; i++)
			ok |= strcmp(key, known[i]) == 0;
		if (!ok)
			fail_msg("unexpected field %s", key);
	}
	json_decref(o);

	/* caps: interval at 86400; counters at 10^9 keeping errors + timeouts <=
	 * evals and blocks <= detections */
	c->evals = 3000000000ull, c->errors = 2000000000ull, c->timeouts = 2000000000ull;
	c->detections = 5, c->blocks = 5;
	o = ag_health_json(&h, t0 + 200000000, active, &host, &host_ok);
	assert_int_equal(get(o, "interval_s"), 86400);
	a = json_object_get(json_object_get(o, "channels"), "291");
	assert_int_equal(get(a, "evals"), 1000000000);
	assert_int_equal(get(a, "errors"), 1000000000);
	assert_int_equal(get(a, "timeouts"), 0);
	assert_int_equal(get(a, "blocks"), 5);
	json_decref(o);

	/* after the reset: a new interval, counters and samples gone, the
	 * host reading taken as the new reference */
	ag_health_reset(&h, now, &host, host_ok);
	assert_int_equal(h.n_ch, 0);
	assert_int_equal(h.start_ms, now);
	o = ag_health_json(&h, now + 2600, active, &host, &host_ok);
	assert_int_equal(get(o, "interval_s"), 3);
	assert_null(json_object_get(o, "agent_cpu_p95")); /* no sample yet */
	assert_int_equal(get(json_object_get(json_object_get(o, "channels"), "291"), "evals"), 0);
	json_decref(o);
	/* no active channel: an empty channels object */
	json_t *none = json_object();
	o = ag_health_json(&h, now, none, &host, &host_ok);
	assert_int_equal(json_object_size(json_object_get(o, "channels")), 0);
	json_decref(o);
	json_decref(none);
	json_decref(active);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_proc_stat),
	        cmocka_unit_test(test_host_cpu_pct),
	        cmocka_unit_test(test_parse_statm),
	        cmocka_unit_test(test_percentile_and_mean),
	        cmocka_unit_test(test_sampler_real),
	        cmocka_unit_test(test_health_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
