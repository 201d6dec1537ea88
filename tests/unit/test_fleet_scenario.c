/* Unit tests of fb-fleet's scenario files: parsing and refusals, rescaling
 * the rings to a fleet size, the time scale applied to every duration and to
 * the policy overrides, platform segments and their spread over the rings,
 * several channels, tenants with content policies, and the expectation
 * checks on a summary. Every file in tests/e2e/scenarios must parse. */
#include "../../clients/fleet/outcome.h"

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
	assert_int_equal(s.ch[0].id, 291);
	assert_int_equal(s.n_rings, 3);
	assert_int_equal(s.agents, 100);
	assert_int_equal(s.rings[1].agents, 30);
	assert_int_equal(s.n_contents, 2);
	assert_string_equal(s.contents[s.ch[0].baseline].name, "base");
	assert_string_equal(s.contents[s.ch[0].baseline].upload, "/dir/base.json");
	assert_string_equal(s.contents[s.ch[0].rollout].upload, "/abs/next.json");
	assert_int_equal(s.contents[s.ch[0].rollout].after_crash, SCN_SILENT);
	assert_true(s.contents[s.ch[0].rollout].boot_loop);
	assert_true(s.time_scale == 1.0);
	assert_int_equal(s.n_blips, 1);
	assert_int_equal(s.blips[0].ring, 1);
	assert_int_equal(s.ch[0].expect.max_ring, 0);
	assert_int_equal(s.ch[0].expect.max_exposure, -2);
	assert_int_equal(s.ch[0].expect.n_states, 2);
	assert_true(s.ch[0].expect.halted_by_silence);
	assert_int_equal(json_integer_value(json_object_get(s.ch[0].policy, "min_bake_s")), 3);
	assert_int_equal(json_integer_value(json_object_get(s.ch[0].policy, "min_healthy")), 10);
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
	assert_true(s.contents[s.ch[0].rollout].crash_delay_s == 4.0);
	assert_true(s.timeout_s == 800.0);
	/* the policies' times scale, their counts and rates do not */
	assert_int_equal(json_integer_value(json_object_get(s.ch[0].policy, "min_bake_s")), 24);
	assert_int_equal(json_integer_value(json_object_get(s.ch[0].policy, "silence_timeout_s")),
	                 40);
	assert_int_equal(json_integer_value(json_object_get(s.ch[0].policy, "min_healthy")), 10);
	assert_int_equal(json_integer_value(json_object_get(
	                         json_object_get(s.ch[0].ring_policies, "ga"), "min_bake_s")),
	                 56);
	assert_int_equal(json_integer_value(json_object_get(
	                         json_object_get(s.ch[0].ring_policies, "ga"), "max_wait_s")),
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
	int ok = outcome_check(s, sum, res);
	size_t i;
	json_t *r;
	int found = failing == NULL;
	json_array_foreach(res, i, r)
	{
		const char *name = json_string_value(json_object_get(r, "name"));
		int rok = json_is_true(json_object_get(r, "ok"));
		if (failing && strcmp(name, failing) == 0)
			found = !rok;
		else if (!rok)
			fail_msg("%s failed: %s", name,
			         json_string_value(json_object_get(r, "detail")));
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

/* A gate v2 scenario: platforms, a content crashing one segment only and
 * late, two channels, v2 policy keys. */
static const char *V2 =
        "{\"name\":\"v2\",\"rings\":[{\"name\":\"canary\",\"agents\":100},"
        "{\"name\":\"early\",\"agents\":1000},{\"name\":\"ga\",\"agents\":1900}],"
        "\"platforms\":[{\"share\":0.95,\"os\":\"windows\",\"os_build\":\"22631\","
        "\"arch\":\"x86_64\",\"agent_version\":\"7.11\",\"extra\":{\"hw_model\":\"t14\"}},"
        "{\"share\":0.05,\"os\":\"windows\",\"os_build\":\"19045\",\"arch\":\"x86_64\"}],"
        "\"baseline_policy\":{\"watch_s\":2},"
        "\"channels\":[{\"id\":1101,\"name\":\"a\",\"contents\":{\"base\":{\"upload\":\"b.json\"},"
        "\"bad\":{\"upload\":\"n.json\",\"crash_probability\":0.5,\"crash_after_s\":30,"
        "\"segments\":{\"os_build\":[\"19045\"],\"arch\":[\"x86_64\",\"arm64\"]}}},"
        "\"baseline\":\"base\",\"rollout\":{\"content\":\"bad\",\"policy\":{\"min_bake_s\":6,"
        "\"min_exposure_s\":4,\"watch_s\":20,\"holdout\":0.02,\"holdout_min\":5,"
        "\"max_ratio\":2,\"min_excess\":0.005,\"min_segment_agents\":20,"
        "\"min_segment_canaries\":3}},"
        "\"expect\":{\"state\":[\"halted\",\"reverted\"],\"max_ring\":\"early\","
        "\"max_exposure\":\"early\",\"seen_state\":\"rolling\",\"reason_contains\":\"19045\"}},"
        "{\"id\":1102,\"name\":\"b\",\"contents\":{\"base\":{\"upload\":\"b2.json\"},"
        "\"good\":{\"upload\":\"g2.json\"}},\"baseline\":\"base\","
        "\"rollout\":{\"content\":\"good\"},"
        "\"expect\":{\"state\":\"completed\",\"min_ring\":\"ga\",\"false_halts\":0}}]}";

static void test_v2_parse(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	if (scn_parse(V2, strlen(V2), "/d", 0, 1, &s, &err))
		fail_msg("%s", err.msg);
	assert_true(s.gate_v2);
	assert_int_equal(s.n_channels, 2);
	assert_int_equal(s.ch[0].id, 1101);
	assert_int_equal(s.ch[1].id, 1102);
	assert_string_equal(s.ch[1].name, "b");
	/* content names are per channel: both have a "base" */
	assert_int_equal(s.n_contents, 4);
	assert_int_equal(s.contents[s.ch[1].baseline].channel, 1);
	assert_string_equal(s.contents[s.ch[1].baseline].upload, "/d/b2.json");
	assert_string_equal(s.contents[s.ch[1].rollout].name, "good");
	assert_int_equal(s.n_platforms, 2);
	assert_string_equal(s.platforms[0].fact[SCN_AGENT_VERSION], "7.11");
	assert_string_equal(s.platforms[1].fact[SCN_AGENT_VERSION], "");
	assert_int_equal(s.platforms[0].n_extra, 1);
	assert_string_equal(s.platforms[0].extra_key[0], "hw_model");
	assert_string_equal(s.platforms[0].extra_val[0], "t14");
	const struct scn_content *bad = &s.contents[s.ch[0].rollout];
	assert_int_equal(bad->platform_mask & 3u, 2u); /* 19045 only */
	assert_true(bad->crash_after_s == 30.0 && bad->crash_delay_s == 1.0);
	assert_int_equal(s.contents[s.ch[1].rollout].platform_mask & 3u, 3u);
	assert_int_equal(s.ch[0].expect.max_exposure_ring, 1);
	assert_int_equal(s.ch[0].expect.max_exposure, -1);
	assert_string_equal(s.ch[0].expect.seen_state, "rolling");
	assert_int_equal(s.ch[1].expect.min_ring, 2);
	assert_null(s.ch[1].policy);
	scn_cleanup(&s);

	/* 3,000 agents at time scale 2: durations double, counts and ratios do not */
	if (scn_parse(V2, strlen(V2), NULL, 0, 2, &s, &err))
		fail_msg("%s", err.msg);
	const json_t *p = s.ch[0].policy;
	assert_int_equal(json_integer_value(json_object_get(p, "min_bake_s")), 12);
	assert_int_equal(json_integer_value(json_object_get(p, "min_exposure_s")), 8);
	assert_int_equal(json_integer_value(json_object_get(p, "watch_s")), 40);
	assert_int_equal(json_integer_value(json_object_get(p, "holdout_min")), 5);
	assert_int_equal(json_integer_value(json_object_get(p, "min_segment_agents")), 20);
	assert_int_equal(json_integer_value(json_object_get(p, "min_segment_canaries")), 3);
	assert_true(json_real_value(json_object_get(p, "holdout")) == 0.02);
	assert_true(json_number_value(json_object_get(p, "max_ratio")) == 2.0);
	assert_int_equal(json_integer_value(json_object_get(s.baseline_policy, "watch_s")), 4);
	assert_true(s.contents[s.ch[0].rollout].crash_after_s == 60.0);
	assert_true(s.contents[s.ch[0].rollout].crash_delay_s == 2.0);
	scn_cleanup(&s);

	/* the single-channel form without v2 keys stays a v1 scenario */
	assert_int_equal(scn_parse(BASE, strlen(BASE), NULL, 0, 0, &s, &err), FB_OK);
	assert_false(s.gate_v2);
	assert_int_equal(s.n_channels, 1);
	assert_int_equal(s.n_platforms, 0);
	scn_cleanup(&s);
}

/* Every ring gets each platform's share; a 5 % platform is in ring 0 once
 * the ring has 10 agents. */
static void test_platform_spread(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	int64_t c[SCN_MAX_PLATFORMS];
	assert_int_equal(scn_parse(V2, strlen(V2), NULL, 0, 0, &s, &err), FB_OK);
	scn_ring_platforms(&s, 0, c);
	assert_int_equal(c[0], 95);
	assert_int_equal(c[1], 5);
	scn_ring_platforms(&s, 2, c);
	assert_int_equal(c[0], 1805);
	assert_int_equal(c[1], 95);
	scn_cleanup(&s);
	/* rescaled to 300 agents: rings 10/100/190, the 5 % platform still in ring 0 */
	assert_int_equal(scn_parse(V2, strlen(V2), NULL, 300, 0, &s, &err), FB_OK);
	assert_int_equal(s.rings[0].agents, 10);
	scn_ring_platforms(&s, 0, c);
	assert_int_equal(c[0] + c[1], 10);
	assert_int_equal(c[1], 1);
	scn_cleanup(&s);
	/* 60 agents: ring 0 has 2, 0.05 x 2 < 0.5, so none there */
	assert_int_equal(scn_parse(V2, strlen(V2), NULL, 60, 0, &s, &err), FB_OK);
	assert_int_equal(s.rings[0].agents, 2);
	scn_ring_platforms(&s, 0, c);
	assert_int_equal(c[0], 2);
	assert_int_equal(c[1], 0);
	scn_cleanup(&s);
	/* three platforms: the counts always add up to the ring */
	const char *three = "{\"rings\":[{\"name\":\"r\",\"agents\":7}],"
	                    "\"platforms\":[{\"share\":0.34,\"os\":\"a\",\"os_build\":\"1\","
	                    "\"arch\":\"x\"},{\"share\":0.33,\"os\":\"b\",\"os_build\":\"1\","
	                    "\"arch\":\"x\"},{\"share\":0.33,\"os\":\"c\",\"os_build\":\"1\","
	                    "\"arch\":\"x\"}],\"channel\":{\"id\":1},"
	                    "\"contents\":{\"b\":{\"upload\":\"b\"},\"n\":{\"upload\":\"n\"}},"
	                    "\"baseline\":\"b\",\"rollout\":{\"content\":\"n\"}}";
	for (int64_t n = 1; n <= 40; n++) {
		if (scn_parse(three, strlen(three), NULL, n, 1, &s, &err))
			fail_msg("%s", err.msg);
		scn_ring_platforms(&s, 0, c);
		assert_int_equal(c[0] + c[1] + c[2], n);
		if (n >= 2) /* 0.33 x 2 >= 0.5: everybody once the ring allows */
			assert_true(c[0] >= 1 && c[1] >= 1 && (n < 3 || c[2] >= 1));
		scn_cleanup(&s);
	}
}

/* Replace from by to in V2 and expect a refusal containing want. */
static void refused_v2(const char *from, const char *to, const char *want)
{
	char buf[8192];
	const char *p = strstr(V2, from);
	assert_non_null(p);
	snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - V2), V2, to, p + strlen(from));
	struct scenario s;
	struct fb_err err = {{0}};
	assert_int_equal(scn_parse(buf, strlen(buf), NULL, 0, 0, &s, &err), FB_EINVAL);
	if (!strstr(err.msg, want))
		fail_msg("refusal '%s' lacks '%s'", err.msg, want);
}

