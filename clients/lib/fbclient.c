/* libfbclient: libcurl easy-handle HTTP(S) for firebreak's clients and the
 * key = value configuration reader. */
#include "fbclient.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct fbc {
	CURL *curl;
	char *base;
	char *ca;
	char *ua;
	long connect_ms;
	long timeout_ms;
	char token[FBC_MAX_TOKEN + 1];
};

enum fb_rc fbc_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? FB_OK : FB_EINTERNAL;
}

void fbc_global_cleanup(void)
{
	curl_global_cleanup();
}

enum fb_rc fbc_new(const struct fbc_opts *opts, struct fbc **out, struct fb_err *err)
{
	*out = NULL;
	enum fb_rc rc = FB_OK;
	struct fbc *c = NULL;
	if (!opts || !opts->base_url || !*opts->base_url) {
		fb_err_set(err, "no server URL configured");
		return FB_EINVAL;
	}
	const char *u = opts->base_url;
	if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) {
		fb_err_set(err, "server URL %s: must start with http:// or https://", u);
		return FB_EINVAL;
	}
	if (strlen(u) > FBC_MAX_URL / 2) {
		fb_err_set(err, "server URL longer than %d bytes", FBC_MAX_URL / 2);
		return FB_EINVAL;
	}
	if (opts->ca_bundle && access(opts->ca_bundle, R_OK) != 0) {
		fb_err_set(err, "CA bundle %s: cannot be read", opts->ca_bundle);
		return FB_EINVAL;
	}
	c = calloc(1, sizeof *c);
	if (!c)
		return FB_ENOMEM;
	c->base = strdup(u);
	c->ca = opts->ca_bundle ? strdup(opts->ca_bundle) : NULL;
	c->ua = strdup(opts->user_agent ? opts->user_agent : "firebreak-client");
	c->curl = curl_easy_init();
	if (!c->base || !c->ua || (opts->ca_bundle && !c->ca) || !c->curl) {
		rc = FB_ENOMEM;
		goto out;
	}
	size_t bl = strlen(c->base);
	while (bl > 0 && c->base[bl - 1] == '/')
		c->base[--bl] = '\0';
	c->connect_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 5000;
	c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
	*out = c;
	c = NULL;
out:
	fbc_free(c);
	return rc;
}

void fbc_free(struct fbc *c)
{
	if (!c)
		return;
	sodium_memzero(c->token, sizeof c->token);
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->base);
	free(c->ca);
	free(c->ua);
	free(c);
}

enum fb_rc fbc_set_token(struct fbc *c, const char *token)
{
	sodium_memzero(c->token, sizeof c->token);
	if (!token)
		return FB_OK;
	size_t n = strlen(token);
	if (n > FBC_MAX_TOKEN)
		return FB_ETOOBIG;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)token[i] < 0x21 || token[i] == 0x7f)
			return FB_EINVAL;
	memcpy(c->token, token, n + 1);
	return FB_OK;
}

const char *fbc_base_url(const struct fbc *c)
{
	return c->base;
}

void fbc_resp_init(struct fbc_resp *r)
{
	memset(r, 0, sizeof *r);
	fb_buf_init(&r->body, 0);
}

void fbc_resp_cleanup(struct fbc_resp *r)
{
	fb_buf_cleanup(&r->body);
	memset(r, 0, sizeof *r);
}

struct sink {
	struct fbc_resp *resp;
	int toobig;
};

static size_t body_cb(char *data, size_t size, size_t nmemb, void *ud)
{
	struct sink *s = ud;
	size_t n = size * nmemb;
	if (fb_buf_add(&s->resp->body, data, n) != FB_OK) {
		s->toobig = 1;
		return 0; /* aborts the transfer */
	}
	return n;
}

/* Header lines: keep the ETag (a new status line resets it, e.g. after 100). */
static size_t header_cb(char *data, size_t size, size_t nmemb, void *ud)
{
	struct sink *s = ud;
	size_t n = size * nmemb;
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		s->resp->etag[0] = '\0';
		return n;
	}
	if (n > 5 && strncasecmp(data, "etag:", 5) == 0) {
		const char *v = data + 5;
		size_t vl = n - 5;
		while (vl && (*v == ' ' || *v == '\t')) {
			v++;
			vl--;
		}
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl < sizeof s->resp->etag) {
			memcpy(s->resp->etag, v, vl);
			s->resp->etag[vl] = '\0';
		}
	}
	return n;
}

