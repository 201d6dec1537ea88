/* Unit tests of the content interpreter (cf_content_eval), events, and the
 * preflight gate with each of its outcomes (ok, invalid, crash, time-out,
 * evaluation error), including a call from a multi-threaded process. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fbschema.h"

#define HASH "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static struct cf_registry *reg;

static int setup(void **state)
{
	struct fb_err err = {{0}};
	return cf_registry_load_dir("schema/templates", &reg, &err) == FB_OK ? 0 : -1;
}

static int teardown(void **state)
{
	cf_registry_free(reg);
	return 0;
}

static unsigned char *compile_path(const char *path, size_t *len)
{
	unsigned char *text = NULL, *bin = NULL;
	size_t n;
	struct fb_err err = {{0}};
	assert_int_equal(fb_file_read(path, CF_MAX_JSON, &text, &n), FB_OK);
	if (cf_compile_json(NULL, (char *)text, n, &bin, len, &err) != FB_OK)
		fail_msg("%s: %s", path, err.msg);
	free(text);
	return bin;
}

static struct cf_file *load(const char *path)
{
	size_t len;
	struct cf_file *f = NULL;
	struct fb_err err = {{0}};
	unsigned char *bin = compile_path(path, &len);
	if (cf_parse(reg, bin, len, &f, &err) != FB_OK)
		fail_msg("%s: %s", path, err.msg);
	free(bin);
	return f;
}

/* Evaluate an event given as JSON text against f with the default budget. */
static struct cf_verdict eval(const struct cf_file *f, const char *json)
{
	struct cf_event *ev = NULL;
	struct cf_verdict vd;
	struct fb_err err = {{0}};
	if (cf_event_from_text(json, strlen(json), &ev, &err) != FB_OK)
		fail_msg("event %s: %s", json, err.msg);
	if (cf_content_eval(f, ev, 0, &vd, &err) != FB_OK)
		fail_msg("eval %s: %s", json, err.msg);
	cf_event_free(ev);
	return vd;
}

static void expect(const struct cf_file *f, const char *json, enum cf_action act, uint32_t matches,
                   uint32_t first)
{
	struct cf_verdict vd = eval(f, json);
	if (vd.action != act || vd.matches != matches || vd.first_match != first)
		fail_msg("%s: expected action %d matches %u first %u, got %d %u %u", json, act,
		         matches, first, vd.action, vd.matches, vd.first_match);
}

/* tests/data/schema/valid/basic.json: 1 block ^mimikatz\.exe$ (icase);
 * 2 alert powershell -enc... with parent winword.exe; 3 block hash + .dll;
 * 4 alert 203.0.113.0/24 port 443; 5 log 2001:db8::/32. */
static void test_eval_rules(void **state)
{
	struct cf_file *f = load("tests/data/schema/valid/basic.json");
	expect(f, "{\"process_name\":\"MimiKatz.EXE\"}", CF_ACT_BLOCK, 1, 1);
	expect(f, "{\"process_name\":\"mimikatz.exe.bak\"}", CF_ACT_NONE, 0, 0);
	expect(f, "{\"process_name\":\"notmimikatz.exe\"}", CF_ACT_NONE, 0, 0);
	expect(f,
	       "{\"process_name\":\"PowerShell.exe\",\"parent_name\":\"winword.exe\","
	       "\"command_line\":\"powershell -enc SQBFAFgAIAAoAE4AZQB3AC0A\"}",
	       CF_ACT_ALERT, 1, 2);
	/* parent is an exact string rule: another parent does not match */
	expect(f,
	       "{\"process_name\":\"powershell.exe\",\"parent_name\":\"explorer.exe\","
	       "\"command_line\":\"powershell -enc SQBFAFgAIAAoAE4AZQB3AC0A\"}",
	       CF_ACT_NONE, 0, 0);
	/* a rule whose attribute the event lacks does not match */
	expect(f, "{\"process_name\":\"powershell.exe\",\"parent_name\":\"winword.exe\"}",
	       CF_ACT_NONE, 0, 0);
	expect(f,
	       "{\"file_sha256\":\"" HASH "\",\"file_path\":\"C:\\\\x\\\\evil.dll\","
	       "\"file_size\":10}",
	       CF_ACT_BLOCK, 1, 3);
	expect(f, "{\"file_sha256\":\"" HASH "\",\"file_path\":\"evil.exe\",\"file_size\":10}",
	       CF_ACT_NONE, 0, 0);
	expect(f,
	       "{\"file_sha256\":"
	       "\"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855\","
	       "\"file_path\":\"a.dll\",\"file_size\":0}",
	       CF_ACT_BLOCK, 1, 3);
	expect(f, "{\"remote_addr\":\"203.0.113.200\",\"remote_port\":443}", CF_ACT_ALERT, 1, 4);
	expect(f, "{\"remote_addr\":\"203.0.113.200\",\"remote_port\":80}", CF_ACT_NONE, 0, 0);
	expect(f, "{\"remote_addr\":\"203.0.114.1\",\"remote_port\":443}", CF_ACT_NONE, 0, 0);
	expect(f, "{\"remote_addr\":\"2001:db8:ffff::1\"}", CF_ACT_LOG, 1, 5);
	expect(f, "{\"remote_addr\":\"2001:db9::1\"}", CF_ACT_NONE, 0, 0);
	/* an IPv4 rule never matches an IPv6 address and vice versa */
	expect(f, "{\"remote_addr\":\"::ffff:203.0.113.5\",\"remote_port\":443}", CF_ACT_NONE, 0,
	       0);
	/* several rules: the highest action wins, first_match is the first rule */
	struct cf_verdict vd = eval(f, "{\"process_name\":\"mimikatz.exe\",\"remote_addr\":"
	                               "\"2001:db8::5\"}");
	assert_int_equal(vd.matches, 2);
	assert_int_equal(vd.action, CF_ACT_BLOCK);
	assert_int_equal(vd.action_rule, 1);
	assert_true(vd.steps > 0);
	expect(f, "{}", CF_ACT_NONE, 0, 0);
	assert_string_equal(cf_action_str(vd.action), "block");
	assert_string_equal(cf_action_str(CF_ACT_NONE), "none");
	cf_file_free(f);
}

