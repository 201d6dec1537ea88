/* The controller lease with fencing (server/lease.c) against the real
 * firebreakd replicas and PostgreSQL: a hung leader (SIGSTOP) is replaced
 * within the lease and, woken up (SIGCONT), writes nothing; a lease taken
 * away in the middle of a cycle stops the next write at the fence; a
 * controller that stopped running raises one controller.lost event and
 * webhook per outage; leadership is visible in GET /v1/controller, /metrics
 * and /readyz. A rollout nobody applies keeps the gate waiting, so every
 * cycle stores one evaluation: the trace of who decided, by epoch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the three above, which it needs */

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fb.h"
#include "fbt.h"
#include "fbt_env.h"
#include "fbt_hook.h"
#include "fbt_rollout.h"
#include "fbt_world.h"

#define DEADLINE 60 /* seconds: generous, for sanitizer builds */
#define INTERVAL 200
#define LEASE    (2 * INTERVAL)

static struct fbt_env E;
static struct fbt_server *const g_srv[2] = {&E.srv, &E.srv2}; /* the replicas */

/* A number from this test's database (fbt_db_longf). */
#define Q(...) fbt_db_longf(E.db, __VA_ARGS__)

static void sleep_ms(int ms)
{
	poll(NULL, 0, ms);
}

/* GET path on s as token; the status in *st, the parsed body (or {}). */
static json_t *get(struct fbt_server *s, const char *path, const char *token, long *st)
{
	struct fbt_resp r;
	if (fbt_http(s, "GET", path, token, NULL, 0, NULL, &r))
		fail_msg("GET %s: transport error", path);
	*st = r.status;
	json_t *j = fbt_resp_json(&r);
	if (!j)
		j = json_pack("{s:s}", "_raw", r.body ? r.body : "");
	fbt_resp_free(&r);
	return j;
}

static json_t *controller(struct fbt_server *s)
{
	long st;
	json_t *j = get(s, "/v1/controller", E.admin, &st);
	if (st != 200)
		fail_msg("GET /v1/controller: %ld", st);
	return j;
}

/* The value of a metric line "name value" on s's /metrics, or -1. */
static double metric(struct fbt_server *s, const char *name)
{
	struct fbt_resp r;
	if (fbt_http(s, "GET", "/metrics", NULL, NULL, 0, NULL, &r) || r.status != 200)
		fail_msg("GET /metrics failed");
	double v = -1;
	char key[128];
	snprintf(key, sizeof key, "\n%s ", name);
	const char *p = r.body ? strstr(r.body, key) : NULL;
	if (p)
		v = strtod(p + strlen(key), NULL);
	fbt_resp_free(&r);
	return v;
}

static const char *g_rollout_extra = ""; /* more members of the rollout body */

/* The fixture (fbt_env_up: a database, tokens, replica 0 with flags more0,
 * channel FBT_CH), replica 1 with flags more1 unless NULL, content v1 and a
 * rolling rollout of it that no agent applies. Returns the rollout id. */
static int64_t env_up(const char *const *more0, const char *const *more1)
{
	fbt_env_up(&E, more0);
	if (more1)
		fbt_env_start(&E, &E.srv2, more1);
	char sha[65];
	fbt_rollout_upload(&E, 1, sha);
	return fbt_rollout_start(&E, sha, g_rollout_extra);
}

static int env_down(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++)
		if (g_srv[i]->pid > 0)
			kill(g_srv[i]->pid, SIGCONT);
	fbt_env_down(&E);
	return 0;
}

/* Wait until cond() holds (polled every 20 ms); its elapsed ms, or fail. */
#define WAIT_FOR(what, cond)                                                                       \
	__extension__({                                                                            \
		int64_t t0_ = fb_mono_ms();                                                        \
		while (!(cond)) {                                                                  \
			if (fb_mono_ms() - t0_ > DEADLINE * 1000)                                  \
				fail_msg("timed out waiting for %s", what);                        \
			sleep_ms(20);                                                              \
		}                                                                                  \
		fb_mono_ms() - t0_;                                                                \
	})

