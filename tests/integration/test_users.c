/* Operators are people, against the real firebreakd and PostgreSQL: the
 * users API (create, list, show, change, disable, enable) with every
 * refusal storing nothing; tokens issued to a user; a disabled user's
 * tokens refused at once; the two-person rule by person (two tokens of one
 * user are one approver: resuming a halted rollout, forcing a promotion,
 * clearing a bad mark, starting an emergency rollout); the audit naming
 * user and token; whoami; and migration 0008 on a database with tokens from
 * before users. Each test has its own database and server. */
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
#include "fbt_env.h"
#include "fbt_rollout.h"

static struct fbt_env E;

#define Q(...) fbt_db_longf(E.db, __VA_ARGS__)

/* A refusal with its status, error code and a message that contains each of
 * the NULL-terminated needles. */
#define REFUSED(want, code, method, path, token, body, ...)                                        \
	fbt_env_refused(&E, (want), (code), (method), (path), (token), (body),                     \
	                (const char *const[]){__VA_ARGS__, NULL})

static int env_down(void **state)
{
	(void)state;
	fbt_env_down(&E);
	return 0;
}

/* A token issued through POST /v1/tokens as the admin (201 expected);
 * caller frees. */
static char *issue(const char *body)
{
	json_t *j = fbt_env_want(&E, 201, "POST", "/v1/tokens", E.admin, body);
	char *t = strdup(fbt_jstr(j, "token"));
	json_decref(j);
	assert_int_equal(strlen(t), 67);
	return t;
}

/* Rows of the tables a refusal must leave alone, summed with weights that
 * tell them apart. */
static long stored(void)
{
	return Q("SELECT ('x' || substr(md5((SELECT string_agg(u::text, ';' ORDER BY id) FROM "
	         "users u) || (SELECT string_agg(t::text, ';' ORDER BY id) FROM api_tokens t) || "
	         "(SELECT count(*) FROM audit_log)), 1, 15))::bit(60)::bigint");
}

