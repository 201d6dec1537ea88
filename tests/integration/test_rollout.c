/* Rollouts, rings, pins and the controller against the real firebreakd and
 * PostgreSQL: simulated agents (tests/lib/fbt_agent.h) enroll with real keys,
 * poll and verify their assignments with libfbsign exactly as an agent does,
 * apply, report applied/crash events and heartbeat; the gate moves (or
 * halts) the rollout from that telemetry alone. Each test has its own
 * database and server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the three above, which it needs */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fb.h"
#include "fbschema.h"
#include "fbt.h"
#include "fbt_agent.h"
#include "fbt_env.h"
#include "fbt_rollout.h"
#include "fbt_world.h"

static struct fbt_env E;

/* A number from this test's database (fbt_db_longf). */
#define Q(...) fbt_db_longf(E.db, __VA_ARGS__)

static int env_down(void **state)
{
	(void)state;
	fbt_env_down(&E);
	return 0;
}

/* Upload a file compiled from the text form tests/data/schema/valid/<name>.json. */
static void upload_file(const char *name, int64_t version, char sha[65])
{
	char path[1200];
	snprintf(path, sizeof path, "%s/tests/data/schema/valid/%s.json", getenv("FB_SRC"), name);
	json_t *t = json_load_file(path, 0, NULL);
	assert_non_null(t);
	json_object_set_new(t, "channel", json_integer(FBT_CH));
	json_object_set_new(t, "content_version", json_integer(version));
	char *text = json_dumps(t, JSON_COMPACT);
	json_decref(t);
	unsigned char *blob;
	size_t len;
	struct fb_err err;
	assert_int_equal(cf_compile_json(NULL, text, strlen(text), &blob, &len, &err), FB_OK);
	free(text);
	fb_sha256_hex(blob, len, sha);
	char *m = fbt_world_manifest(fbt_world_default(), blob, len, FBT_CH, version, 2, 86400);
	assert_non_null(m);
	char *body = fbt_world_upload_body(m, blob, len);
	fbt_env_expect(&E, 201, "POST", "/v1/content", E.rel1, body);
	free(body);
	free(m);
	free(blob);
}

/* ---- driven by telemetry ------------------------------------------------------ */

static void test_good_file_through_every_ring(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	struct fbt_agent ags[6];
	int rings[6] = {0, 0, 1, 2, 3, 3};
	for (int i = 0; i < 6; i++)
		fbt_agent_new(&E, &ags[i], rings[i], FBT_GOOD, NULL, NULL, NULL);
	fbt_agent_rings(&E, ags, 6);
	char v1[65];
	fbt_rollout_upload(&E, 1, v1);
	int64_t id = fbt_rollout_start(&E, v1, ",\"policy\":" FBT_FAST_POLICY);
	E.watch = v1; /* no agent gets it before its ring's turn */
	fbt_rollout_drive(&E, id, ags, 6, "completed", -1);
	E.watch = NULL;
	for (int i = 0; i < 6; i++)
		fbt_agent_step(&E, &ags[i]);

	/* GA is the new file, and every ring's assignment names it */
	assert_int_equal(
	        Q("SELECT count(*) FROM channels WHERE id = %d AND ga_sha256 = '%s'", FBT_CH, v1),
	        1);
	static const char *names[] = {"canary", "early", "broad", "ga"};
	for (int i = 0; i < 6; i++) {
		assert_string_equal(ags[i].assigned, v1);
		assert_int_equal(ags[i].assigned_version, 1);
		assert_string_equal(ags[i].audience, names[ags[i].ring]);
	}
	/* explainable: one PROMOTE per ring, with the figures and a reason in words */
	assert_int_equal(Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND "
	                   "decision = 'PROMOTE'",
	                   (long long)id),
	                 4);
	assert_int_equal(
	        Q("SELECT count(DISTINCT ring_name) FROM gate_evaluations WHERE rollout_id = "
	          "%lld AND decision = 'PROMOTE' AND reason LIKE 'PROMOTE: baked%%' AND "
	          "(inputs -> 'inputs' ->> 'healthy')::int >= 1 AND inputs -> 'result' ->> "
	          "'decision' = 'PROMOTE'",
	          (long long)id),
	        4);
	assert_int_equal(Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND "
	                   "decision = 'HALT'",
	                   (long long)id),
	                 0);
	/* each evaluation judged the four health signals too (none degraded
	 * here), and the minute rollups hold them per ring */
	assert_int_equal(
	        Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND "
	          "decision = 'PROMOTE' AND (SELECT count(*) FROM jsonb_object_keys("
	          "inputs -> 'signals')) = 4 AND (inputs -> 'signals' -> 'agent_cpu' ->> "
	          "'treated')::int >= 1 AND inputs -> 'signals' -> 'memory' -> 'seq' IS NOT "
	          "NULL",
	          (long long)id),
	        4);
	assert_int_equal(Q("SELECT count(DISTINCT (ring_index, signal)) FROM signal_rollups WHERE "
	                   "rollout_id = %lld AND degraded = 0",
	                   (long long)id),
	                 16);
	/* the evaluations are served to operators too */
	json_t *r = fbt_rollout_get(&E, id);
	json_t *ev = json_object_get(r, "evaluations");
	assert_true(json_array_size(ev) >= 4);
	assert_string_equal(fbt_jstr(json_array_get(ev, 0), "decision"), "PROMOTE");
	assert_string_equal(fbt_jstr(json_array_get(ev, 0), "ring"), "ga");
	assert_non_null(strstr(fbt_jstr(json_array_get(ev, 0), "reason"), "healthy"));
	json_decref(r);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.promote' AND "
	                   "actor = 'controller' AND object = 'rollout/%lld'",
	                   (long long)id),
	                 3);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.complete'"), 1);
	assert_int_equal(
	        Q("SELECT count(*) FROM notifications WHERE type = 'rollout.completed' AND "
	          "rollout_id = %lld",
	          (long long)id),
	        1);
	fbt_agent_free(ags, 6);
}

static void test_halt_by_crashes_and_revert(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	struct fbt_agent ags[5];
	fbt_agent_new(&E, &ags[0], 0, FBT_CRASHER, NULL, NULL, NULL);
	fbt_agent_new(&E, &ags[1], 0, FBT_CRASHER, NULL, NULL, NULL);
	fbt_agent_new(&E, &ags[2], 0, FBT_LOOPER, NULL, NULL, NULL);
	fbt_agent_new(&E, &ags[3], 1, FBT_GOOD, NULL, NULL, NULL);
	fbt_agent_new(&E, &ags[4], 3, FBT_GOOD, NULL, NULL, NULL);
	fbt_agent_rings(&E, ags, 5);
	char v1[65], v2[65];
	fbt_rollout_upload(&E, 1, v1);
	fbt_rollout_upload(&E, 2, v2);
	fbt_rollout_make_ga(&E, v1);
	fbt_agent_settle(&E, ags, 5, v1);

	E.bad = v2;
	E.watch = v2;
	int64_t id = fbt_rollout_start(
	        &E, v2,
	        ",\"policy\":{\"min_bake_s\":3600,\"min_healthy\":1,"
	        "\"max_failure_rate\":0.5,\"max_excess\":1,\"watch_s\":0,\"hard_cap\":3,"
	        "\"silence_timeout_s\":60}");
	fbt_rollout_drive(&E, id, ags, 5, "halted|reverted", -1);
	E.watch = NULL;

	/* halted by the crash reports, with the reason in words: the hard cap
	 * (3 reports), or - when two crashes arrive in one look before the
	 * boot loop - gate v2's relative test (2 of 3 canaries against a
	 * control without failures) */
	json_t *r = fbt_rollout_get(&E, id);
	assert_int_equal(json_integer_value(json_object_get(r, "ring_index")), 0);
	assert_true(json_is_true(json_object_get(r, "content_bad")));
	const char *why = fbt_jstr(r, "state_reason");
	int by_cap = strstr(why, "hard cap 3 reached") != NULL;
	if (!by_cap && !strstr(why, "confidently above 1.5 times"))
		fail_msg("halted for another reason: %s", why);
	json_decref(r);
	if (by_cap)
		assert_int_equal(
		        Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND "
		          "decision = 'HALT' AND reason LIKE 'HALT: 3 treated agents crashed or "
		          "boot-looped%%(2 crashed, 1 boot-looped)%%' AND "
		          "(inputs -> 'inputs' ->> 'crashed')::int = 2 AND "
		          "(inputs -> 'inputs' ->> 'boot_looped')::int = 1",
		          (long long)id),
		        1);
	else
		assert_int_equal(
		        Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND "
		          "decision = 'HALT' AND reason LIKE 'HALT: treated %%' AND "
		          "(inputs -> 'result' -> 'relative' ->> 'halt')::boolean AND "
		          "(inputs -> 'inputs' ->> 'crashed')::int + (inputs -> 'inputs' ->> "
		          "'boot_looped')::int >= 2",
		          (long long)id),
		        1);
	assert_int_equal(
	        Q("SELECT count(*) FROM content WHERE sha256 = '%s' AND bad AND (bad_reason "
	          "LIKE '%%hard cap%%' OR bad_reason LIKE '%%confidently above%%')",
	          v2),
	        1);
	assert_int_equal(
	        Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.halt' AND actor = "
	          "'controller' AND object = 'rollout/%lld' AND after ->> 'state' = 'halted'",
	          (long long)id),
	        1);
	assert_int_equal(Q("SELECT count(*) FROM notifications WHERE type = 'rollout.halted' AND "
	                   "rollout_id = %lld",
	                   (long long)id),
	                 1);

	/* every exposed agent is sent back to the last known good file, by a newer
	 * sequence; the others never saw the bad one */
	int failed = 0;
	for (int k = 0; k < 3; k++) {
		int64_t end = fb_mono_ms() + FBT_DEADLINE * 1000;
		while (strcmp(ags[k].assigned, v1) && fb_mono_ms() < end) {
			fbt_agent_step(&E, &ags[k]);
			usleep(100000);
		}
		/* the cap needs all three; a relative halt comes after any two */
		if (by_cap)
			assert_true(k == 2 ? ags[k].looped : ags[k].crashed);
		failed += ags[k].crashed || ags[k].looped;
		assert_string_equal(ags[k].assigned, v1);
		assert_true(ags[k].seq > ags[k].bad_seq);
	}
	assert_true(failed >= 2);
	assert_int_equal(ags[3].bad_seq, 0);
	assert_int_equal(ags[4].bad_seq, 0);
	assert_string_equal(ags[3].assigned, v1);
	/* once the exposed agents heartbeat the old file, the rollout is reverted */
	fbt_rollout_drive(&E, id, ags, 5, "reverted", -1);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.reverted' AND "
	                   "actor = 'controller' AND object = 'rollout/%lld'",
	                   (long long)id),
	                 1);
	/* a bad file cannot be rolled out again */
	char body[256];
	snprintf(body, sizeof body, "{\"channel\":%d,\"content\":\"%s\"}", FBT_CH, v2);
	fbt_env_expect_code(&E, 409, "content_bad", "POST", "/v1/rollouts", E.rel1, body);
	fbt_agent_free(ags, 5);
}

