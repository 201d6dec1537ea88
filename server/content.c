/* Channels, content uploads (verify, parse, preflight, store) and blobs. */
#include "content.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "audit.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "snapshot.h"
#include "validate.h"

/* ---- channels --------------------------------------------------------------- */

void content_channel_create(struct http_req *req)
{
	json_t *body = http_req_json_or_reply(req);
	if (!body)
		return;
	PGconn *c = NULL;
	PGresult *r = NULL;
	static const char *const allowed[] = {"id", "name", "description", NULL};
	int64_t id = 0;
	if (!val_fields_or_reply(req, body, allowed) ||
	    !val_int_or_reply(req, body, "id", 1, 0xffffffffLL, 1, &id))
		goto out;
	const char *name = val_string_or_reply(req, body, "name", 1, 128, 1);
	if (!name)
		goto out;
	const char *desc = val_string_or_reply(req, body, "description", 0, 1024, 0);
	if (json_object_get(body, "description") && !desc)
		goto out;
	c = app_db_or_reply(req);
	if (!c)
		goto out;
	char ids[24], state[6];
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	struct fb_err err;
	const char *p[] = {ids, name, desc ? desc : ""};
	if (db_cmd(c, &err, "BEGIN"))
		goto dberr;
	r = db_exec_state(c, &err, state,
	                  "INSERT INTO channels (id, name, description) VALUES ($1, $2, $3)", 3, p);
	if (!r) {
		if (strcmp(state, "23505") == 0) {
			/* Idempotent when identical. */
			PQclear(PQexec(c, "ROLLBACK"));
			r = db_exec(c, &err, "SELECT 1 FROM channels WHERE id = $1 AND name = $2",
			            2, p);
			if (r && PQntuples(r) == 1)
				http_reply_json(
				        req, 200,
				        json_pack("{s:I,s:s}", "id", (json_int_t)id, "name", name));
			else
				http_error(req, 409, "conflict",
				           "channel id %lld or name '%s' is taken", (long long)id,
				           name);
			goto out;
		}
		goto dberr;
	}
	PQclear(r);
	r = NULL;
	char obj[32];
	snprintf(obj, sizeof obj, "channel/%lld", (long long)id);
	json_t *after = json_pack("{s:I,s:s}", "id", (json_int_t)id, "name", name);
	enum fb_rc rc = audit_write(c, http_req_auth(req), http_req_id(req), "channel.create", obj,
	                            NULL, after, NULL, &err);
	json_decref(after);
	if (rc || snapshot_publish(c, "channel created", &err) || db_cmd(c, &err, "COMMIT"))
		goto dberr;
	http_reply_json(req, 201, json_pack("{s:I,s:s}", "id", (json_int_t)id, "name", name));
	goto out;
dberr:
	http_unavailable(req, err.msg);
out:
	PQclear(r);
	if (c)
		db_release(app.db, c);
	json_decref(body);
}

void content_channel_list(struct http_req *req)
{
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct fb_err err;
	PGresult *r = db_exec(
	        c, &err,
	        "SELECT coalesce(json_agg(json_build_object('id', id, 'name', name, "
	        "'description', description, 'ga', ga_sha256, 'previous_ga', prev_ga_sha256) "
	        "ORDER BY id), '[]')::text FROM channels",
	        0, NULL);
	db_release(app.db, c);
	if (!r) {
		http_unavailable(req, err.msg);
		return;
	}
	json_t *arr = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	PQclear(r);
	http_reply_json(req, 200, json_pack("{s:o}", "channels", arr));
}

/* ---- upload --------------------------------------------------------------------- */

static int same_templates(const struct fbsig_manifest *m, const struct cf_file *f)
{
	size_t n;
	const struct cf_tpl_ref *t = cf_file_templates(f, &n);
	if (n != m->n_templates)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int found = 0;
		for (size_t j = 0; j < m->n_templates; j++)
			if (m->templates[j].id == t[i].id &&
			    m->templates[j].version == t[i].version)
				found = 1;
		if (!found)
			return 0;
	}
	return 1;
}

