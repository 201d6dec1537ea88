/* Tenants (issue 18) against the real firebreakd and PostgreSQL: two
 * tenants, acme (A, default early) and bolt (B, default ga), each with an
 * operator holding admin, release and soc tokens, a second host group,
 * agents enrolled with its own enrollment tokens and a content policy of
 * its own, beside the vendor (the default tenant) with an agent, a pin and
 * a paused rollout. Over every route of schema/openapi.json (read, not
 * listed here), B's credentials (its admin, release and soc tokens, and
 * its user through the single-sign-on proxy) with A's identifiers get 404
 * (on a route a tenant may not use, the answer to an unknown path), lists
 * without anything of A's, and change nothing in any table; the positive
 * side (a tenant sees and sets its own, the vendor sees both); and refused
 * input naming the field and storing nothing. Each test has its own
 * database and server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the three above, which it needs */

#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fb.h"
#include "fbt.h"
#include "fbt_env.h"
#include "fbt_rollout.h"
#include "fbt_world.h"

static struct fbt_env E;

/* Single sign-on: the test plays the trusted proxy (test_sso.c). A "token"
 * SSO_PREFIX + e-mail address is that user through the proxy. */
#define PROXY      "127.0.0.2"
#define SSO_SECRET "tenant-test-secret-shared-with-the-proxy-0123456789"
#define SSO_PREFIX "sso:"
static char g_sso_flag[1200];

#define Q(...) fbt_db_longf(E.db, __VA_ARGS__)

enum { R_ADMIN, R_RELEASE, R_SOC, NROLES };
static const char *const ROLE[NROLES] = {"admin", "release", "soc"};

/* A tenant of the test world. Every name it owns starts with its name, so
 * an answer that contains it names something of this tenant's. */
struct tenant {
	const char *name;
	const char *mode;  /* its default_mode */
	char group[32];    /* its second host group, NAME-lab */
	char user[32];     /* its operator, NAME-ops */
	int64_t id;        /* tenant id */
	int64_t groups[2]; /* ids of "default" and group */
	char *tok[NROLES]; /* the operator's tokens */
	int64_t tok_id[NROLES];
	int64_t agent[2]; /* enrolled in "default" and in group */
	char *agent_tok[2];
	int64_t policy; /* a content policy of its own */
};
static struct tenant A = {.name = "acme", .mode = "early"}, B = {.name = "bolt", .mode = "ga"};
static int64_t g_vendor_agent, g_rollout, g_pin;
static char g_ga[65], g_next[65], *g_vendor_tok, *g_upload;

/* ---- the world -------------------------------------------------------------------- */

/* Enroll an agent with etoken; returns its id, *tok its token (caller
 * frees). */
static int64_t enroll(const char *etoken, const char *hostname, char **tok)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	char pk64[64];
	crypto_sign_keypair(pk, sk);
	sodium_memzero(sk, sizeof sk);
	sodium_bin2base64(pk64, sizeof pk64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
	size_t n = strlen(E.caps) + 1024;
	char *body = malloc(n);
	assert_non_null(body);
	snprintf(body, n,
	         "{\"enrollment_token\":\"%s\",\"public_key\":\"%s\",\"hostname\":\"%s\","
	         "\"agent_version\":\"test\",\"capabilities\":%s}",
	         etoken, pk64, hostname, E.caps);
	json_t *j = fbt_env_want(&E, 201, "POST", "/v1/enroll", NULL, body);
	int64_t id = json_integer_value(json_object_get(j, "agent_id"));
	assert_true(id > 0);
	*tok = strdup(fbt_jstr(j, "agent_token"));
	json_decref(j);
	free(body);
	return id;
}

/* An enrollment token made by token with body; caller frees. */
static char *enrollment_token(const char *token, const char *body)
{
	json_t *j = fbt_env_want(&E, 201, "POST", "/v1/enrollment-tokens", token, body);
	char *t = strdup(fbt_jstr(j, "token"));
	json_decref(j);
	assert_true(strlen(t) > 16);
	return t;
}

/* PUT /v1/tenants/{tenant}/policies as token, expecting 200; the policy's id. */
static int64_t policy_put(const char *token, const char *tenant, const char *body)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/tenants/%s/policies", tenant);
	json_t *j = fbt_env_want(&E, 200, "PUT", path, token, body);
	int64_t id = json_integer_value(json_object_get(j, "id"));
	assert_true(id > 0);
	assert_string_equal(fbt_jstr(j, "tenant"), tenant);
	json_decref(j);
	return id;
}

/* The tenant t: made by the vendor's admin, its operator and tokens, its
 * second group (A's made by the vendor, B's by its own admin), and an agent
 * in each group, enrolled with enrollment tokens its own admin made. */
static void tenant_up(struct tenant *t)
{
	char body[1024], path[256];
	snprintf(t->group, sizeof t->group, "%s-lab", t->name);
	snprintf(t->user, sizeof t->user, "%s-ops", t->name);
	snprintf(body, sizeof body,
	         "{\"name\":\"%s\",\"default_mode\":\"%s\",\"reason\":\"customer %s signed\"}",
	         t->name, t->mode, t->name);
	json_t *j = fbt_env_want(&E, 201, "POST", "/v1/tenants", E.admin, body);
	t->id = json_integer_value(json_object_get(j, "id"));
	assert_true(t->id > 1);
	assert_string_equal(fbt_jstr(j, "name"), t->name);
	assert_string_equal(fbt_jstr(j, "default_mode"), t->mode);
	json_t *g0 = json_array_get(json_object_get(j, "groups"), 0);
	assert_string_equal(fbt_jstr(g0, "name"), "default");
	t->groups[0] = json_integer_value(json_object_get(g0, "id"));
	json_decref(j);

	snprintf(body, sizeof body,
	         "{\"name\":\"%s\",\"email\":\"%s@example.com\",\"roles\":[\"release\",\"soc\","
	         "\"admin\"],\"tenant\":\"%s\",\"reason\":\"%s's operator\"}",
	         t->user, t->user, t->name, t->name);
	j = fbt_env_want(&E, 201, "POST", "/v1/users", E.admin, body);
	assert_string_equal(fbt_jstr(j, "tenant"), t->name);
	json_decref(j);
	for (int r = 0; r < NROLES; r++) {
		snprintf(body, sizeof body, "{\"user\":\"%s\",\"role\":\"%s\",\"name\":\"%s-%s\"}",
		         t->user, ROLE[r], t->user, ROLE[r]);
		j = fbt_env_want(&E, 201, "POST", "/v1/tokens", E.admin, body);
		t->tok[r] = strdup(fbt_jstr(j, "token"));
		t->tok_id[r] = json_integer_value(json_object_get(j, "id"));
		json_decref(j);
		assert_true(t->tok_id[r] > 0);
	}

	snprintf(path, sizeof path, "/v1/tenants/%s/groups", t->name);
	snprintf(body, sizeof body, "{\"name\":\"%s\",\"reason\":\"a second site\"}", t->group);
	j = fbt_env_want(&E, 201, "POST", path, t == &A ? E.admin : t->tok[R_ADMIN], body);
	t->groups[1] = json_integer_value(json_object_get(j, "id"));
	assert_true(t->groups[1] > 1);
	assert_string_equal(fbt_jstr(j, "name"), t->group);
	assert_string_equal(fbt_jstr(j, "tenant"), t->name);
	json_decref(j);

	for (int k = 0; k < 2; k++) {
		char host[64];
		snprintf(body, sizeof body, "{\"name\":\"%s-hosts-%d\"%s%s%s}", t->name, k,
		         k ? ",\"group\":\"" : "", k ? t->group : "", k ? "\"" : "");
		char *et = enrollment_token(t->tok[R_ADMIN], body);
		snprintf(host, sizeof host, "%s-host-%d", t->name, k);
		t->agent[k] = enroll(et, host, &t->agent_tok[k]);
		free(et);
		assert_int_equal(
		        Q("SELECT group_id FROM agents WHERE id = %lld", (long long)t->agent[k]),
		        t->groups[k]);
	}
}

