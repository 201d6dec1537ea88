/* fb-agent end to end: the real firebreakd, database and fb-agent binary.
 * Enrollment, poll 200 then 304, download-verify-apply, the refusals
 * (tampered blob, expired and replayed assignments, wrong root), crash
 * reports, the boot-loop revert, heartbeats in the agents table, and the
 * telemetry endpoints' refusals. A hostile relay in this process (the
 * "network" between agent and server) replays or tampers with answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fb.h"
#include "fbschema.h"
#include "fbsign.h"
#include "fbt.h"
#include "fbt_world.h"

#define CHANNEL 291

/* ---- the world: keys, root, a configured server, a channel ------------ */

/* The harness's world (keys from fixed seeds: 2 root keys, 3 release keys of
 * which 2 must sign, the online key; root.json; online.key) plus a server
 * configured with it, an admin token, channel 291 and an enrollment token. */
struct world {
	struct fbt_world fw;
	char *dir, *db;
	struct fbt_server srv;
	char *admin;
	char *enroll; /* enrollment token */
	char root_path[1100], templates[1100];
};

struct content {
	char sha[FB_SHA256_HEX_LEN + 1];
	unsigned char *blob;
	size_t len;
	char *manifest; /* signed envelope */
	size_t mlen;
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int64_t now_s(void)
{
	return fb_now_ms() / 1000;
}

static void write_text(const char *path, const void *p, size_t n)
{
	assert_int_equal(fb_file_write_atomic(path, p, n, 0644), FB_OK);
}

/* A root: one root key, two release keys (threshold 2), one online key. */
static char *make_root(struct fbsig_key *rk, struct fbsig_key *const rel[2],
                       struct fbsig_key *online, size_t *len)
{
	struct fbsig_pub rp, lp[2], op;
	fbsig_key_pub(rk, &rp);
	fbsig_key_pub(rel[0], &lp[0]);
	fbsig_key_pub(rel[1], &lp[1]);
	fbsig_key_pub(online, &op);
	struct fbsig_role_spec root = {&rp, 1, 1}, release = {lp, 2, 2}, on = {&op, 1, 1};
	json_t *obj = NULL;
	struct fb_err err = {""};
	assert_int_equal(
	        fbsig_root_build(1, now_s() + 365 * 86400, &root, &release, &on, &obj, &err),
	        FB_OK);
	char *env = NULL;
	assert_int_equal(fbsig_document_sign(rk, FBSIG_ROOT, obj, &env, len, &err), FB_OK);
	json_decref(obj);
	return env;
}

static json_t *http_json(struct world *w, const char *method, const char *path, const char *tok,
                         json_t *body, long want)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct fbt_resp r;
	assert_int_equal(
	        fbt_http(&w->srv, method, path, tok, text, text ? strlen(text) : 0, NULL, &r), 0);
	if (r.status != want)
		fail_msg("%s %s: HTTP %ld, wanted %ld: %s", method, path, r.status, want, r.body);
	json_t *j = fbt_resp_json(&r);
	fbt_resp_free(&r);
	free(text);
	json_decref(body);
	return j;
}