void content_upload(struct http_req *req)
{
	json_t *body = http_req_json_or_reply(req);
	if (!body)
		return;
	unsigned char *blob = NULL;
	char *manifest = NULL;
	struct cf_file *file = NULL;
	json_t *tpl = NULL, *pf = NULL;
	PGconn *c = NULL;
	PGresult *r = NULL;
	struct fb_err err = {{0}};
	static const char *const allowed[] = {"manifest", "blob", NULL};
	if (!val_fields_or_reply(req, body, allowed))
		goto out;
	json_t *menv = json_object_get(body, "manifest");
	json_t *b64 = json_object_get(body, "blob");
	if (!json_is_object(menv)) {
		http_error(req, 400, "invalid",
		           "field 'manifest' must be the signed manifest envelope (an object)");
		goto out;
	}
	if (!json_is_string(b64)) {
		http_error(req, 400, "invalid", "field 'blob' must be the channel file in base64");
		goto out;
	}
	size_t cap = (size_t)cfg.max_upload, blen;
	blob = malloc(cap ? cap : 1);
	if (!blob) {
		http_unavailable(req, "out of memory");
		goto out;
	}
	if (sodium_base642bin(blob, cap, json_string_value(b64), json_string_length(b64), "\r\n",
	                      &blen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
		http_error(req, json_string_length(b64) / 4 * 3 > cap ? 413 : 400,
		           json_string_length(b64) / 4 * 3 > cap ? "body_too_large" : "invalid",
		           "field 'blob' is not base64 or decodes to more than %zu bytes", cap);
		goto out;
	}
	manifest = json_dumps(menv, JSON_COMPACT | JSON_SORT_KEYS);
	if (!manifest) {
		http_error(req, 400, "invalid", "field 'manifest' cannot be encoded");
		goto out;
	}
	struct fbsig_manifest m;
	enum fb_rc rc = fbsig_manifest_verify(app.root, manifest, strlen(manifest),
	                                      fb_now_ms() / 1000, &m, &err);
	if (rc) {
		http_error(req, 422, "bad_manifest", "manifest refused: %s", err.msg);
		goto out;
	}
	rc = fbsig_manifest_check_blob(&m, blob, blen, m.channel, &err);
	if (rc) {
		http_error(req, 422, "blob_mismatch", "blob does not match its manifest: %s",
		           err.msg);
		goto out;
	}
	rc = cf_parse(app.registry, blob, blen, &file, &err);
	if (rc) {
		http_error(req, 422, "invalid_content", "channel file refused: %s", err.msg);
		goto out;
	}
	if (cf_file_channel(file) != m.channel || cf_file_content_version(file) != m.version) {
		http_error(req, 422, "invalid_content",
		           "the file says channel %u version %lld but its manifest says channel %u "
		           "version %lld",
		           cf_file_channel(file), (long long)cf_file_content_version(file),
		           m.channel, (long long)m.version);
		goto out;
	}
	if (!same_templates(&m, file)) {
		http_error(req, 422, "invalid_content",
		           "the manifest's template list differs from the template types the file "
		           "uses");
		goto out;
	}
	c = app_db_or_reply(req);
	if (!c)
		goto out;
	char chs[16], vers[24], sizes[24];
	snprintf(chs, sizeof chs, "%u", m.channel);
	snprintf(vers, sizeof vers, "%lld", (long long)m.version);
	snprintf(sizes, sizeof sizes, "%zu", blen);
	/* Idempotent re-upload; a different file under a taken version is a conflict. */
	const char *pq[] = {m.sha256, chs, vers};
	r = db_exec(c, &err,
	            "SELECT sha256 = $1, (SELECT count(*) FROM channels WHERE id = $2) "
	            "FROM (SELECT sha256 FROM content WHERE sha256 = $1 OR (channel_id = $2 AND "
	            "version = $3)) x "
	            "UNION ALL SELECT NULL, (SELECT count(*) FROM channels WHERE id = $2) LIMIT 1",
	            3, pq);
	if (!r)
		goto dberr;
	int known_channel = strcmp(PQgetvalue(r, 0, 1), "1") == 0;
	int exists_same = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	int exists_other = strcmp(PQgetvalue(r, 0, 0), "f") == 0;
	PQclear(r);
	r = NULL;
	if (!known_channel) {
		http_error(req, 422, "unknown_channel",
		           "channel %u does not exist (create it first)", m.channel);
		goto out;
	}
	tpl = cf_file_templates_json(file);
	if (exists_same) {
		http_reply_json(req, 200,
		                json_pack("{s:s,s:I,s:I,s:I,s:O,s:b}", "sha256", m.sha256,
		                          "channel", (json_int_t)m.channel, "version",
		                          (json_int_t)m.version, "size", (json_int_t)blen,
		                          "templates", tpl, "duplicate", 1));
		goto out;
	}
	if (exists_other) {
		http_error(req, 409, "conflict", "channel %u already has a different version %lld",
		           m.channel, (long long)m.version);
		goto out;
	}
	/* The preflight: the same interpreter the agent runs, in a child. */
	struct cf_preflight_limits lim = {.wall_ms = cfg.preflight_wall_ms};
	struct cf_preflight_report rep;
	db_release(app.db, c); /* do not hold a connection through the preflight */
	c = NULL;
	rc = cf_preflight(app.registry, blob, blen, cfg.corpus, &lim, &rep);
	if (rc) {
		http_error(req, 500, "internal", "preflight could not run: %s", fb_rc_str(rc));
		goto out;
	}
	pf = json_pack("{s:s,s:I,s:I,s:I,s:s,s:b}", "outcome",
	               cf_preflight_outcome_str(rep.outcome), "events", (json_int_t)rep.events,
	               "matches", (json_int_t)rep.matches, "elapsed_ms", (json_int_t)rep.elapsed_ms,
	               "reason", rep.reason, "net_isolated", rep.net_isolated);
	if (rep.outcome != CF_PF_OK) {
		http_error(req, 422, "preflight_failed", "preflight %s: %s",
		           cf_preflight_outcome_str(rep.outcome), rep.reason);
		goto out;
	}
	c = app_db_or_reply(req);
	if (!c)
		goto out;
	char *tpl_s = json_dumps(tpl, JSON_COMPACT);
	char *pf_s = json_dumps(pf, JSON_COMPACT);
	char tid[24];
	snprintf(tid, sizeof tid, "%lld", (long long)http_req_auth(req)->token_id);
	const char *pins[] = {m.sha256, chs,   vers, sizes,
	                      manifest, tpl_s, pf_s, http_req_auth(req)->token_id ? tid : NULL};
	/* The blob goes as a binary parameter; the rest as text. */
	const char *vals[9];
	int lens[9], fmts[9];
	memcpy(vals, pins, sizeof pins);
	for (int i = 0; i < 8; i++) {
		lens[i] = 0;
		fmts[i] = 0;
	}
	vals[8] = (const char *)blob;
	lens[8] = (int)blen;
	fmts[8] = 1;
	char state[6] = "";
	if (db_cmd(c, &err, "BEGIN")) {
		free(tpl_s);
		free(pf_s);
		goto dberr;
	}
	r = PQexecParams(
	        c,
	        "INSERT INTO content (sha256, channel_id, version, size, manifest, templates, "
	        "preflight, uploaded_by, blob) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, "
	        "$8, $9)",
	        9, NULL, vals, lens, fmts, 0);
	free(tpl_s);
	free(pf_s);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		snprintf(state, sizeof state, "%s", code ? code : "");
		fb_err_set(&err, "%s", PQresultErrorMessage(r));
		PQclear(r);
		r = NULL;
		if (strcmp(state, "23505") == 0) {
			http_error(req, 409, "conflict",
			           "content for channel %u version %lld was uploaded concurrently",
			           m.channel, (long long)m.version);
			goto out;
		}
		goto dberr;
	}
	PQclear(r);
	r = NULL;
	char obj[80];
	snprintf(obj, sizeof obj, "content/%s", m.sha256);
	json_t *after = json_pack("{s:I,s:I,s:I,s:O}", "channel", (json_int_t)m.channel, "version",
	                          (json_int_t)m.version, "size", (json_int_t)blen, "preflight", pf);
	rc = audit_write(c, http_req_auth(req), http_req_id(req), "content.upload", obj, NULL,
	                 after, NULL, &err);
	json_decref(after);
	if (rc || db_cmd(c, &err, "COMMIT"))
		goto dberr;
	log_info("content %s uploaded: channel %u version %lld, %zu bytes", m.sha256, m.channel,
	         (long long)m.version, blen);
	http_reply_json(req, 201,
	                json_pack("{s:s,s:I,s:I,s:I,s:O,s:O}", "sha256", m.sha256, "channel",
	                          (json_int_t)m.channel, "version", (json_int_t)m.version, "size",
	                          (json_int_t)blen, "templates", tpl, "preflight", pf));
	goto out;
dberr:
	http_error(req, 503, "unavailable", "content not stored: %s", err.msg);
out:
	PQclear(r);
	if (c)
		db_release(app.db, c);
	cf_file_free(file);
	json_decref(tpl);
	json_decref(pf);
	free(manifest);
	free(blob);
	json_decref(body);
}

