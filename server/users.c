/* Users: creation, listing, role and e-mail changes, disabling, and the
 * owner of a new token; over HTTP (admin) and from the command line. */
#include "users.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "audit.h"
#include "auth.h"
#include "config.h"
#include "db.h"
#include "validate.h"

#define USERS_EMAIL_MAX 254

/* ---- checks -------------------------------------------------------------- */

/* A name: a letter, then letters, digits and . _ @ + - (1 to 128 in all). */
static enum fb_rc check_name(const char *field, const char *s, struct fb_err *err)
{
	size_t n = strlen(s);
	int ok = n >= 1 && n <= USERS_NAME_MAX && isalpha((unsigned char)s[0]);
	for (size_t i = 1; ok && i < n; i++)
		ok = isalnum((unsigned char)s[i]) || strchr("._@+-", s[i]);
	if (!ok) {
		fb_err_set(err,
		           "field '%s' must be a user name: a letter, then letters, digits and . _ "
		           "@ + - (1 to %d characters; found '%.140s')",
		           field, USERS_NAME_MAX, s);
		return FB_EINVAL;
	}
	return FB_OK;
}

/* An e-mail address as a proxy asserts it: local@domain, printable ASCII
 * without blanks, at most 254; stored in lower case (lower is 255 bytes). */
static enum fb_rc check_email(const char *s, char lower[USERS_EMAIL_MAX + 1], struct fb_err *err)
{
	size_t n = strlen(s);
	const char *at = strchr(s, '@');
	int ok = n >= 3 && n <= USERS_EMAIL_MAX && at && at > s && at[1] && !strchr(at + 1, '@');
	for (size_t i = 0; ok && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		ok = c > 32 && c < 127;
		lower[i] = (char)tolower(c);
	}
	if (!ok) {
		fb_err_set(err,
		           "field 'email' must be an e-mail address (local@domain, printable, no "
		           "blanks, 3 to %d characters; found '%.140s')",
		           USERS_EMAIL_MAX, s);
		return FB_EINVAL;
	}
	lower[n] = '\0';
	return FB_OK;
}

/* roles: a non-empty array of distinct role names. */
static enum fb_rc check_roles(const json_t *a, unsigned *mask, struct fb_err *err)
{
	*mask = 0;
	if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > 4) {
		fb_err_set(err, "field 'roles' must be a non-empty array of agent, release, soc, "
		                "admin");
		return FB_EINVAL;
	}
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v)
	{
		enum role r = auth_role_parse(json_string_value(v));
		if (!r) {
			fb_err_set(err, "roles[%zu] must be one of agent, release, soc, admin", i);
			return FB_EINVAL;
		}
		if (*mask & r) {
			fb_err_set(err, "roles[%zu]: '%s' is given twice", i, auth_role_name(r));
			return FB_EINVAL;
		}
		*mask |= r;
	}
	return FB_OK;
}

/* "{release,soc}" for PostgreSQL, in the order agent, release, soc, admin. */
static void roles_pg(unsigned m, char *buf, size_t n)
{
	size_t k = (size_t)snprintf(buf, n, "{");
	for (int i = 0; i < 4; i++)
		if (m & (1u << i))
			k += (size_t)snprintf(buf + k, k < n ? n - k : 0, "%s%s", k > 1 ? "," : "",
			                      auth_role_name((enum role)(1u << i)));
	snprintf(buf + k, k < n ? n - k : 0, "}");
}

static unsigned roles_from_pg(const char *csv)
{
	unsigned m = 0;
	for (int i = 0; i < 4; i++) {
		const char *name = auth_role_name((enum role)(1u << i));
		size_t l = strlen(name);
		for (const char *p = csv; (p = strstr(p, name)); p += l)
			if ((p == csv || p[-1] == ',') && (p[l] == ',' || p[l] == '\0'))
				m |= 1u << i;
	}
	return m;
}

/* ---- lookups ------------------------------------------------------------- */