/* Server flags of the world plus extra (NULL-terminated); static storage. */
static const char *const *server_args(const struct world *w, const char *const *extra)
{
	static const char *args[FBT_MAX_ARGS];
	size_t n = 0;
	for (size_t i = 0; w->fw.args[i] && n < FBT_MAX_ARGS - 1; i++)
		args[n++] = w->fw.args[i];
	for (size_t i = 0; extra && extra[i] && n < FBT_MAX_ARGS - 1; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	return args;
}

static int world_setup(void **state)
{
	struct world *w = calloc(1, sizeof *w);
	assert_non_null(w);
	assert_int_equal(fbt_world_new(&w->fw), 0);
	w->dir = strdup(w->fw.dir);
	w->db = fbt_db_new();
	snprintf(w->root_path, sizeof w->root_path, "%s", w->fw.root_path);
	snprintf(w->templates, sizeof w->templates, "%s", w->fw.templates);
	/* signal_warmup 5: the health test's host learns its normal in five
	 * runs of the agent instead of the count signals' default twenty */
	const char *extra[] = {"--heartbeat_flush_ms=200", "--snapshot_check_ms=200",
	                       "--signal_warmup=5", "--controller=0", NULL};
	/* ready, not only healthy: the snapshot is loaded, so an enrollment is
	 * not refused with 503 while it loads (as it would be for a real agent,
	 * which retries) */
	if (fbt_server_start(&w->srv, w->db, server_args(w, extra)) ||
	    fbt_server_wait_ready(&w->srv))
		return -1;
	w->admin = fbt_token(w->db, "admin", "test-admin");
	assert_non_null(w->admin);
	json_decref(http_json(w, "POST", "/v1/channels", w->admin,
	                      json_pack("{s:i, s:s}", "id", CHANNEL, "name", "cf291"), 201));
	json_t *t = http_json(w, "POST", "/v1/enrollment-tokens", w->admin,
	                      json_pack("{s:s}", "name", "agents"), 201);
	w->enroll = strdup(json_string_value(json_object_get(t, "token")));
	json_decref(t);
	*state = w;
	return 0;
}

static int world_teardown(void **state)
{
	struct world *w = *state;
	if (!w)
		return 0;
	if (w->srv.pid)
		fbt_server_stop(&w->srv, SIGTERM);
	fbt_world_free(&w->fw);
	free(w->admin);
	free(w->enroll);
	free(w->db);
	free(w->dir);
	free(w);
	return 0;
}

/* c's blob (set by the caller) as version v: its manifest signed by two
 * release keys, uploaded. */
static void content_upload(struct world *w, int64_t v, struct content *c)
{
	fb_sha256_hex(c->blob, c->len, c->sha);
	c->manifest = fbt_world_manifest(&w->fw, c->blob, c->len, CHANNEL, v, 2, 30 * 86400);
	assert_non_null(c->manifest);
	c->mlen = strlen(c->manifest);
	char *body = fbt_world_upload_body(c->manifest, c->blob, c->len);
	assert_non_null(body);
	struct fbt_resp r;
	assert_int_equal(
	        fbt_http(&w->srv, "POST", "/v1/content", w->admin, body, strlen(body), NULL, &r),
	        0);
	if (r.status != 201)
		fail_msg("upload version %lld: HTTP %ld: %s", (long long)v, r.status, r.body);
	fbt_resp_free(&r);
	free(body);
}

/* A valid channel file of version v (the harness's), uploaded. */
static void content_make(struct world *w, int64_t v, struct content *c)
{
	memset(c, 0, sizeof *c);
	assert_int_equal(fbt_world_blob(CHANNEL, v, &c->blob, &c->len), 0);
	content_upload(w, v, c);
}

/* The harness's file of version v plus one more rule, given as a JSON
 * instance of the text form, uploaded. */
static void content_make_plus(struct world *w, int64_t v, const char *rule, struct content *c)
{
	char path[1100];
	struct fb_err err = {""};
	memset(c, 0, sizeof *c);
	snprintf(path, sizeof path, "%s/tests/data/schema/valid/basic.json", getenv("FB_SRC"));
	json_t *t = json_load_file(path, 0, NULL);
	json_t *inst = json_loads(rule, 0, NULL);
	assert_non_null(t);
	assert_non_null(inst);
	json_object_set_new(t, "channel", json_integer(CHANNEL));
	json_object_set_new(t, "content_version", json_integer(v));
	json_array_append_new(json_object_get(t, "instances"), inst);
	char *text = json_dumps(t, JSON_COMPACT);
	json_decref(t);
	if (cf_compile_json(NULL, text, strlen(text), &c->blob, &c->len, &err))
		fail_msg("compile: %s", err.msg);
	free(text);
	content_upload(w, v, c);
}

static void content_free(struct content *c)
{
	free(c->blob);
	free(c->manifest);
	memset(c, 0, sizeof *c);
}

/* The snapshot follows a publication within a moment (LISTEN/NOTIFY): wait
 * (up to 10 s) until the server says it serves the database's current one
 * (GET /readyz), instead of sleeping for a time a busy machine may exceed. */
static void wait_served(struct world *w)
{
	long seq = fbt_db_long(w->db, "SELECT seq FROM publication");
	for (int i = 0; i < 400; i++) {
		struct fbt_resp r;
		json_int_t served = -1;
		if (fbt_http(&w->srv, "GET", "/readyz", NULL, NULL, 0, NULL, &r) == 0 &&
		    r.status == 200) {
			json_t *j = json_loads(r.body, 0, NULL);
			served = json_integer_value(json_object_get(j, "publication"));
			json_decref(j);
		}
		fbt_resp_free(&r);
		if (served >= seq)
			return;
		sleep_ms(25);
	}
	fail_msg("the server did not serve publication %ld within 10 s", seq);
}

/* Make c the channel's GA content and publish a new assignment sequence,
 * as a completed rollout (or a revert) does. */
static int64_t publish_ga(struct world *w, const struct content *c)
{
	char sql[512];
	snprintf(sql, sizeof sql,
	         "UPDATE channels SET prev_ga_sha256 = ga_sha256, ga_sha256 = '%s' WHERE id = %d; "
	         "UPDATE publication SET seq = nextval('assignment_seq'), reason = 'test', "
	         "published_at = now(); NOTIFY firebreak_publication",
	         c->sha, CHANNEL);
	assert_int_equal(fbt_db_exec(w->db, sql), 0);
	long seq = fbt_db_long(w->db, "SELECT seq FROM publication");
	assert_true(seq > 0);
	wait_served(w);
	return seq;
}

/* ---- agents ------------------------------------------------------------ */

struct agent {
	char *dir;
	char ca[1024];   /* --ca-bundle, "" for none */
	char extra[256]; /* one more flag, "" for none */
	char root[1024];
	char url[160];
	char log[65536];
	int64_t id;
	char token[600];
};

static void agent_init(struct world *w, struct agent *a)
{
	memset(a, 0, sizeof *a);
	a->dir = fbt_tmpdir("agent");
	snprintf(a->root, sizeof a->root, "%s", w->root_path);
	snprintf(a->url, sizeof a->url, "%s", w->srv.url);
}

static void agent_free(struct agent *a)
{
	free(a->dir);
}

/* Run fb-agent --once; crash_on is FB_AGENT_TEST_CRASH_ON or NULL. Returns
 * the exit status; the agent's stderr is kept in a->log. */
static int agent_run(struct world *w, struct agent *a, const char *crash_on)
{
	char server[200], root[1100], state[1100], tpl[1100], tok[200], ca[1100];
	snprintf(server, sizeof server, "--server=%s", a->url);
	snprintf(root, sizeof root, "--root=%s", a->root);
	snprintf(state, sizeof state, "--state-dir=%s/state", a->dir);
	snprintf(tpl, sizeof tpl, "--templates=%s", w->templates);
	snprintf(tok, sizeof tok, "--enroll-token=%s", w->enroll);
	snprintf(ca, sizeof ca, "--ca-bundle=%s", a->ca);
	const char *argv[] = {fbt_bin("fb-agent"),
	                      "--once",
	                      server,
	                      root,
	                      state,
	                      tpl,
	                      tok,
	                      "--timeout=10",
	                      "--hostname=test-host",
	                      "--log-level=debug",
	                      a->ca[0]      ? ca
	                      : a->extra[0] ? a->extra
	                                    : NULL,
	                      a->ca[0] && a->extra[0] ? a->extra : NULL,
	                      NULL};
	static char env[1024];
	snprintf(env, sizeof env, "FB_AGENT_TEST_CRASH_ON=%s", crash_on ? crash_on : "");
	const char *envv[] = {env, NULL};
	char *err = NULL;
	int st = fbt_run(argv, envv, NULL, &err);
	snprintf(a->log, sizeof a->log, "%s", err ? err : "");
	fprintf(stderr, "---- fb-agent exit %d\n%s", st, a->log);
	free(err);
	/* Identity, once enrolled. */
	char p[1200];
	snprintf(p, sizeof p, "%s/state/identity.json", a->dir);
	json_t *id = json_load_file(p, 0, NULL);
	if (id) {
		a->id = json_integer_value(json_object_get(id, "agent_id"));
		snprintf(a->token, sizeof a->token, "%s",
		         json_string_value(json_object_get(id, "agent_token")));
		json_decref(id);
	}
	return st;
}

static json_t *agent_state(const struct agent *a)
{
	char p[1200];
	snprintf(p, sizeof p, "%s/state/state.json", a->dir);
	json_t *j = json_load_file(p, 0, NULL);
	assert_non_null(j);
	return j;
}

/* The content the agent's active pointer leads to equals c (or nothing). */
static void assert_active(const struct agent *a, const struct content *c)
{
	char p[1200];
	snprintf(p, sizeof p, "%s/state/slots/%d/active", a->dir, CHANNEL);
	unsigned char *data = NULL;
	size_t len = 0;
	enum fb_rc rc = fb_file_read(p, CF_MAX_FILE, &data, &len);
	if (!c) {
		assert_int_not_equal(rc, FB_OK);
		return;
	}
	assert_int_equal(rc, FB_OK);
	assert_int_equal(len, c->len);
	assert_memory_equal(data, c->blob, len);
	free(data);
	/* And state.json says so. */
	json_t *st = agent_state(a);
	json_t *chs = json_object_get(st, "channels");
	int found = 0;
	for (size_t i = 0; i < json_array_size(chs); i++) {
		json_t *ch = json_array_get(chs, i);
		if (json_integer_value(json_object_get(ch, "id")) != CHANNEL)
			continue;
		const char *act = json_string_value(json_object_get(ch, "active"));
		assert_non_null(act);
		size_t k = act[0] == 'A' ? 0 : 1;
		assert_string_equal(
		        json_string_value(json_array_get(json_object_get(ch, "slots"), k)), c->sha);
		found = 1;
	}
	assert_true(found);
	json_decref(st);
}

/* Wait (up to 5 s) until the query's count reaches want; returns the last value. */
static long db_wait(struct world *w, long want, const char *fmt, ...)
{
	char sql[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	long v = -1;
	for (int i = 0; i < 50; i++) {
		v = fbt_db_long(w->db, sql);
		if (v == want)
			break;
		sleep_ms(100);
	}
	return v;
}

static long events_of(struct world *w, const struct agent *a, const char *kind)
{
	char sql[256];
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM events WHERE agent_id = %lld AND kind = '%s'",
	         (long long)a->id, kind);
	return fbt_db_long(w->db, sql);
}

/* ---- a hostile relay between agent and server ---------------------------- */

struct relay {
	struct MHD_Daemon *d;
	char upstream[160];
	char url[160];
	pthread_mutex_t mu;
	char *poll_doc; /* served for /v1/poll instead of the server's answer */
	size_t poll_len;
	int tamper_blobs;   /* flip a byte of every blob */
	json_t *heartbeats; /* each POST /v1/heartbeat: {"body": ..., "status": N} */
	int old_server;     /* refuse heartbeats with health as a server before it did */
};

struct upload {
	char *p;
	size_t n;
};

struct sink {
	char *p;
	size_t n;
	char etag[256];
};

static size_t sink_body(char *d, size_t s, size_t m, void *ud)
{
	struct sink *k = ud;
	char *np = realloc(k->p, k->n + s * m + 1);
	if (!np)
		return 0;
	memcpy(np + k->n, d, s * m);
	k->n += s * m;
	np[k->n] = '\0';
	k->p = np;
	return s * m;
}

static size_t sink_hdr(char *d, size_t s, size_t m, void *ud)
{
	struct sink *k = ud;
	size_t n = s * m;
	if (n > 6 && strncasecmp(d, "ETag: ", 6) == 0) {
		size_t l = n - 6;
		while (l && (d[6 + l - 1] == '\r' || d[6 + l - 1] == '\n'))
			l--;
		if (l < sizeof k->etag) {
			memcpy(k->etag, d + 6, l);
			k->etag[l] = '\0';
		}
	}
	return n;
}

static enum MHD_Result relay_reply(struct MHD_Connection *con, unsigned status, const void *p,
                                   size_t n, const char *etag)
{
	struct MHD_Response *r =
	        MHD_create_response_from_buffer(n, (void *)p, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", "application/json");
	if (etag && *etag)
		MHD_add_response_header(r, "ETag", etag);
	enum MHD_Result ret = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result relay_handler(void *cls, struct MHD_Connection *con, const char *url,
                                     const char *method, const char *version, const char *data,
                                     size_t *data_size, void **con_cls)
{
	struct relay *rl = cls;
	struct upload *up = *con_cls;
	if (!up) {
		*con_cls = calloc(1, sizeof *up);
		return *con_cls ? MHD_YES : MHD_NO;
	}
	if (*data_size) {
		char *np = realloc(up->p, up->n + *data_size + 1);
		if (!np)
			return MHD_NO;
		memcpy(np + up->n, data, *data_size);
		up->n += *data_size;
		up->p = np;
		*data_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&rl->mu);
	if (strcmp(url, "/v1/poll") == 0 && rl->poll_doc) {
		enum MHD_Result ret =
		        relay_reply(con, 200, rl->poll_doc, rl->poll_len, "\"replayed\"");
		pthread_mutex_unlock(&rl->mu);
		return ret;
	}
	int tamper = rl->tamper_blobs && strncmp(url, "/v1/blobs/", 10) == 0;
	if (rl->old_server && strcmp(url, "/v1/heartbeat") == 0 && up->p &&
	    memmem(up->p, up->n, "\"health\"", 8)) {
		static const char refusal[] =
		        "{\"error\":{\"code\":\"invalid\",\"message\":\"unknown field 'health'\"}}";
		json_array_append_new(rl->heartbeats,
		                      json_pack("{s:o?, s:i}", "body",
		                                json_loadb(up->p, up->n, 0, NULL), "status", 400));
		enum MHD_Result ret = relay_reply(con, 400, refusal, sizeof refusal - 1, NULL);
		pthread_mutex_unlock(&rl->mu);
		return ret;
	}
	pthread_mutex_unlock(&rl->mu);
	CURL *c = curl_easy_init();
	char u[2048], line[1024];
	snprintf(u, sizeof u, "%s%s", rl->upstream, url);
	struct curl_slist *h = curl_slist_append(NULL, "Expect:");
	static const char *const pass[] = {"Authorization", "If-None-Match", "Content-Type"};
	for (size_t i = 0; i < 3; i++) {
		const char *v = MHD_lookup_connection_value(con, MHD_HEADER_KIND, pass[i]);
		if (v) {
			snprintf(line, sizeof line, "%s: %s", pass[i], v);
			h = curl_slist_append(h, line);
		}
	}
	struct sink k = {0};
	curl_easy_setopt(c, CURLOPT_URL, u);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, up->p ? up->p : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)up->n);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &k);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, sink_hdr);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &k);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	long status = 502;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (tamper && status == 200 && k.n > 0)
		k.p[k.n - 1] ^= 0x01;
	if (strcmp(method, "POST") == 0 && strcmp(url, "/v1/heartbeat") == 0) {
		json_t *hb = json_pack("{s:o?, s:i}", "body",
		                       up->p ? json_loadb(up->p, up->n, 0, NULL) : NULL, "status",
		                       (int)status);
		pthread_mutex_lock(&rl->mu);
		json_array_append_new(rl->heartbeats, hb);
		pthread_mutex_unlock(&rl->mu);
	}
	enum MHD_Result ret = relay_reply(con, (unsigned)status, k.p ? k.p : "", k.n, k.etag);
	free(k.p);
	return ret;
}