static void test_halt_by_silence(void **state)
{
	(void)state;
	fbt_env_up(&E, (const char *[]){"--restart_grace_s=0", NULL});
	struct fbt_agent ags[4];
	fbt_agent_new(&E, &ags[0], 0, FBT_SILENT, NULL, NULL, NULL);
	fbt_agent_new(&E, &ags[1], 0, FBT_SILENT, NULL, NULL, NULL);
	fbt_agent_new(&E, &ags[2], 1, FBT_GOOD, NULL, NULL, NULL);
	fbt_agent_new(&E, &ags[3], 3, FBT_GOOD, NULL, NULL, NULL);
	fbt_agent_rings(&E, ags, 4);
	char v1[65], v2[65];
	fbt_rollout_upload(&E, 1, v1);
	fbt_rollout_upload(&E, 2, v2);
	fbt_rollout_make_ga(&E, v1);
	fbt_agent_settle(&E, ags, 4, v1);
	E.bad = v2;
	int64_t id = fbt_rollout_start(
	        &E, v2,
	        ",\"policy\":{\"min_bake_s\":3600,\"min_healthy\":1,"
	        "\"max_failure_rate\":0.5,\"max_excess\":1,\"watch_s\":0,\"hard_cap\":3,"
	        "\"silence_timeout_s\":4}");
	fbt_rollout_drive(&E, id, ags, 4, "halted", -1);
	assert_true(ags[0].dead && ags[1].dead);
	assert_int_equal(Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND "
	                   "decision = 'HALT' AND reason LIKE '%%silent for more than 4s%%' AND "
	                   "(inputs -> 'inputs' ->> 'silent')::int = 2 AND "
	                   "(inputs -> 'inputs' ->> 'silence_counted')::boolean",
	                   (long long)id),
	                 1);
	/* not before the timeout: the last sign of life of the first agent to fall
	 * silent was at least 4 s before the HALT, and the controller looked in
	 * between and waited */
	char life[512];
	snprintf(life, sizeof life,
	         "(SELECT min(greatest(a.last_seen_at, (SELECT max(received_at) FROM events e "
	         "WHERE e.agent_id = a.id))) FROM agents a WHERE a.id IN (%lld, %lld))",
	         (long long)ags[0].id, (long long)ags[1].id);
	assert_int_equal(Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND "
	                   "decision = 'HALT' AND created_at < %s + interval '4 s'",
	                   (long long)id, life),
	                 0);
	assert_true(
	        Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND decision = "
	          "'WAIT' AND created_at > %s AND (inputs -> 'inputs' ->> 'treated')::int = 2",
	          (long long)id, life) >= 1);
	assert_int_equal(Q("SELECT count(*) FROM content WHERE sha256 = '%s' AND bad", v2), 1);
	/* the good agents were never offered it and stay on the last known good */
	assert_string_equal(ags[2].assigned, v1);
	assert_string_equal(ags[3].assigned, v1);
	fbt_agent_free(ags, 4);
}

/* Without a hard cap, the sequential test halts on the failure rate. */
static void test_halt_by_failure_rate(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	struct fbt_agent ags[5];
	for (int i = 0; i < 3; i++)
		fbt_agent_new(&E, &ags[i], 0, FBT_CRASHER, NULL, NULL, NULL);
	fbt_agent_new(&E, &ags[3], 1, FBT_GOOD, NULL, NULL, NULL);
	fbt_agent_new(&E, &ags[4], 3, FBT_GOOD, NULL, NULL, NULL);
	fbt_agent_rings(&E, ags, 5);
	char v1[65], v2[65];
	fbt_rollout_upload(&E, 1, v1);
	fbt_rollout_upload(&E, 2, v2);
	fbt_rollout_make_ga(&E, v1);
	fbt_agent_settle(&E, ags, 5, v1);
	E.bad = v2;
	E.watch = v2;
	int64_t id = fbt_rollout_start(&E, v2,
	                               ",\"policy\":{\"min_bake_s\":3600,\"min_healthy\":1,"
	                               "\"max_failure_rate\":0.05,\"confidence\":0.8,"
	                               "\"hard_cap\":0,\"silence_timeout_s\":60}");
	fbt_rollout_drive(&E, id, ags, 5, "halted|reverted", -1);
	E.watch = NULL;
	assert_int_equal(
	        Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND "
	          "decision = 'HALT' AND reason LIKE 'HALT: treated %%' AND ((inputs -> "
	          "'result' -> 'relative' ->> 'halt')::boolean OR (inputs -> 'result' ->> "
	          "'statistic')::float8 >= (inputs -> 'result' ->> 'threshold')::float8) AND "
	          "(inputs -> 'policy' ->> 'hard_cap')::int = 0",
	          (long long)id),
	        1);
	assert_int_equal(Q("SELECT count(*) FROM content WHERE sha256 = '%s' AND bad", v2), 1);
	fbt_agent_settle(&E, ags, 5, v1);
	fbt_agent_free(ags, 5);
}

/* Halting the first file ever rolled out on a channel: there is no last
 * known good, so the exposed agents' next assignment leaves the channel out
 * (the agent deactivates it). */
static void test_halt_first_content(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	struct fbt_agent ags[2];
	fbt_agent_new(&E, &ags[0], 0, FBT_GOOD, NULL, NULL, NULL);
	fbt_agent_new(&E, &ags[1], 3, FBT_GOOD, NULL, NULL, NULL);
	fbt_agent_rings(&E, ags, 2);
	char v1[65];
	fbt_rollout_upload(&E, 1, v1);
	int64_t id = fbt_rollout_start(&E, v1, "");
	fbt_agent_settle(&E, &ags[0], 1, v1);
	fbt_agent_step(&E, &ags[1]);
	assert_string_equal(ags[1].assigned, ""); /* ga was never offered it */
	int64_t seq = ags[0].seq;
	json_decref(fbt_rollout_action(&E, 200, id, "halt", E.soc, "{\"reason\":\"no\"}"));
	fbt_agent_settle(&E, &ags[0], 1, "");
	assert_true(ags[0].seq > seq);
	assert_string_equal(ags[0].assigned, "");
	fbt_rollout_drive(&E, id, ags, 2, "reverted", -1);
	fbt_agent_free(ags, 2);
}

/* The first file of a channel: the control hosts run nothing on it, so
 * their crashes come reported on their other channels; those are the
 * control's failures (else the control of a first file never fails). */
