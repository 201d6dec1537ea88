/* Unit tests of the health signals (server/signals.c): the health object's
 * validation names the bad field; the per-host verdict learns a baseline,
 * ignores noise, fires once per storm after k beats, never learns a storm
 * as normal, and judges channel signals per channel. */
#include "signals.h"

#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static struct sig_health beat(int64_t cpu, int64_t rss)
{
	struct sig_health h;
	sig_health_clear(&h);
	h.interval_s = 60;
	h.agent_cpu_p95 = cpu;
	h.agent_cpu_mean = cpu / 2;
	h.agent_rss_kb = rss;
	return h;
}

static int setup(void **state)
{
	(void)state;
	struct sig_thresholds t;
	sig_thresholds_default(&t);
	sig_init(&t);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sig_shutdown();
	return 0;
}

static void test_names(void **state)
{
	(void)state;
	for (int s = 0; s < SIG_COUNT; s++)
		assert_int_equal(sig_of_name(sig_name(s)), s);
	assert_int_equal(sig_of_name("crash"), -1);
	assert_null(sig_name(SIG_COUNT));
	assert_string_equal(sig_label(SIG_AGENT_CPU), "agent CPU");
}

static void refused(const char *js, const char *field)
{
	json_error_t je;
	json_t *j = json_loads(js, 0, &je);
	assert_non_null(j);
	static struct sig_health h;
	char f[96] = "", w[96] = "";
	if (sig_health_from_json(j, &h, f, sizeof f, w, sizeof w))
		fail_msg("accepted: %s", js);
	if (strcmp(f, field) != 0)
		fail_msg("%s: named '%s' (%s), want '%s'", js, f, w, field);
	json_decref(j);
}

static void test_validation(void **state)
{
	(void)state;
	static struct sig_health h;
	char f[96], w[96];
	json_t *j =
	        json_loads("{\"interval_s\": 60, \"agent_cpu_p95\": 250, \"agent_cpu_mean\": 80,"
	                   " \"host_cpu\": 100, \"agent_rss_kb\": 1099511627776, \"channels\":"
	                   " {\"291\": {\"evals\": 10, \"errors\": 4, \"timeouts\": 6}}}",
	                   0, NULL);
	assert_true(sig_health_from_json(j, &h, f, sizeof f, w, sizeof w));
	assert_int_equal(h.nch, 1);
	assert_int_equal(h.ch[0].channel, 291);
	assert_int_equal(h.ch[0].detections, -1);
	json_decref(j);
	refused("[]", "health");
	refused("{}", "health.interval_s");
	refused("{\"interval_s\": 0}", "health.interval_s");
	refused("{\"interval_s\": 86401}", "health.interval_s");
	refused("{\"interval_s\": 60, \"host_cpu\": 101}", "health.host_cpu");
	refused("{\"interval_s\": 60, \"host_cpu\": -1}", "health.host_cpu");
	refused("{\"interval_s\": 60, \"host_cpu\": 1.5}", "health.host_cpu");
	refused("{\"interval_s\": 60, \"agent_cpu_p95\": 100001}", "health.agent_cpu_p95");
	refused("{\"interval_s\": 60, \"agent_cpu_p95\": 5, \"agent_cpu_mean\": 6}",
	        "health.agent_cpu_mean");
	refused("{\"interval_s\": 60, \"agent_rss_kb\": 1099511627777}", "health.agent_rss_kb");
	refused("{\"interval_s\": 60, \"cpu\": 1}", "health.cpu");
	refused("{\"interval_s\": 60, \"channels\": []}", "health.channels");
	refused("{\"interval_s\": 60, \"channels\": {\"x\": {}}}", "health.channels.x");
	refused("{\"interval_s\": 60, \"channels\": {\"0\": {}}}", "health.channels.0");
	refused("{\"interval_s\": 60, \"channels\": {\"291\": {\"matches\": 1}}}",
	        "health.channels.291.matches");
	refused("{\"interval_s\": 60, \"channels\": {\"291\": {\"errors\": \"1\"}}}",
	        "health.channels.291.errors");
	refused("{\"interval_s\": 60, \"channels\": {\"291\": {\"blocks\": 1000000001}}}",
	        "health.channels.291.blocks");
	refused("{\"interval_s\": 60, \"channels\": {\"291\": {\"evals\": 3, \"errors\": 2, "
	        "\"timeouts\": 2}}}",
	        "health.channels.291.errors");
}

