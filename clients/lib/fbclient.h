/* libfbclient: code shared by firebreak's clients (fb-agent, fbctl, fb-fleet):
 * a libcurl easy-handle HTTP(S) client with bearer token, CA bundle, timeouts,
 * ETag/If-None-Match and bounded response bodies; a key = value config reader. */
#ifndef FB_CLIENT_H
#define FB_CLIENT_H

#include "fb.h"

#include <stddef.h>
#include <stdint.h>

#define FBC_MAX_TOKEN  512         /* bytes of a bearer token */
#define FBC_MAX_ETAG   256         /* bytes of an ETag value (quotes included) */
#define FBC_MAX_URL    2048        /* bytes of base URL + path */
#define FBC_MAX_CONF   (64 * 1024) /* bytes of a config file */
#define FBC_MAX_LINE   4096        /* bytes of one config line */
#define FBC_MAX_ERRMSG 512         /* bytes of a server error message kept */

/* Options of a client; strings are copied by fbc_new. */
struct fbc_opts {
	const char *base_url;    /* "https://host:port", no trailing path */
	const char *ca_bundle;   /* PEM file of trusted CAs, or NULL for the system store */
	long connect_timeout_ms; /* <= 0: 5000 */
	long timeout_ms;         /* whole request; <= 0: 30000 */
	const char *user_agent;  /* NULL: "firebreak-client" */
};

struct fbc; /* opaque client: one libcurl easy handle, reused (keep-alive) */

/* One request. path starts with '/'. body may be NULL (no body). */
struct fbc_req {
	const char *method; /* "GET", "POST", ... */
	const char *path;
	const void *body; /* sent as application/json */
	size_t body_len;
	const char *if_none_match; /* ETag to send as If-None-Match, or NULL */
	int auth;                  /* 1: send the bearer token set with fbc_set_token */
	size_t max_body;           /* response body cap (> 0 required) */
};

/* A response. body is NUL-terminated after a successful fbc_do. */
struct fbc_resp {
	long status;
	struct fb_buf body;
	char etag[FBC_MAX_ETAG];      /* "" when absent or too long */
	char err_code[64];            /* from {"error":{"code",...}} bodies, else "" */
	char err_msg[FBC_MAX_ERRMSG]; /* ditto "message" */
};

/* Process-wide libcurl set-up; call once before threads start. */
enum fb_rc fbc_global_init(void) FB_MUSTCHECK;
void fbc_global_cleanup(void);

/* New client. *out: caller frees with fbc_free(). FB_EINVAL for a missing or
 * non-http(s) base URL or a CA bundle that cannot be read. */
enum fb_rc fbc_new(const struct fbc_opts *opts, struct fbc **out, struct fb_err *err) FB_MUSTCHECK;
/* Wipes the token and frees; NULL is accepted. */
void fbc_free(struct fbc *c);
/* Copy token (NULL clears); the previous one is wiped. FB_ETOOBIG past
 * FBC_MAX_TOKEN, FB_EINVAL on a control character. */
enum fb_rc fbc_set_token(struct fbc *c, const char *token) FB_MUSTCHECK;
/* Borrowed, valid while c lives. */
const char *fbc_base_url(const struct fbc *c);

void fbc_resp_init(struct fbc_resp *r);
void fbc_resp_cleanup(struct fbc_resp *r);

/* Perform req and fill resp (initialised by the caller with fbc_resp_init;
 * reset here). FB_OK whenever an HTTP answer arrived, whatever its status;
 * FB_EIO on a transport or TLS failure (err names libcurl's reason);
 * FB_ETOOBIG when the body exceeds req->max_body (the transfer is aborted).
 * For a 4xx/5xx with the JSON error body, err_code/err_msg are filled. */
enum fb_rc fbc_do(struct fbc *c, const struct fbc_req *req, struct fbc_resp *resp,
                  struct fb_err *err) FB_MUSTCHECK;

/* ---- key = value config files ------------------------------------------ */

/* Called per setting; return FB_OK to go on, anything else stops the read
 * (fill err with the reason; the reader prefixes "FILE:LINE: "). */
typedef enum fb_rc (*fbc_conf_cb)(void *ctx, const char *key, const char *value,
                                  struct fb_err *err);

/* Read path: lines "key = value"; blank lines and lines starting with '#' are
 * skipped; key is [A-Za-z0-9_.-]+, whitespace around key and value trimmed,
 * a value may be wrapped in double quotes (kept verbatim inside). At most
 * FBC_MAX_CONF bytes, FBC_MAX_LINE per line. FB_EIO when unreadable,
 * FB_EINVAL on a malformed line, or the callback's result. */
enum fb_rc fbc_conf_read(const char *path, fbc_conf_cb cb, void *ctx,
                         struct fb_err *err) FB_MUSTCHECK;

#endif