static void test_first_file_control_failures(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	fbt_env_expect(&E, 201, "POST", "/v1/channels", E.admin, "{\"id\":292,\"name\":\"other\"}");
	struct fbt_agent ags[2];
	fbt_agent_new(&E, &ags[0], 0, FBT_GOOD, NULL, NULL, NULL);
	fbt_agent_new(&E, &ags[1], 3, FBT_GOOD, NULL, NULL, NULL);
	fbt_agent_rings(&E, ags, 2);
	char v1[65];
	fbt_rollout_upload(&E, 1, v1);
	int64_t id = fbt_rollout_start(&E, v1, ",\"policy\":{\"min_bake_s\":3600}");
	fbt_agent_settle(&E, &ags[0], 1, v1);
	fbt_agent_step(&E, &ags[1]); /* seen since the start: a control host */
	assert_string_equal(ags[1].assigned, "");
	/* heartbeats are written in batches: the gate counts the host as control
	 * once its heartbeat is in the database, so wait for that before the
	 * evaluation the test reads */
	for (int i = 0; i < 100 && Q("SELECT count(*) FROM agents WHERE id = %lld AND "
	                             "last_seen_at IS NOT NULL",
	                             (long long)ags[1].id) < 1;
	     i++)
		usleep(100000);
	/* the GA host (control) crashes twice, reported on channel 292 (once
	 * naming 292 as faulting): one failed control host */
	char body[1024];
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"events\":[{\"id\":\"c1\",\"kind\":\"crash\",\"at\":%lld,"
	         "\"channel\":292,\"content\":\"%064d\",\"boot_id\":\"b1\"},{\"id\":\"c2\","
	         "\"kind\":\"crash\",\"at\":%lld,\"channel\":292,\"content\":\"%064d\",\"boot_id\":"
	         "\"b2\",\"faulting_channel\":292}]}",
	         (long long)ags[1].id, (long long)(fb_now_ms() / 1000), 7,
	         (long long)(fb_now_ms() / 1000), 7);
	json_decref(fbt_env_want(&E, 200, "POST", "/v1/events", ags[1].token, body));
	long t0 = Q("SELECT coalesce(max(id), 0) FROM gate_evaluations WHERE rollout_id = %lld",
	            (long long)id);
	for (int i = 0; i < 100 && Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = "
	                             "%lld AND id > %ld",
	                             (long long)id, t0) < 1;
	     i++)
		usleep(100000);
	assert_int_equal(Q("SELECT (inputs -> 'inputs' ->> 'control_failed')::int FROM "
	                   "gate_evaluations WHERE rollout_id = %lld ORDER BY id DESC LIMIT 1",
	                   (long long)id),
	                 1);
	fbt_agent_free(ags, 2);
}

/* A crash report on the new content of channel 291 by agent a, naming
 * faulting (0: no faulting_channel). */
static void crash_report(const struct fbt_agent *a, const char *content, const char *id,
                         int faulting)
{
	char body[1024], fc[48] = "";
	if (faulting)
		snprintf(fc, sizeof fc, ",\"faulting_channel\":%d", faulting);
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"events\":[{\"id\":\"%s\",\"kind\":\"crash\",\"at\":%lld,"
	         "\"channel\":291,\"content\":\"%s\",\"boot_id\":\"b-%s\"%s}]}",
	         (long long)a->id, id, (long long)(fb_now_ms() / 1000), content, id, fc);
	json_decref(fbt_env_want(&E, 200, "POST", "/v1/events", a->token, body));
}

/* The next evaluation of rollout id after the one with id after. */
static long next_evaluation(int64_t id, long after)
{
	long ev = 0;
	for (int i = 0; i < 100 && !ev; i++) {
		ev = Q("SELECT coalesce(max(id), 0) FROM gate_evaluations WHERE rollout_id = %lld "
		       "AND id > %ld",
		       (long long)id, after);
		if (!ev)
			usleep(100000);
	}
	assert_true(ev > 0);
	return ev;
}

/* Crash reports that name the rollout's channel (faulting_channel) are
 * counted on their own: two beyond the background halt, by the attributed
 * cap, where the same two crashes without it do not (GATE.md). */
static void test_attributed_cap(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	fbt_env_expect(&E, 201, "POST", "/v1/channels", E.admin, "{\"id\":292,\"name\":\"other\"}");
	/* 11 canaries, and 30 GA hosts as the control: their host-time keeps
	 * the background of attributed crashes (a fifth of one control failure,
	 * none having failed) at most 1. Canaries 3-5 run os_build 19045, the
	 * platform the crashes that name the channel will come from. */
	enum { C = 11, N = 41 };
	struct fbt_agent ags[N];
	for (int i = 0; i < N; i++)
		fbt_agent_new(&E, &ags[i], i < C ? 0 : 3, FBT_GOOD, NULL, NULL,
		              i >= C             ? NULL
		              : i >= 3 && i <= 5 ? "{\"os\":\"windows\",\"os_build\":\"19045\"}"
		                                 : "{\"os\":\"windows\",\"os_build\":\"22631\"}");
	fbt_agent_rings(&E, ags, N);
	char v1[65], v2[65];
	fbt_rollout_upload(&E, 1, v1);
	fbt_rollout_upload(&E, 2, v2);
	fbt_rollout_make_ga(&E, v1);
	fbt_agent_settle(&E, ags, N, v1);
	/* no hard cap, no holdout; up to 5 of 11 failed stays below min_excess
	 * 0.5 and the limit 0.5, so neither the relative test nor the guards
	 * halt on these crashes */
	int64_t id = fbt_rollout_start(
	        &E, v2,
	        ",\"policy\":{\"min_bake_s\":3600,\"hard_cap\":0,\"holdout\":0,"
	        "\"min_excess\":0.5,\"max_failure_rate\":0.5,\"silence_timeout_s\":60}");
	fbt_agent_settle(&E, ags, C, v2);
	/* the GA hosts heartbeat after the start: the control (heartbeats are
	 * written in batches; wait until they are in) */
	for (int i = C; i < N; i++)
		fbt_agent_step(&E, &ags[i]);
	for (int i = 0; i < 100 && Q("SELECT count(*) FROM agents a, rollouts r WHERE r.id = "
	                             "%lld AND a.last_seen_at >= r.started_at",
	                             (long long)id) < N;
	     i++)
		usleep(100000);
	long ev = Q("SELECT coalesce(max(id), 0) FROM gate_evaluations WHERE rollout_id = %lld",
	            (long long)id);
	/* two crashes that name no channel, and one naming channel 292 */
	crash_report(&ags[0], v2, "u1", 0);
	crash_report(&ags[1], v2, "u2", 0);
	crash_report(&ags[2], v2, "o1", 292);
	for (int i = 0; i < 3; i++) { /* a few looks: none halts */
		ev = next_evaluation(id, ev);
	}
	assert_int_equal(Q("SELECT (inputs -> 'inputs' ->> 'crashed')::int * 10 + (inputs -> "
	                   "'inputs' ->> 'attributed')::int FROM gate_evaluations WHERE id = %ld",
	                   ev),
	                 20);
	fbt_rollout_expect(&E, id, "rolling", 0);
	/* three that name channel 291, all on os_build 19045: the attributed
	 * cap (two beyond the background, which explains 0 or 1), and the
	 * reason names the platform */
	crash_report(&ags[3], v2, "a1", 291);
	crash_report(&ags[4], v2, "a2", 291);
	crash_report(&ags[5], v2, "a3", 291);
	json_t *r = NULL;
	for (int i = 0; i < 100; i++) {
		json_decref(r);
		r = fbt_rollout_get(&E, id);
		if (fbt_rollout_state_in(fbt_jstr(r, "state"), "halted|reverted"))
			break;
		usleep(100000);
	}
	const char *why = fbt_jstr(r, "state_reason");
	if (!fbt_rollout_state_in(fbt_jstr(r, "state"), "halted|reverted") ||
	    !strstr(why, "crashed while interpreting the new content (their crash reports "
	                 "name this channel)") ||
	    !strstr(why, "attributed cap 2 reached") ||
	    !strstr(why, " on os_build 19045 (3 treated there)"))
		fail_msg(
		        "not halted by the attributed cap: %s; last evaluation: %ld attributed, "
		        "%ld explained, %ld control hosts",
		        fbt_env_raw(r),
		        Q("SELECT (inputs -> 'inputs' ->> 'attributed')::int FROM gate_evaluations "
		          "WHERE rollout_id = %lld ORDER BY id DESC LIMIT 1",
		          (long long)id),
		        Q("SELECT (inputs -> 'result' ->> 'attributed_background')::int FROM "
		          "gate_evaluations WHERE rollout_id = %lld ORDER BY id DESC LIMIT 1",
		          (long long)id),
		        Q("SELECT (inputs -> 'inputs' ->> 'control')::int FROM gate_evaluations "
		          "WHERE rollout_id = %lld ORDER BY id DESC LIMIT 1",
		          (long long)id));
	json_decref(r);
	assert_int_equal(Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND "
	                   "decision = 'HALT' AND (inputs -> 'inputs' ->> 'attributed')::int >= 2 "
	                   "AND (inputs -> 'inputs' ->> 'crashed')::int = (inputs -> 'inputs' ->> "
	                   "'attributed')::int + 2 AND (inputs -> 'result' ->> "
	                   "'attributed_excess')::int >= 2 AND (inputs -> 'result' ->> "
	                   "'attributed_background')::int <= 1 AND (inputs -> 'policy' ->> "
	                   "'attributed_cap')::int = 2",
	                   (long long)id),
	                 1);
	fbt_agent_free(ags, N);
}

/* ---- manual actions, roles, two-person rule ------------------------------------ */

#define R(text) "{\"reason\":\"" text "\"}"
#define FORCE   "{\"reason\":\"the gate is too slow today\",\"force\":true}"

static long audits(const char *act)
{
	return Q("SELECT count(*) FROM audit_log WHERE action = '%s'", act);
}

