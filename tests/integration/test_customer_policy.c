/* Customer content policies as agents see them (issue 18; server/README.md,
 * "Tenants and customer content policies"): four customers with hosts in
 * the canary ring and in GA — early, ga, delayed and paused — polling a real
 * firebreakd and verifying every assignment against the trusted root.
 *   - a rollout in canary reaches the early customer's canary hosts only;
 *   - once the file is GA, the ga customer has it at once, the delayed one
 *     only after its delay (the controller republishes when it ends), the
 *     paused one never, until it sets paused again;
 *   - a delayed customer gets nothing that has not been GA for its delay;
 *   - a policy that would leave ring 0 without early hosts is refused (409
 *     naming mode) and nothing is stored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fbt_agent.h"
#include "fbt_env.h"
#include "fbt_rollout.h"

#define DELAY_S 4

enum { EARLY, GA, LATE, FROZEN, NT };
static const char *const tenant[NT] = {"early-co", "ga-co", "late-co", "frozen-co"};

struct fixture {
	struct fbt_env e;
	struct fbt_agent a[NT * 2]; /* per customer: one in canary, one in GA */
};

static int down(void **state)
{
	struct fixture *f = *state;
	fbt_agent_free(f->a, NT * 2);
	fbt_env_down(&f->e);
	free(f);
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Poll every agent; what each is assigned on the channel goes to a->assigned. */
static void poll_all(struct fixture *f)
{
	for (int i = 0; i < NT * 2; i++)
		fbt_agent_poll(&f->e, &f->a[i]);
}

static void expect(const struct fbt_agent *a, const char *who, const char *sha)
{
	if (strcmp(a->assigned, sha) != 0)
		fail_msg("%s (agent %lld): assigned '%.12s', expected '%.12s'", who,
		         (long long)a->id, a->assigned, sha);
}

/* Poll until agent a is assigned sha (the snapshot follows a publication in
 * a moment); fails after FBT_DEADLINE. */
static double wait_assigned(struct fixture *f, struct fbt_agent *a, const char *sha)
{
	double t0 = now_s();
	while (now_s() - t0 < FBT_DEADLINE) {
		fbt_agent_poll(&f->e, a);
		if (strcmp(a->assigned, sha) == 0)
			return now_s();
		usleep(100 * 1000);
	}
	fail_msg("agent %lld never assigned %.12s (has '%.12s')", (long long)a->id, sha,
	         a->assigned);
	return 0;
}

/* Seconds since sha became the channel's GA (ga_history), by the database's
 * clock, which is the one the server's delays are counted by. */
static double ga_age(struct fbt_env *e, const char *sha)
{
	char sql[256];
	snprintf(sql, sizeof sql,
	         "SELECT (1000 * extract(epoch FROM clock_timestamp() - max(since)))::bigint FROM "
	         "ga_history WHERE sha256 = '%s'",
	         sha);
	return (double)fbt_db_long(e->db, sql) / 1000.0;
}

static void put_policy(struct fixture *f, long want, const char *t, const char *body)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/tenants/%s/policies", t);
	fbt_env_expect(&f->e, want, "PUT", path, f->e.admin, body);
}

