/* Agent telemetry: batched heartbeats and durable, idempotent events. */
#include "telemetry.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "agents.h"
#include "app.h"
#include "config.h"
#include "db.h"
#include "hbbody.h"
#include "log.h"
#include "pending.h"
#include "signals.h"
#include "snapshot.h"
#include "validate.h"

#define MAX_EVENTS_PER_REQUEST 100
#define MAX_PENDING            4000000     /* agents with a heartbeat waiting for the flusher */
#define FLUSH_CHUNK            25000       /* rows per COPY + UPDATE transaction */
#define FLUSH_EARLY            FLUSH_CHUNK /* pending agents that wake the flusher early */
#define TRIM_BYTES             (8u << 20)  /* give freed batches back to the system */

/* Heartbeats wait in g_pending (server/pending.c: the latest per agent); the
 * flusher takes the whole batch every heartbeat_flush_ms and writes it. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static struct pending *g_pending;
static pthread_t g_thread;
static int g_started, g_stop;
static uint64_t g_dropped;
/* Platform facts from heartbeats (agents send them after each boot), written
 * by the flusher with the next batch: [{"id", "os", "os_build", "arch",
 * "extra"}], at most MAX_PLATFORM waiting. Guarded by g_mu. */
#define MAX_PLATFORM 100000
static json_t *g_platform;
/* Degraded verdicts (signals.h) as event rows, written by the flusher with
 * the next batch; at most MAX_DEGRADED waiting (more are dropped and
 * counted: a verdict lost is a host not counted, never a wrong count).
 * Guarded by g_mu. */
#define MAX_DEGRADED 100000
static json_t *g_degraded;
static uint64_t g_degraded_dropped;

/* Decimal digits of v. */
static enum fb_rc add_u64(struct fb_buf *b, uint64_t v)
{
	char d[24];
	size_t i = sizeof d;
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return fb_buf_add(b, d + i, sizeof d - i);
}

/* A 0-based value index, or \N (NULL) for 0: the field was not sent. */
static enum fb_rc add_ref(struct fb_buf *b, uint32_t local)
{
	return local ? add_u64(b, local - 1) : fb_buf_add(b, "\\N", 2);
}

/* COPY text format: escape backslash, tab, newline, carriage return. */
static enum fb_rc add_copy_text(struct fb_buf *b, const char *s)
{
	enum fb_rc rc = FB_OK;
	while (*s && !rc) {
		size_t n = strcspn(s, "\\\t\n\r");
		rc = fb_buf_add(b, s, n);
		s += n;
		if (*s && !rc) {
			char e[2] = {'\\', *s == '\\'   ? '\\'
			                   : *s == '\t' ? 't'
			                   : *s == '\n' ? 'n'
			                                : 'r'};
			rc = fb_buf_add(b, e, 2);
			s++;
		}
	}
	return rc;
}

/* The values of one chunk: each value the chunk's rows refer to, once, in a
 * JSON array the UPDATE indexes (JSON values as they are, texts as strings). */
struct chunk_vals {
	uint32_t *local[2]; /* batch value number -> 1-based index in the chunk, 0 = not yet */
	uint32_t n[2];
	struct fb_buf arr[2];
};

static enum fb_rc chunk_ref(struct chunk_vals *cv, const struct pending *p, enum pending_kind k,
                            uint32_t num, uint32_t *out)
{
	*out = 0;
	if (!num)
		return FB_OK;
	if (!cv->local[k][num]) {
		const char *v = pending_value(p, k, num, NULL);
		enum fb_rc rc = fb_buf_add(&cv->arr[k], cv->n[k] ? "," : "[", 1);
		if (!rc && k == PENDING_JSON) {
			rc = fb_buf_addstr(&cv->arr[k], v);
		} else if (!rc) {
			json_t *js = json_string(v);
			char *q = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
			rc = q ? fb_buf_addstr(&cv->arr[k], q) : FB_ENOMEM;
			free(q);
			json_decref(js);
		}
		if (rc)
			return rc;
		cv->local[k][num] = ++cv->n[k];
	}
	*out = cv->local[k][num];
	return FB_OK;
}

/* Write records [from, to) of the sorted batch p in one transaction: COPY
 * (id, boot id, uptime, value indexes, time) into a temporary table, then one
 * UPDATE that takes each value from the chunk's arrays, so PostgreSQL parses
 * each distinct active map or capability set once, not once a row. */
