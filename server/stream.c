/* Server-sent events for operators: a pump thread LISTENs for new
 * notifications, formats them once and appends them to every client's
 * bounded buffer, resuming the suspended connections. */
#include "stream.h"

#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "db.h"
#include "log.h"

#define CLIENT_BUF_MAX ((size_t)1 << 20) /* a slower client is disconnected */
#define KEEPALIVE_MS   15000
#define BACKLOG_MAX    1000

struct client {
	struct client *next;
	void *conn;
	struct fb_buf buf; /* bytes not yet sent */
	size_t sent;       /* of buf */
	int suspended;
	int closing;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct client *g_clients;
static int64_t g_last_id; /* highest notification id broadcast */
static pthread_t g_thread;
static int g_started;
static volatile int g_stop;

/* Append the SSE frames of notifications (id, type, json) in r to b. */
static enum fb_rc frames(PGresult *r, struct fb_buf *b, int64_t *last)
{
	enum fb_rc rc = FB_OK;
	for (int i = 0; i < PQntuples(r) && !rc; i++) {
		/* compact, one line: SSE data must not contain newlines */
		json_t *j = json_loads(PQgetvalue(r, i, 2), 0, NULL);
		char *data = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		rc = fb_buf_printf(b, "id: %s\nevent: %s\ndata: %s\n\n", PQgetvalue(r, i, 0),
		                   PQgetvalue(r, i, 1), data ? data : "{}");
		free(data);
		*last = strtoll(PQgetvalue(r, i, 0), NULL, 10);
	}
	return rc;
}

static PGresult *fetch_after(PGconn *c, int64_t after, struct fb_err *err)
{
	char a[24], lim[16];
	snprintf(a, sizeof a, "%lld", (long long)after);
	snprintf(lim, sizeof lim, "%d", BACKLOG_MAX);
	const char *p[] = {a, lim};
	return db_exec(c, err,
	               "SELECT id, type, json_build_object('id', id, 'type', type, 'rollout_id', "
	               "rollout_id, "
	               "'data', data, 'at', extract(epoch FROM created_at)::bigint)::text "
	               "FROM notifications WHERE id > $1 ORDER BY id LIMIT $2",
	               2, p);
}

/* Caller holds g_mu. Append bytes to every client and wake the waiting. */
static void broadcast_locked(const char *data, size_t len)
{
	for (struct client *cl = g_clients; cl; cl = cl->next) {
		if (cl->closing)
			continue;
		if (fb_buf_add(&cl->buf, data, len) != FB_OK) {
			cl->closing = 1; /* too far behind: it reconnects with Last-Event-ID */
			log_info("event stream: dropping a client %zu bytes behind",
			         cl->buf.len - cl->sent);
		}
		if (cl->suspended) {
			cl->suspended = 0;
			http_stream_resume(cl->conn);
		}
	}
}

static long reader(void *cls, char *out, size_t max)
{
	struct client *cl = cls;
	pthread_mutex_lock(&g_mu);
	long n;
	if (cl->sent < cl->buf.len) {
		size_t left = cl->buf.len - cl->sent;
		n = (long)(left < max ? left : max);
		memcpy(out, cl->buf.data + cl->sent, (size_t)n);
		cl->sent += (size_t)n;
		if (cl->sent == cl->buf.len) {
			fb_buf_reset(&cl->buf);
			cl->sent = 0;
		}
	} else if (cl->closing || g_stop) {
		n = -1;
	} else {
		/* Nothing to send: park the connection until the pump has more. */
		http_stream_suspend(cl->conn);
		cl->suspended = 1;
		n = 0;
	}
	pthread_mutex_unlock(&g_mu);
	return n;
}

static void client_free(void *cls)
{
	struct client *cl = cls;
	pthread_mutex_lock(&g_mu);
	for (struct client **pp = &g_clients; *pp; pp = &(*pp)->next) {
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	}
	pthread_mutex_unlock(&g_mu);
	fb_buf_cleanup(&cl->buf);
	free(cl);
}

void stream_events(struct http_req *req)
{
	const char *last = http_req_header(req, "Last-Event-ID");
	if (!last)
		last = http_req_query(req, "after");
	int64_t after = -1;
	if (last && fb_parse_i64(last, 0, INT64_MAX, &after)) {
		http_error(req, 400, "invalid",
		           "Last-Event-ID must be an event id (a non-negative integer)");
		return;
	}
	struct client *cl = calloc(1, sizeof *cl);
	if (!cl) {
		http_unavailable(req, "out of memory");
		return;
	}
	fb_buf_init(&cl->buf, CLIENT_BUF_MAX);
	cl->conn = http_req_connection(req);
	enum fb_rc rc = fb_buf_addstr(&cl->buf, "retry: 2000\n: firebreak event stream\n\n");
	if (after >= 0) {
		/* Resume: what the client missed, then the live stream. */
		const char *why;
		struct fb_err err;
		PGconn *c = db_acquire(app.db, (int)cfg.db_wait_ms, &why);
		PGresult *r = c ? fetch_after(c, after, &err) : NULL;
		if (c)
			db_release(app.db, c);
		if (!r) {
			fb_buf_cleanup(&cl->buf);
			free(cl);
			http_error(req, 503, "unavailable", "cannot read past events: %s",
			           c ? err.msg : why);
			return;
		}
		int64_t upto = after;
		if (!rc)
			rc = frames(r, &cl->buf, &upto);
		PQclear(r);
	}
	if (rc) {
		fb_buf_cleanup(&cl->buf);
		free(cl);
		http_unavailable(req, "out of memory");
		return;
	}
	pthread_mutex_lock(&g_mu);
	cl->next = g_clients;
	g_clients = cl;
	pthread_mutex_unlock(&g_mu);
	http_reply_stream(req, "text/event-stream", reader, cl, client_free);
}

static void *pump(void *arg)
{
	(void)arg;
	PGconn *c = NULL;
	int64_t last_keepalive = fb_mono_ms();
	while (!g_stop) {
		struct fb_err err;
		if (!c || PQstatus(c) != CONNECTION_OK) {
			if (c)
				PQfinish(c);
			c = PQconnectdb(cfg.db);
			if (PQstatus(c) != CONNECTION_OK ||
			    db_cmd(c, &err, "LISTEN firebreak_events")) {
				PQfinish(c);
				c = NULL;
				for (int t = 0; t < 20 && !g_stop; t++)
					poll(NULL, 0, 50);
				continue;
			}
			if (g_last_id == 0) {
				PGresult *r = db_exec(
				        c, &err, "SELECT coalesce(max(id), 0) FROM notifications",
				        0, NULL);
				if (r)
					g_last_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
				PQclear(r);
			}
		}
		struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
		int woke = poll(&pfd, 1, 200) > 0;
		if (woke && !PQconsumeInput(c))
			continue;
		int notified = 0;
		PGnotify *n;
		while ((n = PQnotifies(c))) {
			notified = 1;
			PQfreemem(n);
		}
		if (notified) {
			PGresult *r = fetch_after(c, g_last_id, &err);
			if (r) {
				struct fb_buf b;
				fb_buf_init(&b, CLIENT_BUF_MAX);
				int64_t upto = g_last_id;
				if (frames(r, &b, &upto) == FB_OK && b.len) {
					pthread_mutex_lock(&g_mu);
					broadcast_locked(b.data, b.len);
					pthread_mutex_unlock(&g_mu);
				}
				g_last_id = upto;
				fb_buf_cleanup(&b);
				PQclear(r);
			}
		}
		if (fb_mono_ms() - last_keepalive >= KEEPALIVE_MS) {
			last_keepalive = fb_mono_ms();
			pthread_mutex_lock(&g_mu);
			broadcast_locked(": keep-alive\n\n", 14);
			pthread_mutex_unlock(&g_mu);
		}
	}
	if (c)
		PQfinish(c);
	return NULL;
}

enum fb_rc stream_start(struct fb_err *err)
{
	g_stop = 0;
	if (pthread_create(&g_thread, NULL, pump, NULL)) {
		fb_err_set(err, "cannot start the event stream thread");
		return FB_EINTERNAL;
	}
	g_started = 1;
	return FB_OK;
}

void stream_stop(void)
{
	pthread_mutex_lock(&g_mu);
	g_stop = 1;
	for (struct client *cl = g_clients; cl; cl = cl->next) {
		cl->closing = 1;
		if (cl->suspended) {
			cl->suspended = 0;
			http_stream_resume(cl->conn);
		}
	}
	pthread_mutex_unlock(&g_mu);
	if (g_started) {
		pthread_join(g_thread, NULL);
		g_started = 0;
	}
}
