/* Admin policy bounds and emergency rollouts against the real firebreakd and
 * PostgreSQL: GET/PUT /v1/policy-bounds with its role checks and every
 * refusal (nothing stored), rollouts refused outside the bounds and accepted
 * inside (global and per ring, defaults included), a running rollout's
 * policy untouched by a later change of bounds, and emergency rollouts:
 * staged and served to nobody, a second different approver starts them at
 * ring 0, bake times below the normal bound down to the emergency floor and
 * no further, halting a staged one, and the audit trail. Each test has its
 * own database and server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the three above, which it needs */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fb.h"
#include "fbt.h"
#include "fbt_agent.h"
#include "fbt_env.h"
#include "fbt_rollout.h"

static struct fbt_env E;
static char *g_agentrole; /* an API token of role agent */

/* A number from this test's database (fbt_db_longf). */
#define Q(...) fbt_db_longf(E.db, __VA_ARGS__)

/* A refusal with its error code and a message that contains each of the
 * NULL-terminated needles. */
#define REFUSED(want, code, method, path, token, body, ...)                                        \
	fbt_env_refused(&E, (want), (code), (method), (path), (token), (body),                     \
	                (const char *const[]){__VA_ARGS__, NULL})

/* ---- environment ------------------------------------------------------------- */

static void env_up(void)
{
	fbt_env_up(&E, NULL);
	g_agentrole = fbt_token(E.db, "agent", "agt");
	assert_non_null(g_agentrole);
}

static int env_down(void **state)
{
	(void)state;
	fbt_env_down(&E);
	free(g_agentrole);
	g_agentrole = NULL;
	return 0;
}

/* POST /v1/rollouts of sha with more members ("" or ",\"k\":v"). */
static char *rollout_body(const char *sha, const char *more)
{
	char *b = malloc(4096);
	snprintf(b, 4096, "{\"channel\":%d,\"content\":\"%s\",\"reason\":\"test\"%s}", FBT_CH, sha,
	         more);
	return b;
}

static json_t *rollout_create(long want, const char *token, const char *sha, const char *more)
{
	char *b = rollout_body(sha, more);
	json_t *j = fbt_env_want(&E, want, "POST", "/v1/rollouts", token, b);
	free(b);
	return j;
}

static void rollout_refused(const char *sha, const char *more, const char *const *needles)
{
	char *b = rollout_body(sha, more);
	long before = Q("SELECT count(*) FROM rollouts");
	long audits = Q("SELECT count(*) FROM audit_log");
	fbt_env_refused(&E, 422, "policy_out_of_bounds", "POST", "/v1/rollouts", E.rel1, b,
	                needles);
	assert_int_equal(Q("SELECT count(*) FROM rollouts"), before);
	assert_int_equal(Q("SELECT count(*) FROM audit_log"), audits);
	free(b);
}
#define ROLLOUT_REFUSED(sha, more, ...)                                                            \
	rollout_refused((sha), (more), (const char *const[]){__VA_ARGS__, NULL})

static json_t *approve(long want, int64_t id, const char *token)
{
	return fbt_rollout_action(&E, want, id, "approve", token,
	                          "{\"reason\":\"second pair of eyes\"}");
}

/* ---- bounds ---------------------------------------------------------------------- */

static json_t *bounds_get(const char *token)
{
	return fbt_env_want(&E, 200, "GET", "/v1/policy-bounds", token, NULL);
}

/* The stored document as text, to compare before and after a refusal. */
static char *bounds_text(void)
{
	json_t *j = bounds_get(E.soc);
	json_object_del(j, "_raw");
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	return s;
}

static void put_ok(const char *body)
{
	fbt_env_expect(&E, 200, "PUT", "/v1/policy-bounds", E.admin, body);
}

/* A PUT refused with status/code and a message naming each needle; nothing
 * stored, nothing audited, no event. */
