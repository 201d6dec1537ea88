/* The rollout controller against the real firebreakd and PostgreSQL: the
 * state survives kill -9 of the server at different moments of a rollout
 * (no false halt from the restart: the silence grace), and the controller is
 * a singleton across replicas (the controller lease) that another replica
 * takes over when the leader dies. Agents are simulated as in test_rollout.c
 * (tests/lib/fbt_agent.h: real keys, assignments verified with libfbsign). */
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
#include "fbt_hook.h"
#include "fbt_rollout.h"

static struct fbt_env E; /* E.srv2: a second replica on the same database */

/* A number from this test's database (fbt_db_longf). */
#define Q(...) fbt_db_longf(E.db, __VA_ARGS__)

static int env_down(void **state)
{
	(void)state;
	fbt_env_down(&E);
	return 0;
}

/* ---- crash-restart ---------------------------------------------------------------- */

/* State and ring as stored (what a restarted server must come back to). */
static void stored(int64_t id, char state[16], int *ring)
{
	char sql[160];
	snprintf(sql, sizeof sql, "SELECT ring_index FROM rollouts WHERE id = %lld", (long long)id);
	*ring = (int)fbt_db_long(E.db, sql);
	static const char *states[] = {"rolling", "paused", "completed", "halted", "reverted"};
	state[0] = '\0';
	for (int i = 0; i < 5; i++)
		if (Q("SELECT count(*) FROM rollouts WHERE id = %lld AND state = '%s'",
		      (long long)id, states[i]) == 1)
			snprintf(state, 16, "%s", states[i]);
}

/* kill -9 the server, keep it down for down_ms, start a new one on the same
 * database; the rollout comes back in the state that was committed. */
static void crash_restart(int64_t id, int down_ms)
{
	assert_int_equal(fbt_server_stop(&E.srv, SIGKILL), 128 + SIGKILL);
	char state[16];
	int ring;
	stored(id, state, &ring);
	assert_true(state[0] != '\0');
	usleep((useconds_t)down_ms * 1000);
	fbt_env_start(&E, &E.srv, NULL);
	E.cur = &E.srv;
	fbt_rollout_expect(&E, id, state, ring);
}