/* Fill err_code/err_msg from an error body, when it is one. */
static void parse_error_body(struct fbc_resp *r)
{
	if (r->status < 400 || r->body.len == 0)
		return;
	json_t *j = json_loadb(r->body.data, r->body.len, 0, NULL);
	json_t *e = json_object_get(j, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	if (code)
		snprintf(r->err_code, sizeof r->err_code, "%s", code);
	if (msg)
		snprintf(r->err_msg, sizeof r->err_msg, "%s", msg);
	json_decref(j);
}

enum fb_rc fbc_do(struct fbc *c, const struct fbc_req *req, struct fbc_resp *resp,
                  struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	struct curl_slist *h = NULL;
	char url[FBC_MAX_URL], line[FBC_MAX_TOKEN + FBC_MAX_ETAG + 64];
	fb_buf_cleanup(&resp->body);
	fbc_resp_init(resp);
	fb_buf_init(&resp->body, req->max_body);
	if (!req->path || req->path[0] != '/' || req->max_body == 0) {
		fb_err_set(err, "request: path must start with '/' and a body cap is required");
		return FB_EINVAL;
	}
	if (snprintf(url, sizeof url, "%s%s", c->base, req->path) >= (int)sizeof url) {
		fb_err_set(err, "request URL longer than %d bytes", FBC_MAX_URL);
		return FB_EINVAL;
	}
	CURL *k = c->curl;
	curl_easy_reset(k);
	if (req->auth) {
		if (!c->token[0]) {
			fb_err_set(err, "%s %s: no token", req->method, req->path);
			return FB_EINVAL;
		}
		snprintf(line, sizeof line, "Authorization: Bearer %s", c->token);
		struct curl_slist *n = curl_slist_append(h, line);
		sodium_memzero(line, sizeof line);
		if (!n) {
			rc = FB_ENOMEM;
			goto out;
		}
		h = n;
	}
	if (req->if_none_match && *req->if_none_match) {
		if (snprintf(line, sizeof line, "If-None-Match: %s", req->if_none_match) >=
		    (int)sizeof line) {
			fb_err_set(err, "ETag too long");
			rc = FB_EINVAL;
			goto out;
		}
		struct curl_slist *n = curl_slist_append(h, line);
		if (!n) {
			rc = FB_ENOMEM;
			goto out;
		}
		h = n;
	}
	static const char *const fixed[] = {"Expect:", "Accept: application/json"};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		struct curl_slist *n = curl_slist_append(h, fixed[i]);
		if (!n) {
			rc = FB_ENOMEM;
			goto out;
		}
		h = n;
	}
	if (req->body) {
		struct curl_slist *n = curl_slist_append(h, "Content-Type: application/json");
		if (!n) {
			rc = FB_ENOMEM;
			goto out;
		}
		h = n;
		curl_easy_setopt(k, CURLOPT_POSTFIELDS, req->body);
		curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	}
	struct sink s = {resp, 0};
	char ebuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(k, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(k, CURLOPT_URL, url);
	curl_easy_setopt(k, CURLOPT_CUSTOMREQUEST, req->method);
	if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(k, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(k, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(k, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(k, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(k, CURLOPT_HEADERDATA, &s);
	curl_easy_setopt(k, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
	curl_easy_setopt(k, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(k, CURLOPT_USERAGENT, c->ua);
	curl_easy_setopt(k, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(k, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(k, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(k, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(k, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (c->ca)
		curl_easy_setopt(k, CURLOPT_CAINFO, c->ca);
	CURLcode cr = curl_easy_perform(k);
	/* The header list and the error buffer must outlive the transfer only. */
	curl_easy_setopt(k, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(k, CURLOPT_ERRORBUFFER, NULL);
	if (s.toobig) {
		fb_err_set(err, "%s %s: response body over %zu bytes", req->method, req->path,
		           req->max_body);
		rc = FB_ETOOBIG;
		goto out;
	}
	if (cr != CURLE_OK) {
		fb_err_set(err, "%s %s: %s%s%s", req->method, url, curl_easy_strerror(cr),
		           ebuf[0] ? ": " : "", ebuf);
		rc = FB_EIO;
		goto out;
	}
	curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &resp->status);
	if (fb_buf_add(&resp->body, "", 0) != FB_OK) { /* NUL-terminate an empty body */
		rc = FB_ENOMEM;
		goto out;
	}
	parse_error_body(resp);
out:
	/* The list holds a copy of the bearer token: wipe it before freeing. */
	for (struct curl_slist *n = h; n; n = n->next)
		sodium_memzero(n->data, strlen(n->data));
	curl_slist_free_all(h);
	return rc;
}

/* ---- config files -------------------------------------------------------- */

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

enum fb_rc fbc_conf_read(const char *path, fbc_conf_cb cb, void *ctx, struct fb_err *err)
{
	unsigned char *data = NULL;
	size_t len = 0;
	enum fb_rc rc = fb_file_read(path, FBC_MAX_CONF, &data, &len);
	if (rc == FB_ETOOBIG) {
		fb_err_set(err, "%s: larger than %d bytes", path, FBC_MAX_CONF);
		return rc;
	}
	if (rc) {
		fb_err_set(err, "%s: cannot be read", path);
		return FB_EIO;
	}
	char *p = (char *)data, *end = p + len;
	char line[FBC_MAX_LINE + 1];
	for (unsigned lineno = 1; p < end; lineno++) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (ll > FBC_MAX_LINE) {
			fb_err_set(err, "%s:%u: line longer than %d bytes", path, lineno,
			           FBC_MAX_LINE);
			rc = FB_EINVAL;
			goto out;
		}
		memcpy(line, p, ll);
		line[ll] = '\0';
		p = nl ? nl + 1 : end;
		if (memchr(line, '\0', ll)) {
			fb_err_set(err, "%s:%u: NUL byte", path, lineno);
			rc = FB_EINVAL;
			goto out;
		}
		char *s = trim(line);
		if (!*s || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			fb_err_set(err, "%s:%u: expected \"key = value\"", path, lineno);
			rc = FB_EINVAL;
			goto out;
		}
		*eq = '\0';
		char *key = trim(s), *val = trim(eq + 1);
		if (!*key) {
			fb_err_set(err, "%s:%u: empty key", path, lineno);
			rc = FB_EINVAL;
			goto out;
		}
		for (const char *k = key; *k; k++)
			if (!isalnum((unsigned char)*k) && *k != '_' && *k != '-' && *k != '.') {
				fb_err_set(err, "%s:%u: bad character in key \"%s\"", path, lineno,
				           key);
				rc = FB_EINVAL;
				goto out;
			}
		size_t vl = strlen(val);
		if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
			val[vl - 1] = '\0';
			val++;
		}
		struct fb_err cerr = {""};
		rc = cb(ctx, key, val, &cerr);
		if (rc) {
			fb_err_set(err, "%s:%u: %s", path, lineno, cerr.msg);
			goto out;
		}
	}
out:
	if (data)
		sodium_memzero(data, len); /* config files may carry an enrollment token */
	free(data);
	return rc;
}
