/* Agent telemetry: batched heartbeats and durable, idempotent events. */
#include "telemetry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "snapshot.h"
#include "validate.h"

#define MAX_EVENTS_PER_REQUEST 100
#define MAX_PENDING            4000000 /* heartbeats waiting for the flusher */

struct hb {
	int64_t agent_id;
	int64_t seen_ms;
	int64_t uptime;
	char boot_id[65];
	char version[65];
	char *active; /* compact JSON */
	char *caps;   /* compact JSON */
};

/* Pending heartbeats: open addressing by agent id, latest one wins. */
struct hb_map {
	struct hb *slots;
	size_t cap, n;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static struct hb_map g_pending;
static pthread_t g_thread;
static int g_started, g_stop;
static uint64_t g_dropped;

static void hb_clear(struct hb *h)
{
	free(h->active);
	free(h->caps);
	memset(h, 0, sizeof *h);
}

static void map_free(struct hb_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].agent_id)
			hb_clear(&m->slots[i]);
	free(m->slots);
	memset(m, 0, sizeof *m);
}

static struct hb *map_slot(struct hb_map *m, int64_t id)
{
	size_t i = (size_t)((uint64_t)id * 0x9e3779b97f4a7c15ull) & (m->cap - 1);
	while (m->slots[i].agent_id && m->slots[i].agent_id != id)
		i = (i + 1) & (m->cap - 1);
	return &m->slots[i];
}

/* Steals h's strings on success. */
static enum fb_rc map_put(struct hb_map *m, struct hb *h)
{
	if (m->n + 1 > m->cap / 2) {
		size_t ncap = m->cap ? m->cap * 2 : 1024;
		struct hb_map n = {calloc(ncap, sizeof(struct hb)), ncap, 0};
		if (!n.slots)
			return FB_ENOMEM;
		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].agent_id) {
				*map_slot(&n, m->slots[i].agent_id) = m->slots[i];
				n.n++;
			}
		free(m->slots);
		*m = n;
	}
	struct hb *s = map_slot(m, h->agent_id);
	if (s->agent_id)
		hb_clear(s);
	else
		m->n++;
	*s = *h;
	return FB_OK;
}

/* COPY text format: escape backslash, tab, newline, carriage return. */
static enum fb_rc copy_field(struct fb_buf *b, const char *s, int last)
{
	enum fb_rc rc = FB_OK;
	if (!s) {
		rc = fb_buf_addstr(b, "\\N");
	} else {
		for (const char *c = s; *c && !rc; c++) {
			if (*c == '\\')
				rc = fb_buf_addstr(b, "\\\\");
			else if (*c == '\t')
				rc = fb_buf_addstr(b, "\\t");
			else if (*c == '\n')
				rc = fb_buf_addstr(b, "\\n");
			else if (*c == '\r')
				rc = fb_buf_addstr(b, "\\r");
			else
				rc = fb_buf_add(b, c, 1);
		}
	}
	return rc ? rc : fb_buf_addstr(b, last ? "\n" : "\t");
}

static enum fb_rc flush_batch(PGconn *c, struct hb_map *m, struct fb_err *err)
{
	enum fb_rc rc;
	struct fb_buf b;
	fb_buf_init(&b, (size_t)1 << 31);
	for (size_t i = 0; i < m->cap; i++) {
		struct hb *h = &m->slots[i];
		if (!h->agent_id)
			continue;
		char id[24], up[24], seen[32];
		snprintf(id, sizeof id, "%lld", (long long)h->agent_id);
		snprintf(up, sizeof up, "%lld", (long long)h->uptime);
		snprintf(seen, sizeof seen, "%.3f", (double)h->seen_ms / 1000.0);
		rc = copy_field(&b, id, 0);
		if (!rc)
			rc = copy_field(&b, h->boot_id, 0);
		if (!rc)
			rc = copy_field(&b, up, 0);
		if (!rc)
			rc = copy_field(&b, h->version, 0);
		if (!rc)
			rc = copy_field(&b, h->active, 0);
		if (!rc)
			rc = copy_field(&b, h->caps, 0);
		if (!rc)
			rc = copy_field(&b, seen, 1);
		if (rc)
			goto out;
	}
	rc = db_cmd(c, err, "BEGIN");
	if (!rc)
		rc = db_cmd(
		        c, err,
		        "CREATE TEMP TABLE IF NOT EXISTS hb_batch (id bigint, boot_id text, "
		        "uptime_s bigint, agent_version text, active jsonb, capabilities jsonb, "
		        "seen double precision) ON COMMIT DELETE ROWS");
	if (rc)
		goto out;
	PGresult *r = PQexec(c, "COPY hb_batch FROM STDIN");
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		fb_err_set(err, "COPY: %s", PQerrorMessage(c));
		PQclear(r);
		rc = FB_EDB;
		goto out;
	}
	PQclear(r);
	if (PQputCopyData(c, b.data ? b.data : "", (int)b.len) != 1 || PQputCopyEnd(c, NULL) != 1) {
		fb_err_set(err, "COPY: %s", PQerrorMessage(c));
		rc = FB_EDB;
		goto out;
	}
	r = PQgetResult(c);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fb_err_set(err, "COPY: %s", PQresultErrorMessage(r));
		PQclear(r);
		while ((r = PQgetResult(c)))
			PQclear(r);
		rc = FB_EDB;
		goto out;
	}
	PQclear(r);
	while ((r = PQgetResult(c)))
		PQclear(r);
	rc = db_cmd(c, err,
	            "UPDATE agents a SET boot_id = h.boot_id, uptime_s = h.uptime_s, "
	            "agent_version = coalesce(h.agent_version, a.agent_version), "
	            "active = coalesce(h.active, a.active), "
	            "capabilities = coalesce(h.capabilities, a.capabilities), "
	            "last_seen_at = to_timestamp(h.seen) FROM hb_batch h WHERE a.id = h.id "
	            "AND (a.last_seen_at IS NULL OR a.last_seen_at <= to_timestamp(h.seen))");
	if (!rc)
		rc = db_cmd(c, err, "COMMIT");