static void test_kill9_mid_rollout(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	enum { N = 5 };
	struct fbt_agent ags[N];
	int rings[N] = {0, 0, 1, 2, 3};
	for (int i = 0; i < N; i++)
		fbt_agent_new(&E, &ags[i], rings[i], FBT_GOOD, NULL, NULL, NULL);
	fbt_agent_rings(&E, ags, N);
	char v1[65], v2[65], v3[65];
	fbt_rollout_upload(&E, 1, v1);
	fbt_rollout_upload(&E, 2, v2);
	fbt_rollout_upload(&E, 3, v3);
	fbt_rollout_make_ga(&E, v1);
	fbt_agent_settle(&E, ags, N, v1);
	/* silence counts after 3 s; by default the restart grace is as long */
	int64_t id = fbt_rollout_start(
	        &E, v2,
	        ",\"policy\":{\"min_bake_s\":2,\"min_healthy\":1,"
	        "\"max_failure_rate\":0.5,\"max_excess\":1,\"watch_s\":0,\"confidence\":0.8,"
	        "\"hard_cap\":3,\"silence_timeout_s\":3}");
	E.watch = v2;
	/* 1: before any agent applied it */
	crash_restart(id, 0);
	fbt_rollout_expect(&E, id, "rolling", 0);
	/* and while paused */
	json_decref(fbt_rollout_action(&E, 200, id, "pause", E.rel1, "{\"reason\":\"freeze\"}"));
	crash_restart(id, 0);
	fbt_rollout_expect(&E, id, "paused", -1);
	json_decref(fbt_rollout_action(&E, 200, id, "resume", E.rel1, "{\"reason\":\"thaw\"}"));
	/* 2: as soon as it reached early, down for longer than the silence
	 * timeout; the agents come back a moment after the server */
	fbt_rollout_drive(&E, id, ags, N, "rolling", 1);
	crash_restart(id, 4000);
	long restarted_at = Q("SELECT count(*) FROM gate_evaluations");
	usleep(1000000);
	fbt_rollout_drive(&E, id, ags, N, "rolling", 2);
	/* silent agents were not counted during the grace: the gate waited */
	assert_true(Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND id > %ld "
	              "AND decision = 'WAIT' AND NOT (inputs -> 'inputs' ->> "
	              "'silence_counted')::boolean AND (inputs -> 'inputs' ->> 'silent')::int > 0",
	              (long long)id, restarted_at) >= 1);
	/* 3: while agents of broad are applying it */
	for (int i = 0; i < N; i++)
		fbt_agent_step(&E, &ags[i]);
	crash_restart(id, 500);
	/* 4: repeatedly, at whatever the controller is doing */
	for (int k = 0; k < 3; k++) {
		for (int s = 0; s < 3; s++) {
			for (int i = 0; i < N; i++)
				fbt_agent_step(&E, &ags[i]);
			usleep(100000);
		}
		crash_restart(id, 200);
	}
	fbt_rollout_drive(&E, id, ags, N, "completed", -1);
	E.watch = NULL;
	/* no false halt, and the whole story is in the evaluations */
	assert_int_equal(Q("SELECT count(*) FROM gate_evaluations WHERE decision = 'HALT'"), 0);
	assert_int_equal(Q("SELECT count(*) FROM content WHERE bad"), 0);
	assert_int_equal(Q("SELECT count(*) FROM channels WHERE ga_sha256 = '%s'", v2), 1);
	assert_int_equal(Q("SELECT count(DISTINCT ring_index) FROM gate_evaluations WHERE "
	                   "rollout_id = %lld AND decision = 'PROMOTE'",
	                   (long long)id),
	                 4);
	assert_true(Q("SELECT count(DISTINCT inputs ->> 'evaluator') FROM gate_evaluations WHERE "
	              "rollout_id = %lld",
	              (long long)id) >= 2);
	fbt_agent_settle(&E, ags, N, v2);

	/* a halt survives too: killed right after it, the restarted server
	 * serves the last known good file with a newer sequence */
	int64_t id3 = fbt_rollout_start(&E, v3, "");
	fbt_agent_settle(&E, &ags[0], 1, v3);
	int64_t seq = ags[0].seq;
	json_decref(
	        fbt_rollout_action(&E, 200, id3, "halt", E.soc, "{\"reason\":\"bad telemetry\"}"));
	crash_restart(id3, 0);
	fbt_rollout_expect(&E, id3, "halted|reverted", 0);
	assert_int_equal(Q("SELECT count(*) FROM content WHERE sha256 = '%s' AND bad", v3), 1);
	fbt_agent_settle(&E, &ags[0], 1, v2);
	assert_true(ags[0].seq > seq);
	fbt_rollout_drive(&E, id3, ags, N, "reverted", -1);
	fbt_agent_free(ags, N);
}

/* ---- leader election ------------------------------------------------------------------ */

static void evaluators(int64_t id, long after, char *out, size_t n, long *count)
{
	char sql[512];
	snprintf(sql, sizeof sql,
	         "SELECT count(DISTINCT inputs ->> 'evaluator') FROM gate_evaluations WHERE "
	         "rollout_id = %lld AND id > %ld",
	         (long long)id, after);
	*count = fbt_db_long(E.db, sql);
	/* the evaluator is "host:pid": its pid */
	snprintf(sql, sizeof sql,
	         "SELECT split_part(min(inputs ->> 'evaluator'), ':', 2)::bigint FROM "
	         "gate_evaluations WHERE rollout_id = %lld AND id > %ld",
	         (long long)id, after);
	snprintf(out, n, "%ld", fbt_db_long(E.db, sql));
}