static void relay_done(void *cls, struct MHD_Connection *con, void **con_cls,
                       enum MHD_RequestTerminationCode toe)
{
	struct upload *up = *con_cls;
	if (up) {
		free(up->p);
		free(up);
	}
	*con_cls = NULL;
}

static void relay_start(struct relay *rl, const struct world *w)
{
	memset(rl, 0, sizeof *rl);
	pthread_mutex_init(&rl->mu, NULL);
	rl->heartbeats = json_array();
	snprintf(rl->upstream, sizeof rl->upstream, "%s", w->srv.url);
	rl->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
	                         NULL, NULL, relay_handler, rl, MHD_OPTION_NOTIFY_COMPLETED,
	                         relay_done, rl, MHD_OPTION_END);
	assert_non_null(rl->d);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(rl->d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	snprintf(rl->url, sizeof rl->url, "http://127.0.0.1:%u", (unsigned)info->port);
}

static void relay_stop(struct relay *rl)
{
	MHD_stop_daemon(rl->d);
	free(rl->poll_doc);
	json_decref(rl->heartbeats);
	pthread_mutex_destroy(&rl->mu);
}

static void relay_serve_poll(struct relay *rl, const char *doc, size_t len)
{
	pthread_mutex_lock(&rl->mu);
	free(rl->poll_doc);
	rl->poll_doc = malloc(len + 1);
	assert_non_null(rl->poll_doc);
	memcpy(rl->poll_doc, doc, len);
	rl->poll_len = len;
	pthread_mutex_unlock(&rl->mu);
}

/* The n-th heartbeat the relay passed on (negative: from the end), a new
 * reference. */
static json_t *relay_heartbeat(struct relay *rl, long n)
{
	pthread_mutex_lock(&rl->mu);
	size_t count = json_array_size(rl->heartbeats);
	json_t *hb = json_array_get(rl->heartbeats, n < 0 ? count + (size_t)n : (size_t)n);
	json_incref(hb);
	pthread_mutex_unlock(&rl->mu);
	assert_non_null(hb);
	return hb;
}

static size_t relay_heartbeats(struct relay *rl)
{
	pthread_mutex_lock(&rl->mu);
	size_t n = json_array_size(rl->heartbeats);
	pthread_mutex_unlock(&rl->mu);
	return n;
}

/* ---- health ---------------------------------------------------------------- */

/* o's member k: an unsigned integer (as PROTOCOL.md requires), at most max. */
static json_int_t uint_field(const json_t *o, const char *k, json_int_t max)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
		fail_msg("health field %s: not an integer in 0..%lld", k, (long long)max);
	return json_integer_value(v);
}

/* health as fb-agent measured it: each host-level field present, in
 * PROTOCOL.md's range and plausible here; returns channel 291's counters
 * (borrowed), checked for consistency. */
static json_t *check_health(const json_t *health)
{
	assert_non_null(health);
	json_int_t cpu_max = 100 * (json_int_t)sysconf(_SC_NPROCESSORS_ONLN) + 10;
	assert_true(uint_field(health, "interval_s", 86400) >= 1);
	uint_field(health, "agent_cpu_p95", cpu_max);
	uint_field(health, "agent_cpu_mean", cpu_max);
	/* host_cpu is left out when no clock tick of /proc/stat passed between
	 * the agent's start and its heartbeat (a one-shot run on a busy host):
	 * PROTOCOL.md makes every field optional */
	int host = json_object_get(health, "host_cpu") != NULL;
	if (host)
		uint_field(health, "host_cpu", 100);
	assert_true(uint_field(health, "agent_rss_kb", (json_int_t)1 << 40) > 1024);
	assert_int_equal(json_object_size(health), 5 + (size_t)host);
	json_t *ch = json_object_get(json_object_get(health, "channels"), "291");
	assert_non_null(ch);
	json_int_t evals = uint_field(ch, "evals", 1000000000);
	assert_true(uint_field(ch, "errors", evals) + uint_field(ch, "timeouts", evals) <= evals);
	assert_true(uint_field(ch, "blocks", evals) <= uint_field(ch, "detections", evals));
	return ch;
}

/* The health object of the last "heartbeat sent with health" line of an
 * agent's debug log (new reference), or NULL. */
static json_t *logged_health(const char *log)
{
	const char *key = "heartbeat sent with health ", *p = NULL, *q = log;
	while ((q = strstr(q, key)) != NULL)
		p = q = q + strlen(key);
	if (!p)
		return NULL;
	const char *e = strchr(p, '\n');
	return json_loadb(p, e ? (size_t)(e - p) : strlen(p), 0, NULL);
}

/* ---- tests --------------------------------------------------------------- */

