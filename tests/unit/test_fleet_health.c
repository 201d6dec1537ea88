/* Unit tests of fb-fleet's health signals: the scenario's health section
 * and the contents' behaviours (parsing, defaults, time scale, refusals
 * naming the key), and the generated health objects: within the protocol's
 * fields and ranges, deterministic with the seed, the noise near the
 * documented defaults, and cpu_spike, memory_leak, fp_storm and eval_errors
 * on the chosen share of hosts, segments and time after the apply only. */
#include "../../clients/fleet/health.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Two channels, two platforms (5 % os_build 19045), the default noise and
 * one content per behaviour on channel 291; "both" on channel 292 has an
 * fp_storm on 19045 only. %s: the health section. */
static const char *SCN =
        "{\"name\":\"h\",\"rings\":[{\"name\":\"canary\",\"agents\":100},"
        "{\"name\":\"ga\",\"agents\":900}],"
        "\"platforms\":[{\"share\":0.95,\"os\":\"windows\",\"os_build\":\"22631\","
        "\"arch\":\"x86_64\"},{\"share\":0.05,\"os\":\"windows\",\"os_build\":\"19045\","
        "\"arch\":\"x86_64\"}],"
        "\"timing\":{\"heartbeat_s\":2},"
        "\"health\":%s,"
        "\"channels\":[{\"id\":291,\"name\":\"a\",\"contents\":{"
        "\"base\":{\"upload\":\"b.json\"},"
        "\"cpu\":{\"upload\":\"c.json\",\"cpu_spike\":{\"share\":0.5,\"level\":100,"
        "\"after_s\":10}},"
        "\"leak\":{\"upload\":\"l.json\",\"memory_leak\":{\"kb_per_min\":600}},"
        "\"fp\":{\"upload\":\"f.json\",\"fp_storm\":{\"factor\":20}},"
        "\"err\":{\"upload\":\"e.json\",\"eval_errors\":{\"rate\":0.1,\"share\":0.3}},"
        "\"seg\":{\"upload\":\"s.json\",\"segments\":{\"os_build\":[\"19045\"]},"
        "\"crash_probability\":0.5,\"cpu_spike\":{},"
        "\"eval_errors\":{\"segments\":{\"os_build\":[\"22631\"]}}}},"
        "\"baseline\":\"base\",\"rollout\":{\"content\":\"cpu\"},"
        "\"expect\":{\"state\":\"halted\"}},"
        "{\"id\":292,\"name\":\"b\",\"contents\":{\"base\":{\"upload\":\"b2.json\"},"
        "\"both\":{\"upload\":\"n2.json\",\"fp_storm\":{\"factor\":5,"
        "\"segments\":{\"os_build\":[\"19045\"]}}}},"
        "\"baseline\":\"base\",\"rollout\":{\"content\":\"both\"},"
        "\"expect\":{\"state\":\"halted\"}}]}";

static enum fb_rc parse(const char *health, double scale, struct scenario *s, struct fb_err *err)
{
	char buf[8192];
	snprintf(buf, sizeof buf, SCN, health);
	return scn_parse(buf, strlen(buf), NULL, 0, scale, s, err);
}

static int content(const struct scenario *s, const char *name)
{
	for (int i = 0; i < s->n_contents; i++)
		if (!strcmp(s->contents[i].name, name))
			return i;
	fail_msg("no content %s", name);
	return -1;
}

