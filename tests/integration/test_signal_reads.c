/* What operators see of the health signals (issue 17), against the real
 * firebreakd and PostgreSQL: GET /v1/rollouts/{id}/signals (per ring and
 * signal the minute series, the worst signal, paging by ?since, the error
 * conventions of the other rollout reads) and the per-ring gauges on
 * /metrics. The data is real: a first rollout completes so that the channel
 * has a previous file, a second one starts, and agents whose heartbeats
 * carry a CPU storm become degraded — two treated, one in the control. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <libpq-fe.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fb.h"
#include "fbschema.h"
#include "fbt.h"
#include "fbt_world.h"

#define NAG      8  /* agents 1-4: canary, 5-8: rest */
#define DEADLINE 60 /* seconds, for sanitizer builds */
#define CONF     "0.999"

struct ctx {
	char *db;
	struct fbt_server srv;
	char *admin, *release, *soc;
	char *caps;
	unsigned char key[crypto_generichash_KEYBYTES];
	char sha1[65], sha2[65];
	int64_t ro1, ro2;
	char active[NAG + 1][65]; /* per agent: the content it runs on channel 291 */
	int nev;
};

static struct ctx *C;

/* ---- HTTP ---------------------------------------------------------------------- */

static json_t *call(long want, const char *method, const char *path, const char *token,
                    const char *body)
{
	struct fbt_resp r;
	if (fbt_http(&C->srv, method, path, token, body, body ? strlen(body) : 0, NULL, &r))
		fail_msg("%s %s: transport error", method, path);
	if (r.status != want)
		fail_msg("%s %s: %ld, expected %ld: %s", method, path, r.status, want,
		         r.body ? r.body : "");
	json_t *j = fbt_resp_json(&r);
	if (!j)
		j = json_object();
	fbt_resp_free(&r);
	return j;
}

/* The body of an answer (caller frees). */
static char *text_of(long want, const char *path, const char *token)
{
	struct fbt_resp r;
	if (fbt_http(&C->srv, "GET", path, token, NULL, 0, NULL, &r))
		fail_msg("GET %s: transport error", path);
	if (r.status != want)
		fail_msg("GET %s: %ld, expected %ld: %s", path, r.status, want,
		         r.body ? r.body : "");
	char *s = strdup(r.body ? r.body : "");
	fbt_resp_free(&r);
	return s;
}

/* The error code of a refused read. */
static void refused(long want, const char *code, const char *path, const char *token)
{
	struct fbt_resp r;
	if (fbt_http(&C->srv, "GET", path, token, NULL, 0, NULL, &r))
		fail_msg("GET %s: transport error", path);
	if (r.status != want || strcmp(fbt_error_code(&r), code) != 0)
		fail_msg("GET %s: %ld %s, expected %ld %s", path, r.status, fbt_error_code(&r),
		         want, code);
	fbt_resp_free(&r);
}

/* ---- agents (inserted as enrollment writes them; tokens as the server makes them) ---- */

static void token_of(int64_t id, char out[96])
{
	char msg[32];
	int n = snprintf(msg, sizeof msg, "agent:%lld", (long long)id);
	unsigned char mac[16];
	crypto_generichash(mac, sizeof mac, (const unsigned char *)msg, (size_t)n, C->key,
	                   sizeof C->key);
	char hex[33];
	fb_hex_encode(mac, sizeof mac, hex);
	snprintf(out, 96, "fa_%lld_%s", (long long)id, hex);
}

static void applied(int64_t id, const char *sha)
{
	char tok[96], body[1024];
	token_of(id, tok);
	snprintf(
	        body, sizeof body,
	        "{\"agent_id\":%lld,\"events\":[{\"id\":\"ev-%d\",\"kind\":\"applied\",\"at\":%lld,"
	        "\"channel\":291,\"content\":\"%s\",\"boot_id\":\"boot-%lld\"}]}",
	        (long long)id, ++C->nev, (long long)(fb_now_ms() / 1000), sha, (long long)id);
	json_decref(call(200, "POST", "/v1/events", tok, body));
	snprintf(C->active[id], sizeof C->active[id], "%s", sha);
}