enum fb_rc users_find(PGconn *c, const char *ref, int lock, struct user *out, struct fb_err *err)
{
	memset(out, 0, sizeof *out);
	int64_t id;
	int by_id = fb_parse_i64(ref, 1, INT64_MAX, &id) == FB_OK;
	const char *p[] = {ref};
	PGresult *r = db_exec(
	        c, err,
	        by_id ? (lock ? "SELECT id, name, array_to_string(roles, ','), disabled_at IS NOT "
	                        "NULL FROM users WHERE id = $1 FOR UPDATE"
	                      : "SELECT id, name, array_to_string(roles, ','), disabled_at IS NOT "
	                        "NULL FROM users WHERE id = $1")
	              : (lock ? "SELECT id, name, array_to_string(roles, ','), disabled_at IS NOT "
	                        "NULL FROM users WHERE name = $1 FOR UPDATE"
	                      : "SELECT id, name, array_to_string(roles, ','), disabled_at IS NOT "
	                        "NULL FROM users WHERE name = $1"),
	        1, p);
	if (!r)
		return FB_EDB;
	if (PQntuples(r) != 1) {
		PQclear(r);
		fb_err_set(err, "no user %s'%.140s'", by_id ? "with id " : "", ref);
		return FB_ENOTFOUND;
	}
	out->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	snprintf(out->name, sizeof out->name, "%s", PQgetvalue(r, 0, 1));
	out->roles = roles_from_pg(PQgetvalue(r, 0, 2));
	out->disabled = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
	PQclear(r);
	return FB_OK;
}

/* FB_ECONFLICT (err naming the field) when name or email (may be NULL) is
 * taken by a user other than except. */
static enum fb_rc check_free(PGconn *c, const char *name, const char *email, int64_t except,
                             struct fb_err *err)
{
	char ex[24];
	snprintf(ex, sizeof ex, "%lld", (long long)except);
	const char *p[] = {name, email, ex};
	PGresult *r = db_exec(c, err,
	                      "SELECT name = $1, name FROM users WHERE id <> $3 AND (name = $1 OR "
	                      "email = $2) ORDER BY name = $1 DESC LIMIT 1",
	                      3, p);
	if (!r)
		return FB_EDB;
	enum fb_rc rc = FB_OK;
	if (PQntuples(r) == 1) {
		if (strcmp(PQgetvalue(r, 0, 0), "t") == 0)
			fb_err_set(err, "field 'name': a user called '%s' exists", name);
		else
			fb_err_set(err, "field 'email': user '%s' has the e-mail address '%s'",
			           PQgetvalue(r, 0, 1), email);
		rc = FB_ECONFLICT;
	}
	PQclear(r);
	return rc;
}

/* A user as JSON (new reference), with its tokens when tokens is set. */
static json_t *user_json(PGconn *c, int64_t id, int tokens, struct fb_err *err)
{
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	const char *p[] = {ids, tokens ? "t" : "f"};
	PGresult *r = db_exec(
	        c, err,
	        "SELECT (jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email, 'roles', "
	        "to_json(u.roles), 'created', extract(epoch FROM u.created_at)::bigint, "
	        "'disabled', u.disabled_at IS NOT NULL, 'disabled_at', extract(epoch FROM "
	        "u.disabled_at)::bigint, 'disabled_reason', u.disabled_reason, 'active_tokens', "
	        "(SELECT count(*) FROM api_tokens t WHERE t.user_id = u.id AND t.revoked_at IS "
	        "NULL)) || CASE WHEN $2 THEN jsonb_build_object('tokens', (SELECT "
	        "coalesce(json_agg(json_build_object('id', t.id, 'name', t.name, 'role', t.role, "
	        "'created', extract(epoch FROM t.created_at)::bigint, 'revoked', t.revoked_at IS "
	        "NOT NULL) ORDER BY t.id), '[]') FROM api_tokens t WHERE t.user_id = u.id)) ELSE "
	        "'{}'::jsonb END)::text FROM users u WHERE u.id = $1",
	        2, p);
	if (!r)
		return NULL;
	json_t *j = PQntuples(r) == 1 ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
	PQclear(r);
	if (!j)
		fb_err_set(err, "user %lld vanished", (long long)id);
	return j;
}