static void test_manual_actions_and_roles(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	struct fbt_agent ag;
	fbt_agent_new(&E, &ag, 3, FBT_GOOD, NULL, NULL, NULL);
	char v1[65], v2[65];
	fbt_rollout_upload(&E, 1, v1);
	fbt_rollout_upload(&E, 2, v2);
	fbt_rollout_make_ga(&E, v1);
	fbt_agent_settle(&E, &ag, 1, v1);
	int64_t id = fbt_rollout_start(&E, v2, ",\"policy\":{\"min_bake_s\":3600}");
	long n_eval = Q("SELECT count(*) FROM gate_evaluations");
	long n_appr = Q("SELECT count(*) FROM approvals");

	/* promote: refused by the gate with its reason; force needs two distinct
	 * release users, and only release users */
	json_t *j = fbt_rollout_action(&E, 409, id, "promote", E.rel1, R("looks fine"));
	assert_string_equal(fbt_jstr(json_object_get(j, "error"), "code"), "gate_refuses");
	assert_non_null(strstr(fbt_jstr(json_object_get(j, "error"), "message"),
	                       "WAIT: no treated agent has applied the new content yet"));
	json_decref(j);
	json_decref(fbt_rollout_action(&E, 403, id, "promote", E.soc, FORCE));
	json_decref(fbt_rollout_action(&E, 403, id, "promote", E.admin, FORCE));
	json_decref(fbt_rollout_action(&E, 403, id, "promote", ag.token, FORCE));
	json_decref(fbt_rollout_action(&E, 400, id, "promote", E.rel1, "{\"force\":true}"));
	json_decref(fbt_rollout_action(&E, 400, id, "promote", E.rel1,
	                               "{\"reason\":\"x\",\"force\":\"yes\"}"));
	assert_int_equal(Q("SELECT count(*) FROM approvals"), n_appr);
	j = fbt_rollout_action(&E, 202, id, "promote", E.rel1, FORCE);
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	json_decref(j);
	j = fbt_rollout_action(&E, 202, id, "promote", E.rel1, FORCE); /* the same approver twice */
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	json_decref(j);
	fbt_rollout_expect(&E, id, "rolling", 0);
	j = fbt_rollout_action(&E, 200, id, "promote", E.rel2, FORCE);
	assert_int_equal(json_integer_value(json_object_get(j, "ring_index")), 1);
	json_decref(j);
	assert_int_equal(
	        Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.promote' AND "
	          "actor = 'release:rel-two' AND reason LIKE 'forced promotion by rel-two: %%'"),
	        1);
	assert_int_equal(
	        Q("SELECT count(*) FROM approvals WHERE rollout_id = %lld AND NOT consumed",
	          (long long)id),
	        0);

	/* pause and resume: release users; soc and agents may not */
	json_decref(fbt_rollout_action(&E, 403, id, "pause", E.soc, R("wait")));
	json_decref(fbt_rollout_action(&E, 403, id, "pause", ag.token, R("wait")));
	json_decref(fbt_rollout_action(&E, 400, id, "pause", E.rel1, "{}"));
	json_decref(
	        fbt_rollout_action(&E, 400, id, "pause", E.rel1, "{\"reason\":\"x\",\"extra\":1}"));
	assert_int_equal(audits("rollout.pause"), 0);
	j = fbt_rollout_action(&E, 200, id, "pause", E.rel1, R("change freeze"));
	assert_string_equal(fbt_jstr(j, "state"), "paused");
	json_decref(j);
	j = fbt_rollout_action(&E, 200, id, "pause", E.rel2, R("change freeze")); /* idempotent */
	assert_string_equal(fbt_jstr(j, "state"), "paused");
	json_decref(j);
	assert_int_equal(audits("rollout.pause"), 1);
	/* a paused rollout is not evaluated */
	long before =
	        Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld", (long long)id);
	usleep(1500000);
	assert_int_equal(
	        Q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld", (long long)id),
	        before);
	json_decref(fbt_rollout_action(&E, 403, id, "resume", E.soc, R("go")));
	json_decref(fbt_rollout_action(&E, 400, id, "resume", E.rel1, "{\"reason\":\"\"}"));
	j = fbt_rollout_action(&E, 200, id, "resume", E.rel1, R("freeze over"));
	assert_string_equal(fbt_jstr(j, "state"), "rolling");
	json_decref(j);
	json_decref(fbt_rollout_action(&E, 200, id, "resume", E.rel1, R("freeze over")));
	assert_int_equal(audits("rollout.resume"), 1);
	fbt_rollout_expect(&E, id, "rolling", 1);

	/* an approval to force ring 1 lapses when the rollout moves (here: halted) */
	j = fbt_rollout_action(&E, 202, id, "promote", E.rel1, FORCE);
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	json_decref(j);

	/* halt: one soc user is enough; agents may not; bad bodies store nothing */
	json_decref(fbt_rollout_action(&E, 403, id, "halt", ag.token, R("stop")));
	json_decref(fbt_rollout_action(&E, 400, id, "halt", E.soc, "{}"));
	json_decref(fbt_rollout_action(&E, 400, id, "halt", E.soc, "not json"));
	json_decref(fbt_rollout_action(&E, 400, id, "halt", E.soc, "{\"reason\":7}"));
	json_decref(fbt_rollout_action(&E, 404, 999, "halt", E.soc, R("stop")));
	fbt_rollout_expect(&E, id, "rolling", 1);
	assert_int_equal(audits("rollout.halt"), 0);
	assert_int_equal(Q("SELECT count(*) FROM content WHERE bad"), 0);
	j = fbt_rollout_action(&E, 200, id, "halt", E.soc, R("customer reports"));
	assert_string_equal(fbt_jstr(j, "state"), "halted");
	assert_true(json_is_true(json_object_get(j, "content_bad")));
	assert_non_null(
	        strstr(fbt_jstr(j, "state_reason"), "manual halt by soc-one: customer reports"));
	json_decref(j);
	j = fbt_rollout_action(&E, 200, id, "halt", E.rel1,
	                       R("again")); /* idempotent, release may too */
	assert_true(fbt_rollout_state_in(fbt_jstr(j, "state"), "halted|reverted"));
	json_decref(j);
	assert_int_equal(audits("rollout.halt"), 1);
	assert_int_equal(Q("SELECT count(*) FROM notifications WHERE type = 'rollout.halted'"), 1);
	json_decref(fbt_rollout_action(&E, 409, id, "pause", E.rel1, R("too late")));
	json_decref(fbt_rollout_action(&E, 409, id, "promote", E.rel1, FORCE));

	/* resuming a halted rollout: two distinct approvers, back to ring 0, the
	 * bad mark cleared */
	json_decref(fbt_rollout_action(&E, 403, id, "resume", E.soc, R("fixed")));
	j = fbt_rollout_action(&E, 202, id, "resume", E.rel1, R("root cause found"));
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	json_decref(j);
	j = fbt_rollout_action(&E, 202, id, "resume", E.rel1, R("root cause found"));
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	json_decref(j);
	fbt_rollout_expect(&E, id, "halted|reverted", 1); /* reverted: nobody ran it */
	j = fbt_rollout_action(&E, 200, id, "resume", E.rel2, R("agreed"));
	assert_string_equal(fbt_jstr(j, "state"), "rolling");
	assert_int_equal(json_integer_value(json_object_get(j, "ring_index")), 0);
	assert_true(json_is_false(json_object_get(j, "content_bad")));
	json_decref(j);
	assert_int_equal(audits("rollout.resume"), 2);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'approval' AND object = "
	                   "'rollout/%lld'",
	                   (long long)id),
	                 5); /* forced promotion 2, lapsed 1, resume 2 */

	j = fbt_rollout_action(&E, 202, id, "promote", E.rel2,
	                       FORCE); /* rel-one's earlier one lapsed */
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	json_decref(j);
	fbt_rollout_expect(&E, id, "rolling", 0);

	/* revert of a completed rollout: GA back to the previous file, marked bad */
	fbt_rollout_force_complete(&E, id);
	assert_int_equal(Q("SELECT count(*) FROM channels WHERE ga_sha256 = '%s' AND "
	                   "prev_ga_sha256 = '%s'",
	                   v2, v1),
	                 1);
	fbt_agent_settle(&E, &ag, 1, v2);
	int64_t seq_v2 = ag.seq;
	json_decref(fbt_rollout_action(&E, 403, id, "revert", ag.token, R("bad")));
	json_decref(fbt_rollout_action(&E, 400, id, "revert", E.soc, "{\"why\":\"bad\"}"));
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.reverted' AND "
	                   "actor = 'soc:soc-one'"),
	                 0);
	j = fbt_rollout_action(&E, 200, id, "revert", E.soc, R("field reports"));
	assert_string_equal(fbt_jstr(j, "state"), "reverted");
	assert_true(json_is_true(json_object_get(j, "content_bad")));
	json_decref(j);
	json_decref(fbt_rollout_action(&E, 200, id, "revert", E.soc,
	                               R("field reports"))); /* idempotent */
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.reverted' AND "
	                   "actor = 'soc:soc-one'"),
	                 1);
	assert_int_equal(Q("SELECT count(*) FROM channels WHERE ga_sha256 = '%s'", v1), 1);
	fbt_agent_settle(&E, &ag, 1, v1);
	assert_true(ag.seq > seq_v2);

	/* clearing the bad mark: two distinct release approvers */
	char path[128];
	snprintf(path, sizeof path, "/v1/content/%s/clear-bad", v2);
	fbt_env_expect(&E, 403, "POST", path, E.soc, R("fixed"));
	fbt_env_expect(&E, 400, "POST", path, E.rel1, "{}");
	j = fbt_env_want(&E, 202, "POST", path, E.rel1, R("false alarm"));
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	json_decref(j);
	j = fbt_env_want(&E, 202, "POST", path, E.rel1, R("false alarm"));
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	json_decref(j);
	assert_int_equal(Q("SELECT count(*) FROM content WHERE sha256 = '%s' AND bad", v2), 1);
	j = fbt_env_want(&E, 200, "POST", path, E.rel2, R("agreed"));
	assert_true(json_is_false(json_object_get(j, "bad")));
	json_decref(j);
	fbt_env_expect(&E, 200, "POST", path, E.rel2, R("agreed")); /* idempotent */
	assert_int_equal(Q("SELECT count(*) FROM content WHERE sha256 = '%s' AND bad", v2), 0);
	assert_int_equal(audits("content.clear_bad"), 1);
	(void)n_eval;
	fbt_agent_free(&ag, 1);
}