/* A heartbeat of agent id with its agent CPU p95 (0: no health object). */
static void beat(int64_t id, int cpu)
{
	char tok[96], body[4096], health[256] = "";
	token_of(id, tok);
	if (cpu)
		snprintf(health, sizeof health,
		         ",\"health\":{\"interval_s\":60,\"agent_cpu_p95\":%d,\"agent_cpu_mean\":5,"
		         "\"host_cpu\":20,\"agent_rss_kb\":40000}",
		         cpu);
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"boot_id\":\"boot-%lld\",\"uptime_s\":60,"
	         "\"agent_version\":\"test\",\"active\":{\"291\":\"%s\"}%s}",
	         (long long)id, (long long)id, C->active[id], health);
	json_decref(call(202, "POST", "/v1/heartbeat", tok, body));
}

static json_t *rollout_get(int64_t id)
{
	char path[64];
	snprintf(path, sizeof path, "/v1/rollouts/%lld", (long long)id);
	return call(200, "GET", path, C->soc, NULL);
}

static int64_t rollout_start(const char *sha, const char *policy)
{
	char body[1024];
	snprintf(body, sizeof body,
	         "{\"channel\":291,\"content\":\"%s\",\"reason\":\"signals test\",\"policy\":%s}",
	         sha, policy);
	json_t *j = call(201, "POST", "/v1/rollouts", C->release, body);
	int64_t id = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	assert_true(id > 0);
	return id;
}

/* ---- fixture --------------------------------------------------------------------- */

static int setup(void **state)
{
	C = calloc(1, sizeof *C);
	C->db = fbt_db_new();
	C->admin = fbt_token(C->db, "admin", "ada");
	C->release = fbt_token(C->db, "release", "rel");
	C->soc = fbt_token(C->db, "soc", "sam");
	const char *extra[] = {"--heartbeat_flush_ms=200", "--snapshot_check_ms=200",
	                       "--controller_interval_ms=300", NULL};
	if (fbt_server_start(&C->srv, C->db, extra) || fbt_server_wait_ready(&C->srv))
		return -1;
	struct cf_registry *reg;
	struct fb_err err;
	if (cf_registry_load_dir(fbt_world_default()->templates, &reg, &err))
		return -1;
	json_t *caps = cf_registry_capabilities(reg);
	C->caps = json_dumps(caps, JSON_COMPACT);
	json_decref(caps);
	cf_registry_free(reg);
	PGconn *c = PQconnectdb(C->db);
	PGresult *r = PQexec(c, "SELECT encode(value, 'hex') FROM server_secrets "
	                        "WHERE name = 'agent_token_key'");
	int ok =
	        PQntuples(r) == 1 && fb_hex_decode(PQgetvalue(r, 0, 0), C->key, sizeof C->key) == 0;
	PQclear(r);
	PQfinish(c);
	if (!ok)
		return -1;
	char sql[1024];
	snprintf(sql, sizeof sql,
	         "INSERT INTO agents (id, public_key, tags, hostname, agent_version, capabilities) "
	         "SELECT i, decode(lpad(to_hex(i), 64, '0'), 'hex'), '{}', 'h' || i, 'test', "
	         "'%s'::jsonb FROM generate_series(1, %d) AS i; "
	         "SELECT setval('agents_id_seq', (SELECT max(id) FROM agents)); "
	         "UPDATE publication SET seq = nextval('assignment_seq'), reason = 'test', "
	         "published_at = now(); NOTIFY firebreak_publication",
	         C->caps, NAG);
	if (fbt_db_exec(C->db, sql))
		return -1;
	*state = C;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	int rc = fbt_server_stop(&C->srv, SIGTERM); /* clean exit, no leaks */
	free(C->db);
	free(C->admin);
	free(C->release);
	free(C->soc);
	free(C->caps);
	free(C);
	return rc == 0 ? 0 : -1;
}

/* ---- the world: a previous file, then the file under test ---------------------- */