static void test_users_api_and_refusals(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	/* the tokens fbt_env made (firebreakd token create without --user) each
	 * got a user of the same name with the token's role */
	assert_int_equal(Q("SELECT count(*) FROM users WHERE name IN ('ada', 'rel-one', 'rel-two', "
	                   "'soc-one')"),
	                 4);
	assert_int_equal(Q("SELECT count(*) FROM users u JOIN api_tokens t ON t.user_id = u.id "
	                   "WHERE u.name = 'rel-one' AND u.roles = '{release}' AND t.name = "
	                   "'rel-one'"),
	                 1);

	/* create */
	json_t *j = fbt_env_want(&E, 201, "POST", "/v1/users", E.admin,
	                         "{\"name\":\"alice\",\"email\":\"Alice@Example.COM\",\"roles\":"
	                         "[\"release\",\"soc\"],\"reason\":\"new on the release team\"}");
	int64_t alice = json_integer_value(json_object_get(j, "id"));
	assert_true(alice > 0);
	assert_string_equal(fbt_jstr(j, "email"), "alice@example.com");
	assert_int_equal(json_array_size(json_object_get(j, "roles")), 2);
	assert_true(json_is_false(json_object_get(j, "disabled")));
	json_decref(j);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'user.create' AND "
	                   "object = 'user/%lld' AND actor = 'admin:ada' AND reason = 'new on the "
	                   "release team' AND user_id = (SELECT id FROM users WHERE name = 'ada') "
	                   "AND token_id IS NOT NULL",
	                   (long long)alice),
	                 1);

	j = fbt_env_want(&E, 200, "PATCH", "/v1/users/ada", E.admin,
	                 "{\"email\":\"ada@example.com\",\"reason\":\"for single sign-on\"}");
	assert_string_equal(fbt_jstr(j, "email"), "ada@example.com");
	json_decref(j);

	/* refusals: each names the field, none stores anything */
	long before = stored();
	REFUSED(409, "conflict", "POST", "/v1/users", E.admin,
	        "{\"name\":\"alice\",\"roles\":[\"soc\"]}", "'name'", "alice");
	REFUSED(409, "conflict", "POST", "/v1/users", E.admin,
	        "{\"name\":\"alice2\",\"email\":\"ALICE@example.com\",\"roles\":[\"soc\"]}",
	        "'email'", "alice");
	REFUSED(400, "invalid", "POST", "/v1/users", E.admin,
	        "{\"name\":\"1bob\",\"roles\":[\"soc\"]}", "'name'");
	REFUSED(400, "invalid", "POST", "/v1/users", E.admin,
	        "{\"name\":\"bob smith\",\"roles\":[\"soc\"]}", "'name'");
	REFUSED(400, "invalid", "POST", "/v1/users", E.admin, "{\"roles\":[\"soc\"]}", "'name'");
	REFUSED(400, "invalid", "POST", "/v1/users", E.admin, "{\"name\":\"bob\"}", "'roles'");
	REFUSED(400, "invalid", "POST", "/v1/users", E.admin, "{\"name\":\"bob\",\"roles\":[]}",
	        "'roles'");
	REFUSED(400, "invalid", "POST", "/v1/users", E.admin,
	        "{\"name\":\"bob\",\"roles\":[\"root\"]}", "roles[0]");
	REFUSED(400, "invalid", "POST", "/v1/users", E.admin,
	        "{\"name\":\"bob\",\"roles\":[\"soc\",\"soc\"]}", "roles[1]", "twice");
	REFUSED(400, "invalid", "POST", "/v1/users", E.admin,
	        "{\"name\":\"bob\",\"roles\":[\"soc\"],\"email\":\"no-at-sign\"}", "'email'");
	REFUSED(400, "invalid", "POST", "/v1/users", E.admin,
	        "{\"name\":\"bob\",\"roles\":[\"soc\"],\"email\":\"a b@c\"}", "'email'");
	REFUSED(400, "invalid", "POST", "/v1/users", E.admin,
	        "{\"name\":\"bob\",\"roles\":[\"soc\"],\"admin\":true}", "'admin'");
	REFUSED(400, "bad_json", "POST", "/v1/users", E.admin, "{\"name\":", "line 1");
	REFUSED(403, "forbidden", "POST", "/v1/users", E.rel1,
	        "{\"name\":\"bob\",\"roles\":[\"soc\"]}", "release");
	/* tokens: an unknown user, a role the user lacks, a malformed user */
	REFUSED(422, "unknown_user", "POST", "/v1/tokens", E.admin,
	        "{\"user\":\"nobody\",\"role\":\"soc\",\"name\":\"x\"}", "'user'", "nobody");
	REFUSED(422, "unknown_user", "POST", "/v1/tokens", E.admin,
	        "{\"user\":999999,\"role\":\"soc\",\"name\":\"x\"}", "'user'", "999999");
	REFUSED(422, "invalid_user", "POST", "/v1/tokens", E.admin,
	        "{\"user\":\"alice\",\"role\":\"admin\",\"name\":\"x\"}", "'role'", "alice",
	        "admin");
	REFUSED(400, "invalid", "POST", "/v1/tokens", E.admin,
	        "{\"user\":true,\"role\":\"soc\",\"name\":\"x\"}", "'user'");
	/* without a user: the user named like the token must hold the role */
	REFUSED(422, "invalid_user", "POST", "/v1/tokens", E.admin,
	        "{\"role\":\"admin\",\"name\":\"rel-one\"}", "'role'", "rel-one");
	REFUSED(400, "invalid", "POST", "/v1/tokens", E.admin,
	        "{\"role\":\"soc\",\"name\":\"CI deploy\"}", "'name'", "give 'user'");
	/* changes: unknown user, self-lockout, bad fields */
	REFUSED(404, "not_found", "PATCH", "/v1/users/nobody", E.admin, "{\"roles\":[\"soc\"]}",
	        "nobody");
	REFUSED(404, "not_found", "POST", "/v1/users/999999/disable", E.admin, "{\"reason\":\"x\"}",
	        "999999");
	REFUSED(409, "conflict", "POST", "/v1/users/ada/disable", E.admin, "{\"reason\":\"x\"}",
	        "yourself");
	REFUSED(409, "conflict", "PATCH", "/v1/users/ada", E.admin, "{\"roles\":[\"soc\"]}",
	        "yourself");
	REFUSED(400, "invalid", "POST", "/v1/users/alice/disable", E.admin, "{}", "'reason'");
	REFUSED(400, "invalid", "PATCH", "/v1/users/alice", E.admin, "{}", "'roles'", "'email'");
	REFUSED(409, "conflict", "PATCH", "/v1/users/alice", E.admin,
	        "{\"email\":\"ADA@example.com\"}", "'email'", "ada");
	assert_int_equal(stored(), before);
}

