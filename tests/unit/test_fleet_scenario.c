/* Unit tests of fb-fleet's scenario files: parsing and refusals, rescaling
 * the rings to a fleet size, the time scale applied to every duration and to
 * the policy overrides, and the expectation checks on a summary. Every file
 * in tests/e2e/scenarios must parse. */
#include "../../clients/fleet/scenario.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char *BASE =
        "{\"name\":\"t\",\"channel\":{\"id\":291,\"name\":\"c\"},"
        "\"rings\":[{\"name\":\"canary\",\"agents\":10},{\"name\":\"early\",\"agents\":30},"
        "{\"name\":\"ga\",\"agents\":60}],"
        "\"timing\":{\"heartbeat_s\":1,\"poll_s\":2,\"reboot_s\":0.5},"
        "\"contents\":{\"base\":{\"upload\":\"base.json\"},"
        "\"bad\":{\"upload\":\"/abs/next.json\",\"crash_probability\":1,\"crash_delay_s\":0.5,"
        "\"after_crash\":\"silent\",\"boot_loop\":true}},"
        "\"baseline\":\"base\","
        "\"blips\":[{\"ring\":\"early\",\"fraction\":0.2,\"after_s\":1,\"duration_s\":3}],"
        "\"rollout\":{\"content\":\"bad\",\"policy\":{\"min_bake_s\":3,\"silence_timeout_s\":5,"
        "\"min_healthy\":10},\"ring_policies\":{\"ga\":{\"min_bake_s\":7,\"max_wait_s\":9}}},"
        "\"timeout_s\":100,"
        "\"expect\":{\"state\":[\"halted\",\"reverted\"],\"max_ring\":\"canary\","
        "\"max_exposure\":\"ring0\",\"on_bad_content\":0,\"false_halts\":0,"
        "\"halted_by_silence\":true}}";

static void test_parse_base(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	assert_int_equal(scn_parse(BASE, strlen(BASE), "/dir", 0, 0, &s, &err), FB_OK);
	assert_string_equal(s.name, "t");
	assert_int_equal(s.channel_id, 291);
	assert_int_equal(s.n_rings, 3);
	assert_int_equal(s.agents, 100);
	assert_int_equal(s.rings[1].agents, 30);
	assert_int_equal(s.n_contents, 2);
	assert_string_equal(s.contents[s.baseline].name, "base");
	assert_string_equal(s.contents[s.baseline].upload, "/dir/base.json");
	assert_string_equal(s.contents[s.rollout].upload, "/abs/next.json");
	assert_int_equal(s.contents[s.rollout].after_crash, SCN_SILENT);
	assert_true(s.contents[s.rollout].boot_loop);
	assert_true(s.time_scale == 1.0);
	assert_int_equal(s.n_blips, 1);
	assert_int_equal(s.blips[0].ring, 1);
	assert_int_equal(s.expect.max_ring, 0);
	assert_int_equal(s.expect.max_exposure, -2);
	assert_int_equal(s.expect.n_states, 2);
	assert_true(s.expect.halted_by_silence);
	assert_int_equal(json_integer_value(json_object_get(s.policy, "min_bake_s")), 3);
	assert_int_equal(json_integer_value(json_object_get(s.policy, "min_healthy")), 10);
	scn_cleanup(&s);
}

static void test_rescale_agents_and_time(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	/* 10,000 agents: rings keep their shares, time scale max(1, N/1250) = 8 */
	assert_int_equal(scn_parse(BASE, strlen(BASE), NULL, 10000, 0, &s, &err), FB_OK);
	assert_int_equal(s.agents, 10000);
	assert_int_equal(s.rings[0].agents, 1000);
	assert_int_equal(s.rings[1].agents, 3000);
	assert_int_equal(s.rings[2].agents, 6000);
	assert_true(s.time_scale == 8.0);
	assert_true(s.heartbeat_s == 8.0 && s.poll_s == 16.0 && s.reboot_s == 4.0);
	assert_true(s.blips[0].after_s == 8.0 && s.blips[0].duration_s == 24.0);
	assert_true(s.contents[s.rollout].crash_delay_s == 4.0);
	assert_true(s.timeout_s == 800.0);
	/* the policies' times scale, their counts and rates do not */
	assert_int_equal(json_integer_value(json_object_get(s.policy, "min_bake_s")), 24);
	assert_int_equal(json_integer_value(json_object_get(s.policy, "silence_timeout_s")), 40);
	assert_int_equal(json_integer_value(json_object_get(s.policy, "min_healthy")), 10);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(s.ring_policies, "ga"),
	                                                    "min_bake_s")),
	                 56);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(s.ring_policies, "ga"),
	                                                    "max_wait_s")),
	                 72);
	assert_int_equal(s.rings[0].agents + s.rings[1].agents + s.rings[2].agents, s.agents);
	scn_cleanup(&s);
	/* an explicit scale wins; a tiny fleet keeps at least one agent per ring */
	assert_int_equal(scn_parse(BASE, strlen(BASE), NULL, 5, 0.5, &s, &err), FB_OK);
	assert_true(s.time_scale == 0.5 && s.heartbeat_s == 0.5);
	assert_true(s.rings[0].agents >= 1 && s.rings[1].agents >= 1 && s.rings[2].agents >= 1);
	assert_int_equal(s.rings[0].agents + s.rings[1].agents + s.rings[2].agents, 5);
	scn_cleanup(&s);
	assert_int_equal(scn_parse(BASE, strlen(BASE), NULL, 2, 0, &s, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "too few"));
}

/* Replace the first occurrence of from in BASE by to and expect a refusal
 * whose message contains want. */