static void test_v2_refusals(void **st)
{
	(void)st;
	refused_v2("\"share\":0.05", "\"share\":0.5", "add up to 1.45");
	refused_v2("\"share\":0.05", "\"share\":0", "platforms[1].share");
	refused_v2("\"os_build\":\"19045\",", "", "platforms[1].os_build");
	refused_v2("\"os_build\":\"19045\",", "\"os_build\":\"19 045\",", "platforms[1].os_build");
	refused_v2("\"extra\":{\"hw_model\":\"t14\"}", "\"extra\":[1]", "platforms[0].extra");
	refused_v2("\"hw_model\":\"t14\"", "\"hw model\":\"t14\"", "key 'hw model'");
	refused_v2("\"share\":0.95,", "\"share\":0.95,\"cpu\":1,",
	           "platforms[0]: unknown field 'cpu'");
	refused_v2("\"os_build\":[\"19045\"]", "\"os_build\":[\"10240\"]", "matches none");
	refused_v2("\"os_build\":[\"19045\"]", "\"kernel\":[\"5\"]", "unknown fact 'kernel'");
	refused_v2("\"os_build\":[\"19045\"]", "\"os_build\":[]", "segments.os_build");
	refused_v2("\"crash_after_s\":30", "\"crash_after_s\":-1", "crash_after_s");
	refused_v2("\"id\":1102", "\"id\":1101", "used twice");
	refused_v2("\"id\":1102", "\"id\":0", "channels[1].id");
	refused_v2("\"rollout\":{\"content\":\"good\"}", "\"rollout\":{\"content\":\"bad\"}",
	           "channels[1].rollout.content");
	refused_v2("\"baseline\":\"base\"", "\"baseline\":\"bad2\"", "channels[0].baseline");
	refused_v2("\"max_exposure\":\"early\"", "\"max_exposure\":\"late\"", "max_exposure");
	refused_v2("\"seen_state\":\"rolling\"", "\"seen_state\":\"gone\"", "seen_state");
	refused_v2("\"state\":\"completed\"", "\"state\":\"done\"", "channels[1].expect.state[0]");
	refused_v2("\"min_ring\":\"ga\"", "\"min_ring\":\"x\"", "channels[1].expect.min_ring");
	refused_v2("\"name\":\"v2\",", "\"name\":\"v2\",\"channel\":{\"id\":3},",
	           "'channel' belongs inside each entry of channels");
	refused_v2("\"id\":1102,", "\"id\":1102,\"policy\":{},",
	           "channels[1]: unknown field 'policy'");
	refused_v2("\"baseline_policy\":{\"watch_s\":2}", "\"baseline_policy\":3",
	           "baseline_policy");
	/* segments need platforms; at most 4 channels */
	const char *seg = "\"segments\":{\"os_build\":[\"19045\"]";
	char buf[4096];
	const char *p = strstr(BASE, "\"boot_loop\":true");
	snprintf(buf, sizeof buf, "%.*s%s},%s", (int)(p - BASE), BASE, seg, p);
	struct scenario s;
	struct fb_err err = {{0}};
	assert_int_equal(scn_parse(buf, strlen(buf), NULL, 0, 0, &s, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "segments needs the scenario's platforms"));
	const char *ch =
	        "{\"id\":%d,\"contents\":{\"b\":{\"upload\":\"b\"},\"n\":{\"upload\":\"n\"}},"
	        "\"baseline\":\"b\",\"rollout\":{\"content\":\"n\"}}";
	int n = snprintf(buf, sizeof buf,
	                 "{\"rings\":[{\"name\":\"r\",\"agents\":3}],\"channels\":[");
	for (int k = 0; k < 5; k++) {
		n += snprintf(buf + n, sizeof buf - (size_t)n, k ? "," : "");
		n += snprintf(buf + n, sizeof buf - (size_t)n, ch, k + 1);
	}
	snprintf(buf + n, sizeof buf - (size_t)n, "]}");
	assert_int_equal(scn_parse(buf, strlen(buf), NULL, 0, 0, &s, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "1..4 channels"));
}