static void test_enroll_poll_304_heartbeat(void **state)
{
	struct world *w = *state;
	struct agent a;
	agent_init(w, &a);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_true(a.id > 0);
	assert_non_null(strstr(a.log, "enrolled as agent"));
	char p[1200];
	snprintf(p, sizeof p, "%s/state/identity.json", a.dir);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(db_wait(w, 1,
	                         "SELECT count(*) FROM agents WHERE id = %lld AND hostname = "
	                         "'test-host'",
	                         (long long)a.id),
	                 1);
	/* ... with the host's platform facts from uname (this is Linux) */
	assert_int_equal(db_wait(w, 1,
	                         "SELECT count(*) FROM agents WHERE id = %lld AND os = 'linux' "
	                         "AND os_build ~ '^[A-Za-z0-9._-]+$' AND arch IS NOT NULL",
	                         (long long)a.id),
	                 1);

	/* The agent's own token: poll 200 with an ETag, then 304 with it. */
	struct fbt_resp r;
	assert_int_equal(fbt_http(&w->srv, "GET", "/v1/poll", a.token, NULL, 0, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	char etag[256], inm[300];
	assert_non_null(fbt_header(&r, "ETag", etag, sizeof etag));
	fbt_resp_free(&r);
	snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
	const char *hdrs[] = {inm, NULL};
	assert_int_equal(fbt_http(&w->srv, "GET", "/v1/poll", a.token, NULL, 0, hdrs, &r), 0);
	assert_int_equal(r.status, 304);
	fbt_resp_free(&r);

	/* The agent itself: the second cycle is a 304, no re-enrollment. */
	int64_t id = a.id;
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_int_equal(a.id, id);
	assert_non_null(strstr(a.log, "not modified"));
	assert_null(strstr(a.log, "enrolled as agent"));

	/* Its heartbeat reaches the agents table within the flush interval. */
	json_t *bj = NULL;
	snprintf(p, sizeof p, "%s/state/boot.json", a.dir);
	bj = json_load_file(p, 0, NULL);
	assert_non_null(bj);
	assert_true(json_is_true(json_object_get(bj, "clean")));
	char sql[512];
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM agents WHERE id = %lld AND boot_id = '%s' AND "
	         "agent_version = '1.0.0' AND last_seen_at IS NOT NULL AND "
	         "capabilities @> '[{\"id\": 2, \"version\": 1}]'",
	         (long long)a.id, json_string_value(json_object_get(bj, "boot_id")));
	json_decref(bj);
	int64_t t0 = fb_mono_ms();
	assert_int_equal(db_wait(w, 1, "%s", sql), 1);
	/* The server flushes every 200 ms here; allow scheduling slack. */
	assert_true(fb_mono_ms() - t0 < 2000);
	agent_free(&a);
}

static void test_apply_then_update(void **state)
{
	struct world *w = *state;
	struct content c1, c2;
	content_make(w, 1, &c1);
	publish_ga(w, &c1);
	struct agent a;
	agent_init(w, &a);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_active(&a, &c1);
	assert_non_null(strstr(a.log, "applied channel 291"));
	/* It evaluated the new file over this host's processes (itself among
	 * them) and reported that with the heartbeat. */
	json_t *health = logged_health(a.log);
	json_t *counts = check_health(health);
	assert_true(json_integer_value(json_object_get(counts, "evals")) >= 1);
	assert_int_equal(json_integer_value(json_object_get(counts, "errors")), 0);
	json_decref(health);
	assert_null(strstr(a.log, "refused the heartbeat's health"));
	assert_int_equal(db_wait(w, 1,
	                         "SELECT count(*) FROM events WHERE agent_id = %lld AND kind = "
	                         "'applied' AND content_sha256 = '%s' AND channel_id = %d",
	                         (long long)a.id, c1.sha, CHANNEL),
	                 1);
	/* The heartbeat carries the active content. */
	assert_int_equal(
	        db_wait(w, 1,
	                "SELECT count(*) FROM agents WHERE id = %lld AND active->>'291' = '%s'",
	                (long long)a.id, c1.sha),
	        1);

	content_make(w, 2, &c2);
	publish_ga(w, &c2);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_active(&a, &c2);
	json_t *st = agent_state(&a);
	json_t *ch = json_array_get(json_object_get(st, "channels"), 0);
	assert_string_equal(json_string_value(json_object_get(ch, "lkg")), c1.sha);
	assert_true(json_integer_value(json_object_get(st, "sequence")) > 0);
	assert_int_equal(json_array_size(json_object_get(st, "events")), 0);
	json_decref(st);
	assert_int_equal(events_of(w, &a, "applied"), 2);
	/* Nothing was refused. */
	assert_int_equal(events_of(w, &a, "rejected"), 0);

	/* An agent that follows another channel only takes nothing. */
	struct agent other;
	agent_init(w, &other);
	snprintf(other.extra, sizeof other.extra, "--channels=292");
	assert_int_equal(agent_run(w, &other, NULL), 0);
	assert_active(&other, NULL);
	assert_non_null(strstr(other.log, "verified (1 channel(s)"));
	assert_int_equal(events_of(w, &other, "applied"), 0);
	agent_free(&other);

	/* No content on the channel any more (its first content reverted): the
	 * assignment leaves it out and the agent deactivates it. */
	assert_int_equal(fbt_db_exec(w->db,
	                             "UPDATE channels SET ga_sha256 = NULL, prev_ga_sha256 = "
	                             "NULL; UPDATE publication SET seq = "
	                             "nextval('assignment_seq'); NOTIFY firebreak_publication"),
	                 0);
	wait_served(w);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_active(&a, NULL);
	assert_non_null(strstr(a.log, "channel 291 absent from assignment"));
	assert_int_equal(db_wait(w, 1,
	                         "SELECT count(*) FROM agents WHERE id = %lld AND active = '{}'",
	                         (long long)a.id),
	                 1);
	content_free(&c1);
	content_free(&c2);
	agent_free(&a);
}

static void test_tampered_blob_refused(void **state)
{
	struct world *w = *state;
	struct content c1;
	content_make(w, 10, &c1);
	publish_ga(w, &c1);
	struct relay rl;
	relay_start(&rl, w);
	rl.tamper_blobs = 1;
	struct agent a;
	agent_init(w, &a);
	snprintf(a.url, sizeof a.url, "%s", rl.url);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_active(&a, NULL);
	assert_non_null(strstr(a.log, "rejected channel 291"));
	assert_int_equal(db_wait(w, 1,
	                         "SELECT count(*) FROM events WHERE agent_id = %lld AND kind = "
	                         "'rejected' AND content_sha256 = '%s' AND details->>'reason' LIKE "
	                         "'content: %%sha256%%'",
	                         (long long)a.id, c1.sha),
	                 1);
	assert_int_equal(events_of(w, &a, "applied"), 0);
	/* No slot holds the tampered bytes. */
	char p[1200];
	snprintf(p, sizeof p, "%s/state/slots/%d/A", a.dir, CHANNEL);
	assert_int_not_equal(access(p, F_OK), 0);
	/* Retrying the same refusal is idempotent (same event id). */
	rl.tamper_blobs = 1;
	assert_int_equal(fbt_db_exec(w->db,
	                             "UPDATE publication SET seq = nextval('assignment_seq'); "
	                             "NOTIFY firebreak_publication"),
	                 0);
	wait_served(w);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_int_equal(events_of(w, &a, "rejected"), 1);
	/* Through the honest path the same content applies. */
	rl.tamper_blobs = 0;
	assert_int_equal(fbt_db_exec(w->db,
	                             "UPDATE publication SET seq = nextval('assignment_seq'); "
	                             "NOTIFY firebreak_publication"),
	                 0);
	wait_served(w);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_active(&a, &c1);
	relay_stop(&rl);
	content_free(&c1);
	agent_free(&a);
}

/* An assignment signed by the real online key but expired, and a replay of
 * an older assignment (rollback): both refused and reported. */
static void test_expired_and_replayed_assignments_refused(void **state)
{
	struct world *w = *state;
	struct content c1, c2;
	content_make(w, 20, &c1);
	publish_ga(w, &c1);
	struct agent a;
	agent_init(w, &a);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_active(&a, &c1);
	/* Capture the assignment the agent accepted. */
	struct fbt_resp old;
	assert_int_equal(fbt_http(&w->srv, "GET", "/v1/poll", a.token, NULL, 0, NULL, &old), 0);
	assert_int_equal(old.status, 200);
	content_make(w, 21, &c2);
	publish_ga(w, &c2);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_active(&a, &c2);

	struct relay rl;
	relay_start(&rl, w);
	snprintf(a.url, sizeof a.url, "%s", rl.url);
	/* Replay: validly signed, but an older sequence. */
	relay_serve_poll(&rl, old.body, old.len);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_active(&a, &c2);
	assert_int_equal(db_wait(w, 1,
	                         "SELECT count(*) FROM events WHERE agent_id = %lld AND kind = "
	                         "'rejected' AND content_sha256 = '%s' AND details->>'reason' LIKE "
	                         "'assignment sequence %% is not greater than the last accepted "
	                         "%%rollback%%'",
	                         (long long)a.id, c1.sha),
	                 1);
	fbt_resp_free(&old);

	/* Expired: a newer sequence, signed by the online key, expired an hour ago. */
	json_t *st = agent_state(&a);
	int64_t seq = json_integer_value(json_object_get(st, "sequence"));
	json_decref(st);
	json_t *obj = NULL;
	struct fb_err err = {""};
	assert_int_equal(fbsig_assignment_build("ga", seq + 100, now_s() - 7200, now_s() - 3600, 1,
	                                        &obj, &err),
	                 FB_OK);
	assert_int_equal(fbsig_assignment_add(obj, c1.manifest, c1.mlen, &err), FB_OK);
	char *doc = NULL;
	size_t len = 0;
	assert_int_equal(fbsig_assignment_sign(w->fw.online, obj, &doc, &len, &err), FB_OK);
	json_decref(obj);
	relay_serve_poll(&rl, doc, len);
	free(doc);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_active(&a, &c2);
	assert_int_equal(db_wait(w, 1,
	                         "SELECT count(*) FROM events WHERE agent_id = %lld AND kind = "
	                         "'rejected' AND content_sha256 = '%s' AND details->>'reason' LIKE "
	                         "'%%expired%%'",
	                         (long long)a.id, c1.sha),
	                 1);
	st = agent_state(&a);
	assert_int_equal(json_integer_value(json_object_get(st, "sequence")), seq);
	json_decref(st);

	/* A stolen online key cannot create content: a fresh, unexpired
	 * assignment naming a file only one release engineer signed is refused,
	 * and nothing is downloaded or written. */
	unsigned char *blob = NULL;
	size_t blen = 0;
	assert_int_equal(fbt_world_blob(CHANNEL, 29, &blob, &blen), 0);
	char *one_sig = fbt_world_manifest(&w->fw, blob, blen, CHANNEL, 29, 1, 86400);
	assert_non_null(one_sig);
	char evil[FB_SHA256_HEX_LEN + 1];
	fb_sha256_hex(blob, blen, evil);
	assert_int_equal(fbsig_assignment_build("ga", seq + 200, now_s() - 10, now_s() + 3600, 1,
	                                        &obj, &err),
	                 FB_OK);
	assert_int_equal(fbsig_assignment_add(obj, one_sig, strlen(one_sig), &err), FB_OK);
	assert_int_equal(fbsig_assignment_sign(w->fw.online, obj, &doc, &len, &err), FB_OK);
	json_decref(obj);
	relay_serve_poll(&rl, doc, len);
	free(doc);
	free(one_sig);
	free(blob);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_active(&a, &c2);
	assert_null(strstr(a.log, "applied channel"));
	assert_int_equal(db_wait(w, 1,
	                         "SELECT count(*) FROM events WHERE agent_id = %lld AND kind = "
	                         "'rejected' AND content_sha256 = '%s' AND details->>'reason' LIKE "
	                         "'%%1 of 2 required%%'",
	                         (long long)a.id, evil),
	                 1);
	relay_stop(&rl);
	content_free(&c1);
	content_free(&c2);
	agent_free(&a);
}

static void test_wrong_root_refused(void **state)
{
	struct world *w = *state;
	struct content c1;
	content_make(w, 30, &c1);
	publish_ga(w, &c1);
	/* A root of other keys: the server's online key is not in it. */
	struct fbsig_key *k[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(fbsig_keygen(&k[i]), FB_OK);
	struct fbsig_key *rel[2] = {k[1], k[2]};
	size_t len = 0;
	char *root = make_root(k[0], rel, k[3], &len);
	struct agent a;
	agent_init(w, &a);
	snprintf(a.root, sizeof a.root, "%s/other-root.json", a.dir);
	write_text(a.root, root, len);
	free(root);
	for (int i = 0; i < 4; i++)
		fbsig_key_free(k[i]);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_active(&a, NULL);
	assert_non_null(strstr(a.log, "rejected channel 291"));
	assert_int_equal(db_wait(w, 1,
	                         "SELECT count(*) FROM events WHERE agent_id = %lld AND kind = "
	                         "'rejected' AND content_sha256 = '%s' AND details->>'reason' LIKE "
	                         "'assignment sequence %%online-key signatures%%'",
	                         (long long)a.id, c1.sha),
	                 1);
	json_t *st = agent_state(&a);
	assert_int_equal(json_integer_value(json_object_get(st, "sequence")), 0);
	json_decref(st);
	content_free(&c1);
	agent_free(&a);
}

static void test_crash_reported_on_next_start(void **state)
{
	struct world *w = *state;
	struct content c1;
	content_make(w, 40, &c1);
	publish_ga(w, &c1);
	struct agent a;
	agent_init(w, &a);
	/* Applies, then "crashes". */
	assert_int_equal(agent_run(w, &a, c1.sha), 70);
	assert_active(&a, &c1);
	char p[1200];
	snprintf(p, sizeof p, "%s/state/boot.json", a.dir);
	json_t *bj = json_load_file(p, 0, NULL);
	assert_non_null(bj);
	assert_false(json_is_true(json_object_get(bj, "clean")));
	char crashed[64];
	snprintf(crashed, sizeof crashed, "%s", json_string_value(json_object_get(bj, "boot_id")));
	json_decref(bj);
	/* The host comes back (fixed): the crash is reported with the boot and
	 * content, naming the channel whose content it was interpreting (its
	 * breadcrumb: the gate's attributed cap counts these). */
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_non_null(strstr(a.log, "did not stop cleanly"));
	assert_int_equal(db_wait(w, 1,
	                         "SELECT count(*) FROM events WHERE agent_id = %lld AND kind = "
	                         "'crash' AND boot_id = '%s' AND content_sha256 = '%s' AND "
	                         "details->>'code' = 'test-hook' AND "
	                         "(details->>'faulting_channel')::int = %d",
	                         (long long)a.id, crashed, c1.sha, CHANNEL),
	                 1);
	/* The applied event queued before the crash arrives too. */
	assert_int_equal(events_of(w, &a, "applied"), 1);
	/* Retried reports are duplicates, not new events. */
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_int_equal(events_of(w, &a, "crash"), 1);
	content_free(&c1);
	agent_free(&a);
}

static void test_boot_loop_reverts_to_last_known_good(void **state)
{
	struct world *w = *state;
	struct content good, bad, next;
	content_make(w, 50, &good);
	publish_ga(w, &good);
	struct agent a;
	agent_init(w, &a);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_active(&a, &good);

	content_make(w, 51, &bad);
	publish_ga(w, &bad);
	/* Channel File 291: applied, crash; then every boot crashes on it. */
	assert_int_equal(agent_run(w, &a, bad.sha), 70);
	assert_active(&a, &bad);
	assert_int_equal(agent_run(w, &a, bad.sha), 70);
	assert_int_equal(agent_run(w, &a, bad.sha), 70);
	/* The third unclean start: the guard reverts before loading it again. */
	assert_int_equal(agent_run(w, &a, bad.sha), 0);
	assert_active(&a, &good);
	assert_non_null(strstr(a.log, "boot loop: channel 291 reverted"));
	/* The server still names the bad content: refused, not re-applied. */
	assert_non_null(strstr(a.log, "not applied: refused"));
	assert_int_equal(
	        db_wait(w, 1,
	                "SELECT count(*) FROM events WHERE agent_id = %lld AND kind = 'boot_loop' "
	                "AND content_sha256 = '%s' AND details->>'reverted_to' = '%s' AND "
	                "(details->>'unclean_starts')::int = 3",
	                (long long)a.id, bad.sha, good.sha),
	        1);
	assert_int_equal(events_of(w, &a, "crash"), 3);
	/* The heartbeat says the host runs the good content again. */
	assert_int_equal(
	        db_wait(w, 1,
	                "SELECT count(*) FROM agents WHERE id = %lld AND active->>'291' = '%s'",
	                (long long)a.id, good.sha),
	        1);
	/* A newer sequence that still names it: still refused. */
	assert_int_equal(fbt_db_exec(w->db,
	                             "UPDATE publication SET seq = nextval('assignment_seq'); "
	                             "NOTIFY firebreak_publication"),
	                 0);
	wait_served(w);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_active(&a, &good);
	/* Newer content lifts the refusal and applies. */
	content_make(w, 52, &next);
	publish_ga(w, &next);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_active(&a, &next);
	assert_non_null(strstr(a.log, "refusal(s) lifted"));
	content_free(&good);
	content_free(&bad);
	content_free(&next);
	agent_free(&a);
}

static void test_telemetry_refusals(void **state)
{
	struct world *w = *state;
	struct agent a, b;
	agent_init(w, &a);
	agent_init(w, &b);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_int_equal(agent_run(w, &b, NULL), 0);
	assert_true(a.id > 0 && b.id > 0 && a.id != b.id);
	long before = fbt_db_long(w->db, "SELECT count(*) FROM events");
	char body[2048];
	struct fbt_resp r;
	char sha[FB_SHA256_HEX_LEN + 1];
	fb_sha256_hex("x", 1, sha);

	/* a's token reporting for b: 403, nothing stored. */
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"events\":[{\"id\":\"e1\",\"kind\":\"applied\",\"at\":%lld,"
	         "\"boot_id\":\"b\",\"channel\":%d,\"content\":\"%s\"}]}",
	         (long long)b.id, (long long)now_s(), CHANNEL, sha);
	assert_int_equal(
	        fbt_http(&w->srv, "POST", "/v1/events", a.token, body, strlen(body), NULL, &r), 0);
	assert_int_equal(r.status, 403);
	fbt_resp_free(&r);
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"boot_id\":\"b\",\"uptime_s\":1,\"agent_version\":\"1\","
	         "\"active\":{},\"capabilities\":[]}",
	         (long long)b.id);
	assert_int_equal(
	        fbt_http(&w->srv, "POST", "/v1/heartbeat", a.token, body, strlen(body), NULL, &r),
	        0);
	assert_int_equal(r.status, 403);
	fbt_resp_free(&r);

	/* Malformed: not JSON; a good event next to a bad one (nothing stored);
	 * an unknown channel; a time in the future. */
	const char *bad[4];
	char b1[1024], b2[1024], b3[1024];
	bad[0] = "{\"agent_id\":";
	snprintf(b1, sizeof b1,
	         "{\"agent_id\":%lld,\"events\":[{\"id\":\"ok\",\"kind\":\"applied\",\"at\":%lld,"
	         "\"channel\":%d,\"content\":\"%s\"},{\"id\":\"bad\",\"kind\":\"applied\",\"at\":%"
	         "lld,"
	         "\"channel\":%d,\"content\":\"nope\"}]}",
	         (long long)a.id, (long long)now_s(), CHANNEL, sha, (long long)now_s(), CHANNEL);
	snprintf(b2, sizeof b2,
	         "{\"agent_id\":%lld,\"events\":[{\"id\":\"u\",\"kind\":\"applied\",\"at\":%lld,"
	         "\"channel\":999,\"content\":\"%s\"}]}",
	         (long long)a.id, (long long)now_s(), sha);
	snprintf(b3, sizeof b3,
	         "{\"agent_id\":%lld,\"events\":[{\"id\":\"f\",\"kind\":\"applied\",\"at\":%lld,"
	         "\"channel\":%d,\"content\":\"%s\"}]}",
	         (long long)a.id, (long long)now_s() + 3600, CHANNEL, sha);
	bad[1] = b1;
	bad[2] = b2;
	bad[3] = b3;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(fbt_http(&w->srv, "POST", "/v1/events", a.token, bad[i],
		                          strlen(bad[i]), NULL, &r),
		                 0);
		if (r.status != 400)
			fail_msg("case %d: HTTP %ld %s", i, r.status, r.body);
		fbt_resp_free(&r);
	}
	/* Oversized: over the route's body cap. */
	size_t big = 300 * 1024;
	char *huge = malloc(big + 1);
	assert_non_null(huge);
	int n = snprintf(huge, big, "{\"agent_id\":%lld,\"events\":[{\"id\":\"", (long long)a.id);
	memset(huge + n, 'a', big - (size_t)n);
	huge[big] = '\0';
	assert_int_equal(fbt_http(&w->srv, "POST", "/v1/events", a.token, huge, big, NULL, &r), 0);
	assert_int_equal(r.status, 413);
	fbt_resp_free(&r);
	assert_int_equal(fbt_http(&w->srv, "POST", "/v1/heartbeat", a.token, huge, big, NULL, &r),
	                 0);
	assert_int_equal(r.status, 413);
	fbt_resp_free(&r);
	free(huge);
	/* A malformed heartbeat: 400. */
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"boot_id\":\"b\",\"uptime_s\":-5,\"agent_version\":\"1\","
	         "\"active\":{\"291\":\"zz\"},\"capabilities\":[]}",
	         (long long)a.id);
	assert_int_equal(
	        fbt_http(&w->srv, "POST", "/v1/heartbeat", a.token, body, strlen(body), NULL, &r),
	        0);
	assert_int_equal(r.status, 400);
	fbt_resp_free(&r);
	assert_int_equal(fbt_db_long(w->db, "SELECT count(*) FROM events"), before);
	agent_free(&a);
	agent_free(&b);
}