static void put_refused(long want, const char *code, const char *body, const char *const *needles)
{
	char *before = bounds_text();
	long versions = Q("SELECT count(*) FROM policy_bounds");
	long audits = Q("SELECT count(*) FROM audit_log");
	long events = Q("SELECT count(*) FROM notifications");
	fbt_env_refused(&E, want, code, "PUT", "/v1/policy-bounds", E.admin, body, needles);
	assert_int_equal(Q("SELECT count(*) FROM policy_bounds"), versions);
	assert_int_equal(Q("SELECT count(*) FROM audit_log"), audits);
	assert_int_equal(Q("SELECT count(*) FROM notifications"), events);
	char *after = bounds_text();
	assert_string_equal(before, after);
	free(before);
	free(after);
}
#define PUT_REFUSED(want, code, body, ...)                                                         \
	put_refused((want), (code), (body), (const char *const[]){__VA_ARGS__, NULL})

static void test_bounds_api(void **state)
{
	(void)state;
	env_up();
	/* none set: version 0, empty sections, the default emergency floor */
	json_t *j = bounds_get(E.soc);
	assert_int_equal(json_integer_value(json_object_get(j, "version")), 0);
	assert_int_equal(json_object_size(json_object_get(j, "bounds")), 0);
	assert_int_equal(json_object_size(json_object_get(j, "rings")), 0);
	assert_int_equal(json_object_size(json_object_get(j, "emergency")), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "emergency_floor"),
	                                                    "min_bake_s")),
	                 300);
	assert_true(json_is_null(json_object_get(j, "updated_by")));
	json_decref(j);
	json_decref(bounds_get(E.rel1));
	json_decref(bounds_get(E.admin));

	/* roles: operators read, only admin writes */
	static const char *doc =
	        "{\"bounds\":{\"min_bake_s\":{\"min\":600},\"confidence\":{\"min\":0.9,\"max\":"
	        "0.999}},\"rings\":{\"canary\":{\"hard_cap\":{\"min\":1,\"max\":5}}},"
	        "\"emergency\":{\"min_bake_s\":{\"min\":60}},\"reason\":\"change board 12\"}";
	fbt_env_expect(&E, 403, "GET", "/v1/policy-bounds", g_agentrole, NULL);
	fbt_env_expect(&E, 401, "GET", "/v1/policy-bounds", NULL, NULL);
	fbt_env_expect(&E, 403, "PUT", "/v1/policy-bounds", E.rel1, doc);
	fbt_env_expect(&E, 403, "PUT", "/v1/policy-bounds", E.soc, doc);
	fbt_env_expect(&E, 403, "PUT", "/v1/policy-bounds", g_agentrole, doc);
	assert_int_equal(Q("SELECT count(*) FROM policy_bounds"), 0);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action LIKE 'policy_bounds%%'"),
	                 0);

	/* the admin sets them: version 1, read back as written */
	j = fbt_env_want(&E, 200, "PUT", "/v1/policy-bounds", E.admin, doc);
	assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
	json_decref(j);
	j = bounds_get(E.soc);
	assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
	json_t *want = json_loads(doc, 0, NULL);
	assert_true(json_equal(json_object_get(j, "bounds"), json_object_get(want, "bounds")));
	assert_true(json_equal(json_object_get(j, "rings"), json_object_get(want, "rings")));
	assert_true(
	        json_equal(json_object_get(j, "emergency"), json_object_get(want, "emergency")));
	json_decref(want);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "emergency_floor"),
	                                                    "min_bake_s")),
	                 60);
	assert_string_equal(fbt_jstr(j, "updated_by"), "admin:ada");
	assert_string_equal(fbt_jstr(j, "reason"), "change board 12");
	assert_true(json_integer_value(json_object_get(j, "updated")) > 0);
	json_decref(j);
	/* audited before -> after, and an operator event */
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'policy_bounds.replace' "
	                   "AND actor = 'admin:ada' AND reason = 'change board 12' "
	                   "AND (before ->> 'version')::int = 0 AND (after ->> 'version')::int = 1 "
	                   "AND (after -> 'bounds' -> 'min_bake_s' ->> 'min')::int = 600"),
	                 1);
	assert_int_equal(Q("SELECT count(*) FROM notifications WHERE type = "
	                   "'policy_bounds.changed' AND (data ->> 'version')::int = 1"),
	                 1);

	/* every refusal names what is wrong and changes nothing */
	PUT_REFUSED(400, "bad_json", "{\"bounds\":", "malformed JSON");
	PUT_REFUSED(400, "bad_json", "[1]", "must be a JSON object");
	PUT_REFUSED(400, "invalid", "{\"bounds\":{}}", "reason");
	PUT_REFUSED(400, "invalid", "{\"bounds\":{},\"limits\":{},\"reason\":\"x\"}", "limits");
	PUT_REFUSED(400, "invalid", "{\"bounds\":[],\"reason\":\"x\"}", "bounds");
	PUT_REFUSED(422, "unknown_key", "{\"bounds\":{\"min_bake\":{\"min\":1}},\"reason\":\"x\"}",
	            "min_bake", "min_bake_s", "confidence");
	PUT_REFUSED(422, "unknown_key",
	            "{\"rings\":{\"canary\":{\"hardcap\":{\"max\":1}}},\"reason\":\"x\"}",
	            "rings.canary", "hardcap");
	PUT_REFUSED(400, "invalid", "{\"bounds\":{\"min_bake_s\":600},\"reason\":\"x\"}",
	            "bounds.min_bake_s");
	PUT_REFUSED(400, "invalid", "{\"bounds\":{\"min_bake_s\":{}},\"reason\":\"x\"}",
	            "bounds.min_bake_s");
	PUT_REFUSED(400, "invalid", "{\"bounds\":{\"min_bake_s\":{\"least\":1}},\"reason\":\"x\"}",
	            "bounds.min_bake_s", "least");
	PUT_REFUSED(400, "invalid", "{\"bounds\":{\"min_bake_s\":{\"min\":1.5}},\"reason\":\"x\"}",
	            "bounds.min_bake_s.min", "integer");
	PUT_REFUSED(400, "invalid",
	            "{\"bounds\":{\"confidence\":{\"min\":\"0.9\"}},\"reason\":\"x\"}",
	            "bounds.confidence.min", "number");
	PUT_REFUSED(422, "bad_bounds",
	            "{\"bounds\":{\"hard_cap\":{\"min\":5,\"max\":2}},\"reason\":\"x\"}",
	            "bounds.hard_cap", "min 5 is above max 2");
	PUT_REFUSED(422, "bad_bounds",
	            "{\"bounds\":{\"confidence\":{\"max\":1.5}},\"reason\":\"x\"}",
	            "bounds.confidence.max", "absolute bounds", "confidence");
	PUT_REFUSED(422, "bad_bounds",
	            "{\"bounds\":{\"min_bake_s\":{\"min\":-1}},\"reason\":\"x\"}",
	            "bounds.min_bake_s.min", "absolute bounds");
	PUT_REFUSED(422, "bad_bounds",
	            "{\"rings\":{\"early\":{\"silence_timeout_s\":{\"max\":0}}},\"reason\":\"x\"}",
	            "rings.early.silence_timeout_s.max", "absolute bounds");
	PUT_REFUSED(422, "unknown_ring",
	            "{\"rings\":{\"canery\":{\"hard_cap\":{\"max\":5}}},\"reason\":\"x\"}",
	            "canery");
	PUT_REFUSED(400, "invalid",
	            "{\"rings\":{\"Canary!\":{\"hard_cap\":{\"max\":5}}},\"reason\":\"x\"}",
	            "Canary!");
	PUT_REFUSED(422, "bad_bounds",
	            "{\"bounds\":{\"hard_cap\":{\"max\":3}},\"rings\":{\"canary\":{\"hard_cap\":{"
	            "\"min\":4}}},\"reason\":\"x\"}",
	            "rings.canary.hard_cap.min 4 is above the global max 3");
	PUT_REFUSED(422, "bad_bounds",
	            "{\"emergency\":{\"hard_cap\":{\"min\":1}},\"reason\":\"x\"}",
	            "emergency.hard_cap", "only bake times", "min_bake_s");
	PUT_REFUSED(422, "bad_bounds",
	            "{\"emergency\":{\"min_bake_s\":{\"max\":100}},\"reason\":\"x\"}",
	            "emergency.min_bake_s.max", "floors");
	PUT_REFUSED(422, "bad_bounds",
	            "{\"bounds\":{\"min_bake_s\":{\"max\":200}},\"reason\":\"x\"}",
	            "emergency.min_bake_s.min 300 (the default) is above the global max 200");
	j = bounds_get(E.soc);
	assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
	json_decref(j);

	/* an empty document clears them (a new version; the old one is kept) */
	put_ok("{\"reason\":\"clear\"}");
	j = bounds_get(E.soc);
	assert_int_equal(json_integer_value(json_object_get(j, "version")), 2);
	assert_int_equal(json_object_size(json_object_get(j, "bounds")), 0);
	json_decref(j);
	assert_int_equal(Q("SELECT count(*) FROM policy_bounds"), 2);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'policy_bounds.replace' "
	                   "AND (before ->> 'version')::int = 1 AND (after ->> 'version')::int = 2 "
	                   "AND after -> 'bounds' = '{}'::jsonb"),
	                 1);
}