static void test_parse_defaults(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	if (parse("{}", 1, &s, &err))
		fail_msg("%s", err.msg);
	const struct scn_health *h = &s.health;
	assert_true(h->on);
	assert_int_equal(h->cpus, 4);
	assert_true(h->agent_cpu.base == 2 && h->agent_cpu_p95 == 8);
	assert_true(h->agent_cpu.spread == 0.5 && h->agent_cpu.jitter == 0.25);
	assert_true(h->burst_probability == 0.01 && h->burst_p95 == 40 && h->burst_beats == 3);
	assert_true(h->host_cpu.base == 20);
	assert_true(h->rss_kb.base == 51200 && h->rss_kb.jitter == 0.02);
	assert_true(h->evals.base == 6000);
	assert_true(h->error_rate == 1e-6 && h->timeout_rate == 1e-6 && h->error_spread == 2);
	assert_true(h->detections.base == 0.5 && h->blocks.base == 0.002);
	assert_true(h->det_burst_probability == 0.005 && h->det_burst_factor == 10 &&
	            h->det_burst_beats == 2);
	const struct scn_content *cpu = &s.contents[content(&s, "cpu")];
	assert_true(cpu->health[SCN_CPU_SPIKE].on);
	assert_true(cpu->health[SCN_CPU_SPIKE].share == 0.5);
	assert_true(cpu->health[SCN_CPU_SPIKE].after_s == 10);
	assert_false(cpu->health[SCN_MEMORY_LEAK].on);
	/* the behaviours' defaults */
	const struct scn_content *seg = &s.contents[content(&s, "seg")];
	assert_true(seg->health[SCN_CPU_SPIKE].value == 100);
	assert_true(seg->health[SCN_CPU_SPIKE].share == 1);
	assert_true(seg->health[SCN_CPU_SPIKE].after_s == 0);
	/* a behaviour takes the content's segments unless it has its own */
	assert_int_equal(seg->platform_mask & 3u, 2u);
	assert_int_equal(seg->health[SCN_CPU_SPIKE].platform_mask & 3u, 2u);
	assert_int_equal(seg->health[SCN_EVAL_ERRORS].platform_mask & 3u, 1u);
	assert_true(seg->health[SCN_EVAL_ERRORS].value == 0.01);
	assert_true(s.contents[content(&s, "leak")].health[SCN_MEMORY_LEAK].value == 600);
	assert_true(s.contents[content(&s, "fp")].health[SCN_FP_STORM].value == 20);
	assert_true(s.contents[content(&s, "both")].health[SCN_FP_STORM].value == 5);
	/* bad: a crash or any behaviour; the baselines are not */
	assert_true(scn_content_bad(&s, content(&s, "cpu")));
	assert_true(scn_content_bad(&s, content(&s, "err")));
	assert_false(scn_content_bad(&s, s.ch[0].baseline));
	scn_cleanup(&s);

	/* explicit values; time scale 4: delays x 4, a leak per real minute / 4 */
	const char *full = "{\"cpus\":8,\"agent_cpu\":{\"mean\":3,\"p95\":12,\"spread\":0.2,"
	                   "\"jitter\":0.1,\"burst_probability\":0,\"burst_p95\":50},"
	                   "\"host_cpu\":{\"mean\":30,\"spread\":0,\"jitter\":0},"
	                   "\"agent_rss_kb\":{\"base\":100000,\"spread\":0,\"jitter\":0},"
	                   "\"evals\":{\"per_min\":50,\"spread\":0,\"jitter\":0},"
	                   "\"eval_error_rate\":0,\"eval_timeout_rate\":0.5,"
	                   "\"detections\":{\"per_min\":3,\"spread\":0},"
	                   "\"blocks\":{\"per_min\":0}}";
	if (parse(full, 4, &s, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(s.health.cpus, 8);
	assert_true(s.health.agent_cpu.base == 3 && s.health.agent_cpu_p95 == 12);
	assert_true(s.health.burst_probability == 0 && s.health.burst_p95 == 50);
	assert_true(s.health.host_cpu.base == 30 && s.health.rss_kb.base == 100000);
	assert_true(s.health.evals.base == 50 && s.health.timeout_rate == 0.5);
	assert_true(s.health.detections.base == 3 && s.health.blocks.base == 0);
	assert_true(s.contents[content(&s, "cpu")].health[SCN_CPU_SPIKE].after_s == 40);
	assert_true(s.contents[content(&s, "leak")].health[SCN_MEMORY_LEAK].value == 150);
	scn_cleanup(&s);
}

/* Replace from by to in SCN (health {}) and expect a refusal naming want. */
static void refused(const char *from, const char *to, const char *want)
{
	char base[8192], buf[8192];
	snprintf(base, sizeof base, SCN, "{}");
	const char *p = strstr(base, from);
	assert_non_null(p);
	snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - base), base, to, p + strlen(from));
	struct scenario s;
	struct fb_err err = {{0}};
	assert_int_equal(scn_parse(buf, strlen(buf), NULL, 0, 1, &s, &err), FB_EINVAL);
	if (!strstr(err.msg, want))
		fail_msg("refusal '%s' lacks '%s'", err.msg, want);
}