static void world_up(void)
{
	json_decref(call(201, "POST", "/v1/channels", C->admin,
	                 "{\"id\":291,\"name\":\"named-pipes\"}"));
	json_decref(call(200, "PUT", "/v1/rings", C->admin,
	                 "{\"rings\":[{\"name\":\"canary\",\"selector\":{\"agents\":[1,2,3,4]}},"
	                 "{\"name\":\"rest\",\"selector\":{\"rest\":true}}],"
	                 "\"reason\":\"signals test\"}"));
	for (int i = 0; i < DEADLINE * 10; i++) { /* the snapshot places agent 1 in canary */
		json_t *j = call(200, "GET", "/v1/agents/1", C->admin, NULL);
		int ok = json_string_value(json_object_get(j, "ring")) &&
		         strcmp(json_string_value(json_object_get(j, "ring")), "canary") == 0;
		json_decref(j);
		if (ok)
			break;
		usleep(100000);
	}
	for (int v = 1; v <= 2; v++) {
		char *up =
		        fbt_world_content(fbt_world_default(), 291, v, v == 1 ? C->sha1 : C->sha2);
		assert_non_null(up);
		json_decref(call(201, "POST", "/v1/content", C->release, up));
		free(up);
	}
	/* the previous file: every agent takes it, the rollout completes */
	C->ro1 = rollout_start(C->sha1, "{\"min_bake_s\":0,\"min_healthy\":1,\"hard_cap\":1,"
	                                "\"max_failure_rate\":0.5,\"confidence\":0.8,"
	                                "\"max_excess\":1,\"watch_s\":0,\"holdout\":0}");
	for (int id = 1; id <= NAG; id++)
		applied(id, C->sha1);
	int64_t end = fb_mono_ms() + DEADLINE * 1000;
	for (;;) {
		for (int id = 1; id <= NAG; id++)
			beat(id, 0);
		json_t *r = rollout_get(C->ro1);
		const char *st = json_string_value(json_object_get(r, "state"));
		int done = st && strcmp(st, "completed") == 0;
		if (!done && fb_mono_ms() > end)
			fail_msg("the first rollout did not complete: %s", st ? st : "?");
		json_decref(r);
		if (done)
			break;
		usleep(300000);
	}
	/* the file under test: the canaries but 4 apply it; it bakes for long
	 * (and at a confidence that keeps two degraded hosts from halting it) */
	C->ro2 = rollout_start(C->sha2,
	                       "{\"min_bake_s\":3600,\"holdout\":0,\"confidence\":" CONF "}");
	for (int id = 1; id <= 3; id++)
		applied(id, C->sha2);
	/* five normal beats make every host's baseline, then 1, 2 (treated) and 6
	 * (control, on the previous file) keep their agent's CPU at 97 % */
	for (int k = 0; k < 8; k++) {
		for (int id = 1; id <= NAG; id++)
			beat(id,
			     k >= 5 && (id == 1 || id == 2 || id == 6) ? 97 : 10 + (id + k) % 3);
		usleep(250000);
	}
}

/* The canary ring's agent_cpu series of rollout ro2 (borrowed from j). */
static json_t *cpu_points(json_t *j)
{
	json_t *ring = json_array_get(json_object_get(j, "rings"), 0);
	return json_object_get(json_object_get(json_object_get(ring, "signals"), "agent_cpu"),
	                       "points");
}