/* GET /v1/whoami with token: user, via, token name. */
static void whoami(const char *token, const char *user, const char *token_name)
{
	json_t *j = fbt_env_want(&E, 200, "GET", "/v1/whoami", token, NULL);
	assert_string_equal(fbt_jstr(j, "user"), user);
	assert_string_equal(fbt_jstr(j, "name"), user);
	assert_string_equal(fbt_jstr(j, "via"), "token");
	assert_string_equal(fbt_jstr(j, "token_name"), token_name);
	assert_true(json_integer_value(json_object_get(j, "token_id")) > 0);
	assert_true(json_integer_value(json_object_get(j, "user_id")) > 0);
	json_decref(j);
}

static void test_tokens_of_a_user_and_disabling(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	json_t *j = fbt_env_want(&E, 201, "POST", "/v1/users", E.admin,
	                         "{\"name\":\"alice\",\"roles\":[\"release\",\"soc\"]}");
	char body[256];
	snprintf(body, sizeof body, "{\"user\":%lld,\"role\":\"soc\",\"name\":\"alice-desk\"}",
	         (long long)json_integer_value(json_object_get(j, "id")));
	json_decref(j);
	char *laptop = issue("{\"user\":\"alice\",\"role\":\"release\",\"name\":\"alice-laptop\"}");
	char *desk = issue(body);
	whoami(laptop, "alice", "alice-laptop");
	whoami(desk, "alice", "alice-desk");
	j = fbt_env_want(&E, 200, "GET", "/v1/whoami", desk, NULL);
	assert_string_equal(fbt_jstr(j, "role"), "soc");
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "roles"), 0)),
	                    "soc");
	json_decref(j);
	/* the token list and the user name their owner */
	j = fbt_env_want(&E, 200, "GET", "/v1/tokens", E.admin, NULL);
	int mine = 0;
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(j, "tokens"), i, t) mine +=
	        strcmp(fbt_jstr(t, "user"), "alice") == 0;
	assert_int_equal(mine, 2);
	json_decref(j);
	j = fbt_env_want(&E, 200, "GET", "/v1/users/alice", E.admin, NULL);
	assert_int_equal(json_array_size(json_object_get(j, "tokens")), 2);
	assert_int_equal(json_integer_value(json_object_get(j, "active_tokens")), 2);
	json_decref(j);
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'token.create' AND "
	                   "after->>'user' = 'alice'"),
	                 2);

	/* disabling the user makes every one of its tokens fail at once */
	j = fbt_env_want(&E, 200, "POST", "/v1/users/alice/disable", E.admin,
	                 "{\"reason\":\"left the team\"}");
	assert_true(json_is_true(json_object_get(j, "disabled")));
	assert_string_equal(fbt_jstr(j, "disabled_reason"), "left the team");
	json_decref(j);
	REFUSED(401, "unauthenticated", "GET", "/v1/whoami", laptop, NULL, "alice", "disabled");
	REFUSED(401, "unauthenticated", "GET", "/v1/rollouts", desk, NULL, "disabled");
	REFUSED(422, "invalid_user", "POST", "/v1/tokens", E.admin,
	        "{\"user\":\"alice\",\"role\":\"soc\",\"name\":\"x\"}", "'user'", "disabled");
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'user.disable' AND "
	                   "reason = 'left the team' AND before->>'disabled' = 'false' AND "
	                   "after->>'disabled' = 'true'"),
	                 1);
	/* twice: nothing more happens */
	fbt_env_expect(&E, 200, "POST", "/v1/users/alice/disable", E.admin,
	               "{\"reason\":\"again\"}");
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'user.disable'"), 1);
	j = fbt_env_want(&E, 200, "GET", "/v1/users", E.admin, NULL);
	json_array_foreach(json_object_get(j, "users"), i,
	                   t) if (strcmp(fbt_jstr(t, "name"), "alice") == 0)
	        assert_true(json_is_true(json_object_get(t, "disabled")));
	json_decref(j);
	fbt_env_expect(&E, 200, "POST", "/v1/users/alice/enable", E.admin, "{\"reason\":\"back\"}");
	whoami(laptop, "alice", "alice-laptop");

	/* taking a role away fails that role's tokens at once, and only those */
	j = fbt_env_want(&E, 200, "PATCH", "/v1/users/alice", E.admin,
	                 "{\"roles\":[\"soc\"],\"reason\":\"moved to the SOC\"}");
	assert_int_equal(json_array_size(json_object_get(j, "roles")), 1);
	json_decref(j);
	REFUSED(401, "unauthenticated", "GET", "/v1/whoami", laptop, NULL, "release", "alice",
	        "no longer holds");
	whoami(desk, "alice", "alice-desk");
	assert_int_equal(Q("SELECT count(*) FROM audit_log WHERE action = 'user.update' AND "
	                   "reason = 'moved to the SOC' AND after->'roles' = '[\"soc\"]'"),
	                 1);
	free(laptop);
	free(desk);
}