static void test_refusals(void **st)
{
	(void)st;
	refused("\"health\":{}", "\"health\":[]", "health must be an object");
	refused("\"health\":{}", "\"health\":{\"agent_cpu\":{\"burst_beats\":0}}",
	        "health.agent_cpu.burst_beats must be an integer in [1, 100]");
	refused("\"health\":{}", "\"health\":{\"agent_cpu\":{\"burst_beats\":2.5}}",
	        "health.agent_cpu.burst_beats");
	refused("\"health\":{}", "\"health\":{\"detections\":{\"burst_factor\":0.5}}",
	        "health.detections.burst_factor");
	refused("\"health\":{}", "\"health\":{\"detections\":{\"burst_beats\":101}}",
	        "health.detections.burst_beats");
	refused("\"health\":{}", "\"health\":{\"eval_error_spread\":4}",
	        "health.eval_error_spread");
	refused("\"health\":{}", "\"health\":{\"cpu\":1}", "health: unknown field 'cpu'");
	refused("\"health\":{}", "\"health\":{\"cpus\":0}", "health.cpus");
	refused("\"health\":{}", "\"health\":{\"cpus\":2.5}", "health.cpus");
	refused("\"health\":{}", "\"health\":{\"agent_cpu\":{\"mean\":9}}",
	        "health.agent_cpu.p95 (8) must be at least its mean (9)");
	refused("\"health\":{}", "\"health\":{\"agent_cpu\":{\"mean\":-1}}",
	        "health.agent_cpu.mean");
	refused("\"health\":{}", "\"health\":{\"agent_cpu\":{\"p95\":500}}", "100 x health.cpus");
	refused("\"health\":{}", "\"health\":{\"agent_cpu\":{\"spread\":4}}",
	        "health.agent_cpu.spread");
	refused("\"health\":{}", "\"health\":{\"agent_cpu\":{\"burst_probability\":2}}",
	        "health.agent_cpu.burst_probability");
	refused("\"health\":{}", "\"health\":{\"host_cpu\":{\"mean\":101}}",
	        "health.host_cpu.mean");
	refused("\"health\":{}", "\"health\":{\"host_cpu\":{\"base\":1}}",
	        "health.host_cpu: unknown field 'base'");
	refused("\"health\":{}", "\"health\":{\"agent_rss_kb\":{\"base\":\"50M\"}}",
	        "health.agent_rss_kb.base");
	refused("\"health\":{}", "\"health\":{\"evals\":{\"per_min\":2e9}}",
	        "health.evals.per_min");
	refused("\"health\":{}", "\"health\":{\"detections\":{\"jitter\":1}}",
	        "health.detections: unknown field 'jitter'");
	refused("\"health\":{}", "\"health\":{\"blocks\":3}", "health.blocks must be an object");
	refused("\"health\":{}", "\"health\":{\"eval_error_rate\":0.6,\"eval_timeout_rate\":0.6}",
	        "eval_error_rate + eval_timeout_rate");
	refused("\"health\":{}", "\"health\":{\"eval_error_rate\":-0.1}", "health.eval_error_rate");
	/* behaviours */
	refused("\"health\":{},", "", "needs the scenario's health section");
	refused("\"cpu_spike\":{\"share\":0.5,", "\"cpu_spike\":{\"share\":1.5,",
	        "channels[0].contents.cpu.cpu_spike.share");
	refused("\"level\":100", "\"level\":0", "channels[0].contents.cpu.cpu_spike.level");
	refused("\"level\":100", "\"level\":401",
	        "cpu_spike.level must be at most 100 x health.cpus");
	refused("\"after_s\":10", "\"after_s\":-1", "cpu_spike.after_s");
	refused("\"level\":100", "\"kb_per_min\":100",
	        "channels[0].contents.cpu.cpu_spike: unknown field 'kb_per_min'");
	refused("\"kb_per_min\":600", "\"kb_per_min\":true", "memory_leak.kb_per_min");
	refused("\"factor\":20", "\"factor\":0.5", "channels[0].contents.fp.fp_storm.factor");
	refused("\"rate\":0.1", "\"rate\":0", "channels[0].contents.err.eval_errors.rate");
	refused("\"fp_storm\":{\"factor\":20}", "\"fp_storm\":20", "fp_storm must be an object");
	refused("\"os_build\":[\"22631\"]", "\"os_build\":[\"10240\"]",
	        "eval_errors.segments matches none");
	refused("\"eval_errors\":{\"rate\"", "\"eval_error\":{\"rate\"",
	        "channels[0].contents.err: unknown field 'eval_error'");
}

