/* firebreakd skeleton against a real PostgreSQL over real HTTP: routing,
 * JSON errors, body caps, tokens and roles, metrics, logs, database restart,
 * graceful shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fbt.h"

struct ctx {
	char *db;
	struct fbt_server srv;
	char *admin, *soc, *agent;
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof *c);
	c->db = fbt_db_new();
	c->admin = fbt_token(c->db, "admin", "alice");
	c->soc = fbt_token(c->db, "soc", "sam");
	c->agent = fbt_token(c->db, "agent", "host-1");
	if (!c->admin || !c->soc || !c->agent)
		return -1;
	if (fbt_server_start(&c->srv, c->db, NULL) || fbt_server_wait_ready(&c->srv))
		return -1;
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	if (c->srv.pid)
		fbt_server_stop(&c->srv, SIGKILL);
	free(c->db);
	free(c->admin);
	free(c->soc);
	free(c->agent);
	free(c);
	return 0;
}

static void expect_error(struct fbt_resp *r, long status, const char *code)
{
	assert_int_equal(r->status, status);
	assert_string_equal(fbt_error_code(r), code);
	json_t *j = fbt_resp_json(r);
	assert_non_null(j);
	assert_true(json_is_string(json_object_get(json_object_get(j, "error"), "message")));
	assert_true(json_string_length(json_object_get(json_object_get(j, "error"), "message")) >
	            0);
	json_decref(j);
	char ct[128];
	assert_non_null(fbt_header(r, "Content-Type", ct, sizeof ct));
	assert_string_equal(ct, "application/json");
}

static void test_health_and_ready(void **state)
{
	struct ctx *c = *state;
	struct fbt_resp r;
	assert_int_equal(fbt_http(&c->srv, "GET", "/healthz", NULL, NULL, 0, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	char id[64];
	assert_non_null(fbt_header(&r, "X-Request-Id", id, sizeof id));
	assert_int_equal(strlen(id), 16);
	fbt_resp_free(&r);
	assert_int_equal(fbt_http(&c->srv, "GET", "/readyz", NULL, NULL, 0, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	json_t *j = fbt_resp_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "ready");
	assert_true(json_integer_value(json_object_get(j, "schema")) >= 1);
	json_decref(j);
	fbt_resp_free(&r);
}

static void test_unknown_route_and_method(void **state)
{
	struct ctx *c = *state;
	struct fbt_resp r;
	fbt_http(&c->srv, "GET", "/no/such/thing", NULL, NULL, 0, NULL, &r);
	expect_error(&r, 404, "not_found");
	fbt_resp_free(&r);
	fbt_http(&c->srv, "DELETE", "/healthz", NULL, NULL, 0, NULL, &r);
	expect_error(&r, 405, "method_not_allowed");
	fbt_resp_free(&r);
	fbt_http(&c->srv, "BREW", "/healthz", NULL, NULL, 0, NULL, &r);
	expect_error(&r, 405, "method_not_allowed");
	fbt_resp_free(&r);
}

static void test_auth_missing_wrong_revoked_and_role(void **state)
{
	struct ctx *c = *state;
	struct fbt_resp r;
	fbt_http(&c->srv, "GET", "/v1/tokens", NULL, NULL, 0, NULL, &r);
	expect_error(&r, 401, "unauthenticated");
	fbt_resp_free(&r);
	fbt_http(&c->srv, "GET", "/v1/tokens", "not-a-token", NULL, 0, NULL, &r);
	expect_error(&r, 401, "unauthenticated");
	fbt_resp_free(&r);
	/* well-formed but unknown */
	char fake[68] = "fb_";
	memset(fake + 3, 'a', 64);
	fake[67] = '\0';
	fbt_http(&c->srv, "GET", "/v1/tokens", fake, NULL, 0, NULL, &r);
	expect_error(&r, 401, "unauthenticated");
	fbt_resp_free(&r);
	/* wrong role */
	fbt_http(&c->srv, "GET", "/v1/tokens", c->soc, NULL, 0, NULL, &r);
	expect_error(&r, 403, "forbidden");
	fbt_resp_free(&r);
	fbt_http(&c->srv, "GET", "/v1/tokens", c->agent, NULL, 0, NULL, &r);
	expect_error(&r, 403, "forbidden");
	fbt_resp_free(&r);
	/* right role */
	fbt_http(&c->srv, "GET", "/v1/tokens", c->admin, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	fbt_resp_free(&r);
	fbt_http(&c->srv, "GET", "/v1/whoami", c->soc, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	json_t *j = fbt_resp_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "role")), "soc");
	assert_string_equal(json_string_value(json_object_get(j, "name")), "sam");
	json_decref(j);
	fbt_resp_free(&r);
}