/* ---- supersession and refusals -------------------------------------------------- */

static void test_supersession(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	char v1[65], v2[65], body[512];
	fbt_rollout_upload(&E, 1, v1);
	fbt_rollout_upload(&E, 2, v2);
	int64_t first = fbt_rollout_start(&E, v1, "");
	snprintf(body, sizeof body, "{\"channel\":%d,\"content\":\"%s\"}", FBT_CH, v2);
	fbt_env_expect_code(&E, 409, "active_rollout", "POST", "/v1/rollouts", E.rel1, body);
	snprintf(body, sizeof body, "{\"channel\":%d,\"content\":\"%s\",\"supersede\":false}",
	         FBT_CH, v2);
	fbt_env_expect_code(&E, 409, "active_rollout", "POST", "/v1/rollouts", E.rel1, body);
	assert_int_equal(Q("SELECT count(*) FROM rollouts"), 1);
	fbt_rollout_expect(&E, first, "rolling", 0);
	int64_t second = fbt_rollout_start(&E, v2, ",\"supersede\":true");
	fbt_rollout_expect(&E, first, "superseded", -1);
	fbt_rollout_expect(&E, second, "rolling", 0);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.supersede' AND "
	                   "object = 'rollout/%lld'",
	                   (long long)first),
	                 1);
	/* a superseded rollout is finished: no action revives it */
	json_decref(fbt_rollout_action(&E, 409, first, "pause", E.rel1, R("x")));
	json_decref(fbt_rollout_action(&E, 409, first, "resume", E.rel1, R("x")));
	json_decref(fbt_rollout_action(&E, 409, first, "promote", E.rel1, R("x")));
	/* the list of active rollouts names only the new one */
	json_t *j = fbt_env_want(&E, 200, "GET", "/v1/rollouts?state=active", E.soc, NULL);
	json_t *arr = json_object_get(j, "rollouts");
	assert_int_equal(json_array_size(arr), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 0), "id")), second);
	json_decref(j);
}

static void test_rollout_refusals(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	fbt_env_expect(&E, 201, "POST", "/v1/channels", E.admin, "{\"id\":292,\"name\":\"other\"}");
	char v1[65], v2[65], v3[65], other[65], body[1024];
	fbt_rollout_upload(&E, 1, v1);
	fbt_rollout_upload(&E, 2, v2);
	fbt_rollout_upload(&E, 3, v3);
	char *ob = fbt_world_content(fbt_world_default(), 292, 1, other);
	fbt_env_expect(&E, 201, "POST", "/v1/content", E.rel1, ob);
	free(ob);
	fbt_rollout_make_ga(&E, v2);
	/* v3 is halted, so marked bad */
	int64_t id3 = fbt_rollout_start(&E, v3, "");
	json_decref(fbt_rollout_action(&E, 200, id3, "halt", E.soc, R("bad file")));
	/* No agent runs v3, so the controller marks the rollout reverted (an
	 * audit record of its own): let that happen before counting. */
	fbt_rollout_drive(&E, id3, NULL, 0, "reverted", -1);
	long n = Q("SELECT count(*) FROM rollouts");
	long audit = Q("SELECT count(*) FROM audit_log");
	struct {
		long status;
		const char *code;
		const char *content;
		const char *extra;
	} cases[] = {
	        {404, "not_found",
	         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ""},
	        {422, "wrong_channel", other, ""},
	        {409, "content_bad", v3, ""},
	        {409, "downgrade", v1, ""},
	        {409, "conflict", v2, ""}, /* already GA */
	        {422, "ring0_required", v3, ",\"rings\":[\"early\",\"ga\"]"},
	        {422, "unknown_ring", v3, ",\"rings\":[\"canary\",\"nowhere\"]"},
	        {422, "bad_policy", v3, ",\"policy\":{\"min_bake_s\":-1}"},
	        {422, "bad_policy", v3, ",\"policy\":{\"max_failure_rate\":0.9}"},
	        {422, "bad_policy", v3, ",\"policy\":{\"confidence\":0.5}"},
	        {422, "bad_policy", v3, ",\"policy\":{\"no_such_knob\":1}"},
	        {422, "bad_policy", v3, ",\"ring_policies\":{\"early\":{\"hard_cap\":-3}}"},
	        {422, "unknown_ring", v3, ",\"ring_policies\":{\"nowhere\":{\"hard_cap\":3}}"},
	        {400, "invalid", v3, ",\"policy\":[1]"},
	        {400, "invalid", v3, ",\"supersede\":\"yes\""},
	        {400, "invalid", v3, ",\"bogus\":1"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		/* v3 is bad: use a fresh good file for the plan and policy cases */
		const char *c = cases[i].content;
		snprintf(body, sizeof body, "{\"channel\":%d,\"content\":\"%s\"%s}", FBT_CH, c,
		         cases[i].extra);
		long st;
		json_t *j = fbt_env_call(&E, "POST", "/v1/rollouts", E.rel1, body, &st);
		const char *code = fbt_jstr(json_object_get(j, "error"), "code");
		int want_bad = c == v3 && cases[i].status != 409;
		/* for the plan and policy cases a bad file would be refused first; they
		 * run with v3 after its mark is cleared below */
		if (!want_bad && (st != cases[i].status || strcmp(code, cases[i].code)))
			fail_msg("case %zu: expected %ld %s, got %ld: %s", i, cases[i].status,
			         cases[i].code, st, fbt_env_raw(j));
		json_decref(j);
	}
	/* clear v3's mark (two approvers) and run the plan and policy cases */
	char path[128];
	snprintf(path, sizeof path, "/v1/content/%s/clear-bad", v3);
	fbt_env_expect(&E, 202, "POST", path, E.rel1, R("fixed"));
	fbt_env_expect(&E, 200, "POST", path, E.rel2, R("fixed"));
	audit = Q("SELECT count(*) FROM audit_log");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (cases[i].content != v3 || cases[i].status == 409)
			continue;
		snprintf(body, sizeof body, "{\"channel\":%d,\"content\":\"%s\"%s}", FBT_CH, v3,
		         cases[i].extra);
		long st;
		json_t *j = fbt_env_call(&E, "POST", "/v1/rollouts", E.rel1, body, &st);
		const char *code = fbt_jstr(json_object_get(j, "error"), "code");
		if (st != cases[i].status || strcmp(code, cases[i].code))
			fail_msg("case %zu: expected %ld %s, got %ld: %s", i, cases[i].status,
			         cases[i].code, st, fbt_env_raw(j));
		json_decref(j);
	}
	/* roles: soc, admin-only and agent tokens */
	snprintf(body, sizeof body, "{\"channel\":%d,\"content\":\"%s\"}", FBT_CH, v3);
	fbt_env_expect(&E, 403, "POST", "/v1/rollouts", E.soc, body);
	fbt_env_expect(&E, 401, "POST", "/v1/rollouts", NULL, body);
	/* unknown channel */
	snprintf(body, sizeof body, "{\"channel\":4242,\"content\":\"%s\"}", v3);
	fbt_env_expect_code(&E, 404, "not_found", "POST", "/v1/rollouts", E.rel1, body);
	/* nothing was stored by any refusal */
	assert_int_equal(Q("SELECT count(*) FROM rollouts"), n);
	assert_int_equal(Q("SELECT count(*) FROM audit_log"), audit);
	/* and the good request still works */
	fbt_rollout_start(
	        &E, v3,
	        ",\"rings\":[\"canary\",\"ga\"],\"ring_policies\":{\"ga\":{\"hard_cap\":5}}");
	(void)audit;
}

/* ---- rings ----------------------------------------------------------------------- */