/* Each manual action that needs two approvers, tried by one person with two
 * tokens (stays at one approval) and completed by a second person. */
static void test_two_person_rule_counts_people(void **state)
{
	(void)state;
	fbt_env_up(&E, NULL);
	/* rel-one's second release token: the same person */
	char *rel1b = issue("{\"user\":\"rel-one\",\"role\":\"release\",\"name\":\"rel-one-2\"}");
	char v1[65], v2[65];
	fbt_rollout_upload(&E, 1, v1);
	fbt_rollout_upload(&E, 2, v2);
	static const char *why = "{\"reason\":\"checked\"}";
	static const char *force = "{\"reason\":\"checked\",\"force\":true}";

	/* forcing a promotion */
	int64_t id = fbt_rollout_start(&E, v1, "");
	json_t *j = fbt_rollout_action(&E, 202, id, "promote", E.rel1, force);
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	json_decref(j);
	j = fbt_rollout_action(&E, 202, id, "promote", rel1b, force);
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	assert_non_null(strstr(fbt_jstr(j, "message"), "different person"));
	json_decref(j);
	fbt_rollout_expect(&E, id, "rolling", 0);
	json_decref(fbt_rollout_action(&E, 200, id, "promote", E.rel2, force));
	fbt_rollout_expect(&E, id, "rolling", 1);

	/* resuming a halted rollout (the case of the issue) */
	json_decref(fbt_rollout_action(&E, 200, id, "halt", E.soc, why));
	j = fbt_rollout_action(&E, 202, id, "resume", E.rel1, why);
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	json_decref(j);
	j = fbt_rollout_action(&E, 202, id, "resume", rel1b, why);
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	json_decref(j);
	fbt_rollout_expect(&E, id, "halted", -1);
	json_decref(fbt_rollout_action(&E, 200, id, "resume", E.rel2, why));
	fbt_rollout_expect(&E, id, "rolling", 0);

	/* clearing a bad mark */
	json_decref(fbt_rollout_action(&E, 200, id, "halt", E.soc, why));
	char path[160];
	snprintf(path, sizeof path, "/v1/content/%s/clear-bad", v1);
	j = fbt_env_want(&E, 202, "POST", path, E.rel1, why);
	json_decref(j);
	j = fbt_env_want(&E, 202, "POST", path, rel1b, why);
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	json_decref(j);
	assert_int_equal(Q("SELECT count(*) FROM content WHERE sha256 = '%s' AND bad", v1), 1);
	fbt_env_expect(&E, 200, "POST", path, E.rel2, why);
	assert_int_equal(Q("SELECT count(*) FROM content WHERE sha256 = '%s' AND bad", v1), 0);

	/* starting an emergency rollout: the creator's second token is no second
	 * approver */
	char body[512];
	snprintf(body, sizeof body,
	         "{\"channel\":%d,\"content\":\"%s\",\"emergency\":true,\"reason\":\"CF-291 "
	         "fix\"}",
	         FBT_CH, v2);
	j = fbt_env_want(&E, 201, "POST", "/v1/rollouts", E.rel1, body);
	int64_t em = json_integer_value(json_object_get(j, "id"));
	assert_string_equal(fbt_jstr(j, "state"), "staged");
	json_decref(j);
	j = fbt_rollout_action(&E, 202, em, "approve", rel1b, why);
	assert_int_equal(json_integer_value(json_object_get(j, "approvals")), 1);
	json_decref(j);
	fbt_rollout_expect(&E, em, "staged", -1);
	json_decref(fbt_rollout_action(&E, 200, em, "approve", E.rel2, why));
	fbt_rollout_expect(&E, em, "rolling", 0);

	/* every approval names its user and token; one person never twice */
	assert_int_equal(Q("SELECT count(*) FROM approvals WHERE approver_user IS NULL OR approver "
	                   "IS NULL"),
	                 0);
	assert_int_equal(Q("SELECT count(*) FROM (SELECT 1 FROM approvals GROUP BY rollout_id, "
	                   "content_sha256, action, approver_user, consumed HAVING count(*) > 1) "
	                   "x"),
	                 0);
	assert_int_equal(Q("SELECT count(*) FROM approvals a JOIN users u ON u.id = "
	                   "a.approver_user WHERE u.name = 'rel-one'"),
	                 4);
	assert_int_equal(Q("SELECT count(*) FROM audit_log a JOIN users u ON u.id = a.user_id "
	                   "WHERE u.name = 'rel-one' AND a.action = 'approval' AND a.token_id = "
	                   "(SELECT id FROM api_tokens WHERE name = 'rel-one-2')"),
	                 4);
	/* the audit read names user, token and how */
	j = fbt_env_want(&E, 200, "GET", "/v1/audit?action=rollout.approve", E.soc, NULL);
	json_t *a = json_array_get(json_object_get(j, "audit"), 0);
	assert_string_equal(fbt_jstr(a, "user"), "rel-two");
	assert_string_equal(fbt_jstr(a, "via"), "token");
	assert_true(json_integer_value(json_object_get(a, "token_id")) > 0);
	json_decref(j);
	j = fbt_env_want(&E, 200, "GET", "/v1/audit?user=rel-one", E.soc, NULL);
	size_t i;
	json_array_foreach(json_object_get(j, "audit"), i, a)
	        assert_string_equal(fbt_jstr(a, "user"), "rel-one");
	assert_true(json_array_size(json_object_get(j, "audit")) >= 4);
	json_decref(j);
	free(rel1b);
}