/* The index of the replica whose pid is in "host:pid", or -1. */
static int replica_of(const char *who)
{
	const char *colon = strrchr(who, ':');
	long pid = colon ? strtol(colon + 1, NULL, 10) : 0;
	for (int i = 0; i < 2; i++)
		if (g_srv[i]->pid > 0 && g_srv[i]->pid == pid)
			return i;
	return -1;
}

static int leader_is(int i)
{
	json_t *c = controller(g_srv[i]);
	int yes = json_is_true(json_object_get(c, "this_replica_leads"));
	json_decref(c);
	return yes;
}

/* Rows written by the controller in epoch e (evaluations, audit,
 * notifications). */
static long epoch_rows(long e)
{
	return Q("SELECT (SELECT count(*) FROM gate_evaluations WHERE controller_epoch = %ld) + "
	         "(SELECT count(*) FROM audit_log WHERE controller_epoch = %ld) + "
	         "(SELECT count(*) FROM notifications WHERE controller_epoch = %ld)",
	         e, e, e);
}

static void test_hung_leader_is_replaced_and_fenced(void **state)
{
	(void)state;
	int64_t id = env_up(NULL, (const char *[]){NULL});
	WAIT_FOR("evaluations", Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld",
	                          (long long)id) >= 5);
	json_t *c = controller(g_srv[1]);
	int old = replica_of(fbt_jstr(c, "leader")), other = 1 - old;
	long e1 = (long)json_integer_value(json_object_get(c, "epoch"));
	assert_true(old >= 0);
	assert_true(json_is_true(json_object_get(c, "healthy")));
	assert_int_equal(json_integer_value(json_object_get(c, "interval_ms")), INTERVAL);
	json_decref(c);
	/* every evaluation names the epoch that wrote it */
	assert_int_equal(Q("SELECT count(*) FROM gate_evaluations WHERE controller_epoch IS NULL"),
	                 0);
	assert_true(metric(g_srv[old], "firebreak_controller_leader") == 1);
	assert_true(metric(g_srv[other], "firebreak_controller_leader") == 0);
	assert_true(metric(g_srv[other], "firebreak_controller_last_cycle_age_seconds") >= 0);

	/* hang the leader: the other replica takes over within the lease (and
	 * a look), plus scheduling slack for sanitizer builds */
	assert_int_equal(kill(g_srv[old]->pid, SIGSTOP), 0);
	int64_t took = WAIT_FOR("a takeover", leader_is(other));
	print_message("takeover %lld ms after SIGSTOP (lease %d ms, interval %d ms)\n",
	              (long long)took, LEASE, INTERVAL);
	assert_true(took <= LEASE + INTERVAL + 1500);
	c = controller(g_srv[other]);
	long e2 = (long)json_integer_value(json_object_get(c, "epoch"));
	assert_true(e2 > e1);
	json_decref(c);
	assert_true(metric(g_srv[other], "firebreak_controller_takeovers_total") >= 1);
	/* the new leader evaluates while the old one is still hung */
	long n2 = epoch_rows(e2);
	WAIT_FOR("evaluations by the new leader", epoch_rows(e2) >= n2 + 3);
	sleep_ms(3 * LEASE);
	long n1 = epoch_rows(e1);

	/* wake the stale leader: it makes no decision and writes nothing */
	assert_int_equal(kill(g_srv[old]->pid, SIGCONT), 0);
	sleep_ms(8 * INTERVAL);
	assert_int_equal(epoch_rows(e1), n1);
	assert_int_equal(Q("SELECT count(*) FROM gate_evaluations g WHERE controller_epoch = %ld "
	                   "AND created_at > (SELECT acquired_at FROM controller_epochs WHERE "
	                   "epoch = %ld)",
	                   e1, e2),
	                 0);
	assert_int_equal(Q("SELECT count(*) FROM gate_evaluations WHERE controller_epoch IS NULL"),
	                 0);
	assert_false(leader_is(old));
	assert_true(leader_is(other));
	assert_true(metric(g_srv[old], "firebreak_controller_leader") == 0);
	assert_true(metric(g_srv[other], "firebreak_controller_leader") == 1);
	/* only the new epoch goes on writing */
	long more = epoch_rows(e2);
	WAIT_FOR("more evaluations by the new leader", epoch_rows(e2) >= more + 3);
	assert_int_equal(Q("SELECT max(epoch) FROM controller_epochs"), e2);
	/* both replicas stay ready and say who leads */
	for (int i = 0; i < 2; i++) {
		long st;
		json_t *r = get(g_srv[i], "/readyz", NULL, &st);
		assert_int_equal(st, 200);
		json_t *ctl = json_object_get(r, "controller");
		assert_true(json_is_boolean(json_object_get(ctl, "leader")));
		assert_int_equal(json_is_true(json_object_get(ctl, "leader")), i == other);
		assert_true(json_is_true(json_object_get(ctl, "healthy")));
		json_decref(r);
	}
}

