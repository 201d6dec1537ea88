/* The rollout controller against the real firebreakd and PostgreSQL: the
 * state survives kill -9 of the server at different moments of a rollout
 * (no false halt from the restart: the silence grace), and the controller is
 * a singleton across replicas (the controller lease) that another replica
 * takes over when the leader dies. Agents are simulated as in test_rollout.c
 * (real keys, assignments verified with libfbsign). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the three above, which it needs */

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fb.h"
#include "fbschema.h"
#include "fbsign.h"
#include "fbt.h"
#include "fbt_world.h"

#define CH       291
#define DEADLINE 90 /* seconds: generous, for sanitizer builds */

/* A fast gate: seconds instead of hours, one healthy agent per ring. */
#define FAST_POLICY                                                                                \
	"{\"min_bake_s\":1,\"min_healthy\":1,\"max_failure_rate\":0.5,\"max_excess\":1,\"watch_"   \
	"s\":0,\"confidence\":0.8,"                                                                \
	"\"hard_cap\":3,\"silence_timeout_s\":20}"

enum behaviour {
	GOOD,    /* applies what it is assigned and keeps heartbeating */
	CRASHER, /* applies the bad file, crashes, reports it on the next boot */
	SILENT,  /* applies the bad file, heartbeats once, then is never heard again */
};

struct agent {
	int64_t id;
	char *token;
	int ring; /* index of the ring the test put it in */
	enum behaviour how;
	char etag[160];
	int64_t seq; /* last accepted assignment sequence */
	char audience[128];
	char assigned[65]; /* content named for channel CH; "" when none */
	int64_t assigned_version;
	char active[65];
	int boot;
	int nev;
	int dead;
	int crashed;
	int64_t bad_seq;      /* sequence of the assignment that named the bad file */
	int replays_expected; /* refuse a replayed sequence instead of failing */
	int replays;
	char caps[1024];
};

struct env {
	char *db;
	struct fbt_server srv, srv2; /* two replicas on one database */
	struct fbt_server *cur;      /* the one the test talks to */
	char *admin, *rel1, *rel2, *soc;
	char *caps_all;
	const char *bad;   /* the content CRASHER and SILENT agents fail on */
	const char *watch; /* content whose exposure is checked ring by ring */
};

static struct env E;
static const char *g_flag; /* one more server flag, or NULL */
static struct fbsig_root *g_root;

/* ---- HTTP ------------------------------------------------------------------ */

static const char *raw(json_t *j)
{
	const char *s = json_string_value(json_object_get(j, "_raw"));
	return s ? s : "";
}

/* Any status; the parsed body (an object, "_raw" holds the text). */
static json_t *call(const char *method, const char *path, const char *token, const char *body,
                    long *status)
{
	struct fbt_resp r;
	if (fbt_http(E.cur, method, path, token, body, body ? strlen(body) : 0, NULL, &r))
		fail_msg("%s %s: transport error", method, path);
	*status = r.status;
	json_t *j = fbt_resp_json(&r);
	if (!json_is_object(j)) {
		json_decref(j);
		j = json_object();
	}
	json_object_set_new(j, "_raw", json_string(r.body ? r.body : ""));
	fbt_resp_free(&r);
	return j;
}

static json_t *call_want(long want, const char *method, const char *path, const char *token,
                         const char *body)
{
	long st;
	json_t *j = call(method, path, token, body, &st);
	if (st != want)
		fail_msg("%s %s: expected %ld, got %ld: %s", method, path, want, st, raw(j));
	return j;
}

static void expect(long want, const char *method, const char *path, const char *token,
                   const char *body)
{
	json_decref(call_want(want, method, path, token, body));
}