/* named_pipe v1 and v2 evaluate through the same code. */
static void test_eval_named_pipe(void **state)
{
	struct cf_file *f = load("tests/data/schema/valid/mixed_versions.json");
	expect(f, "{\"named_pipe\":\"\\\\\\\\.\\\\pipe\\\\EVIL_0123abcd\"}", CF_ACT_BLOCK, 2, 1);
	expect(f, "{\"named_pipe\":\"\\\\\\\\.\\\\pipe\\\\evil_0123\"}", CF_ACT_NONE, 0, 0);
	cf_file_free(f);
}

/* JSON text of a file with n process_rule instances whose regex costs about
 * 200 states per subject byte. */
static char *heavy_json(int n)
{
	struct fb_buf b;
	fb_buf_init(&b, 1u << 24);
	assert_int_equal(fb_buf_addstr(&b, "{\"format\":1,\"channel\":9,\"content_version\":1,"
	                                   "\"instances\":["),
	                 FB_OK);
	for (int k = 1; k <= n; k++)
		assert_int_equal(
		        fb_buf_printf(&b,
		                      "%s{\"id\":%d,\"template\":1,\"template_version\":1,"
		                      "\"fields\":[{\"string\":\"r\"},{\"int\":1},{\"regex\":"
		                      "\"[a-z]{100}[0-9]{100}x\"},null,null,null]}",
		                      k > 1 ? "," : "", k),
		        FB_OK);
	assert_int_equal(fb_buf_addstr(&b, "]}"), FB_OK);
	return fb_buf_steal(&b, NULL);
}

static void test_eval_budget(void **state)
{
	char *json = heavy_json(200);
	unsigned char *bin = NULL;
	size_t len;
	struct cf_file *f = NULL;
	struct cf_event *ev = NULL;
	struct cf_verdict vd;
	struct fb_err err = {{0}};
	assert_int_equal(cf_compile_json(NULL, json, strlen(json), &bin, &len, &err), FB_OK);
	assert_int_equal(cf_parse(reg, bin, len, &f, &err), FB_OK);
	/* short subject: well within the default budget */
	assert_int_equal(cf_event_from_text("{\"process_name\":\"cmd.exe\"}", 26, &ev, &err),
	                 FB_OK);
	assert_int_equal(cf_content_eval(f, ev, 0, &vd, &err), FB_OK);
	assert_int_equal(vd.matches, 0);
	/* a small explicit budget is exceeded: an error naming where, not a hang */
	assert_int_equal(cf_content_eval(f, ev, 1000, &vd, &err), FB_ETIMEOUT);
	assert_non_null(strstr(err.msg, "step budget of 1000 exceeded at instance"));
	assert_true(vd.steps <= 1000);
	cf_event_free(ev);
	/* a 4096-byte subject against 200 such rules exceeds the default budget */
	json_t *o = json_object();
	char *big = malloc(4096);
	memset(big, 'a', 4096);
	json_object_set_new(o, "process_name", json_stringn(big, 4096));
	assert_int_equal(cf_event_from_json(o, &ev, &err), FB_OK);
	assert_int_equal(cf_content_eval(f, ev, 0, &vd, &err), FB_ETIMEOUT);
	assert_non_null(strstr(err.msg, "step budget of 50000000 exceeded"));
	assert_true(vd.steps <= (uint64_t)CF_DEFAULT_BUDGET);
	cf_event_free(ev);
	json_decref(o);
	free(big);
	cf_file_free(f);
	free(bin);
	free(json);
}