/* Holds a statement that waits for the lease row lock. */
struct steal {
	pthread_t t;
	int rc;
};

static void *steal_main(void *arg)
{
	struct steal *s = arg;
	s->rc = fbt_db_exec(E.db, "UPDATE controller_lease SET holder = 'intruder:1', epoch = "
	                          "epoch + 1, expires_at = now() + interval '1 hour'");
	return NULL;
}

/* The lease is taken away while the leader is inside a controller
 * transaction (a trigger makes the evaluations of one rollout slow): the
 * thief waits for the row lock, so the running transaction commits first;
 * every write after the steal is refused at the fence. */
static void test_fence_refuses_after_the_lease_is_gone(void **state)
{
	(void)state;
	/* a lease longer than the slow transaction: this replica's own clock
	 * still says it leads, so only the fence in the database stops it */
	int64_t id = env_up((const char *[]){"--controller_lease_ms=3000", NULL}, NULL);
	/* a second rollout on another channel, evaluated after the first */
	fbt_env_expect(&E, 201, "POST", "/v1/channels", E.admin,
	               "{\"id\":292,\"name\":\"second\"}");
	char sha[65];
	char *body = fbt_world_content(fbt_world_default(), 292, 1, sha);
	fbt_env_expect(&E, 201, "POST", "/v1/content", E.rel1, body);
	free(body);
	char rb[256];
	snprintf(rb, sizeof rb, "{\"channel\":292,\"content\":\"%s\",\"reason\":\"test\"}", sha);
	json_t *j = fbt_env_want(&E, 201, "POST", "/v1/rollouts", E.rel1, rb);
	int64_t id2 = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	WAIT_FOR("evaluations of both",
	         Q("SELECT count(DISTINCT rollout_id) FROM gate_evaluations") == 2);
	long e1 = Q("SELECT epoch FROM controller_lease");
	char sql[512];
	snprintf(sql, sizeof sql,
	         "CREATE FUNCTION slow_eval() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
	         "IF NEW.rollout_id = %lld THEN PERFORM pg_sleep(1); END IF; RETURN NEW; END $$; "
	         "CREATE TRIGGER slow_eval BEFORE INSERT ON gate_evaluations FOR EACH ROW "
	         "EXECUTE FUNCTION slow_eval()",
	         (long long)id);
	assert_int_equal(fbt_db_exec(E.db, sql), 0);
	WAIT_FOR("the controller inside a slow evaluation",
	         Q("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
	           "'firebreakd controller' AND wait_event = 'PgSleep'") == 1);
	struct steal s = {0};
	assert_int_equal(pthread_create(&s.t, NULL, steal_main, &s), 0);
	pthread_join(s.t, NULL);
	assert_int_equal(s.rc, 0);
	/* the slow transaction committed (it held the lock), then nothing.
	 * When it commits, the thief and the leader's next transaction both
	 * want the lease row; PostgreSQL may grant it to the leader first,
	 * which then still holds the lease and writes lawfully: count from
	 * the moment the steal committed, not from before it. */
	long at_steal = Q("SELECT count(*) FROM gate_evaluations");
	long before2 =
	        Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld", (long long)id2);
	sleep_ms(6 * INTERVAL);
	assert_int_equal(Q("SELECT count(*) FROM gate_evaluations"), at_steal);
	assert_int_equal(
	        Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld", (long long)id2),
	        before2);
	assert_int_equal(epoch_rows(e1 + 1), 0);
	/* the refusal is the fence's, in the same cycle */
	char *log = NULL;
	size_t len;
	assert_int_equal(fb_file_read(g_srv[0]->log, 64 << 20, (unsigned char **)&log, &len), 0);
	int refused = strstr(log, "no longer held by") && strstr(log, "nothing written");
	free(log);
	if (!refused)
		fail_msg("the fence did not refuse a write (log %s)", g_srv[0]->log);
	json_t *c = controller(g_srv[0]);
	assert_string_equal(fbt_jstr(c, "leader"), "intruder:1");
	assert_false(json_is_true(json_object_get(c, "this_replica_leads")));
	json_decref(c);
	assert_true(metric(g_srv[0], "firebreak_controller_leader") == 0);
	/* the thief goes away: the replica takes the lease back, a new epoch */
	assert_int_equal(fbt_db_exec(E.db, "DROP TRIGGER slow_eval ON gate_evaluations"), 0);
	assert_int_equal(fbt_db_exec(E.db, "UPDATE controller_lease SET expires_at = now()"), 0);
	WAIT_FOR("the lease back", leader_is(0));
	assert_int_equal(Q("SELECT epoch FROM controller_lease"), e1 + 2);
	WAIT_FOR("evaluations again", epoch_rows(e1 + 2) >= 2);
	assert_true(metric(g_srv[0], "firebreak_controller_takeovers_total") >= 2);
}

