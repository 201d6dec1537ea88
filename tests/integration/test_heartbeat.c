/* Heartbeat ingest and the agent table against the real firebreakd and
 * PostgreSQL: batched writes (shared values, the latest heartbeat of an
 * agent wins, fields not sent are kept, boot ids that need escaping), the
 * capability class cache (a changed set publishes, a repeated one does not),
 * the agent-token format, and the snapshot loading thousands of agents
 * inserted behind its back, page by page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <libpq-fe.h>
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

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SHA_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define NLOAD 10000 /* agents inserted for the snapshot load (> 2 FETCH pages) */

struct ctx {
	char *db;
	struct fbt_server srv;
	char *admin, *release;
	char *caps; /* everything the shipped templates define */
	unsigned char key[crypto_generichash_KEYBYTES];
};

static struct ctx *C;

static long req(const char *method, const char *path, const char *token, const char *body)
{
	struct fbt_resp r;
	fbt_http(&C->srv, method, path, token, body, body ? strlen(body) : 0, NULL, &r);
	long st = r.status;
	fbt_resp_free(&r);
	return st;
}

/* The agent token the server would issue (keyed BLAKE2b of "agent:<id>"). */
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

static void publish(void)
{
	assert_int_equal(fbt_db_exec(C->db, "UPDATE publication SET seq = "
	                                    "nextval('assignment_seq'), reason = 'test', "
	                                    "published_at = now(); NOTIFY firebreak_publication"),
	                 0);
}

/* Agents first .. last, inserted as enrollment writes them. */
static void insert_agents(int64_t first, int64_t last, const char *caps)
{
	char sql[1024];
	snprintf(sql, sizeof sql,
	         "INSERT INTO agents (id, public_key, tags, hostname, agent_version, capabilities) "
	         "SELECT i, decode(lpad(to_hex(i), 64, '0'), 'hex'), CASE WHEN i %% 3 = 0 THEN "
	         "'{\"site\": \"lab\"}'::jsonb ELSE '{}' END, 'h' || i, '0.9', '%s'::jsonb "
	         "FROM generate_series(%lld, %lld) AS i; "
	         "SELECT setval('agents_id_seq', (SELECT max(id) FROM agents))",
	         caps, (long long)first, (long long)last);
	assert_int_equal(fbt_db_exec(C->db, sql), 0);
}

/* Wait (up to 10 s) until the query's count is want. */
static long db_wait(long want, const char *sql)
{
	long n = -1;
	for (int i = 0; i < 100; i++) {
		n = fbt_db_long(C->db, sql);
		if (n == want)
			break;
		usleep(100000);
	}
	return n;
}

static int setup(void **state)
{
	C = calloc(1, sizeof *C);
	C->db = fbt_db_new();
	C->admin = fbt_token(C->db, "admin", "ada");
	C->release = fbt_token(C->db, "release", "rel");
	const char *extra[] = {"--heartbeat_flush_ms=200", "--snapshot_check_ms=200", NULL};
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
	if (req("POST", "/v1/channels", C->admin, "{\"id\":291,\"name\":\"named-pipes\"}") != 201 ||
	    req("POST", "/v1/channels", C->admin, "{\"id\":292,\"name\":\"scripts\"}") != 201)
		return -1;
	/* the agent-token key the server created */
	PGconn *c = PQconnectdb(C->db);
	PGresult *r = PQexec(c, "SELECT encode(value, 'hex') FROM server_secrets "
	                        "WHERE name = 'agent_token_key'");
	int ok =
	        PQntuples(r) == 1 && fb_hex_decode(PQgetvalue(r, 0, 0), C->key, sizeof C->key) == 0;
	PQclear(r);
	PQfinish(c);
	if (!ok)
		return -1;
	insert_agents(1, 400, C->caps);
	publish();
	*state = C;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(fbt_server_stop(&C->srv, SIGTERM), 0); /* clean exit, no leaks */
	free(C->db);
	free(C->admin);
	free(C->release);
	free(C->caps);
	free(C);
	return 0;
}

