/* The SOC dashboard in a real browser: this test builds a world against the
 * real firebreakd and PostgreSQL (three channels, six simulated agents that
 * enroll, poll, verify, apply and heartbeat, three live rollouts), then runs
 * tests/browser/dashboard.mjs, which drives Debian's headless chromium with
 * playwright-core: it logs in, watches the rollouts, posts the canary
 * agents' crash reports (so the controller halts rollout A while the page is
 * open), halts rollout B with the halt button as soc, sees the halt
 * refused (403) for an agent token, and reads the customers view (a second
 * tenant with a delayed and a paused group). Afterwards the database must show
 * exactly that. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fb.h"
#include "fbsign.h"
#include "fbt.h"
#include "fbt_env.h"
#include "fbt_rollout.h"
#include "fbt_world.h"

#define NCH 4
#define NAG 6

static const int CHANNELS[NCH] = {291, 292, 293, 294};
static const char *const CHANNEL_NAMES[NCH] = {"named-pipes", "dns-rules", "script-heuristics",
                                               "registry-rules"};

struct agent {
	int64_t id;
	char *token;
	int ring;
	char etag[160];
	int64_t seq;
	char assigned[NCH][65];
	char active[NCH][65];
	int nev;
};

/* The database, tokens, server and channel 291 (the first of CHANNELS) are
 * fbt_env's; the rest of the world is this test's own. */
static struct fbt_env E;
static struct world {
	struct agent ag[NAG];
	char sha[NCH][65];
	int64_t ro[NCH]; /* A (291, halted by its crashes), B (292, halted by hand), C (293,
	                  * paused and resumed by release), D (294, emergency, staged by the
	                  * admin, approved by release) */
	char *dir, *plan, *out, *err; /* freed in env_down, also after a failure */
} W;

/* A number from this test's database (fbt_db_longf). */
#define Q(...) fbt_db_longf(E.db, __VA_ARGS__)

/* ---- the world ------------------------------------------------------------------ */

/* fbt_env_up with the controller looking every second, and the other channels. */
static void env_up(void)
{
	fbt_env_up(&E, (const char *[]){"--controller_interval_ms=1000", NULL});
	for (int c = 1; c < NCH; c++) {
		char body[256];
		snprintf(body, sizeof body, "{\"id\":%d,\"name\":\"%s\"}", CHANNELS[c],
		         CHANNEL_NAMES[c]);
		fbt_env_expect(&E, 201, "POST", "/v1/channels", E.admin, body);
	}
}

static int env_down(void **state)
{
	(void)state;
	for (int i = 0; i < NAG; i++)
		free(W.ag[i].token);
	free(W.dir);
	free(W.plan);
	free(W.out);
	free(W.err);
	memset(&W, 0, sizeof W);
	fbt_env_down(&E);
	return 0;
}

/* ---- simulated agents ------------------------------------------------------------ */