/* ---- rollouts within bounds ------------------------------------------------------- */

static void test_rollouts_within_bounds(void **state)
{
	(void)state;
	env_up();
	char v1[65], v2[65];
	fbt_rollout_upload(&E, 1, v1);
	fbt_rollout_upload(&E, 2, v2);
	put_ok("{\"bounds\":{\"min_bake_s\":{\"min\":600},\"confidence\":{\"min\":0.9,\"max\":0.99}"
	       "}"
	       ",\"rings\":{\"canary\":{\"hard_cap\":{\"min\":1,\"max\":5}},\"ga\":{\"min_bake_s\":"
	       "{\"max\":7200}}},\"reason\":\"bounds v1\"}");

	/* outside the global bounds, from "policy": named ring, key, value, bound */
	ROLLOUT_REFUSED(v1, ",\"policy\":{\"min_bake_s\":60}", "ring 'canary'", "min_bake_s = 60",
	                "below the lower bound 600", "global admin bounds", "set by \"policy\"",
	                "version 1");
	ROLLOUT_REFUSED(v1, ",\"policy\":{\"confidence\":0.995}", "confidence = 0.995",
	                "above the upper bound 0.99");
	/* a ring's own bounds apply to that ring only */
	ROLLOUT_REFUSED(v1, ",\"ring_policies\":{\"canary\":{\"hard_cap\":0}}", "ring 'canary'",
	                "hard_cap = 0", "lower bound 1", "admin bounds of ring 'canary'",
	                "\"ring_policies\".canary");
	ROLLOUT_REFUSED(v1, ",\"ring_policies\":{\"canary\":{\"hard_cap\":6}}", "hard_cap = 6",
	                "upper bound 5");
	ROLLOUT_REFUSED(v1, ",\"ring_policies\":{\"ga\":{\"min_bake_s\":7201}}", "ring 'ga'",
	                "min_bake_s = 7201", "upper bound 7200");
	/* a default outside the bounds: refused, with the advice to override */
	put_ok("{\"bounds\":{\"min_bake_s\":{\"min\":600}},\"rings\":{\"canary\":{\"min_healthy\":"
	       "{\"min\":30}}},\"reason\":\"bounds v2\"}");
	ROLLOUT_REFUSED(v1, "", "ring 'canary'", "min_healthy = 25", "lower bound 30",
	                "this ring's default", "override it");
	put_ok("{\"bounds\":{\"min_bake_s\":{\"min\":600},\"confidence\":{\"min\":0.9,\"max\":0.99}"
	       "}"
	       ",\"rings\":{\"canary\":{\"hard_cap\":{\"min\":1,\"max\":5}},\"ga\":{\"min_bake_s\":"
	       "{\"max\":7200}}},\"reason\":\"bounds v3\"}");
	/* the gate's own checks of an override still apply */
	char *bad = rollout_body(v1, ",\"policy\":{\"min_bake\":600}");
	REFUSED(422, "bad_policy", "POST", "/v1/rollouts", E.rel1, bad, "min_bake");
	free(bad);
	assert_int_equal(Q("SELECT count(*) FROM rollouts"), 0);

	/* inside: accepted, normal (rolling at once), the bounds' version recorded */
	json_t *j = rollout_create(201, E.rel1, v1,
	                           ",\"policy\":{\"min_bake_s\":600,\"confidence\":0.9},"
	                           "\"ring_policies\":{\"canary\":{\"hard_cap\":5},\"early\":{"
	                           "\"hard_cap\":50}}");
	int64_t id = json_integer_value(json_object_get(j, "id"));
	assert_string_equal(fbt_jstr(j, "state"), "rolling");
	assert_true(json_is_false(json_object_get(j, "emergency")));
	assert_int_equal(json_integer_value(json_object_get(j, "policy_bounds")), 3);
	assert_true(json_integer_value(json_object_get(j, "started")) > 0);
	json_t *canary = json_array_get(json_object_get(j, "policy"), 0);
	assert_int_equal(json_integer_value(json_object_get(canary, "min_bake_s")), 600);
	assert_int_equal(json_integer_value(json_object_get(canary, "hard_cap")), 5);
	assert_int_equal(json_integer_value(json_object_get(
	                         json_array_get(json_object_get(j, "policy"), 1), "hard_cap")),
	                 50);
	json_decref(j);
	assert_int_equal(Q("SELECT count(*) FROM approvals"), 0);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.start' AND "
	                   "(after ->> 'policy_bounds')::int = 3"),
	                 1);

	/* a later change of bounds leaves the running rollout's policy alone: the
	 * controller keeps evaluating it with min_bake_s 600 */
	put_ok("{\"bounds\":{\"min_bake_s\":{\"min\":1200}},\"reason\":\"stricter\"}");
	int seen = 0;
	for (int i = 0; i < 100 && !seen; i++) {
		seen = Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND "
		         "created_at > (SELECT created_at FROM policy_bounds WHERE version = 4) "
		         "AND (inputs -> 'policy' ->> 'min_bake_s')::int = 600",
		         (long long)id) > 0;
		if (!seen)
			usleep(100000);
	}
	assert_true(seen);
	j = fbt_rollout_get(&E, id);
	assert_string_equal(fbt_jstr(j, "state"), "rolling");
	assert_int_equal(json_integer_value(json_object_get(j, "policy_bounds")), 3);
	assert_int_equal(json_integer_value(json_object_get(
	                         json_array_get(json_object_get(j, "policy"), 0), "min_bake_s")),
	                 600);
	json_decref(j);
	/* while a new rollout is held to the new bounds */
	ROLLOUT_REFUSED(v2, ",\"supersede\":true,\"policy\":{\"min_bake_s\":600}",
	                "min_bake_s = 600", "lower bound 1200", "version 4");
	j = rollout_create(201, E.rel1, v2, ",\"supersede\":true,\"policy\":{\"min_bake_s\":1200}");
	assert_int_equal(json_integer_value(json_object_get(j, "policy_bounds")), 4);
	json_decref(j);
}