out:
	if (rc)
		PQclear(PQexec(c, "ROLLBACK"));
	fb_buf_cleanup(&b);
	return rc;
}

static void *flusher(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&g_mu);
	while (!g_stop || g_pending.n) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += cfg.heartbeat_flush_ms / 1000;
		until.tv_nsec += (cfg.heartbeat_flush_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (!g_stop)
			pthread_cond_timedwait(&g_cv, &g_mu, &until);
		if (!g_pending.n)
			continue;
		struct hb_map batch = g_pending;
		memset(&g_pending, 0, sizeof g_pending);
		pthread_mutex_unlock(&g_mu);

		const char *why;
		struct fb_err err;
		PGconn *c = db_acquire(app.db, 5000, &why);
		enum fb_rc rc = c ? flush_batch(c, &batch, &err) : FB_EDB;
		if (c)
			db_release(app.db, c);
		if (rc) {
			log_warn("heartbeat flush of %zu failed (%s); retrying with the next batch",
			         batch.n, c ? err.msg : why);
			/* Put them back unless newer ones arrived meanwhile. */
			pthread_mutex_lock(&g_mu);
			for (size_t i = 0; i < batch.cap; i++) {
				struct hb *h = &batch.slots[i];
				if (!h->agent_id)
					continue;
				if (g_stop || g_pending.n >= MAX_PENDING ||
				    (g_pending.cap &&
				     map_slot(&g_pending, h->agent_id)->agent_id) ||
				    map_put(&g_pending, h))
					hb_clear(h);
				else
					memset(h, 0, sizeof *h);
			}
			pthread_mutex_unlock(&g_mu);
			if (g_stop) {
				map_free(&batch);
				pthread_mutex_lock(&g_mu);
				map_free(&g_pending);
				break;
			}
			struct timespec ts = {0, 200000000L};
			nanosleep(&ts, NULL);
		} else {
			log_debug("flushed %zu heartbeat(s)", batch.n);
		}
		map_free(&batch);
		pthread_mutex_lock(&g_mu);
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
	map_free(&g_pending);
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
	if (!snapshot_agent_ok(id)) {
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

void telemetry_heartbeat(struct http_req *req)
{
	json_t *body = http_req_json_or_reply(req);
	if (!body)
		return;
	static const char *const allowed[] = {
	        "agent_id", "boot_id", "uptime_s", "agent_version", "active", "capabilities", NULL};
	struct hb h = {0};
	if (!val_fields_or_reply(req, body, allowed) || !self_or_reply(req, body))
		goto out;
	const char *boot = val_string_or_reply(req, body, "boot_id", 1, 64, 1);
	if (!boot || !val_int_or_reply(req, body, "uptime_s", 0, 100LL * 365 * 86400, 1, &h.uptime))
		goto out;
	const char *ver = val_string_or_reply(req, body, "agent_version", 1, 64, 0);
	if (json_object_get(body, "agent_version") && !ver)
		goto out;
	json_t *active = json_object_get(body, "active");
	if (!json_is_object(active) || json_object_size(active) > 256) {
		http_error(req, 400, "invalid",
		           "field 'active' must be an object of channel -> sha256");
		goto out;
	}
	const char *k;
	json_t *v;
	json_object_foreach(active, k, v)
	{
		if (!channel_key_or_reply(req, k, "active"))
			goto out;
		if (!fb_is_sha256_hex(json_string_value(v))) {
			http_error(req, 400, "invalid",
			           "active['%s'] must be a sha256 (64 lower-case hex)", k);
			goto out;
		}
	}
	json_t *caps = json_object_get(body, "capabilities");
	if (!val_capabilities_or_reply(req, caps, 0))
		goto out;
	h.agent_id = http_req_auth(req)->agent_id;
	h.seen_ms = fb_now_ms();
	snprintf(h.boot_id, sizeof h.boot_id, "%s", boot);
	snprintf(h.version, sizeof h.version, "%s", ver ? ver : "");
	h.active = json_dumps(active, JSON_COMPACT | JSON_SORT_KEYS);
	h.caps = caps ? json_dumps(caps, JSON_COMPACT) : NULL;
	if (caps)
		snapshot_agent_caps(h.agent_id, caps);
	pthread_mutex_lock(&g_mu);
	enum fb_rc rc = g_pending.n >= MAX_PENDING ? FB_ETOOBIG : map_put(&g_pending, &h);
	if (rc)
		g_dropped++;
	pthread_mutex_unlock(&g_mu);
	if (rc) {
		hb_clear(&h);
		http_error(req, 503, "unavailable", "heartbeat queue is full; retry later");
		goto out;
	}
	http_reply(req, 202, NULL, "", 0, NULL, 0);
out:
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
	        {"id", "kind", "at", "boot_id", "channel", "content", "code", "module", NULL},
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
		http_error(req, 503, "unavailable", "%s", why);
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
