/* Unit tests of fb-agent's health measurements and content evaluation:
 * /proc/stat and statm parsing, host CPU from two readings, the CPU
 * sampler's percentile and mean (time-weighted, overflow, real getrusage
 * samples), the heartbeat's health object (fields, ranges, caps, reset),
 * and evaluation passes over an input file and the host's real /proc with a
 * channel file staged in a temporary state directory: evaluations,
 * detections, would-be blocks, time-outs at the step budget and errors for
 * a file that cannot be loaded. */
#include "../../clients/agent/health.h" /* the agent has no -I of its own */
#include "../../clients/agent/scan.h"

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
	assert_int_equal(ag_health_cpu_p95(&h), 94);  /* 95 % of the time at or below */
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
	const char *known[] = {"interval_s", "agent_cpu_p95", "agent_cpu_mean",
	                       "host_cpu",   "agent_rss_kb",  "channels"};
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

/* ---- evaluation --------------------------------------------------------------- */

/* A temporary state directory with the template registry; content is
 * staged into channel CH with stage(). */
struct fix {
	char dir[64];
	char input[128];
	struct cf_registry *reg;
	struct ag_state *st;
	struct ag_scanner sc;
	struct ag_health h;
};

static int warns;
static char last_warn[1024];
static char all_warns[16384]; /* every warning of the test, one per line */

static void capture_log(const char *level, const char *fmt, ...)
{
	if (strcmp(level, "warn") != 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_warn, sizeof last_warn, fmt, ap);
	va_end(ap);
	size_t l = strlen(all_warns);
	snprintf(all_warns + l, sizeof all_warns - l, "%s\n", last_warn);
	warns++;
}