static void test_event_errors(void **state)
{
	struct cf_event *ev = NULL;
	struct fb_err err = {{0}};
	assert_int_equal(cf_event_from_text("[1]", 3, &ev, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "expected a JSON object"));
	assert_int_equal(cf_event_from_text("{\"a\":true}", 10, &ev, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "\"a\" must be a string or an integer"));
	assert_int_equal(cf_event_from_text("{\"a\":", 5, &ev, &err), FB_EINVAL);
	json_t *o = json_object();
	for (int k = 0; k < 33; k++) {
		char name[16];
		snprintf(name, sizeof name, "a%d", k);
		json_object_set_new(o, name, json_integer(k));
	}
	assert_int_equal(cf_event_from_json(o, &ev, &err), FB_ETOOBIG);
	json_decref(o);
	o = json_object();
	char *big = calloc(1, 4098);
	memset(big, 'a', 4097);
	json_object_set_new(o, "a", json_string(big));
	assert_int_equal(cf_event_from_json(o, &ev, &err), FB_ETOOBIG);
	assert_null(ev);
	json_decref(o);
	free(big);
}

static struct cf_preflight_report run_preflight(const char *path,
                                                const struct cf_preflight_limits *lim)
{
	size_t len;
	struct cf_preflight_report rep;
	unsigned char *bin = compile_path(path, &len);
	assert_int_equal(cf_preflight(reg, bin, len, "schema/corpus", lim, &rep), FB_OK);
	free(bin);
	return rep;
}

static void test_preflight_ok(void **state)
{
	struct cf_preflight_report rep = run_preflight("tests/data/schema/valid/basic.json", NULL);
	if (rep.outcome != CF_PF_OK)
		fail_msg("outcome %s: %s", cf_preflight_outcome_str(rep.outcome), rep.reason);
	/* the corpus (28 events) + one event per instance + one stress event */
	assert_true(rep.events >= 28 + 5 + 1);
	/* mimikatz.exe and the generated events match rules */
	assert_true(rep.matches >= 5);
	assert_non_null(strstr(rep.reason, "ok: "));
	assert_int_equal(rep.signal, 0);
	printf("preflight: %s (net_isolated=%d)\n", rep.reason, rep.net_isolated);
}

/* Without a corpus, each instance's generated event matches its own rule
 * (regex samples included) and the stress event matches none. */
static void test_preflight_generated(void **state)
{
	size_t len;
	struct cf_preflight_report rep;
	unsigned char *bin = compile_path("tests/data/schema/valid/basic.json", &len);
	assert_int_equal(cf_preflight(reg, bin, len, NULL, NULL, &rep), FB_OK);
	assert_int_equal(rep.outcome, CF_PF_OK);
	assert_int_equal(rep.events, 5 + 1);
	assert_int_equal(rep.matches, 5);
	free(bin);
}

static void test_preflight_invalid(void **state)
{
	struct cf_preflight_report rep =
	        run_preflight("tests/data/schema/invalid/cf291.json", NULL);
	assert_int_equal(rep.outcome, CF_PF_INVALID);
	assert_non_null(strstr(rep.reason, "expected 20, found 21"));
	assert_int_equal(rep.events, 0);
}

static void test_preflight_crash(void **state)
{
	struct cf_preflight_limits lim = {.test_fault = CF_PF_FAULT_CRASH};
	struct cf_preflight_report rep = run_preflight("tests/data/schema/valid/basic.json", &lim);
	assert_int_equal(rep.outcome, CF_PF_CRASH);
	assert_int_equal(rep.signal, SIGSEGV);
	assert_non_null(strstr(rep.reason, "crash: interpreter child killed by signal 11"));
}