/* Per-channel expectations on summary.rollouts[k]. */
static json_t *ro_summary(const char *state, int ring_index, int exposure, int false_halts,
                          const char *seen, const char *reason)
{
	return json_pack("{s:{s:s,s:i,s:s,s:[s,s],s:s},s:i,s:i,s:i,s:i,s:n}", "rollout", "state",
	                 state, "ring_index", ring_index, "ring", "x", "states_seen", seen, state,
	                 "state_reason", reason, "exposure_under_test", exposure, "on_bad_content",
	                 0, "exposed_not_on_last_known_good", 0, "false_halts", false_halts,
	                 "halt_inputs");
}

static void test_v2_expectations(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	assert_int_equal(scn_parse(V2, strlen(V2), NULL, 0, 0, &s, &err), FB_OK);
	struct {
		json_t *a, *b;
		int ok;
		const char *failing;
	} cases[] = {
	        {ro_summary("halted", 1, 1100, 0, "rolling", "os_build 19045: 9 of 40"),
	         ro_summary("completed", 2, 3000, 0, "watching", ""), 1, NULL},
	        {ro_summary("halted", 1, 1101, 0, "rolling", "os_build 19045: 9 of 40"),
	         ro_summary("completed", 2, 3000, 0, "watching", ""), 0, "a: max_exposure"},
	        {ro_summary("halted", 1, 1100, 0, "rolling", "too many crashes"),
	         ro_summary("completed", 2, 3000, 0, "watching", ""), 0, "a: reason_contains"},
	        {ro_summary("reverted", 1, 1100, 0, "staged", "os_build 19045"),
	         ro_summary("completed", 2, 3000, 0, "watching", ""), 0, "a: seen_state"},
	        {ro_summary("halted", 1, 1100, 0, "rolling", "os_build 19045"),
	         ro_summary("halted", 1, 1100, 1, "rolling", ""), 0, "b: state"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *sum = json_pack("{s:[o,o]}", "rollouts", cases[i].a, cases[i].b);
		json_t *res = json_array();
		assert_int_equal(outcome_check(&s, sum, res), cases[i].ok);
		size_t k;
		json_t *r;
		int failed = 0;
		json_array_foreach(res, k, r)
		{
			const char *name = json_string_value(json_object_get(r, "name"));
			if (!json_is_true(json_object_get(r, "ok"))) {
				failed++;
				if (cases[i].failing && !strcmp(name, cases[i].failing))
					failed += 100;
			}
		}
		if (cases[i].failing)
			assert_true(failed > 100);
		else
			assert_int_equal(failed, 0);
		json_decref(res);
		json_decref(sum);
	}
	scn_cleanup(&s);
}

/* Four tenants (issue 18): early, ga, delayed 20 s, paused; 10 % of the
 * fleet stays the default tenant's. */
static const char *TEN =
        "{\"name\":\"ten\",\"channel\":{\"id\":291},"
        "\"rings\":[{\"name\":\"canary\",\"agents\":10},{\"name\":\"early\",\"agents\":20},"
        "{\"name\":\"ga\",\"agents\":30}],"
        "\"tenants\":[{\"name\":\"acme\",\"share\":0.3,\"mode\":\"early\"},"
        "{\"name\":\"globex\",\"share\":0.2,\"mode\":\"ga\"},"
        "{\"name\":\"initech\",\"share\":0.2,\"mode\":\"delayed\",\"delay_s\":20},"
        "{\"name\":\"umbrella\",\"share\":0.2,\"mode\":\"paused\"}],"
        "\"contents\":{\"base\":{\"upload\":\"b\"},\"good\":{\"upload\":\"n\"}},"
        "\"baseline\":\"base\",\"rollout\":{\"content\":\"good\"},"
        "\"expect\":{\"state\":\"completed\",\"tenants\":{"
        "\"acme\":{\"max_ring\":\"ga\",\"reached\":true},"
        "\"globex\":{\"reached\":true},"
        "\"initech\":{\"reached\":true,\"after_delay\":true},"
        "\"umbrella\":{\"reached\":false},"
        "\"default\":{\"max_exposure\":6}}}}";

static void test_tenants_parse(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	if (scn_parse(TEN, strlen(TEN), NULL, 0, 0, &s, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(s.n_tenants, 4);
	assert_string_equal(s.tenants[0].name, "acme");
	assert_int_equal(s.tenants[0].mode, SCN_EARLY);
	assert_int_equal(s.tenants[1].mode, SCN_GA);
	assert_int_equal(s.tenants[2].mode, SCN_DELAYED);
	assert_int_equal(s.tenants[2].delay_s, 20);
	assert_int_equal(s.tenants[3].mode, SCN_PAUSED);
	assert_int_equal(s.tenants[3].delay_s, 0);
	assert_int_equal(scn_tenant_index(&s, "umbrella"), 3);
	assert_int_equal(scn_tenant_index(&s, "default"), -1);
	assert_int_equal(scn_max_delay_s(&s), 20);
	const struct scn_expect *x = &s.ch[0].expect;
	assert_int_equal(x->n_tenants, 5);
	assert_int_equal(x->tenants[0].tenant, 0);
	assert_int_equal(x->tenants[0].max_ring, 2);
	assert_int_equal(x->tenants[0].reached, 1);
	assert_int_equal(x->tenants[0].max_exposure, -1);
	assert_int_equal(x->tenants[2].after_delay, 1);
	assert_int_equal(x->tenants[3].reached, 0);
	assert_int_equal(x->tenants[3].max_exposure, -1);
	assert_int_equal(x->tenants[4].tenant, 4); /* the default tenant */
	assert_int_equal(x->tenants[4].max_ring, -1);
	scn_cleanup(&s);
	/* the delay scales with the time scale, rounded up to whole seconds */
	if (scn_parse(TEN, strlen(TEN), NULL, 0, 2.5, &s, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(s.tenants[2].delay_s, 50);
	scn_cleanup(&s);
	if (scn_parse(TEN, strlen(TEN), NULL, 0, 0.33, &s, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(s.tenants[2].delay_s, 7);
	scn_cleanup(&s);
	/* without tenants: none, no delay */
	assert_int_equal(scn_parse(BASE, strlen(BASE), NULL, 0, 0, &s, &err), FB_OK);
	assert_int_equal(s.n_tenants, 0);
	assert_int_equal(scn_max_delay_s(&s), 0);
	assert_int_equal(s.ch[0].expect.n_tenants, 0);
	scn_cleanup(&s);
}

/* Every ring holds each tenant's share, the rest is the default tenant's;
 * ring 0 keeps an agent of every tenant with share x size >= 0.5. */
static void test_tenant_spread(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	int64_t c[SCN_MAX_TENANTS + 1];
	assert_int_equal(scn_parse(TEN, strlen(TEN), NULL, 0, 0, &s, &err), FB_OK);
	scn_ring_tenants(&s, 0, c);
	assert_int_equal(c[0], 3);
	assert_int_equal(c[1], 2);
	assert_int_equal(c[2], 2);
	assert_int_equal(c[3], 2);
	assert_int_equal(c[4], 1);
	scn_ring_tenants(&s, 2, c);
	assert_int_equal(c[0], 9);
	assert_int_equal(c[1] + c[2] + c[3], 18);
	assert_int_equal(c[4], 3);
	scn_cleanup(&s);
	for (int64_t n = 3; n <= 200; n += 7) {
		if (scn_parse(TEN, strlen(TEN), NULL, n, 1, &s, &err))
			fail_msg("%lld agents: %s", (long long)n, err.msg);
		for (int r = 0; r < s.n_rings; r++) {
			int64_t sum = 0;
			scn_ring_tenants(&s, r, c);
			for (int t = 0; t <= s.n_tenants; t++)
				sum += c[t];
			assert_int_equal(sum, s.rings[r].agents);
			if (s.rings[r].agents >= 3) /* 0.3 x 3 >= 0.5 */
				assert_true(c[0] >= 1);
		}
		scn_cleanup(&s);
	}
	/* shares summing to exactly 1 leave the default tenant nothing */
	const char *full = "{\"rings\":[{\"name\":\"r\",\"agents\":10}],\"channel\":{\"id\":1},"
	                   "\"tenants\":[{\"name\":\"a\",\"share\":0.7,\"mode\":\"early\"},"
	                   "{\"name\":\"b\",\"share\":0.1,\"mode\":\"ga\"},"
	                   "{\"name\":\"c\",\"share\":0.1,\"mode\":\"ga\"},"
	                   "{\"name\":\"d\",\"share\":0.1,\"mode\":\"ga\"}],"
	                   "\"contents\":{\"b\":{\"upload\":\"b\"},\"n\":{\"upload\":\"n\"}},"
	                   "\"baseline\":\"b\",\"rollout\":{\"content\":\"n\"}}";
	if (scn_parse(full, strlen(full), NULL, 0, 0, &s, &err))
		fail_msg("%s", err.msg);
	scn_ring_tenants(&s, 0, c);
	assert_int_equal(c[0], 7);
	assert_int_equal(c[1] + c[2] + c[3], 3);
	assert_int_equal(c[4], 0);
	scn_cleanup(&s);
}

/* Replace from by to in TEN and expect a refusal containing want. */
static void refused_ten(const char *from, const char *to, const char *want)
{
	char buf[8192];
	const char *p = strstr(TEN, from);
	assert_non_null(p);
	snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - TEN), TEN, to, p + strlen(from));
	struct scenario s;
	struct fb_err err = {{0}};
	assert_int_equal(scn_parse(buf, strlen(buf), NULL, 0, 0, &s, &err), FB_EINVAL);
	if (!strstr(err.msg, want))
		fail_msg("refusal '%s' lacks '%s'", err.msg, want);
}

static void test_tenant_refusals(void **st)
{
	(void)st;
	refused_ten("\"mode\":\"paused\"", "\"mode\":\"later\"",
	            "tenants[3].mode: unknown mode 'later'");
	refused_ten("\"mode\":\"paused\"", "\"mode\":3", "tenants[3].mode");
	refused_ten(",\"mode\":\"paused\"", "", "tenants[3].mode");
	refused_ten("\"share\":0.2,\"mode\":\"paused\"", "\"share\":0.4,\"mode\":\"paused\"",
	            "shares add up to 1.1, more than 1");
	refused_ten("\"share\":0.2,\"mode\":\"paused\"", "\"share\":0,\"mode\":\"paused\"",
	            "tenants[3].share");
	refused_ten("\"share\":0.2,\"mode\":\"paused\"", "\"share\":1.5,\"mode\":\"paused\"",
	            "tenants[3].share");
	refused_ten("\"delay_s\":20", "\"delay_s\":0", "tenants[2].delay_s must be a number");
	refused_ten("\"delay_s\":20", "\"delay_s\":7776001", "tenants[2].delay_s must be a number");
	refused_ten("\"delay_s\":20", "\"delay_s\":\"2h\"", "tenants[2].delay_s");
	refused_ten(",\"delay_s\":20", "", "tenants[2].delay_s must be");
	refused_ten("\"mode\":\"paused\"", "\"mode\":\"paused\",\"delay_s\":5",
	            "tenants[3].delay_s belongs to mode delayed only");
	refused_ten("\"name\":\"globex\"", "\"name\":\"acme\"", "tenant name 'acme' is used twice");
	refused_ten("\"name\":\"globex\"", "\"name\":\"Globex\"", "must match");
	refused_ten("\"name\":\"globex\"", "\"name\":\"-globex\"", "must match");
	refused_ten("\"name\":\"globex\"", "\"name\":\"default\"", "server's own tenant");
	refused_ten("\"mode\":\"paused\"}", "\"mode\":\"paused\",\"group\":\"x\"}",
	            "tenants[3]: unknown field 'group'");
	/* no early host in ring 0: no rollout could start */
	refused_ten("\"share\":0.3,\"mode\":\"early\"", "\"share\":0.4,\"mode\":\"ga\"",
	            "ring 0 (canary, 10 agents) would hold no agent of an early tenant");
	/* expectations name the scenario's tenants */
	refused_ten("\"globex\":{\"reached\":true}", "\"hooli\":{\"reached\":true}",
	            "expect.tenants.hooli: no tenant 'hooli'");
	refused_ten("\"globex\":{\"reached\":true}", "\"globex\":{\"reached\":1}",
	            "expect.tenants.globex.reached must be a boolean");
	refused_ten("\"globex\":{\"reached\":true}", "\"globex\":{\"after_delay\":true}",
	            "after_delay needs a tenant of mode delayed");
	refused_ten("\"globex\":{\"reached\":true}", "\"globex\":{\"max_ring\":\"late\"}",
	            "expect.tenants.globex.max_ring must name a ring");
	refused_ten("\"default\":{\"max_exposure\":6}", "\"default\":{\"max_exposure\":-1}",
	            "expect.tenants.default.max_exposure");
	refused_ten("\"default\":{\"max_exposure\":6}", "\"default\":{\"min_exposure\":1}",
	            "expect.tenants.default: unknown field 'min_exposure'");
	/* a list of 1..8 tenants */
	char buf[4096];
	struct scenario s;
	struct fb_err err = {{0}};
	static const char *const lists[] = {"{}", "[]", "[1]"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(buf, sizeof buf,
		         "{\"rings\":[{\"name\":\"r\",\"agents\":3}],\"channel\":{\"id\":1},"
		         "\"tenants\":%s,\"contents\":{\"b\":{\"upload\":\"b\"},"
		         "\"n\":{\"upload\":\"n\"}},\"baseline\":\"b\",\"rollout\":{\"content\":"
		         "\"n\"}}",
		         lists[i]);
		assert_int_equal(scn_parse(buf, strlen(buf), NULL, 0, 0, &s, &err), FB_EINVAL);
		assert_non_null(strstr(err.msg, i < 2 ? "tenants must be an array of 1..8"
		                                      : "tenants[0] must be an object"));
	}
	/* per-tenant expectations need tenants */
	const char *p = strstr(BASE, "\"halted_by_silence\":true");
	snprintf(buf, sizeof buf, "%.*s\"tenants\":{\"a\":{}},%s", (int)(p - BASE), BASE, p);
	assert_int_equal(scn_parse(buf, strlen(buf), NULL, 0, 0, &s, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "expect.tenants needs the scenario's tenants"));
	/* a delay that only the time scale pushes past the server's limit */
	const char *far = "\"delay_s\":20";
	p = strstr(TEN, far);
	snprintf(buf, sizeof buf, "%.*s\"delay_s\":7776000%s", (int)(p - TEN), TEN,
	         p + strlen(far));
	assert_int_equal(scn_parse(buf, strlen(buf), NULL, 0, 2, &s, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "at time scale 2"));
}

/* The per-tenant summary as fb-fleet prints it (fleet_tenants_json). */
static json_t *tenant(int agents, int live, int base_applied, int good_applied, int good_running,
                      int canary, int early, int ga, json_t *first)
{
	return json_pack("{s:i,s:i,s:{s:i,s:i},s:{s:i,s:i},s:{s:i,s:i,s:i},s:o}", "agents", agents,
	                 "live", live, "applied", "base", base_applied, "good", good_applied,
	                 "running", "base", live - good_running, "good", good_running,
	                 "applied_by_ring", "canary", canary, "early", early, "ga", ga,
	                 "first_apply_after_end_s", first);
}

static json_t *ten_summary(json_t *acme, json_t *globex, json_t *initech, json_t *umbrella,
                           json_t *dflt)
{
	return json_pack("{s:{s:s,s:i},s:{s:o,s:o,s:o,s:o,s:o}}", "rollout", "state", "completed",
	                 "ring_index", 2, "tenants", "acme", acme, "globex", globex, "initech",
	                 initech, "umbrella", umbrella, "default", dflt);
}

static void test_tenant_expectations(void **st)
{
	(void)st;
	struct scenario s;
	struct fb_err err = {{0}};
	assert_int_equal(scn_parse(TEN, strlen(TEN), NULL, 0, 0, &s, &err), FB_OK);
#define ACME       tenant(18, 18, 18, 18, 18, 3, 6, 9, json_real(-20))
#define GLOBEX     tenant(12, 12, 12, 12, 12, 0, 0, 12, json_real(-3))
#define INITECH(d) tenant(12, 12, 12, 12, 12, 0, 0, 12, d)
#define UMBRELLA   tenant(12, 12, 12, 0, 0, 0, 0, 0, json_null())
#define DFLT       tenant(6, 6, 6, 6, 6, 1, 2, 3, json_real(-19))
	assert_true(check(&s, ten_summary(ACME, GLOBEX, INITECH(json_real(20.4)), UMBRELLA, DFLT),
	                  NULL));
	/* a whole second early still passes: the server's completion time has whole
	 * seconds */
	assert_true(check(&s, ten_summary(ACME, GLOBEX, INITECH(json_real(19.2)), UMBRELLA, DFLT),
	                  NULL));
	assert_false(check(&s, ten_summary(ACME, GLOBEX, INITECH(json_real(2.5)), UMBRELLA, DFLT),
	                   "tenant initech: after_delay"));
	assert_false(check(&s, ten_summary(ACME, GLOBEX, INITECH(json_null()), UMBRELLA, DFLT),
	                   "tenant initech: after_delay"));
	assert_false(
	        check(&s,
	              ten_summary(ACME, GLOBEX, tenant(12, 12, 12, 12, 11, 0, 0, 12, json_real(21)),
	                          UMBRELLA, DFLT),
	              "tenant initech: reached"));
	assert_false(check(&s,
	                   ten_summary(ACME, GLOBEX, INITECH(json_real(21)),
	                               tenant(12, 12, 12, 1, 1, 0, 0, 1, json_real(1)), DFLT),
	                   "tenant umbrella: reached"));
	assert_false(check(&s,
	                   ten_summary(ACME, GLOBEX, INITECH(json_real(21)), UMBRELLA,
	                               tenant(6, 6, 6, 7, 6, 1, 2, 4, json_real(-19))),
	                   "tenant default: max_exposure"));
	/* a tenant missing from the summary fails its expectations */
	json_t *sum = ten_summary(ACME, GLOBEX, INITECH(json_real(21)), UMBRELLA, DFLT);
	json_object_del(json_object_get(sum, "tenants"), "globex");
	assert_false(check(&s, sum, "tenant globex: reached"));
	scn_cleanup(&s);
	/* max_ring: the early tenant's exposure stays in the canary ring */
	const char *halted = "\"acme\":{\"max_ring\":\"ga\",\"reached\":true}";
	const char *p = strstr(TEN, halted);
	char buf[4096];
	snprintf(buf, sizeof buf, "%.*s\"acme\":{\"max_ring\":\"canary\"}%s", (int)(p - TEN), TEN,
	         p + strlen(halted));
	assert_int_equal(scn_parse(buf, strlen(buf), NULL, 0, 0, &s, &err), FB_OK);
	assert_true(check(&s,
	                  ten_summary(tenant(18, 18, 18, 3, 0, 3, 0, 0, json_null()), GLOBEX,
	                              INITECH(json_real(21)), UMBRELLA, DFLT),
	                  NULL));
	assert_false(check(&s,
	                   ten_summary(tenant(18, 18, 18, 4, 0, 3, 1, 0, json_null()), GLOBEX,
	                               INITECH(json_real(21)), UMBRELLA, DFLT),
	                   "tenant acme: max_ring"));
#undef ACME
#undef GLOBEX
#undef INITECH
#undef UMBRELLA
#undef DFLT
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
			assert_true(s.ch[0].expect.n_states > 0);
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
	        cmocka_unit_test(test_v2_parse),
	        cmocka_unit_test(test_platform_spread),
	        cmocka_unit_test(test_v2_refusals),
	        cmocka_unit_test(test_v2_expectations),
	        cmocka_unit_test(test_tenants_parse),
	        cmocka_unit_test(test_tenant_spread),
	        cmocka_unit_test(test_tenant_refusals),
	        cmocka_unit_test(test_tenant_expectations),
	        cmocka_unit_test(test_committed_scenarios),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