/* Enroll with an enrollment token made from et_body (its tenant and group). */
static void agent_new_in(struct agent *a, int ring, const char *et_body)
{
	memset(a, 0, sizeof *a);
	a->ring = ring;
	json_t *j = fbt_env_want(&E, 201, "POST", "/v1/enrollment-tokens", E.admin, et_body);
	char *et = strdup(fbt_jstr(j, "token"));
	json_decref(j);
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	crypto_sign_keypair(pk, sk);
	sodium_memzero(sk, sizeof sk);
	char pk64[64], body[8192];
	sodium_bin2base64(pk64, sizeof pk64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
	snprintf(body, sizeof body,
	         "{\"enrollment_token\":\"%s\",\"public_key\":\"%s\",\"hostname\":\"ws-%d\","
	         "\"agent_version\":\"test\",\"capabilities\":%s}",
	         et, pk64, ring, E.caps);
	free(et);
	j = fbt_env_want(&E, 201, "POST", "/v1/enroll", NULL, body);
	a->id = json_integer_value(json_object_get(j, "agent_id"));
	a->token = strdup(fbt_jstr(j, "agent_token"));
	json_decref(j);
	assert_true(a->id > 0);
}

/* An agent of the default tenant. */
static void agent_new(struct agent *a, int ring)
{
	agent_new_in(a, ring, "{\"name\":\"fleet\"}");
}

/* Poll and verify as an agent does; note what is assigned per channel. */
static void agent_poll(struct agent *a)
{
	char inm[200];
	snprintf(inm, sizeof inm, "If-None-Match: %s", a->etag);
	const char *h[] = {inm, NULL};
	struct fbt_resp r;
	if (fbt_http(&E.srv, "GET", "/v1/poll", a->token, NULL, 0, a->etag[0] ? h : NULL, &r))
		fail_msg("poll: transport error");
	if (r.status == 304) {
		fbt_resp_free(&r);
		return;
	}
	if (r.status != 200)
		fail_msg("agent %lld: poll: %ld %s", (long long)a->id, r.status,
		         r.body ? r.body : "");
	struct fbsig_assignment *as;
	struct fb_err err;
	if (fbsig_assignment_verify(E.root, r.body, r.len, fb_now_ms() / 1000, a->seq, &as, &err))
		fail_msg("agent %lld: the assignment does not verify: %s", (long long)a->id,
		         err.msg);
	fbt_header(&r, "ETag", a->etag, sizeof a->etag);
	fbt_resp_free(&r);
	a->seq = as->sequence;
	for (int c = 0; c < NCH; c++) {
		a->assigned[c][0] = '\0';
		for (size_t i = 0; i < as->n_channels; i++)
			if ((int)as->channels[i].channel == CHANNELS[c])
				snprintf(a->assigned[c], sizeof a->assigned[c], "%s",
				         as->channels[i].sha256);
	}
	fbsig_assignment_free(as);
}

static void agent_applied(struct agent *a, int c)
{
	char body[1024];
	a->nev++;
	snprintf(
	        body, sizeof body,
	        "{\"agent_id\":%lld,\"events\":[{\"id\":\"ev-%d\",\"kind\":\"applied\",\"at\":%lld,"
	        "\"channel\":%d,\"content\":\"%s\",\"boot_id\":\"boot-%lld-1\"}]}",
	        (long long)a->id, a->nev, (long long)(fb_now_ms() / 1000), CHANNELS[c],
	        a->active[c], (long long)a->id);
	json_t *j = fbt_env_want(&E, 200, "POST", "/v1/events", a->token, body);
	assert_int_equal(json_integer_value(json_object_get(j, "accepted")), 1);
	json_decref(j);
}

static void agent_heartbeat(struct agent *a)
{
	char body[8192], active[512] = "{";
	size_t len = 1;
	for (int c = 0; c < NCH; c++)
		if (a->active[c][0])
			len += (size_t)snprintf(active + len, sizeof active - len,
			                        "%s\"%d\":\"%s\"", len > 1 ? "," : "", CHANNELS[c],
			                        a->active[c]);
	snprintf(active + len, sizeof active - len, "}");
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"boot_id\":\"boot-%lld-1\",\"uptime_s\":10,"
	         "\"agent_version\":\"test\",\"active\":%s,\"capabilities\":%s}",
	         (long long)a->id, (long long)a->id, active, E.caps);
	fbt_env_expect(&E, 202, "POST", "/v1/heartbeat", a->token, body);
}

/* Poll, apply what changed (reporting it), heartbeat. */
static void agent_step(struct agent *a)
{
	agent_poll(a);
	for (int c = 0; c < NCH; c++)
		if (strcmp(a->assigned[c], a->active[c])) {
			snprintf(a->active[c], sizeof a->active[c], "%s", a->assigned[c]);
			if (a->active[c][0])
				agent_applied(a, c);
		}
	agent_heartbeat(a);
}

/* Step every agent until rollout id is in state at ring index ring and every
 * agent of the rings it has reached runs its content. */