static long heartbeat(int64_t id, const char *boot_json, long uptime, const char *version,
                      const char *active, const char *caps)
{
	char tok[96], body[4096], ver[96] = "", cap[2048] = "";
	token_of(id, tok);
	if (version)
		snprintf(ver, sizeof ver, ",\"agent_version\":\"%s\"", version);
	if (caps)
		snprintf(cap, sizeof cap, ",\"capabilities\":%s", caps);
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"boot_id\":%s,\"uptime_s\":%ld,\"active\":%s%s%s}",
	         (long long)id, boot_json, uptime, active, ver, cap);
	return req("POST", "/v1/heartbeat", tok, body);
}

/* A heartbeat of agent id with a health object (raw JSON), and its reply. */
static long health_beat(int64_t id, const char *health, const char *extra, char *reply, size_t n)
{
	char tok[96], body[4096];
	token_of(id, tok);
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"boot_id\":\"hb-%lld\",\"uptime_s\":60,\"active\":{\"291\":"
	         "\"" SHA_A "\",\"292\":\"" SHA_B "\"}%s,\"health\":%s}",
	         (long long)id, (long long)id, extra ? extra : "", health);
	struct fbt_resp r;
	fbt_http(&C->srv, "POST", "/v1/heartbeat", tok, body, strlen(body), NULL, &r);
	long st = r.status;
	if (reply)
		snprintf(reply, n, "%s", r.body ? r.body : "");
	fbt_resp_free(&r);
	return st;
}

/* Health in heartbeats (issue 17): bad values get 400 naming the field and
 * store nothing, on both the fast and the JSON path; a host whose agent
 * CPU stays high for five beats after its baseline is recorded degraded,
 * once per channel it runs, with the content it runs there; noise is not. */