/* Agent i running the contents named per channel (NULL: nothing), applied
 * applied_s ago, up for up_s, one nominal interval since its last
 * heartbeat. */
static struct fhealth_agent agent(const struct scenario *s, int64_t i, uint64_t hb, int armed,
                                  const char *c0, const char *c1, double applied_s, double up_s)
{
	struct fhealth_agent a = {.index = i,
	                          .plat = (int)(i % 20 == 0), /* 5 % on 19045 */
	                          .hb_no = hb,
	                          .interval_s = s->heartbeat_s,
	                          .up_s = up_s,
	                          .armed = armed};
	const char *names[2] = {c0, c1};
	for (int k = 0; k < 2; k++) {
		a.content[k] = -1;
		if (!names[k])
			continue;
		a.channels |= 1u << k;
		for (int c = 0; c < s->n_contents; c++)
			if (s->contents[c].channel == k && !strcmp(s->contents[c].name, names[k]))
				a.content[k] = c;
		a.applied_s[k] = applied_s;
	}
	return a;
}

static json_t *render(const struct scenario *s, const struct fhealth *h)
{
	struct fb_buf b;
	fb_buf_init(&b, 4096);
	assert_int_equal(fhealth_json(s, h, &b), FB_OK);
	json_error_t jerr;
	json_t *j = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		fail_msg("%s: %.*s", jerr.text, (int)b.len, b.data);
	fb_buf_cleanup(&b);
	return j;
}

/* An unsigned JSON integer in [lo, hi]. */
static void in_range(const json_t *o, const char *k, json_int_t lo, json_int_t hi)
{
	const json_t *v = json_object_get(o, k);
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		fail_msg("%s: not an integer in [%lld, %lld]", k, (long long)lo, (long long)hi);
}

/* Every object: the protocol's fields only, integers in range, errors +
 * timeouts <= evals, channels exactly those with content. */