static void drive_until(int c, const char *state, int ring)
{
	int64_t end = fb_mono_ms() + FBT_DEADLINE * 1000;
	while (fb_mono_ms() < end) {
		for (int i = 0; i < NAG; i++)
			agent_step(&W.ag[i]);
		json_t *r = fbt_rollout_get(&E, W.ro[c]);
		int done = strcmp(fbt_jstr(r, "state"), state) == 0 &&
		           json_integer_value(json_object_get(r, "ring_index")) == ring;
		json_decref(r);
		for (int i = 0; done && i < NAG; i++)
			if (W.ag[i].ring <= ring && strcmp(W.ag[i].active[c], W.sha[c]))
				done = 0;
		if (done)
			return;
		usleep(200000);
	}
	json_t *r = fbt_rollout_get(&E, W.ro[c]);
	fail_msg("rollout %lld did not reach %s at ring %d: %s", (long long)W.ro[c], state, ring,
	         fbt_env_raw(r));
}

static int64_t rollout_start(int c, const char *extra)
{
	char body[4096];
	snprintf(body, sizeof body, "{\"channel\":%d,\"content\":\"%s\",\"reason\":\"%s\"%s}",
	         CHANNELS[c], W.sha[c],
	         c == 0 ? "named-pipe detections, CF 291 style" : "weekly update", extra);
	json_t *j = fbt_env_want(&E, 201, "POST", "/v1/rollouts", E.rel1, body);
	int64_t id = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	assert_true(id > 0);
	return id;
}

/* Canary: agents 0-2, early: 3-4, broad: 5, ga: the rest. */
static void world_up(void)
{
	static const int rings[NAG] = {0, 0, 0, 1, 1, 2};
	for (int i = 0; i < NAG; i++)
		agent_new(&W.ag[i], rings[i]);
	char body[2048];
	snprintf(body, sizeof body,
	         "{\"rings\":[{\"name\":\"canary\",\"selector\":{\"agents\":[%lld,%lld,%lld]}},"
	         "{\"name\":\"early\",\"selector\":{\"agents\":[%lld,%lld]}},"
	         "{\"name\":\"broad\",\"selector\":{\"agents\":[%lld]}},"
	         "{\"name\":\"ga\",\"selector\":{\"rest\":true}}],\"reason\":\"dashboard test\"}",
	         (long long)W.ag[0].id, (long long)W.ag[1].id, (long long)W.ag[2].id,
	         (long long)W.ag[3].id, (long long)W.ag[4].id, (long long)W.ag[5].id);
	fbt_env_expect(&E, 200, "PUT", "/v1/rings", E.admin, body);
	for (int c = 0; c < NCH; c++) {
		char *up =
		        fbt_world_content(fbt_world_default(), (uint32_t)CHANNELS[c], 1, W.sha[c]);
		assert_non_null(up);
		fbt_env_expect(&E, 201, "POST", "/v1/content", E.rel1, up);
		free(up);
	}
	/* A: fast hard cap, otherwise the canary's normal bar (it waits);
	 * B: the default policy (it waits in the canary ring);
	 * C: a fast canary, then it bakes in early for a day. */
	W.ro[0] = rollout_start(0, ",\"policy\":{\"hard_cap\":3,\"min_bake_s\":1}");
	W.ro[1] = rollout_start(1, "");
	W.ro[2] = rollout_start(
	        2, ",\"policy\":{\"min_bake_s\":1,\"min_healthy\":1,"
	           "\"max_failure_rate\":0.5,\"max_excess\":1,\"watch_s\":0,\"confidence\":0.8},"
	           "\"ring_policies\":{\"early\":{\"min_bake_s\":86400,"
	           "\"min_healthy\":500}}");
	/* D: an emergency rollout the admin stages; a second person approves it. */
	snprintf(body, sizeof body,
	         "{\"channel\":%d,\"content\":\"%s\",\"emergency\":true,"
	         "\"reason\":\"registry rule for an active campaign\"}",
	         CHANNELS[3], W.sha[3]);
	json_t *d = fbt_env_want(&E, 201, "POST", "/v1/rollouts", E.admin, body);
	W.ro[3] = json_integer_value(json_object_get(d, "id"));
	assert_string_equal(fbt_jstr(d, "state"), "staged");
	json_decref(d);
	drive_until(2, "rolling", 1);
	drive_until(0, "rolling", 0);
	drive_until(1, "rolling", 0);
	for (int k = 0; k < 3; k++) { /* a few more evaluations: points for the plots */
		for (int i = 0; i < NAG; i++)
			agent_step(&W.ag[i]);
		usleep(700000);
	}
}