static void refused(const char *from, const char *to, const char *want)
{
	char buf[4096];
	const char *p = strstr(BASE, from);
	assert_non_null(p);
	snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - BASE), BASE, to, p + strlen(from));
	struct scenario s;
	struct fb_err err = {{0}};
	assert_int_equal(scn_parse(buf, strlen(buf), NULL, 0, 0, &s, &err), FB_EINVAL);
	if (!strstr(err.msg, want))
		fail_msg("refusal '%s' lacks '%s'", err.msg, want);
}

static void test_refusals(void **st)
{
	(void)st;
	refused("\"name\":\"t\"", "\"nmae\":\"t\"", "unknown field 'nmae'");
	refused("{\"name\":\"early\",\"agents\":30}", "{\"name\":\"canary\",\"agents\":30}",
	        "used twice");
	refused("\"agents\":30", "\"agents\":0", "rings[1].agents");
	refused("\"crash_probability\":1", "\"crash_probability\":1.5", "crash_probability");
	refused("\"after_crash\":\"silent\"", "\"after_crash\":\"hang\"", "after_crash");
	refused("\"baseline\":\"base\"", "\"baseline\":\"nope\"", "baseline");
	refused("\"content\":\"bad\"", "\"content\":\"base\"", "other than the baseline");
	refused("\"ring\":\"early\"", "\"ring\":\"mid\"", "no ring 'mid'");
	refused("\"max_ring\":\"canary\"", "\"max_ring\":\"x\"", "max_ring");
	refused("\"max_exposure\":\"ring0\"", "\"max_exposure\":-3", "max_exposure");
	refused("\"id\":291", "\"id\":0", "channel");
	refused("\"heartbeat_s\":1", "\"heartbeat_s\":0", "timing.heartbeat_s");
	refused("\"ring_policies\":{\"ga\":{\"min_bake_s\":7,\"max_wait_s\":9}}",
	        "\"ring_policies\":{\"ga\":7}", "ring_policies.ga must be an object");
	struct scenario s;
	struct fb_err err = {{0}};
	assert_int_equal(scn_parse("[1]", 3, NULL, 0, 0, &s, &err), FB_EINVAL);
	assert_int_equal(scn_parse("{", 1, NULL, 0, 0, &s, &err), FB_EINVAL);
}

static json_t *summary(const char *state, int ring_index, int exposure, int on_bad, int not_lkg,
                       int false_halts, int silent, int crashed)
{
	return json_pack("{s:{s:s,s:i,s:s},s:i,s:i,s:i,s:i,s:{s:i,s:i,s:i},s:{s:{s:b}}}", "rollout",
	                 "state", state, "ring_index", ring_index, "ring", "x",
	                 "exposure_under_test", exposure, "on_bad_content", on_bad,
	                 "exposed_not_on_last_known_good", not_lkg, "false_halts", false_halts,
	                 "halt_inputs", "silent", silent, "crashed", crashed, "boot_looped", 0,
	                 "uploads", "bad", "accepted", 1);
}

static int check(const struct scenario *s, json_t *sum, const char *failing)
{
	json_t *res = json_array();
	int ok = scn_check(s, sum, res);
	size_t i;
	json_t *r;
	int found = failing == NULL;
	json_array_foreach(res, i, r)
	{
		const char *name = json_string_value(json_object_get(r, "name"));
		int rok = json_is_true(json_object_get(r, "ok"));
		if (failing && strcmp(name, failing) == 0)
			found = !rok;
		else
			assert_true(rok);
	}
	assert_true(found);
	json_decref(res);
	json_decref(sum);
	return ok;
}

static void test_expectations(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	assert_int_equal(scn_parse(BASE, strlen(BASE), NULL, 0, 0, &s, &err), FB_OK);
	assert_true(check(&s, summary("halted", 0, 10, 0, 0, 0, 3, 0), NULL));
	assert_true(check(&s, summary("reverted", 0, 10, 0, 0, 0, 3, 0), NULL));
	assert_false(check(&s, summary("completed", 0, 10, 0, 0, 0, 3, 0), "state"));
	assert_false(check(&s, summary("halted", 1, 10, 0, 0, 0, 3, 0), "max_ring"));
	assert_false(check(&s, summary("halted", 0, 11, 0, 0, 0, 3, 0), "max_exposure"));
	assert_false(check(&s, summary("halted", 0, 10, 1, 0, 0, 3, 0), "on_bad_content"));
	assert_false(check(&s, summary("halted", 0, 10, 0, 0, 1, 3, 0), "false_halts"));
	assert_false(check(&s, summary("halted", 0, 10, 0, 0, 0, 3, 1), "halted_by_silence"));
	assert_false(check(&s, summary("halted", 0, 10, 0, 0, 0, 0, 0), "halted_by_silence"));
	scn_cleanup(&s);
}

/* Every committed scenario parses, at its own size and at 10,000 agents. */
static void test_committed_scenarios(void **st)
{
	(void)st;
	char dir[1024];
	snprintf(dir, sizeof dir, "%s/tests/e2e/scenarios",
	         getenv("FB_SRC") ? getenv("FB_SRC") : ".");
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l < 6 || strcmp(e->d_name + l - 5, ".json"))
			continue;
		char path[2048];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		struct scenario s;
		struct fb_err err = {{0}};
		for (int k = 0; k < 2; k++) {
			if (scn_load(path, NULL, k ? 10000 : 0, 0, &s, &err))
				fail_msg("%s", err.msg);
			assert_true(s.expect.n_states > 0);
			scn_cleanup(&s);
		}
		n++;
	}
	closedir(d);
	assert_true(n >= 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_base),
	        cmocka_unit_test(test_rescale_agents_and_time),
	        cmocka_unit_test(test_refusals),
	        cmocka_unit_test(test_expectations),
	        cmocka_unit_test(test_committed_scenarios),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