static void test_protocol(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	if (parse("{\"eval_error_rate\":0.001,\"eval_timeout_rate\":0.001}", 1, &s, &err))
		fail_msg("%s", err.msg);
	static const char *const top[] = {"interval_s", "agent_cpu_p95", "agent_cpu_mean",
	                                  "host_cpu",   "agent_rss_kb",  "channels"};
	static const char *const counters[] = {"evals", "errors", "timeouts", "detections",
	                                       "blocks"};
	for (int64_t i = 0; i < 300; i++)
		for (uint64_t hb = 0; hb < 10; hb++) {
			const char *c0 = i % 3 ? "err" : "base", *c1 = i % 2 ? "both" : NULL;
			struct fhealth_agent a = agent(&s, i, hb, 1, c0, c1, (double)hb, 100);
			if (i % 7 == 0)
				a.channels = 0, a.content[0] = a.content[1] = -1;
			a.interval_s = (double)(i % 5) * 0.3; /* 0 .. 1.2 s: at least 1 */
			struct fhealth h;
			fhealth_sample(&s, 1, &a, &h);
			json_t *j = render(&s, &h);
			const char *k;
			json_t *v;
			json_object_foreach(j, k, v)
			{
				int known = 0;
				for (size_t t = 0; t < sizeof top / sizeof top[0]; t++)
					known |= !strcmp(k, top[t]);
				if (!known)
					fail_msg("unknown field %s", k);
			}
			in_range(j, "interval_s", 1, 86400);
			in_range(j, "agent_cpu_p95", 0, 400);
			in_range(j, "agent_cpu_mean", 0, 400);
			assert_true(json_integer_value(json_object_get(j, "agent_cpu_p95")) >=
			            json_integer_value(json_object_get(j, "agent_cpu_mean")));
			in_range(j, "host_cpu", 0, 100);
			in_range(j, "agent_rss_kb", 1, 1099511627776LL);
			json_t *chs = json_object_get(j, "channels");
			assert_int_equal(json_object_size(chs),
			                 (size_t)((a.channels & 1) != 0) + ((a.channels & 2) != 0));
			if (a.channels & 1)
				assert_non_null(json_object_get(chs, "291"));
			if (a.channels & 2)
				assert_non_null(json_object_get(chs, "292"));
			json_object_foreach(chs, k, v)
			{
				assert_int_equal(json_object_size(v), 5);
				for (size_t t = 0; t < 5; t++)
					in_range(v, counters[t], 0, 1000000000);
				assert_true(json_integer_value(json_object_get(v, "errors")) +
				                    json_integer_value(
				                            json_object_get(v, "timeouts")) <=
				            json_integer_value(json_object_get(v, "evals")));
			}
			json_decref(j);
		}
	scn_cleanup(&s);
}