/* ---- migration 0008 on a database from before users ---------------------- */

#define OPS_REL                                                                                    \
	"fb_"                                                                                      \
	"1111111111111111111111111111111111111111111111111111111111111111"
#define OPS_ADMIN                                                                                  \
	"fb_"                                                                                      \
	"2222222222222222222222222222222222222222222222222222222222222222"
#define OPS_SOC                                                                                    \
	"fb_"                                                                                      \
	"3333333333333333333333333333333333333333333333333333333333333333"
#define CI_REL                                                                                     \
	"fb_"                                                                                      \
	"4444444444444444444444444444444444444444444444444444444444444444"

static void test_migration_from_tokens(void **state)
{
	(void)state;
	/* the schema as it was at 0007, applied the way firebreakd migrate does */
	char *db = fbt_db_at_migration("fbt_users", 7);
	assert_non_null(db);
	/* one operator with two live tokens and a revoked one, and a CI token;
	 * an outstanding resume approved by both of ops's tokens */
	assert_int_equal(fbt_db_exec(db,
	                             "INSERT INTO api_tokens (name, role, token_hash, revoked_at) "
	                             "VALUES ('ops', 'release', sha256('" OPS_REL "'), NULL), "
	                             "('ops', 'admin', sha256('" OPS_ADMIN "'), NULL), "
	                             "('ops', 'soc', sha256('" OPS_SOC "'), now()), "
	                             "('ci', 'release', sha256('" CI_REL "'), NULL);"
	                             "INSERT INTO approvals (action, approver, reason) SELECT "
	                             "'resume', id, 'x' FROM api_tokens WHERE name = 'ops' AND "
	                             "revoked_at IS NULL;"
	                             "INSERT INTO audit_log (actor, token_id, action, object) "
	                             "SELECT 'release:' || name, id, 'approval', 'rollout/1' FROM "
	                             "api_tokens WHERE role = 'release'"),
	                 0);
	char arg[1100];
	snprintf(arg, sizeof arg, "--db=%s", db);
	const char *argv[] = {fbt_bin("firebreakd"), "migrate", arg, NULL};
	char *out, *err;
	assert_int_equal(fbt_run(argv, NULL, &out, &err), 0);
	free(out);
	free(err);
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM users"), 2);
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM users WHERE name = 'ops' AND "
	                                 "roles = '{release,admin}' AND disabled_at IS NULL"),
	                 1);
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM users WHERE name = 'ci' AND roles = "
	                                 "'{release}'"),
	                 1);
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM api_tokens t JOIN users u ON u.id = "
	                                 "t.user_id WHERE u.name = t.name"),
	                 4);
	/* ops's two approvals are now one approver's */
	assert_int_equal(fbt_db_long(db, "SELECT count(DISTINCT approver_user) FROM approvals"), 1);
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM audit_log a JOIN users u ON u.id = "
	                                 "a.user_id WHERE a.actor = 'release:' || u.name"),
	                 2);
	/* the old tokens keep working, as tokens of their user */
	struct fbt_server s;
	assert_int_equal(fbt_server_start(&s, db, NULL), 0);
	struct fbt_resp r;
	fbt_http(&s, "GET", "/v1/whoami", OPS_ADMIN, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	json_t *j = fbt_resp_json(&r);
	assert_string_equal(fbt_jstr(j, "user"), "ops");
	assert_string_equal(fbt_jstr(j, "role"), "admin");
	json_decref(j);
	fbt_resp_free(&r);
	fbt_http(&s, "GET", "/v1/whoami", OPS_SOC, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 401);
	fbt_resp_free(&r);
	fbt_http(&s, "GET", "/v1/users/ops", OPS_ADMIN, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	j = fbt_resp_json(&r);
	assert_int_equal(json_integer_value(json_object_get(j, "active_tokens")), 2);
	json_decref(j);
	fbt_resp_free(&r);
	assert_int_equal(fbt_server_stop(&s, SIGTERM), 0);
	free(db);
}

/* ---- firebreakd token / user from the command line ----------------------- */

static int cli(const char *db, char **out, char **err, const char *const *args)
{
	const char *argv[16];
	char dbarg[1100];
	snprintf(dbarg, sizeof dbarg, "--db=%s", db);
	int n = 0;
	argv[n++] = fbt_bin("firebreakd");
	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n++] = dbarg;
	argv[n] = NULL;
	return fbt_run(argv, NULL, out, err);
}