static void test_health_signals(void **state)
{
	(void)state;
	char reply[1024];
	/* what is stored about 301 before the refused heartbeats */
	static const char seen_sql[] =
	        "SELECT coalesce((extract(epoch FROM last_seen_at) * 1000)"
	        "::bigint, 0) + (os IS NOT NULL)::int FROM agents WHERE id = 301";
	long before = fbt_db_long(C->db, seen_sql);
	static const struct {
		const char *health, *field;
	} bad[] = {
	        {"{\"interval_s\":60,\"host_cpu\":101}", "health.host_cpu"},
	        {"{\"interval_s\":0}", "health.interval_s"},
	        {"{\"interval_s\":60,\"agent_cpu_p95\":-1}", "health.agent_cpu_p95"},
	        {"{\"interval_s\":60,\"agent_cpu_p95\":2.5}", "health.agent_cpu_p95"},
	        {"{\"interval_s\":60,\"gpu\":1}", "health.gpu"},
	        {"{\"interval_s\":60,\"channels\":{\"999\":{}}}", "health.channels.999"},
	        {"{\"interval_s\":60,\"channels\":{\"291\":{\"evals\":1,\"errors\":2}}}",
	         "health.channels.291.errors"},
	        {"\"fine\"", "health"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		for (int path = 0; path < 2; path++) { /* platform forces the JSON path */
			long st = health_beat(301, bad[i].health,
			                      path ? ",\"platform\":{\"os\":\"linux\"}" : NULL,
			                      reply, sizeof reply);
			if (st != 400 || !strstr(reply, bad[i].field))
				fail_msg("case %zu path %d: %ld %s (want 400 naming %s)", i, path,
				         st, reply, bad[i].field);
		}
	}
	usleep(500000); /* two flush intervals: nothing may have been written */
	assert_int_equal(fbt_db_long(C->db, seen_sql), before);

	/* 301: five normal beats, a storm of five; 302: noise only */
	char h[256];
	for (int i = 0; i < 10; i++) {
		int storm = i >= 5;
		snprintf(h, sizeof h,
		         "{\"interval_s\":60,\"agent_cpu_p95\":%d,\"agent_cpu_mean\":5,"
		         "\"host_cpu\":20,\"agent_rss_kb\":40000,\"channels\":{\"291\":{\"evals\":"
		         "100,\"errors\":0,\"detections\":1}}}",
		         storm ? 97 : 10 + i % 3);
		assert_int_equal(health_beat(301, h,
		                             i == 3 ? ",\"platform\":{\"os\":\"linux\"}" : NULL,
		                             reply, sizeof reply),
		                 202);
		snprintf(h, sizeof h,
		         "{\"interval_s\":60,\"agent_cpu_p95\":%d,\"agent_cpu_mean\":5}",
		         i == 6 ? 60 : 12);
		assert_int_equal(health_beat(302, h, NULL, reply, sizeof reply), 202);
	}
	assert_int_equal(db_wait(2, "SELECT count(*) FROM events WHERE agent_id = 301 AND kind = "
	                            "'degraded'"),
	                 2);
	assert_int_equal(fbt_db_long(C->db,
	                             "SELECT count(*) FROM events WHERE agent_id = 301 AND kind = "
	                             "'degraded' AND details ->> 'signal' = 'agent_cpu' AND "
	                             "((channel_id = 291 AND content_sha256 = '" SHA_A "') OR "
	                             "(channel_id = 292 AND content_sha256 = '" SHA_B "')) AND "
	                             "(details ->> 'value')::float = 97 AND "
	                             "(details ->> 'baseline')::float BETWEEN 10 AND 13"),
	                 2);
	/* more storm beats: the verdict is not repeated */
	snprintf(h, sizeof h, "{\"interval_s\":60,\"agent_cpu_p95\":99}");
	for (int i = 0; i < 3; i++)
		assert_int_equal(health_beat(301, h, NULL, reply, sizeof reply), 202);
	usleep(600000);
	assert_int_equal(fbt_db_long(C->db, "SELECT count(*) FROM events WHERE kind = 'degraded' "
	                                    "AND agent_id IN (301, 302)"),
	                 2);
	/* /metrics: the baselines this replica keeps, and nothing dropped */
	struct fbt_resp m;
	fbt_http(&C->srv, "GET", "/metrics", C->admin, NULL, 0, NULL, &m);
	assert_int_equal(m.status, 200);
	const char *at = strstr(m.body, "\nfirebreak_signal_hosts ");
	assert_non_null(at);
	assert_true(strtol(at + strlen("\nfirebreak_signal_hosts "), NULL, 10) >= 2);
	assert_non_null(strstr(m.body, "\nfirebreak_degraded_verdicts_dropped_total 0\n"));
	at = strstr(m.body, "\nfirebreak_signal_state_bytes ");
	assert_non_null(at);
	assert_true(strtol(at + strlen("\nfirebreak_signal_state_bytes "), NULL, 10) > 0);
	fbt_resp_free(&m);
}

/* 300 agents, three active maps and two capability sets between them; some
 * agents twice in one flush interval; boot ids that COPY must escape. */
static void test_batched_heartbeats(void **state)
{
	(void)state;
	const char *actives[] = {"{\"291\":\"" SHA_A "\"}",
	                         "{\"292\":\"" SHA_B "\",\"291\":\"" SHA_A "\"}",
	                         "{\"291\":\"" SHA_C "\",\"292\":\"" SHA_C "\"}"};
	const char *small_caps = "[{\"id\":2,\"version\":1},{\"id\":1,\"version\":1}]";
	for (int64_t id = 1; id <= 300; id++) {
		char boot[64];
		snprintf(boot, sizeof boot, "\"boot-%lld\"", (long long)id);
		assert_int_equal(heartbeat(id, boot, id, "2.0", actives[id % 3],
		                           id % 2 ? C->caps : small_caps),
		                 202);
	}
	/* the same values written another way (an escaped key: the jansson path
	 * rather than the recogniser) are stored the same way */
	assert_int_equal(heartbeat(9, "\"boot-9\"", 9, "2.0",
	                           "{\"\\u0032\\u0039\\u0031\" : \"" SHA_A "\"}", C->caps),
	                 202);
	/* the latest heartbeat of an agent wins, whether or not it was flushed */
	assert_int_equal(heartbeat(7, "\"tab\\there back\\\\slash\\nnew \\\"q\\\" \\u00fc\"", 99,
	                           "2.1", actives[0], NULL),
	                 202);
	assert_int_equal(db_wait(300, "SELECT count(*) FROM agents WHERE id <= 300 AND "
	                              "last_seen_at IS NOT NULL AND uptime_s >= 1"),
	                 300);
	assert_int_equal(db_wait(1,
	                         "SELECT count(*) FROM agents WHERE id = 7 AND uptime_s = 99 AND "
	                         "boot_id = E'tab\\there back\\\\slash\\nnew \"q\" \\u00fc'"),
	                 1);
	/* each agent has its own values, whichever copy it shared */
	for (int k = 0; k < 3; k++) {
		char sql[512];
		snprintf(sql, sizeof sql,
		         "SELECT count(*) FROM agents WHERE id <= 300 AND id <> 7 AND id %% 3 = %d "
		         "AND active = '%s'::jsonb AND boot_id = 'boot-' || id AND uptime_s = id "
		         "AND agent_version = '2.0'",
		         k, actives[k]);
		assert_int_equal(fbt_db_long(C->db, sql), k == 1 ? 99 : 100);
	}
	char sql[512];
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM agents WHERE id <= 300 AND id <> 7 AND capabilities = "
	         "CASE WHEN id %% 2 = 1 THEN '%s'::jsonb ELSE '%s'::jsonb END",
	         C->caps, small_caps);
	assert_int_equal(fbt_db_long(C->db, sql), 299);
	/* agent 7 sent no capabilities the second time: the first set stays */
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM agents WHERE id = 7 AND agent_version = '2.1' AND "
	         "active = '%s'::jsonb AND capabilities = '%s'::jsonb",
	         actives[0], C->caps);
	assert_int_equal(fbt_db_long(C->db, sql), 1);

	/* no agent_version, no capabilities: both stay as stored */
	assert_int_equal(heartbeat(8, "\"boot-8\"", 1000, NULL, actives[1], NULL), 202);
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM agents WHERE id = 8 AND uptime_s = 1000 AND "
	         "agent_version = '2.0' AND active = '%s'::jsonb AND capabilities = '%s'::jsonb",
	         actives[1], small_caps);
	assert_int_equal(db_wait(1, sql), 1);
}