static enum fb_rc flush_chunk(PGconn *c, const struct pending *p, size_t from, size_t to,
                              struct chunk_vals *cv, struct fb_buf *b, struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	fb_buf_reset(b);
	for (int k = 0; k < 2; k++) {
		memset(cv->local[k], 0, ((size_t)pending_nvalues(p, k) + 1) * sizeof(uint32_t));
		cv->n[k] = 0;
		fb_buf_reset(&cv->arr[k]);
	}
	for (size_t i = from; i < to && !rc; i++) {
		struct pending_rec r;
		pending_get(p, i, &r);
		uint32_t ver, act, caps;
		if ((rc = chunk_ref(cv, p, PENDING_TEXT, r.version, &ver)) ||
		    (rc = chunk_ref(cv, p, PENDING_JSON, r.active, &act)) ||
		    (rc = chunk_ref(cv, p, PENDING_JSON, r.caps, &caps)))
			break;
		if ((rc = add_u64(b, (uint64_t)r.agent_id)) || (rc = fb_buf_add(b, "\t", 1)) ||
		    (rc = add_copy_text(b, r.boot_id)) || (rc = fb_buf_add(b, "\t", 1)) ||
		    (rc = add_u64(b, (uint64_t)r.uptime_s)) || (rc = fb_buf_add(b, "\t", 1)) ||
		    (rc = add_ref(b, ver)) || (rc = fb_buf_add(b, "\t", 1)) ||
		    (rc = add_ref(b, act)) || (rc = fb_buf_add(b, "\t", 1)) ||
		    (rc = add_ref(b, caps)) || (rc = fb_buf_add(b, "\t", 1)) ||
		    (rc = add_u64(b, (uint64_t)r.seen_ms)) || (rc = fb_buf_add(b, "\n", 1)))
			break;
	}
	for (int k = 0; k < 2 && !rc; k++)
		rc = fb_buf_addstr(&cv->arr[k], cv->n[k] ? "]" : "[]");
	if (rc) {
		fb_err_set(err, "building the heartbeat batch: %s", fb_rc_str(rc));
		return rc;
	}
	/* The batch drives an index scan of agents by id: a hash or merge join
	 * would read the whole table for a few thousand rows. */
	rc = db_cmd(c, err, "BEGIN");
	if (!rc)
		rc = db_cmd(c, err,
		            "SELECT set_config('enable_hashjoin', 'off', true), "
		            "set_config('enable_mergejoin', 'off', true)");
	if (!rc)
		rc = db_cmd(c, err,
		            "CREATE TEMP TABLE IF NOT EXISTS hb_rows (id bigint, boot_id text, "
		            "uptime_s bigint, version int, active int, caps int, seen_ms bigint) "
		            "ON COMMIT DELETE ROWS");
	if (rc)
		goto out;
	PGresult *r = PQexec(c, "COPY hb_rows FROM STDIN");
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		fb_err_set(err, "COPY: %s", PQerrorMessage(c));
		PQclear(r);
		rc = FB_EDB;
		goto out;
	}
	PQclear(r);
	if (PQputCopyData(c, b->data ? b->data : "", (int)b->len) != 1 ||
	    PQputCopyEnd(c, NULL) != 1) {
		fb_err_set(err, "COPY: %s", PQerrorMessage(c));
		rc = FB_EDB;
		goto out;
	}
	r = PQgetResult(c);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fb_err_set(err, "COPY: %s", PQresultErrorMessage(r));
		rc = FB_EDB;
	}
	PQclear(r);
	while ((r = PQgetResult(c)))
		PQclear(r);
	if (rc)
		goto out;
	/* (SELECT $n) is evaluated once per statement; -> and ->> take one
	 * element of the array, and a NULL index (not sent) keeps the column. */
	const char *params[] = {cv->arr[PENDING_JSON].data, cv->arr[PENDING_TEXT].data};
	r = db_exec(c, err,
	            "UPDATE agents a SET boot_id = h.boot_id, uptime_s = h.uptime_s, "
	            "agent_version = coalesce((SELECT $2::jsonb) ->> h.version, a.agent_version), "
	            "active = coalesce((SELECT $1::jsonb) -> h.active, a.active), "
	            "capabilities = coalesce((SELECT $1::jsonb) -> h.caps, a.capabilities), "
	            "last_seen_at = h.seen FROM (SELECT id, boot_id, uptime_s, version, active, "
	            "caps, to_timestamp(seen_ms / 1000.0::float8) AS seen FROM hb_rows) h "
	            "WHERE a.id = h.id AND (a.last_seen_at IS NULL OR a.last_seen_at <= h.seen)",
	            2, params);
	if (!r) {
		rc = FB_EDB;
		goto out;
	}
	PQclear(r);
	rc = db_cmd(c, err, "COMMIT");
out:
	if (rc)
		PQclear(PQexec(c, "ROLLBACK"));
	return rc;
}

/* Write the whole batch, FLUSH_CHUNK rows a transaction. *done is the number
 * of records written (all of them on FB_OK). */
static enum fb_rc flush_batch(PGconn *c, struct pending *p, size_t *done, struct fb_err *err)
{
	*done = 0;
	enum fb_rc rc = pending_sort(p);
	if (rc) {
		fb_err_set(err, "sorting the heartbeat batch: %s", fb_rc_str(rc));
		return rc;
	}
	struct chunk_vals cv = {0};
	struct fb_buf b;
	fb_buf_init(&b, (size_t)1 << 30);
	for (int k = 0; k < 2; k++) {
		fb_buf_init(&cv.arr[k], (size_t)1 << 30);
		cv.local[k] = calloc((size_t)pending_nvalues(p, k) + 1, sizeof(uint32_t));
		if (!cv.local[k])
			rc = FB_ENOMEM;
	}
	if (rc)
		fb_err_set(err, "out of memory flushing heartbeats");
	size_t n = pending_count(p);
	while (!rc && *done < n) {
		size_t to = n - *done > FLUSH_CHUNK ? *done + FLUSH_CHUNK : n;
		rc = flush_chunk(c, p, *done, to, &cv, &b, err);
		if (!rc)
			*done = to;
	}
	for (int k = 0; k < 2; k++) {
		free(cv.local[k]);
		fb_buf_cleanup(&cv.arr[k]);
	}
	fb_buf_cleanup(&b);
	return rc;
}

/* Put the unwritten records [from, n) of a failed batch back, unless a newer
 * heartbeat of the same agent arrived meanwhile. Caller holds g_mu. */
static size_t put_back(struct pending *batch, size_t from)
{
	size_t lost = 0;
	if (!g_pending)
		g_pending = pending_new();
	for (size_t i = from; i < pending_count(batch); i++) {
		struct pending_rec r;
		pending_get(batch, i, &r);
		if (g_pending && pending_has(g_pending, r.agent_id))
			continue; /* superseded */
		struct pending_hb h = {
		        .agent_id = r.agent_id,
		        .seen_ms = r.seen_ms,
		        .uptime_s = r.uptime_s,
		        .boot_id = r.boot_id,
		        .version = r.version ? pending_value(batch, PENDING_TEXT, r.version, NULL)
		                             : NULL,
		        .active = pending_value(batch, PENDING_JSON, r.active, NULL),
		        .caps = r.caps ? pending_value(batch, PENDING_JSON, r.caps, NULL) : NULL};
		if (!g_pending || g_stop || pending_count(g_pending) >= MAX_PENDING ||
		    pending_put(g_pending, &h))
			lost++;
	}
	g_dropped += lost;
	return lost;
}