static int fix_setup(void **state)
{
	struct fix *f = calloc(1, sizeof *f);
	struct fb_err err = {""};
	snprintf(f->dir, sizeof f->dir, "/tmp/test_agent_health.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->input, sizeof f->input, "%s/events.jsonl", f->dir);
	if (cf_registry_load_dir("schema/templates", &f->reg, &err))
		return -1;
	char sd[128];
	snprintf(sd, sizeof sd, "%s/state", f->dir);
	if (ag_state_open(sd, &f->st, &err))
		return -1;
	ag_health_init(&f->h, fb_mono_ms());
	warns = 0;
	last_warn[0] = all_warns[0] = '\0';
	*state = f;
	return 0;
}

static int fix_teardown(void **state)
{
	struct fix *f = *state;
	char cmd[128];
	ag_scanner_cleanup(&f->sc);
	ag_state_free(f->st);
	cf_registry_free(f->reg);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Compile the JSON text form (channel and version set here) and make it
 * channel CH's active content; its sha256 goes to sha. */
static void stage_json(struct fix *f, json_t *t, int64_t version, char *sha)
{
	unsigned char *bin = NULL;
	size_t len = 0;
	struct fb_err err = {""};
	json_object_set_new(t, "channel", json_integer(CH));
	json_object_set_new(t, "content_version", json_integer(version));
	char *text = json_dumps(t, JSON_COMPACT);
	json_decref(t);
	if (cf_compile_json(NULL, text, strlen(text), &bin, &len, &err))
		fail_msg("compile: %s", err.msg);
	fb_sha256_hex(bin, len, sha);
	if (ag_slot_apply(f->st, CH, sha, version, bin, len, 1790000000 + version, &err))
		fail_msg("apply: %s", err.msg);
	free(bin);
	free(text);
}

/* tests/data/schema/valid/basic.json: 1 block ^mimikatz\.exe$ (icase);
 * 2 alert powershell -enc... with parent winword.exe; 3 block hash + .dll;
 * 4 alert 203.0.113.0/24 port 443; 5 log 2001:db8::/32. */
static void stage_basic(struct fix *f, int64_t version, char *sha)
{
	json_t *t = json_load_file("tests/data/schema/valid/basic.json", 0, NULL);
	assert_non_null(t);
	stage_json(f, t, version, sha);
}

static void write_input(const struct fix *f, const char *text)
{
	assert_int_equal(fb_file_write_atomic(f->input, text, strlen(text), 0644), FB_OK);
}

static struct ag_scan_result pass(struct fix *f, const struct ag_scan_opts *o)
{
	struct ag_scan_result res;
	struct fb_err err = {""};
	if (ag_scan_pass(&f->sc, f->st, f->reg, o, &f->h, &res, &err))
		fail_msg("pass: %s", err.msg);
	return res;
}

static const char *const EVENTS =
        "# what a host saw\n"
        "{\"process_name\":\"mimikatz.exe\",\"command_line\":\"mimikatz.exe "
        "privilege::debug\"}\n"
        "{\"process_name\":\"PowerShell.exe\",\"parent_name\":\"winword.exe\","
        "\"command_line\":\"powershell -enc SQBFAFgAIAAoAE4AZQB3AC0A\"}\n"
        "\n"
        "{\"process_name\":\"bash\",\"command_line\":\"bash -l\"}\n"
        "not json\n"
        "  {\"remote_addr\":\"203.0.113.9\",\"remote_port\":443}";

static void test_scan_input_file(void **state)
{
	struct fix *f = *state;
	char sha[FB_SHA256_HEX_LEN + 1];
	struct ag_scan_opts o = {.input = f->input, .max_events = 256, .log = capture_log};
	write_input(f, EVENTS);
	/* nothing active: nothing to do, not even the events */
	struct ag_scan_result res = pass(f, &o);
	assert_int_equal(res.channels, 0);
	assert_int_equal(res.events, 0);
	assert_int_equal(f->h.n_ch, 0);

	stage_basic(f, 1, sha);
	res = pass(f, &o);
	assert_int_equal(res.channels, 1);
	assert_int_equal(res.events, 4); /* the comment, blank and malformed lines skipped */
	assert_int_equal(res.evals, 4);
	assert_int_equal(res.matches, 3);
	assert_false(res.truncated);
	assert_int_equal(warns, 1);
	assert_non_null(strstr(last_warn, "line 6 skipped"));
	struct ag_chan_health *c = ag_health_channel(&f->h, CH);
	assert_int_equal(c->evals, 4);
	assert_int_equal(c->detections, 3); /* mimikatz, powershell, the c2 address */
	assert_int_equal(c->blocks, 1);     /* mimikatz: would block */
	assert_int_equal(c->errors, 0);
	assert_int_equal(c->timeouts, 0);
	assert_string_equal(f->sc.files[0].sha256, sha);
	/* counters add up over the interval */
	pass(f, &o);
	assert_int_equal(c->evals, 8);
	assert_int_equal(c->blocks, 2);

	/* bounded: at most max_events; none at all with 0 */
	o.max_events = 2;
	res = pass(f, &o);
	assert_int_equal(res.events, 2);
	assert_int_equal(c->evals, 10);
	o.max_events = 0;
	res = pass(f, &o);
	assert_int_equal(res.evals, 0);
	assert_int_equal(c->evals, 10);

	/* new content is loaded in place of the old */
	char sha2[FB_SHA256_HEX_LEN + 1];
	stage_basic(f, 2, sha2);
	o.max_events = 256;
	pass(f, &o);
	assert_int_equal(f->sc.n, 1);
	assert_string_equal(f->sc.files[0].sha256, sha2);
	assert_int_equal(c->evals, 14);
	/* a deactivated channel is dropped */
	struct fb_err err = {""};
	assert_int_equal(ag_slot_deactivate(f->st, CH, 1790000100, &err), FB_OK);
	res = pass(f, &o);
	assert_int_equal(res.channels, 0);
	assert_int_equal(f->sc.n, 0);

	/* an input that cannot be read fails the pass and counts nothing */
	stage_basic(f, 3, sha);
	o.input = "/nonexistent/events.jsonl";
	assert_int_not_equal(ag_scan_pass(&f->sc, f->st, f->reg, &o, &f->h, &res, &err), FB_OK);
	assert_non_null(strstr(err.msg, "scan-input /nonexistent/events.jsonl"));
	assert_int_equal(c->evals, 14);
}

/* Over the step budget: every evaluation is a time-out, none a detection. */
static void test_scan_timeouts(void **state)
{
	struct fix *f = *state;
	char sha[FB_SHA256_HEX_LEN + 1];
	stage_basic(f, 1, sha);
	write_input(f, EVENTS);
	struct ag_scan_opts o = {
	        .input = f->input, .max_events = 256, .budget = 2, .log = capture_log};
	struct ag_scan_result res = pass(f, &o);
	struct ag_chan_health *c = ag_health_channel(&f->h, CH);
	assert_int_equal(res.evals, 4);
	assert_int_equal(c->timeouts, 4);
	assert_int_equal(c->detections, 0);
	assert_int_equal(c->errors, 0);
	assert_non_null(strstr(last_warn, "4 time-out(s)"));
	assert_non_null(strstr(last_warn, "step budget"));
	/* with the default budget the same content evaluates */
	o.budget = 0;
	pass(f, &o);
	assert_int_equal(c->timeouts, 4);
	assert_int_equal(c->detections, 3);
}

/* A file that cannot be loaded: every evaluation is an error. */
static void test_scan_errors(void **state)
{
	struct fix *f = *state;
	char sha[FB_SHA256_HEX_LEN + 1], path[4096];
	stage_basic(f, 1, sha);
	write_input(f, EVENTS);
	struct ag_scan_opts o = {.input = f->input, .max_events = 256, .log = capture_log};
	/* the slot's bytes changed on disk */
	assert_int_equal(ag_slot_path(f->st, CH, AG_SLOT_NONE, path, sizeof path), FB_OK);
	assert_int_equal(fb_file_write_atomic(path, "junk", 4, 0644), FB_OK);
	struct ag_scan_result res = pass(f, &o);
	struct ag_chan_health *c = ag_health_channel(&f->h, CH);
	assert_int_equal(res.evals, 4);
	assert_int_equal(c->errors, 4);
	assert_int_equal(c->detections, 0);
	assert_non_null(strstr(all_warns, "cannot be evaluated"));
	assert_non_null(strstr(all_warns, "not the content"));
	/* the warning is not repeated while nothing changes (the malformed
	 * input line is, once per pass) */
	int w = warns;
	pass(f, &o);
	assert_int_equal(c->errors, 8);
	assert_int_equal(warns, w + 1);
	assert_null(strstr(last_warn, "cannot be evaluated"));

	/* a build whose registry lacks a template the file uses (network_rule) */
	char sha2[FB_SHA256_HEX_LEN + 1], tdir[128], cmd[512];
	stage_basic(f, 2, sha2);
	snprintf(tdir, sizeof tdir, "%s/templates", f->dir);
	snprintf(cmd, sizeof cmd,
	         "mkdir '%s' && cp schema/templates/process_rule.json "
	         "schema/templates/file_hash.json '%s'/",
	         tdir, tdir);
	assert_int_equal(system(cmd), 0);
	struct cf_registry *small = NULL;
	struct fb_err err = {""};
	assert_int_equal(cf_registry_load_dir(tdir, &small, &err), FB_OK);
	res = (struct ag_scan_result){0};
	assert_int_equal(ag_scan_pass(&f->sc, f->st, small, &o, &f->h, &res, &err), FB_OK);
	assert_int_equal(c->errors, 12);
	assert_non_null(strstr(all_warns, "does not parse"));
	assert_non_null(strstr(all_warns, "unknown template id 3")); /* the parser's reason */
	ag_scanner_cleanup(&f->sc);                                  /* its files borrow small */
	cf_registry_free(small);
	/* the full registry evaluates it again */
	pass(f, &o);
	assert_int_equal(c->errors, 12);
	assert_int_equal(c->detections, 3);
}

/* The host's real processes: this test program is one of them. */
static void test_scan_proc(void **state)
{
	struct fix *f = *state;
	char sha[FB_SHA256_HEX_LEN + 1];
	json_t *t =
	        json_pack("{s:i, s:[{s:i, s:i, s:i, s:[{s:s}, {s:i}, n, {s:s}, n, n]}]}", "format",
	                  1, "instances", "id", 7, "template", 1, "template_version", 1, "fields",
	                  "string", "this test", "int", 3, "regex", "test_agent_health");
	assert_non_null(t);
	stage_json(f, t, 1, sha);
	struct ag_scan_opts o = {.max_events = AG_SCAN_MAX_EVENTS, .log = capture_log};
	struct ag_scan_result res = pass(f, &o);
	struct ag_chan_health *c = ag_health_channel(&f->h, CH);
	assert_true(res.events >= 1);
	assert_int_equal(c->evals, res.events);
	assert_true(c->detections >= 1); /* this process's command line */
	assert_int_equal(c->blocks, c->detections);
	assert_int_equal(c->errors + c->timeouts, 0);
	assert_int_equal(warns, 0);

	/* ag_scan_events alone, bounded */
	struct cf_event *evs[3] = {0};
	size_t n = 0;
	struct fb_err err = {""};
	assert_int_equal(ag_scan_events(&o, evs, 1, &n, &err), FB_OK);
	assert_int_equal(n, 1);
	cf_event_free(evs[0]);
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
	        cmocka_unit_test_setup_teardown(test_scan_input_file, fix_setup, fix_teardown),
	        cmocka_unit_test_setup_teardown(test_scan_timeouts, fix_setup, fix_teardown),
	        cmocka_unit_test_setup_teardown(test_scan_errors, fix_setup, fix_teardown),
	        cmocka_unit_test_setup_teardown(test_scan_proc, fix_setup, fix_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
