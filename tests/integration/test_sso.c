/* Single sign-on through a trusted authenticating proxy, against the real
 * firebreakd and PostgreSQL: the test plays the proxy from 127.0.0.2 (the
 * only address in sso_proxies) with the shared secret, and an attacker from
 * 127.0.0.1 (loopback, another peer) with the same headers. Identity
 * headers are believed only with both; the asserted e-mail names a user
 * and its roles; unknown and disabled users get 403; changes need
 * X-Requested-With; tokens keep working beside it; approvals through the
 * proxy count the person; start-up refuses half a configuration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the three above, which it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fb.h"
#include "fbt.h"
#include "fbt_env.h"
#include "fbt_rollout.h"
#include "fbt_world.h"

#define PROXY     "127.0.0.2"
#define ELSEWHERE "127.0.0.1"
#define SECRET    "s3cret-shared-by-proxy-and-firebreakd-0123456789"

static struct fbt_env E;
static char g_secret_file[1100], g_flag_file[1200];

#define Q(...) fbt_db_longf(E.db, __VA_ARGS__)

/* One request from source with the proxy's headers: secret (NULL: none),
 * identity ("X-Forwarded-Email: ..." or NULL), more (NULL-terminated,
 * may be NULL). Returns the status; *out the body parsed (may be NULL). */
static long call(const char *source, const char *secret, const char *identity, const char *method,
                 const char *path, const char *token, const char *body, const char *const *more,
                 json_t **out)
{
	const char *h[12];
	char sh[200];
	int n = 0;
	if (secret) {
		snprintf(sh, sizeof sh, "X-Firebreak-Proxy-Secret: %s", secret);
		h[n++] = sh;
	}
	if (identity)
		h[n++] = identity;
	for (int i = 0; more && more[i] && n < 11; i++)
		h[n++] = more[i];
	h[n] = NULL;
	struct fbt_resp r;
	assert_int_equal(fbt_http_from(&E.srv, source, method, path, token, body,
	                               body ? strlen(body) : 0, h, &r),
	                 0);
	long st = r.status;
	if (out)
		*out = fbt_resp_json(&r);
	fbt_resp_free(&r);
	return st;
}

#define EMAIL(x) "X-Forwarded-Email: " x

/* The error code and message of j contain code and needle; j freed. */
static void refused_with(json_t *j, const char *code, const char *needle)
{
	const json_t *e = json_object_get(j, "error");
	const char *c = json_string_value(json_object_get(e, "code"));
	const char *m = json_string_value(json_object_get(e, "message"));
	if (!c || strcmp(c, code) || !m || !strstr(m, needle)) {
		char *s = json_dumps(j, 0);
		fail_msg("expected %s with \"%s\": %s", code, needle, s ? s : "(none)");
	}
	json_decref(j);
}

static int setup(void **state)
{
	(void)state;
	char *dir = fbt_tmpdir("sso");
	snprintf(g_secret_file, sizeof g_secret_file, "%s/sso.secret", dir);
	free(dir);
	FILE *f = fopen(g_secret_file, "w");
	if (!f)
		return -1;
	fprintf(f, "%s\n", SECRET);
	fclose(f);
	snprintf(g_flag_file, sizeof g_flag_file, "--sso_secret_file=%s", g_secret_file);
	return 0;
}

static void env_up(void)
{
	const char *flags[] = {"--sso_proxies=127.0.0.2/32, 10.9.0.0/16", g_flag_file, NULL};
	fbt_env_up(&E, flags);
	fbt_env_expect(&E, 201, "POST", "/v1/users", E.admin,
	               "{\"name\":\"alice\",\"email\":\"alice@example.com\",\"roles\":[\"release\","
	               "\"soc\"]}");
	fbt_env_expect(&E, 201, "POST", "/v1/users", E.admin,
	               "{\"name\":\"root\",\"email\":\"root@example.com\",\"roles\":[\"admin\"]}");
	fbt_env_expect(
	        &E, 201, "POST", "/v1/users", E.admin,
	        "{\"name\":\"dave\",\"email\":\"dave@example.com\",\"roles\":[\"release\"]}");
	fbt_env_expect(&E, 200, "POST", "/v1/users/dave/disable", E.admin, "{\"reason\":\"left\"}");
}

static int env_down(void **state)
{
	(void)state;
	fbt_env_down(&E);
	return 0;
}