static void test_rings(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	enum { N = 14 };
	struct fbt_agent ags[N];
	fbt_agent_new(&E, &ags[0], 0, FBT_GOOD, "{\"site\":\"fra1\"}", NULL,
	              NULL); /* listed and tagged */
	fbt_agent_new(&E, &ags[1], 1, FBT_GOOD, "{\"site\":\"fra1\"}", NULL, NULL); /* tagged */
	for (int i = 2; i < N; i++)
		fbt_agent_new(&E, &ags[i], -1, FBT_GOOD, "{\"site\":\"ams2\"}", NULL, NULL);
	json_t *j = fbt_env_want(&E, 200, "GET", "/v1/rings", E.soc, NULL);
	char *before = json_dumps(json_object_get(j, "rings"), JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	long audit = Q("SELECT count(*) FROM audit_log WHERE action = 'rings.replace'");

	char good[1024];
	snprintf(good, sizeof good,
	         "{\"rings\":[{\"name\":\"canary\",\"selector\":{\"agents\":[%lld]}},"
	         "{\"name\":\"early\",\"selector\":{\"tag\":\"site=fra1\"}},"
	         "{\"name\":\"broad\",\"selector\":{\"percent\":50}},"
	         "{\"name\":\"ga\",\"selector\":{\"rest\":true}}],\"reason\":\"new layout\"}",
	         (long long)ags[0].id);
	fbt_env_expect(&E, 403, "PUT", "/v1/rings", E.rel1, good);
	fbt_env_expect(&E, 403, "PUT", "/v1/rings", E.soc, good);
	fbt_env_expect(&E, 403, "PUT", "/v1/rings", ags[0].token, good);
	static const char *bad[] = {
	        "{\"rings\":[{\"name\":\"canary\",\"selector\":{\"percent\":5}}]}",
	        "{\"rings\":[{\"name\":\"a\",\"selector\":{\"percent\":5}},{\"name\":\"a\","
	        "\"selector\":{\"rest\":true}}]}",
	        "{\"rings\":[{\"name\":\"a\",\"selector\":{\"rest\":true}},{\"name\":\"b\","
	        "\"selector\":{\"rest\":true}}]}",
	        "{\"rings\":[{\"name\":\"a\",\"selector\":{\"tag\":\"novalue\"}},{\"name\":\"b\","
	        "\"selector\":{\"rest\":true}}]}",
	        "{\"rings\":[{\"name\":\"a\",\"selector\":{\"percent\":0}},{\"name\":\"b\","
	        "\"selector\":{\"rest\":true}}]}",
	        "{\"rings\":[{\"name\":\"a\",\"selector\":{\"percent\":60}},{\"name\":\"b\","
	        "\"selector\":{\"percent\":60}},{\"name\":\"c\",\"selector\":{\"rest\":true}}]}",
	        "{\"rings\":[{\"name\":\"a\",\"selector\":{\"agents\":[0]}},{\"name\":\"b\","
	        "\"selector\":{\"rest\":true}}]}",
	        "{\"rings\":[{\"name\":\"a\",\"selector\":{\"agents\":[1],\"tag\":\"k=v\"}},{"
	        "\"name\":\"b\",\"selector\":{\"rest\":true}}]}",
	        "{\"rings\":[{\"name\":\"a\",\"selector\":{\"planet\":\"mars\"}},{\"name\":\"b\","
	        "\"selector\":{\"rest\":true}}]}",
	        "{\"rings\":[{\"name\":\"Bad Name\",\"selector\":{\"rest\":true}}]}",
	        "{\"rings\":[]}",
	        "{\"rings\":{}}",
	        "{\"layers\":[]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		long st;
		j = fbt_env_call(&E, "PUT", "/v1/rings", E.admin, bad[i], &st);
		if (st != 400)
			fail_msg("rings case %zu: expected 400, got %ld: %s", i, st,
			         fbt_env_raw(j));
		json_decref(j);
	}
	j = fbt_env_want(&E, 200, "GET", "/v1/rings", E.soc, NULL);
	char *after = json_dumps(json_object_get(j, "rings"), JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	assert_string_equal(before, after); /* refusals changed nothing */
	free(before);
	free(after);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rings.replace'"), audit);

	/* resolution: explicit lists first, then tags, then hash buckets */
	fbt_env_expect(&E, 200, "PUT", "/v1/rings", E.admin, good);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rings.replace' AND "
	                   "actor = 'admin:ada' AND reason = 'new layout' AND after IS NOT NULL"),
	                 audit + 1);
	for (int k = 0; k < 50; k++) { /* until the new publication is served */
		fbt_agent_poll(&E, &ags[0]);
		if (strcmp(ags[0].audience, "canary") == 0)
			break;
		usleep(100000);
	}
	int broad = 0, ga = 0;
	char first[N][128];
	for (int i = 0; i < N; i++) {
		fbt_agent_poll(&E, &ags[i]);
		snprintf(first[i], sizeof first[i], "%s", ags[i].audience);
		if (i >= 2) {
			broad += strcmp(ags[i].audience, "broad") == 0;
			ga += strcmp(ags[i].audience, "ga") == 0;
		}
	}
	assert_string_equal(first[0], "canary");
	assert_string_equal(first[1], "early");
	assert_int_equal(broad + ga, N - 2); /* untagged agents land in the buckets */
	assert_true(broad > 0);              /* 50 %: both buckets are used */
	assert_true(ga > 0);
	/* stable: a new publication keeps every agent in its ring */
	fbt_env_expect(&E, 200, "PUT", "/v1/rings", E.admin, good);
	for (int i = 0; i < N; i++) {
		for (int k = 0; k < 50 && !fbt_agent_poll(&E, &ags[i]); k++)
			usleep(100000);
		assert_string_equal(ags[i].audience, first[i]);
	}
	/* 100 %: every untagged agent in broad */
	char all[1024];
	snprintf(all, sizeof all,
	         "{\"rings\":[{\"name\":\"canary\",\"selector\":{\"agents\":[%lld]}},"
	         "{\"name\":\"early\",\"selector\":{\"tag\":\"site=fra1\"}},"
	         "{\"name\":\"broad\",\"selector\":{\"percent\":100}},"
	         "{\"name\":\"ga\",\"selector\":{\"rest\":true}}]}",
	         (long long)ags[0].id);
	fbt_env_expect(&E, 200, "PUT", "/v1/rings", E.admin, all);
	for (int i = 2; i < N; i++) {
		for (int k = 0; k < 50 && !fbt_agent_poll(&E, &ags[i]); k++)
			usleep(100000);
		assert_string_equal(ags[i].audience, "broad");
	}

	/* a ring an active rollout uses cannot be removed; renaming others can */
	char v1[65];
	fbt_rollout_upload(&E, 1, v1);
	int64_t id = fbt_rollout_start(&E, v1, ",\"rings\":[\"canary\",\"broad\",\"ga\"]");
	long n_audit = Q("SELECT count(*) FROM audit_log WHERE action = 'rings.replace'");
	const char *drop_broad = "{\"rings\":[{\"name\":\"canary\",\"selector\":{\"percent\":1}},"
	                         "{\"name\":\"ga\",\"selector\":{\"rest\":true}}]}";
	fbt_env_expect_code(&E, 409, "conflict", "PUT", "/v1/rings", E.admin, drop_broad);
	assert_int_equal(Q("SELECT count(*) FROM rings WHERE name = 'broad'"), 1);
	const char *drop_early = "{\"rings\":[{\"name\":\"canary\",\"selector\":{\"percent\":1}},"
	                         "{\"name\":\"broad\",\"selector\":{\"percent\":20}},"
	                         "{\"name\":\"ga\",\"selector\":{\"rest\":true}}]}";
	fbt_env_expect(&E, 200, "PUT", "/v1/rings", E.admin, drop_early);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rings.replace'"),
	                 n_audit + 1);
	/* once the rollout is over, the ring may go */
	json_decref(fbt_rollout_action(&E, 200, id, "halt", E.soc, R("done testing")));
	fbt_env_expect(&E, 200, "PUT", "/v1/rings", E.admin, drop_broad);
	fbt_agent_free(ags, N);
}

/* ---- pins ------------------------------------------------------------------------- */