static const char *CONTENT_JSON =
        "json_build_object('sha256', sha256, 'channel', channel_id, 'version', version, 'size', "
        "size, "
        "'templates', templates, 'preflight', preflight, 'bad', bad, 'bad_reason', bad_reason, "
        "'created', extract(epoch FROM created_at)::bigint)";

void content_list(struct http_req *req)
{
	const char *ch = http_req_query(req, "channel");
	int64_t chv = 0;
	if (ch && fb_parse_i64(ch, 1, 0xffffffffLL, &chv)) {
		http_error(req, 400, "invalid", "channel must be a channel id");
		return;
	}
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct fb_err err;
	char sql[1024];
	snprintf(sql, sizeof sql,
	         "SELECT coalesce(json_agg(%s ORDER BY channel_id, version DESC), '[]')::text FROM "
	         "content "
	         "WHERE $1::int IS NULL OR channel_id = $1",
	         CONTENT_JSON);
	const char *p[] = {ch};
	PGresult *r = db_exec(c, &err, sql, 1, p);
	db_release(app.db, c);
	if (!r) {
		http_unavailable(req, err.msg);
		return;
	}
	json_t *arr = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	PQclear(r);
	http_reply_json(req, 200, json_pack("{s:o}", "content", arr));
}

void content_show(struct http_req *req)
{
	const char *sha = http_req_param(req, "sha256");
	if (!fb_is_sha256_hex(sha)) {
		http_error(req, 400, "invalid",
		           "content is named by its sha256 (64 lower-case hex)");
		return;
	}
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct fb_err err;
	char sql[1024];
	snprintf(sql, sizeof sql, "SELECT %s::text, manifest FROM content WHERE sha256 = $1",
	         CONTENT_JSON);
	const char *p[] = {sha};
	PGresult *r = db_exec(c, &err, sql, 1, p);
	db_release(app.db, c);
	if (!r) {
		http_unavailable(req, err.msg);
		return;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		http_error(req, 404, "not_found", "no content %s", sha);
		return;
	}
	json_t *o = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	json_object_set_new(o, "manifest", json_loads(PQgetvalue(r, 0, 1), 0, NULL));
	PQclear(r);
	http_reply_json(req, 200, o);
}