static void test_trusted_proxy_only(void **state)
{
	(void)state;
	env_up();
	json_t *j;
	/* the proxy, with the secret: alice, her roles, no token */
	assert_int_equal(call(PROXY, SECRET, EMAIL("Alice@Example.com"), "GET", "/v1/whoami", NULL,
	                      NULL, NULL, &j),
	                 200);
	assert_string_equal(fbt_jstr(j, "user"), "alice");
	assert_string_equal(fbt_jstr(j, "via"), "proxy");
	assert_string_equal(fbt_jstr(j, "role"), "release");
	assert_int_equal(json_array_size(json_object_get(j, "roles")), 2);
	assert_int_equal(json_integer_value(json_object_get(j, "token_id")), 0);
	json_decref(j);
	assert_int_equal(call(PROXY, SECRET, EMAIL("alice@example.com"), "GET",
	                      "/v1/rollouts?state=active", NULL, NULL, NULL, NULL),
	                 200);

	/* the same headers from any other address are ignored: unauthenticated */
	assert_int_equal(call(ELSEWHERE, SECRET, EMAIL("alice@example.com"), "GET", "/v1/whoami",
	                      NULL, NULL, NULL, &j),
	                 401);
	refused_with(j, "unauthenticated", "Authorization");
	/* ... and from the proxy without the secret, or with a wrong one */
	assert_int_equal(call(PROXY, NULL, EMAIL("alice@example.com"), "GET", "/v1/whoami", NULL,
	                      NULL, NULL, &j),
	                 401);
	refused_with(j, "unauthenticated", "Authorization");
	assert_int_equal(call(PROXY, SECRET "x", EMAIL("alice@example.com"), "GET", "/v1/whoami",
	                      NULL, NULL, NULL, NULL),
	                 401);
	assert_int_equal(call(PROXY, "s3cret", EMAIL("alice@example.com"), "GET", "/v1/whoami",
	                      NULL, NULL, NULL, NULL),
	                 401);
	/* with sso_match = email, a user name alone names nobody */
	assert_int_equal(call(PROXY, SECRET, "X-Forwarded-User: alice", "GET", "/v1/whoami", NULL,
	                      NULL, NULL, NULL),
	                 401);
	/* ignored headers leave a token in charge: the token's user, not alice */
	assert_int_equal(call(ELSEWHERE, SECRET, EMAIL("alice@example.com"), "GET", "/v1/whoami",
	                      E.soc, NULL, NULL, &j),
	                 200);
	assert_string_equal(fbt_jstr(j, "user"), "soc-one");
	assert_string_equal(fbt_jstr(j, "via"), "token");
	json_decref(j);
	/* the attempts were logged, at most every 10 s */
	char *log = NULL;
	unsigned char *text;
	size_t len;
	assert_int_equal(fb_file_read(E.srv.log, 1 << 24, &text, &len), FB_OK);
	log = (char *)text;
	assert_non_null(strstr(log, "identity headers from 127.0.0.1 ignored"));
	free(log);

	/* unknown and disabled users: 403 with a JSON error, nothing else */
	assert_int_equal(call(PROXY, SECRET, EMAIL("mallory@example.com"), "GET", "/v1/whoami",
	                      NULL, NULL, NULL, &j),
	                 403);
	refused_with(j, "unknown_user", "mallory@example.com");
	assert_int_equal(call(PROXY, SECRET, EMAIL("dave@example.com"), "GET", "/v1/whoami", NULL,
	                      NULL, NULL, &j),
	                 403);
	refused_with(j, "user_disabled", "dave");
	assert_int_equal(Q("SELECT count(*) FROM users WHERE email = 'mallory@example.com'"), 0);
	/* the user's roles decide: alice (release, soc) is no admin */
	assert_int_equal(call(PROXY, SECRET, EMAIL("alice@example.com"), "GET", "/v1/users", NULL,
	                      NULL, NULL, &j),
	                 403);
	refused_with(j, "forbidden", "release, soc");
}