/* Wait until the monotonic time `until` (ms) or a signal; caller holds g_mu. */
static void wait_until(int64_t until)
{
	int64_t left = until - fb_mono_ms();
	if (left <= 0)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += left / 1000;
	ts.tv_nsec += (left % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&g_cv, &g_mu, &ts);
}

/* Platform facts, one UPDATE for the batch. */
static enum fb_rc flush_platform(PGconn *c, json_t *plat, struct fb_err *err)
{
	char *js = json_dumps(plat, JSON_COMPACT);
	if (!js)
		return FB_ENOMEM;
	const char *p[] = {js};
	PGresult *r =
	        db_exec(c, err,
	                "UPDATE agents a SET os = p.os, os_build = p.os_build, arch = p.arch, "
	                "platform_extra = coalesce(p.extra, '{}') FROM jsonb_to_recordset("
	                "$1::jsonb) AS p(id bigint, os text, os_build text, arch text, "
	                "extra jsonb) WHERE a.id = p.id",
	                1, p);
	free(js);
	if (!r)
		return FB_EDB;
	PQclear(r);
	return FB_OK;
}

/* Heartbeats or verdicts wait to be written. Under g_mu. */
static int work_waiting(void)
{
	return (g_pending && pending_count(g_pending)) ||
	       (g_degraded && json_array_size(g_degraded));
}

/* Degraded verdicts as events: idempotent per (agent, event id), so one
 * verdict per signal, channel and content. */
static enum fb_rc flush_degraded(PGconn *c, json_t *rows, struct fb_err *err)
{
	char *js = json_dumps(rows, JSON_COMPACT);
	if (!js)
		return FB_ENOMEM;
	const char *p[] = {js};
	PGresult *r = db_exec(
	        c, err,
	        "INSERT INTO events (agent_id, event_id, kind, channel_id, content_sha256, "
	        "boot_id, "
	        "details, occurred_at) SELECT d.agent_id, d.event_id, 'degraded', d.channel_id, "
	        "d.content_sha256, d.boot_id, d.details, to_timestamp(d.at) FROM "
	        "jsonb_to_recordset($1::jsonb) AS d(agent_id bigint, event_id text, channel_id "
	        "int, "
	        "content_sha256 text, boot_id text, details jsonb, at float8) "
	        "JOIN agents a ON a.id = d.agent_id JOIN channels ch ON ch.id = d.channel_id "
	        "ON CONFLICT (agent_id, event_id) DO NOTHING",
	        1, p);
	free(js);
	if (!r)
		return FB_EDB;
	PQclear(r);
	return FB_OK;
}

/* Takes the batch heartbeat_flush_ms after the previous take, or as soon
 * as FLUSH_EARLY agents are waiting, or at once when writing the previous
 * batch took longer: a heartbeat waits at most one interval (less under
 * load) plus one write. */
static void *flusher(void *arg)
{
	(void)arg;
	int64_t next = fb_mono_ms() + cfg.heartbeat_flush_ms;
	pthread_mutex_lock(&g_mu);
	while (!g_stop || work_waiting()) {
		if (!g_stop && fb_mono_ms() < next &&
		    (!g_pending || pending_count(g_pending) < FLUSH_EARLY)) {
			wait_until(next);
			continue;
		}
		next = fb_mono_ms() + cfg.heartbeat_flush_ms;
		if (!work_waiting()) /* verdicts come after their heartbeat's put */
			continue;
		struct pending *batch = g_pending;
		json_t *plat = g_platform, *deg = g_degraded;
		g_pending = NULL;
		g_platform = NULL;
		g_degraded = NULL;
		pthread_mutex_unlock(&g_mu);

		const char *why;
		struct fb_err err;
		size_t done = 0, n = batch ? pending_count(batch) : 0;
		size_t bytes = batch ? pending_bytes(batch) : 0;
		PGconn *c = db_acquire(app.db, 5000, &why);
		enum fb_rc rc = !c ? FB_EDB : n ? flush_batch(c, batch, &done, &err) : FB_OK;
		if (c && !rc && plat)
			rc = flush_platform(c, plat, &err);
		if (c && !rc && deg && json_array_size(deg)) {
			rc = flush_degraded(c, deg, &err);
			log_debug("flushed %zu degraded verdict row(s)%s", json_array_size(deg),
			          rc ? " - failed" : "");
		}
		if (c)
			db_release(app.db, c);
		if (rc && plat && !g_stop) { /* keep them for the next batch */
			pthread_mutex_lock(&g_mu);
			if (!g_platform)
				g_platform = json_array();
			if (json_array_size(g_platform) + json_array_size(plat) <= MAX_PLATFORM)
				json_array_extend(g_platform, plat);
			pthread_mutex_unlock(&g_mu);
		}
		if (rc && deg && !g_stop) { /* keep them for the next batch */
			pthread_mutex_lock(&g_mu);
			if (!g_degraded)
				g_degraded = json_array();
			if (g_degraded &&
			    json_array_size(g_degraded) + json_array_size(deg) <= MAX_DEGRADED)
				json_array_extend(g_degraded, deg);
			else
				g_degraded_dropped += json_array_size(deg);
			pthread_mutex_unlock(&g_mu);
		}
		json_decref(deg);
		json_decref(plat);
		if (rc) {
			pthread_mutex_lock(&g_mu);
			size_t lost = batch ? put_back(batch, done) : 0;
			pthread_mutex_unlock(&g_mu);
			log_warn("heartbeat flush: %zu of %zu written, the rest failed (%s); "
			         "retrying with the next batch%s",
			         done, n, c ? err.msg : why,
			         lost ? " (some could not be kept: queue full or stopping)" : "");
		} else {
			log_debug("flushed %zu heartbeat(s)", n);
		}
		pending_free(batch);
		/* glibc keeps freed heap; a big batch would stay in our RSS. */
		if (bytes >= TRIM_BYTES)
			malloc_trim(0);
		if (rc && !g_stop) {
			struct timespec ts = {0, 200000000L};
			nanosleep(&ts, NULL);
		}
		pthread_mutex_lock(&g_mu);
		if (rc && g_stop) {
			pending_free(g_pending);
			g_pending = NULL;
		}
	}
	pthread_mutex_unlock(&g_mu);
	return NULL;
}