/* Insert a checked user and audit it (user.create), inside the caller's
 * transaction. email may be NULL. */
static enum fb_rc insert_user(PGconn *c, const struct auth *who, const char *request_id,
                              const char *name, const char *email, unsigned roles,
                              const char *reason, int64_t *id, struct fb_err *err)
{
	*id = 0;
	enum fb_rc rc = check_free(c, name, email, 0, err);
	if (rc)
		return rc;
	char rs[64];
	roles_pg(roles, rs, sizeof rs);
	const char *p[] = {name, email, rs};
	char state[6] = "";
	PGresult *r = db_exec_state(c, err, state,
	                            "INSERT INTO users (name, email, roles) VALUES ($1, $2, "
	                            "$3::text[]) RETURNING id",
	                            3, p);
	if (!r) {
		if (strcmp(state, "23505") == 0) {
			fb_err_set(err,
			           "field 'name': a user called '%s' (or with that e-mail) exists",
			           name);
			return FB_ECONFLICT;
		}
		return FB_EDB;
	}
	*id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	json_t *after = user_json(c, *id, 0, err);
	if (!after)
		return FB_EDB;
	char obj[40];
	snprintf(obj, sizeof obj, "user/%lld", (long long)*id);
	rc = audit_write(c, who, request_id, "user.create", obj, NULL, after, reason, err);
	json_decref(after);
	return rc;
}

enum fb_rc users_token_owner(PGconn *c, const struct auth *who, const char *request_id,
                             const char *ref, const char *token_name, enum role role,
                             struct user *out, int *created, struct fb_err *err)
{
	*created = 0;
	enum fb_rc rc;
	if (ref) {
		rc = users_find(c, ref, 1, out, err);
		if (rc == FB_ENOTFOUND)
			fb_err_prefix(err, "field 'user'");
		if (rc)
			return rc;
	} else {
		rc = users_find(c, token_name, 1, out, err);
		if (rc == FB_ENOTFOUND) {
			/* the way tokens were made before users: a user per name */
			rc = check_name("name", token_name, err);
			if (rc) {
				fb_err_prefix(err,
				              "no user '%.140s', and the token's name cannot name "
				              "one (give 'user')",
				              token_name);
				return rc;
			}
			int64_t id;
			rc = insert_user(c, who, request_id, token_name, NULL, role,
			                 "created for a token of that name", &id, err);
			if (rc)
				return rc;
			*created = 1;
			return users_find(c, token_name, 0, out, err);
		}
		if (rc)
			return rc;
	}
	if (out->disabled) {
		fb_err_set(err, "field 'user': user '%s' is disabled", out->name);
		return FB_EPERM;
	}
	if (!(out->roles & role)) {
		char rs[64];
		roles_pg(out->roles, rs, sizeof rs);
		fb_err_set(err, "field 'role': user '%s' does not hold role '%s' (roles: %s)",
		           out->name, auth_role_name(role), rs);
		return FB_EPERM;
	}
	return FB_OK;
}

/* ---- HTTP ---------------------------------------------------------------- */

/* The status and code for rc of a user operation; err.msg is the message. */
static void reply_rc(struct http_req *req, enum fb_rc rc, const struct fb_err *err)
{
	switch (rc) {
	case FB_EINVAL: http_error(req, 400, "invalid", "%s", err->msg); break;
	case FB_ENOTFOUND: http_error(req, 404, "not_found", "%s", err->msg); break;
	case FB_ECONFLICT: http_error(req, 409, "conflict", "%s", err->msg); break;
	case FB_EPERM: http_error(req, 422, "invalid_user", "%s", err->msg); break;
	default: http_unavailable(req, err->msg);
	}
}