static long q(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long q(const char *fmt, ...)
{
	char sql[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	return fbt_db_long(E.db, sql);
}

/* ---- environment ------------------------------------------------------------- */

/* Start a replica on the test's database and wait until it serves. */
static void server_up(struct fbt_server *s)
{
	const char *extra[] = {"--heartbeat_flush_ms=200", "--snapshot_check_ms=200",
	                       "--controller_interval_ms=200", g_flag, NULL};
	assert_int_equal(fbt_server_start(s, E.db, extra), 0);
	struct fbt_server *was = E.cur;
	E.cur = s;
	int ready = 0;
	for (int i = 0; i < 300 && !ready; i++) {
		long st;
		json_decref(call("GET", "/readyz", NULL, NULL, &st));
		ready = st == 200;
		if (!ready)
			usleep(100000);
	}
	assert_true(ready);
	E.cur = was ? was : s;
}

static void env_up(void)
{
	memset(&E, 0, sizeof E);
	E.db = fbt_db_new();
	E.admin = fbt_token(E.db, "admin", "ada");
	E.rel1 = fbt_token(E.db, "release", "rel-one");
	E.rel2 = fbt_token(E.db, "release", "rel-two");
	E.soc = fbt_token(E.db, "soc", "soc-one");
	assert_non_null(E.admin);
	assert_non_null(E.soc);
	server_up(&E.srv);
	struct cf_registry *reg;
	struct fb_err err;
	assert_int_equal(cf_registry_load_dir(fbt_world_default()->templates, &reg, &err), FB_OK);
	json_t *caps = cf_registry_capabilities(reg);
	E.caps_all = json_dumps(caps, JSON_COMPACT);
	json_decref(caps);
	cf_registry_free(reg);
	expect(201, "POST", "/v1/channels", E.admin, "{\"id\":291,\"name\":\"named-pipes\"}");
}

static int env_down(void **state)
{
	(void)state;
	if (E.srv.pid > 0)
		assert_int_equal(fbt_server_stop(&E.srv, SIGTERM), 0); /* clean exit, no leaks */
	if (E.srv2.pid > 0)
		assert_int_equal(fbt_server_stop(&E.srv2, SIGTERM), 0);
	free(E.db);
	free(E.admin);
	free(E.rel1);
	free(E.rel2);
	free(E.soc);
	free(E.caps_all);
	memset(&E, 0, sizeof E);
	return 0;
}

/* ---- content and rollouts ----------------------------------------------------- */

static void upload(int64_t version, char sha[65])
{
	char *body = fbt_world_content(fbt_world_default(), CH, version, sha);
	assert_non_null(body);
	expect(201, "POST", "/v1/content", E.rel1, body);
	free(body);
}

/* Start a rollout of sha; extra: more members of the body ("" or ",\"k\":v"). */
static int64_t rollout_start(const char *sha, const char *extra)
{
	char body[4096];
	snprintf(body, sizeof body, "{\"channel\":%d,\"content\":\"%s\",\"reason\":\"test\"%s}", CH,
	         sha, extra);
	json_t *j = call_want(201, "POST", "/v1/rollouts", E.rel1, body);
	int64_t id = json_integer_value(json_object_get(j, "id"));
	assert_true(id > 0);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "rolling");
	assert_int_equal(json_integer_value(json_object_get(j, "ring_index")), 0);
	json_decref(j);
	return id;
}

static json_t *rollout_get(int64_t id)
{
	char path[64];
	snprintf(path, sizeof path, "/v1/rollouts/%lld", (long long)id);
	return call_want(200, "GET", path, E.soc, NULL);
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static int state_in(const char *state, const char *list);

/* Check the state (one of "a|b") and ring index (unless -1) of a rollout. */
static void expect_rollout(int64_t id, const char *state, int ring)
{
	json_t *r = rollout_get(id);
	if (!state_in(jstr(r, "state"), state) ||
	    (ring >= 0 && json_integer_value(json_object_get(r, "ring_index")) != ring))
		fail_msg("rollout %lld: expected %s ring %d: %s", (long long)id, state, ring,
		         raw(r));
	json_decref(r);
}

/* POST /v1/rollouts/{id}/{action} with body; returns the parsed answer. */
static json_t *action(long want, int64_t id, const char *act, const char *token, const char *body)
{
	char path[96];
	snprintf(path, sizeof path, "/v1/rollouts/%lld/%s", (long long)id, act);
	return call_want(want, "POST", path, token, body);
}

/* Forced promotions (two release approvers each) until the rollout completes. */
static void force_complete(int64_t id)
{
	static const char *force = "{\"reason\":\"push it through\",\"force\":true}";
	for (int i = 0; i < 12; i++) {
		json_t *r = rollout_get(id);
		int done = strcmp(jstr(r, "state"), "completed") == 0;
		json_decref(r);
		if (done)
			return;
		char path[96];
		snprintf(path, sizeof path, "/v1/rollouts/%lld/promote", (long long)id);
		long st;
		json_t *j = call("POST", path, E.rel1, force, &st);
		if (st == 202)
			json_decref(call_want(200, "POST", path, E.rel2, force));
		else if (st != 200)
			fail_msg("forced promotion of %lld: %ld %s", (long long)id, st, raw(j));
		json_decref(j);
	}
	fail_msg("rollout %lld did not complete", (long long)id);
}

/* ---- simulated agents ---------------------------------------------------------- */

static void agent_new(struct agent *a, int ring, enum behaviour how, const char *tags,
                      const char *caps)
{
	memset(a, 0, sizeof *a);
	a->ring = ring;
	a->how = how;
	char body[4096];
	snprintf(body, sizeof body, "{\"name\":\"batch\",\"tags\":%s}", tags ? tags : "{}");
	json_t *j = call_want(201, "POST", "/v1/enrollment-tokens", E.admin, body);
	char *et = strdup(jstr(j, "token"));
	json_decref(j);
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	crypto_sign_keypair(pk, sk);
	sodium_memzero(sk, sizeof sk);
	char pk64[64];
	sodium_bin2base64(pk64, sizeof pk64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
	snprintf(a->caps, sizeof a->caps, "%s", caps ? caps : E.caps_all);
	snprintf(body, sizeof body,
	         "{\"enrollment_token\":\"%s\",\"public_key\":\"%s\",\"hostname\":\"h\","
	         "\"agent_version\":\"test\",\"capabilities\":%s}",
	         et, pk64, a->caps);
	free(et);
	j = call_want(201, "POST", "/v1/enroll", NULL, body);
	a->id = json_integer_value(json_object_get(j, "agent_id"));
	a->token = strdup(jstr(j, "agent_token"));
	json_decref(j);
	a->boot = 1;
}

static void agents_free(struct agent *ags, int n)
{
	for (int i = 0; i < n; i++)
		free(ags[i].token);
}

/* Poll as an agent does: If-None-Match, then verify the assignment against
 * the pinned root (online-key signature, expiry, sequence above the last
 * accepted one, every embedded manifest). 1 when a new one was accepted. */
static int agent_poll(struct agent *a)
{
	char inm[200];
	snprintf(inm, sizeof inm, "If-None-Match: %s", a->etag);
	const char *h[] = {inm, NULL};
	struct fbt_resp r;
	if (fbt_http(E.cur, "GET", "/v1/poll", a->token, NULL, 0, a->etag[0] ? h : NULL, &r))
		fail_msg("poll: transport error");
	if (r.status == 304) {
		fbt_resp_free(&r);
		return 0;
	}
	if (r.status != 200)
		fail_msg("agent %lld: poll: %ld %s", (long long)a->id, r.status,
		         r.body ? r.body : "");
	struct fbsig_assignment *as;
	struct fb_err err;
	enum fb_rc rc = fbsig_assignment_verify(g_root, r.body, r.len, fb_now_ms() / 1000, a->seq,
	                                        &as, &err);
	if (rc == FB_EROLLBACK && a->replays_expected) {
		fbt_resp_free(&r); /* refused, as an agent does; it keeps what it runs */
		a->replays++;
		return 0;
	}
	if (rc)
		fail_msg("agent %lld: the assignment does not verify (last sequence %lld): %s",
		         (long long)a->id, (long long)a->seq, err.msg);
	fbt_header(&r, "ETag", a->etag, sizeof a->etag);
	fbt_resp_free(&r);
	a->seq = as->sequence;
	snprintf(a->audience, sizeof a->audience, "%s", as->audience);
	a->assigned[0] = '\0';
	a->assigned_version = 0;
	for (size_t i = 0; i < as->n_channels; i++)
		if (as->channels[i].channel == CH) {
			snprintf(a->assigned, sizeof a->assigned, "%s", as->channels[i].sha256);
			a->assigned_version = as->channels[i].version;
		}
	fbsig_assignment_free(as);
	return 1;
}

static void agent_heartbeat(struct agent *a)
{
	char body[2048], active[128] = "{}";
	if (a->active[0])
		snprintf(active, sizeof active, "{\"%d\":\"%s\"}", CH, a->active);
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"boot_id\":\"boot-%lld-%d\",\"uptime_s\":10,"
	         "\"agent_version\":\"test\",\"active\":%s,\"capabilities\":%s}",
	         (long long)a->id, (long long)a->id, a->boot, active, a->caps);
	expect(202, "POST", "/v1/heartbeat", a->token, body);
}

/* One event: applied (content), crash (content active at the crash, in the
 * boot that crashed) or boot_loop (reverted from content). */
static void agent_event(struct agent *a, const char *kind, const char *content)
{
	char body[2048], ev[1024];
	int64_t now = fb_now_ms() / 1000;
	a->nev++;
	if (strcmp(kind, "crash") == 0)
		snprintf(ev, sizeof ev,
		         "\"content\":\"%s\",\"boot_id\":\"boot-%lld-%d\",\"code\":\"0xC0000005\","
		         "\"module\":\"csagent.sys\"",
		         content, (long long)a->id, a->boot - 1);
	else if (strcmp(kind, "boot_loop") == 0)
		snprintf(ev, sizeof ev,
		         "\"reverted_from\":\"%s\",\"reverted_to\":\"\",\"boot_id\":\"boot-%lld-%"
		         "d\","
		         "\"unclean_starts\":3",
		         content, (long long)a->id, a->boot);
	else
		snprintf(ev, sizeof ev, "\"content\":\"%s\",\"boot_id\":\"boot-%lld-%d\"", content,
		         (long long)a->id, a->boot);
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"events\":[{\"id\":\"ev-%d\",\"kind\":\"%s\",\"at\":%lld,"
	         "\"channel\":%d,%s}]}",
	         (long long)a->id, a->nev, kind, (long long)now, CH, ev);
	json_t *j = call_want(200, "POST", "/v1/events", a->token, body);
	assert_int_equal(json_integer_value(json_object_get(j, "accepted")), 1);
	json_decref(j);
}

/* One round of an agent's life: poll, apply what changed, report, heartbeat. */
static void agent_step(struct agent *a)
{
	if (a->dead)
		return;
	agent_poll(a);
	if (strcmp(a->assigned, a->active)) {
		snprintf(a->active, sizeof a->active, "%s", a->assigned);
		if (a->active[0])
			agent_event(a, "applied", a->active);
		if (E.bad && strcmp(a->active, E.bad) == 0) {
			a->bad_seq = a->seq;
			if (a->how == CRASHER) {
				a->boot++; /* crashed; the next boot reports it */
				a->crashed = 1;
				agent_event(a, "crash", a->active);
			} else if (a->how == SILENT) {
				agent_heartbeat(a);
				a->dead = 1;
				return;
			}
		}
	}
	agent_heartbeat(a);
}

static int state_in(const char *state, const char *list)
{
	size_t n = strlen(state);
	for (const char *p = list; p && *p;) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && strncmp(p, state, n) == 0)
			return 1;
		p = bar ? bar + 1 : NULL;
	}
	return 0;
}