enum fb_rc telemetry_start(struct fb_err *err)
{
	g_stop = 0;
	if (pthread_create(&g_thread, NULL, flusher, NULL)) {
		fb_err_set(err, "cannot start the heartbeat flusher");
		return FB_EINTERNAL;
	}
	g_started = 1;
	return FB_OK;
}

void telemetry_stop(void)
{
	if (!g_started)
		return;
	pthread_mutex_lock(&g_mu);
	g_stop = 1;
	pthread_cond_signal(&g_cv);
	pthread_mutex_unlock(&g_mu);
	pthread_join(g_thread, NULL);
	g_started = 0;
	pending_free(g_pending);
	g_pending = NULL;
	json_decref(g_platform);
	g_platform = NULL;
	json_decref(g_degraded);
	g_degraded = NULL;
}

/* The agent id in the body must be the token's own. */
static int self_or_reply(struct http_req *req, const json_t *body)
{
	int64_t id = 0;
	if (!val_int_or_reply(req, body, "agent_id", 1, INT64_MAX, 1, &id))
		return 0;
	if (id != http_req_auth(req)->agent_id) {
		http_error(req, 403, "forbidden", "agent %lld may not report for agent %lld",
		           (long long)http_req_auth(req)->agent_id, (long long)id);
		return 0;
	}
	int ok = agents_ok(id);
	if (ok < 0) {
		http_error(req, 503, "unavailable",
		           "agent %lld is not loaded here and the database cannot be asked; retry",
		           (long long)id);
		return 0;
	}
	if (!ok) {
		http_error(req, 403, "forbidden", "agent %lld is not enrolled or is revoked",
		           (long long)id);
		return 0;
	}
	return 1;
}

static int channel_key_or_reply(struct http_req *req, const char *key, const char *where)
{
	int64_t ch;
	if (fb_parse_i64(key, 1, 0xffffffffLL, &ch) || !snapshot_channel_known((uint32_t)ch)) {
		http_error(req, 400, "invalid", "%s: unknown channel '%s'", where, key);
		return 0;
	}
	return 1;
}

/* A JSON string's content (no quotes): ", \ and control characters escaped. */
static enum fb_rc add_json_text(struct fb_buf *b, const struct hbbody_text *t)
{
	enum fb_rc rc = FB_OK;
	for (size_t i = 0; i < t->n && !rc;) {
		size_t n = 0;
		while (i + n < t->n && t->p[i + n] != '"' && t->p[i + n] != '\\' &&
		       (unsigned char)t->p[i + n] >= 0x20)
			n++;
		rc = fb_buf_add(b, t->p + i, n);
		i += n;
		if (i < t->n && !rc) {
			char e[8];
			if (t->p[i] == '"' || t->p[i] == '\\')
				e[0] = '\\', e[1] = t->p[i], e[2] = '\0';
			else
				snprintf(e, sizeof e, "\\u%04x", (unsigned)(unsigned char)t->p[i]);
			rc = fb_buf_addstr(b, e);
			i++;
		}
	}
	return rc;
}

/* strcmp order of texts without NUL bytes. */
static int text_cmp(const struct hbbody_text *a, const struct hbbody_text *b)
{
	int c = memcmp(a->p, b->p, a->n < b->n ? a->n : b->n);
	return c ? c : (a->n > b->n) - (a->n < b->n);
}

/* A heartbeat's fields once validated, either way they were read. Strings
 * are borrowed from the request body or its JSON tree. */
struct hb_fields {
	int64_t uptime_s;
	struct hbbody_text boot_id, version; /* version.p NULL: not sent */
	size_t nactive;
	struct hbbody_text active_key[HBBODY_MAX_ENTRIES], active_val[HBBODY_MAX_ENTRIES];
	int has_caps;
	size_t ncaps;
	uint32_t cap_id[HBBODY_MAX_ENTRIES];
	uint16_t cap_version[HBBODY_MAX_ENTRIES];
	const struct sig_health *health; /* NULL: not sent */
};

/* The active map as compact JSON with its keys in strcmp order (what
 * json_dumps writes with JSON_SORT_KEYS), the form interned and stored:
 * written here, since json_dumps cost as much as the rest of the handler.
 * Caller frees; NULL when out of memory. */
static char *active_json(struct hb_fields *f)
{
	for (size_t i = 1; i < f->nactive; i++) /* insertion sort: a few keys */
		for (size_t j = i; j > 0 && text_cmp(&f->active_key[j - 1], &f->active_key[j]) > 0;
		     j--) {
			struct hbbody_text k = f->active_key[j], v = f->active_val[j];
			f->active_key[j] = f->active_key[j - 1];
			f->active_val[j] = f->active_val[j - 1];
			f->active_key[j - 1] = k;
			f->active_val[j - 1] = v;
		}
	struct fb_buf b;
	fb_buf_init(&b, (size_t)1 << 20);
	enum fb_rc rc = fb_buf_add(&b, "{", 1);
	for (size_t i = 0; i < f->nactive && !rc; i++) {
		if ((i && (rc = fb_buf_add(&b, ",", 1))) || (rc = fb_buf_add(&b, "\"", 1)) ||
		    (rc = add_json_text(&b, &f->active_key[i])) ||
		    (rc = fb_buf_add(&b, "\":\"", 3)) ||
		    (rc = add_json_text(&b, &f->active_val[i])))
			break;
		rc = fb_buf_add(&b, "\"", 1);
	}
	if (!rc)
		rc = fb_buf_add(&b, "}", 1);
	if (rc) {
		fb_buf_cleanup(&b);
		return NULL;
	}
	return fb_buf_steal(&b, NULL);
}