static int64_t num_i(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static double num_f(const json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_signals_endpoint(void **state)
{
	(void)state;
	world_up();
	char path[96];
	snprintf(path, sizeof path, "/v1/rollouts/%lld/signals", (long long)C->ro2);
	/* until the controller has looked at the degraded hosts */
	json_t *j = NULL, *last = NULL;
	int64_t end = fb_mono_ms() + DEADLINE * 1000;
	for (;;) {
		for (int id = 1; id <= NAG; id++)
			beat(id, id == 1 || id == 2 || id == 6 ? 97 : 11);
		json_decref(j);
		j = call(200, "GET", path, C->soc, NULL);
		json_t *pts = cpu_points(j);
		last = json_array_get(pts, json_array_size(pts) - 1);
		if (last && num_i(last, "degraded") == 2 && num_i(last, "control_degraded") == 1)
			break;
		if (fb_mono_ms() > end)
			fail_msg("no look saw the degraded hosts: %s", json_dumps(j, JSON_COMPACT));
		usleep(300000);
	}
	/* where the rollout is, the signals judged, both rings of the plan */
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", (long long)C->ro2);
	assert_string_equal(json_string_value(json_object_get(j, "rollout")), ids);
	assert_int_equal(num_i(j, "ring_index"), 0);
	assert_string_equal(json_string_value(json_object_get(j, "ring")), "canary");
	json_t *names = json_object_get(j, "signal_names");
	assert_int_equal(json_array_size(names), 4);
	assert_string_equal(json_string_value(json_array_get(names, 0)), "agent_cpu");
	json_t *rings = json_object_get(j, "rings");
	assert_int_equal(json_array_size(rings), 2);
	json_t *canary = json_array_get(rings, 0), *rest = json_array_get(rings, 1);
	assert_string_equal(json_string_value(json_object_get(canary, "ring")), "canary");
	assert_string_equal(json_string_value(json_object_get(rest, "ring")), "rest");
	assert_int_equal(num_i(rest, "ring_index"), 1);
	/* the ring not reached: every signal, no point, no worst */
	const char *k;
	json_t *s;
	json_object_foreach(json_object_get(rest, "signals"), k, s)
	{
		assert_int_equal(json_array_size(json_object_get(s, "points")), 0);
	}
	assert_true(json_is_null(json_object_get(rest, "worst")));
	/* the canary's last agent_cpu minute: 3 treated (2 degraded), 5 control
	 * (agent 4, which never applied it, and the rest; 1 degraded) */
	assert_string_equal(
	        json_string_value(json_object_get(
	                json_object_get(json_object_get(canary, "signals"), "agent_cpu"), "label")),
	        "agent CPU");
	assert_int_equal(num_i(last, "treated"), 3);
	assert_int_equal(num_i(last, "control"), 5);
	double et = num_f(last, "exposure_s"), ec = num_f(last, "control_exposure_s");
	assert_true(et > 0 && ec > 0);
	assert_true(fabs(num_f(last, "treated_per_1000h") - 3.6e6 * 2 / et) < 1e-6 * 3.6e6 / et);
	assert_true(fabs(num_f(last, "control_per_1000h") - 3.6e6 * 1 / ec) < 1e-6 * 3.6e6 / ec);
	assert_true(fabs(num_f(last, "threshold") - log(4 / (1 - strtod(CONF, NULL)))) < 1e-6);
	assert_true(num_f(last, "statistic") < num_f(last, "threshold"));
	assert_true(num_i(last, "at") % 60 == 0);
	/* the same figures as the controller stored, in its latest minute */
	char sql[512];
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM signal_rollups WHERE rollout_id = %lld AND ring_index = 0 "
	         "AND signal = 'agent_cpu' AND degraded = 2 AND control_degraded = 1 AND "
	         "extract(epoch FROM bucket)::bigint = %lld",
	         (long long)C->ro2, (long long)num_i(last, "at"));
	assert_int_equal(fbt_db_long(C->db, sql), 1);
	/* the other signals were looked at too, nobody degraded on them */
	json_object_foreach(json_object_get(canary, "signals"), k, s)
	{
		json_t *pts = json_object_get(s, "points");
		assert_true(json_array_size(pts) >= 1);
		if (strcmp(k, "agent_cpu") != 0)
			assert_int_equal(
			        num_i(json_array_get(pts, json_array_size(pts) - 1), "degraded"),
			        0);
	}
	/* the worst signal is agent CPU, as its last point */
	json_t *w = json_object_get(canary, "worst");
	assert_string_equal(json_string_value(json_object_get(w, "signal")), "agent_cpu");
	assert_string_equal(json_string_value(json_object_get(w, "label")), "agent CPU");
	assert_int_equal(num_i(w, "degraded"), 2);
	assert_int_equal(num_i(w, "control_degraded"), 1);
	json_decref(j);

	/* ?since: only the minutes from then on */
	char sp[160];
	snprintf(sp, sizeof sp, "%s?since=%lld", path, (long long)(fb_now_ms() / 1000 + 3600));
	j = call(200, "GET", sp, C->soc, NULL);
	assert_int_equal(json_array_size(cpu_points(j)), 0);
	assert_true(json_is_null(
	        json_object_get(json_array_get(json_object_get(j, "rings"), 0), "worst")));
	json_decref(j);
	snprintf(sp, sizeof sp, "%s?since=0", path);
	j = call(200, "GET", sp, C->release, NULL);
	assert_true(json_array_size(cpu_points(j)) >= 1);
	json_decref(j);

	/* the completed rollout keeps its minutes; nobody was degraded then */
	snprintf(sp, sizeof sp, "/v1/rollouts/%lld/signals", (long long)C->ro1);
	j = call(200, "GET", sp, C->admin, NULL);
	assert_true(json_array_size(cpu_points(j)) >= 1);
	assert_true(json_is_null(
	        json_object_get(json_array_get(json_object_get(j, "rings"), 0), "worst")));
	json_decref(j);

	/* the conventions of the other rollout reads */
	refused(404, "not_found", "/v1/rollouts/99999/signals", C->soc);
	refused(400, "invalid", "/v1/rollouts/x/signals", C->soc);
	snprintf(sp, sizeof sp, "%s?since=yesterday", path);
	refused(400, "invalid", sp, C->soc);
	refused(401, "unauthenticated", path, NULL);
	char tok[96];
	token_of(1, tok);
	refused(403, "forbidden", path, tok);
}

/* The line of metric name with labels, and its value; -1 when absent. */
static double metric(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}

static void test_signal_metrics(void **state)
{
	(void)state;
	char *m = text_of(200, "/metrics", NULL);
	char want[256];
	long long r2 = (long long)C->ro2, r1 = (long long)C->ro1;
	snprintf(want, sizeof want,
	         "firebreak_ring_degraded{rollout=\"%lld\",ring=\"canary\",signal=\"agent_cpu\","
	         "arm=\"treated\"}",
	         r2);
	assert_true(metric(m, want) == 2);
	snprintf(want, sizeof want,
	         "firebreak_ring_degraded{rollout=\"%lld\",ring=\"canary\",signal=\"agent_cpu\","
	         "arm=\"control\"}",
	         r2);
	assert_true(metric(m, want) == 1);
	snprintf(want, sizeof want,
	         "firebreak_ring_degraded{rollout=\"%lld\",ring=\"canary\",signal=\"memory\","
	         "arm=\"treated\"}",
	         r2);
	assert_true(metric(m, want) == 0);
	snprintf(want, sizeof want,
	         "firebreak_ring_signal_hosts{rollout=\"%lld\",ring=\"canary\",arm=\"treated\"}",
	         r2);
	assert_true(metric(m, want) == 3);
	snprintf(want, sizeof want,
	         "firebreak_ring_signal_hosts{rollout=\"%lld\",ring=\"canary\",arm=\"control\"}",
	         r2);
	assert_true(metric(m, want) == 5);
	snprintf(want, sizeof want,
	         "firebreak_ring_signal_threshold{rollout=\"%lld\",ring=\"canary\",signal="
	         "\"eval_errors\"}",
	         r2);
	assert_true(fabs(metric(m, want) - log(4 / (1 - strtod(CONF, NULL)))) < 1e-3);
	snprintf(want, sizeof want,
	         "firebreak_ring_signal_statistic{rollout=\"%lld\",ring=\"canary\",signal="
	         "\"agent_cpu\"}",
	         r2);
	assert_true(strstr(m, want) != NULL);
	assert_non_null(strstr(m, "# TYPE firebreak_ring_degraded gauge\n"));
	/* only active rollouts: not the completed one */
	snprintf(want, sizeof want, "rollout=\"%lld\"", r1);
	assert_null(strstr(m, want));
	free(m);

	/* halted, it leaves the page */
	char path[96];
	snprintf(path, sizeof path, "/v1/rollouts/%lld/halt", r2);
	json_decref(call(200, "POST", path, C->soc, "{\"reason\":\"end of the signals test\"}"));
	m = text_of(200, "/metrics", NULL);
	snprintf(want, sizeof want, "rollout=\"%lld\"", r2);
	assert_null(strstr(m, want));
	assert_non_null(strstr(m, "# TYPE firebreak_ring_degraded gauge\n"));
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_signals_endpoint),
	        cmocka_unit_test(test_signal_metrics),
	};
	return cmocka_run_group_tests_name("signal_reads", tests, setup, teardown);
}