/* ---- emergency -------------------------------------------------------------------------- */

/* 1 when the agent's current assignment names sha; *seq (may be NULL)
 * receives the assignment's sequence. */
static int agent_offered_seq(struct fbt_agent *a, const char *sha, long *seq)
{
	struct fbt_resp r;
	if (fbt_http(&E.srv, "GET", "/v1/poll", a->token, NULL, 0, NULL, &r))
		fail_msg("poll: transport error");
	if (r.status != 200)
		fail_msg("poll: %ld %s", r.status, r.body ? r.body : "");
	int offered = r.body && strstr(r.body, sha) != NULL;
	const char *p = r.body ? strstr(r.body, "\"sequence\":") : NULL;
	if (seq)
		*seq = p ? strtol(p + strlen("\"sequence\":"), NULL, 10) : -1;
	fbt_resp_free(&r);
	return offered;
}

static int agent_offered(struct fbt_agent *a, const char *sha)
{
	return agent_offered_seq(a, sha, NULL);
}

/* The agent in canary alone (explicit list), everyone else in the rest. */
static void canary_ring(struct fbt_agent *a)
{
	char body[1024];
	snprintf(body, sizeof body,
	         "{\"rings\":[{\"name\":\"canary\",\"selector\":{\"agents\":[%lld]}},{\"name\":"
	         "\"early\",\"selector\":{\"percent\":10}},{\"name\":\"broad\",\"selector\":{"
	         "\"percent\":39}},{\"name\":\"ga\",\"selector\":{\"rest\":true}}],\"reason\":"
	         "\"test\"}",
	         (long long)a->id);
	fbt_env_expect(&E, 200, "PUT", "/v1/rings", E.admin, body);
}

