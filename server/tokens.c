/* API token administration from the command line and over HTTP (admin). */
#include "tokens.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "audit.h"
#include "auth.h"
#include "config.h"
#include "db.h"
#include "users.h"
#include "validate.h"

static int cli_fail(const char *fmt, const char *arg)
{
	fprintf(stderr, "firebreakd token: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
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

int tokens_cli(int argc, char **argv)
{
	/* argv[0] = "token", argv[1] = verb */
	if (argc < 2 || strcmp(argv[1], "--help") == 0) {
		printf("usage: firebreakd token create --role agent|release|soc|admin --name NAME "
		       "[--user NAME|ID] [--db CONNINFO]\n"
		       "       firebreakd token list [--db CONNINFO]\n"
		       "       firebreakd token revoke ID [--db CONNINFO]\n"
		       "create prints the new token once; only its SHA-256 is stored. It belongs "
		       "to\n"
		       "--user, who must hold the role; without --user, to the user called NAME\n"
		       "(created with that role when there is none).\n");
		return argc < 2 ? 2 : 0;
	}
	PGconn *c = PQconnectdb(cfg.db);
	if (PQstatus(c) != CONNECTION_OK) {
		int rc = cli_fail("cannot connect to the database: %s", PQerrorMessage(c));
		PQfinish(c);
		return rc;
	}
	struct fb_err err = {{0}};
	struct auth cli = {0};
	char who[64];
	snprintf(who, sizeof who, "cli:uid=%ld", (long)getuid());
	snprintf(cli.name, sizeof cli.name, "%s", who);
	int status = 0;
	if (strcmp(argv[1], "create") == 0) {
		const char *role = opt_value(argc, argv, "--role");
		const char *name = opt_value(argc, argv, "--name");
		enum role r = auth_role_parse(role);
		if (!r) {
			status =
			        cli_fail("--role must be agent, release, soc or admin (found '%s')",
			                 role ? role : "");
			goto out;
		}
		if (!name || !*name) {
			status = cli_fail("--name NAME is required%s", "");
			goto out;
		}
		char token[AUTH_TOKEN_LEN + 1];
		int64_t id;
		struct user owner;
		int created;
		if (db_cmd(c, &err, "BEGIN") ||
		    users_token_owner(c, &cli, NULL, opt_value(argc, argv, "--user"), name, r,
		                      &owner, &created, &err) ||
		    auth_token_create(c, owner.id, r, name, token, &id, &err)) {
			status = cli_fail("%s", err.msg);
			goto out;
		}
		json_t *after = json_pack("{s:I,s:s,s:s,s:s,s:I}", "id", (json_int_t)id, "name",
		                          name, "role", role, "user", owner.name, "user_id",
		                          (json_int_t)owner.id);
		char obj[40];
		snprintf(obj, sizeof obj, "token/%lld", (long long)id);
		enum fb_rc rc =
		        audit_write(c, &cli, NULL, "token.create", obj, NULL, after, NULL, &err);
		json_decref(after);
		if (rc || db_cmd(c, &err, "COMMIT")) {
			sodium_memzero(token, sizeof token);
			status = cli_fail("%s", err.msg);
			goto out;
		}
		printf("%s\n", token);
		sodium_memzero(token, sizeof token);
		fprintf(stderr,
		        "created %s token %lld '%s' of user '%s'%s; it is shown only this once\n",
		        role, (long long)id, name, owner.name, created ? " (a new user)" : "");
	} else if (strcmp(argv[1], "list") == 0) {
		PGresult *res =
		        db_exec(c, &err,
		                "SELECT t.id, t.role, t.name, t.created_at, t.revoked_at IS NOT "
		                "NULL, u.name FROM api_tokens t JOIN users u ON u.id = "
		                "t.user_id ORDER BY t.id",
		                0, NULL);
		if (!res) {
			status = cli_fail("%s", err.msg);
			goto out;
		}
		for (int i = 0; i < PQntuples(res); i++)
			printf("%s\t%s\t%s\t%s\t%s%s\n", PQgetvalue(res, i, 0),
			       PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 5),
			       PQgetvalue(res, i, 3),
			       strcmp(PQgetvalue(res, i, 4), "t") == 0 ? "\trevoked" : "");
		PQclear(res);
	} else if (strcmp(argv[1], "revoke") == 0) {
		int64_t id;
		if (argc < 3 || fb_parse_i64(argv[2], 1, INT64_MAX, &id)) {
			status = cli_fail("revoke needs a token id (found '%s')",
			                  argc > 2 ? argv[2] : "");
			goto out;
		}
		const char *p[] = {argv[2]};
		PGresult *res = db_exec(c, &err,
		                        "UPDATE api_tokens SET revoked_at = now() "
		                        "WHERE id = $1 AND revoked_at IS NULL RETURNING id",
		                        1, p);
		if (!res || PQntuples(res) != 1) {
			PQclear(res);
			status = cli_fail("no active token with id %s", argv[2]);
			goto out;
		}
		PQclear(res);
		char obj[40];
		snprintf(obj, sizeof obj, "token/%lld", (long long)id);
		if (audit_write(c, &cli, NULL, "token.revoke", obj, NULL, NULL, NULL, &err))
			status = cli_fail("%s", err.msg);
	} else {
		status = cli_fail("unknown verb '%s' (create, list, revoke)", argv[1]);
		status = 2;
	}
out:
	PQfinish(c);
	return status;
}

/* The "user" of a token request: a name, or an id as a number or a
 * string of digits, into buf; NULL when absent; 400 replied and *bad set
 * when malformed. */
static const char *user_ref_or_reply(struct http_req *req, const json_t *body, char *buf, size_t n,
                                     int *bad)
{
	json_t *u = json_object_get(body, "user");
	*bad = 0;
	if (!u)
		return NULL;
	if (json_is_integer(u) && json_integer_value(u) > 0) {
		snprintf(buf, n, "%lld", (long long)json_integer_value(u));
		return buf;
	}
	if (json_is_string(u) && json_string_length(u) >= 1 && json_string_length(u) <= 128 &&
	    strlen(json_string_value(u)) == json_string_length(u)) {
		snprintf(buf, n, "%s", json_string_value(u));
		return buf;
	}
	http_error(req, 400, "invalid",
	           "field 'user' must be a user's name (1 to 128 characters) or id (a positive "
	           "integer)");
	*bad = 1;
	return NULL;
}

void tokens_create(struct http_req *req)
{
	json_t *body = http_req_json_or_reply(req);
	if (!body)
		return;
	PGconn *c = NULL;
	int in_tx = 0;
	json_t *role_j = json_object_get(body, "role"), *name_j = json_object_get(body, "name");
	if (!json_is_string(role_j) || !auth_role_parse(json_string_value(role_j))) {
		http_error(req, 400, "invalid",
		           "field 'role' must be one of agent, release, soc, admin");
		goto out;
	}
	if (!json_is_string(name_j) || json_string_length(name_j) < 1 ||
	    json_string_length(name_j) > 128) {
		http_error(req, 400, "invalid",
		           "field 'name' must be a string of 1 to 128 characters");
		goto out;
	}
	static const char *const allowed[] = {"role", "name", "user", NULL};
	if (!val_fields_or_reply(req, body, allowed))
		goto out;
	char refbuf[160];
	int bad;
	const char *ref = user_ref_or_reply(req, body, refbuf, sizeof refbuf, &bad);
	if (bad)
		goto out;
	c = app_db_or_reply(req);
	if (!c)
		goto out;
	struct fb_err err;
	char token[AUTH_TOKEN_LEN + 1];
	int64_t id;
	struct user owner;
	int created;
	enum role role = auth_role_parse(json_string_value(role_j));
	if (db_cmd(c, &err, "BEGIN")) {
		http_unavailable(req, err.msg);
		goto out;
	}
	in_tx = 1;
	enum fb_rc rc = users_token_owner(c, http_req_auth(req), http_req_id(req), ref,
	                                  json_string_value(name_j), role, &owner, &created, &err);
	if (rc == FB_ENOTFOUND) {
		http_error(req, 422, "unknown_user", "%s", err.msg);
		goto out;
	}
	if (rc == FB_EPERM) {
		http_error(req, 422, "invalid_user", "%s", err.msg);
		goto out;
	}
	if (rc == FB_EINVAL || rc == FB_ECONFLICT) {
		http_error(req, rc == FB_EINVAL ? 400 : 409,
		           rc == FB_EINVAL ? "invalid" : "conflict", "%s", err.msg);
		goto out;
	}
	if (rc ||
	    auth_token_create(c, owner.id, role, json_string_value(name_j), token, &id, &err)) {
		http_error(req, 503, "unavailable", "could not create the token: %s", err.msg);
		goto out;
	}
	char obj[40];
	snprintf(obj, sizeof obj, "token/%lld", (long long)id);
	json_t *after =
	        json_pack("{s:I,s:O,s:O,s:s,s:I}", "id", (json_int_t)id, "name", name_j, "role",
	                  role_j, "user", owner.name, "user_id", (json_int_t)owner.id);
	rc = audit_write(c, http_req_auth(req), http_req_id(req), "token.create", obj, NULL, after,
	                 NULL, &err);
	json_decref(after);
	if (rc || db_cmd(c, &err, "COMMIT")) {
		sodium_memzero(token, sizeof token);
		http_error(req, 503, "unavailable", "could not create the token: %s", err.msg);
		goto out;
	}
	in_tx = 0;
	http_reply_json(req, 201,
	                json_pack("{s:I,s:O,s:O,s:s,s:s,s:I,s:b}", "id", (json_int_t)id, "name",
	                          name_j, "role", role_j, "token", token, "user", owner.name,
	                          "user_id", (json_int_t)owner.id, "user_created", created));
	sodium_memzero(token, sizeof token);
out:
	if (c) {
		if (in_tx)
			PQclear(PQexec(c, "ROLLBACK"));
		db_release(app.db, c);
	}
	json_decref(body);
}

void tokens_list(struct http_req *req)
{
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct fb_err err;
	PGresult *r =
	        db_exec(c, &err,
	                "SELECT t.id, t.role, t.name, extract(epoch FROM t.created_at)::bigint, "
	                "t.revoked_at IS NOT NULL, u.name, u.id FROM api_tokens t JOIN users "
	                "u ON u.id = t.user_id ORDER BY t.id",
	                0, NULL);
	db_release(app.db, c);
	if (!r) {
		http_unavailable(req, err.msg);
		return;
	}
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(
		        arr, json_pack("{s:I,s:s,s:s,s:I,s:b,s:s,s:I}", "id",
		                       (json_int_t)strtoll(PQgetvalue(r, i, 0), NULL, 10), "role",
		                       PQgetvalue(r, i, 1), "name", PQgetvalue(r, i, 2), "created",
		                       (json_int_t)strtoll(PQgetvalue(r, i, 3), NULL, 10),
		                       "revoked", strcmp(PQgetvalue(r, i, 4), "t") == 0, "user",
		                       PQgetvalue(r, i, 5), "user_id",
		                       (json_int_t)strtoll(PQgetvalue(r, i, 6), NULL, 10)));
	PQclear(r);
	http_reply_json(req, 200, json_pack("{s:o}", "tokens", arr));
}

void tokens_revoke(struct http_req *req)
{
	int64_t id;
	const char *ids = http_req_param(req, "id");
	if (!val_param_id_or_reply(req, "id", "token id", INT64_MAX, &id))
		return;
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct fb_err err;
	const char *p[] = {ids};
	PGresult *r = NULL;
	if (db_cmd(c, &err, "BEGIN")) {
		http_unavailable(req, err.msg);
		goto out;
	}
	r = db_exec(c, &err,
	            "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL "
	            "RETURNING id",
	            1, p);
	if (!r) {
		http_unavailable(req, err.msg);
		goto out;
	}
	if (PQntuples(r) == 0) {
		/* Idempotent: revoking a revoked token is fine; an unknown one is 404. */
		PQclear(r);
		r = db_exec(c, &err, "SELECT 1 FROM api_tokens WHERE id = $1", 1, p);
		int exists = r && PQntuples(r) == 1;
		if (exists)
			http_reply_json(req, 200,
			                json_pack("{s:I,s:b}", "id", (json_int_t)id, "revoked", 1));
		else
			http_error(req, 404, "not_found", "no token with id %lld", (long long)id);
		goto out;
	}
	char obj[40];
	snprintf(obj, sizeof obj, "token/%lld", (long long)id);
	if (audit_write(c, http_req_auth(req), http_req_id(req), "token.revoke", obj, NULL, NULL,
	                NULL, &err) ||
	    db_cmd(c, &err, "COMMIT")) {
		http_unavailable(req, err.msg);
		goto out;
	}
	http_reply_json(req, 200, json_pack("{s:I,s:b}", "id", (json_int_t)id, "revoked", 1));
out:
	PQclear(r);
	db_release(app.db, c);
}

void tokens_whoami(struct http_req *req)
{
	const struct auth *a = http_req_auth(req);
	static const char *const via[] = {"none", "token", "agent", "proxy"};
	json_t *j = json_pack("{s:s,s:s,s:o,s:s}", "name", a->name, "role", auth_role_name(a->role),
	                      "roles", auth_roles_json(a->roles), "via", via[a->via]);
	if (a->user_id) {
		json_object_set_new(j, "user", json_string(a->name));
		json_object_set_new(j, "user_id", json_integer(a->user_id));
	}
	json_object_set_new(j, "token_id", json_integer(a->token_id));
	if (a->token_id)
		json_object_set_new(j, "token_name", json_string(a->token_name));
	if (a->agent_id)
		json_object_set_new(j, "agent_id", json_integer(a->agent_id));
	json_object_set_new(j, "tenant", a->tenant_id ? json_string(a->tenant) : json_null());
	http_reply_json(req, 200, j);
}