#define CLI(want, ...)                                                                             \
	do {                                                                                       \
		char *o_, *e_;                                                                     \
		int rc_ = cli(db, &o_, &e_, (const char *const[]){__VA_ARGS__, NULL});             \
		if (rc_ != (want))                                                                 \
			fail_msg("exit %d, expected %d: %s%s", rc_, (want), o_, e_);               \
		free(last_out);                                                                    \
		free(last_err);                                                                    \
		last_out = o_;                                                                     \
		last_err = e_;                                                                     \
	} while (0)

static void test_cli(void **state)
{
	(void)state;
	char *db = fbt_db_new(), *last_out = NULL, *last_err = NULL;
	CLI(0, "user", "create", "--name", "bob", "--role", "release,admin", "--email",
	    "Bob@Example.com");
	assert_true(strtol(last_out, NULL, 10) > 0);
	CLI(1, "user", "create", "--name", "bob", "--role", "soc");
	assert_non_null(strstr(last_err, "'bob' exists"));
	assert_ptr_equal(strchr(last_err, '\n'), last_err + strlen(last_err) - 1); /* one line */
	CLI(1, "user", "create", "--name", "carol", "--role", "root");
	assert_non_null(strstr(last_err, "roles[0]"));
	CLI(0, "token", "create", "--role", "admin", "--name", "bob-cli", "--user", "bob");
	assert_int_equal(strlen(last_out), 68);
	assert_non_null(strstr(last_err, "of user 'bob'"));
	CLI(1, "token", "create", "--role", "soc", "--name", "x", "--user", "bob");
	assert_non_null(strstr(last_err, "does not hold role 'soc'"));
	CLI(1, "token", "create", "--role", "soc", "--name", "x", "--user", "nobody");
	assert_non_null(strstr(last_err, "no user 'nobody'"));
	CLI(0, "token", "list");
	assert_non_null(strstr(last_out, "\tbob-cli\tbob\t"));
	CLI(0, "user", "list");
	assert_non_null(strstr(last_out, "\tbob\tbob@example.com\trelease,admin\n"));
	CLI(1, "user", "disable", "bob");
	assert_non_null(strstr(last_err, "--reason"));
	CLI(0, "user", "disable", "bob", "--reason", "laptop stolen");
	CLI(0, "user", "list");
	assert_non_null(strstr(last_out, "release,admin\tdisabled\n"));
	CLI(1, "token", "create", "--role", "admin", "--name", "y", "--user", "bob");
	assert_non_null(strstr(last_err, "disabled"));
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM audit_log WHERE action = "
	                                 "'user.disable' AND reason = 'laptop stolen' AND actor "
	                                 "LIKE 'cli:uid=%'"),
	                 1);
	CLI(0, "user", "enable", "bob", "--reason", "found it");
	CLI(2, "user", "frobnicate");
	free(last_out);
	free(last_err);
	free(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_users_api_and_refusals, env_down),
	        cmocka_unit_test_teardown(test_tokens_of_a_user_and_disabling, env_down),
	        cmocka_unit_test_teardown(test_two_person_rule_counts_people, env_down),
	        cmocka_unit_test(test_migration_from_tokens),
	        cmocka_unit_test(test_cli),
	};
	return cmocka_run_group_tests_name("users", tests, NULL, NULL);
}