static void test_emergency_two_approvers(void **state)
{
	(void)state;
	env_up();
	struct fbt_agent ag;
	fbt_agent_new(
	        &E, &ag, 0, FBT_GOOD, "{}",
	        "[{\"id\":1,\"version\":1},{\"id\":2,\"version\":1},{\"id\":3,\"version\":1}]",
	        NULL);
	canary_ring(&ag);
	char v1[65];
	fbt_rollout_upload(&E, 1, v1);
	put_ok("{\"bounds\":{\"min_bake_s\":{\"min\":600},\"confidence\":{\"min\":0.9}},"
	       "\"emergency\":{\"min_bake_s\":{\"min\":60}},\"reason\":\"emergency floor 60\"}");

	/* roles: soc and agent tokens can neither create nor approve */
	static const char *em = ",\"emergency\":true,\"policy\":{\"min_bake_s\":120}";
	json_decref(rollout_create(403, E.soc, v1, em));
	json_decref(rollout_create(403, g_agentrole, v1, em));
	/* a reason is required, and a boolean; ring 0 is never skipped */
	char body[512];
	snprintf(body, sizeof body,
	         "{\"channel\":%d,\"content\":\"%s\",\"emergency\":true,\"policy\":{\"min_bake_s\":"
	         "120}}",
	         FBT_CH, v1);
	REFUSED(400, "invalid", "POST", "/v1/rollouts", E.rel1, body, "reason");
	snprintf(body, sizeof body,
	         "{\"channel\":%d,\"content\":\"%s\",\"emergency\":1,"
	         "\"reason\":\"x\"}",
	         FBT_CH, v1);
	REFUSED(400, "invalid", "POST", "/v1/rollouts", E.rel1, body, "emergency");
	snprintf(body, sizeof body,
	         "{\"channel\":%d,\"content\":\"%s\",\"emergency\":true,\"rings\":[\"early\","
	         "\"ga\"],\"reason\":\"x\",\"policy\":{\"min_bake_s\":120}}",
	         FBT_CH, v1);
	REFUSED(422, "ring0_required", "POST", "/v1/rollouts", E.rel1, body, "canary");
	/* bake below the normal bound: only for an emergency, and not below its floor */
	ROLLOUT_REFUSED(v1, ",\"policy\":{\"min_bake_s\":120}", "min_bake_s = 120",
	                "lower bound 600");
	ROLLOUT_REFUSED(v1, ",\"emergency\":true,\"policy\":{\"min_bake_s\":59}", "ring 'canary'",
	                "min_bake_s = 59", "lower bound 60", "emergency floor");
	/* every other rule applies unchanged in an emergency */
	ROLLOUT_REFUSED(v1,
	                ",\"emergency\":true,\"policy\":{\"min_bake_s\":120,\"confidence\":0.85}",
	                "confidence = 0.85", "lower bound 0.9");
	assert_int_equal(Q("SELECT count(*) FROM approvals"), 0);

	/* accepted: staged, emergency, not started, the creator's approval recorded */
	long pub = Q("SELECT seq FROM publication");
	json_t *j = rollout_create(201, E.rel1, v1, em);
	int64_t id = json_integer_value(json_object_get(j, "id"));
	assert_string_equal(fbt_jstr(j, "state"), "staged");
	assert_true(json_is_true(json_object_get(j, "emergency")));
	assert_true(json_is_null(json_object_get(j, "started")));
	assert_int_equal(json_integer_value(json_object_get(j, "ring_index")), 0);
	assert_int_equal(json_integer_value(json_object_get(
	                         json_array_get(json_object_get(j, "policy"), 0), "min_bake_s")),
	                 120);
	assert_int_equal(json_integer_value(json_object_get(
	                         json_array_get(json_object_get(j, "policy"), 0), "hard_cap")),
	                 3);
	json_decref(j);
	assert_int_equal(Q("SELECT count(*) FROM approvals a JOIN api_tokens t ON t.id = "
	                   "a.approver WHERE a.rollout_id = %lld AND a.action = 'emergency-start' "
	                   "AND t.name = 'rel-one' AND NOT a.consumed",
	                   (long long)id),
	                 1);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.stage' AND "
	                   "object = 'rollout/%lld' AND after ->> 'state' = 'staged' AND "
	                   "(after ->> 'emergency')::boolean AND reason = 'test'",
	                   (long long)id),
	                 1);
	assert_int_equal(Q("SELECT count(*) FROM notifications WHERE type = 'rollout.staged' AND "
	                   "rollout_id = %lld",
	                   (long long)id),
	                 1);
	/* it serves nothing: no new publication, the agent is not offered the file,
	 * the controller does not evaluate it */
	assert_int_equal(Q("SELECT seq FROM publication"), pub);
	for (int i = 0; i < 8; i++) {
		assert_false(agent_offered(&ag, v1));
		usleep(150000);
	}
	/* not even in a publication made while it is staged */
	canary_ring(&ag);
	long pub2 = Q("SELECT seq FROM publication"), seen = 0;
	assert_true(pub2 > pub);
	for (int i = 0; i < 200 && seen < pub2; i++) {
		assert_false(agent_offered_seq(&ag, v1, &seen));
		if (seen < pub2)
			usleep(100000);
	}
	assert_true(seen >= pub2);
	assert_int_equal(
	        Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld", (long long)id),
	        0);
	/* it is the channel's active rollout */
	char *b2 = rollout_body(v1, "");
	REFUSED(409, "active_rollout", "POST", "/v1/rollouts", E.rel2, b2, "is active");
	free(b2);
	j = fbt_env_want(&E, 200, "GET", "/v1/rollouts?state=active", E.soc, NULL);
	assert_int_equal(json_array_size(json_object_get(j, "rollouts")), 1);
	json_decref(j);
	/* other actions do not start it */
	char path[96];
	snprintf(path, sizeof path, "/v1/rollouts/%lld/resume", (long long)id);
	fbt_env_expect(&E, 409, "POST", path, E.rel2, "{\"reason\":\"go\"}");
	snprintf(path, sizeof path, "/v1/rollouts/%lld/promote", (long long)id);
	fbt_env_expect(&E, 409, "POST", path, E.rel2, "{\"reason\":\"go\"}");

	/* the creator approving again does not count; soc and agents cannot */
	j = approve(202, id, E.rel1);
	assert_string_equal(fbt_jstr(j, "action"), "emergency-start");
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	assert_int_equal(json_integer_value(json_object_get(j, "needed")), 2);
	json_decref(j);
	json_decref(approve(403, id, E.soc));
	json_decref(approve(403, id, g_agentrole));
	j = fbt_rollout_get(&E, id);
	assert_string_equal(fbt_jstr(j, "state"), "staged");
	json_decref(j);
	assert_false(agent_offered(&ag, v1));
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'approval' AND object = "
	                   "'rollout/%lld' AND after ->> 'action' = 'emergency-start'",
	                   (long long)id),
	                 1);

	/* a second, different release user starts it at ring 0 */
	j = approve(200, id, E.rel2);
	assert_string_equal(fbt_jstr(j, "state"), "rolling");
	assert_int_equal(json_integer_value(json_object_get(j, "ring_index")), 0);
	assert_true(json_integer_value(json_object_get(j, "started")) > 0);
	assert_true(json_integer_value(json_object_get(j, "ring_started")) > 0);
	assert_non_null(strstr(fbt_jstr(j, "state_reason"), "emergency start approved by rel-two"));
	json_decref(j);
	assert_true(Q("SELECT seq FROM publication") > pub);
	assert_int_equal(Q("SELECT count(*) FROM approvals WHERE rollout_id = %lld AND NOT "
	                   "consumed",
	                   (long long)id),
	                 0);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.approve' AND "
	                   "object = 'rollout/%lld' AND before ->> 'state' = 'staged' AND after "
	                   "->> 'state' = 'rolling' AND actor = 'release:rel-two'",
	                   (long long)id),
	                 1);
	assert_int_equal(Q("SELECT count(*) FROM notifications WHERE type = 'rollout.started' AND "
	                   "rollout_id = %lld",
	                   (long long)id),
	                 1);
	int offered = 0;
	for (int i = 0; i < 200 && !offered; i++) {
		offered = agent_offered(&ag, v1);
		if (!offered)
			usleep(100000);
	}
	assert_true(offered);
	/* the gate evaluates it from now on, at ring 0 */
	int evaluated = 0;
	for (int i = 0; i < 100 && !evaluated; i++) {
		evaluated = Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND "
		              "ring_index = 0",
		              (long long)id) > 0;
		if (!evaluated)
			usleep(100000);
	}
	assert_true(evaluated);
	/* approving a rolling rollout is a conflict */
	json_decref(approve(409, id, E.admin));
	free(ag.token);
}

