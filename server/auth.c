/* API tokens: creation (hash stored, secret shown once) and request
 * authentication with role checks. */
#include "auth.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "config.h"
#include "log.h"
#include "sso.h"

/* ---- agent tokens: "fa_<id>_<mac>", a keyed BLAKE2b of the id ---------- */

#define MAC_LEN 16
static unsigned char g_key[crypto_generichash_KEYBYTES];
static int g_key_loaded;

enum fb_rc auth_agent_key_init(PGconn *c, struct fb_err *err)
{
	unsigned char fresh[crypto_generichash_KEYBYTES];
	randombytes_buf(fresh, sizeof fresh);
	char hex[2 * sizeof fresh + 1];
	fb_hex_encode(fresh, sizeof fresh, hex);
	sodium_memzero(fresh, sizeof fresh);
	const char *p[] = {hex};
	PGresult *r = db_exec(c, err,
	                      "INSERT INTO server_secrets (name, value) VALUES ('agent_token_key', "
	                      "decode($1, 'hex')) ON CONFLICT (name) DO NOTHING",
	                      1, p);
	sodium_memzero(hex, sizeof hex);
	if (!r)
		return FB_EDB;
	PQclear(r);
	r = db_exec(
	        c, err,
	        "SELECT encode(value, 'hex') FROM server_secrets WHERE name = 'agent_token_key'", 0,
	        NULL);
	if (!r || PQntuples(r) != 1) {
		PQclear(r);
		return FB_EDB;
	}
	enum fb_rc rc = fb_hex_decode(PQgetvalue(r, 0, 0), g_key, sizeof g_key);
	PQclear(r);
	if (rc) {
		fb_err_set(err, "server_secrets.agent_token_key has the wrong length");
		return rc;
	}
	g_key_loaded = 1;
	return FB_OK;
}

void auth_cleanup(void)
{
	sodium_memzero(g_key, sizeof g_key);
	g_key_loaded = 0;
}

