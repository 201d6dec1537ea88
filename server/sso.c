/* Single sign-on: which proxy is trusted, with which secret, and the
 * identity a trusted proxy asserts. */
#include "sso.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"
#include "netlist.h"

#define SSO_SECRET_MIN 32
#define SSO_SECRET_MAX 4096

static struct netlist *g_proxies;
static unsigned char g_secret_hash[FB_SHA256_LEN];
static enum sso_match g_match;
static int64_t g_last_warn_ms;

static enum fb_rc load_secret(struct fb_err *err)
{
	unsigned char *s = NULL;
	size_t len = 0;
	enum fb_rc rc = fb_file_read(cfg.sso_secret_file, SSO_SECRET_MAX, &s, &len);
	if (rc) {
		fb_err_set(err, "sso_secret_file: cannot read %s (%s)", cfg.sso_secret_file,
		           fb_rc_str(rc));
		return rc;
	}
	while (len && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		len--;
	if (len < SSO_SECRET_MIN) {
		fb_err_set(err,
		           "sso_secret_file: %s holds %zu characters; the secret needs %d or more",
		           cfg.sso_secret_file, len, SSO_SECRET_MIN);
		rc = FB_EINVAL;
	} else {
		fb_sha256(s, len, g_secret_hash);
	}
	sodium_memzero(s, len);
	free(s);
	return rc;
}

enum fb_rc sso_init(struct fb_err *err)
{
	sso_cleanup();
	enum fb_rc rc = netlist_parse(cfg.sso_proxies, &g_proxies, err);
	if (rc) {
		fb_err_prefix(err, "sso_proxies");
		return rc;
	}
	if (strcmp(cfg.sso_match, "email") == 0) {
		g_match = SSO_BY_EMAIL;
	} else if (strcmp(cfg.sso_match, "name") == 0) {
		g_match = SSO_BY_NAME;
	} else {
		fb_err_set(err, "sso_match must be email or name (found '%s')", cfg.sso_match);
		return FB_EINVAL;
	}
	if (!g_proxies) {
		if (*cfg.sso_secret_file) {
			fb_err_set(err, "sso_secret_file is set but sso_proxies is empty: name the "
			                "proxy's addresses, or leave both empty");
			return FB_EINVAL;
		}
		return FB_OK;
	}
	if (!*cfg.sso_secret_file) {
		fb_err_set(err, "sso_proxies is set but sso_secret_file is empty: single sign-on "
		                "needs the proxy's shared secret as well as its address");
		sso_cleanup();
		return FB_EINVAL;
	}
	const char *hdrs[][2] = {{"sso_secret_header", cfg.sso_secret_header},
	                         {"sso_user_header", cfg.sso_user_header},
	                         {"sso_email_header", cfg.sso_email_header}};
	for (size_t i = 0; i < 3; i++) {
		const char *h = hdrs[i][1];
		int ok = *h && strlen(h) <= 64;
		for (const char *c = h; ok && *c; c++)
			ok = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
			     (*c >= '0' && *c <= '9') || *c == '-' || *c == '_';
		if (!ok || strcasecmp(h, "Authorization") == 0) {
			fb_err_set(err,
			           "%s must be a header name ([A-Za-z0-9_-], 1 to 64) other than "
			           "Authorization (found '%s')",
			           hdrs[i][0], h);
			sso_cleanup();
			return FB_EINVAL;
		}
	}
	rc = load_secret(err);
	if (rc) {
		sso_cleanup();
		return rc;
	}
	log_info("single sign-on: identities in %s believed from %zu proxy network(s) (%s) with "
	         "the secret in %s",
	         g_match == SSO_BY_EMAIL ? cfg.sso_email_header : cfg.sso_user_header,
	         netlist_count(g_proxies), cfg.sso_proxies, cfg.sso_secret_header);
	return FB_OK;
}

void sso_cleanup(void)
{
	netlist_free(g_proxies);
	g_proxies = NULL;
	sodium_memzero(g_secret_hash, sizeof g_secret_hash);
}

int sso_enabled(void)
{
	return g_proxies != NULL;
}

enum sso_match sso_match_mode(void)
{
	return g_match;
}

static void peer_str(const struct sockaddr *sa, char *buf, size_t n)
{
	snprintf(buf, n, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)n);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
		          (socklen_t)n);
}

/* An identity header that is not believed: worth a warning (someone may be
 * trying), but at most one every 10 s. */
static void warn_ignored(const struct sockaddr *peer, const char *why)
{
	int64_t now = fb_mono_ms(), last = __atomic_load_n(&g_last_warn_ms, __ATOMIC_RELAXED);
	if (last && now - last < 10000)
		return;
	if (!__atomic_compare_exchange_n(&g_last_warn_ms, &last, now, 0, __ATOMIC_RELAXED,
	                                 __ATOMIC_RELAXED))
		return;
	char a[INET6_ADDRSTRLEN + 1];
	peer_str(peer, a, sizeof a);
	log_warn("single sign-on: identity headers from %s ignored: %s", a, why);
}

int sso_identity(struct http_req *req, const char **value, const char **header)
{
	*value = NULL;
	*header = NULL;
	if (!g_proxies) /* off: the headers mean nothing */
		return 0;
	const char *name = cfg.sso_user_header, *email = cfg.sso_email_header;
	const char *uv = http_req_header(req, name), *ev = http_req_header(req, email);
	if (!uv && !ev)
		return 0;
	const struct sockaddr *peer = http_req_peer(req);
	if (!netlist_contains(g_proxies, peer)) {
		warn_ignored(peer, "the peer is not in sso_proxies");
		return 0;
	}
	const char *secret = http_req_header(req, cfg.sso_secret_header);
	unsigned char got[FB_SHA256_LEN];
	if (!secret) {
		warn_ignored(peer, "no shared secret header");
		return 0;
	}
	fb_sha256(secret, strlen(secret), got);
	int same = sodium_memcmp(got, g_secret_hash, sizeof got) == 0;
	sodium_memzero(got, sizeof got);
	if (!same) {
		warn_ignored(peer, "wrong shared secret");
		return 0;
	}
	const char *v = g_match == SSO_BY_EMAIL ? ev : uv;
	if (!v || !*v)
		return 0;
	*value = v;
	*header = g_match == SSO_BY_EMAIL ? email : name;
	return 1;
}

int sso_csrf_ok(struct http_req *req)
{
	return http_req_method(req) == HTTP_GET || http_req_header(req, "X-Requested-With") != NULL;
}