/* The capabilities as compact JSON, in the order sent. Caller frees; NULL
 * when out of memory. */
static char *caps_json(const struct hb_fields *f)
{
	struct fb_buf b;
	fb_buf_init(&b, (size_t)1 << 20);
	enum fb_rc rc = fb_buf_add(&b, "[", 1);
	for (size_t i = 0; i < f->ncaps && !rc; i++) {
		if ((i && (rc = fb_buf_add(&b, ",", 1))) || (rc = fb_buf_add(&b, "{\"id\":", 6)) ||
		    (rc = add_u64(&b, f->cap_id[i])) ||
		    (rc = fb_buf_add(&b, ",\"version\":", 11)) ||
		    (rc = add_u64(&b, f->cap_version[i])))
			break;
		rc = fb_buf_add(&b, "}", 1);
	}
	if (!rc)
		rc = fb_buf_add(&b, "]", 1);
	if (rc) {
		fb_buf_cleanup(&b);
		return NULL;
	}
	return fb_buf_steal(&b, NULL);
}

/* The common heartbeat without a JSON tree (server/hbbody.c), with every
 * check the JSON path makes. 0, having replied nothing, when the body is not
 * in that form or any check fails: the JSON path then reads it and answers,
 * with the precise error if there is one. */
static int heartbeat_fast(struct http_req *req, struct hbbody *p, struct hb_fields *f)
{
	const char *ct = http_req_header(req, "Content-Type");
	if (ct && strncasecmp(ct, "application/json", 16) != 0)
		return 0;
	size_t n;
	const char *body = http_req_body(req, &n);
	if (!hbbody_parse(body, n, p))
		return 0;
	int64_t id = http_req_auth(req)->agent_id;
	if (p->agent_id != id || agents_ok(id) != 1 || p->uptime_s > 100LL * 365 * 86400)
		return 0;
	if (p->has_health)
		sig_prefetch(id); /* for judge_health, after the rest of the handler */
	/* every channel named, active and health, checked under one lock */
	uint32_t chans[HBBODY_MAX_ENTRIES + SIG_MAX_CHANNELS];
	size_t nchans = 0;
	for (size_t i = 0; i < p->nactive; i++) {
		char key[32], sha[FB_SHA256_HEX_LEN + 1];
		int64_t ch;
		if (p->active_key[i].n >= sizeof key || p->active_val[i].n != FB_SHA256_HEX_LEN)
			return 0;
		memcpy(key, p->active_key[i].p, p->active_key[i].n);
		key[p->active_key[i].n] = '\0';
		memcpy(sha, p->active_val[i].p, FB_SHA256_HEX_LEN);
		sha[FB_SHA256_HEX_LEN] = '\0';
		if (fb_parse_i64(key, 1, 0xffffffffLL, &ch) || !fb_is_sha256_hex(sha))
			return 0;
		chans[nchans++] = (uint32_t)ch;
	}
	f->uptime_s = p->uptime_s;
	f->boot_id = p->boot_id;
	f->version = p->has_version ? p->version : (struct hbbody_text){NULL, 0};
	f->nactive = p->nactive;
	memcpy(f->active_key, p->active_key, p->nactive * sizeof p->active_key[0]);
	memcpy(f->active_val, p->active_val, p->nactive * sizeof p->active_val[0]);
	f->has_caps = p->has_caps;
	f->ncaps = p->ncaps;
	memcpy(f->cap_id, p->cap_id, p->ncaps * sizeof p->cap_id[0]);
	memcpy(f->cap_version, p->cap_version, p->ncaps * sizeof p->cap_version[0]);
	f->health = NULL;
	if (p->has_health) {
		char field[96], why[96];
		if (!sig_health_check(&p->health, field, sizeof field, why, sizeof why))
			return 0;
		for (size_t i = 0; i < p->health.nch; i++)
			chans[nchans++] = p->health.ch[i].channel;
		f->health = &p->health;
	}
	return snapshot_channels_known(chans, nchans);
}

/* The heartbeat read with jansson and validated field by field; replies the
 * error and returns 0 when anything is wrong. */
static int heartbeat_json_or_reply(struct http_req *req, json_t *body, struct hb_fields *f,
                                   struct sig_health *hs)
{
	static const char *const allowed[] = {"agent_id",      "boot_id", "uptime_s",
	                                      "agent_version", "active",  "capabilities",
	                                      "platform",      "health",  NULL};
	if (!val_fields_or_reply(req, body, allowed) || !self_or_reply(req, body))
		return 0;
	const char *boot = val_string_or_reply(req, body, "boot_id", 1, 64, 1);
	if (!boot ||
	    !val_int_or_reply(req, body, "uptime_s", 0, 100LL * 365 * 86400, 1, &f->uptime_s))
		return 0;
	const char *ver = val_string_or_reply(req, body, "agent_version", 1, 64, 0);
	if (json_object_get(body, "agent_version") && !ver)
		return 0;
	json_t *active = json_object_get(body, "active");
	if (!json_is_object(active) || json_object_size(active) > HBBODY_MAX_ENTRIES) {
		http_error(req, 400, "invalid",
		           "field 'active' must be an object of channel -> sha256");
		return 0;
	}
	const char *k;
	json_t *v;
	f->nactive = 0;
	json_object_foreach(active, k, v)
	{
		if (!channel_key_or_reply(req, k, "active"))
			return 0;
		if (!fb_is_sha256_hex(json_string_value(v))) {
			http_error(req, 400, "invalid",
			           "active['%s'] must be a sha256 (64 lower-case hex)", k);
			return 0;
		}
		f->active_key[f->nactive] = (struct hbbody_text){k, strlen(k)};
		f->active_val[f->nactive++] = (struct hbbody_text){json_string_value(v), 64};
	}
	json_t *caps = json_object_get(body, "capabilities");
	if (!val_capabilities_or_reply(req, caps, 0) ||
	    !val_platform_or_reply(req, json_object_get(body, "platform")))
		return 0;
	json_t *health = json_object_get(body, "health");
	f->health = NULL;
	if (health) {
		char field[96], why[96];
		if (!sig_health_from_json(health, hs, field, sizeof field, why, sizeof why)) {
			http_error(req, 400, "invalid", "field '%s' %s", field, why);
			return 0;
		}
		for (size_t i = 0; i < hs->nch; i++)
			if (!snapshot_channel_known(hs->ch[i].channel)) {
				http_error(req, 400, "invalid",
				           "field 'health.channels.%u': unknown channel",
				           hs->ch[i].channel);
				return 0;
			}
		f->health = hs;
	}
	f->boot_id = (struct hbbody_text){boot, strlen(boot)};
	f->version = (struct hbbody_text){ver, ver ? strlen(ver) : 0};
	f->has_caps = caps != NULL;
	f->ncaps = json_array_size(caps);
	for (size_t i = 0; i < f->ncaps; i++) {
		const json_t *e = json_array_get(caps, i);
		f->cap_id[i] = (uint32_t)json_integer_value(json_object_get(e, "id"));
		f->cap_version[i] = (uint16_t)json_integer_value(json_object_get(e, "version"));
	}
	return 1;
}