/* Drive the agents until the rollout is in one of states ("a|b") and, unless
 * ring is -1, at ring index ring; fails at the deadline. While E.watch is
 * set, every agent that was assigned it must sit in a ring the rollout had
 * reached (read after the poll, so a promotion in between cannot excuse it). */
static void drive_until(int64_t id, struct agent *ags, int n, const char *states, int ring)
{
	int64_t end = fb_mono_ms() + DEADLINE * 1000;
	while (fb_mono_ms() < end) {
		for (int i = 0; i < n; i++)
			agent_step(&ags[i]);
		json_t *r = rollout_get(id);
		const char *st = jstr(r, "state");
		int at = (int)json_integer_value(json_object_get(r, "ring_index"));
		for (int i = 0; E.watch && i < n; i++)
			if (strcmp(ags[i].assigned, E.watch) == 0 && strcmp(st, "completed") &&
			    ags[i].ring > at)
				fail_msg("agent %lld of ring %d got the content while the rollout "
				         "is "
				         "at ring %d: %s",
				         (long long)ags[i].id, ags[i].ring, at, raw(r));
		int done = state_in(st, states) && (ring < 0 || at == ring);
		json_decref(r);
		if (done)
			return;
		usleep(150000);
	}
	json_t *r = rollout_get(id);
	fail_msg("rollout %lld did not reach %s (ring %d) within %ds: %s", (long long)id, states,
	         ring, DEADLINE, raw(r));
}