/* A customer besides the default tenant (issue 18): "acme", whose group
 * "branch" takes content 2 h after it is GA everywhere else and has paused
 * channel 292; its other group ("default") is at GA. Made before the
 * rollouts start, so its policy events are older than theirs. */
static void world_tenants(void)
{
	fbt_env_expect(&E, 201, "POST", "/v1/tenants", E.admin,
	               "{\"name\":\"acme\",\"reason\":\"dashboard test\"}");
	fbt_env_expect(&E, 201, "POST", "/v1/tenants/acme/groups", E.admin,
	               "{\"name\":\"branch\"}");
	fbt_env_expect(&E, 200, "PUT", "/v1/tenants/acme/policies", E.admin,
	               "{\"group\":\"branch\",\"mode\":\"delayed\",\"delay_s\":7200,"
	               "\"reason\":\"branch offices: two hours after everyone\"}");
	fbt_env_expect(&E, 200, "PUT", "/v1/tenants/acme/policies", E.admin,
	               "{\"group\":\"branch\",\"channel\":292,\"mode\":\"paused\","
	               "\"reason\":\"DNS rules held for a migration\"}");
}

/* Two agents of the last ring ("ga", the rest) that enrolled and were last
 * heard from two hours ago: a dead ring the page must call dead. They are
 * acme's branch hosts: the customers view shows none of them on any
 * rollout's content. */
static void world_dead_ring(void)
{
	int64_t ids[2];
	for (int i = 0; i < 2; i++) {
		struct agent a;
		agent_new_in(&a, 3,
		             "{\"name\":\"acme-branch\",\"tenant\":\"acme\",\"group\":\"branch\"}");
		ids[i] = a.id;
		free(a.token);
	}
	assert_int_equal(Q("WITH u AS (UPDATE agents SET last_seen_at = now() - interval '2 hours' "
	                   "WHERE id IN (%lld, %lld) RETURNING 1) SELECT count(*) FROM u",
	                   (long long)ids[0], (long long)ids[1]),
	                 2);
}

/* Health signals (issue 17): canary agent 0 reports its agent's CPU, five
 * normal heartbeats (its baseline), then a storm, until the gate has seen it
 * degraded in rollout A's canary: one treated host, so the relative test
 * cannot halt on it (it needs two); its signal plots have values. */
static void world_degraded(void)
{
	struct agent *a = &W.ag[0];
	char path[96];
	snprintf(path, sizeof path, "/v1/rollouts/%lld/signals", (long long)W.ro[0]);
	int64_t end = fb_mono_ms() + FBT_DEADLINE * 1000;
	for (int k = 0; fb_mono_ms() < end; k++) {
		char body[8192], active[512] = "{";
		size_t len = 1;
		for (int c = 0; c < NCH; c++)
			if (a->active[c][0])
				len += (size_t)snprintf(active + len, sizeof active - len,
				                        "%s\"%d\":\"%s\"", len > 1 ? "," : "",
				                        CHANNELS[c], a->active[c]);
		snprintf(active + len, sizeof active - len, "}");
		snprintf(body, sizeof body,
		         "{\"agent_id\":%lld,\"boot_id\":\"boot-%lld-1\",\"uptime_s\":10,"
		         "\"agent_version\":\"test\",\"active\":%s,\"health\":{\"interval_s\":60,"
		         "\"agent_cpu_p95\":%d,\"agent_cpu_mean\":5,\"agent_rss_kb\":40000}}",
		         (long long)a->id, (long long)a->id, active, k < 5 ? 10 + k % 3 : 97);
		fbt_env_expect(&E, 202, "POST", "/v1/heartbeat", a->token, body);
		if (k < 8)
			continue;
		json_t *j = fbt_env_want(&E, 200, "GET", path, E.soc, NULL);
		json_t *ring = json_array_get(json_object_get(j, "rings"), 0);
		int seen = json_integer_value(json_object_get(json_object_get(ring, "worst"),
		                                              "degraded")) == 1;
		json_decref(j);
		if (seen)
			return;
		usleep(300000);
	}
	fail_msg("the gate never saw canary agent 0 degraded in rollout %lld", (long long)W.ro[0]);
}