static void test_cpu_storm(void **state)
{
	(void)state;
	struct sig_verdict v[8];
	/* warm-up: five normal beats make the baseline; no verdict yet even
	 * for a high first sample */
	for (int i = 0; i < 5; i++) {
		struct sig_health h = beat(i == 0 ? 90 : 10, 50000);
		assert_int_equal(sig_observe(7, &h, v, 8), 0);
	}
	/* noise: four beats above, then normal: no verdict (k = 5) */
	for (int i = 0; i < 4; i++) {
		struct sig_health h = beat(95, 50000);
		assert_int_equal(sig_observe(7, &h, v, 8), 0);
	}
	struct sig_health ok = beat(12, 50000);
	assert_int_equal(sig_observe(7, &ok, v, 8), 0);
	/* a storm: the fifth beat above makes one verdict, later ones none */
	size_t got = 0;
	for (int i = 0; i < 10; i++) {
		struct sig_health h = beat(100, 50000);
		size_t n = sig_observe(7, &h, v, 8);
		if (i < 4)
			assert_int_equal(n, 0);
		if (i == 4) {
			assert_int_equal(n, 1);
			assert_int_equal(v[0].signal, SIG_AGENT_CPU);
			assert_int_equal(v[0].channel, 0);
			assert_true(v[0].value == 100.0);
			assert_true(v[0].baseline > 10.0 && v[0].baseline < 40.0);
		}
		got += n;
	}
	assert_int_equal(got, 1);
	/* the storm goes on: no second verdict while it lasts */
	struct sig_health h = beat(100, 50000);
	assert_int_equal(sig_observe(7, &h, v, 8), 0);
	/* another host is independent */
	for (int i = 0; i < 8; i++) {
		struct sig_health o = beat(100, 50000);
		assert_int_equal(sig_observe(8, &o, v, 8), 0); /* its normal is 100 */
	}
	/* memory: a leak above 1.5 x and +100 MiB for three beats */
	got = 0;
	for (int i = 0; i < 6; i++) {
		struct sig_health m = beat(10, 50000 + 200000 * (i + 1));
		size_t n = sig_observe(9, &m, v, 8);
		got += n;
	}
	assert_int_equal(got, 0); /* warm-up took the first five */
	for (int i = 0; i < 3; i++) {
		struct sig_health m = beat(10, 5000000);
		got += sig_observe(9, &m, v, 8);
	}
	assert_int_equal(got, 1);
	assert_int_equal(v[0].signal, SIG_MEMORY);
}

static void test_channel_signals(void **state)
{
	(void)state;
	struct sig_verdict v[8];
	struct sig_health h;
	sig_health_clear(&h);
	h.interval_s = 30;
	h.nch = 2;
	h.ch[0] = (struct sig_channel){291, 1000, 0, 0, 2, 0};
	h.ch[1] = (struct sig_channel){292, 1000, 0, 0, 2, 0};
	for (int i = 0; i < 20; i++) /* counts warm up over 20 beats */
		assert_int_equal(sig_observe(11, &h, v, 8), 0);
	/* one evaluation error where there were none: two beats make it */
	h.ch[0].errors = 1;
	assert_int_equal(sig_observe(11, &h, v, 8), 0);
	assert_int_equal(sig_observe(11, &h, v, 8), 1);
	assert_int_equal(v[0].signal, SIG_EVAL_ERRORS);
	assert_int_equal(v[0].channel, 291);
	assert_true(v[0].value == 2.0); /* per minute: 1 per 30 s */
	/* a detection storm on 292 only: 2 per 30 s is 4 per minute; 20 per
	 * 30 s is 40 > max(5 x 4, 4 + 20 + 3 x sqrt(4)); three beats */
	h.ch[0].errors = 0;
	h.ch[1].detections = 15;
	h.ch[1].blocks = 5;
	assert_int_equal(sig_observe(11, &h, v, 8), 0);
	assert_int_equal(sig_observe(11, &h, v, 8), 0);
	assert_int_equal(sig_observe(11, &h, v, 8), 1);
	assert_int_equal(v[0].signal, SIG_DETECTIONS);
	assert_int_equal(v[0].channel, 292);
	assert_true(v[0].baseline > 3.9 && v[0].baseline < 4.1); /* its normal before the storm */
	/* normal again, then a new storm fires again */
	h.ch[1].detections = 2;
	h.ch[1].blocks = 0;
	assert_int_equal(sig_observe(11, &h, v, 8), 0);
	h.ch[1].detections = 60;
	assert_int_equal(sig_observe(11, &h, v, 8), 0);
	assert_int_equal(sig_observe(11, &h, v, 8), 0);
	assert_int_equal(sig_observe(11, &h, v, 8), 1);
	size_t hosts, bytes;
	sig_stats(&hosts, &bytes);
	assert_true(hosts >= 1 && bytes > 0);
}