/* HTTPS with a throwaway CA: the agent verifies the server against its CA
 * bundle, and refuses a server it cannot verify (nothing enrolled). */
static int openssl(const char *const *args)
{
	const char *argv[24] = {"/usr/bin/openssl"};
	size_t n = 1;
	for (; args[n - 1] && n < 23; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	char *err = NULL;
	int st = fbt_run(argv, NULL, NULL, &err);
	if (st)
		fprintf(stderr, "openssl: %s\n", err);
	free(err);
	return st;
}

static void test_https_with_ca_bundle(void **state)
{
	struct world *w = *state;
	if (access("/usr/bin/openssl", X_OK) != 0)
		skip();
	char ca[1100], cakey[1100], key[1100], csr[1100], crt[1100], ext[1100];
	snprintf(ca, sizeof ca, "%s/ca.pem", w->dir);
	snprintf(cakey, sizeof cakey, "%s/ca.key", w->dir);
	snprintf(key, sizeof key, "%s/srv.key", w->dir);
	snprintf(csr, sizeof csr, "%s/srv.csr", w->dir);
	snprintf(crt, sizeof crt, "%s/srv.pem", w->dir);
	snprintf(ext, sizeof ext, "%s/srv.ext", w->dir);
	write_text(ext, "subjectAltName=IP:127.0.0.1\n", 28);
	const char *mkca[] = {"req",    "-x509",    "-newkey",
	                      "ec",     "-pkeyopt", "ec_paramgen_curve:P-256",
	                      "-nodes", "-keyout",  cakey,
	                      "-out",   ca,         "-days",
	                      "2",      "-subj",    "/CN=firebreak test CA",
	                      NULL};
	const char *mkcsr[] = {
	        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
	        key,   "-out",    csr,  "-subj",    "/CN=127.0.0.1",           NULL};
	const char *sign[] = {
	        "x509", "-req", "-in",   csr, "-CA",      ca,  "-CAkey", cakey, "-CAcreateserial",
	        "-out", crt,    "-days", "2", "-extfile", ext, NULL};
	assert_int_equal(openssl(mkca), 0);
	assert_int_equal(openssl(mkcsr), 0);
	assert_int_equal(openssl(sign), 0);

	char okey[1200], rootarg[1100], tplarg[1200], certarg[1200], keyarg[1200];
	snprintf(okey, sizeof okey, "--online_key=%s/online.key", w->dir);
	snprintf(rootarg, sizeof rootarg, "--root=%s", w->root_path);
	snprintf(tplarg, sizeof tplarg, "--templates=%s", w->templates);
	snprintf(certarg, sizeof certarg, "--tls_cert=%s", crt);
	snprintf(keyarg, sizeof keyarg, "--tls_key=%s", key);
	const char *extra[] = {okey, rootarg, tplarg, certarg, keyarg, "--controller=0", NULL};
	setenv("FBT_CA", ca, 1);
	struct fbt_server tls;
	assert_int_equal(fbt_server_start(&tls, w->db, extra), 0);
	assert_int_equal(fbt_server_wait_ready(&tls), 0);
	assert_int_equal(strncmp(tls.url, "https://", 8), 0);

	struct agent a;
	agent_init(w, &a);
	snprintf(a.url, sizeof a.url, "%s", tls.url);
	/* No CA bundle: the system store does not know the test CA. */
	assert_int_equal(agent_run(w, &a, NULL), 1);
	assert_non_null(strstr(a.log, "enroll"));
	assert_non_null(strcasestr(a.log, "certificate"));
	assert_int_equal(a.id, 0);
	/* With it: enrolled, assignment verified and applied over HTTPS. */
	snprintf(a.ca, sizeof a.ca, "%s", ca);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_true(a.id > 0);
	assert_non_null(strstr(a.log, "verified"));
	fbt_server_stop(&tls, SIGTERM);
	unsetenv("FBT_CA");
	agent_free(&a);
}

/* The daemon loop: follows a new publication on its own, heartbeats on its
 * interval, and stops cleanly on SIGTERM (clean-stop mark written). */
static void test_daemon_follows_and_stops_cleanly(void **state)
{
	struct world *w = *state;
	struct content c1, c2;
	content_make(w, 60, &c1);
	publish_ga(w, &c1);
	struct agent a;
	agent_init(w, &a);
	char server[200], root[1100], st[1100], tpl[1100], tok[200], logp[1100];
	snprintf(server, sizeof server, "--server=%s", a.url);
	snprintf(root, sizeof root, "--root=%s", a.root);
	snprintf(st, sizeof st, "--state-dir=%s/state", a.dir);
	snprintf(tpl, sizeof tpl, "--templates=%s", w->templates);
	snprintf(tok, sizeof tok, "--enroll-token=%s", w->enroll);
	snprintf(logp, sizeof logp, "%s/daemon.log", a.dir);
	const char *argv[] = {fbt_bin("fb-agent"),
	                      server,
	                      root,
	                      st,
	                      tpl,
	                      tok,
	                      "--poll-interval=1",
	                      "--poll-jitter=0",
	                      "--heartbeat-interval=1",
	                      NULL};
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	/* Enrolled and on c1 ... */
	long applied = -1;
	for (int i = 0; i < 100 && applied != 1; i++) {
		sleep_ms(100);
		char p[1200];
		snprintf(p, sizeof p, "%s/state/identity.json", a.dir);
		json_t *id = json_load_file(p, 0, NULL);
		if (id) {
			a.id = json_integer_value(json_object_get(id, "agent_id"));
			json_decref(id);
			applied = events_of(w, &a, "applied");
		}
	}
	assert_int_equal(applied, 1);
	/* ... then follows c2 without being restarted. */
	content_make(w, 61, &c2);
	publish_ga(w, &c2);
	assert_int_equal(
	        db_wait(w, 1,
	                "SELECT count(*) FROM agents WHERE id = %lld AND active->>'291' = '%s'",
	                (long long)a.id, c2.sha),
	        1);
	assert_active(&a, &c2);
	/* Heartbeats keep coming on their interval. */
	char sql[256];
	snprintf(sql, sizeof sql,
	         "SELECT (extract(epoch FROM last_seen_at) * 1000)::bigint FROM agents WHERE id = "
	         "%lld",
	         (long long)a.id);
	long seen1 = fbt_db_long(w->db, sql);
	sleep_ms(2500);
	long seen2 = fbt_db_long(w->db, sql);
	assert_true(seen2 > seen1);
	kill(pid, SIGTERM);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	char p[1200];
	snprintf(p, sizeof p, "%s/state/boot.json", a.dir);
	json_t *bj = json_load_file(p, 0, NULL);
	assert_non_null(bj);
	assert_true(json_is_true(json_object_get(bj, "clean")));
	json_decref(bj);
	/* The next start reports no crash. */
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_null(strstr(a.log, "did not stop cleanly"));
	assert_int_equal(events_of(w, &a, "crash"), 0);
	content_free(&c1);
	content_free(&c2);
	agent_free(&a);
}

/* Health in the heartbeat (PROTOCOL.md, "Health"), real agent against the
 * real server through the relay, which keeps every heartbeat body: the
 * agent evaluates its content over an input of 41 events (one mimikatz,
 * which the harness's file blocks) and reports the counts with its CPU,
 * the host's and its memory; the server takes each (202). Then a file with
 * a rule that blocks every process: a detection storm on the same input,
 * which the server judges against the host's own history (a 'degraded'
 * event naming the signal and the content). Last, the daemon: heartbeats
 * every 2 s, a pass every second, the counts of each interval. */
static void test_health_reported_and_judged(void **state)
{
	struct world *w = *state;
	struct content c1, c2;
	content_make(w, 80, &c1);
	publish_ga(w, &c1);
	struct relay rl;
	relay_start(&rl, w);
	struct agent a;
	agent_init(w, &a);
	snprintf(a.url, sizeof a.url, "%s", rl.url);
	char input[1100], line[256];
	snprintf(input, sizeof input, "%s/events.jsonl", a.dir);
	FILE *fp = fopen(input, "w");
	assert_non_null(fp);
	fprintf(fp, "{\"process_name\":\"mimikatz.exe\",\"command_line\":\"mimikatz.exe "
	            "sekurlsa::logonpasswords\",\"parent_name\":\"cmd.exe\"}\n");
	for (int i = 0; i < 40; i++) {
		snprintf(line, sizeof line,
		         "{\"process_name\":\"worker%d\",\"command_line\":\"/usr/bin/worker%d "
		         "--serve\",\"parent_name\":\"systemd\",\"pid\":%d}\n",
		         i, i, 1000 + i);
		fputs(line, fp);
	}
	assert_int_equal(fclose(fp), 0);
	snprintf(a.extra, sizeof a.extra, "--scan-input=%s", input);

	/* The server learns what is normal for this host from its first
	 * heartbeats (signal_warmup, 5), then judges. */
	for (int run = 0; run < 6; run++) {
		assert_int_equal(agent_run(w, &a, NULL), 0);
		assert_null(strstr(a.log, "refused the heartbeat's health"));
		json_t *hb = relay_heartbeat(&rl, -1);
		assert_int_equal(json_integer_value(json_object_get(hb, "status")), 202);
		json_t *ch = check_health(json_object_get(json_object_get(hb, "body"), "health"));
		/* one pass of --once: every event once, mimikatz detected and
		 * (would be) blocked */
		assert_int_equal(json_integer_value(json_object_get(ch, "evals")), 41);
		assert_int_equal(json_integer_value(json_object_get(ch, "detections")), 1);
		assert_int_equal(json_integer_value(json_object_get(ch, "blocks")), 1);
		assert_int_equal(json_integer_value(json_object_get(ch, "errors")), 0);
		assert_int_equal(json_integer_value(json_object_get(ch, "timeouts")), 0);
		json_decref(hb);
	}
	assert_true(relay_heartbeats(&rl) == 6); /* never resent without health */
	assert_int_equal(events_of(w, &a, "degraded"), 0);

	/* A file that blocks every process: 41 detections of 41 on the same
	 * input, three times (the detections signal's k), and the host is
	 * degraded on detections for that content. */
	content_make_plus(w, 81,
	                  "{\"id\": 6, \"template\": 1, \"template_version\": 1, \"fields\": "
	                  "[{\"string\": \"block every process\"}, {\"int\": 3}, "
	                  "{\"regex\": \".\"}, null, null, null]}",
	                  &c2);
	publish_ga(w, &c2);
	for (int run = 0; run < 3; run++) {
		assert_int_equal(agent_run(w, &a, NULL), 0);
		json_t *hb = relay_heartbeat(&rl, -1);
		assert_int_equal(json_integer_value(json_object_get(hb, "status")), 202);
		json_t *ch = check_health(json_object_get(json_object_get(hb, "body"), "health"));
		assert_int_equal(json_integer_value(json_object_get(ch, "evals")), 41);
		assert_int_equal(json_integer_value(json_object_get(ch, "detections")), 41);
		assert_int_equal(json_integer_value(json_object_get(ch, "blocks")), 41);
		json_decref(hb);
	}
	assert_active(&a, &c2);
	assert_int_equal(db_wait(w, 1,
	                         "SELECT count(*) FROM events WHERE agent_id = %lld AND kind = "
	                         "'degraded' AND details->>'signal' = 'detections' AND "
	                         "channel_id = %d AND content_sha256 = '%s'",
	                         (long long)a.id, CHANNEL, c2.sha),
	                 1);
	assert_int_equal(events_of(w, &a, "degraded"), 1); /* nothing else */

	/* The daemon: a heartbeat every 2 s, a pass every second; each
	 * heartbeat after the first cycle's covers about 2 s and counts the
	 * passes of its interval (41 evaluations each, all blocked). */
	char server[200], root[1100], st[1100], tpl[1100], scan[1200], logp[1100];
	snprintf(server, sizeof server, "--server=%s", rl.url);
	snprintf(root, sizeof root, "--root=%s", a.root);
	snprintf(st, sizeof st, "--state-dir=%s/state", a.dir);
	snprintf(tpl, sizeof tpl, "--templates=%s", w->templates);
	snprintf(scan, sizeof scan, "--scan-input=%s", input);
	snprintf(logp, sizeof logp, "%s/daemon.log", a.dir);
	const char *argv[] = {fbt_bin("fb-agent"),
	                      server,
	                      root,
	                      st,
	                      tpl,
	                      scan,
	                      "--poll-interval=60",
	                      "--poll-jitter=0",
	                      "--heartbeat-interval=2",
	                      "--scan-interval=1",
	                      "--log-level=debug",
	                      NULL};
	size_t before = relay_heartbeats(&rl);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 150 && relay_heartbeats(&rl) < before + 4; i++)
		sleep_ms(100);
	kill(pid, SIGTERM);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	size_t after = relay_heartbeats(&rl);
	assert_true(after >= before + 4);
	for (size_t i = before + 1; i < after; i++) {
		json_t *hb = relay_heartbeat(&rl, (long)i);
		json_t *h = json_object_get(json_object_get(hb, "body"), "health");
		assert_int_equal(json_integer_value(json_object_get(hb, "status")), 202);
		json_t *ch = check_health(h);
		json_int_t iv = json_integer_value(json_object_get(h, "interval_s"));
		json_int_t ev = json_integer_value(json_object_get(ch, "evals"));
		if (iv < 1 || iv > 4 || ev < 41 || ev % 41 != 0 || ev > 41 * (iv + 1))
			fail_msg("heartbeat %zu: interval %lld s, %lld evaluations", i,
			         (long long)iv, (long long)ev);
		assert_int_equal(json_integer_value(json_object_get(ch, "blocks")), ev);
		json_decref(hb);
	}
	relay_stop(&rl);
	content_free(&c1);
	content_free(&c2);
	agent_free(&a);
}