/* A capability set the agent did not have before asks for a publication
 * (its document changes); the same set sent again does not. */
static void test_capability_class_changes_publish(void **state)
{
	(void)state;
	const char *active = "{\"291\":\"" SHA_A "\"}";
	const char *two = "[{\"id\":1,\"version\":1},{\"id\":2,\"version\":1}]";
	assert_int_equal(heartbeat(301, "\"b\"", 1, "2.0", active, C->caps), 202);
	/* the listener coalesces requests for a second; let earlier ones pass */
	sleep(2);
	long seq = fbt_db_long(C->db, "SELECT seq FROM publication");
	for (int i = 0; i < 5; i++)
		assert_int_equal(heartbeat(301, "\"b\"", 2 + i, "2.0", active, C->caps), 202);
	sleep(2);
	assert_int_equal(fbt_db_long(C->db, "SELECT seq FROM publication"), seq);
	assert_int_equal(heartbeat(301, "\"b\"", 10, "2.0", active, two), 202);
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM publication WHERE seq > %ld", seq);
	assert_int_equal(db_wait(1, sql), 1);
	/* the same set in another order is the same class: no publication */
	sleep(2);
	seq = fbt_db_long(C->db, "SELECT seq FROM publication");
	assert_int_equal(heartbeat(301, "\"b\"", 11, "2.0", active,
	                           "[{\"version\":1,\"id\":2},{\"id\":1,\"version\":1}]"),
	                 202);
	sleep(2);
	assert_int_equal(fbt_db_long(C->db, "SELECT seq FROM publication"), seq);
}