static PGconn *begin_or_reply(struct http_req *req, struct fb_err *err)
{
	PGconn *c = app_db_or_reply(req);
	if (c && db_cmd(c, err, "BEGIN")) {
		http_unavailable(req, err->msg);
		db_release(app.db, c);
		return NULL;
	}
	return c;
}

static void end(PGconn *c, int in_tx)
{
	if (!c)
		return;
	if (in_tx)
		PQclear(PQexec(c, "ROLLBACK"));
	db_release(app.db, c);
}

void users_create(struct http_req *req)
{
	static const char *const allowed[] = {"name", "email", "roles", "reason", "tenant", NULL};
	json_t *body = http_req_json_or_reply(req), *after = NULL;
	PGconn *c = NULL;
	int in_tx = 0;
	struct fb_err err = {{0}};
	enum fb_rc rc;
	if (!body || !val_fields_or_reply(req, body, allowed))
		goto out;
	const char *name = val_string_or_reply(req, body, "name", 1, USERS_NAME_MAX, 1);
	if (!name)
		goto out;
	json_t *ej = json_object_get(body, "email");
	char email[USERS_EMAIL_MAX + 1];
	const char *reason = NULL;
	unsigned roles;
	if ((rc = check_name("name", name, &err)) ||
	    (rc = check_roles(json_object_get(body, "roles"), &roles, &err))) {
		reply_rc(req, rc, &err);
		goto out;
	}
	if (ej && !json_is_null(ej)) {
		if (!json_is_string(ej)) {
			http_error(req, 400, "invalid", "field 'email' must be a string or null");
			goto out;
		}
		if ((rc = check_email(json_string_value(ej), email, &err))) {
			reply_rc(req, rc, &err);
			goto out;
		}
	}
	if (json_object_get(body, "reason") &&
	    !(reason = val_string_or_reply(req, body, "reason", 1, 1024, 0)))
		goto out;
	/* a tenant's user acts for that tenant only (server/README.md, "Tenants") */
	const char *tenant = NULL;
	if (json_object_get(body, "tenant") &&
	    !(tenant = val_string_or_reply(req, body, "tenant", 1, 64, 1)))
		goto out;
	c = begin_or_reply(req, &err);
	if (!c)
		goto out;
	in_tx = 1;
	int64_t id;
	rc = insert_user(c, http_req_auth(req), http_req_id(req), name,
	                 ej && !json_is_null(ej) ? email : NULL, roles, reason, &id, &err);
	if (!rc && tenant) {
		char ids[24];
		snprintf(ids, sizeof ids, "%lld", (long long)id);
		const char *pt[] = {ids, tenant};
		PGresult *tr = db_exec(c, &err,
		                       "UPDATE users SET tenant_id = t.id FROM tenants t WHERE "
		                       "users.id = $1 AND t.name = $2 RETURNING t.id",
		                       2, pt);
		if (!tr)
			rc = FB_EDB;
		else if (PQntuples(tr) != 1) {
			fb_err_set(&err, "field 'tenant': no tenant '%s'", tenant);
			rc = FB_EINVAL;
		}
		PQclear(tr);
	}
	if (!rc && !(after = user_json(c, id, 0, &err)))
		rc = FB_EDB;
	if (rc) {
		reply_rc(req, rc, &err);
		goto out;
	}
	if (db_cmd(c, &err, "COMMIT")) {
		http_unavailable(req, err.msg);
		goto out;
	}
	in_tx = 0;
	json_object_set_new(after, "tenant", tenant ? json_string(tenant) : json_null());
	http_reply_json(req, 201, after);
	after = NULL;
out:
	end(c, in_tx);
	json_decref(after);
	json_decref(body);
}