static void test_token_api_create_use_revoke(void **state)
{
	struct ctx *c = *state;
	struct fbt_resp r;
	long before = fbt_db_long(c->db, "SELECT count(*) FROM api_tokens");
	const char *body = "{\"role\":\"release\",\"name\":\"rita\"}";
	fbt_http(&c->srv, "POST", "/v1/tokens", c->admin, body, strlen(body), NULL, &r);
	assert_int_equal(r.status, 201);
	json_t *j = fbt_resp_json(&r);
	char *tok = strdup(json_string_value(json_object_get(j, "token")));
	json_int_t id = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	fbt_resp_free(&r);
	assert_int_equal(strlen(tok), 67);
	assert_int_equal(fbt_db_long(c->db, "SELECT count(*) FROM api_tokens"), before + 1);

	/* Only the hash is stored: no column anywhere holds the secret. */
	char sql[512];
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM api_tokens WHERE encode(token_hash,'hex') = "
	         "encode(sha256('%s'),'hex')",
	         tok);
	assert_int_equal(fbt_db_long(c->db, sql), 1);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM api_tokens t WHERE t::text LIKE '%%%s%%'",
	         tok + 3);
	assert_int_equal(fbt_db_long(c->db, sql), 0);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM audit_log a WHERE a::text LIKE '%%%s%%'",
	         tok + 3);
	assert_int_equal(fbt_db_long(c->db, sql), 0);
	/* audited with who did it */
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM audit_log WHERE action='token.create' AND "
	         "object='token/%lld' "
	         "AND actor='admin:alice' AND after->>'role'='release' AND request_id IS NOT NULL",
	         (long long)id);
	assert_int_equal(fbt_db_long(c->db, sql), 1);

	fbt_http(&c->srv, "GET", "/v1/whoami", tok, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	fbt_resp_free(&r);

	char path[64];
	snprintf(path, sizeof path, "/v1/tokens/%lld", (long long)id);
	fbt_http(&c->srv, "DELETE", path, c->admin, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	fbt_resp_free(&r);
	fbt_http(&c->srv, "DELETE", path, c->admin, NULL, 0, NULL, &r); /* idempotent */
	assert_int_equal(r.status, 200);
	fbt_resp_free(&r);
	fbt_http(&c->srv, "GET", "/v1/whoami", tok, NULL, 0, NULL, &r);
	expect_error(&r, 401, "unauthenticated");
	fbt_resp_free(&r);
	fbt_http(&c->srv, "DELETE", "/v1/tokens/999999", c->admin, NULL, 0, NULL, &r);
	expect_error(&r, 404, "not_found");
	fbt_resp_free(&r);
	fbt_http(&c->srv, "DELETE", "/v1/tokens/abc", c->admin, NULL, 0, NULL, &r);
	expect_error(&r, 400, "invalid");
	fbt_resp_free(&r);
	free(tok);
}

static void test_bad_bodies_store_nothing(void **state)
{
	struct ctx *c = *state;
	struct fbt_resp r;
	long tokens = fbt_db_long(c->db, "SELECT count(*) FROM api_tokens");
	long audits = fbt_db_long(c->db, "SELECT count(*) FROM audit_log");
	struct {
		const char *body;
		long status;
		const char *code;
		const char *needle;
	} cases[] = {
	        {"{\"role\": \"soc\", \"name\": ", 400, "bad_json", "line 1"},
	        {"[1,2,3]", 400, "bad_json", "object"},
	        {"", 400, "bad_json", "empty"},
	        {"{\"role\": 5, \"name\": \"x\"}", 400, "invalid", "'role'"},
	        {"{\"role\": \"root\", \"name\": \"x\"}", 400, "invalid", "'role'"},
	        {"{\"role\": \"soc\", \"name\": 7}", 400, "invalid", "'name'"},
	        {"{\"role\": \"soc\", \"name\": \"\"}", 400, "invalid", "'name'"},
	        {"{\"role\": \"soc\", \"name\": \"x\", \"admin\": true}", 400, "invalid",
	         "'admin'"},
	        {"{\"role\": \"soc\", \"role\": \"admin\", \"name\": \"x\"}", 400, "bad_json",
	         "duplicate"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		fbt_http(&c->srv, "POST", "/v1/tokens", c->admin, cases[i].body,
		         strlen(cases[i].body), NULL, &r);
		expect_error(&r, cases[i].status, cases[i].code);
		if (!strstr(r.body, cases[i].needle))
			fail_msg("case %zu: '%s' not in %s", i, cases[i].needle, r.body);
		fbt_resp_free(&r);
	}
	/* wrong content type */
	const char *hdr[] = {"Content-Type: text/plain", NULL};
	const char *ok = "{\"role\":\"soc\",\"name\":\"x\"}";
	fbt_http(&c->srv, "POST", "/v1/tokens", c->admin, ok, strlen(ok), hdr, &r);
	expect_error(&r, 415, "unsupported_media_type");
	fbt_resp_free(&r);
	/* oversized: the route caps bodies at 4 KiB */
	size_t big = 64 * 1024;
	char *huge = malloc(big);
	memset(huge, ' ', big);
	huge[0] = '{';
	huge[big - 1] = '}';
	fbt_http(&c->srv, "POST", "/v1/tokens", c->admin, huge, big, NULL, &r);
	expect_error(&r, 413, "body_too_large");
	fbt_resp_free(&r);
	/* chunked, so the server cannot refuse it by Content-Length */
	const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
	fbt_http(&c->srv, "POST", "/v1/tokens", c->admin, huge, big, chunked, &r);
	expect_error(&r, 413, "body_too_large");
	fbt_resp_free(&r);
	free(huge);
	assert_int_equal(fbt_db_long(c->db, "SELECT count(*) FROM api_tokens"), tokens);
	assert_int_equal(fbt_db_long(c->db, "SELECT count(*) FROM audit_log"), audits);
}

static void test_metrics(void **state)
{
	struct ctx *c = *state;
	struct fbt_resp r;
	for (int i = 0; i < 3; i++) {
		fbt_http(&c->srv, "GET", "/healthz", NULL, NULL, 0, NULL, &r);
		fbt_resp_free(&r);
	}
	fbt_http(&c->srv, "GET", "/definitely-missing", NULL, NULL, 0, NULL, &r);
	fbt_resp_free(&r);
	fbt_http(&c->srv, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	const char *m = r.body;
	assert_non_null(
	        strstr(m, "firebreak_http_requests_total{route=\"GET /healthz\",status=\"200\"}"));
	assert_non_null(
	        strstr(m, "firebreak_http_requests_total{route=\"unmatched\",status=\"404\"}"));
	assert_non_null(strstr(m, "firebreak_http_request_duration_seconds_bucket{route=\"GET "
	                          "/healthz\",le=\"+Inf\"}"));
	assert_non_null(
	        strstr(m, "firebreak_http_request_duration_seconds_count{route=\"GET /healthz\"}"));
	assert_non_null(strstr(m, "firebreak_db_pool_connections{state=\"busy\"}"));
	assert_non_null(strstr(m, "firebreak_db_pool_connections{state=\"idle\"}"));
	/* the counter counts: at least the 3 requests above */
	const char *line =
	        strstr(m, "firebreak_http_requests_total{route=\"GET /healthz\",status=\"200\"} ");
	long n = strtol(strchr(line, '}') + 2, NULL, 10);
	assert_true(n >= 3);
	fbt_resp_free(&r);
	/* per tenant, its enrolled agents not revoked: the default tenant's and
	 * a new tenant's 0 */
	const char *t = "{\"name\":\"metrics-t\",\"reason\":\"metrics test\"}";
	fbt_http(&c->srv, "POST", "/v1/tenants", c->admin, t, strlen(t), NULL, &r);
	assert_int_equal(r.status, 201);
	fbt_resp_free(&r);
	fbt_http(&c->srv, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\n# TYPE firebreak_tenant_agents gauge\n"));
	assert_non_null(strstr(r.body, "\nfirebreak_tenant_agents{tenant=\"metrics-t\"} 0\n"));
	char want[128];
	snprintf(want, sizeof want, "\nfirebreak_tenant_agents{tenant=\"default\"} %ld\n",
	         fbt_db_long(c->db, "SELECT count(*) FROM agents WHERE revoked_at IS NULL"));
	assert_non_null(strstr(r.body, want));
	fbt_resp_free(&r);
}

static void test_logs_are_json_lines_with_request_id(void **state)
{
	struct ctx *c = *state;
	FILE *f = fopen(c->srv.log, "r");
	assert_non_null(f);
	char line[8192];
	int lines = 0, with_id = 0;
	while (fgets(line, sizeof line, f)) {
		json_t *j = json_loads(line, 0, NULL);
		if (!j)
			fail_msg("log line is not JSON: %s", line);
		assert_non_null(json_object_get(j, "ts"));
		assert_non_null(json_object_get(j, "level"));
		assert_non_null(json_object_get(j, "msg"));
		if (json_object_get(j, "request_id"))
			with_id++;
		lines++;
		json_decref(j);
	}
	fclose(f);
	assert_true(lines > 3);
	assert_true(with_id > 0);
}

static void test_database_restart_under_running_server(void **state)
{
	struct ctx *c = *state;
	struct fbt_resp r;
	fbt_http(&c->srv, "GET", "/v1/whoami", c->admin, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	fbt_resp_free(&r);
	assert_int_equal(fbt_pg_restart(), 0);
	/* The pool's connections died with the old postmaster; requests must
	 * succeed again without restarting firebreakd. */
	int ok = 0;
	for (int i = 0; i < 100 && !ok; i++) {
		fbt_http(&c->srv, "GET", "/v1/whoami", c->admin, NULL, 0, NULL, &r);
		ok = r.status == 200;
		fbt_resp_free(&r);
		if (!ok)
			usleep(100000);
	}
	assert_true(ok);
	fbt_http(&c->srv, "GET", "/readyz", NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	fbt_resp_free(&r);
	fbt_http(&c->srv, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
	const char *line = strstr(r.body, "\nfirebreak_db_reconnects_total ");
	assert_non_null(line);
	assert_true(strtol(line + strlen("\nfirebreak_db_reconnects_total "), NULL, 10) >= 1);
	fbt_resp_free(&r);
}

static void test_readyz_reports_database_down(void **state)
{
	struct ctx *c = *state;
	/* A server pointed at a database that does not exist is alive, not ready. */
	struct fbt_server s;
	char *bad = strdup(c->db);
	char *p = strstr(bad, "dbname=");
	snprintf(p, strlen(p) + 1, "dbname=%s", "nope_db");
	assert_int_equal(fbt_server_start(&s, bad, NULL), 0);
	struct fbt_resp r;
	fbt_http(&s, "GET", "/readyz", NULL, NULL, 0, NULL, &r);
	expect_error(&r, 503, "not_ready");
	fbt_resp_free(&r);
	fbt_http(&s, "GET", "/v1/whoami", c->admin, NULL, 0, NULL, &r);
	expect_error(&r, 503, "unavailable");
	fbt_resp_free(&r);
	/* /metrics still answers: the gauges read from the database are left
	 * out, and the server says why in its log */
	fbt_http(&s, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "firebreak_http_requests_total{"));
	assert_null(strstr(r.body, "firebreak_tenant_agents{"));
	fbt_resp_free(&r);
	assert_int_equal(fbt_server_stop(&s, SIGTERM), 0);
	FILE *f = fopen(s.log, "r");
	assert_non_null(f);
	char line[8192];
	int said = 0;
	while (!said && fgets(line, sizeof line, f))
		said = strstr(line, "metrics: no tenant gauges: ") != NULL;
	fclose(f);
	assert_true(said);
	free(bad);
}

static void test_graceful_shutdown_finishes_inflight_request(void **state)
{
	struct ctx *c = *state;
	struct fbt_server s;
	assert_int_equal(fbt_server_start(&s, c->db, NULL), 0);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	const char *body = "{\"role\":\"soc\",\"name\":\"late\"}";
	char head[512];
	int hl = snprintf(head, sizeof head,
	                  "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
	                  "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
	                  c->admin, strlen(body));
	assert_int_equal(write(fd, head, (size_t)hl), hl);
	assert_int_equal(write(fd, body, 5), 5); /* half a body: the request is in flight */
	usleep(200000);
	kill(s.pid, SIGTERM);
	usleep(300000);
	assert_int_equal(write(fd, body + 5, strlen(body) - 5), (ssize_t)(strlen(body) - 5));
	char resp[4096];
	size_t got = 0;
	ssize_t n;
	while (got < sizeof resp - 1 && (n = read(fd, resp + got, sizeof resp - 1 - got)) > 0)
		got += (size_t)n;
	resp[got] = '\0';
	close(fd);
	assert_non_null(strstr(resp, "HTTP/1.1 201"));
	assert_non_null(strstr(resp, "\"token\""));
	/* new connections are refused while it stops, and it exits cleanly */
	assert_int_equal(fbt_server_stop(&s, SIGTERM), 0);
	assert_int_equal(fbt_db_long(c->db, "SELECT count(*) FROM api_tokens WHERE name='late'"),
	                 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_health_and_ready),
	        cmocka_unit_test(test_unknown_route_and_method),
	        cmocka_unit_test(test_auth_missing_wrong_revoked_and_role),
	        cmocka_unit_test(test_token_api_create_use_revoke),
	        cmocka_unit_test(test_bad_bodies_store_nothing),
	        cmocka_unit_test(test_metrics),
	        cmocka_unit_test(test_logs_are_json_lines_with_request_id),
	        cmocka_unit_test(test_readyz_reports_database_down),
	        cmocka_unit_test(test_graceful_shutdown_finishes_inflight_request),
	        cmocka_unit_test(test_database_restart_under_running_server),
	};
	return cmocka_run_group_tests_name("server", tests, setup, teardown);
}