enum fb_rc telemetry_metrics(struct fb_buf *b)
{
	size_t hosts, bytes;
	sig_stats(&hosts, &bytes);
	pthread_mutex_lock(&g_mu);
	unsigned long long hb = g_dropped, dg = g_degraded_dropped;
	pthread_mutex_unlock(&g_mu);
	return fb_buf_printf(
	        b,
	        "# HELP firebreak_heartbeats_dropped_total Heartbeats not written: the queue was "
	        "full, or a write failed and they could not be kept for the next.\n"
	        "# TYPE firebreak_heartbeats_dropped_total counter\n"
	        "firebreak_heartbeats_dropped_total %llu\n"
	        "# HELP firebreak_degraded_verdicts_dropped_total Health verdicts not written "
	        "(their queue was full).\n"
	        "# TYPE firebreak_degraded_verdicts_dropped_total counter\n"
	        "firebreak_degraded_verdicts_dropped_total %llu\n"
	        "# HELP firebreak_signal_hosts Hosts whose health baselines this replica keeps.\n"
	        "# TYPE firebreak_signal_hosts gauge\n"
	        "firebreak_signal_hosts %zu\n"
	        "# HELP firebreak_signal_state_bytes Memory of those baselines.\n"
	        "# TYPE firebreak_signal_state_bytes gauge\n"
	        "firebreak_signal_state_bytes %zu\n",
	        hb, dg, hosts, bytes);
}

/* One degraded event row for the flusher (see flush_degraded). */
static json_t *degraded_row(int64_t agent, const char *boot, const struct sig_verdict *v,
                            const struct hbbody_text *ch, const struct hbbody_text *sha)
{
	char id[80];
	snprintf(id, sizeof id, "deg:%s:%.*s:%.16s", sig_name(v->signal), (int)ch->n, ch->p,
	         sha->p);
	return json_pack("{s:I, s:s, s:s#, s:s#, s:s, s:{s:s, s:f, s:f}, s:f}", "agent_id",
	                 (json_int_t)agent, "event_id", id, "channel_id", ch->p, (int)ch->n,
	                 "content_sha256", sha->p, (int)sha->n, "boot_id", boot, "details",
	                 "signal", sig_name(v->signal), "value", v->value, "baseline", v->baseline,
	                 "at", (double)fb_now_ms() / 1000.0);
}

/* The per-host verdicts of this heartbeat's health, queued as events: a
 * host signal counts for every channel the host runs (with the content it
 * runs there), a channel signal for its channel. */
static void judge_health(int64_t agent, const char *boot, const struct hb_fields *f)
{
	struct sig_verdict v[16];
	size_t n = sig_observe(agent, f->health, v, sizeof v / sizeof v[0]);
	if (!n)
		return;
	for (size_t i = 0; i < n; i++)
		log_debug("agent %lld degraded: %s%s%.0u at %.1f (baseline %.1f)", (long long)agent,
		          sig_name(v[i].signal), v[i].channel ? " on channel " : "", v[i].channel,
		          v[i].value, v[i].baseline);
	json_t *rows = json_array();
	for (size_t i = 0; rows && i < n; i++)
		for (size_t k = 0; k < f->nactive; k++) {
			if (v[i].channel) {
				char key[16];
				snprintf(key, sizeof key, "%u", v[i].channel);
				if (strlen(key) != f->active_key[k].n ||
				    memcmp(key, f->active_key[k].p, f->active_key[k].n) != 0)
					continue;
			}
			json_array_append_new(rows,
			                      degraded_row(agent, boot, &v[i], &f->active_key[k],
			                                   &f->active_val[k]));
		}
	pthread_mutex_lock(&g_mu);
	if (!g_degraded)
		g_degraded = json_array();
	if (rows && g_degraded &&
	    json_array_size(g_degraded) + json_array_size(rows) <= MAX_DEGRADED)
		json_array_extend(g_degraded, rows);
	else
		g_degraded_dropped += n;
	pthread_mutex_unlock(&g_mu);
	json_decref(rows);
}