static void tenant_free(struct tenant *t)
{
	for (int r = 0; r < NROLES; r++)
		free(t->tok[r]);
	for (int k = 0; k < 2; k++)
		free(t->agent_tok[k]);
	const char *name = t->name, *mode = t->mode;
	memset(t, 0, sizeof *t);
	t->name = name;
	t->mode = mode;
}

/* The world of the file's comment. Ring 0 (canary) is A's agent in A's
 * default group alone: the only host there allowed early content. */
static void world_up(void)
{
	char body[1024];
	char *dir = fbt_tmpdir("tenants-sso");
	snprintf(g_sso_flag, sizeof g_sso_flag, "--sso_secret_file=%s/sso.secret", dir);
	FILE *f = fopen(strchr(g_sso_flag, '=') + 1, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", SSO_SECRET);
	fclose(f);
	free(dir);
	const char *flags[] = {"--sso_proxies=127.0.0.2/32", g_sso_flag, NULL};
	fbt_env_up(&E, flags);
	fbt_rollout_upload(&E, 1, g_ga);
	fbt_rollout_make_ga(&E, g_ga);
	fbt_rollout_upload(&E, 2, g_next);
	char sha3[65];
	g_upload = fbt_world_content(fbt_world_default(), FBT_CH, 3, sha3);
	assert_non_null(g_upload);
	tenant_up(&A);
	tenant_up(&B);
	char *et = enrollment_token(E.admin, "{\"name\":\"vendor-hosts\"}");
	g_vendor_agent = enroll(et, "vendor-host-0", &g_vendor_tok);
	free(et);
	assert_int_equal(
	        Q("SELECT group_id FROM agents WHERE id = %lld", (long long)g_vendor_agent), 1);

	snprintf(
	        body, sizeof body,
	        "{\"rings\":[{\"name\":\"canary\",\"selector\":{\"agents\":[%lld]}},"
	        "{\"name\":\"ga\",\"selector\":{\"rest\":true}}],\"reason\":\"tenant test rings\"}",
	        (long long)A.agent[0]);
	fbt_env_expect(&E, 200, "PUT", "/v1/rings", E.admin, body);
	/* the ring-0 check of a policy change reads the serving snapshot,
	 * which follows the rings within --snapshot_check_ms */
	char path[64];
	snprintf(path, sizeof path, "/v1/agents/%lld", (long long)A.agent[0]);
	for (int64_t end = fb_mono_ms() + FBT_DEADLINE * 1000;;) {
		json_t *a = fbt_env_want(&E, 200, "GET", path, E.soc, NULL);
		int there = strcmp(fbt_jstr(a, "ring"), "canary") == 0;
		json_decref(a);
		if (there)
			break;
		if (fb_mono_ms() > end)
			fail_msg("agent %lld never reached the canary ring", (long long)A.agent[0]);
		usleep(50 * 1000);
	}

	snprintf(body, sizeof body,
	         "{\"group\":\"%s\",\"channel\":%d,\"mode\":\"delayed\",\"delay_s\":7200,"
	         "\"reason\":\"the lab waits two hours\"}",
	         A.group, FBT_CH);
	A.policy = policy_put(A.tok[R_RELEASE], A.name, body);
	snprintf(body, sizeof body, "{\"group\":\"%s\",\"mode\":\"paused\",\"reason\":\"freeze\"}",
	         B.group);
	B.policy = policy_put(B.tok[R_RELEASE], B.name, body);

	json_t *j = fbt_env_want(&E, 201, "POST", "/v1/pins", E.admin,
	                         "{\"tag\":\"site=hq\",\"channel\":291,\"mode\":\"n-1\","
	                         "\"reason\":\"hq lags\"}");
	g_pin = json_integer_value(json_object_get(j, "id"));
	assert_true(g_pin > 0);
	json_decref(j);
	g_rollout = fbt_rollout_start(&E, g_next, "");
	json_decref(fbt_rollout_action(&E, 200, g_rollout, "pause", E.rel1,
	                               "{\"reason\":\"held while the tenants are probed\"}"));
}

static PGconn *g_pg; /* the test's own connection, for snapshots */

static int world_down(void **state)
{
	(void)state;
	PQfinish(g_pg);
	g_pg = NULL;
	fbt_env_down(&E);
	tenant_free(&A);
	tenant_free(&B);
	free(g_vendor_tok);
	free(g_upload);
	g_vendor_tok = g_upload = NULL;
	return 0;
}

/* ---- what is stored ------------------------------------------------------------- */

/* Every table a refused request must leave alone (the content without its
 * blob). */
static const char *const TABLES[][2] = {
        {"tenants", "tenants"},
        {"host_groups", "host_groups"},
        {"content_policies", "content_policies"},
        {"agents", "agents"},
        {"api_tokens", "api_tokens"},
        {"users", "users"},
        {"enrollment_tokens", "enrollment_tokens"},
        {"rollouts", "rollouts"},
        {"approvals", "approvals"},
        {"channels", "channels"},
        {"content", "(SELECT sha256, channel_id, version, bad, bad_reason, bad_at FROM content)"},
        {"pins", "pins"},
        {"rings", "rings"},
        {"policy_bounds", "policy_bounds"},
        {"ga_history", "ga_history"},
        {"publication", "publication"},
        {"events", "events"},
        {"notifications", "notifications"},
        {"audit_log", "audit_log"},
};
#define NTABLES (sizeof TABLES / sizeof TABLES[0])

struct snap {
	char md5[NTABLES][33];
	long audit_max;
};

static void snap_take(struct snap *s)
{
	static char sql[4096];
	if (!sql[0]) {
		size_t len = (size_t)snprintf(sql, sizeof sql, "SELECT ");
		for (size_t i = 0; i < NTABLES; i++)
			len += (size_t)snprintf(
			        sql + len, sizeof sql - len,
			        "(SELECT md5(coalesce(string_agg(t::text, ';' ORDER "
			        "BY t::text), '')) FROM %s t), ",
			        TABLES[i][1]);
		snprintf(sql + len, sizeof sql - len,
		         "(SELECT coalesce(max(id), 0) FROM audit_log)");
		assert_true(len < sizeof sql - 64);
	}
	PGresult *r = PQexec(g_pg, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("snapshot: %s", PQresultErrorMessage(r));
	for (size_t i = 0; i < NTABLES; i++)
		snprintf(s->md5[i], sizeof s->md5[i], "%s", PQgetvalue(r, 0, (int)i));
	s->audit_max = strtol(PQgetvalue(r, 0, (int)NTABLES), NULL, 10);
	PQclear(r);
}

/* The tables that differ between a and b, with the new audit records, as
 * "agents, audit_log [agent.revoke agent/3]" into buf; "" when none. */
static const char *snap_diff(const struct snap *a, const struct snap *b, char *buf, size_t n)
{
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < NTABLES && len + 1 < n; i++)
		if (strcmp(a->md5[i], b->md5[i]))
			len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? ", " : "",
			                        TABLES[i][0]);
	if (b->audit_max != a->audit_max && len + 1 < n) {
		char since[32];
		snprintf(since, sizeof since, "%ld", a->audit_max);
		const char *prm[] = {since};
		PGresult *r =
		        PQexecParams(g_pg,
		                     "SELECT string_agg(action || ' ' || object, ', ' ORDER BY "
		                     "id) FROM audit_log WHERE id > $1::bigint",
		                     1, NULL, prm, NULL, NULL, 0);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
			snprintf(buf + len, n - len, " [%s]", PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	return buf;
}

/* ---- requests and findings --------------------------------------------------------- */

struct answer {
	long status;
	int transport; /* no complete answer (e.g. a stream held open) */
	json_t *j;     /* the body parsed, or NULL */
	char *raw;     /* the body text */
};

static void ask(const char *method, const char *path, const char *token, const char *body,
                struct answer *a)
{
	struct fbt_resp r;
	memset(a, 0, sizeof *a);
	if (token && strncmp(token, SSO_PREFIX, strlen(SSO_PREFIX)) == 0) {
		char email[160];
		snprintf(email, sizeof email, "X-Forwarded-Email: %s", token + strlen(SSO_PREFIX));
		const char *h[] = {"X-Firebreak-Proxy-Secret: " SSO_SECRET, email,
		                   "X-Requested-With: fetch", NULL};
		a->transport = fbt_http_from(E.cur, PROXY, method, path, NULL, body,
		                             body ? strlen(body) : 0, h, &r) != 0;
	} else
		a->transport = fbt_http(E.cur, method, path, token, body, body ? strlen(body) : 0,
		                        NULL, &r) != 0;
	a->status = r.status;
	a->j = fbt_resp_json(&r);
	a->raw = strdup(r.body ? r.body : "");
	fbt_resp_free(&r);
}

static void answer_free(struct answer *a)
{
	json_decref(a->j);
	free(a->raw);
	memset(a, 0, sizeof *a);
}

static const char *err_code(const struct answer *a)
{
	const char *c = json_string_value(json_object_get(json_object_get(a->j, "error"), "code"));
	return c ? c : "";
}

static const char *err_msg(const struct answer *a)
{
	const char *m =
	        json_string_value(json_object_get(json_object_get(a->j, "error"), "message"));
	return m ? m : "";
}

/* A JSON error body: {"error":{"code":"...","message":"..."}}. */
static int is_error(const struct answer *a)
{
	return *err_code(a) &&
	       json_is_string(json_object_get(json_object_get(a->j, "error"), "message"));
}

static char *g_find; /* the findings, one per line */
static size_t g_find_len;
static int g_nfind, g_nreq;

static void finding(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void finding(const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	size_t n = strlen(line);
	char *p = realloc(g_find, g_find_len + n + 2);
	assert_non_null(p);
	g_find = p;
	memcpy(g_find + g_find_len, line, n);
	g_find_len += n;
	g_find[g_find_len++] = '\n';
	g_find[g_find_len] = '\0';
	g_nfind++;
}

/* Why the 200 answer a shows something of A's, into buf; NULL when it does
 * not: A's name in the text (every name of A's starts with it), or one of
 * A's agent, group or policy ids in a list of agents, groups or policies. */
static const char *leak_in(const json_t *j, const char *key, char *buf, size_t n)
{
	size_t i;
	const char *k;
	json_t *v;
	if (json_is_array(j)) {
		json_array_foreach(j, i, v)
		{
			int64_t id = json_integer_value(json_object_get(v, "id"));
			if (key && json_is_object(v) && json_is_integer(json_object_get(v, "id"))) {
				int hit = 0;
				if (strcmp(key, "agents") == 0)
					hit = id == A.agent[0] || id == A.agent[1];
				else if (strcmp(key, "groups") == 0)
					hit = id == A.groups[0] || id == A.groups[1];
				else if (strcmp(key, "policies") == 0)
					hit = id == A.policy;
				else if (strcmp(key, "tenants") == 0)
					hit = id == A.id;
				if (hit) {
					snprintf(buf, n, "A's %s id %lld is listed", key,
					         (long long)id);
					return buf;
				}
			}
			if (leak_in(v, NULL, buf, n))
				return buf;
		}
	} else if (json_is_object(j)) {
		json_object_foreach((json_t *)j, k, v)
		{
			if (leak_in(v, k, buf, n))
				return buf;
		}
	}
	return NULL;
}

static const char *leak(const struct answer *a, char *buf, size_t n)
{
	if (strstr(a->raw, A.name)) {
		const char *at = strstr(a->raw, A.name);
		size_t off = (size_t)(at - a->raw);
		snprintf(buf, n, "names A (...%.60s...)", a->raw + (off > 30 ? off - 30 : 0));
		return buf;
	}
	return leak_in(a->j, NULL, buf, n);
}

/* ---- the routes ------------------------------------------------------------------ */

static json_t *load_openapi(void)
{
	char path[1100];
	snprintf(path, sizeof path, "%s/schema/openapi.json",
	         getenv("FB_SRC") ? getenv("FB_SRC") : ".");
	json_error_t e;
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
	if (!doc)
		fail_msg("%s: line %d: %s", path, e.line, e.text);
	return doc;
}

/* The identifier of A's (or of what exists: the rollout, the content) that
 * stands for {param} in the route path tmpl; tenant: what stands for
 * {tenant}. Written into buf. A route with a parameter not known here fails
 * the test: add what it names. */
static int g_unknown_ids; /* ident(): identifiers that name nothing instead */

static const char *ident(const char *tmpl, const char *param, const char *tenant, char *buf,
                         size_t n)
{
	int64_t id = 0;
	if (g_unknown_ids) {
		snprintf(
		        buf, n, "%s",
		        strcmp(param, "tenant") == 0 ? "no-such-tenant"
		        : strcmp(param, "user") == 0 ? "no-such-user"
		        : strcmp(param, "sha256") == 0
		                ? "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
		                : "999999");
		return buf;
	}
	if (strcmp(param, "tenant") == 0)
		snprintf(buf, n, "%s", tenant);
	else if (strcmp(param, "user") == 0)
		snprintf(buf, n, "%s", A.user);
	else if (strcmp(param, "sha256") == 0)
		snprintf(buf, n, "%s", g_next);
	else if (strcmp(param, "version") == 0)
		snprintf(buf, n, "1");
	else if (strcmp(param, "file") == 0)
		snprintf(buf, n, "app.js");
	else if (strcmp(param, "id") == 0) {
		if (strncmp(tmpl, "/v1/agents/", 11) == 0)
			id = A.agent[0];
		else if (strncmp(tmpl, "/v1/tokens/", 11) == 0)
			id = A.tok_id[R_ADMIN];
		else if (strncmp(tmpl, "/v1/rollouts/", 13) == 0)
			id = g_rollout;
		else if (strncmp(tmpl, "/v1/pins/", 9) == 0)
			id = g_pin;
		else if (strstr(tmpl, "/policies/{id}"))
			id = A.policy;
		if (!id)
			fail_msg("%s: no identifier known for {id}: add one to ident()", tmpl);
		snprintf(buf, n, "%lld", (long long)id);
	} else
		fail_msg("%s: no identifier known for {%s}: add one to ident()", tmpl, param);
	return buf;
}

/* tmpl with every {param} replaced (ident()), into out. */
static void fill_path(const char *tmpl, const char *tenant, char *out, size_t n)
{
	size_t len = 0;
	for (const char *p = tmpl; *p && len + 1 < n;) {
		if (*p != '{') {
			out[len++] = *p++;
			continue;
		}
		const char *end = strchr(p, '}');
		assert_non_null(end);
		char param[64], v[128];
		snprintf(param, sizeof param, "%.*s", (int)(end - p - 1), p + 1);
		len += (size_t)snprintf(out + len, n - len, "%s",
		                        ident(tmpl, param, tenant, v, sizeof v));
		p = end + 1;
	}
	out[len < n ? len : n - 1] = '\0';
}

/* Plausible bodies: what the route's own callers send, with A's identifiers
 * as placeholders: %T a tenant, %I its id, %G a group, %H its id, %U a
 * user, %A an agent id, %S content, %C a whole upload. A route may have several; one not here sends
 * {"reason": ...} (DELETE: no body). */
static const char *const BODIES[][2] = {
        {"POST /v1/tokens", "{\"user\":\"%U\",\"role\":\"admin\",\"name\":\"stolen\"}"},
        {"POST /v1/users", "{\"name\":\"intruder\",\"roles\":[\"admin\"],\"tenant\":\"%T\"}"},
        {"PATCH /v1/users/{user}", "{\"roles\":[\"soc\"],\"reason\":\"isolation probe\"}"},
        {"POST /v1/enrollment-tokens", "{\"name\":\"intruder\",\"tenant\":\"%T\"}"},
        {"POST /v1/enrollment-tokens", "{\"name\":\"intruder\",\"group\":\"%G\"}"},
        {"POST /v1/enrollment-tokens", "{\"name\":\"intruder\",\"tenant\":\"%I\"}"},
        {"POST /v1/enrollment-tokens", "{\"name\":\"intruder\",\"tenant\":%I,\"group\":%H}"},
        {"POST /v1/channels", "{\"id\":77,\"name\":\"intruder\"}"},
        {"POST /v1/content", "%C"},
        {"POST /v1/rollouts",
         "{\"channel\":291,\"content\":\"%S\",\"reason\":\"isolation probe\",\"supersede\":true}"},
        {"POST /v1/rollouts/{id}/promote", "{\"reason\":\"isolation probe\",\"force\":true}"},
        {"PUT /v1/rings", "{\"rings\":[{\"name\":\"ga\",\"selector\":{\"rest\":true}}],"
                          "\"reason\":\"isolation probe\"}"},
        {"POST /v1/pins",
         "{\"tag\":\"site=%T\",\"channel\":291,\"mode\":\"n-1\",\"reason\":\"isolation probe\"}"},
        {"PUT /v1/policy-bounds",
         "{\"bounds\":{\"min_bake_s\":{\"min\":1}},\"reason\":\"isolation probe\"}"},
        {"POST /v1/tenants", "{\"name\":\"intruder\",\"default_mode\":\"early\"}"},
        {"POST /v1/tenants/{tenant}/groups", "{\"name\":\"intruder\"}"},
        {"PUT /v1/tenants/{tenant}/policies",
         "{\"mode\":\"paused\",\"reason\":\"isolation probe\"}"},
        {"PUT /v1/tenants/{tenant}/policies",
         "{\"group\":\"%G\",\"mode\":\"ga\",\"reason\":\"isolation probe\"}"},
        /* the agent protocol: B's agent speaking for A's */
        {"POST /v1/heartbeat", "{\"agent_id\":%A,\"boot_id\":\"b1\",\"uptime_s\":5,"
                               "\"agent_version\":\"test\",\"active\":{}}"},
        {"POST /v1/events", "{\"agent_id\":%A,\"events\":[{\"id\":\"probe-1\",\"kind\":\"crash\","
                            "\"at\":1700000000,\"channel\":291,\"content\":\"%S\",\"boot_id\":"
                            "\"b1\",\"code\":\"0xC0000005\",\"module\":\"x.sys\"}]}"},
};
#define NBODIES (sizeof BODIES / sizeof BODIES[0])

/* tmpl with its placeholders replaced by A's identifiers (unknown: by
 * identifiers that exist nowhere); caller frees. */
static char *fill_body(const char *tmpl, int unknown)
{
	size_t cap = strlen(tmpl) + (g_upload ? strlen(g_upload) : 0) + 256;
	char *out = malloc(cap);
	assert_non_null(out);
	size_t len = 0;
	for (const char *p = tmpl; *p;) {
		if (*p != '%' || !p[1]) {
			out[len++] = *p++;
			continue;
		}
		char v[96];
		const char *s = v;
		switch (p[1]) {
		case 'T': s = unknown ? "no-such-tenant" : A.name; break;
		case 'G': s = unknown ? "no-such-group" : A.group; break;
		case 'U': s = unknown ? "no-such-user" : A.user; break;
		case 'S': s = g_next; break;
		case 'C': s = g_upload; break;
		case 'A':
			snprintf(v, sizeof v, "%lld", unknown ? 999999LL : (long long)A.agent[0]);
			break;
		case 'I':
			snprintf(v, sizeof v, "%lld", unknown ? 999999LL : (long long)A.id);
			break;
		case 'H':
			snprintf(v, sizeof v, "%lld", unknown ? 999999LL : (long long)A.groups[1]);
			break;
		default: fail_msg("body %s: unknown placeholder %%%c", tmpl, p[1]);
		}
		len += (size_t)snprintf(out + len, cap - len, "%s", s);
		p += 2;
	}
	out[len] = '\0';
	return out;
}

static int has_placeholder(const char *tmpl)
{
	for (const char *c = "TGUAIH"; *c; c++) {
		char ph[3] = {'%', *c, '\0'};
		if (strstr(tmpl, ph))
			return 1;
	}
	return 0;
}

/* The bodies of METHOD tmpl into out (at most 6); their number. */
static int bodies_of(const char *method, const char *tmpl, const char **out)
{
	char key[256];
	int n = 0;
	snprintf(key, sizeof key, "%s %s", method, tmpl);
	for (size_t i = 0; i < NBODIES && n < 6; i++)
		if (strcmp(BODIES[i][0], key) == 0)
			out[n++] = BODIES[i][1];
	if (n == 0)
		out[n++] =
		        strcmp(method, "DELETE") == 0 ? NULL : "{\"reason\":\"isolation probe\"}";
	return n;
}

/* One probe: method path as who (a label) with token and body; checks that
 * nothing stored changed and returns the answer (caller frees) for the
 * caller's own check of it. */
static void probe(const char *who, const char *method, const char *path, const char *token,
                  const char *body, int settle_ms, struct answer *a)
{
	struct snap before, after;
	char diff[1024];
	snap_take(&before);
	ask(method, path, token, body, a);
	g_nreq++;
	if (settle_ms)
		usleep((useconds_t)settle_ms * 1000); /* what is written after the answer */
	snap_take(&after);
	if (*snap_diff(&before, &after, diff, sizeof diff))
		finding("%s %s as %s: %ld, and it CHANGED %s: %.300s", method, path, who, a->status,
		        diff, a->raw);
	if (a->transport)
		finding("%s %s as %s: no complete answer in 30 s (status %ld, a stream held "
		        "open?): %.300s",
		        method, path, who, a->status, a->raw);
}

/* The answer to an unknown path, which every route a tenant may not use
 * gives it: 404 not_found "no route for PATH". */
static void want_no_route(const char *who, const char *method, const char *path,
                          const struct answer *a)
{
	char msg[1200], bare[1024];
	snprintf(bare, sizeof bare, "%.*s", (int)strcspn(path, "?"), path);
	snprintf(msg, sizeof msg, "no route for %s", bare);
	if (a->status != 404 || strcmp(err_code(a), "not_found") || strcmp(err_msg(a), msg))
		finding("%s %s as %s: %ld, expected 404 not_found \"%s\" as for an unknown path: "
		        "%.300s",
		        method, path, who, a->status, msg, a->raw);
}

/* 404 with a JSON error, as for identifiers that name nothing. When it is
 * not, the finding says what the same request with such identifiers (tmpl
 * filled with them, the same body) gets, which tells a contract deviation
 * from existence leaking. */
static void want_404(const char *who, const char *method, const char *path, const char *tmpl,
                     const char *token, const char *body, const struct answer *a)
{
	if (a->status == 404 && is_error(a))
		return;
	char upath[1024];
	struct answer u;
	g_unknown_ids = 1;
	fill_path(tmpl, NULL, upath, sizeof upath);
	g_unknown_ids = 0;
	probe(who, method, upath, token, body, 0, &u);
	int same = u.status == a->status && strcmp(err_code(&u), err_code(a)) == 0;
	finding("%s %s as %s: %ld, expected 404 with a JSON error (%s %s gets %ld %s: %s): "
	        "%.300s",
	        method, path, who, a->status, method, upath, u.status, err_code(&u),
	        same ? "the same, existence does not leak" : "EXISTENCE LEAKS", a->raw);
	answer_free(&u);
}

/* A read of a tenant's own scope: 200 showing nothing of A's, or 404. */
static void want_own_read(const char *who, const char *method, const char *path,
                          const struct answer *a)
{
	char why[256];
	if (a->status == 404 && is_error(a))
		return;
	if (a->status != 200)
		finding("%s %s as %s: %ld, expected 200 (its own) or 404: %.300s", method, path,
		        who, a->status, a->raw);
	else if (leak(a, why, sizeof why))
		finding("%s %s as %s: 200 LEAKS: %s", method, path, who, why);
}

/* A write naming A's identifiers in its body must answer as if they named
 * nothing that exists: same status and error code, and never success. */
static void want_as_unknown(const char *who, const char *method, const char *path, const char *tmpl,
                            const char *token, const struct answer *a)
{
	char *ub = fill_body(tmpl, 1);
	struct answer u;
	probe(who, method, path, token, ub, 0, &u);
	if (a->status / 100 == 2)
		finding("%s %s as %s with A's %s: ACCEPTED %ld: %.300s", method, path, who, tmpl,
		        a->status, a->raw);
	else if (a->status != u.status || strcmp(err_code(a), err_code(&u)))
		finding("%s %s as %s: A's identifiers in %s get %ld %s, unknown ones %ld %s: "
		        "existence leaks",
		        method, path, who, tmpl, a->status, err_code(a), u.status, err_code(&u));
	else if (!is_error(a))
		finding("%s %s as %s: %ld without a JSON error: %.300s", method, path, who,
		        a->status, a->raw);
	answer_free(&u);
	free(ub);
}

static int roles_are(const json_t *roles, const char *only)
{
	return json_array_size(roles) == 1 &&
	       strcmp(json_string_value(json_array_get(roles, 0)), only) == 0;
}

/* Every probe of one operation (method tmpl, described by op) with one of
 * B's credentials (token, called who). */
static void probe_operation(const char *method, const char *tmpl, const json_t *op,
                            const char *token, const char *who)
{
	const char *bodies[6];
	char path[1024], upper[16];
	snprintf(upper, sizeof upper, "%s", method);
	for (char *c = upper; *c; c++)
		if (*c >= 'a' && *c <= 'z')
			*c = (char)(*c - 'a' + 'A');
	method = upper;
	int nb = bodies_of(method, tmpl, bodies);
	int own = json_is_string(json_object_get(op, "x-tenant"));
	int params = strchr(tmpl, '{') != NULL;
	int is_get = strcmp(method, "GET") == 0;
	struct answer a;

	/* A's identifiers wherever the path has them */
	fill_path(tmpl, A.name, path, sizeof path);
	for (int k = 0; k < nb; k++) {
		char *body = bodies[k] && !is_get ? fill_body(bodies[k], 0) : NULL;
		probe(who, method, path, token, body, 0, &a);
		if (!own)
			want_no_route(who, method, path, &a);
		else if (params)
			want_404(who, method, path, tmpl, token, body, &a);
		else if (is_get)
			want_own_read(who, method, path, &a);
		else if (bodies[k] && has_placeholder(bodies[k]))
			want_as_unknown(who, method, path, bodies[k], token, &a);
		answer_free(&a);
		free(body);
		if (is_get)
			break;
	}
	if (!own)
		return;
	if (strstr(tmpl, "{tenant}")) {
		/* A by its id */
		char aid[32];
		snprintf(aid, sizeof aid, "%lld", (long long)A.id);
		fill_path(tmpl, aid, path, sizeof path);
		for (int k = 0; k < nb; k++) {
			char *body = bodies[k] && !is_get ? fill_body(bodies[k], 0) : NULL;
			probe(who, method, path, token, body, 0, &a);
			want_404(who, method, path, tmpl, token, body, &a);
			answer_free(&a);
			free(body);
			if (is_get)
				break;
		}
		/* its own tenant, with A's other identifiers or A's in the body */
		fill_path(tmpl, B.name, path, sizeof path);
		if (strchr(strstr(tmpl, "{tenant}") + 1, '{')) {
			probe(who, method, path, token, NULL, 0, &a);
			want_404(who, method, path, tmpl, token, NULL, &a);
			answer_free(&a);
		} else if (is_get) {
			probe(who, method, path, token, NULL, 0, &a);
			want_own_read(who, method, path, &a);
			answer_free(&a);
		} else {
			for (int k = 0; k < nb; k++) {
				if (!bodies[k] || !has_placeholder(bodies[k]))
					continue;
				char *body = fill_body(bodies[k], 0);
				probe(who, method, path, token, body, 0, &a);
				want_as_unknown(who, method, path, bodies[k], token, &a);
				answer_free(&a);
				free(body);
			}
		}
	} else if (is_get && !params) {
		/* a list filtered by A's names */
		snprintf(path, sizeof path, "%s?tenant=%s&group=%s", tmpl, A.name, A.group);
		probe(who, method, path, token, NULL, 0, &a);
		want_own_read(who, method, path, &a);
		answer_free(&a);
	}
}

/* The agent protocol, exempt from the 404 rule (its credential is an
 * agent's, which belongs to no user): B's agent speaking for A's agent, and
 * B's operator tokens on it, are refused (4xx) and change nothing. */
static void probe_agent_route(const char *method, const char *tmpl)
{
	const char *bodies[6];
	char upper[16];
	snprintf(upper, sizeof upper, "%s", method);
	for (char *c = upper; *c; c++)
		if (*c >= 'a' && *c <= 'z')
			*c = (char)(*c - 'a' + 'A');
	if (strcmp(upper, "POST"))
		return; /* a poll names nothing of anyone else's */
	int nb = bodies_of(upper, tmpl, bodies);
	for (int k = 0; k < nb; k++) {
		char *body = bodies[k] ? fill_body(bodies[k], 0) : NULL;
		const char *tokens[] = {B.agent_tok[0], B.tok[R_ADMIN]};
		const char *whos[] = {"B's agent", "B's admin"};
		for (int t = 0; t < 2; t++) {
			struct answer a;
			/* heartbeats are written by the flusher (200 ms here) */
			probe(whos[t], upper, tmpl, tokens[t], body, 700, &a);
			if (a.status < 400 || a.status > 499)
				finding("%s %s as %s for A's agent: %ld, expected a refusal: "
				        "%.300s",
				        upper, tmpl, whos[t], a.status, a.raw);
			answer_free(&a);
		}
		free(body);
	}
}

/* ---- the tests ------------------------------------------------------------------- */

static void test_isolation_over_every_route(void **state)
{
	(void)state;
	world_up();
	g_pg = PQconnectdb(E.db);
	assert_int_equal(PQstatus(g_pg), CONNECTION_OK);
	g_find = NULL;
	g_find_len = 0;
	g_nfind = g_nreq = 0;

	/* what is stored holds still on its own (the rollout is paused, no
	 * agent heartbeats), so a change after a probe is the probe's */
	struct snap s1, s2;
	char diff[1024];
	snap_take(&s1);
	usleep(1500 * 1000);
	snap_take(&s2);
	if (*snap_diff(&s1, &s2, diff, sizeof diff))
		fail_msg("the stored state changes without any request: %s", diff);

	/* B's user through the single-sign-on proxy is B's too */
	char sso_b[128];
	snprintf(sso_b, sizeof sso_b, SSO_PREFIX "%s@example.com", B.user);
	struct answer w;
	ask("GET", "/v1/whoami", sso_b, NULL, &w);
	if (w.status != 200 || strcmp(fbt_jstr(w.j, "via"), "proxy") ||
	    strcmp(fbt_jstr(w.j, "tenant"), B.name))
		fail_msg("B's user through the proxy: %ld %s", w.status, w.raw);
	answer_free(&w);

	json_t *doc = load_openapi(), *paths = json_object_get(doc, "paths");
	const char *tmpl, *method;
	json_t *ops, *op;
	int nops = 0, npublic = 0, nagent = 0, nown = 0;
	char exempt[2048] = "";
	size_t elen = 0;
	json_object_foreach(paths, tmpl, ops)
	{
		json_object_foreach(ops, method, op)
		{
			const json_t *roles = json_object_get(op, "x-roles");
			nops++;
			/* Exempt: public routes (no credential: nothing of a tenant's
			 * to guard, GET /metrics checked below) and the agent
			 * protocol (an agent's credential, probed on its own). */
			if (roles_are(roles, "public") || roles_are(roles, "agent")) {
				int pub = roles_are(roles, "public");
				pub ? npublic++ : nagent++;
				elen += (size_t)snprintf(exempt + elen, sizeof exempt - elen,
				                         "%s%s %s (%s)", elen ? ", " : "", method,
				                         tmpl, pub ? "public" : "agent");
				if (!pub)
					probe_agent_route(method, tmpl);
				continue;
			}
			nown += json_is_string(json_object_get(op, "x-tenant"));
			for (int r = 0; r < NROLES; r++) {
				char who[64];
				snprintf(who, sizeof who, "B's %s token", ROLE[r]);
				probe_operation(method, tmpl, op, B.tok[r], who);
			}
			probe_operation(method, tmpl, op, sso_b, "B's user through SSO");
		}
	}
	/* the file describes the tenant routes, and the contract's list of what
	 * a tenant may use (shared-notes/tenant-api.md) is what x-tenant marks
	 * (test_openapi ties x-tenant to the server's ROUTE_TENANT): widening
	 * what a tenant may use is a decision to take here, on purpose */
	assert_true(nops > 50);
	if (nown != 11)
		fail_msg("%d routes are open to tenants (x-tenant), the contract names 11: "
		         "check the new one's isolation, then change this number",
		         nown);

	/* public, but a tenant's names in it would reach anyone */
	struct answer m;
	ask("GET", "/metrics", NULL, NULL, &m);
	if (strstr(m.raw, A.name) || strstr(m.raw, B.name))
		fprintf(stderr, "note: GET /metrics (public, no credential) names the tenants\n");
	answer_free(&m);

	fprintf(stderr,
	        "isolation: %d operations, %d probes with B's credentials, %d tenant-scoped "
	        "(x-tenant), exempt %d public and %d agent-protocol: %s\n",
	        nops, g_nreq, nown, npublic, nagent, exempt);
	json_decref(doc);
	PQfinish(g_pg);
	g_pg = NULL;
	if (g_nfind) {
		fprintf(stderr, "%d isolation failures:\n%s", g_nfind, g_find);
		free(g_find);
		g_find = NULL;
		fail_msg("%d isolation failures (listed above)", g_nfind);
	}
	free(g_find);
	g_find = NULL;
}

/* The ids of the agents GET path lists as token, in *ids (at most 16); their
 * number. Checks each one's tenant and group against the world. */
static int agents_seen(const char *path, const char *token, int64_t ids[16])
{
	json_t *j = fbt_env_want(&E, 200, "GET", path, token, NULL);
	size_t i;
	json_t *a;
	int n = 0;
	json_array_foreach(json_object_get(j, "agents"), i, a)
	{
		int64_t id = json_integer_value(json_object_get(a, "id"));
		const char *tn = fbt_jstr(a, "tenant"), *gn = fbt_jstr(a, "group");
		const struct tenant *t = id == A.agent[0] || id == A.agent[1]   ? &A
		                         : id == B.agent[0] || id == B.agent[1] ? &B
		                                                                : NULL;
		if (t) {
			int k = id == t->agent[1];
			if (strcmp(tn, t->name) || strcmp(gn, k ? t->group : "default"))
				fail_msg("%s: agent %lld is %s/%s, expected %s/%s", path,
				         (long long)id, tn, gn, t->name, k ? t->group : "default");
		} else if (strcmp(tn, "default") || strcmp(gn, "default"))
			fail_msg("%s: agent %lld is %s/%s, expected default/default", path,
			         (long long)id, tn, gn);
		if (n < 16)
			ids[n++] = id;
	}
	json_decref(j);
	return n;
}

static int has_id(const int64_t *ids, int n, int64_t id)
{
	for (int i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

static void test_own_scope(void **state)
{
	(void)state;
	world_up();
	int64_t ids[16];
	char path[256], body[512];

	/* who: a tenant's credential says which tenant; the vendor's none */
	json_t *j = fbt_env_want(&E, 200, "GET", "/v1/whoami", A.tok[R_SOC], NULL);
	assert_string_equal(fbt_jstr(j, "tenant"), A.name);
	assert_string_equal(fbt_jstr(j, "user"), A.user);
	json_decref(j);
	j = fbt_env_want(&E, 200, "GET", "/v1/whoami", E.admin, NULL);
	assert_true(json_is_null(json_object_get(j, "tenant")));
	json_decref(j);

	/* each tenant sees its own agents, and only those */
	for (int r = 0; r < NROLES; r++) {
		int n = agents_seen("/v1/agents", A.tok[r], ids);
		assert_int_equal(n, 2);
		assert_true(has_id(ids, n, A.agent[0]) && has_id(ids, n, A.agent[1]));
		n = agents_seen("/v1/agents", B.tok[r], ids);
		assert_int_equal(n, 2);
		assert_true(has_id(ids, n, B.agent[0]) && has_id(ids, n, B.agent[1]));
	}
	snprintf(path, sizeof path, "/v1/agents/%lld", (long long)A.agent[1]);
	j = fbt_env_want(&E, 200, "GET", path, A.tok[R_SOC], NULL);
	assert_string_equal(fbt_jstr(j, "tenant"), A.name);
	assert_string_equal(fbt_jstr(j, "group"), A.group);
	json_decref(j);
	fbt_env_expect_code(&E, 404, "not_found", "GET", path, B.tok[R_ADMIN], NULL);

	/* the vendor sees every agent, and filters by tenant and group */
	int n = agents_seen("/v1/agents", E.soc, ids);
	assert_int_equal(n, 5);
	assert_true(has_id(ids, n, g_vendor_agent));
	snprintf(path, sizeof path, "/v1/agents?tenant=%s", A.name);
	n = agents_seen(path, E.soc, ids);
	assert_int_equal(n, 2);
	assert_true(has_id(ids, n, A.agent[0]) && has_id(ids, n, A.agent[1]));
	snprintf(path, sizeof path, "/v1/agents?tenant=%s&group=%s", B.name, B.group);
	n = agents_seen(path, E.admin, ids);
	assert_int_equal(n, 1);
	assert_true(ids[0] == B.agent[1]);

	/* tenants: the vendor lists them all with their agents */
	j = fbt_env_want(&E, 200, "GET", "/v1/tenants", E.soc, NULL);
	size_t i;
	json_t *t;
	int seen = 0;
	json_array_foreach(json_object_get(j, "tenants"), i, t)
	{
		const char *name = fbt_jstr(t, "name");
		int64_t agents = json_integer_value(json_object_get(t, "agents"));
		if (strcmp(name, A.name) == 0 || strcmp(name, B.name) == 0) {
			assert_int_equal(agents, 2);
			assert_int_equal(json_integer_value(json_object_get(t, "groups")), 2);
			seen++;
		} else if (strcmp(name, "default") == 0) {
			assert_int_equal(agents, 1);
			seen++;
		}
	}
	assert_int_equal(seen, 3);
	json_decref(j);

	/* a tenant's own view: its groups with their agents, its policies */
	snprintf(path, sizeof path, "/v1/tenants/%s", A.name);
	j = fbt_env_want(&E, 200, "GET", path, A.tok[R_SOC], NULL);
	assert_int_equal(json_integer_value(json_object_get(j, "id")), A.id);
	assert_string_equal(fbt_jstr(j, "default_mode"), "early");
	assert_int_equal(json_array_size(json_object_get(j, "groups")), 2);
	json_array_foreach(json_object_get(j, "groups"), i, t)
	        assert_int_equal(json_integer_value(json_object_get(t, "agents")), 1);
	assert_int_equal(json_array_size(json_object_get(j, "policies")), 1);
	json_t *p = json_array_get(json_object_get(j, "policies"), 0);
	assert_int_equal(json_integer_value(json_object_get(p, "id")), A.policy);
	assert_string_equal(fbt_jstr(p, "mode"), "delayed");
	assert_int_equal(json_integer_value(json_object_get(p, "delay_s")), 7200);
	assert_string_equal(fbt_jstr(p, "group"), A.group);
	assert_int_equal(json_integer_value(json_object_get(p, "channel")), FBT_CH);
	assert_string_equal(fbt_jstr(p, "updated_by"), A.user);
	json_decref(j);
	snprintf(path, sizeof path, "/v1/tenants/%s", B.name);
	fbt_env_expect_code(&E, 404, "not_found", "GET", path, A.tok[R_SOC], NULL);
	j = fbt_env_want(&E, 200, "GET", path, E.soc, NULL); /* the vendor sees both */
	assert_int_equal(json_integer_value(json_object_get(j, "id")), B.id);
	json_decref(j);

	/* B's paused policy holds what was GA when it was set */
	snprintf(path, sizeof path, "/v1/tenants/%s/policies", B.name);
	j = fbt_env_want(&E, 200, "GET", path, B.tok[R_SOC], NULL);
	assert_int_equal(json_array_size(json_object_get(j, "policies")), 1);
	p = json_array_get(json_object_get(j, "policies"), 0);
	assert_int_equal(json_integer_value(json_object_get(p, "id")), B.policy);
	assert_string_equal(fbt_jstr(p, "mode"), "paused");
	assert_true(json_is_null(json_object_get(p, "channel")));
	assert_string_equal(fbt_jstr(json_object_get(p, "paused_at"), "291"), g_ga);
	json_decref(j);

	/* A sets and deletes a policy of its own; B cannot touch A's */
	snprintf(path, sizeof path, "/v1/tenants/%s/policies", A.name);
	snprintf(body, sizeof body,
	         "{\"group\":\"%s\",\"channel\":%d,\"mode\":\"n-1\",\"reason\":\"lab on n-1\"}",
	         A.group, FBT_CH);
	long audits = Q("SELECT count(*) FROM audit_log");
	fbt_env_expect_code(&E, 404, "not_found", "PUT", path, B.tok[R_ADMIN], body);
	fbt_env_expect_code(&E, 404, "not_found", "PUT", path, B.tok[R_RELEASE], body);
	assert_int_equal(Q("SELECT count(*) FROM audit_log"), audits);
	int64_t again = policy_put(A.tok[R_ADMIN], A.name, body);
	assert_int_equal(again, A.policy); /* one per (tenant, group, channel): replaced */
	assert_int_equal(Q("SELECT count(*) FROM content_policies WHERE id = %lld AND mode = "
	                   "'n-1' AND delay_s IS NULL",
	                   (long long)A.policy),
	                 1);
	assert_true(Q("SELECT count(*) FROM audit_log") > audits);
	snprintf(body, sizeof body,
	         "{\"channel\":%d,\"mode\":\"early\",\"reason\":\"the whole tenant early\"}",
	         FBT_CH);
	int64_t pid = policy_put(A.tok[R_RELEASE], A.name, body);
	assert_true(pid != A.policy);
	snprintf(path, sizeof path, "/v1/tenants/%s/policies/%lld", B.name, (long long)pid);
	fbt_env_expect_code(&E, 404, "not_found", "DELETE", path, B.tok[R_ADMIN], NULL);
	snprintf(path, sizeof path, "/v1/tenants/%s/policies/%lld", A.name, (long long)pid);
	fbt_env_expect_code(&E, 404, "not_found", "DELETE", path, B.tok[R_ADMIN], NULL);
	assert_int_equal(Q("SELECT count(*) FROM content_policies WHERE id = %lld", (long long)pid),
	                 1);
	j = fbt_env_want(&E, 200, "DELETE", path, A.tok[R_RELEASE], NULL);
	assert_int_equal(json_integer_value(json_object_get(j, "deleted")), pid);
	json_decref(j);
	assert_int_equal(Q("SELECT count(*) FROM content_policies WHERE id = %lld", (long long)pid),
	                 0);
	fbt_env_expect_code(&E, 404, "not_found", "DELETE", path, A.tok[R_RELEASE], NULL);

	/* the vendor's admin sets B's policies too */
	snprintf(body, sizeof body,
	         "{\"channel\":%d,\"mode\":\"delayed\",\"delay_s\":3600,\"reason\":\"vendor "
	         "on the customer's request\"}",
	         FBT_CH);
	pid = policy_put(E.admin, B.name, body);
	assert_int_equal(
	        Q("SELECT tenant_id FROM content_policies WHERE id = %lld", (long long)pid), B.id);

	/* a tenant's rollouts: only its own agents counted */
	snprintf(path, sizeof path, "/v1/tenants/%s/rollouts", A.name);
	j = fbt_env_want(&E, 200, "GET", path, A.tok[R_SOC], NULL);
	json_t *ro = NULL;
	json_array_foreach(json_object_get(j, "rollouts"), i, t)
	{
		if (json_integer_value(json_object_get(t, "id")) == g_rollout)
			ro = t;
	}
	if (!ro)
		fail_msg("%s: rollout %lld missing: %s", path, (long long)g_rollout,
		         fbt_env_raw(j));
	assert_string_equal(fbt_jstr(ro, "state"), "paused");
	assert_int_equal(json_integer_value(json_object_get(ro, "agents")), 2);
	assert_int_equal(json_integer_value(json_object_get(ro, "exposed")), 0);
	json_decref(j);
	snprintf(path, sizeof path, "/v1/tenants/%s/rollouts", B.name);
	j = fbt_env_want(&E, 200, "GET", path, B.tok[R_SOC], NULL);
	json_array_foreach(json_object_get(j, "rollouts"), i, t)
	        assert_int_equal(json_integer_value(json_object_get(t, "agents")), 2);
	json_decref(j);
}

/* A refusal: status, error code, the field named in the message. */
static void refused(long want, const char *code, const char *field, const char *method,
                    const char *path, const char *token, const char *body)
{
	const char *needles[] = {field, NULL};
	fbt_env_refused(&E, want, code, method, path, token, body, needles);
}

static void test_refusals_store_nothing(void **state)
{
	(void)state;
	world_up();
	g_pg = PQconnectdb(E.db);
	assert_int_equal(PQstatus(g_pg), CONNECTION_OK);
	struct snap before, after;
	char diff[1024], path[128], body[512];
	snprintf(path, sizeof path, "/v1/tenants/%s/policies", A.name);
	const char *rel = A.tok[R_RELEASE];
	snap_take(&before);

	refused(400, "invalid", "group", "PUT", path, rel,
	        "{\"group\":\"no-such-group\",\"mode\":\"ga\",\"reason\":\"x\"}");
	/* B's group is no group of A's */
	snprintf(body, sizeof body, "{\"group\":\"%s\",\"mode\":\"ga\",\"reason\":\"x\"}", B.group);
	refused(400, "invalid", "group", "PUT", path, rel, body);
	refused(400, "invalid", "channel", "PUT", path, rel,
	        "{\"channel\":999,\"mode\":\"ga\",\"reason\":\"x\"}");
	refused(400, "invalid", "mode", "PUT", path, rel,
	        "{\"mode\":\"sometimes\",\"reason\":\"x\"}");
	refused(400, "invalid", "mode", "PUT", path, rel, "{\"reason\":\"x\"}");
	refused(400, "invalid", "delay_s", "PUT", path, rel,
	        "{\"mode\":\"delayed\",\"delay_s\":0,\"reason\":\"x\"}");
	refused(400, "invalid", "delay_s", "PUT", path, rel,
	        "{\"mode\":\"delayed\",\"delay_s\":7776001,\"reason\":\"x\"}");
	refused(400, "invalid", "delay_s", "PUT", path, rel,
	        "{\"mode\":\"delayed\",\"delay_s\":\"2h\",\"reason\":\"x\"}");
	refused(400, "invalid", "delay_s", "PUT", path, rel,
	        "{\"mode\":\"delayed\",\"reason\":\"x\"}");
	refused(400, "invalid", "delay_s", "PUT", path, rel,
	        "{\"mode\":\"ga\",\"delay_s\":60,\"reason\":\"x\"}");
	refused(400, "invalid", "version", "PUT", path, rel,
	        "{\"channel\":291,\"mode\":\"version\",\"version\":99,\"reason\":\"x\"}");
	refused(400, "invalid", "version", "PUT", path, rel,
	        "{\"channel\":291,\"mode\":\"ga\",\"version\":1,\"reason\":\"x\"}");
	refused(400, "invalid", "reason", "PUT", path, rel, "{\"mode\":\"ga\"}");
	/* of the vendor's users only an admin sets a customer's policies */
	refused(403, "forbidden", "", "PUT", path, E.rel1,
	        "{\"mode\":\"ga\",\"channel\":291,\"group\":\"acme-lab\",\"reason\":\"x\"}");
	/* ring 0 is A's default group alone: taking it out of early empties it,
	 * whoever asks */
	refused(409, "conflict", "mode", "PUT", path, rel,
	        "{\"channel\":291,\"mode\":\"ga\",\"reason\":\"no canaries for us\"}");
	refused(409, "conflict", "mode", "PUT", path, rel,
	        "{\"mode\":\"paused\",\"reason\":\"freeze\"}");
	refused(409, "conflict", "mode", "PUT", path, E.admin,
	        "{\"group\":\"default\",\"mode\":\"delayed\",\"delay_s\":60,\"reason\":\"x\"}");

	/* tenants, groups, users, enrollment tokens */
	refused(400, "invalid", "name", "POST", "/v1/tenants", E.admin, "{\"name\":\"Bad Name\"}");
	refused(400, "invalid", "name", "POST", "/v1/tenants", E.admin, "{}");
	refused(400, "invalid", "default_mode", "POST", "/v1/tenants", E.admin,
	        "{\"name\":\"late\",\"default_mode\":\"delayed\"}");
	refused(409, "conflict", "'acme'", "POST", "/v1/tenants", E.admin, "{\"name\":\"acme\"}");
	refused(403, "forbidden", "", "POST", "/v1/tenants", E.soc, "{\"name\":\"socco\"}");
	snprintf(path, sizeof path, "/v1/tenants/%s/groups", A.name);
	snprintf(body, sizeof body, "{\"name\":\"%s\"}", A.group);
	refused(409, "conflict", A.group, "POST", path, A.tok[R_ADMIN], body);
	refused(400, "invalid", "name", "POST", path, A.tok[R_ADMIN], "{\"name\":\"-x\"}");
	refused(404, "not_found", "no-such-tenant", "POST", "/v1/tenants/no-such-tenant/groups",
	        E.admin, "{\"name\":\"x\"}");
	refused(400, "invalid", "tenant", "POST", "/v1/users", E.admin,
	        "{\"name\":\"carol\",\"roles\":[\"soc\"],\"tenant\":\"no-such-tenant\"}");
	/* an unknown tenant in a body is answered as one in a path */
	refused(404, "not_found", "no-such-tenant", "POST", "/v1/enrollment-tokens", E.admin,
	        "{\"name\":\"x\",\"tenant\":\"no-such-tenant\"}");
	refused(400, "invalid", "group", "POST", "/v1/enrollment-tokens", E.admin,
	        "{\"name\":\"x\",\"tenant\":\"acme\",\"group\":\"no-such-group\"}");

	snap_take(&after);
	if (*snap_diff(&before, &after, diff, sizeof diff))
		fail_msg("refusals stored something: %s", diff);

	/* and what is allowed still is: A's lab group (no canary there) to ga */
	snprintf(body, sizeof body,
	         "{\"group\":\"%s\",\"channel\":291,\"mode\":\"ga\",\"reason\":\"x\"}", A.group);
	assert_int_equal(policy_put(A.tok[R_RELEASE], A.name, body), A.policy);
	PQfinish(g_pg);
	g_pg = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_isolation_over_every_route, world_down),
	        cmocka_unit_test_teardown(test_own_scope, world_down),
	        cmocka_unit_test_teardown(test_refusals_store_nothing, world_down),
	};
	return cmocka_run_group_tests_name("tenants", tests, NULL, NULL);
}
