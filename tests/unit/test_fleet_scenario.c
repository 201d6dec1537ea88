/* Unit tests of fb-fleet's scenario files: parsing and refusals, rescaling
 * the rings to a fleet size, the time scale applied to every duration and to
 * the policy overrides, platform segments and their spread over the rings,
 * several channels, and the expectation checks on a summary. Every file in
 * tests/e2e/scenarios must parse. */
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
		assert_int_equal(scn_check(&s, sum, res), cases[i].ok);
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
	        cmocka_unit_test(test_committed_scenarios),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