/* PUT /v1/rings: canary, early, broad by explicit agent lists (ids of the
 * agents with that ring index), ga the rest. */
static void rings_by_lists(struct agent *ags, int n)
{
	static const char *names[] = {"canary", "early", "broad"};
	char body[4096] = "{\"rings\":[";
	size_t len = strlen(body);
	for (int k = 0; k < 3; k++) {
		len += (size_t)snprintf(body + len, sizeof body - len,
		                        "{\"name\":\"%s\",\"selector\":{\"agents\":[", names[k]);
		int first = 1;
		for (int i = 0; i < n; i++)
			if (ags[i].ring == k) {
				len += (size_t)snprintf(body + len, sizeof body - len, "%s%lld",
				                        first ? "" : ",", (long long)ags[i].id);
				first = 0;
			}
		len += (size_t)snprintf(body + len, sizeof body - len, "]}},");
	}
	snprintf(body + len, sizeof body - len,
	         "{\"name\":\"ga\",\"selector\":{\"rest\":true}}],\"reason\":\"test rings\"}");
	expect(200, "PUT", "/v1/rings", E.admin, body);
}

/* Make sha GA on the channel: a one-ring rollout (canary), promoted by two
 * release approvers (the gate would take hours). */
static int64_t make_ga(const char *sha)
{
	int64_t id = rollout_start(sha, ",\"rings\":[\"canary\"],\"policy\":{\"watch_s\":0}");
	force_complete(id);
	return id;
}