static void test_pins(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	enum { N = 5 };
	struct fbt_agent ags[N];
	fbt_agent_new(&E, &ags[0], 0, FBT_GOOD, "{\"customer\":\"acme\"}", NULL,
	              NULL); /* n-1, in canary */
	fbt_agent_new(&E, &ags[1], 0, FBT_GOOD, "{\"customer\":\"beta\"}", NULL,
	              NULL);                                       /* version 1, in canary */
	fbt_agent_new(&E, &ags[2], 0, FBT_GOOD, NULL, NULL, NULL); /* canary */
	fbt_agent_new(&E, &ags[3], 3, FBT_GOOD, NULL, NULL, NULL); /* ga */
	fbt_agent_new(&E, &ags[4], 3, FBT_GOOD, "{\"customer\":\"acme\"}", NULL,
	              NULL); /* n-1, in ga */
	fbt_agent_rings(&E, ags, N);
	char v1[65], v2[65], v3[65];
	fbt_rollout_upload(&E, 1, v1);
	fbt_rollout_upload(&E, 2, v2);
	fbt_rollout_upload(&E, 3, v3);
	fbt_rollout_make_ga(&E, v1);
	fbt_rollout_make_ga(&E, v2);
	fbt_agent_settle(&E, ags, N, v2);

	/* admin only, validated */
	const char *pin_acme = "{\"tag\":\"customer=acme\",\"channel\":291,\"mode\":\"n-1\","
	                       "\"reason\":\"customer asked\"}";
	const char *pin_beta = "{\"tag\":\"customer=beta\",\"channel\":291,\"mode\":\"version\","
	                       "\"version\":1}";
	fbt_env_expect(&E, 403, "POST", "/v1/pins", E.rel1, pin_acme);
	fbt_env_expect(&E, 403, "POST", "/v1/pins", E.soc, pin_acme);
	fbt_env_expect(&E, 400, "POST", "/v1/pins", E.admin,
	               "{\"tag\":\"customer=acme\",\"channel\":291,\"mode\":\"n-2\"}");
	fbt_env_expect(&E, 400, "POST", "/v1/pins", E.admin,
	               "{\"tag\":\"customer=acme\",\"channel\":291,\"mode\":\"version\"}");
	fbt_env_expect(
	        &E, 400, "POST", "/v1/pins", E.admin,
	        "{\"tag\":\"customer=acme\",\"channel\":291,\"mode\":\"n-1\",\"version\":1}");
	fbt_env_expect(&E, 400, "POST", "/v1/pins", E.admin,
	               "{\"tag\":\"acme\",\"channel\":291,\"mode\":\"n-1\"}");
	fbt_env_expect_code(
	        &E, 422, "unknown_version", "POST", "/v1/pins", E.admin,
	        "{\"tag\":\"customer=beta\",\"channel\":291,\"mode\":\"version\",\"version\":9}");
	assert_int_equal(Q("SELECT count(*) FROM pins"), 0);
	json_t *j = fbt_env_want(&E, 201, "POST", "/v1/pins", E.admin, pin_acme);
	int64_t pin_a = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	fbt_env_expect(&E, 409, "POST", "/v1/pins", E.admin, pin_acme);
	fbt_env_expect(&E, 201, "POST", "/v1/pins", E.admin, pin_beta);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'pin.create'"), 2);
	j = fbt_env_want(&E, 200, "GET", "/v1/pins", E.soc, NULL);
	assert_int_equal(json_array_size(json_object_get(j, "pins")), 2);
	json_decref(j);

	/* n-1 lags GA by one version, a version pin holds its version */
	fbt_agent_settle(&E, &ags[0], 1, v1);
	fbt_agent_settle(&E, &ags[4], 1, v1);
	fbt_agent_settle(&E, &ags[1], 1, v1);
	fbt_agent_settle(&E, &ags[2], 1, v2);
	fbt_agent_settle(&E, &ags[3], 1, v2);
	char want[64];
	snprintf(want, sizeof want, "canary+pin%lld", (long long)pin_a);
	assert_string_equal(ags[0].audience, want);

	/* a rollout of v3: pinned agents are not offered it, even in its ring */
	int64_t id = fbt_rollout_start(&E, v3, "");
	fbt_agent_settle(&E, &ags[2], 1, v3);
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < N; i++)
			fbt_agent_step(&E, &ags[i]);
		usleep(200000);
	}
	assert_string_equal(ags[0].assigned, v1);
	assert_string_equal(ags[1].assigned, v1);
	assert_string_equal(ags[3].assigned, v2);
	assert_string_equal(ags[4].assigned, v1);
	/* after it completed GA, n-1 moves to the previous GA */
	fbt_rollout_force_complete(&E, id);
	fbt_agent_settle(&E, &ags[0], 1, v2);
	fbt_agent_settle(&E, &ags[4], 1, v2);
	fbt_agent_settle(&E, &ags[3], 1, v3);
	fbt_agent_step(&E, &ags[1]);
	assert_string_equal(ags[1].assigned, v1);
	assert_int_equal(ags[1].assigned_version, 1);

	/* removing a pin gives the agent its ring's content again */
	char path[64];
	snprintf(path, sizeof path, "/v1/pins/%lld", (long long)pin_a);
	fbt_env_expect(&E, 403, "DELETE", path, E.soc, NULL);
	fbt_env_expect(&E, 200, "DELETE", path, E.admin, NULL);
	fbt_env_expect(&E, 404, "DELETE", path, E.admin, NULL);
	fbt_agent_settle(&E, &ags[0], 1, v3);
	assert_string_equal(ags[0].audience, "canary");
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'pin.delete'"), 1);
	fbt_agent_free(ags, N);
}

/* ---- compatibility ---------------------------------------------------------------- */

static void test_compatibility(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	/* v1 uses templates 1, 2 and 3; v2 uses named_pipe version 2 (id 7) */
	const char *old_build = "[{\"id\":1,\"version\":1},{\"id\":2,\"version\":1},"
	                        "{\"id\":3,\"version\":1},{\"id\":7,\"version\":1}]";
	enum { N = 3 };
	struct fbt_agent ags[N];
	fbt_agent_new(&E, &ags[0], 0, FBT_GOOD, NULL, old_build, NULL);
	fbt_agent_new(&E, &ags[1], 0, FBT_GOOD, NULL, NULL, NULL);
	fbt_agent_new(&E, &ags[2], 3, FBT_GOOD, NULL, old_build, NULL);
	fbt_agent_rings(&E, ags, N);
	char v1[65], v2[65];
	fbt_rollout_upload(&E, 1, v1);
	upload_file("named_pipe_v2", 2, v2);
	fbt_rollout_make_ga(&E, v1);
	fbt_agent_settle(&E, ags, N, v1);
	int64_t id = fbt_rollout_start(&E, v2, "");
	fbt_agent_settle(&E, &ags[1], 1, v2);
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < N; i++)
			fbt_agent_step(&E, &ags[i]);
		usleep(200000);
	}
	assert_string_equal(ags[0].assigned, v1); /* same ring, older build */
	/* not even once GA: a build that cannot interpret it stays on v1 */
	fbt_rollout_force_complete(&E, id);
	assert_int_equal(Q("SELECT count(*) FROM channels WHERE ga_sha256 = '%s'", v2), 1);
	fbt_agent_settle(&E, &ags[1], 1, v2);
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < N; i++)
			fbt_agent_step(&E, &ags[i]);
		usleep(200000);
	}
	assert_string_equal(ags[0].assigned, v1);
	assert_string_equal(ags[2].assigned, v1);
	/* an upgraded build reports its capabilities and gets it: its new class
	 * has another document, so the server publishes anew and that document
	 * carries a higher sequence the agent accepts, with no other change
	 * needed. Until the new publication is loaded (about a second) a poll
	 * may see the new class's document at the old sequence; the agent
	 * refuses it as a replay and keeps what it runs, as a real one does. */
	snprintf(ags[2].caps, sizeof ags[2].caps, "%s", E.caps);
	ags[2].replays_expected = 1;
	long pub = Q("SELECT seq FROM publication");
	fbt_agent_heartbeat(&E, &ags[2]);
	for (int k = 0; k < 100 && Q("SELECT seq FROM publication") == pub; k++)
		usleep(100000);
	assert_true(Q("SELECT seq FROM publication") > pub);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'pin.create'"), 0);
	fbt_agent_settle(&E, &ags[2], 1, v2);
	fbt_agent_free(ags, N);
}

/* Until the serving snapshot has applied the rings just PUT: agent a is in
 * ring `want` (GET /v1/agents/{id} answers the snapshot's ring). */
static void wait_ring(const struct fbt_agent *a, const char *want)
{
	char path[64];
	snprintf(path, sizeof path, "/v1/agents/%lld", (long long)a->id);
	for (int i = 0; i < FBT_DEADLINE * 10; i++) {
		json_t *j = fbt_env_want(&E, 200, "GET", path, E.admin, NULL);
		int ok = strcmp(fbt_jstr(j, "ring"), want) == 0;
		json_decref(j);
		if (ok)
			return;
		usleep(100000);
	}
	fail_msg("agent %lld never reached ring %s", (long long)a->id, want);
}

/* Gate v2's holdout: a deterministic share of each big enough ring stays on
 * the previous content (here: none, the channel's first file), the same on
 * every poll, counted in the rollout; small rings keep none. */