static void test_leader_election(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	fbt_env_start(&E, &E.srv2, NULL);
	enum { N = 4 };
	struct fbt_agent ags[N];
	int rings[N] = {0, 0, 1, 3};
	for (int i = 0; i < N; i++)
		fbt_agent_new(&E, &ags[i], rings[i], FBT_GOOD, NULL, NULL, NULL);
	fbt_agent_rings(&E, ags, N);
	char v1[65];
	fbt_rollout_upload(&E, 1, v1);
	int64_t id = fbt_rollout_start(&E, v1,
	                               ",\"policy\":" FBT_FAST_POLICY
	                               ",\"ring_policies\":{\"canary\":{\"min_bake_s\":8}}");
	/* over many evaluation intervals, one evaluator only */
	int64_t end = fb_mono_ms() + FBT_DEADLINE * 1000;
	while (Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld", (long long)id) <
	               15 &&
	       fb_mono_ms() < end) {
		for (int i = 0; i < N; i++) {
			E.cur = i % 2 ? &E.srv2 : &E.srv; /* agents spread over both */
			fbt_agent_step(&E, &ags[i]);
		}
		E.cur = &E.srv;
		usleep(150000);
	}
	char pid[32];
	long distinct;
	evaluators(id, 0, pid, sizeof pid, &distinct);
	assert_int_equal(distinct, 1);
	long leader = strtol(pid, NULL, 10);
	assert_true(leader == E.srv.pid || leader == E.srv2.pid);
	/* the other replica never evaluated anything, of any rollout */
	assert_int_equal(Q("SELECT count(DISTINCT inputs ->> 'evaluator') FROM gate_evaluations"),
	                 1);

	/* kill -9 the leader: the other takes over and the rollout goes on */
	struct fbt_server *dead = leader == E.srv.pid ? &E.srv : &E.srv2;
	struct fbt_server *alive = dead == &E.srv ? &E.srv2 : &E.srv;
	long survivor = alive->pid;
	assert_int_equal(fbt_server_stop(dead, SIGKILL), 128 + SIGKILL);
	long last = Q("SELECT max(id) FROM gate_evaluations");
	E.cur = alive;
	fbt_rollout_drive(&E, id, ags, N, "completed", -1);
	evaluators(id, last, pid, sizeof pid, &distinct);
	assert_int_equal(distinct, 1);
	assert_int_equal(strtol(pid, NULL, 10), survivor);
	assert_int_equal(Q("SELECT count(*) FROM gate_evaluations WHERE decision = 'HALT'"), 0);
	assert_int_equal(Q("SELECT count(*) FROM channels WHERE ga_sha256 = '%s'", v1), 1);
	assert_int_equal(Q("SELECT count(DISTINCT ring_index) FROM gate_evaluations WHERE "
	                   "rollout_id = %lld AND decision = 'PROMOTE'",
	                   (long long)id),
	                 4);
	/* the survivor is what env_down stops cleanly */
	if (alive == &E.srv2) {
		E.srv = E.srv2;
		memset(&E.srv2, 0, sizeof E.srv2);
	}
	fbt_agent_free(ags, N);
}

/* ---- the SOC webhook ------------------------------------------------------------------ */

static void test_webhook_on_halt(void **state)
{
	(void)state;
	struct fbt_hook h;
	fbt_hook_start(&h, 1);
	char flag[128];
	snprintf(flag, sizeof flag, "--webhook_url=http://127.0.0.1:%d/soc", h.port);
	fbt_env_up(&E, (const char *[]){flag, NULL});
	char v1[65];
	fbt_rollout_upload(&E, 1, v1);
	int64_t id = fbt_rollout_start(&E, v1, "");
	json_decref(fbt_rollout_action(&E, 200, id, "halt", E.soc, "{\"reason\":\"suspicious\"}"));
	/* refused once, retried after a backoff, then delivered */
	int64_t end = fb_mono_ms() + FBT_DEADLINE * 1000;
	while (fb_mono_ms() < end && Q("SELECT count(*) FROM notifications WHERE type = "
	                               "'rollout.halted' AND delivered_at "
	                               "IS NOT NULL") != 1)
		usleep(100000);
	assert_int_equal(
	        Q("SELECT count(*) FROM notifications WHERE type = 'rollout.halted' AND "
	          "rollout_id = %lld AND delivered_at IS NOT NULL AND webhook_attempts = 2 "
	          "AND last_error LIKE '%%HTTP 500%%'",
	          (long long)id),
	        1);
	usleep(1500000); /* delivered means delivered once */
	int n = fbt_hook_count(&h, NULL);
	assert_true(n >= 2);
	int halted = 0;
	int64_t halted_at[2] = {0, 0};
	for (int i = 0; i < n && i < 4; i++) {
		int64_t at;
		const char *text = fbt_hook_body(&h, i, &at);
		json_t *b = text ? json_loads(text, 0, NULL) : NULL;
		if (!b)
			fail_msg("webhook body %d is not JSON: %s", i, text ? text : "(none)");
		if (strcmp(fbt_jstr(b, "type"), "rollout.halted") == 0) {
			if (halted < 2)
				halted_at[halted] = at;
			halted++;
			assert_int_equal(json_integer_value(json_object_get(b, "rollout_id")), id);
			assert_string_equal(fbt_jstr(json_object_get(b, "data"), "state"),
			                    "halted");
			assert_string_equal(fbt_jstr(json_object_get(b, "data"), "content"), v1);
		}
		json_decref(b);
	}
	assert_int_equal(halted, 2);                     /* the refused attempt and the delivery */
	assert_true(halted_at[1] - halted_at[0] >= 900); /* the retry waited a second */
	fbt_hook_stop(&h);
}

