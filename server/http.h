/* libmicrohttpd glue: the request object handlers see, reply helpers, and
 * the one function that turns an error into a JSON body and a log line. */
#ifndef FB_HTTP_H
#define FB_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "fb.h"

enum http_method {
	HTTP_GET = 1,
	HTTP_POST = 2,
	HTTP_PUT = 4,
	HTTP_DELETE = 8,
	HTTP_PATCH = 16,
};

/* Roles a route admits (bit mask); 0 means no authentication. */
enum role {
	ROLE_AGENT = 1,
	ROLE_RELEASE = 2,
	ROLE_SOC = 4,
	ROLE_ADMIN = 8,
};
#define ROLES_OPERATOR (ROLE_RELEASE | ROLE_SOC | ROLE_ADMIN)

/* How a request was authenticated. */
enum auth_via {
	AUTH_VIA_NONE = 0,
	AUTH_VIA_TOKEN, /* an API token (Authorization: Bearer fb_...) */
	AUTH_VIA_AGENT, /* an agent token (fa_...) */
	AUTH_VIA_PROXY, /* an identity asserted by the trusted SSO proxy (sso.h) */
};

/* Who made the request, once authenticated. */
struct auth {
	int authenticated;
	enum role role; /* the role this request acts in (one of roles) */
	unsigned roles; /* every role the credential holds: a token's one role,
	                 * or the roles of the user the proxy named */
	enum auth_via via;
	int64_t token_id; /* api_tokens.id, or 0 */
	int64_t agent_id; /* for agent credentials, or 0 */
	int64_t user_id;  /* users.id of the person or machine, or 0 */
	char name[129];   /* the user's name (agent-N for agents), for audit records */
	char token_name[129];
	int64_t tenant_id; /* tenants.id of a tenant's user, 0 for the vendor's */
	char tenant[65];   /* its name, or "" */
};

struct http_req;
typedef void (*http_handler)(struct http_req *req);

struct route {
	enum http_method method;
	const char *pattern; /* "/v1/rollouts/{id}/halt": {x} matches one segment */
	unsigned roles;      /* enum role mask; 0 = public */
	size_t max_body;     /* 0 = the max_body setting; ROUTE_UPLOAD = sized for max_upload */
	http_handler handler;
};

#define ROUTE_UPLOAD ((size_t)-1)
/* In a route's roles: a tenant's credential may use it (on its own tenant's
 * things only: the handler scopes it). Every other route answers a tenant's
 * credential 404 as if it did not exist (http_no_route). */
#define ROUTE_TENANT 0x100u

struct http_hdr {
	const char *name;
	const char *value;
};

/* Start serving (epoll, internal thread pool) with the settings in cfg. */
/* Who checks the credentials of a route that admits only some roles: fills
 * *out and returns 1, or replies (401, 403, 503) and returns 0. The
 * transport knows no tokens; the wiring (main.c) sets auth's, before
 * http_start. */
typedef int (*http_authenticator)(struct http_req *req, const char *authorization, unsigned roles,
                                  struct auth *out);
void http_set_authenticator(http_authenticator fn);
enum fb_rc http_start(const struct route *routes, size_t nroutes, struct fb_err *err) FB_MUSTCHECK;
/* The port actually bound (useful with port 0). */
int http_port(void);
/* Stop accepting, let in-flight requests finish for up to grace_s seconds,
 * then stop the daemon. */
void http_stop(int grace_s);

/* Request accessors; returned strings are borrowed, valid while req lives. */
const char *http_req_header(struct http_req *req, const char *name);
const char *http_req_query(struct http_req *req, const char *name);
const char *http_req_param(struct http_req *req, const char *name);
const char *http_req_body(struct http_req *req, size_t *len);
const char *http_req_id(struct http_req *req);
/* The address of the TCP peer (for the SSO proxy check), borrowed, valid
 * while req lives; NULL if unknown. */
const struct sockaddr *http_req_peer(struct http_req *req);
const struct auth *http_req_auth(struct http_req *req);
/* 404, exactly as for a path no route matches. */
void http_no_route(struct http_req *req);
enum http_method http_req_method(struct http_req *req);

/* Parse the body as a JSON object. On failure replies 400 (or 415 for a
 * wrong content type) with the parser's line/column and returns NULL.
 * Caller owns the result (json_decref). */
json_t *http_req_json_or_reply(struct http_req *req);

/* Reply with a copy of body. hdrs may be NULL. */
void http_reply(struct http_req *req, unsigned status, const char *content_type, const void *body,
                size_t len, const struct http_hdr *hdrs, size_t nhdrs);
/* Reply with a JSON document; steals body. */
void http_reply_json(struct http_req *req, unsigned status, json_t *body);
/* Reply {"error":{"code":code,"message":...}} with status and log it (warn
 * for 5xx, debug otherwise). */
void http_error(struct http_req *req, unsigned status, const char *code, const char *fmt, ...)
        FB_PRINTF(4, 5);
/* 503 "unavailable" with msg as the message (a database error, the pool
 * exhausted, out of memory): the request may be retried, here or on
 * another replica. */
void http_unavailable(struct http_req *req, const char *msg);

/* Streaming replies (server-sent events). The reader is called when the
 * socket can take more; it returns bytes written, 0 after suspending the
 * connection (http_stream_suspend) until http_stream_resume, or -1 to end.
 * free_cb(cls) runs when the response is done. */
typedef long (*http_stream_reader)(void *cls, char *buf, size_t max);
void http_reply_stream(struct http_req *req, const char *content_type, http_stream_reader reader,
                       void *cls, void (*free_cb)(void *cls));
/* Opaque connection handle for suspend/resume. */
void *http_req_connection(struct http_req *req);
void http_stream_suspend(void *connection);
void http_stream_resume(void *connection);

/* Route table (routes.c) and metrics hooks (metrics.c). */
extern const struct route routes[];
extern const size_t routes_count;

#endif