static void test_deterministic(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	assert_int_equal(parse("{}", 1, &s, &err), FB_OK);
	int differ = 0;
	for (int64_t i = 0; i < 50; i++) {
		struct fhealth_agent a = agent(&s, i, 3, 1, "fp", "both", 5, 100);
		struct fhealth h1, h2, h3;
		fhealth_sample(&s, 7, &a, &h1);
		fhealth_sample(&s, 7, &a, &h2);
		fhealth_sample(&s, 8, &a, &h3);
		json_t *j1 = render(&s, &h1), *j2 = render(&s, &h2), *j3 = render(&s, &h3);
		assert_true(json_equal(j1, j2));
		differ += !json_equal(j1, j3);
		json_decref(j1);
		json_decref(j2);
		json_decref(j3);
	}
	assert_true(differ >= 45); /* another seed, other values */
	scn_cleanup(&s);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* The default noise, over 10,000 agents at one heartbeat and one agent over
 * 10,000 heartbeats: medians and means near the documented figures. */
static void test_noise(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	assert_int_equal(parse("{}", 1, &s, &err), FB_OK);
	enum { N = 10000 };
	static uint32_t cpu[N], p95[N], host[N], rss[N], evals[N];
	double det = 0, blk = 0, errs = 0, bursts = 0;
	for (int64_t i = 0; i < N; i++) {
		struct fhealth_agent a = agent(&s, i, 1, 1, "base", "base", 100, 100);
		struct fhealth h;
		fhealth_sample(&s, 1, &a, &h);
		cpu[i] = h.agent_cpu_mean;
		p95[i] = h.agent_cpu_p95;
		host[i] = h.host_cpu;
		rss[i] = (uint32_t)h.agent_rss_kb;
		evals[i] = (uint32_t)h.ch[0].evals;
		det += (double)h.ch[0].detections;
		blk += (double)h.ch[0].blocks;
		errs += (double)(h.ch[0].errors + h.ch[0].timeouts);
		assert_int_equal(h.behaviours, 0);
	}
	uint32_t *all[] = {cpu, p95, host, rss, evals};
	for (size_t k = 0; k < 5; k++)
		qsort(all[k], N, sizeof(uint32_t), cmp_u32);
	/* medians: base x exp(0) (integer CPU figures are rounded) */
	assert_in_range(cpu[N / 2], 2, 2);
	assert_in_range(p95[N / 2], 7, 9);
	assert_in_range(host[N / 2], 19, 21);
	assert_in_range(rss[N / 2], 50000, 52400);
	assert_in_range(evals[N / 2], 190, 210); /* 6,000 a minute, 2 s */
	/* Poisson means over 2 s: base x exp(spread^2 / 2) / 30 = 0.5 x e^0.5 / 30 */
	assert_true(fabs(det / N - 0.0275) < 0.006);
	assert_true(blk / N < 0.001);
	/* 2e-6 of ~220 evaluations: about 0.04 % of heartbeats have one */
	assert_true(errs / N < 0.005);
	/* one agent over time: scans start in 1 % of heartbeats and last 1-3,
	 * their p95 around 40: about 1 % of heartbeats at 40 or more */
	for (uint64_t hb = 0; hb < N; hb++) {
		struct fhealth_agent a = agent(&s, 1, hb, 1, "base", NULL, 100, 100);
		struct fhealth h;
		fhealth_sample(&s, 1, &a, &h);
		bursts += h.agent_cpu_p95 >= 40;
	}
	assert_in_range((uint64_t)bursts, 60, 140);
	/* counters follow the interval: twice the nominal, twice the evals */
	struct fhealth_agent a = agent(&s, 5, 1, 1, "base", NULL, 100, 100);
	struct fhealth h1, h2;
	fhealth_sample(&s, 1, &a, &h1);
	a.interval_s *= 2;
	fhealth_sample(&s, 1, &a, &h2);
	assert_int_equal(h2.interval_s, 2 * h1.interval_s);
	assert_true(fabs((double)h2.ch[0].evals / (double)h1.ch[0].evals - 2) < 0.02);
	scn_cleanup(&s);
}

/* Runs of consecutive heartbeats with flag set: how many of each length
 * (runs[0]: beats in any run). */
static void runs_of(const uint8_t *flag, int n, int *runs, int max)
{
	memset(runs, 0, sizeof(int) * (size_t)max);
	for (int i = 0, len = 0; i <= n; i++) {
		if (i < n && flag[i]) {
			len++;
			runs[0]++;
			continue;
		}
		if (len)
			runs[len < max ? len : max - 1]++;
		len = 0;
	}
}

/* CPU scans and detection bursts last a few heartbeats; a few hosts have
 * far more evaluation errors than the median. */
static void test_bursts_and_flaky_hosts(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	enum { N = 10000 };
	static uint8_t cpu[N], det[N];
	int runs[8];
	assert_int_equal(
	        parse("{\"agent_cpu\":{\"spread\":0,\"jitter\":0,\"burst_probability\":0.05,"
	              "\"burst_p95\":60},\"detections\":{\"per_min\":600,\"spread\":0,"
	              "\"burst_probability\":0.1,\"burst_factor\":100}}",
	              1, &s, &err),
	        FB_OK);
	for (int hb = 0; hb < N; hb++) {
		struct fhealth_agent a = agent(&s, 3, (uint64_t)hb, 1, "base", NULL, 100, 100);
		struct fhealth h;
		fhealth_sample(&s, 1, &a, &h);
		assert_true(h.agent_cpu_p95 == 8 || h.agent_cpu_p95 == 60);
		cpu[hb] = h.agent_cpu_p95 == 60;
		det[hb] = h.ch[0].detections > 500; /* 20 in 2 s, 2,000 in a burst */
	}
	/* a beat is in a scan with 1 - 0.95 x (1 - 0.05 x 2/3) x (1 - 0.05 / 3) */
	runs_of(cpu, N, runs, 8);
	assert_in_range(runs[0], 800, 1150);
	assert_true(runs[1] > 0 && runs[2] > 0 && runs[3] > 0);
	/* longer runs only where bursts touch: rare */
	assert_true(runs[4] + runs[5] + runs[6] + runs[7] < (runs[1] + runs[2] + runs[3]) / 5);
	/* detections: 1 - 0.9 x 0.95 of the beats, runs of 1 and 2 */
	runs_of(det, N, runs, 8);
	assert_in_range(runs[0], 1200, 1700);
	assert_true(runs[1] > 0 && runs[2] > 0);
	scn_cleanup(&s);

	/* 1e-4 of 6,000 evaluations a minute: 0.6 a minute on the median host;
	 * with eval_error_spread 2 a few hosts have many, with 0 none */
	for (int spread = 0; spread <= 2; spread += 2) {
		char h[128];
		snprintf(h, sizeof h, "{\"eval_error_rate\":1e-4,\"eval_error_spread\":%d}",
		         spread);
		assert_int_equal(parse(h, 1, &s, &err), FB_OK);
		int many = 0;
		for (int64_t i = 0; i < N; i++) {
			struct fhealth_agent a = agent(&s, i, 1, 1, "base", NULL, 100, 100);
			struct fhealth out;
			a.interval_s = 60;
			fhealth_sample(&s, 1, &a, &out);
			many += out.ch[0].errors + out.ch[0].timeouts >= 5;
		}
		if (spread)
			assert_true(many > N / 20);
		else
			assert_true(many < N / 200);
		scn_cleanup(&s);
	}
}

static void test_cpu_spike(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	assert_int_equal(parse("{}", 1, &s, &err), FB_OK);
	int spiking = 0, before = 0, unarmed = 0, member = 0;
	double host_on = 0, host_off = 0;
	for (int64_t i = 0; i < 1000; i++) {
		struct fhealth h;
		struct fhealth_agent a = agent(&s, i, 1, 1, "cpu", NULL, 9, 100);
		fhealth_sample(&s, 3, &a, &h); /* 9 s after the apply: not yet */
		before += h.agent_cpu_p95 >= 90;
		a.applied_s[0] = 30;
		fhealth_sample(&s, 3, &a, &h);
		int on = (h.behaviours >> SCN_CPU_SPIKE) & 1;
		int m = fhealth_member(&s, 3, i, a.plat, content(&s, "cpu"), SCN_CPU_SPIKE);
		assert_int_equal(on, m);
		member += m;
		if (on) {
			spiking++;
			assert_in_range(h.agent_cpu_p95, 80, 125);
			assert_in_range(h.agent_cpu_mean, 80, 125);
			host_on += h.host_cpu;
		} else {
			assert_true(h.agent_cpu_mean < 50);
			host_off += h.host_cpu;
		}
		a.armed = 0; /* the baseline phase: no behaviour */
		fhealth_sample(&s, 3, &a, &h);
		unarmed += h.behaviours != 0;
	}
	assert_int_equal(before, 0);
	assert_int_equal(unarmed, 0);
	assert_in_range(spiking, 430, 570); /* share 0.5 */
	/* a pinned CPU of 4 adds about 25 points to the host */
	assert_true(host_on / spiking - host_off / (1000 - spiking) > 18);
	/* half the interval spiking: the mean about half way, the p95 at the level */
	struct fhealth h;
	int64_t i = 0;
	while (!fhealth_member(&s, 3, i, (int)(i % 20 == 0), content(&s, "cpu"), SCN_CPU_SPIKE))
		i++;
	struct fhealth_agent a = agent(&s, i, 1, 1, "cpu", NULL, 10 + s.heartbeat_s / 2, 100);
	fhealth_sample(&s, 3, &a, &h);
	assert_in_range(h.agent_cpu_mean, 35, 70);
	assert_in_range(h.agent_cpu_p95, 80, 125);
	/* the content's segments: only 19045 (every fifth agent of 100 here) */
	for (int64_t k = 0; k < 1000; k++) {
		struct fhealth_agent b = agent(&s, k, 1, 1, "seg", NULL, 30, 100);
		fhealth_sample(&s, 3, &b, &h);
		assert_int_equal((h.behaviours >> SCN_CPU_SPIKE) & 1, b.plat == 1);
		/* its eval_errors have their own segments: 22631 only */
		assert_int_equal((h.behaviours >> SCN_EVAL_ERRORS) & 1, b.plat == 0);
	}
	scn_cleanup(&s);
}

static void test_memory_leak(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	const char *quiet = "{\"agent_rss_kb\":{\"base\":50000,\"spread\":0,\"jitter\":0}}";
	assert_int_equal(parse(quiet, 1, &s, &err), FB_OK);
	struct fhealth h;
	/* 600 KiB a minute: +600 a minute after the apply, +1200 after two */
	struct fhealth_agent a = agent(&s, 1, 1, 1, "leak", NULL, 60, 1000);
	fhealth_sample(&s, 1, &a, &h);
	assert_int_equal(h.agent_rss_kb, 50600);
	assert_true(h.behaviours & (1u << SCN_MEMORY_LEAK));
	a.applied_s[0] = 120;
	fhealth_sample(&s, 1, &a, &h);
	assert_int_equal(h.agent_rss_kb, 51200);
	/* the agent restarted 30 s ago: its memory too */
	a.up_s = 30;
	fhealth_sample(&s, 1, &a, &h);
	assert_int_equal(h.agent_rss_kb, 50300);
	/* the baseline and the other contents do not leak */
	a = agent(&s, 1, 1, 1, "base", "both", 60, 1000);
	fhealth_sample(&s, 1, &a, &h);
	assert_int_equal(h.agent_rss_kb, 50000);
	scn_cleanup(&s);
	/* at time scale 4 the leak is 4 times slower in real time */
	assert_int_equal(parse(quiet, 4, &s, &err), FB_OK);
	a = agent(&s, 1, 1, 1, "leak", NULL, 60, 1000);
	fhealth_sample(&s, 1, &a, &h);
	assert_int_equal(h.agent_rss_kb, 50150);
	scn_cleanup(&s);
}

static void test_fp_storm_and_eval_errors(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	assert_int_equal(parse("{\"blocks\":{\"per_min\":0.1}}", 1, &s, &err), FB_OK);
	double det[2] = {0}, blk[2] = {0}, other[2] = {0};
	double evals = 0, errs = 0, hit = 0, n_hit = 0;
	for (int64_t i = 0; i < 4000; i++) {
		struct fhealth h;
		for (int storm = 0; storm < 2; storm++) {
			struct fhealth_agent a =
			        agent(&s, i, 2, 1, storm ? "fp" : "base", "base", 500, 1000);
			a.interval_s = 60; /* a minute: enough detections to count */
			fhealth_sample(&s, 5, &a, &h);
			det[storm] += (double)h.ch[0].detections;
			blk[storm] += (double)h.ch[0].blocks;
			other[storm] += (double)h.ch[1].detections;
		}
		struct fhealth_agent a = agent(&s, i, 2, 1, "err", NULL, 50, 100);
		fhealth_sample(&s, 5, &a, &h);
		if (h.behaviours & (1u << SCN_EVAL_ERRORS)) {
			evals += (double)h.ch[0].evals;
			errs += (double)h.ch[0].errors;
			n_hit++;
		} else
			hit += (double)h.ch[0].errors;
		assert_true(h.ch[0].errors + h.ch[0].timeouts <= h.ch[0].evals);
	}
	/* x 20 on the storming channel, nothing on the other */
	assert_true(fabs(det[1] / det[0] - 20) < 2);
	assert_true(fabs(blk[1] / blk[0] - 20) < 3);
	assert_true(fabs(other[1] / other[0] - 1) < 0.1);
	/* 10 % of the evaluations fail on 30 % of the hosts; the rest see noise */
	assert_true(fabs(errs / evals - 0.1) < 0.005);
	assert_true(fabs(n_hit / 4000 - 0.3) < 0.03);
	assert_true(hit < 20);
	/* channel 292's storm is on 19045 only */
	for (int64_t i = 0; i < 200; i++) {
		struct fhealth h;
		struct fhealth_agent a = agent(&s, i, 2, 1, "base", "both", 50, 100);
		fhealth_sample(&s, 5, &a, &h);
		assert_int_equal((h.behaviours >> SCN_FP_STORM) & 1, a.plat == 1);
	}
	scn_cleanup(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_defaults),
	        cmocka_unit_test(test_refusals),
	        cmocka_unit_test(test_protocol),
	        cmocka_unit_test(test_deterministic),
	        cmocka_unit_test(test_noise),
	        cmocka_unit_test(test_bursts_and_flaky_hosts),
	        cmocka_unit_test(test_cpu_spike),
	        cmocka_unit_test(test_memory_leak),
	        cmocka_unit_test(test_fp_storm_and_eval_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