void users_list(struct http_req *req)
{
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct fb_err err;
	PGresult *r = db_exec(
	        c, &err,
	        "SELECT coalesce(json_agg(json_build_object('id', u.id, 'name', u.name, 'email', "
	        "u.email, 'roles', to_json(u.roles), 'created', extract(epoch FROM "
	        "u.created_at)::bigint, 'disabled', u.disabled_at IS NOT NULL, 'active_tokens', "
	        "(SELECT count(*) FROM api_tokens t WHERE t.user_id = u.id AND t.revoked_at IS "
	        "NULL)) ORDER BY u.id), '[]')::text FROM users u",
	        0, NULL);
	db_release(app.db, c);
	if (!r) {
		http_unavailable(req, err.msg);
		return;
	}
	json_t *users = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	PQclear(r);
	http_reply_json(req, 200, json_pack("{s:o}", "users", users ? users : json_array()));
}

/* The path's user, or 404 / 503 replied and 0. */
static int path_user_or_reply(struct http_req *req, PGconn *c, int lock, struct user *u)
{
	struct fb_err err;
	enum fb_rc rc = users_find(c, http_req_param(req, "user"), lock, u, &err);
	if (rc)
		reply_rc(req, rc, &err);
	return rc == FB_OK;
}

void users_show(struct http_req *req)
{
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct user u;
	struct fb_err err;
	if (path_user_or_reply(req, c, 0, &u)) {
		json_t *j = user_json(c, u.id, 1, &err);
		if (j)
			http_reply_json(req, 200, j);
		else
			http_unavailable(req, err.msg);
	}
	db_release(app.db, c);
}

/* Change roles and/or e-mail; disable or enable (set): one audited
 * transaction each. Nobody may disable themselves or take their own admin
 * role (the last admin could lock everyone out). */
static void change(struct http_req *req, const char *action, int disable)
{
	static const char *const patch_fields[] = {"roles", "email", "reason", NULL};
	static const char *const reason_only[] = {"reason", NULL};
	json_t *body = http_req_json_or_reply(req), *before = NULL, *after = NULL;
	PGconn *c = NULL;
	int in_tx = 0;
	struct fb_err err = {{0}};
	enum fb_rc rc;
	int patch = disable < 0;
	if (!body || !val_fields_or_reply(req, body, patch ? patch_fields : reason_only))
		goto out;
	const char *reason = val_string_or_reply(req, body, "reason", 1, 1024, !patch);
	if (!reason && (!patch || json_object_get(body, "reason")))
		goto out;
	json_t *rj = json_object_get(body, "roles"), *ej = json_object_get(body, "email");
	unsigned roles = 0;
	char email[USERS_EMAIL_MAX + 1];
	if (patch) {
		if (!rj && !ej) {
			http_error(req, 400, "invalid", "give 'roles' and/or 'email' to change");
			goto out;
		}
		if (rj && (rc = check_roles(rj, &roles, &err))) {
			reply_rc(req, rc, &err);
			goto out;
		}
		if (ej && !json_is_null(ej)) {
			if (!json_is_string(ej)) {
				http_error(req, 400, "invalid",
				           "field 'email' must be a string or null");
				goto out;
			}
			if ((rc = check_email(json_string_value(ej), email, &err))) {
				reply_rc(req, rc, &err);
				goto out;
			}
		}
	}
	c = begin_or_reply(req, &err);
	if (!c)
		goto out;
	in_tx = 1;
	struct user u;
	if (!path_user_or_reply(req, c, 1, &u))
		goto out;
	const struct auth *who = http_req_auth(req);
	if (u.id == who->user_id && (disable == 1 || (rj && !(roles & ROLE_ADMIN)))) {
		http_error(req, 409, "conflict", "you cannot %s yourself; another admin must",
		           disable == 1 ? "disable" : "take the admin role from");
		goto out;
	}
	if (!(before = user_json(c, u.id, 0, &err))) {
		http_unavailable(req, err.msg);
		goto out;
	}
	char ids[24], rs[64];
	snprintf(ids, sizeof ids, "%lld", (long long)u.id);
	PGresult *r;
	if (patch) {
		/* only the e-mail can clash: the name is the user's own */
		if (ej && !json_is_null(ej) && (rc = check_free(c, u.name, email, u.id, &err))) {
			reply_rc(req, rc, &err);
			goto out;
		}
		roles_pg(roles, rs, sizeof rs);
		const char *p[] = {ids, rj ? rs : NULL, ej ? "t" : "f",
		                   ej && !json_is_null(ej) ? email : NULL};
		r = db_exec(
		        c, &err,
		        "UPDATE users SET roles = coalesce($2::text[], roles), email = CASE WHEN "
		        "$3 THEN $4 ELSE email END WHERE id = $1",
		        4, p);
	} else {
		const char *p[] = {ids, reason};
		r = db_exec(
		        c, &err,
		        disable ? "UPDATE users SET disabled_at = coalesce(disabled_at, now()), "
		                  "disabled_reason = coalesce(disabled_reason, $2) WHERE id = $1"
		                : "UPDATE users SET disabled_at = NULL, disabled_reason = NULL "
		                  "WHERE id = $1",
		        disable ? 2 : 1, p);
	}
	if (!r) {
		http_unavailable(req, err.msg);
		goto out;
	}
	PQclear(r);
	if (!(after = user_json(c, u.id, 0, &err))) {
		http_unavailable(req, err.msg);
		goto out;
	}
	char obj[40];
	snprintf(obj, sizeof obj, "user/%lld", (long long)u.id);
	if (!json_equal(before, after) &&
	    audit_write(c, who, http_req_id(req), action, obj, before, after, reason, &err)) {
		http_unavailable(req, err.msg);
		goto out;
	}
	if (db_cmd(c, &err, "COMMIT")) {
		http_unavailable(req, err.msg);
		goto out;
	}
	in_tx = 0;
	http_reply_json(req, 200, after);
	after = NULL;
out:
	end(c, in_tx);
	json_decref(before);
	json_decref(after);
	json_decref(body);
}