/* ---- blobs: immutable, cached in memory ------------------------------------- */

#define BLOB_CACHE_BYTES ((size_t)256 << 20)
#define BLOB_CACHE_SLOTS 64

struct blob_entry {
	char sha[FB_SHA256_HEX_LEN + 1];
	unsigned char *data;
	size_t len;
	uint64_t used;
};
static pthread_mutex_t g_blob_mu = PTHREAD_MUTEX_INITIALIZER;
static struct blob_entry g_blobs[BLOB_CACHE_SLOTS];
static size_t g_blob_bytes;
static uint64_t g_blob_clock;

void content_cache_cleanup(void)
{
	pthread_mutex_lock(&g_blob_mu);
	for (int i = 0; i < BLOB_CACHE_SLOTS; i++) {
		free(g_blobs[i].data);
		memset(&g_blobs[i], 0, sizeof g_blobs[i]);
	}
	g_blob_bytes = 0;
	pthread_mutex_unlock(&g_blob_mu);
}

/* Caller holds g_blob_mu. Returns the entry or NULL. */
static struct blob_entry *blob_cached(const char *sha)
{
	for (int i = 0; i < BLOB_CACHE_SLOTS; i++)
		if (g_blobs[i].data && strcmp(g_blobs[i].sha, sha) == 0) {
			g_blobs[i].used = ++g_blob_clock;
			return &g_blobs[i];
		}
	return NULL;
}

/* Caller holds g_blob_mu; steals data. */
static void blob_insert(const char *sha, unsigned char *data, size_t len)
{
	if (len > BLOB_CACHE_BYTES / 4) {
		free(data);
		return;
	}
	for (;;) {
		int empty = -1, oldest = -1;
		for (int i = 0; i < BLOB_CACHE_SLOTS; i++) {
			if (!g_blobs[i].data) {
				if (empty < 0)
					empty = i;
			} else if (oldest < 0 || g_blobs[i].used < g_blobs[oldest].used) {
				oldest = i;
			}
		}
		if (empty >= 0 && g_blob_bytes + len <= BLOB_CACHE_BYTES) {
			snprintf(g_blobs[empty].sha, sizeof g_blobs[empty].sha, "%s", sha);
			g_blobs[empty].data = data;
			g_blobs[empty].len = len;
			g_blobs[empty].used = ++g_blob_clock;
			g_blob_bytes += len;
			return;
		}
		g_blob_bytes -= g_blobs[oldest].len;
		free(g_blobs[oldest].data);
		memset(&g_blobs[oldest], 0, sizeof g_blobs[oldest]);
	}
}

/* Parse a single "bytes=a-b" range against len. 0 = no/ignored range,
 * 1 = satisfiable (*from, *to inclusive), -1 = unsatisfiable. */