/* 1 when replica i answers GET /v1/controller with healthy == want; a 503
 * (its pool noticing a restarted database) counts as not yet. */
static int healthy_is(int i, int want)
{
	long st;
	json_t *c = get(g_srv[i], "/v1/controller", E.admin, &st);
	int yes = json_is_true(json_object_get(c, "healthy"));
	json_decref(c);
	return st == 200 && yes == want;
}

/* The only replica that may lead hangs: the other (controller = 0) notices
 * after three intervals, emits controller.lost once and delivers its
 * webhook; the leader wakes, a cycle completes, and the next outage raises
 * a second one. */
static void test_controller_lost(void **state)
{
	(void)state;
	struct fbt_hook h;
	fbt_hook_start(&h, 0);
	char flag[128];
	snprintf(flag, sizeof flag, "--webhook_url=http://127.0.0.1:%d/soc", h.port);
	env_up((const char *[]){flag, NULL}, (const char *[]){flag, "--controller=0", NULL});
	WAIT_FOR("a healthy controller", healthy_is(1, 1));
	assert_int_equal(Q("SELECT count(*) FROM notifications WHERE type = 'controller.lost'"), 0);
	for (int outage = 1; outage <= 2; outage++) {
		assert_int_equal(kill(g_srv[0]->pid, SIGSTOP), 0);
		int64_t seen = WAIT_FOR("controller.lost",
		                        Q("SELECT count(*) FROM notifications WHERE type = "
		                          "'controller.lost'") == outage);
		print_message("controller.lost %lld ms after SIGSTOP\n", (long long)seen);
		assert_true(seen >= 2 * INTERVAL);
		json_t *c = controller(g_srv[1]);
		assert_false(json_is_true(json_object_get(c, "healthy")));
		assert_true(json_is_true(json_object_get(c, "lost")));
		assert_true(json_is_null(json_object_get(c, "leader")));
		json_decref(c);
		WAIT_FOR("the controller.lost webhook",
		         fbt_hook_count(&h, "\"controller.lost\"") == outage);
		assert_int_equal(
		        Q("SELECT count(*) FROM notifications WHERE type = 'controller.lost' AND "
		          "delivered_at IS NOT NULL AND (data ->> 'noticed_by') LIKE '%%:%d'",
		          (int)g_srv[1]->pid),
		        outage);
		/* once per outage, not once per cycle */
		sleep_ms(6 * INTERVAL);
		assert_int_equal(
		        Q("SELECT count(*) FROM notifications WHERE type = 'controller.lost'"),
		        outage);
		assert_int_equal(fbt_hook_count(&h, "\"controller.lost\""), outage);
		assert_true(metric(g_srv[1], "firebreak_controller_last_cycle_age_seconds") >
		            3.0 * INTERVAL / 1000);
		assert_int_equal(kill(g_srv[0]->pid, SIGCONT), 0);
		WAIT_FOR("a healthy controller again", healthy_is(1, 1));
	}
	fbt_hook_stop(&h);
}