/* The MAC an agent token carries: keyed BLAKE2b of "agent:<id>" (id > 0). */
static void mac_for(int64_t id, unsigned char mac[MAC_LEN])
{
	char msg[32] = "agent:", d[20];
	size_t n = 6, k = 0;
	uint64_t v = (uint64_t)id;
	do {
		d[k++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (k)
		msg[n++] = d[--k];
	crypto_generichash(mac, MAC_LEN, (const unsigned char *)msg, n, g_key, sizeof g_key);
}

void auth_agent_token(int64_t id, char out[AUTH_AGENT_TOKEN_MAX])
{
	unsigned char mac[MAC_LEN];
	mac_for(id, mac);
	char hex[2 * MAC_LEN + 1];
	fb_hex_encode(mac, sizeof mac, hex);
	snprintf(out, AUTH_AGENT_TOKEN_MAX, "fa_%lld_%s", (long long)id, hex);
}

static int lower_hex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Exactly what auth_agent_token writes: the id in decimal without sign or leading
 * zero (at most 19 digits, 1 .. INT64_MAX), the MAC in lower-case hex. Checked
 * on every agent request, so without formatting; the MAC is compared in
 * constant time. */
int auth_agent_token_verify(const char *token, int64_t *agent_id)
{
	*agent_id = 0;
	if (!g_key_loaded || strncmp(token, "fa_", 3) != 0)
		return 0;
	const char *p = token + 3;
	if (*p < '1' || *p > '9')
		return 0;
	uint64_t id = 0;
	size_t nd = 0;
	for (; p[nd] >= '0' && p[nd] <= '9'; nd++) {
		if (nd == 19)
			return 0;
		id = id * 10 + (uint64_t)(p[nd] - '0');
	}
	if (p[nd] != '_' || id > INT64_MAX || strlen(p + nd + 1) != 2 * MAC_LEN)
		return 0;
	const char *hex = p + nd + 1;
	unsigned char got[MAC_LEN], want[MAC_LEN];
	for (size_t i = 0; i < MAC_LEN; i++) {
		int hi = lower_hex(hex[2 * i]), lo = lower_hex(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return 0;
		got[i] = (unsigned char)(hi << 4 | lo);
	}
	mac_for((int64_t)id, want);
	if (sodium_memcmp(want, got, MAC_LEN) != 0)
		return 0;
	*agent_id = (int64_t)id;
	return 1;
}

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

json_t *auth_roles_json(unsigned m)
{
	json_t *a = json_array();
	for (int i = 0; i < 4; i++)
		if (m & (1u << i))
			json_array_append_new(a, json_string(role_names[i]));
	return a;
}

static void token_hash_hex(const char *token, char out[FB_SHA256_HEX_LEN + 1])
{
	fb_sha256_hex(token, strlen(token), out);
}

enum fb_rc auth_token_create(PGconn *c, int64_t user_id, enum role role, const char *name,
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
	char uid[24];
	snprintf(uid, sizeof uid, "%lld", (long long)user_id);
	const char *p[] = {name, rname, hash, uid};
	PGresult *r = db_exec(c, err,
	                      "INSERT INTO api_tokens (name, role, token_hash, user_id) "
	                      "VALUES ($1, $2, decode($3, 'hex'), $4) RETURNING id",
	                      4, p);
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

/* The role a request acts in: the least of the held roles the route
 * admits (agent < release < soc < admin), 0 when none. */
static enum role acting_role(unsigned held, unsigned admitted)
{
	unsigned both = held & admitted;
	return both ? (enum role)(both & -both) : 0;
}

/* "release,soc" from a PostgreSQL text[] given as "release,soc". */
static unsigned roles_from_csv(const char *csv)
{
	unsigned m = 0;
	char buf[64];
	snprintf(buf, sizeof buf, "%s", csv);
	for (char *p = buf, *e; *p; p = e) {
		e = p + strcspn(p, ",");
		if (*e)
			*e++ = '\0';
		m |= auth_role_parse(p);
	}
	return m;
}

static void roles_str(unsigned m, char *buf, size_t n)
{
	size_t k = 0;
	buf[0] = '\0';
	for (int i = 0; i < 4; i++)
		if (m & (1u << i))
			k += (size_t)snprintf(buf + k, k < n ? n - k : 0, "%s%s", k ? ", " : "",
			                      role_names[i]);
	if (!m)
		snprintf(buf, n, "none");
}

/* An identity the SSO proxy asserted (by e-mail or name, sso.h): the user
 * it names, that user's roles. Unknown, disabled or role-less users get
 * 403 with a JSON error: the proxy has authenticated the person, firebreak
 * does not admit them. */
static int proxy_user_or_reply(struct http_req *req, const char *value, const char *header,
                               unsigned roles, struct auth *out)
{
	int by_email = sso_match_mode() == SSO_BY_EMAIL;
	const char *what = by_email ? "e-mail address" : "user name";
	if (strlen(value) > 254) {
		http_error(req, 403, "unknown_user",
		           "the %s the proxy asserts in %s is longer than 254 characters", what,
		           header);
		return 0;
	}
	const char *why;
	PGconn *c = db_acquire(app.db, (int)cfg.db_wait_ms, &why);
	if (!c) {
		http_error(req, 503, "unavailable", "cannot look the user up: %s", why);
		return 0;
	}
	struct fb_err err;
	const char *p[] = {value};
	PGresult *r = db_exec(c, &err,
	                      by_email ? "SELECT u.id, u.name, array_to_string(u.roles, ','), "
	                                 "u.disabled_at IS NOT NULL, coalesce(u.tenant_id, 0), "
	                                 "coalesce(t.name, '') FROM users u LEFT JOIN tenants t ON "
	                                 "t.id = u.tenant_id WHERE u.email = lower($1)"
	                               : "SELECT u.id, u.name, array_to_string(u.roles, ','), "
	                                 "u.disabled_at IS NOT NULL, coalesce(u.tenant_id, 0), "
	                                 "coalesce(t.name, '') FROM users u LEFT JOIN tenants t ON "
	                                 "t.id = u.tenant_id WHERE u.name = $1",
	                      1, p);
	db_release(app.db, c);
	if (!r) {
		http_error(req, 503, "unavailable", "cannot look the user up: %s", err.msg);
		return 0;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		http_error(
		        req, 403, "unknown_user",
		        "no firebreak user has the %s '%s' that the single-sign-on proxy asserts "
		        "(%s); an admin creates users (POST /v1/users, fbctl user create)",
		        what, value, header);
		return 0;
	}
	out->user_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	snprintf(out->name, sizeof out->name, "%s", PQgetvalue(r, 0, 1));
	out->roles = roles_from_csv(PQgetvalue(r, 0, 2));
	int disabled = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
	out->tenant_id = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
	snprintf(out->tenant, sizeof out->tenant, "%s", PQgetvalue(r, 0, 5));
	PQclear(r);
	out->via = AUTH_VIA_PROXY;
	if (out->tenant_id && !(roles & ROUTE_TENANT)) {
		http_no_route(req);
		return 0;
	}
	if (disabled) {
		http_error(req, 403, "user_disabled", "user '%s' is disabled", out->name);
		return 0;
	}
	out->role = acting_role(out->roles, roles);
	if (!out->role && out->tenant_id) {
		http_no_route(req);
		return 0;
	}
	if (!out->role) {
		char held[64];
		roles_str(out->roles, held, sizeof held);
		http_error(req, 403, "forbidden", "user '%s' (roles: %s) may not do this",
		           out->name, held);
		return 0;
	}
	if (!sso_csrf_ok(req)) {
		http_error(req, 403, "csrf",
		           "a change made through the single-sign-on proxy must carry the header "
		           "X-Requested-With (the dashboard sends it), so that no other site can "
		           "make it with your session");
		return 0;
	}
	out->authenticated = 1;
	return 1;
}

int auth_request_or_reply(struct http_req *req, const char *authorization, unsigned roles,
                          struct auth *out)
{
	memset(out, 0, sizeof *out);
	const char *ident, *header;
	if (sso_identity(req, &ident, &header))
		return proxy_user_or_reply(req, ident, header, roles, out);
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
		if (!auth_agent_token_verify(token, &agent_id)) {
			http_error(req, 401, "unauthenticated", "invalid agent token");
			return 0;
		}
		out->role = ROLE_AGENT;
		out->roles = ROLE_AGENT;
		out->via = AUTH_VIA_AGENT;
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
	PGresult *r =
	        db_exec(c, &err,
	                "SELECT t.id, t.role, t.name, u.id, u.name, u.disabled_at IS NOT NULL, "
	                "t.role = ANY (u.roles), coalesce(u.tenant_id, 0), coalesce(n.name, '') "
	                "FROM api_tokens t JOIN users u ON u.id = t.user_id LEFT JOIN tenants n "
	                "ON n.id = u.tenant_id WHERE t.token_hash = decode($1, 'hex') AND "
	                "t.revoked_at IS NULL",
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
	out->roles = out->role;
	out->via = AUTH_VIA_TOKEN;
	snprintf(out->token_name, sizeof out->token_name, "%s", PQgetvalue(r, 0, 2));
	out->user_id = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
	snprintf(out->name, sizeof out->name, "%s", PQgetvalue(r, 0, 4));
	int disabled = strcmp(PQgetvalue(r, 0, 5), "t") == 0;
	int held = strcmp(PQgetvalue(r, 0, 6), "t") == 0;
	out->tenant_id = strtoll(PQgetvalue(r, 0, 7), NULL, 10);
	snprintf(out->tenant, sizeof out->tenant, "%s", PQgetvalue(r, 0, 8));
	PQclear(r);
	/* A tenant's credential learns of no route it may not use: the same 404
	 * as an unknown path, before any other answer. */
	if (out->tenant_id && !(roles & ROUTE_TENANT)) {
		http_no_route(req);
		return 0;
	}
	/* A disabled user's tokens, or a token for a role the user no longer
	 * holds, are no credential at all: the same 401 as a revoked token. */
	if (disabled) {
		http_error(req, 401, "unauthenticated", "user '%s' is disabled", out->name);
		return 0;
	}
	if (!held) {
		http_error(req, 401, "unauthenticated",
		           "the token is for role '%s', which user '%s' no longer holds",
		           auth_role_name(out->role), out->name);
		return 0;
	}
	if (!(roles & out->role)) {
		/* a tenant's credential: a route it may not use, as above */
		if (out->tenant_id)
			http_no_route(req);
		else
			http_error(req, 403, "forbidden", "role '%s' may not do this",
			           auth_role_name(out->role));
		return 0;
	}
	out->authenticated = 1;
	return 1;
}