void telemetry_heartbeat(struct http_req *req)
{
	struct hbbody p;
	struct hb_fields f;
	static _Thread_local struct sig_health hs; /* the JSON path's health (12 KiB) */
	json_t *body = NULL, *prow = NULL;
	char *active_s = NULL, *caps_s = NULL;
	char boot[HBBODY_MAX_TEXT + 1], ver[HBBODY_MAX_TEXT + 1];
	if (!heartbeat_fast(req, &p, &f)) {
		body = http_req_json_or_reply(req);
		if (!body || !heartbeat_json_or_reply(req, body, &f, &hs))
			goto out;
	}
	struct pending_hb h = {.agent_id = http_req_auth(req)->agent_id,
	                       .seen_ms = fb_now_ms(),
	                       .uptime_s = f.uptime_s,
	                       .boot_id = boot,
	                       .version = f.version.p ? ver : NULL};
	snprintf(boot, sizeof boot, "%.*s", (int)f.boot_id.n, f.boot_id.p);
	snprintf(ver, sizeof ver, "%.*s", (int)f.version.n, f.version.p ? f.version.p : "");
	active_s = active_json(&f);
	caps_s = f.has_caps ? caps_json(&f) : NULL;
	if (!active_s || (f.has_caps && !caps_s)) {
		http_unavailable(req, "out of memory");
		goto out;
	}
	h.active = active_s;
	h.caps = caps_s;
	if (caps_s)
		snapshot_agent_caps(h.agent_id, caps_s);
	json_t *plat = body ? json_object_get(body, "platform") : NULL;
	if (plat) {
		prow = json_deep_copy(plat);
		json_t *extra = json_object_get(prow, "extra");
		if (prow && !extra)
			json_object_set_new(prow, "extra", json_object());
		if (prow)
			json_object_set_new(prow, "id", json_integer(h.agent_id));
		if (!prow) {
			http_unavailable(req, "out of memory");
			goto out;
		}
	}
	pthread_mutex_lock(&g_mu);
	if (prow && (g_platform || (g_platform = json_array())) &&
	    json_array_size(g_platform) >= MAX_PLATFORM) {
		pthread_mutex_unlock(&g_mu);
		http_error(req, 503, "unavailable", "platform queue is full; retry later");
		goto out;
	}
	if (!g_pending)
		g_pending = pending_new();
	enum fb_rc rc = !g_pending                                ? FB_ENOMEM
	                : pending_count(g_pending) >= MAX_PENDING ? FB_ETOOBIG
	                                                          : pending_put(g_pending, &h);
	if (rc)
		g_dropped++;
	else if (prow && g_platform)
		json_array_append(g_platform, prow);
	if (!rc && pending_count(g_pending) == FLUSH_EARLY)
		pthread_cond_signal(&g_cv);
	pthread_mutex_unlock(&g_mu);
	if (rc) {
		http_error(req, 503, "unavailable", "%s%s; retry later",
		           rc == FB_ETOOBIG ? "heartbeat queue is full" : "heartbeat not queued: ",
		           rc == FB_ETOOBIG ? "" : fb_rc_str(rc));
		goto out;
	}
	if (f.health)
		judge_health(h.agent_id, boot, &f);
	http_reply(req, 202, NULL, "", 0, NULL, 0);
out:
	json_decref(prow);
	free(active_s);
	free(caps_s);
	json_decref(body);
}

/* Validate event i; on success fill the insert parameters. */
struct ev_row {
	char id[65], kind[16], channel[16], content[65], boot[65], at[24];
	char *details;
};