static long silence_counted_after(long after, const char *counted)
{
	return Q("SELECT count(*) FROM gate_evaluations WHERE id > %ld AND (inputs -> 'inputs' "
	         "->> 'silence_counted')::boolean = %s",
	         after, counted);
}

/* PostgreSQL restarts: heartbeats could not be written while it was away,
 * so the controller does not count silence for a silence timeout after it
 * is back (as after a restart of the server itself), then does again. */
static void test_database_restart_pauses_silence(void **state)
{
	(void)state;
	g_rollout_extra = ",\"policy\":{\"silence_timeout_s\":3}";
	env_up((const char *[]){"--restart_grace_s=0", NULL}, NULL);
	g_rollout_extra = "";
	WAIT_FOR("evaluations that count silence", silence_counted_after(0, "true") >= 3);
	assert_int_equal(silence_counted_after(0, "false"), 0);
	assert_int_equal(fbt_pg_restart(), 0);
	long back = Q("SELECT coalesce(max(id), 0) FROM gate_evaluations");
	WAIT_FOR("evaluations after the restart", silence_counted_after(back, "false") >= 3);
	/* the first ones after the restart do not count it */
	assert_int_equal(Q("SELECT (inputs -> 'inputs' ->> 'silence_counted')::boolean::int FROM "
	                   "gate_evaluations WHERE id = (SELECT min(id) FROM gate_evaluations "
	                   "WHERE id > %ld)",
	                   back),
	                 0);
	/* and after a silence timeout they count it again */
	int64_t took = WAIT_FOR("silence counted again", silence_counted_after(back, "true") >= 1);
	print_message("silence counted again %lld ms after the first evaluation\n",
	              (long long)took);
	WAIT_FOR("a healthy controller", healthy_is(0, 1));
}

/* GET /v1/controller needs an operator token; a lease shorter than the
 * interval is refused at start. */
static void test_access_and_config(void **state)
{
	(void)state;
	env_up(NULL, NULL);
	long st;
	json_decref(get(g_srv[0], "/v1/controller", NULL, &st));
	assert_int_equal(st, 401);
	WAIT_FOR("the lease", leader_is(0));
	json_t *c = controller(g_srv[0]);
	assert_string_equal(fbt_jstr(c, "this_replica"), fbt_jstr(c, "leader"));
	assert_int_equal(json_integer_value(json_object_get(c, "lease_ms")), LEASE);
	json_decref(c);
	const char *argv[] = {fbt_bin("firebreakd"), "--controller_interval_ms=500",
	                      "--controller_lease_ms=400", "version", NULL};
	char *out = NULL, *err = NULL;
	assert_int_equal(fbt_run(argv, NULL, &out, &err), 2);
	if (!strstr(err, "controller_lease_ms"))
		fail_msg("no word about controller_lease_ms: %s", err);
	free(out);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_hung_leader_is_replaced_and_fenced, env_down),
	        cmocka_unit_test_teardown(test_fence_refuses_after_the_lease_is_gone, env_down),
	        cmocka_unit_test_teardown(test_controller_lost, env_down),
	        cmocka_unit_test_teardown(test_database_restart_pauses_silence, env_down),
	        cmocka_unit_test_teardown(test_access_and_config, env_down),
	};
	return cmocka_run_group_tests_name("lease", tests, NULL, NULL);
}