/* ---- the noise model (GATE.md, "Health signals") --------------------------- */

static uint64_t g_rng = 0x5eed5167;
static double unit(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return ((double)(g_rng >> 11) + 0.5) * 0x1.0p-53;
}

static double gauss(void)
{
	return sqrt(-2.0 * log(unit())) * cos(6.283185307179586 * unit());
}

static int64_t poisson(double mean)
{
	int64_t k = 0;
	for (double l = exp(-mean), p = unit(); p > l; p *= unit())
		k++;
	return k;
}

/* Good hosts, one heartbeat a minute for a day, through the real verdict:
 * agent CPU p95 at a host's own level (2-15 %) times log-normal jitter,
 * with scans (1 % of minutes, 50-95 %, lasting 1-3 minutes); memory at a
 * host's own 40-120 MiB with 3 % jitter and a cache that grows a few MiB a
 * day; 1,000-2,000 evaluations a minute with a spurious error in 0.1 % of
 * minutes, and a flaky input on 2 % of hosts that fails 1 in 10,000;
 * detections at a host's own 0-5 a minute (Poisson) with bursts (0.5 % of
 * minutes, x10 for 1-2 minutes). The verdicts per host-hour of each signal
 * are the background the gate's simulation assumes (test_gate.c,
 * test_sim_signals: 0.5 % and 2 %): this says the model stays below. */
static void test_noise_model(void **state)
{
	(void)state;
	enum { HOSTS = 2000, MINUTES = 24 * 60 };
	int64_t verdicts[SIG_COUNT] = {0};
	struct sig_verdict v[8];
	for (int64_t a = 1; a <= HOSTS; a++) {
		double cpu0 = 2.0 + 13.0 * unit(), rss0 = 40960.0 + 81920.0 * unit();
		double det0 = 5.0 * unit(), evals = 1000.0 + 1000.0 * unit();
		double flaky = unit() < 0.02 ? 1e-4 : 0.0;
		int scan = 0, burst = 0;
		for (int m = 0; m < MINUTES; m++) {
			struct sig_health h;
			sig_health_clear(&h);
			h.interval_s = 60;
			if (!scan && unit() < 0.01)
				scan = 1 + (int)(3.0 * unit());
			double cpu = scan ? 50.0 + 45.0 * unit() : cpu0 * exp(0.3 * gauss());
			scan -= scan > 0;
			h.agent_cpu_p95 = (int64_t)cpu;
			h.agent_cpu_mean = (int64_t)(cpu / 3.0);
			h.agent_rss_kb =
			        (int64_t)(rss0 * (1.0 + 0.03 * gauss()) + 4096.0 * m / MINUTES);
			if (!burst && unit() < 0.005)
				burst = 1 + (int)(2.0 * unit());
			h.nch = 1;
			h.ch[0].channel = 291;
			h.ch[0].evals = (int64_t)evals;
			h.ch[0].errors = poisson(evals * flaky) + (unit() < 0.001);
			h.ch[0].timeouts = 0;
			h.ch[0].detections = poisson(det0 * (burst ? 10.0 : 1.0));
			h.ch[0].blocks = 0;
			burst -= burst > 0;
			size_t n = sig_observe(a, &h, v, 8);
			for (size_t i = 0; i < n; i++)
				verdicts[v[i].signal]++;
		}
	}
	double hours = (double)HOSTS * MINUTES / 60.0;
	for (int s = 0; s < SIG_COUNT; s++) {
		printf("# noise model: %s verdicts %.3f%% per host-hour (%lld in %.0f "
		       "host-hours)\n",
		       sig_name(s), 100.0 * (double)verdicts[s] / hours, (long long)verdicts[s],
		       hours);
		assert_true((double)verdicts[s] / hours <= 0.005);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_names),
	        cmocka_unit_test(test_validation),
	        cmocka_unit_test_setup_teardown(test_cpu_storm, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_channel_signals, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_noise_model, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