/* A server from before the health object refuses it (400 naming the
 * field): the agent sends the same heartbeat again without it at once, so
 * the host does not look silent, and says so. */
static void test_health_refused_by_old_server(void **state)
{
	struct world *w = *state;
	struct relay rl;
	relay_start(&rl, w);
	rl.old_server = 1;
	struct agent a;
	agent_init(w, &a);
	snprintf(a.url, sizeof a.url, "%s", rl.url);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_non_null(strstr(a.log, "refused the heartbeat's health object (unknown field "
	                              "'health'); sent without it"));
	assert_int_equal(relay_heartbeats(&rl), 2);
	json_t *first = relay_heartbeat(&rl, 0), *second = relay_heartbeat(&rl, 1);
	assert_int_equal(json_integer_value(json_object_get(first, "status")), 400);
	assert_non_null(json_object_get(json_object_get(first, "body"), "health"));
	assert_int_equal(json_integer_value(json_object_get(second, "status")), 202);
	assert_null(json_object_get(json_object_get(second, "body"), "health"));
	/* the rest of the heartbeat is the same */
	json_object_del(json_object_get(first, "body"), "health");
	assert_true(json_equal(json_object_get(first, "body"), json_object_get(second, "body")));
	json_decref(first);
	json_decref(second);
	assert_int_equal(db_wait(w, 1,
	                         "SELECT count(*) FROM agents WHERE id = %lld AND last_seen_at IS "
	                         "NOT NULL",
	                         (long long)a.id),
	                 1);
	/* with health = 0 it is not sent at all */
	snprintf(a.extra, sizeof a.extra, "--health=0");
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_int_equal(relay_heartbeats(&rl), 3);
	json_t *third = relay_heartbeat(&rl, 2);
	assert_int_equal(json_integer_value(json_object_get(third, "status")), 202);
	assert_null(json_object_get(json_object_get(third, "body"), "health"));
	assert_null(strstr(a.log, "refused the heartbeat's health"));
	json_decref(third);
	relay_stop(&rl);
	agent_free(&a);
}