/* Every agent steps until each is running want (deadline). */
static void settle(struct agent *ags, int n, const char *want)
{
	int64_t end = fb_mono_ms() + DEADLINE * 1000;
	for (;;) {
		int all = 1;
		for (int i = 0; i < n; i++) {
			agent_step(&ags[i]);
			all = all && (ags[i].dead || strcmp(ags[i].active, want) == 0);
		}
		if (all)
			return;
		if (fb_mono_ms() > end)
			fail_msg("agents did not all settle on %s", want);
		usleep(150000);
	}
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
		if (q("SELECT count(*) FROM rollouts WHERE id = %lld AND state = '%s'",
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
	server_up(&E.srv);
	E.cur = &E.srv;
	expect_rollout(id, state, ring);
}

static void test_kill9_mid_rollout(void **state)
{
	(void)state;
	env_up();
	enum { N = 5 };
	struct agent ags[N];
	int rings[N] = {0, 0, 1, 2, 3};
	for (int i = 0; i < N; i++)
		agent_new(&ags[i], rings[i], GOOD, NULL, NULL);
	rings_by_lists(ags, N);
	char v1[65], v2[65], v3[65];
	upload(1, v1);
	upload(2, v2);
	upload(3, v3);
	make_ga(v1);
	settle(ags, N, v1);
	/* silence counts after 3 s; by default the restart grace is as long */
	int64_t id = rollout_start(
	        v2, ",\"policy\":{\"min_bake_s\":2,\"min_healthy\":1,"
	            "\"max_failure_rate\":0.5,\"max_excess\":1,\"watch_s\":0,\"confidence\":0.8,"
	            "\"hard_cap\":3,\"silence_timeout_s\":3}");
	E.watch = v2;
	/* 1: before any agent applied it */
	crash_restart(id, 0);
	expect_rollout(id, "rolling", 0);
	/* and while paused */
	json_decref(action(200, id, "pause", E.rel1, "{\"reason\":\"freeze\"}"));
	crash_restart(id, 0);
	expect_rollout(id, "paused", -1);
	json_decref(action(200, id, "resume", E.rel1, "{\"reason\":\"thaw\"}"));
	/* 2: as soon as it reached early, down for longer than the silence
	 * timeout; the agents come back a moment after the server */
	drive_until(id, ags, N, "rolling", 1);
	crash_restart(id, 4000);
	long restarted_at = q("SELECT count(*) FROM gate_evaluations");
	usleep(1000000);
	drive_until(id, ags, N, "rolling", 2);
	/* silent agents were not counted during the grace: the gate waited */
	assert_true(q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND id > %ld "
	              "AND decision = 'WAIT' AND NOT (inputs -> 'inputs' ->> "
	              "'silence_counted')::boolean AND (inputs -> 'inputs' ->> 'silent')::int > 0",
	              (long long)id, restarted_at) >= 1);
	/* 3: while agents of broad are applying it */
	for (int i = 0; i < N; i++)
		agent_step(&ags[i]);
	crash_restart(id, 500);
	/* 4: repeatedly, at whatever the controller is doing */
	for (int k = 0; k < 3; k++) {
		for (int s = 0; s < 3; s++) {
			for (int i = 0; i < N; i++)
				agent_step(&ags[i]);
			usleep(100000);
		}
		crash_restart(id, 200);
	}
	drive_until(id, ags, N, "completed", -1);
	E.watch = NULL;
	/* no false halt, and the whole story is in the evaluations */
	assert_int_equal(q("SELECT count(*) FROM gate_evaluations WHERE decision = 'HALT'"), 0);
	assert_int_equal(q("SELECT count(*) FROM content WHERE bad"), 0);
	assert_int_equal(q("SELECT count(*) FROM channels WHERE ga_sha256 = '%s'", v2), 1);
	assert_int_equal(q("SELECT count(DISTINCT ring_index) FROM gate_evaluations WHERE "
	                   "rollout_id = %lld AND decision = 'PROMOTE'",
	                   (long long)id),
	                 4);
	assert_true(q("SELECT count(DISTINCT inputs ->> 'evaluator') FROM gate_evaluations WHERE "
	              "rollout_id = %lld",
	              (long long)id) >= 2);
	settle(ags, N, v2);

	/* a halt survives too: killed right after it, the restarted server
	 * serves the last known good file with a newer sequence */
	int64_t id3 = rollout_start(v3, "");
	settle(&ags[0], 1, v3);
	int64_t seq = ags[0].seq;
	json_decref(action(200, id3, "halt", E.soc, "{\"reason\":\"bad telemetry\"}"));
	crash_restart(id3, 0);
	expect_rollout(id3, "halted|reverted", 0);
	assert_int_equal(q("SELECT count(*) FROM content WHERE sha256 = '%s' AND bad", v3), 1);
	settle(&ags[0], 1, v2);
	assert_true(ags[0].seq > seq);
	drive_until(id3, ags, N, "reverted", -1);
	agents_free(ags, N);
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
	env_up();
	server_up(&E.srv2);
	enum { N = 4 };
	struct agent ags[N];
	int rings[N] = {0, 0, 1, 3};
	for (int i = 0; i < N; i++)
		agent_new(&ags[i], rings[i], GOOD, NULL, NULL);
	rings_by_lists(ags, N);
	char v1[65];
	upload(1, v1);
	int64_t id = rollout_start(v1, ",\"policy\":" FAST_POLICY
	                               ",\"ring_policies\":{\"canary\":{\"min_bake_s\":8}}");
	/* over many evaluation intervals, one evaluator only */
	int64_t end = fb_mono_ms() + DEADLINE * 1000;
	while (q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld", (long long)id) <
	               15 &&
	       fb_mono_ms() < end) {
		for (int i = 0; i < N; i++) {
			E.cur = i % 2 ? &E.srv2 : &E.srv; /* agents spread over both */
			agent_step(&ags[i]);
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
	assert_int_equal(q("SELECT count(DISTINCT inputs ->> 'evaluator') FROM gate_evaluations"),
	                 1);

	/* kill -9 the leader: the other takes over and the rollout goes on */
	struct fbt_server *dead = leader == E.srv.pid ? &E.srv : &E.srv2;
	struct fbt_server *alive = dead == &E.srv ? &E.srv2 : &E.srv;
	long survivor = alive->pid;
	assert_int_equal(fbt_server_stop(dead, SIGKILL), 128 + SIGKILL);
	long last = q("SELECT max(id) FROM gate_evaluations");
	E.cur = alive;
	drive_until(id, ags, N, "completed", -1);
	evaluators(id, last, pid, sizeof pid, &distinct);
	assert_int_equal(distinct, 1);
	assert_int_equal(strtol(pid, NULL, 10), survivor);
	assert_int_equal(q("SELECT count(*) FROM gate_evaluations WHERE decision = 'HALT'"), 0);
	assert_int_equal(q("SELECT count(*) FROM channels WHERE ga_sha256 = '%s'", v1), 1);
	assert_int_equal(q("SELECT count(DISTINCT ring_index) FROM gate_evaluations WHERE "
	                   "rollout_id = %lld AND decision = 'PROMOTE'",
	                   (long long)id),
	                 4);
	/* the survivor is what env_down stops cleanly */
	if (alive == &E.srv2) {
		E.srv = E.srv2;
		memset(&E.srv2, 0, sizeof E.srv2);
	}
	agents_free(ags, N);
}

/* ---- the SOC webhook ------------------------------------------------------------------ */

/* A one-thread HTTP receiver: answers 500 to the first fail_first requests,
 * 200 after, and keeps what it received. */
struct hook {
	int fd, port, fail_first;
	pthread_t thread;
	pthread_mutex_t mu;
	int n;
	char body[4][4096];
	int64_t at[4];
	volatile int stop;
};

static void *hook_main(void *arg)
{
	struct hook *h = arg;
	while (!h->stop) {
		struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		int c = accept(h->fd, NULL, NULL);
		if (c < 0)
			continue;
		char buf[8192];
		size_t len = 0;
		const char *body = "";
		for (;;) {
			ssize_t r = recv(c, buf + len, sizeof buf - 1 - len, 0);
			if (r <= 0)
				break;
			len += (size_t)r;
			buf[len] = '\0';
			char *eoh = strstr(buf, "\r\n\r\n");
			if (eoh) {
				const char *cl = strcasestr(buf, "Content-Length:");
				long want = cl ? strtol(cl + 15, NULL, 10) : 0;
				body = eoh + 4;
				if ((long)strlen(body) >= want || len == sizeof buf - 1)
					break;
			}
		}
		pthread_mutex_lock(&h->mu);
		int k = h->n++;
		if (k < 4) {
			snprintf(h->body[k], sizeof h->body[k], "%s", body);
			h->at[k] = fb_mono_ms();
		}
		pthread_mutex_unlock(&h->mu);
		const char *resp =
		        k < h->fail_first ? "HTTP/1.1 500 Internal Server Error\r\nContent-Length: "
		                            "0\r\nConnection: close\r\n\r\n"
		                          : "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: "
		                            "close\r\n\r\n";
		(void)!send(c, resp, strlen(resp), MSG_NOSIGNAL);
		close(c);
	}
	return NULL;
}

static void hook_start(struct hook *h, int fail_first)
{
	memset(h, 0, sizeof *h);
	h->fail_first = fail_first;
	pthread_mutex_init(&h->mu, NULL);
	h->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	assert_true(h->fd >= 0);
	assert_int_equal(bind(h->fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(h->fd, 16), 0);
	assert_int_equal(getsockname(h->fd, (struct sockaddr *)&sa, &sl), 0);
	h->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&h->thread, NULL, hook_main, h), 0);
}

static int hook_count(struct hook *h)
{
	pthread_mutex_lock(&h->mu);
	int n = h->n;
	pthread_mutex_unlock(&h->mu);
	return n;
}

static void hook_stop(struct hook *h)
{
	h->stop = 1;
	pthread_join(h->thread, NULL);
	close(h->fd);
	pthread_mutex_destroy(&h->mu);
}

static void test_webhook_on_halt(void **state)
{
	(void)state;
	struct hook h;
	hook_start(&h, 1);
	char flag[128];
	snprintf(flag, sizeof flag, "--webhook_url=http://127.0.0.1:%d/soc", h.port);
	g_flag = flag;
	env_up();
	g_flag = NULL;
	char v1[65];
	upload(1, v1);
	int64_t id = rollout_start(v1, "");
	json_decref(action(200, id, "halt", E.soc, "{\"reason\":\"suspicious\"}"));
	/* refused once, retried after a backoff, then delivered */
	int64_t end = fb_mono_ms() + DEADLINE * 1000;
	while (fb_mono_ms() < end && q("SELECT count(*) FROM notifications WHERE type = "
	                               "'rollout.halted' AND delivered_at "
	                               "IS NOT NULL") != 1)
		usleep(100000);
	assert_int_equal(
	        q("SELECT count(*) FROM notifications WHERE type = 'rollout.halted' AND "
	          "rollout_id = %lld AND delivered_at IS NOT NULL AND webhook_attempts = 2 "
	          "AND last_error LIKE '%%HTTP 500%%'",
	          (long long)id),
	        1);
	usleep(1500000); /* delivered means delivered once */
	int n = hook_count(&h);
	assert_true(n >= 2);
	int halted = 0;
	int64_t halted_at[2] = {0, 0};
	for (int i = 0; i < n && i < 4; i++) {
		json_t *b = json_loads(h.body[i], 0, NULL);
		if (!b)
			fail_msg("webhook body %d is not JSON: %s", i, h.body[i]);
		if (strcmp(jstr(b, "type"), "rollout.halted") == 0) {
			if (halted < 2)
				halted_at[halted] = h.at[i];
			halted++;
			assert_int_equal(json_integer_value(json_object_get(b, "rollout_id")), id);
			assert_string_equal(jstr(json_object_get(b, "data"), "state"), "halted");
			assert_string_equal(jstr(json_object_get(b, "data"), "content"), v1);
		}
		json_decref(b);
	}
	assert_int_equal(halted, 2);                     /* the refused attempt and the delivery */
	assert_true(halted_at[1] - halted_at[0] >= 900); /* the retry waited a second */
	hook_stop(&h);
}

/* A rollout whose gate can only WAIT (an empty fleet) is paused by the
 * controller once it has waited max_wait_s past the bake, with the reason,
 * an audit record and a rollout.stalled event; a resume restarts the clock. */
static void test_stall_pauses(void **state)
{
	(void)state;
	env_up();
	char v1[65];
	upload(1, v1);
	int64_t id = rollout_start(v1, ",\"policy\":{\"min_bake_s\":1,\"min_healthy\":5,"
	                               "\"max_wait_s\":2}");
	int64_t end = fb_mono_ms() + DEADLINE * 1000;
	while (fb_mono_ms() < end &&
	       q("SELECT count(*) FROM rollouts WHERE id = %lld AND state = 'paused'",
	         (long long)id) != 1)
		usleep(100000);
	expect_rollout(id, "paused", 0);
	json_t *r = rollout_get(id);
	if (!strstr(jstr(r, "state_reason"), "STALLED: still waiting") ||
	    !strstr(jstr(r, "state_reason"), "no treated agent has applied"))
		fail_msg("state_reason: %s", raw(r));
	json_decref(r);
	assert_int_equal(q("SELECT count(*) FROM audit_log WHERE action = 'rollout.pause' AND "
	                   "actor = 'controller' AND object = 'rollout/%lld' AND after ->> "
	                   "'state' = 'paused'",
	                   (long long)id),
	                 1);
	assert_int_equal(q("SELECT count(*) FROM notifications WHERE type = 'rollout.stalled' AND "
	                   "rollout_id = %lld AND (data ->> 'stalled')::boolean",
	                   (long long)id),
	                 1);
	/* The evaluation that paused it is stored as a stalled WAIT. */
	assert_int_equal(q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND "
	                   "decision = 'WAIT' AND (inputs -> 'result' ->> 'stalled')::boolean "
	                   "AND (inputs -> 'inputs' ->> 'wait_elapsed_s')::int >= 2",
	                   (long long)id),
	                 1);
	/* Paused: no more evaluations. */
	long evals =
	        q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld", (long long)id);
	usleep(800000);
	assert_int_equal(
	        q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld", (long long)id),
	        evals);

	/* Resumed: the clock starts again, so it waits (not stalled) before
	 * the controller pauses it a second time. */
	json_decref(action(200, id, "resume", E.rel1, "{\"reason\":\"give it another go\"}"));
	end = fb_mono_ms() + DEADLINE * 1000;
	while (fb_mono_ms() < end &&
	       q("SELECT count(*) FROM audit_log WHERE action = 'rollout.pause' AND object = "
	         "'rollout/%lld'",
	         (long long)id) != 2)
		usleep(100000);
	expect_rollout(id, "paused", 0);
	assert_true(q("SELECT count(*) FROM gate_evaluations WHERE rollout_id = %lld AND id > "
	              "(SELECT min(id) FROM gate_evaluations WHERE rollout_id = %lld AND "
	              "(inputs -> 'result' ->> 'stalled')::boolean) AND NOT (inputs -> 'result' "
	              "->> 'stalled')::boolean",
	              (long long)id, (long long)id) >= 1);
	assert_int_equal(q("SELECT count(*) FROM notifications WHERE type = 'rollout.stalled' AND "
	                   "rollout_id = %lld",
	                   (long long)id),
	                 2);
	/* Halting a paused rollout still works. */
	json_decref(action(200, id, "halt", E.soc, "{\"reason\":\"give up\"}"));
	expect_rollout(id, "halted|reverted", 0);
}

int main(void)
{
	if (sodium_init() < 0)
		return 2;
	unsigned char *rootb;
	size_t rootlen;
	struct fb_err err;
	if (fb_file_read(fbt_world_default()->root_path, 1 << 20, &rootb, &rootlen) ||
	    fbsig_root_load_trusted(rootb, rootlen, fb_now_ms() / 1000, 0, &g_root, &err))
		return 2;
	free(rootb);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_kill9_mid_rollout, env_down),
	        cmocka_unit_test_teardown(test_leader_election, env_down),
	        cmocka_unit_test_teardown(test_webhook_on_halt, env_down),
	        cmocka_unit_test_teardown(test_stall_pauses, env_down),
	};
	int rc = cmocka_run_group_tests_name("controller", tests, NULL, NULL);
	fbsig_root_free(g_root);
	return rc;
}