/* The crash reports the browser test posts as the canary agents of A:
 * [{"agent_id", "token", "channel", "content", "boot_id"}]. */
static char *write_plan(const char *dir)
{
	json_t *crashes = json_array();
	for (int i = 0; i < NAG; i++)
		if (W.ag[i].ring == 0) {
			char boot[64];
			snprintf(boot, sizeof boot, "boot-%lld-1", (long long)W.ag[i].id);
			json_array_append_new(crashes,
			                      json_pack("{s:I,s:s,s:i,s:s,s:s}", "agent_id",
			                                (json_int_t)W.ag[i].id, "token",
			                                W.ag[i].token, "channel", CHANNELS[0],
			                                "content", W.sha[0], "boot_id", boot));
		}
	json_t *plan = json_pack("{s:I,s:I,s:I,s:I,s:o}", "crashing", (json_int_t)W.ro[0], "halt",
	                         (json_int_t)W.ro[1], "other", (json_int_t)W.ro[2], "staged",
	                         (json_int_t)W.ro[3], "crashes", crashes);
	char *path = malloc(1200);
	assert_non_null(path);
	snprintf(path, 1200, "%s/plan.json", dir);
	assert_int_equal(json_dump_file(plan, path, JSON_INDENT(2)), 0);
	json_decref(plan);
	return path;
}

/* ---- the test ---------------------------------------------------------------------- */

