/* libmicrohttpd glue: request life cycle, body caps, dispatch through the
 * route table, authentication, JSON errors, graceful stop. */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "metrics.h"

#define MAX_PARAMS 4
#define MAX_URL    2048

struct http_req {
	struct MHD_Connection *conn;
	enum http_method method;
	const struct route *route;
	int route_idx; /* index into routes[], -1 when none matched */
	int path_matched;
	char path[MAX_URL];
	const char *param_names[MAX_PARAMS];
	size_t param_name_lens[MAX_PARAMS];
	char *param_values[MAX_PARAMS];
	int nparams;
	struct fb_buf body;
	size_t body_cap;
	int too_big;
	int replied;
	unsigned status;
	enum MHD_Result queued;
	int64_t start_us;
	char id[17];
	struct auth auth;
};

/* Set once at start-up (http_set_authenticator), read by every request. */
static http_authenticator g_authenticate;

void http_set_authenticator(http_authenticator fn)
{
	g_authenticate = fn;
}

static struct MHD_Daemon *g_daemon;
static const struct route *g_routes;
static size_t g_nroutes;
static int g_active; /* requests between first call and completion */
static char *g_tls_cert, *g_tls_key;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static enum http_method parse_method(const char *m)
{
	if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
		return HTTP_GET;
	if (strcmp(m, "POST") == 0)
		return HTTP_POST;
	if (strcmp(m, "PUT") == 0)
		return HTTP_PUT;
	if (strcmp(m, "DELETE") == 0)
		return HTTP_DELETE;
	if (strcmp(m, "PATCH") == 0)
		return HTTP_PATCH;
	return 0;
}

/* Match path against pattern; on success fill req's params (pointers into
 * req->path, which is modified: segment ends become NULs only on success). */
static int pattern_match(struct http_req *req, const char *pattern)
{
	const char *p = pattern, *s = req->path;
	int n = 0;
	const char *names[MAX_PARAMS];
	size_t nlens[MAX_PARAMS];
	const char *vals[MAX_PARAMS];
	size_t vlens[MAX_PARAMS];
	while (*p && *s) {
		if (*p == '{') {
			const char *close = strchr(p, '}');
			if (!close || n >= MAX_PARAMS)
				return 0;
			size_t vlen = strcspn(s, "/");
			if (vlen == 0)
				return 0;
			names[n] = p + 1;
			nlens[n] = (size_t)(close - p - 1);
			vals[n] = s;
			vlens[n] = vlen;
			n++;
			p = close + 1;
			s += vlen;
			continue;
		}
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
	if (*p || *s)
		return 0;
	for (int i = 0; i < n; i++) {
		free(req->param_values[i]);
		req->param_values[i] = strndup(vals[i], vlens[i]);
		req->param_names[i] = names[i];
		req->param_name_lens[i] = nlens[i];
	}
	req->nparams = n;
	return 1;
}

static void route_request(struct http_req *req)
{
	req->route = NULL;
	req->route_idx = -1;
	req->path_matched = 0;
	for (size_t i = 0; i < g_nroutes; i++) {
		if (!pattern_match(req, g_routes[i].pattern))
			continue;
		req->path_matched = 1;
		if (g_routes[i].method == req->method) {
			req->route = &g_routes[i];
			req->route_idx = (int)i;
			return;
		}
	}
}

const char *http_req_header(struct http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_req_query(struct http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_req_param(struct http_req *req, const char *name)
{
	size_t len = strlen(name);
	for (int i = 0; i < req->nparams; i++)
		if (req->param_name_lens[i] == len && strncmp(req->param_names[i], name, len) == 0)
			return req->param_values[i];
	return NULL;
}

const char *http_req_body(struct http_req *req, size_t *len)
{
	*len = req->body.len;
	return req->body.data ? req->body.data : "";
}

const char *http_req_id(struct http_req *req)
{
	return req->id;
}

const struct sockaddr *http_req_peer(struct http_req *req)
{
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	return ci ? ci->client_addr : NULL;
}

const struct auth *http_req_auth(struct http_req *req)
{
	return &req->auth;
}

enum http_method http_req_method(struct http_req *req)
{
	return req->method;
}

json_t *http_req_json_or_reply(struct http_req *req)
{
	const char *ct = http_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (ct && strncasecmp(ct, "application/json", 16) != 0) {
		http_error(req, 415, "unsupported_media_type",
		           "request body must be application/json, found '%s'", ct);
		return NULL;
	}
	if (req->body.len == 0) {
		http_error(req, 400, "bad_json",
		           "request body is empty; a JSON object is required");
		return NULL;
	}
	json_error_t jerr;
	json_t *j = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		http_error(req, 400, "bad_json", "malformed JSON at line %d, column %d: %s",
		           jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		http_error(req, 400, "bad_json", "request body must be a JSON object");
		return NULL;
	}
	return j;
}

void http_reply(struct http_req *req, unsigned status, const char *content_type, const void *body,
                size_t len, const struct http_hdr *hdrs, size_t nhdrs)
{
	if (req->replied) {
		log_error("BUG: second reply to one request (status %u)", status);
		return;
	}
	struct MHD_Response *r =
	        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r) {
		req->queued = MHD_NO;
		req->replied = 1;
		return;
	}
	if (content_type)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(r, "X-Request-Id", req->id);
	for (size_t i = 0; i < nhdrs; i++)
		MHD_add_response_header(r, hdrs[i].name, hdrs[i].value);
	req->queued = MHD_queue_response(req->conn, status, r);
	MHD_destroy_response(r);
	req->replied = 1;
	req->status = status;
}

struct stream_ctx {
	http_stream_reader reader;
	void *cls;
	void (*free_cb)(void *cls);
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct stream_ctx *s = cls;
	long n = s->reader(s->cls, buf, max);
	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct stream_ctx *s = cls;
	if (s->free_cb)
		s->free_cb(s->cls);
	free(s);
}

void http_reply_stream(struct http_req *req, const char *content_type, http_stream_reader reader,
                       void *cls, void (*free_cb)(void *cls))
{
	struct stream_ctx *s = calloc(1, sizeof *s);
	struct MHD_Response *r = NULL;
	if (s) {
		s->reader = reader;
		s->cls = cls;
		s->free_cb = free_cb;
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s,
		                                      stream_free);
	}
	if (!r) {
		if (free_cb)
			free_cb(cls);
		free(s);
		http_error(req, 503, "unavailable", "cannot start the stream");
		return;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	MHD_add_response_header(r, "X-Request-Id", req->id);
	req->queued = MHD_queue_response(req->conn, 200, r);
	MHD_destroy_response(r);
	req->replied = 1;
	req->status = 200;
}

void *http_req_connection(struct http_req *req)
{
	return req->conn;
}

void http_stream_suspend(void *connection)
{
	MHD_suspend_connection(connection);
}

void http_stream_resume(void *connection)
{
	MHD_resume_connection(connection);
}

void http_reply_json(struct http_req *req, unsigned status, json_t *body)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!s) {
		http_reply(req, 500, "application/json",
		           "{\"error\":{\"code\":\"internal\",\"message\":\"could not encode "
		           "response\"}}",
		           72, NULL, 0);
		return;
	}
	http_reply(req, status, "application/json", s, strlen(s), NULL, 0);
	free(s);
}