static void test_customer_modes(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	*state = f;
	fbt_env_up(&f->e, NULL);
	struct fbt_env *e = &f->e;
	for (int t = 0; t < NT; t++) {
		char body[160];
		snprintf(body, sizeof body, "{\"name\":\"%s\",\"default_mode\":\"%s\"}", tenant[t],
		         t == EARLY ? "early" : "ga");
		fbt_env_expect(e, 201, "POST", "/v1/tenants", e->admin, body);
		/* ring index 0 (canary) and 3 (ga) */
		fbt_agent_new_in(e, &f->a[2 * t], 0, FBT_GOOD, NULL, NULL, NULL, tenant[t], NULL);
		fbt_agent_new_in(e, &f->a[2 * t + 1], 3, FBT_GOOD, NULL, NULL, NULL, tenant[t],
		                 NULL);
	}
	fbt_agent_rings(e, f->a, NT * 2);
	char v1[65], v2[65], body[256];
	fbt_rollout_upload(e, 1, v1);
	fbt_rollout_upload(e, 2, v2);
	fbt_rollout_make_ga(e, v1);
	/* frozen-co pauses on v1; late-co waits DELAY_S after a file is GA */
	put_policy(f, 200, tenant[FROZEN], "{\"mode\":\"paused\",\"reason\":\"change freeze\"}");
	snprintf(body, sizeof body,
	         "{\"channel\":%d,\"mode\":\"delayed\",\"delay_s\":%d,"
	         "\"reason\":\"lag\"}",
	         FBT_CH, DELAY_S);
	put_policy(f, 200, tenant[LATE], body);

	/* the rollout of v2 in canary: the early customer's canary host only */
	int64_t id = fbt_rollout_start(
	        e, v2, ",\"policy\":{\"holdout\":0,\"min_bake_s\":3600,\"watch_s\":0}");
	wait_assigned(f, &f->a[2 * EARLY], v2);
	poll_all(f);
	expect(&f->a[2 * EARLY], "early canary", v2);
	expect(&f->a[2 * EARLY + 1], "early GA-ring host", v1);
	expect(&f->a[2 * GA], "ga customer's canary host", v1);
	expect(&f->a[2 * FROZEN], "paused canary host", v1);
	expect(&f->a[2 * FROZEN + 1], "paused GA-ring host", v1);
	/* late-co: v1 became GA moments ago; it gets v1 once v1 has been GA for
	 * DELAY_S, and not before */
	if (ga_age(e, v1) < DELAY_S - 0.5)
		expect(&f->a[2 * LATE], "delayed host before the delay", "");
	wait_assigned(f, &f->a[2 * LATE], v1);
	assert_true(ga_age(e, v1) >= DELAY_S);
	wait_assigned(f, &f->a[2 * LATE + 1], v1);

	/* what each customer sees of the rollout on its own hosts, once they ran
	 * what they were assigned and said so in a heartbeat */
	for (int i = 0; i < NT * 2; i++)
		fbt_agent_step(e, &f->a[i]);
	static const char *const mode_of[NT] = {"early", "ga", "delayed", "paused"};
	for (int t = 0; t < NT; t++) {
		char rp[128];
		snprintf(rp, sizeof rp, "/v1/tenants/%s/rollouts", tenant[t]);
		json_int_t want = t == EARLY ? 1 : 0, exposed = -1;
		for (int k = 0; k < 100 && exposed != want; k++) {
			if (k)
				usleep(100 * 1000); /* heartbeats are written in batches */
			json_t *rj = fbt_env_want(e, 200, "GET", rp, e->admin, NULL);
			json_t *ro = NULL;
			size_t i;
			json_t *x;
			json_array_foreach(json_object_get(rj, "rollouts"), i, x)
			{
				if (json_integer_value(json_object_get(x, "id")) == id)
					ro = x;
			}
			assert_non_null(ro);
			assert_int_equal(json_integer_value(json_object_get(ro, "agents")), 2);
			assert_int_equal(json_integer_value(json_object_get(
			                         json_object_get(ro, "modes"), mode_of[t])),
			                 2);
			exposed = json_integer_value(json_object_get(ro, "exposed"));
			json_decref(rj);
		}
		if (exposed != want)
			fail_msg("%s: %lld of its hosts run the rollout's content, expected %lld",
			         tenant[t], (long long)exposed, (long long)want);
	}

	/* ring 0 keeps an early host: early-co may not become ga on the channel
	 * (409 naming mode, nothing stored) */
	snprintf(body, sizeof body, "{\"channel\":%d,\"mode\":\"ga\",\"reason\":\"x\"}", FBT_CH);
	char path[128];
	snprintf(path, sizeof path, "/v1/tenants/%s/policies", tenant[EARLY]);
	json_t *j = fbt_env_want(e, 409, "PUT", path, e->admin, body);
	assert_non_null(strstr(fbt_env_raw(j), "mode"));
	json_decref(j);
	j = fbt_env_want(e, 200, "GET", path, e->admin, NULL);
	assert_int_equal(json_array_size(json_object_get(j, "policies")), 0);
	json_decref(j);

	/* v2 becomes GA: ga now, delayed after DELAY_S, paused never */
	fbt_rollout_force_complete(e, id);
	wait_assigned(f, &f->a[2 * GA], v2);
	wait_assigned(f, &f->a[2 * GA + 1], v2);
	poll_all(f);
	if (ga_age(e, v2) < DELAY_S - 0.5)
		expect(&f->a[2 * LATE], "delayed host right after GA", v1);
	expect(&f->a[2 * FROZEN], "paused host after GA", v1);
	wait_assigned(f, &f->a[2 * LATE], v2);
	assert_true(ga_age(e, v2) >= DELAY_S);
	wait_assigned(f, &f->a[2 * LATE + 1], v2);
	poll_all(f);
	expect(&f->a[2 * FROZEN], "paused host after the delay", v1);
	expect(&f->a[2 * FROZEN + 1], "paused GA-ring host after the delay", v1);

	/* the paused customer's explicit action: paused again takes today's GA */
	put_policy(f, 200, tenant[FROZEN], "{\"mode\":\"paused\",\"reason\":\"take v2\"}");
	wait_assigned(f, &f->a[2 * FROZEN], v2);
	wait_assigned(f, &f->a[2 * FROZEN + 1], v2);
	assert_true(fbt_db_long(e->db, "SELECT count(*) FROM audit_log WHERE action = "
	                               "'content_policy.set'") >= 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_customer_modes, down),
	};
	return cmocka_run_group_tests_name("customer_policy", tests, NULL, NULL);
}
