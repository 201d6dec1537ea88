/* API tokens: creation (hash stored, secret shown once) and request
 * authentication with role checks. */
#include "auth.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agents.h"
#include "app.h"
#include "config.h"
#include "log.h"

static const char *role_names[] = {"agent", "release", "soc", "admin"};

enum role auth_role_parse(const char *s)
{
	for (int i = 0; s && i < 4; i++)
		if (strcmp(s, role_names[i]) == 0)
			return (enum role)(1 << i);
	return 0;
}

const char *auth_role_name(enum role r)
{
	for (int i = 0; i < 4; i++)
		if (r == (enum role)(1 << i))
			return role_names[i];
	return NULL;
}

static void token_hash_hex(const char *token, char out[FB_SHA256_HEX_LEN + 1])
{
	fb_sha256_hex(token, strlen(token), out);
}

enum fb_rc auth_token_create(PGconn *c, enum role role, const char *name,
                             char token[AUTH_TOKEN_LEN + 1], int64_t *id, struct fb_err *err)
{
	*id = 0;
	token[0] = '\0';
	const char *rname = auth_role_name(role);
	if (!rname) {
		fb_err_set(err, "unknown role");
		return FB_EINVAL;
	}
	if (!name || !*name || strlen(name) > 128) {
		fb_err_set(err, "token name must be 1 to 128 characters");
		return FB_EINVAL;
	}
	unsigned char rnd[32];
	randombytes_buf(rnd, sizeof rnd);
	char secret[AUTH_TOKEN_LEN + 1];
	memcpy(secret, AUTH_TOKEN_PREFIX, 3);
	fb_hex_encode(rnd, sizeof rnd, secret + 3);
	sodium_memzero(rnd, sizeof rnd);
	char hash[FB_SHA256_HEX_LEN + 1];
	token_hash_hex(secret, hash);
	const char *p[] = {name, rname, hash};
	PGresult *r = db_exec(c, err,
	                      "INSERT INTO api_tokens (name, role, token_hash) "
	                      "VALUES ($1, $2, decode($3, 'hex')) RETURNING id",
	                      3, p);
	if (!r) {
		sodium_memzero(secret, sizeof secret);
		return FB_EDB;
	}
	*id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	memcpy(token, secret, sizeof secret);
	sodium_memzero(secret, sizeof secret);
	return FB_OK;
}

int auth_request_or_reply(struct http_req *req, const char *authorization, unsigned roles,
                          struct auth *out)
{
	memset(out, 0, sizeof *out);
	if (!authorization) {
		http_error(req, 401, "unauthenticated",
		           "missing Authorization header (expected 'Bearer <token>')");
		return 0;
	}
	if (strncasecmp(authorization, "Bearer ", 7) != 0) {
		http_error(req, 401, "unauthenticated",
		           "Authorization header must be 'Bearer <token>'");
		return 0;
	}
	const char *token = authorization + 7;
	size_t tlen = strlen(token);
	if (strncmp(token, "fa_", 3) == 0) {
		/* Agent tokens are checked by computation: no database, no memory. */
		int64_t agent_id;
		if (!agents_token_verify(token, &agent_id)) {
			http_error(req, 401, "unauthenticated", "invalid agent token");
			return 0;
		}
		out->role = ROLE_AGENT;
		out->agent_id = agent_id;
		snprintf(out->name, sizeof out->name, "agent-%lld", (long long)agent_id);
		if (!(roles & ROLE_AGENT)) {
			http_error(req, 403, "forbidden", "role 'agent' may not do this");
			return 0;
		}
		out->authenticated = 1;
		return 1;
	}
	if (tlen != AUTH_TOKEN_LEN || strncmp(token, AUTH_TOKEN_PREFIX, 3) != 0) {
		http_error(req, 401, "unauthenticated", "malformed token");
		return 0;
	}
	char hash[FB_SHA256_HEX_LEN + 1];
	token_hash_hex(token, hash);

	const char *why;
	PGconn *c = db_acquire(app.db, (int)cfg.db_wait_ms, &why);
	if (!c) {
		http_error(req, 503, "unavailable", "cannot check the token: %s", why);
		return 0;
	}
	struct fb_err err;
	const char *p[] = {hash};
	PGresult *r = db_exec(c, &err,
	                      "SELECT id, role, name FROM api_tokens "
	                      "WHERE token_hash = decode($1, 'hex') AND revoked_at IS NULL",
	                      1, p);
	db_release(app.db, c);
	if (!r) {
		http_error(req, 503, "unavailable", "cannot check the token: %s", err.msg);
		return 0;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		http_error(req, 401, "unauthenticated", "unknown or revoked token");
		return 0;
	}
	out->token_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	out->role = auth_role_parse(PQgetvalue(r, 0, 1));
	snprintf(out->name, sizeof out->name, "%s", PQgetvalue(r, 0, 2));
	PQclear(r);
	if (!(roles & out->role)) {
		http_error(req, 403, "forbidden", "role '%s' may not do this",
		           auth_role_name(out->role));
		return 0;
	}
	out->authenticated = 1;
	return 1;
}