static void test_holdout(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	enum { N = 120, CANARY = 100 };
	static struct fbt_agent ags[N];
	for (int i = 0; i < N; i++)
		fbt_agent_new(&E, &ags[i], i < CANARY ? 0 : 1, FBT_GOOD, NULL, NULL, NULL);
	char *rings = malloc(8192);
	int n = snprintf(rings, 8192,
	                 "{\"rings\":[{\"name\":\"canary\",\"selector\":{\"agents\":[");
	for (int i = 0; i < CANARY; i++)
		n += snprintf(rings + n, (size_t)(8192 - n), "%s%lld", i ? "," : "",
		              (long long)ags[i].id);
	snprintf(rings + n, (size_t)(8192 - n),
	         "]}},{\"name\":\"ga\",\"selector\":{\"rest\":true}}],\"reason\":\"holdout\"}");
	fbt_env_expect(&E, 200, "PUT", "/v1/rings", E.admin, rings);
	free(rings);
	wait_ring(&ags[0], "canary");
	wait_ring(&ags[N - 1], "ga");
	char sha[65];
	fbt_rollout_upload(&E, 1, sha);
	int64_t id = fbt_rollout_start(&E, sha, ",\"policy\":{\"holdout\":0.1,\"holdout_min\":10}");
	json_t *r = NULL;
	for (int k = 0; k < 100; k++) { /* until the snapshot has the rollout */
		json_decref(r);
		r = fbt_rollout_get(&E, id);
		json_t *h0 = json_array_get(json_object_get(r, "holdout_agents"), 0);
		if (json_integer_value(json_object_get(h0, "held")) > 0)
			break;
		usleep(100000);
	}
	json_t *hold = json_object_get(r, "holdout");
	assert_int_equal(json_array_size(hold), 2);
	assert_true(fabs(json_number_value(json_array_get(hold, 0)) - 0.1) < 1e-9);
	assert_true(json_number_value(json_array_get(hold, 1)) == 0.0); /* 20 agents: none */
	json_t *ha = json_object_get(r, "holdout_agents");
	assert_string_equal(fbt_jstr(json_array_get(ha, 0), "ring"), "canary");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ha, 0), "agents")),
	                 CANARY);
	int64_t held = json_integer_value(json_object_get(json_array_get(ha, 0), "held"));
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ha, 1), "held")), 0);
	json_decref(r);
	/* about 10 of 100 (binomial: 1..25 is far beyond 4 standard deviations) */
	assert_true(held >= 1 && held <= 25);

	int got = 0;
	for (int k = 0; k < 100 && got < CANARY - held; k++) {
		got = 0;
		for (int i = 0; i < CANARY; i++) {
			fbt_agent_poll(&E, &ags[i]);
			got += strcmp(ags[i].assigned, sha) == 0;
		}
		if (got < CANARY - held)
			usleep(100000);
	}
	assert_int_equal(got, CANARY - held);
	int marked = 0;
	char first[N];
	for (int i = 0; i < CANARY; i++) {
		first[i] = strcmp(ags[i].assigned, sha) == 0;
		marked += !first[i] && strstr(ags[i].audience, "~h") != NULL;
	}
	assert_int_equal(marked, held); /* the held documents say so in their audience */
	for (int i = CANARY; i < N; i++) {
		fbt_agent_poll(&E, &ags[i]);
		assert_string_equal(ags[i].assigned, ""); /* ring not reached */
	}
	/* Stable: the same agents again (the hash of rollout and agent). */
	for (int i = 0; i < CANARY; i++) {
		ags[i].etag[0] = '\0';
		ags[i].seq = 0;
		fbt_agent_poll(&E, &ags[i]);
		assert_int_equal(strcmp(ags[i].assigned, sha) == 0, first[i]);
	}
	/* Ended: the snapshot holds nobody back for it any more. */
	char path[64];
	snprintf(path, sizeof path, "/v1/rollouts/%lld/halt", (long long)id);
	fbt_env_expect(&E, 200, "POST", path, E.soc, "{\"reason\":\"end of test\"}");
	for (int k = 0; k < 50; k++) {
		r = fbt_rollout_get(&E, id);
		held = json_integer_value(json_object_get(
		        json_array_get(json_object_get(r, "holdout_agents"), 0), "held"));
		json_decref(r);
		if (held == 0)
			break;
		usleep(100000);
	}
	assert_int_equal(held, 0);
	fbt_agent_free(ags, N);
}

/* Canary coverage: a platform the later rings hold enough of to judge must
 * meet the file in ring 0 first; refused with the segment named (nothing
 * stored), or started with "coverage": "warn", audited and announced. */
static void test_canary_coverage(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	enum { CAN = 6, LATER = 25 };
	static struct fbt_agent ags[CAN + LATER];
	for (int i = 0; i < CAN + LATER; i++)
		fbt_agent_new(
		        &E, &ags[i], i < CAN ? 0 : 1, FBT_GOOD, NULL, NULL,
		        i < CAN ? "{\"os\":\"windows\",\"os_build\":\"22631\",\"arch\":\"x86_64\"}"
		                : "{\"os\":\"windows\",\"os_build\":\"19045\",\"arch\":\"x86_"
		                  "64\"}");
	char rings[2048];
	int n = snprintf(rings, sizeof rings,
	                 "{\"rings\":[{\"name\":\"canary\",\"selector\":{\"agents\":[");
	for (int i = 0; i < CAN; i++)
		n += snprintf(rings + n, sizeof rings - (size_t)n, "%s%lld", i ? "," : "",
		              (long long)ags[i].id);
	snprintf(rings + n, sizeof rings - (size_t)n,
	         "]}},{\"name\":\"ga\",\"selector\":{\"rest\":true}}],\"reason\":\"coverage\"}");
	fbt_env_expect(&E, 200, "PUT", "/v1/rings", E.admin, rings);
	wait_ring(&ags[0], "canary");
	wait_ring(&ags[CAN + LATER - 1], "ga");
	char sha[65], body[512];
	fbt_rollout_upload(&E, 1, sha);
	long audits = Q("SELECT count(*) FROM audit_log");
	snprintf(body, sizeof body, "{\"channel\":%d,\"content\":\"%s\",\"reason\":\"t\"}", FBT_CH,
	         sha);
	json_t *j = fbt_env_want(&E, 422, "POST", "/v1/rollouts", E.rel1, body);
	assert_string_equal(fbt_jstr(json_object_get(j, "error"), "code"), "canary_coverage");
	const char *msg = fbt_jstr(json_object_get(j, "error"), "message");
	if (!strstr(msg,
	            "ring 'canary' holds 0 agents of os_build 19045, which later rings hold 25"))
		fail_msg("coverage message: %s", msg);
	json_decref(j);
	snprintf(body, sizeof body,
	         "{\"channel\":%d,\"content\":\"%s\",\"reason\":\"t\",\"coverage\":\"maybe\"}",
	         FBT_CH, sha);
	fbt_env_expect_code(&E, 400, "invalid", "POST", "/v1/rollouts", E.rel1, body);
	assert_int_equal(Q("SELECT count(*) FROM rollouts"), 0);
	assert_int_equal(Q("SELECT count(*) FROM audit_log"), audits);

	/* Fewer later agents than min_segment_agents are not required. */
	snprintf(body, sizeof body,
	         "{\"channel\":%d,\"content\":\"%s\",\"reason\":\"t\",\"policy\":"
	         "{\"min_segment_agents\":26}}",
	         FBT_CH, sha);
	j = fbt_env_want(&E, 201, "POST", "/v1/rollouts", E.rel1, body);
	int64_t first = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	assert_int_equal(Q("SELECT count(*) FROM notifications WHERE type = "
	                   "'rollout.coverage_warning'"),
	                 0);
	snprintf(body, sizeof body, "/v1/rollouts/%lld/halt", (long long)first);
	fbt_env_expect(&E, 200, "POST", body, E.soc, "{\"reason\":\"next\"}");

	/* warn: started, the gaps audited and announced */
	char sha2[65];
	fbt_rollout_upload(&E, 2, sha2);
	snprintf(body, sizeof body,
	         "{\"channel\":%d,\"content\":\"%s\",\"reason\":\"t\",\"coverage\":\"warn\"}",
	         FBT_CH, sha2);
	j = fbt_env_want(&E, 201, "POST", "/v1/rollouts", E.rel1, body);
	int64_t id = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.start' AND "
	                   "object = 'rollout/%lld' AND after -> 'coverage_warnings' -> 0 ->> "
	                   "'value' = '19045'",
	                   (long long)id),
	                 1);
	assert_int_equal(Q("SELECT count(*) FROM notifications WHERE type = "
	                   "'rollout.coverage_warning' AND rollout_id = %lld AND data -> "
	                   "'uncovered' -> 0 ->> 'dimension' = 'os_build'",
	                   (long long)id),
	                 1);
	fbt_agent_free(ags, CAN + LATER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_good_file_through_every_ring, env_down),
	        cmocka_unit_test_teardown(test_halt_by_crashes_and_revert, env_down),
	        cmocka_unit_test_teardown(test_halt_by_silence, env_down),
	        cmocka_unit_test_teardown(test_halt_by_failure_rate, env_down),
	        cmocka_unit_test_teardown(test_halt_first_content, env_down),
	        cmocka_unit_test_teardown(test_first_file_control_failures, env_down),
	        cmocka_unit_test_teardown(test_attributed_cap, env_down),
	        cmocka_unit_test_teardown(test_manual_actions_and_roles, env_down),
	        cmocka_unit_test_teardown(test_supersession, env_down),
	        cmocka_unit_test_teardown(test_rollout_refusals, env_down),
	        cmocka_unit_test_teardown(test_rings, env_down),
	        cmocka_unit_test_teardown(test_pins, env_down),
	        cmocka_unit_test_teardown(test_compatibility, env_down),
	        cmocka_unit_test_teardown(test_holdout, env_down),
	        cmocka_unit_test_teardown(test_canary_coverage, env_down),
	};
	return cmocka_run_group_tests_name("rollout", tests, NULL, NULL);
}