static int event_or_reply(struct http_req *req, size_t i, const json_t *e, struct ev_row *row)
{
	char where[32];
	snprintf(where, sizeof where, "events[%zu]", i);
	if (!json_is_object(e)) {
		http_error(req, 400, "invalid", "%s must be an object", where);
		return 0;
	}
	json_t *idj = json_object_get(e, "id"), *kind = json_object_get(e, "kind");
	if (!json_is_string(idj) || json_string_length(idj) < 1 || json_string_length(idj) > 64) {
		http_error(req, 400, "invalid", "%s.id must be a string of 1 to 64 characters",
		           where);
		return 0;
	}
	const char *kinds[] = {"applied", "crash", "boot_loop", "rejected"};
	int kidx = -1;
	for (int k = 0; k < 4; k++)
		if (json_is_string(kind) && strcmp(json_string_value(kind), kinds[k]) == 0)
			kidx = k;
	if (kidx < 0) {
		http_error(req, 400, "invalid",
		           "%s.kind must be applied, crash, boot_loop or rejected", where);
		return 0;
	}
	static const char *const allowed[4][10] = {
	        {"id", "kind", "at", "boot_id", "channel", "content", NULL},
	        {"id", "kind", "at", "boot_id", "channel", "content", "code", "module",
	         "faulting_channel", NULL},
	        {"id", "kind", "at", "boot_id", "channel", "reverted_from", "reverted_to",
	         "unclean_starts", NULL},
	        {"id", "kind", "at", "boot_id", "channel", "content", "reason", NULL},
	};
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)e, key, v)
	{
		int ok = 0;
		for (int k = 0; allowed[kidx][k]; k++)
			if (strcmp(key, allowed[kidx][k]) == 0)
				ok = 1;
		if (!ok) {
			http_error(req, 400, "invalid", "%s: unknown field '%s' for kind %s", where,
			           key, kinds[kidx]);
			return 0;
		}
	}
	json_t *at = json_object_get(e, "at");
	int64_t now = fb_now_ms() / 1000;
	if (!json_is_integer(at) || json_integer_value(at) < now - 7 * 86400 ||
	    json_integer_value(at) > now + 300) {
		http_error(req, 400, "invalid", "%s.at must be a Unix time within the last 7 days",
		           where);
		return 0;
	}
	json_t *ch = json_object_get(e, "channel");
	if (!json_is_integer(ch) || json_integer_value(ch) < 1 ||
	    json_integer_value(ch) > 0xffffffffLL ||
	    !snapshot_channel_known((uint32_t)json_integer_value(ch))) {
		http_error(req, 400, "invalid", "%s.channel must be a known channel id", where);
		return 0;
	}
	json_t *boot = json_object_get(e, "boot_id");
	if (boot && (!json_is_string(boot) || json_string_length(boot) > 64)) {
		http_error(req, 400, "invalid",
		           "%s.boot_id must be a string of at most 64 characters", where);
		return 0;
	}
	const char *content_key = kidx == 2 ? "reverted_from" : "content";
	json_t *content = json_object_get(e, content_key);
	if (!fb_is_sha256_hex(json_string_value(content))) {
		http_error(req, 400, "invalid", "%s.%s must be a sha256 (64 lower-case hex)", where,
		           content_key);
		return 0;
	}
	json_t *details = json_object();
	if (kidx == 1) {
		json_t *code = json_object_get(e, "code"), *mod = json_object_get(e, "module");
		if ((code && (!json_is_string(code) || json_string_length(code) > 64)) ||
		    (mod && (!json_is_string(mod) || json_string_length(mod) > 128))) {
			json_decref(details);
			http_error(req, 400, "invalid",
			           "%s: code (<= 64) and module (<= 128) must be strings", where);
			return 0;
		}
		if (code)
			json_object_set(details, "code", code);
		if (mod)
			json_object_set(details, "module", mod);
		json_t *fc = json_object_get(e, "faulting_channel");
		if (fc && (!json_is_integer(fc) || json_integer_value(fc) < 1 ||
		           json_integer_value(fc) > 0xffffffffLL)) {
			json_decref(details);
			http_error(req, 400, "invalid",
			           "%s.faulting_channel must be a channel id (an integer from 1 to "
			           "4294967295)",
			           where);
			return 0;
		}
		if (fc)
			json_object_set(details, "faulting_channel", fc);
	} else if (kidx == 2) {
		json_t *to = json_object_get(e, "reverted_to"),
		       *n = json_object_get(e, "unclean_starts");
		if ((to && !(json_is_string(to) && (json_string_length(to) == 0 ||
		                                    fb_is_sha256_hex(json_string_value(to))))) ||
		    !json_is_integer(n) || json_integer_value(n) < 1 ||
		    json_integer_value(n) > 100000) {
			json_decref(details);
			http_error(req, 400, "invalid",
			           "%s: reverted_to must be a sha256 or empty and unclean_starts "
			           "an integer >= 1",
			           where);
			return 0;
		}
		json_object_set(details, "reverted_from", content);
		json_object_set_new(details, "reverted_to",
		                    json_string(to ? json_string_value(to) : ""));
		json_object_set(details, "unclean_starts", n);
	} else if (kidx == 3) {
		json_t *reason = json_object_get(e, "reason");
		if (!json_is_string(reason) || json_string_length(reason) > 512) {
			json_decref(details);
			http_error(req, 400, "invalid",
			           "%s.reason must be a string of at most 512 characters", where);
			return 0;
		}
		json_object_set(details, "reason", reason);
	}
	snprintf(row->id, sizeof row->id, "%s", json_string_value(idj));
	snprintf(row->kind, sizeof row->kind, "%s", kinds[kidx]);
	snprintf(row->channel, sizeof row->channel, "%lld", (long long)json_integer_value(ch));
	snprintf(row->content, sizeof row->content, "%s", json_string_value(content));
	snprintf(row->boot, sizeof row->boot, "%s", boot ? json_string_value(boot) : "");
	snprintf(row->at, sizeof row->at, "%lld", (long long)json_integer_value(at));
	row->details = json_dumps(details, JSON_COMPACT);
	json_decref(details);
	return 1;
}

void telemetry_events(struct http_req *req)
{
	json_t *body = http_req_json_or_reply(req);
	if (!body)
		return;
	static const char *const allowed[] = {"agent_id", "events", NULL};
	struct ev_row rows[MAX_EVENTS_PER_REQUEST];
	size_t n = 0;
	PGconn *c = NULL;
	if (!val_fields_or_reply(req, body, allowed) || !self_or_reply(req, body))
		goto out;
	json_t *events = json_object_get(body, "events");
	if (!json_is_array(events) || json_array_size(events) < 1 ||
	    json_array_size(events) > MAX_EVENTS_PER_REQUEST) {
		http_error(req, 400, "invalid", "field 'events' must be an array of 1 to %d events",
		           MAX_EVENTS_PER_REQUEST);
		goto out;
	}
	for (size_t i = 0; i < json_array_size(events); i++) {
		if (!event_or_reply(req, i, json_array_get(events, i), &rows[n]))
			goto out;
		n++;
	}
	const char *why;
	c = db_acquire(app.db, (int)cfg.db_wait_ms, &why);
	if (!c) {
		http_unavailable(req, why);
		goto out;
	}
	struct fb_err err;
	char agent[24];
	snprintf(agent, sizeof agent, "%lld", (long long)http_req_auth(req)->agent_id);
	int accepted = 0;
	if (db_cmd(c, &err, "BEGIN"))
		goto dberr;
	for (size_t i = 0; i < n; i++) {
		const char *p[] = {agent,           rows[i].id,
		                   rows[i].kind,    rows[i].channel,
		                   rows[i].content, rows[i].boot[0] ? rows[i].boot : NULL,
		                   rows[i].details, rows[i].at};
		PGresult *r = db_exec(
		        c, &err,
		        "INSERT INTO events (agent_id, event_id, kind, channel_id, content_sha256, "
		        "boot_id, details, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, "
		        "to_timestamp($8)) ON CONFLICT (agent_id, event_id) DO NOTHING RETURNING 1",
		        8, p);
		if (!r)
			goto dberr;
		accepted += PQntuples(r);
		PQclear(r);
	}
	if (db_cmd(c, &err, "COMMIT"))
		goto dberr;
	http_reply_json(
	        req, 200,
	        json_pack("{s:i,s:i}", "accepted", accepted, "duplicates", (int)n - accepted));
	goto out;
dberr:
	http_error(req, 503, "unavailable", "events not stored: %s", err.msg);
out:
	for (size_t i = 0; i < n; i++)
		free(rows[i].details);
	if (c)
		db_release(app.db, c);
	json_decref(body);
}