static void test_emergency_default_floor_and_halt(void **state)
{
	(void)state;
	env_up();
	char v1[65];
	fbt_rollout_upload(&E, 1, v1);
	/* no bounds at all: the default emergency floor of 300 s still holds */
	ROLLOUT_REFUSED(v1, ",\"emergency\":true,\"policy\":{\"min_bake_s\":299}",
	                "min_bake_s = 299", "lower bound 300", "default emergency floor");
	/* a normal rollout is not bound by it */
	json_t *j = rollout_create(201, E.rel1, v1, ",\"policy\":{\"min_bake_s\":10}");
	int64_t normal = json_integer_value(json_object_get(j, "id"));
	assert_true(json_is_null(json_object_get(j, "policy_bounds")));
	json_decref(j);
	char path[96];
	snprintf(path, sizeof path, "/v1/rollouts/%lld/pause", (long long)normal);
	fbt_env_expect(&E, 200, "POST", path, E.rel1, "{\"reason\":\"hold\"}");
	/* an emergency superseding it: staged, and the old one stops serving */
	j = rollout_create(
	        201, E.rel2, v1,
	        ",\"emergency\":true,\"supersede\":true,\"policy\":{\"min_bake_s\":300}");
	int64_t id = json_integer_value(json_object_get(j, "id"));
	assert_string_equal(fbt_jstr(j, "state"), "staged");
	json_decref(j);
	j = fbt_rollout_get(&E, normal);
	assert_string_equal(fbt_jstr(j, "state"), "superseded");
	json_decref(j);

	/* one operator halts a staged rollout: the file is marked bad, it never starts */
	snprintf(path, sizeof path, "/v1/rollouts/%lld/halt", (long long)id);
	fbt_env_expect(&E, 403, "POST", path, g_agentrole, "{\"reason\":\"no\"}");
	j = fbt_env_want(&E, 200, "POST", path, E.soc, "{\"reason\":\"wrong file\"}");
	assert_true(!strcmp(fbt_jstr(j, "state"), "halted") ||
	            !strcmp(fbt_jstr(j, "state"), "reverted"));
	assert_non_null(strstr(fbt_jstr(j, "state_reason"), "manual halt by soc-one: wrong file"));
	assert_true(json_is_true(json_object_get(j, "content_bad")));
	json_decref(j);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.halt' AND "
	                   "object = 'rollout/%lld' AND before ->> 'state' = 'staged'",
	                   (long long)id),
	                 1);
	json_decref(approve(409, id, E.rel1));
	j = fbt_rollout_get(&E, id);
	assert_true(json_is_null(json_object_get(j, "started")));
	json_decref(j);
	assert_int_equal(
	        Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld", (long long)id),
	        0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_bounds_api, env_down),
	        cmocka_unit_test_teardown(test_rollouts_within_bounds, env_down),
	        cmocka_unit_test_teardown(test_emergency_two_approvers, env_down),
	        cmocka_unit_test_teardown(test_emergency_default_floor_and_halt, env_down),
	};
	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
