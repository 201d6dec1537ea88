/* Users: the people (and machines) API tokens are issued to and that single
 * sign-on maps an identity to; approvals and the audit count them. The
 * admin HTTP API and the user subcommands of firebreakd. */
#ifndef FB_USERS_H
#define FB_USERS_H

#include <libpq-fe.h>
#include <stdint.h>

#include "fb.h"
#include "http.h"

#define USERS_NAME_MAX 128

struct user {
	int64_t id;
	char name[USERS_NAME_MAX + 1];
	unsigned roles; /* enum role mask */
	int disabled;
};

/* The user ref names on c: a decimal id, or else a name (a name starts with
 * a letter). lock: SELECT ... FOR UPDATE (inside the caller's transaction).
 * FB_ENOTFOUND (err says so), FB_EDB. */
enum fb_rc users_find(PGconn *c, const char *ref, int lock, struct user *out,
                      struct fb_err *err) FB_MUSTCHECK;

/* The owner of a new token named token_name for role, inside the caller's
 * transaction: with ref, that user, who must be enabled (else FB_EPERM) and
 * hold role (else FB_EPERM); FB_ENOTFOUND when there is none. Without ref
 * (how tokens were made before users), the user called token_name, created
 * with role alone when there is none (*created = 1, audited as user.create
 * by who); an existing one must be enabled and hold role. err names the
 * field ('user', 'role' or 'name'). */
enum fb_rc users_token_owner(PGconn *c, const struct auth *who, const char *request_id,
                             const char *ref, const char *token_name, enum role role,
                             struct user *out, int *created, struct fb_err *err) FB_MUSTCHECK;

/* firebreakd user create|list|disable|enable ...; returns the exit code. */
int users_cli(int argc, char **argv);

void users_create(struct http_req *req);  /* POST /v1/users */
void users_list(struct http_req *req);    /* GET /v1/users */
void users_show(struct http_req *req);    /* GET /v1/users/{user} */
void users_update(struct http_req *req);  /* PATCH /v1/users/{user} */
void users_disable(struct http_req *req); /* POST /v1/users/{user}/disable */
void users_enable(struct http_req *req);  /* POST /v1/users/{user}/enable */

#endif
