/* Single sign-on through a trusted authenticating reverse proxy
 * (oauth2-proxy style): an identity header is believed only from the
 * configured proxy addresses AND with the shared secret header. Everything
 * else about the request is the authenticator's (auth.c). */
#ifndef FB_SSO_H
#define FB_SSO_H

#include "fb.h"
#include "http.h"

enum sso_match {
	SSO_BY_EMAIL, /* sso_email_header names users.email */
	SSO_BY_NAME,  /* sso_user_header names users.name */
};

/* Load the settings from cfg (sso_proxies, sso_secret_file, header names,
 * sso_match): FB_OK with single sign-on off when sso_proxies is empty. On
 * failure err names the key. The secret is kept only as its SHA-256. */
enum fb_rc sso_init(struct fb_err *err) FB_MUSTCHECK;
void sso_cleanup(void);
int sso_enabled(void);
enum sso_match sso_match_mode(void);

/* The identity req asserts through the proxy: 1 with *value (borrowed from
 * req) and *header (the header's name, static) when req comes from a
 * configured proxy address, carries the right secret and the identity
 * header that sso_match selects; 0 otherwise. Identity headers from any
 * other peer, or without the right secret, are ignored (and logged, at
 * most every 10 s). */
int sso_identity(struct http_req *req, const char **value, const char **header);

/* 1 when a request authenticated through the proxy may proceed: reads
 * always, changes only with the header X-Requested-With (which a
 * cross-site form or no-cors fetch cannot send), so that the proxy's
 * session cookie cannot be ridden from another site. */
int sso_csrf_ok(struct http_req *req);

#endif