static void test_preflight_timeout_wall(void **state)
{
	struct cf_preflight_limits lim = {
	        .wall_ms = 300, .cpu_seconds = 30, .test_fault = CF_PF_FAULT_HANG};
	int64_t t0 = fb_mono_ms();
	struct cf_preflight_report rep = run_preflight("tests/data/schema/valid/basic.json", &lim);
	assert_int_equal(rep.outcome, CF_PF_TIMEOUT);
	assert_int_equal(rep.signal, SIGKILL);
	assert_non_null(strstr(rep.reason, "within 300 ms"));
	assert_true(fb_mono_ms() - t0 < 5000);
}

static void test_preflight_timeout_cpu(void **state)
{
	struct cf_preflight_limits lim = {
	        .wall_ms = 20000, .cpu_seconds = 1, .test_fault = CF_PF_FAULT_HANG};
	struct cf_preflight_report rep = run_preflight("tests/data/schema/valid/basic.json", &lim);
	assert_int_equal(rep.outcome, CF_PF_TIMEOUT);
	assert_int_equal(rep.signal, SIGXCPU);
	assert_non_null(strstr(rep.reason, "CPU limit of 1 s"));
}

/* The child has no network: the probe (send a datagram to 127.0.0.1, crash
 * if that works) must find no socket or no route, so the outcome is ok. */
static void test_preflight_no_network(void **state)
{
	struct cf_preflight_limits lim = {.test_fault = CF_PF_FAULT_NET_PROBE};
	struct cf_preflight_report rep = run_preflight("tests/data/schema/valid/basic.json", &lim);
	if (rep.outcome != CF_PF_OK)
		fail_msg("network reachable from the preflight child: %s", rep.reason);
}

/* Real content that is too expensive to evaluate: no fault hook involved. */
static void test_preflight_eval_error(void **state)
{
	char *json = heavy_json(200);
	unsigned char *bin = NULL;
	size_t len;
	struct fb_err err = {{0}};
	struct cf_preflight_report rep;
	assert_int_equal(cf_compile_json(NULL, json, strlen(json), &bin, &len, &err), FB_OK);
	assert_int_equal(cf_preflight(reg, bin, len, "schema/corpus", NULL, &rep), FB_OK);
	assert_int_equal(rep.outcome, CF_PF_EVAL_ERROR);
	assert_non_null(strstr(rep.reason, "step budget of 50000000 exceeded"));
	free(bin);
	free(json);
}

static void test_preflight_bad_corpus(void **state)
{
	size_t len;
	struct cf_preflight_report rep;
	unsigned char *bin = compile_path("tests/data/schema/valid/basic.json", &len);
	assert_int_not_equal(cf_preflight(reg, bin, len, "/nonexistent", NULL, &rep), FB_OK);
	assert_int_equal(rep.outcome, CF_PF_ERROR);
	assert_non_null(strstr(rep.reason, "/nonexistent"));
	free(bin);
}

static volatile int stop_churn;

static void *churn(void *arg)
{
	while (!stop_churn) {
		void *p = malloc(64 + (size_t)(rand() % 4096));
		free(p);
	}
	return NULL;
}

/* The server calls preflight from a multi-threaded process: other threads
 * busy in malloc must not deadlock the child. */
static void test_preflight_threads(void **state)
{
	pthread_t th[2];
	stop_churn = 0;
	for (int k = 0; k < 2; k++)
		assert_int_equal(pthread_create(&th[k], NULL, churn, NULL), 0);
	for (int k = 0; k < 5; k++) {
		struct cf_preflight_limits lim = {.wall_ms = 20000};
		struct cf_preflight_report rep =
		        run_preflight("tests/data/schema/valid/basic.json", &lim);
		if (rep.outcome != CF_PF_OK)
			fail_msg("run %d: %s", k, rep.reason);
	}
	stop_churn = 1;
	for (int k = 0; k < 2; k++)
		pthread_join(th[k], NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_eval_rules),
	        cmocka_unit_test(test_eval_named_pipe),
	        cmocka_unit_test(test_eval_budget),
	        cmocka_unit_test(test_event_errors),
	        cmocka_unit_test(test_preflight_ok),
	        cmocka_unit_test(test_preflight_generated),
	        cmocka_unit_test(test_preflight_invalid),
	        cmocka_unit_test(test_preflight_crash),
	        cmocka_unit_test(test_preflight_timeout_wall),
	        cmocka_unit_test(test_preflight_timeout_cpu),
	        cmocka_unit_test(test_preflight_no_network),
	        cmocka_unit_test(test_preflight_eval_error),
	        cmocka_unit_test(test_preflight_bad_corpus),
	        cmocka_unit_test(test_preflight_threads),
	};
	return cmocka_run_group_tests_name("schema_eval", tests, setup, teardown);
}