/* Root rotation: a server under root version 2 signs assignments naming it;
 * an agent pinned to version 1 fetches /v1/roots/2, accepts it with
 * fbsig_root_update (signed by the old and the new root keys), persists it and
 * applies the content. */
static void test_root_rotation(void **state)
{
	struct world *w = *state;
	struct fbsig_key *r2 = NULL;
	assert_int_equal(fbsig_keygen(&r2), FB_OK);
	/* Version 2: a new root key replaces both old ones; release and online
	 * keys stay. Signed by the old root's threshold (2) and the new one's. */
	struct fbsig_pub rp, lp[3], op;
	fbsig_key_pub(r2, &rp);
	for (int i = 0; i < 3; i++)
		fbsig_key_pub(w->fw.release_keys[i], &lp[i]);
	fbsig_key_pub(w->fw.online, &op);
	struct fbsig_role_spec rs = {&rp, 1, 1}, rel = {lp, 3, 2}, on = {&op, 1, 1};
	json_t *obj = NULL;
	struct fb_err err = {""};
	assert_int_equal(fbsig_root_build(2, now_s() + 365 * 86400, &rs, &rel, &on, &obj, &err),
	                 FB_OK);
	char *one = NULL, *two = NULL, *three = NULL;
	size_t l1 = 0, l2 = 0, l3 = 0;
	assert_int_equal(fbsig_document_sign(w->fw.root_keys[0], FBSIG_ROOT, obj, &one, &l1, &err),
	                 FB_OK);
	assert_int_equal(
	        fbsig_envelope_sign(w->fw.root_keys[1], FBSIG_ROOT, one, l1, &two, &l2, &err),
	        FB_OK);
	assert_int_equal(fbsig_envelope_sign(r2, FBSIG_ROOT, two, l2, &three, &l3, &err), FB_OK);
	json_decref(obj);
	free(one);
	free(two);
	two = three;
	l2 = l3;
	char v2[1100];
	snprintf(v2, sizeof v2, "%s/root-v2.json", w->dir);
	write_text(v2, two, l2);
	free(two);
	fbsig_key_free(r2);

	char okey[1200], rootarg[1200], tplarg[1200];
	snprintf(okey, sizeof okey, "--online_key=%s/online.key", w->dir);
	snprintf(rootarg, sizeof rootarg, "--root=%s", v2);
	snprintf(tplarg, sizeof tplarg, "--templates=%s", w->templates);
	const char *extra[] = {okey, rootarg, tplarg, "--controller=0", NULL};
	struct fbt_server s2;
	assert_int_equal(fbt_server_start(&s2, w->db, extra), 0);
	assert_int_equal(fbt_server_wait_ready(&s2), 0);
	struct agent a;
	agent_init(w, &a);
	snprintf(a.url, sizeof a.url, "%s", s2.url);
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_non_null(strstr(a.log, "root updated to version 2"));
	assert_non_null(strstr(a.log, "applied channel 291"));
	char p[1200];
	snprintf(p, sizeof p, "%s/state/root.json", a.dir);
	json_t *r = json_load_file(p, 0, NULL);
	assert_non_null(r);
	assert_int_equal(
	        json_integer_value(json_object_get(json_object_get(r, "signed"), "version")), 2);
	json_decref(r);
	/* The next start trusts version 2 from its state directory. */
	assert_int_equal(agent_run(w, &a, NULL), 0);
	assert_non_null(strstr(a.log, "root version 2"));
	assert_null(strstr(a.log, "root updated"));
	fbt_server_stop(&s2, SIGTERM);
	agent_free(&a);
}