void users_update(struct http_req *req)
{
	change(req, "user.update", -1);
}

void users_disable(struct http_req *req)
{
	change(req, "user.disable", 1);
}

void users_enable(struct http_req *req)
{
	change(req, "user.enable", 0);
}

/* ---- command line -------------------------------------------------------- */

static int cli_fail(const char *msg)
{
	fprintf(stderr, "firebreakd user: %s\n", msg);
	return 1;
}

static const char *opt_value(int argc, char **argv, const char *name)
{
	size_t n = strlen(name);
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=')
			return argv[i] + n + 1;
		if (strcmp(argv[i], name) == 0 && i + 1 < argc)
			return argv[i + 1];
	}
	return NULL;
}

/* "release,soc" into a JSON array of names (new reference). */
static json_t *roles_arg(const char *s)
{
	json_t *a = json_array();
	char buf[256];
	snprintf(buf, sizeof buf, "%s", s ? s : "");
	for (char *p = buf, *e; *p; p = e) {
		e = p + strcspn(p, ",");
		if (*e)
			*e++ = '\0';
		json_array_append_new(a, json_string(p));
	}
	return a;
}

int users_cli(int argc, char **argv)
{
	/* argv[0] = "user", argv[1] = verb */
	if (argc < 2 || strcmp(argv[1], "--help") == 0) {
		printf("usage: firebreakd user create --name NAME --role ROLE[,ROLE...] [--email "
		       "ADDRESS] [--db CONNINFO]\n"
		       "       firebreakd user list [--db CONNINFO]\n"
		       "       firebreakd user disable NAME|ID --reason R [--db CONNINFO]\n"
		       "       firebreakd user enable NAME|ID --reason R [--db CONNINFO]\n"
		       "roles: agent, release, soc, admin. Tokens: firebreakd token create "
		       "--user.\n");
		return argc < 2 ? 2 : 0;
	}
	const char *verb = argv[1];
	if (strcmp(verb, "create") && strcmp(verb, "list") && strcmp(verb, "disable") &&
	    strcmp(verb, "enable")) {
		fprintf(stderr,
		        "firebreakd user: unknown verb '%s' (create, list, disable, enable)\n",
		        verb);
		return 2;
	}
	PGconn *c = PQconnectdb(cfg.db);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "firebreakd user: cannot connect to the database: %s",
		        PQerrorMessage(c));
		PQfinish(c);
		return 1;
	}
	struct fb_err err = {{0}};
	struct auth cli = {0};
	snprintf(cli.name, sizeof cli.name, "cli:uid=%ld", (long)getuid());
	int status = 0;
	json_t *roles = NULL;
	if (strcmp(verb, "create") == 0) {
		const char *name = opt_value(argc, argv, "--name");
		const char *email = opt_value(argc, argv, "--email");
		roles = roles_arg(opt_value(argc, argv, "--role"));
		unsigned mask;
		char lower[USERS_EMAIL_MAX + 1];
		int64_t id;
		if (!name) {
			status = cli_fail("--name NAME is required");
		} else if (check_name("name", name, &err) || check_roles(roles, &mask, &err) ||
		           (email && check_email(email, lower, &err))) {
			status = cli_fail(err.msg);
		} else if (db_cmd(c, &err, "BEGIN") ||
		           insert_user(c, &cli, NULL, name, email ? lower : NULL, mask, NULL, &id,
		                       &err) ||
		           db_cmd(c, &err, "COMMIT")) {
			status = cli_fail(err.msg);
		} else {
			printf("%lld\n", (long long)id);
			fprintf(stderr, "created user %lld '%s'\n", (long long)id, name);
		}
	} else if (strcmp(verb, "list") == 0) {
		PGresult *r =
		        db_exec(c, &err,
		                "SELECT id, name, coalesce(email, '-'), array_to_string(roles, "
		                "','), CASE WHEN disabled_at IS NULL THEN '' ELSE "
		                "E'\\tdisabled' END FROM users ORDER BY id",
		                0, NULL);
		if (!r) {
			status = cli_fail(err.msg);
		} else {
			for (int i = 0; i < PQntuples(r); i++)
				printf("%s\t%s\t%s\t%s%s\n", PQgetvalue(r, i, 0),
				       PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
				       PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
			PQclear(r);
		}
	} else {
		int disable = strcmp(verb, "disable") == 0;
		const char *reason = opt_value(argc, argv, "--reason");
		struct user u;
		if (argc < 3 || argv[2][0] == '-') {
			status = cli_fail("name the user: NAME or ID");
		} else if (!reason || !*reason) {
			status = cli_fail("--reason R is required");
		} else if (db_cmd(c, &err, "BEGIN") || users_find(c, argv[2], 1, &u, &err)) {
			status = cli_fail(err.msg);
		} else {
			char ids[24];
			snprintf(ids, sizeof ids, "%lld", (long long)u.id);
			const char *p[] = {ids, reason};
			PGresult *r =
			        db_exec(c, &err,
			                disable ? "UPDATE users SET disabled_at = "
			                          "coalesce(disabled_at, now()), "
			                          "disabled_reason = coalesce(disabled_reason, $2) "
			                          "WHERE id = $1"
			                        : "UPDATE users SET disabled_at = NULL, "
			                          "disabled_reason = NULL "
			                          "WHERE id = $1",
			                disable ? 2 : 1, p);
			PQclear(r);
			char obj[40];
			snprintf(obj, sizeof obj, "user/%lld", (long long)u.id);
			if (!r ||
			    audit_write(c, &cli, NULL, disable ? "user.disable" : "user.enable",
			                obj, NULL, NULL, reason, &err) ||
			    db_cmd(c, &err, "COMMIT"))
				status = cli_fail(err.msg);
			else
				printf("user %lld '%s' %s\n", (long long)u.id, u.name,
				       disable ? "disabled" : "enabled");
		}
	}
	json_decref(roles);
	PQfinish(c);
	return status;
}