/* A rollout whose gate can only WAIT (an empty fleet) is paused by the
 * controller once it has waited max_wait_s past the bake, with the reason,
 * an audit record and a rollout.stalled event; a resume restarts the clock. */
static void test_stall_pauses(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	char v1[65];
	fbt_rollout_upload(&E, 1, v1);
	int64_t id = fbt_rollout_start(&E, v1,
	                               ",\"policy\":{\"min_bake_s\":1,\"min_healthy\":5,"
	                               "\"max_wait_s\":2}");
	int64_t end = fb_mono_ms() + FBT_DEADLINE * 1000;
	while (fb_mono_ms() < end &&
	       Q("SELECT count(*) FROM rollouts WHERE id = %lld AND state = 'paused'",
	         (long long)id) != 1)
		usleep(100000);
	fbt_rollout_expect(&E, id, "paused", 0);
	json_t *r = fbt_rollout_get(&E, id);
	if (!strstr(fbt_jstr(r, "state_reason"), "STALLED: still waiting") ||
	    !strstr(fbt_jstr(r, "state_reason"), "no treated agent has applied"))
		fail_msg("state_reason: %s", fbt_env_raw(r));
	json_decref(r);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.pause' AND "
	                   "actor = 'controller' AND object = 'rollout/%lld' AND after ->> "
	                   "'state' = 'paused'",
	                   (long long)id),
	                 1);
	assert_int_equal(Q("SELECT count(*) FROM notifications WHERE type = 'rollout.stalled' AND "
	                   "rollout_id = %lld AND (data ->> 'stalled')::boolean",
	                   (long long)id),
	                 1);
	/* The evaluation that paused it is stored as a stalled WAIT. */
	assert_int_equal(Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND "
	                   "decision = 'WAIT' AND (inputs -> 'result' ->> 'stalled')::boolean "
	                   "AND (inputs -> 'inputs' ->> 'wait_elapsed_s')::int >= 2",
	                   (long long)id),
	                 1);
	/* Paused: no more evaluations. */
	long evals =
	        Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld", (long long)id);
	usleep(800000);
	assert_int_equal(
	        Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld", (long long)id),
	        evals);

	/* Resumed: the clock starts again, so it waits (not stalled) before
	 * the controller pauses it a second time. */
	json_decref(fbt_rollout_action(&E, 200, id, "resume", E.rel1,
	                               "{\"reason\":\"give it another go\"}"));
	end = fb_mono_ms() + FBT_DEADLINE * 1000;
	while (fb_mono_ms() < end &&
	       Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.pause' AND object = "
	         "'rollout/%lld'",
	         (long long)id) != 2)
		usleep(100000);
	fbt_rollout_expect(&E, id, "paused", 0);
	assert_true(Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND id > "
	              "(SELECT min(id) FROM gate_evaluations WHERE rollout_id = %lld AND "
	              "(inputs -> 'result' ->> 'stalled')::boolean) AND NOT (inputs -> 'result' "
	              "->> 'stalled')::boolean",
	              (long long)id, (long long)id) >= 1);
	assert_int_equal(Q("SELECT count(*) FROM notifications WHERE type = 'rollout.stalled' AND "
	                   "rollout_id = %lld",
	                   (long long)id),
	                 2);
	/* Halting a paused rollout still works. */
	json_decref(fbt_rollout_action(&E, 200, id, "halt", E.soc, "{\"reason\":\"give up\"}"));
	fbt_rollout_expect(&E, id, "halted|reverted", 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_kill9_mid_rollout, env_down),
	        cmocka_unit_test_teardown(test_leader_election, env_down),
	        cmocka_unit_test_teardown(test_webhook_on_halt, env_down),
	        cmocka_unit_test_teardown(test_stall_pauses, env_down),
	};
	return cmocka_run_group_tests_name("controller", tests, NULL, NULL);
}