static void test_dashboard_in_chromium(void **state)
{
	(void)state;
	if (access("/usr/bin/chromium", X_OK) || access("/usr/bin/node", X_OK) ||
	    access("tests/browser/node_modules/playwright-core/package.json", R_OK))
		fail_msg("the browser test needs /usr/bin/chromium, /usr/bin/node and "
		         "tests/browser/node_modules (run make deps)");
	env_up();
	world_tenants();
	world_up();
	world_dead_ring();
	world_degraded();

	W.dir = fbt_tmpdir("dashboard");
	W.plan = write_plan(W.dir);
	const char *dir = W.dir, *plan = W.plan;
	char a_url[300], a_soc[300], a_rel[300], a_agent[300], a_plan[1300], a_out[1300],
	        a_doc[300];
	snprintf(a_url, sizeof a_url, "--url=%s", E.srv.url);
	snprintf(a_soc, sizeof a_soc, "--soc=%s", E.soc);
	snprintf(a_rel, sizeof a_rel, "--release=%s", E.rel1);
	snprintf(a_agent, sizeof a_agent, "--agent=%s", W.ag[5].token);
	snprintf(a_plan, sizeof a_plan, "--plan=%s", plan);
	snprintf(a_out, sizeof a_out, "--out=%s", dir);
	/* FBT_DASHBOARD_DOC=1 also refreshes the README's screenshot. */
	const char *doc = getenv("FBT_DASHBOARD_DOC");
	snprintf(a_doc, sizeof a_doc, "--doc=%s",
	         doc && strcmp(doc, "1") == 0 ? "docs/dashboard.png" : "");
	const char *argv[] = {"/usr/bin/node", "tests/browser/dashboard.mjs",
	                      a_url,           a_soc,
	                      a_rel,           a_agent,
	                      a_plan,          a_out,
	                      a_doc,           NULL};
	int rc = fbt_run(argv, NULL, &W.out, &W.err);
	printf("%s", W.out ? W.out : "");
	if (rc != 0)
		fail_msg("dashboard.mjs exited %d:\n%s\n%s", rc, W.out ? W.out : "",
		         W.err ? W.err : "");

	/* A: halted by the controller (the canaries' crashes), not by a person. */
	long a = W.ro[0], b = W.ro[1], c = W.ro[2];
	assert_int_equal(Q("SELECT count(*) FROM rollouts WHERE id = %ld AND state IN "
	                   "('halted', 'reverted') AND state_reason LIKE '%%hard cap%%'",
	                   a),
	                 1);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.halt' AND "
	                   "object = 'rollout/%ld' AND token_id IS NULL",
	                   a),
	                 1);
	/* B: halted by the soc operator through the halt button, with the reason
	 * typed into the dialog, exactly once. */
	assert_int_equal(Q("SELECT count(*) FROM rollouts WHERE id = %ld AND state = 'halted' AND "
	                   "state_reason LIKE 'manual halt by soc-one: %%'",
	                   b),
	                 1);
	assert_int_equal(
	        Q("SELECT count(*) FROM audit_log l JOIN api_tokens t ON t.id = l.token_id WHERE "
	          "l.action = 'rollout.halt' AND l.object = 'rollout/%ld' AND t.name = 'soc-one' "
	          "AND "
	          "t.role = 'soc' AND l.actor = 'soc:soc-one' AND l.reason LIKE "
	          "'%%dashboard test: DNS rules look wrong%%'",
	          b),
	        1);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.halt' AND "
	                   "object = 'rollout/%ld'",
	                   b),
	                 1);
	/* C: the agent token's halt was refused: still rolling in early, no
	 * halt in its audit trail, content not marked bad; release paused and
	 * resumed it from the page, once each, with the typed reasons. */
	assert_int_equal(Q("SELECT count(*) FROM rollouts WHERE id = %ld AND state = 'rolling' AND "
	                   "ring_index = 1",
	                   c),
	                 1);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE object = 'rollout/%ld' AND "
	                   "action NOT IN ('rollout.start', 'rollout.promote', 'rollout.pause', "
	                   "'rollout.resume')",
	                   c),
	                 0);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE object = 'rollout/%ld' AND "
	                   "action = 'rollout.pause' AND actor = 'release:rel-one' AND reason LIKE "
	                   "'%%dashboard test: hold early over the weekend%%'",
	                   c),
	                 1);
	assert_int_equal(
	        Q("SELECT count(*) FROM audit_log WHERE object = 'rollout/%ld' AND "
	          "action = 'rollout.resume' AND actor = 'release:rel-one' AND reason LIKE "
	          "'%%dashboard test: the weekend is over%%'",
	          c),
	        1);
	/* D: staged by the admin, started by release's approval from the page. */
	long dd = W.ro[3];
	assert_int_equal(Q("SELECT count(*) FROM rollouts WHERE id = %ld AND state = 'rolling' AND "
	                   "ring_index = 0",
	                   dd),
	                 1);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE object = 'rollout/%ld' AND "
	                   "action = 'rollout.approve' AND actor = 'release:rel-one' AND reason "
	                   "LIKE '%%dashboard test: approved after review%%'",
	                   dd),
	                 1);
	assert_int_equal(
	        Q("SELECT count(*) FROM content WHERE sha256 = '%s' AND NOT bad", W.sha[2]), 1);
	/* /metrics: each tenant's enrolled agents (the six live ones are the
	 * default tenant's, the two dead ga ones acme's) */
	struct fbt_resp m;
	if (fbt_http(&E.srv, "GET", "/metrics", NULL, NULL, 0, NULL, &m) || m.status != 200)
		fail_msg("GET /metrics failed");
	assert_non_null(strstr(m.body, "\nfirebreak_tenant_agents{tenant=\"acme\"} 2\n"));
	assert_non_null(strstr(m.body, "\nfirebreak_tenant_agents{tenant=\"default\"} 6\n"));
	fbt_resp_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_dashboard_in_chromium, env_down),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