/* Agent tokens are accepted only exactly as the server writes them. */
static void test_agent_token_forms(void **state)
{
	(void)state;
	char tok[96], bad[128];
	token_of(12, tok);
	assert_int_equal(req("GET", "/v1/poll", tok, NULL), 200);
	const char *mac = strrchr(tok, '_') + 1;
	char upper[40];
	snprintf(upper, sizeof upper, "%s", mac);
	for (char *p = upper; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	const char *fmts[] = {"fa_012_%s", "fa_+12_%s", "fa_ 12_%s", "fa_12_%s0", "fa_12__%s",
	                      "fb_12_%s",  "fa_12%s",   "fa__%s",    "fa_13_%s",  "fa_-12_%s"};
	for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
		snprintf(bad, sizeof bad, fmts[i], mac);
		if (req("GET", "/v1/poll", bad, NULL) != 401)
			fail_msg("token form %zu (%s) was accepted", i, bad);
	}
	if (strcmp(upper, mac) != 0) {
		snprintf(bad, sizeof bad, "fa_12_%s", upper);
		assert_int_equal(req("GET", "/v1/poll", bad, NULL), 401);
	}
	snprintf(bad, sizeof bad, "fa_12345678901234567890_%s", mac);
	assert_int_equal(req("GET", "/v1/poll", bad, NULL), 401);
	snprintf(bad, sizeof bad, "fa_%.31s", tok + 3); /* MAC one digit short */
	assert_int_equal(req("GET", "/v1/poll", bad, NULL), 401);
}

/* Agents inserted behind the server's back (enrolled through another
 * replica) are loaded on the next publication, in pages, with their ring and
 * their capability class (what the document offers them). */
static void test_snapshot_loads_many_agents(void **state)
{
	(void)state;
	char sha[65];
	char *body = fbt_world_content(fbt_world_default(), 291, 1, sha);
	assert_int_equal(req("POST", "/v1/content", C->release, body), 201);
	free(body);
	char sql[256];
	snprintf(sql, sizeof sql, "UPDATE channels SET ga_sha256 = '%s' WHERE id = 291", sha);
	assert_int_equal(fbt_db_exec(C->db, sql), 0);
	int64_t lo = 1001, mid = lo + NLOAD / 2, hi = lo + NLOAD - 1;
	insert_agents(lo, mid - 1, C->caps);
	insert_agents(mid, hi, "[]");
	publish();
	char path[64];
	int found = 0;
	for (int i = 0; i < 200 && !found; i++) {
		snprintf(path, sizeof path, "/v1/agents/%lld", (long long)hi);
		struct fbt_resp r;
		fbt_http(&C->srv, "GET", path, C->admin, NULL, 0, NULL, &r);
		json_t *j = fbt_resp_json(&r);
		found = json_is_string(json_object_get(j, "ring"));
		json_decref(j);
		fbt_resp_free(&r);
		if (!found)
			usleep(50000);
	}
	assert_true(found);
	/* every one of them is in memory (GET /v1/agents/{id} takes the ring from
	 * the snapshot only), and its ring is the one its id hashes to */
	for (int64_t id = lo; id <= hi; id += 97) {
		snprintf(path, sizeof path, "/v1/agents/%lld", (long long)id);
		struct fbt_resp r;
		fbt_http(&C->srv, "GET", path, C->admin, NULL, 0, NULL, &r);
		json_t *j = fbt_resp_json(&r);
		if (!json_is_string(json_object_get(j, "ring")))
			fail_msg("agent %lld is not in memory: %s", (long long)id, r.body);
		json_decref(j);
		fbt_resp_free(&r);
	}
	/* the capability class came with them: the content is offered to the
	 * agents that can interpret it and not to those with no capabilities */
	char tok[96];
	struct fbt_resp r;
	token_of(lo + 1, tok);
	fbt_http(&C->srv, "GET", "/v1/poll", tok, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, sha));
	fbt_resp_free(&r);
	token_of(hi - 1, tok);
	fbt_http(&C->srv, "GET", "/v1/poll", tok, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_null(strstr(r.body, sha));
	fbt_resp_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_batched_heartbeats),
	        cmocka_unit_test(test_capability_class_changes_publish),
	        cmocka_unit_test(test_agent_token_forms),
	        cmocka_unit_test(test_health_signals),
	        cmocka_unit_test(test_snapshot_loads_many_agents),
	};
	return cmocka_run_group_tests_name("heartbeat", tests, setup, teardown);
}