static int parse_range(const char *h, size_t len, size_t *from, size_t *to)
{
	if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
		return 0;
	const char *s = h + 6, *dash = strchr(s, '-');
	if (!dash)
		return 0;
	char a[24], b[24];
	snprintf(a, sizeof a, "%.*s", (int)(dash - s), s);
	snprintf(b, sizeof b, "%s", dash + 1);
	int64_t x, y;
	if (!*a) { /* suffix: last y bytes */
		if (fb_parse_i64(b, 1, INT64_MAX, &y))
			return 0;
		if (len == 0)
			return -1;
		*from = (size_t)y >= len ? 0 : len - (size_t)y;
		*to = len - 1;
		return 1;
	}
	if (fb_parse_i64(a, 0, INT64_MAX, &x))
		return 0;
	if ((size_t)x >= len)
		return -1;
	*from = (size_t)x;
	*to = len - 1;
	if (*b) {
		if (fb_parse_i64(b, x, INT64_MAX, &y))
			return 0;
		if ((size_t)y < *to)
			*to = (size_t)y;
	}
	return 1;
}

void content_blob(struct http_req *req)
{
	const char *sha = http_req_param(req, "sha256");
	if (!fb_is_sha256_hex(sha)) {
		http_error(req, 400, "invalid",
		           "blobs are named by their sha256 (64 lower-case hex)");
		return;
	}
	char etag[FB_SHA256_HEX_LEN + 3];
	snprintf(etag, sizeof etag, "\"%s\"", sha);
	const char *inm = http_req_header(req, "If-None-Match");
	struct http_hdr hdrs[4] = {{"ETag", etag},
	                           {"Cache-Control", "public, max-age=31536000, immutable"},
	                           {"Accept-Ranges", "bytes"}};
	if (inm && strcmp(inm, etag) == 0) {
		/* Immutable: the same name is the same bytes, known or not here. */
		http_reply(req, 304, NULL, "", 0, hdrs, 3);
		return;
	}
	pthread_mutex_lock(&g_blob_mu);
	struct blob_entry *e = blob_cached(sha);
	if (!e) {
		pthread_mutex_unlock(&g_blob_mu);
		PGconn *c = app_db_or_reply(req);
		if (!c)
			return;
		struct fb_err err;
		const char *p[] = {sha};
		PGresult *r = PQexecParams(c, "SELECT blob FROM content WHERE sha256 = $1", 1, NULL,
		                           p, NULL, NULL, 1);
		db_release(app.db, c);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			fb_err_set(&err, "%s", PQresultErrorMessage(r));
			PQclear(r);
			http_unavailable(req, err.msg);
			return;
		}
		if (PQntuples(r) != 1) {
			PQclear(r);
			http_error(req, 404, "not_found", "no blob %s", sha);
			return;
		}
		size_t len = (size_t)PQgetlength(r, 0, 0);
		unsigned char *data = malloc(len ? len : 1);
		if (!data) {
			PQclear(r);
			http_unavailable(req, "out of memory");
			return;
		}
		memcpy(data, PQgetvalue(r, 0, 0), len);
		PQclear(r);
		if (len > BLOB_CACHE_BYTES / 4) { /* too large to cache: serve this copy */
			http_reply(req, 200, "application/octet-stream", data, len, hdrs, 3);
			free(data);
			return;
		}
		pthread_mutex_lock(&g_blob_mu);
		if (!blob_cached(sha))
			blob_insert(sha, data, len);
		else
			free(data);
		e = blob_cached(sha);
	}
	size_t from, to;
	int range = parse_range(http_req_header(req, "Range"), e->len, &from, &to);
	if (range < 0) {
		char cr[64];
		snprintf(cr, sizeof cr, "bytes */%zu", e->len);
		hdrs[3] = (struct http_hdr){"Content-Range", cr};
		pthread_mutex_unlock(&g_blob_mu);
		static const char body416[] = "{\"error\":{\"code\":\"range_not_satisfiable\","
		                              "\"message\":\"range outside the blob\"}}";
		http_reply(req, 416, "application/json", body416, sizeof body416 - 1, hdrs, 4);
		return;
	}
	if (range > 0) {
		char cr[96];
		snprintf(cr, sizeof cr, "bytes %zu-%zu/%zu", from, to, e->len);
		hdrs[3] = (struct http_hdr){"Content-Range", cr};
		http_reply(req, 206, "application/octet-stream", e->data + from, to - from + 1,
		           hdrs, 4);
	} else {
		http_reply(req, 200, "application/octet-stream", e->data, e->len, hdrs, 3);
	}
	pthread_mutex_unlock(&g_blob_mu);
}