void http_error(struct http_req *req, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (status >= 500)
		log_warn("%u %s: %s", status, code, msg);
	else
		log_debug("%u %s: %s", status, code, msg);
	json_t *m = json_string(msg);
	if (!m)
		m = json_string("(message not valid UTF-8)");
	json_t *body = json_pack("{s:{s:s,s:o}}", "error", "code", code, "message", m);
	http_reply_json(req, status, body);
}

void http_no_route(struct http_req *req)
{
	http_error(req, 404, "not_found", "no route for %s", req->path);
}

static void dispatch(struct http_req *req)
{
	if (req->too_big) {
		http_error(req, 413, "body_too_large", "request body exceeds %zu bytes",
		           req->body_cap);
		return;
	}
	if (!req->route) {
		if (req->path_matched)
			http_error(req, 405, "method_not_allowed", "method not allowed on %s",
			           req->path);
		else
			http_no_route(req);
		return;
	}
	if (req->route->roles) {
		if (!g_authenticate) {
			http_error(req, 503, "unavailable", "no authenticator is configured");
			return;
		}
		if (!g_authenticate(req, http_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION),
		                    req->route->roles, &req->auth))
			return;
	}
	req->route->handler(req);
	if (!req->replied)
		http_error(req, 500, "internal", "handler for %s did not reply",
		           req->route->pattern);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	(void)cls;
	(void)version;
	struct http_req *req = *con_cls;
	if (!req) {
		req = calloc(1, sizeof *req);
		if (!req)
			return MHD_NO;
		__atomic_add_fetch(&g_active, 1, __ATOMIC_SEQ_CST);
		req->conn = conn;
		req->start_us = now_us();
		req->route_idx = -1;
		unsigned char rnd[8];
		randombytes_buf(rnd, sizeof rnd);
		fb_hex_encode(rnd, sizeof rnd, req->id);
		req->method = parse_method(method);
		snprintf(req->path, sizeof req->path, "%s", url);
		route_request(req); /* unknown methods still learn 405 vs 404 */
		req->body_cap = req->route && req->route->max_body ? req->route->max_body
		                                                   : (size_t)cfg.max_body;
		if (req->body_cap == ROUTE_UPLOAD) /* base64 of max_upload plus the manifest */
			req->body_cap = (size_t)cfg.max_upload / 3 * 4 + 4 + ((size_t)1 << 20);
		fb_buf_init(&req->body, req->body_cap);
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                             MHD_HTTP_HEADER_CONTENT_LENGTH);
		int64_t clen;
		if (cl && fb_parse_i64(cl, 0, INT64_MAX, &clen) == FB_OK &&
		    (uint64_t)clen > req->body_cap) {
			/* Refuse before reading the body. Answering on the first
			 * call makes MHD close the connection afterwards, which is
			 * what an oversized upload deserves. */
			req->too_big = 1;
			*con_cls = req;
			log_set_request_id(req->id);
			dispatch(req);
			log_set_request_id(NULL);
			if (req->queued == MHD_YES)
				return MHD_YES;
			req->replied = 0; /* could not queue: answer after the body */
			return MHD_YES;
		}
		*con_cls = req;
		return MHD_YES;
	}
	if (*upload_data_size) {
		/* Bodies without a usable Content-Length (chunked) are read up to
		 * the cap; the rest is discarded and 413 answered at the end. */
		if (!req->too_big &&
		    fb_buf_add(&req->body, upload_data, *upload_data_size) != FB_OK) {
			req->too_big = 1;
			fb_buf_cleanup(&req->body);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (req->replied)
		return req->queued;
	log_set_request_id(req->id);
	dispatch(req);
	log_set_request_id(NULL);
	return req->queued;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	struct http_req *req = *con_cls;
	if (!req)
		return;
	int64_t us = now_us() - req->start_us;
	metrics_observe_request(req->route_idx, req->replied ? req->status : 0, us);
	if (log_min_level <= LOG_DEBUG) {
		log_set_request_id(req->id);
		log_debug("%s %u %.3fms%s", req->path, req->status, (double)us / 1000.0,
		          toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (terminated early)");
		log_set_request_id(NULL);
	}
	for (int i = 0; i < MAX_PARAMS; i++)
		free(req->param_values[i]);
	fb_buf_cleanup(&req->body);
	free(req);
	*con_cls = NULL;
	__atomic_sub_fetch(&g_active, 1, __ATOMIC_SEQ_CST);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	log_warn("http: %s", msg);
}

enum fb_rc http_start(const struct route *rt, size_t nroutes, struct fb_err *err)
{
	g_routes = rt;
	g_nroutes = nroutes;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
	                 MHD_ALLOW_SUSPEND_RESUME;
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)cfg.port);
	if (inet_pton(AF_INET, cfg.listen, &sa.sin_addr) != 1) {
		fb_err_set(err, "listen: '%s' is not an IPv4 address", cfg.listen);
		return FB_EINVAL;
	}
	int tls = *cfg.tls_cert || *cfg.tls_key;
	if (tls) {
		size_t len;
		if (!*cfg.tls_cert || !*cfg.tls_key) {
			fb_err_set(err, "TLS needs both tls_cert and tls_key");
			return FB_EINVAL;
		}
		if (fb_file_read(cfg.tls_cert, 1 << 20, (unsigned char **)&g_tls_cert, &len) ||
		    fb_file_read(cfg.tls_key, 1 << 20, (unsigned char **)&g_tls_key, &len)) {
			fb_err_set(err, "cannot read tls_cert %s or tls_key %s", cfg.tls_cert,
			           cfg.tls_key);
			return FB_EIO;
		}
		flags |= MHD_USE_TLS;
	}
	g_daemon = MHD_start_daemon(
	        flags, (uint16_t)cfg.port, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER,
	        mhd_log, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_THREAD_POOL_SIZE,
	        (unsigned)cfg.threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg.connection_limit,
	        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg.request_timeout,
	        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_LISTENING_ADDRESS_REUSE,
	        1, tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, g_tls_cert,
	        MHD_OPTION_HTTPS_MEM_KEY, g_tls_key, MHD_OPTION_END);
	if (!g_daemon) {
		fb_err_set(err, "cannot listen on %s:%lld (in use, or bad TLS files?)", cfg.listen,
		           (long long)cfg.port);
		return FB_EIO;
	}
	return FB_OK;
}

int http_port(void)
{
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(g_daemon, MHD_DAEMON_INFO_BIND_PORT);
	return i ? i->port : -1;
}

void http_stop(int grace_s)
{
	if (!g_daemon)
		return;
	MHD_socket s = MHD_quiesce_daemon(g_daemon);
	if (s != MHD_INVALID_SOCKET)
		close(s);
	int64_t deadline = fb_mono_ms() + (int64_t)grace_s * 1000;
	while (__atomic_load_n(&g_active, __ATOMIC_SEQ_CST) > 0 && fb_mono_ms() < deadline)
		usleep(10000);
	int left = __atomic_load_n(&g_active, __ATOMIC_SEQ_CST);
	if (left)
		log_warn("stopping with %d request(s) still in flight", left);
	MHD_stop_daemon(g_daemon);
	g_daemon = NULL;
	free(g_tls_cert);
	free(g_tls_key);
	g_tls_cert = g_tls_key = NULL;
}

void http_unavailable(struct http_req *req, const char *msg)
{
	http_error(req, 503, "unavailable", "%s", msg ? msg : "unavailable");
}