/* The whole story with real agents: a rollout of a file that crashes every
 * host that loads it reaches the canary ring only; the canaries crash, loop,
 * revert themselves and report; their telemetry makes the gate HALT, the
 * server republishes the last known good content, and every agent ends on
 * it. Agents outside ring 0 never see the bad file. */
static void test_rollout_halted_by_agent_telemetry(void **state)
{
	struct world *w = *state;
	struct world w2 = *w;
	w2.db = fbt_db_new();
	char okey[1200], rootarg[1200], tplarg[1200], corpus[1200];
	snprintf(okey, sizeof okey, "--online_key=%s/online.key", w->dir);
	snprintf(rootarg, sizeof rootarg, "--root=%s", w->root_path);
	snprintf(tplarg, sizeof tplarg, "--templates=%s", w->templates);
	snprintf(corpus, sizeof corpus, "--corpus=%s/schema/corpus", getenv("FB_SRC"));
	const char *extra[] = {okey,
	                       rootarg,
	                       tplarg,
	                       corpus,
	                       "--heartbeat_flush_ms=200",
	                       "--snapshot_check_ms=200",
	                       "--controller=1",
	                       "--controller_interval_ms=200",
	                       NULL};
	assert_int_equal(fbt_server_start(&w2.srv, w2.db, extra), 0);
	assert_int_equal(fbt_server_wait_ready(&w2.srv), 0);
	w2.admin = fbt_token(w2.db, "admin", "test-admin");
	assert_non_null(w2.admin);
	json_decref(http_json(&w2, "POST", "/v1/channels", w2.admin,
	                      json_pack("{s:i, s:s}", "id", CHANNEL, "name", "cf291"), 201));
	json_t *t = http_json(&w2, "POST", "/v1/enrollment-tokens", w2.admin,
	                      json_pack("{s:s}", "name", "fleet"), 201);
	w2.enroll = strdup(json_string_value(json_object_get(t, "token")));
	json_decref(t);

	struct content good, bad;
	content_make(&w2, 1, &good);
	publish_ga(&w2, &good);
	enum { N = 4 };
	struct agent a[N];
	for (int i = 0; i < N; i++) {
		agent_init(&w2, &a[i]);
		assert_int_equal(agent_run(&w2, &a[i], NULL), 0);
		assert_active(&a[i], &good);
	}
	/* Ring 0 is agents 0-2; agent 3 falls in a later ring. */
	char rings[1024];
	snprintf(rings, sizeof rings,
	         "{\"rings\":[{\"name\":\"canary\",\"selector\":{\"agents\":[%lld,%lld,%lld]}},"
	         "{\"name\":\"early\",\"selector\":{\"agents\":[%lld]}},"
	         "{\"name\":\"ga\",\"selector\":{\"rest\":true}}]}",
	         (long long)a[0].id, (long long)a[1].id, (long long)a[2].id, (long long)a[3].id);
	json_decref(http_json(&w2, "PUT", "/v1/rings", w2.admin, json_loads(rings, 0, NULL), 200));

	content_make(&w2, 2, &bad);
	json_t *ro = http_json(&w2, "POST", "/v1/rollouts", w2.admin,
	                       json_pack("{s:i, s:s, s:{s:i, s:i}}", "channel", CHANNEL, "content",
	                                 bad.sha, "policy", "hard_cap", 2, "min_bake_s", 3600),
	                       201);
	json_int_t rid = json_integer_value(json_object_get(ro, "id"));
	json_decref(ro);
	assert_true(rid > 0);
	wait_served(&w2);

	/* Canaries 0 and 1: apply, crash, crash at every boot, then the guard. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(agent_run(&w2, &a[i], bad.sha), 70);
		assert_active(&a[i], &bad);
		assert_int_equal(agent_run(&w2, &a[i], bad.sha), 70);
		assert_int_equal(agent_run(&w2, &a[i], bad.sha), 70);
		assert_int_equal(agent_run(&w2, &a[i], bad.sha), 0);
		assert_active(&a[i], &good);
	}
	/* Their reports halt the rollout and mark the file bad. */
	char sql[512];
	snprintf(
	        sql, sizeof sql,
	        "SELECT count(*) FROM rollouts WHERE id = %lld AND state IN ('halted', 'reverted')",
	        (long long)rid);
	assert_int_equal(db_wait(&w2, 1, "%s", sql), 1);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM content WHERE sha256 = '%s' AND bad",
	         bad.sha);
	assert_int_equal(fbt_db_long(w2.db, sql), 1);
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM events WHERE kind = 'boot_loop' AND content_sha256 = '%s'",
	         bad.sha);
	assert_int_equal(fbt_db_long(w2.db, sql), 2);
	wait_served(&w2);

	/* Canary 2 (would crash too) and agent 3 never get the bad file now. */
	for (int i = 2; i < N; i++) {
		assert_int_equal(agent_run(&w2, &a[i], bad.sha), 0);
		assert_active(&a[i], &good);
	}
	/* The reverted canaries accept the revert (a newer sequence naming the
	 * good content lifts their refusal) and stay on it. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(agent_run(&w2, &a[i], NULL), 0);
		assert_active(&a[i], &good);
		assert_non_null(strstr(a[i].log, "refusal(s) lifted"));
	}
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM events WHERE kind = 'applied' AND content_sha256 = '%s'",
	         bad.sha);
	assert_int_equal(fbt_db_long(w2.db, sql), 2);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM agents WHERE active->>'291' = '%s'",
	         good.sha);
	assert_int_equal(db_wait(&w2, N, "%s", sql), N);
	for (int i = 0; i < N; i++)
		agent_free(&a[i]);
	content_free(&good);
	content_free(&bad);
	fbt_server_stop(&w2.srv, SIGTERM);
	free(w2.admin);
	free(w2.enroll);
	free(w2.db);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_enroll_poll_304_heartbeat),
	        cmocka_unit_test(test_apply_then_update),
	        cmocka_unit_test(test_tampered_blob_refused),
	        cmocka_unit_test(test_expired_and_replayed_assignments_refused),
	        cmocka_unit_test(test_wrong_root_refused),
	        cmocka_unit_test(test_crash_reported_on_next_start),
	        cmocka_unit_test(test_boot_loop_reverts_to_last_known_good),
	        cmocka_unit_test(test_telemetry_refusals),
	        cmocka_unit_test(test_https_with_ca_bundle),
	        cmocka_unit_test(test_daemon_follows_and_stops_cleanly),
	        cmocka_unit_test(test_health_reported_and_judged),
	        cmocka_unit_test(test_health_refused_by_old_server),
	        cmocka_unit_test(test_root_rotation),
	        cmocka_unit_test(test_rollout_halted_by_agent_telemetry),
	};
	int rc = cmocka_run_group_tests(tests, world_setup, world_teardown);
	curl_global_cleanup();
	return rc;
}