static void test_changes_through_the_proxy(void **state)
{
	(void)state;
	env_up();
	static const char *xrw[] = {"X-Requested-With: firebreak", NULL};
	json_t *j;
	long channels = Q("SELECT count(*) FROM channels"),
	     audits = Q("SELECT count(*) FROM audit_log");
	/* a change without X-Requested-With (what a cross-site form could send) */
	assert_int_equal(call(PROXY, SECRET, EMAIL("root@example.com"), "POST", "/v1/channels",
	                      NULL, "{\"id\":7,\"name\":\"seven\"}", NULL, &j),
	                 403);
	refused_with(j, "csrf", "X-Requested-With");
	assert_int_equal(Q("SELECT count(*) FROM channels"), channels);
	assert_int_equal(Q("SELECT count(*) FROM audit_log"), audits);
	/* with it: done, audited as the user, with no token */
	assert_int_equal(call(PROXY, SECRET, EMAIL("root@example.com"), "POST", "/v1/channels",
	                      NULL, "{\"id\":7,\"name\":\"seven\"}", xrw, NULL),
	                 201);
	assert_int_equal(
	        Q("SELECT count(*) FROM audit_log a JOIN users u ON u.id = a.user_id "
	          "WHERE u.name = 'root' AND a.token_id IS NULL AND a.actor = 'admin:root' "
	          "AND a.object = 'channel/7'"),
	        1);
	assert_int_equal(call(PROXY, SECRET, EMAIL("root@example.com"), "GET",
	                      "/v1/audit?user=root", NULL, NULL, NULL, &j),
	                 200);
	assert_string_equal(fbt_jstr(json_array_get(json_object_get(j, "audit"), 0), "via"),
	                    "proxy");
	json_decref(j);

	/* two-person rule: alice through the proxy and alice's token are one
	 * approver; a second person completes it */
	char *tok;
	j = fbt_env_want(&E, 201, "POST", "/v1/tokens", E.admin,
	                 "{\"user\":\"alice\",\"role\":\"release\",\"name\":\"alice-ci\"}");
	tok = strdup(fbt_jstr(j, "token"));
	json_decref(j);
	char v1[65], body[512], path[64];
	fbt_rollout_upload(&E, 1, v1);
	snprintf(body, sizeof body,
	         "{\"channel\":%d,\"content\":\"%s\",\"emergency\":true,\"reason\":\"CF-291 fix\"}",
	         FBT_CH, v1);
	j = fbt_env_want(&E, 201, "POST", "/v1/rollouts", tok, body);
	int64_t id = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	snprintf(path, sizeof path, "/v1/rollouts/%lld/approve", (long long)id);
	assert_int_equal(call(PROXY, SECRET, EMAIL("alice@example.com"), "POST", path, NULL,
	                      "{\"reason\":\"me through the browser\"}", xrw, &j),
	                 202);
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	json_decref(j);
	fbt_rollout_expect(&E, id, "staged", -1);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'approval' AND token_id "
	                   "IS NULL AND user_id = (SELECT id FROM users WHERE name = 'alice')"),
	                 1);
	json_decref(fbt_rollout_action(&E, 200, id, "approve", E.rel2, "{\"reason\":\"ok\"}"));
	fbt_rollout_expect(&E, id, "rolling", 0);
	assert_int_equal(Q("SELECT count(*) FROM approvals WHERE rollout_id = %lld AND approver IS "
	                   "NULL",
	                   (long long)id),
	                 0); /* alice's proxy approval was not a second one: not stored */
	free(tok);

	/* the event stream and the dashboard work behind the proxy */
	assert_int_equal(
	        call(PROXY, SECRET, EMAIL("alice@example.com"), "GET", "/", NULL, NULL, NULL, NULL),
	        200);
	assert_int_equal(call(PROXY, SECRET, EMAIL("alice@example.com"), "GET", "/v1/events/recent",
	                      NULL, NULL, NULL, NULL),
	                 200);
}

/* firebreakd serve with flags: its exit status and stderr (caller frees). */
static int serve(const char *const *flags, char **err)
{
	const char *argv[32];
	int n = 0;
	argv[n++] = fbt_bin("firebreakd");
	argv[n++] = "serve";
	argv[n++] = "--port=0";
	argv[n++] = "--db=host=/nonexistent dbname=x";
	for (int i = 0; flags[i]; i++)
		argv[n++] = flags[i];
	for (int i = 0; fbt_world_default()->args[i]; i++)
		argv[n++] = fbt_world_default()->args[i];
	argv[n] = NULL;
	char *out;
	int rc = fbt_run(argv, NULL, &out, err);
	free(out);
	return rc;
}

