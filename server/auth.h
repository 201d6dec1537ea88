/* API tokens: random 256-bit bearer tokens, shown once, stored as SHA-256;
 * each route declares the roles it admits. */
#ifndef FB_AUTH_H
#define FB_AUTH_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "fb.h"
#include "http.h"

#define AUTH_TOKEN_PREFIX "fb_"
#define AUTH_TOKEN_LEN    (3 + 64) /* "fb_" + 64 hex digits */

/* "agent", "release", "soc", "admin" <-> enum role; 0 / NULL when unknown. */
enum role auth_role_parse(const char *s);
const char *auth_role_name(enum role r);
/* The roles of mask m (in the order agent, release, soc, admin) as a new
 * JSON array of names. */
json_t *auth_roles_json(unsigned m);

/* Authenticate a request against roles: an identity the trusted SSO proxy
 * asserts (sso.h) if there is one, else the Authorization header. Returns 1
 * with *out filled, or replies 401 (missing, malformed, unknown or revoked
 * token; the token's user disabled), 403 (role not admitted; through the
 * proxy: an unknown or disabled user, a change without X-Requested-With),
 * 503 (database unavailable) and returns 0. */
int auth_request_or_reply(struct http_req *req, const char *authorization, unsigned roles,
                          struct auth *out);

/* Create a token of user user_id (who must exist): writes the secret
 * (NUL-terminated, AUTH_TOKEN_LEN chars) into token and its row id into *id.
 * Only the hash is stored. */
enum fb_rc auth_token_create(PGconn *c, int64_t user_id, enum role role, const char *name,
                             char token[AUTH_TOKEN_LEN + 1], int64_t *id,
                             struct fb_err *err) FB_MUSTCHECK;

/* Agent tokens "fa_<id>_<mac>" (keyed BLAKE2b of the agent id: checking
 * one needs neither the database nor memory). The key is shared by all
 * replicas: loaded (or created once) from server_secrets. */
#define AUTH_AGENT_TOKEN_MAX 96
enum fb_rc auth_agent_key_init(PGconn *c, struct fb_err *err) FB_MUSTCHECK;
void auth_cleanup(void); /* wipes the key */
/* The token of agent id (> 0) into out. */
void auth_agent_token(int64_t id, char out[AUTH_AGENT_TOKEN_MAX]);
/* 1 with *agent_id set when token is one auth_agent_token wrote; 0 if not
 * (forged, malformed, or the key is not loaded yet). */
int auth_agent_token_verify(const char *token, int64_t *agent_id);

#endif