static void test_half_a_configuration_is_refused(void **state)
{
	(void)state;
	char *dir = fbt_tmpdir("sso-bad"), shortf[1100], flag[1200], *err;
	snprintf(shortf, sizeof shortf, "%s/short", dir);
	FILE *f = fopen(shortf, "w");
	fputs("too-short\n", f);
	fclose(f);
	assert_int_not_equal(serve((const char *[]){"--sso_proxies=10.0.0.1", NULL}, &err), 0);
	assert_non_null(strstr(err, "sso_secret_file is empty"));
	free(err);
	assert_int_not_equal(serve((const char *[]){g_flag_file, NULL}, &err), 0);
	assert_non_null(strstr(err, "sso_proxies is empty"));
	free(err);
	snprintf(flag, sizeof flag, "--sso_secret_file=%s", shortf);
	assert_int_not_equal(serve((const char *[]){"--sso_proxies=10.0.0.1", flag, NULL}, &err),
	                     0);
	assert_non_null(strstr(err, "32 or more"));
	free(err);
	assert_int_not_equal(
	        serve((const char *[]){"--sso_proxies=10.0.0.1, 10.0.0.0/33", g_flag_file, NULL},
	              &err),
	        0);
	assert_non_null(strstr(err, "sso_proxies: entry 2"));
	free(err);
	assert_int_not_equal(
	        serve((const char *[]){"--sso_proxies=10.0.0.1/8", g_flag_file, NULL}, &err), 0);
	assert_non_null(strstr(err, "host bits"));
	free(err);
	assert_int_not_equal(serve((const char *[]){"--sso_proxies=10.0.0.1", g_flag_file,
	                                            "--sso_match=sub", NULL},
	                           &err),
	                     0);
	assert_non_null(strstr(err, "sso_match"));
	free(err);
	assert_int_not_equal(serve((const char *[]){"--sso_proxies=10.0.0.1", g_flag_file,
	                                            "--sso_email_header=Authorization", NULL},
	                           &err),
	                     0);
	assert_non_null(strstr(err, "sso_email_header"));
	free(err);
	free(dir);
}

/* The dashboard behind the proxy, in a real browser: here the browser is
 * the proxy's client on loopback, so 127.0.0.1 is the trusted address. */
static void test_dashboard_behind_the_proxy(void **state)
{
	(void)state;
	if (access("/usr/bin/chromium", X_OK) || access("/usr/bin/node", X_OK) ||
	    access("tests/browser/node_modules/playwright-core/package.json", R_OK))
		fail_msg("the browser test needs /usr/bin/chromium, /usr/bin/node and "
		         "tests/browser/node_modules (run make deps)");
	const char *flags[] = {"--sso_proxies=127.0.0.1", g_flag_file, NULL};
	fbt_env_up(&E, flags);
	fbt_env_expect(&E, 201, "POST", "/v1/users", E.admin,
	               "{\"name\":\"alice\",\"email\":\"alice@example.com\",\"roles\":[\"release\","
	               "\"soc\"]}");
	char v1[65], body[512];
	fbt_rollout_upload(&E, 1, v1);
	snprintf(body, sizeof body,
	         "{\"channel\":%d,\"content\":\"%s\",\"emergency\":true,\"reason\":\"CF-291 fix\"}",
	         FBT_CH, v1);
	json_t *j = fbt_env_want(&E, 201, "POST", "/v1/rollouts", E.rel1, body);
	int64_t id = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	char *dir = fbt_tmpdir("sso-browser"), a_url[300], a_secret[300], a_staged[64], a_out[1200],
	     *out = NULL, *err = NULL;
	snprintf(a_url, sizeof a_url, "--url=%s", E.srv.url);
	snprintf(a_secret, sizeof a_secret, "--secret=%s", SECRET);
	snprintf(a_staged, sizeof a_staged, "--staged=%lld", (long long)id);
	snprintf(a_out, sizeof a_out, "--out=%s", dir);
	const char *argv[] = {"/usr/bin/node",
	                      "tests/browser/sso.mjs",
	                      a_url,
	                      a_secret,
	                      "--email=alice@example.com",
	                      "--user=alice",
	                      a_staged,
	                      a_out,
	                      NULL};
	int rc = fbt_run(argv, NULL, &out, &err);
	printf("%s", out ? out : "");
	if (rc != 0)
		fail_msg("sso.mjs exited %d:\n%s\n%s", rc, out ? out : "", err ? err : "");
	free(out);
	free(err);
	free(dir);
	/* started by alice's approval through the proxy: her user, no token */
	fbt_rollout_expect(&E, id, "rolling", 0);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'rollout.approve' AND "
	                   "object = 'rollout/%lld' AND token_id IS NULL AND actor = "
	                   "'release:alice' AND reason = 'sso test: approved in the browser'",
	                   (long long)id),
	                 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_trusted_proxy_only, env_down),
	        cmocka_unit_test_teardown(test_changes_through_the_proxy, env_down),
	        cmocka_unit_test(test_half_a_configuration_is_refused),
	        cmocka_unit_test_teardown(test_dashboard_behind_the_proxy, env_down),
	};
	return cmocka_run_group_tests_name("sso", tests, setup, NULL);
}
