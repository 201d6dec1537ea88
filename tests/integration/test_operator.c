/* Operators' read side against the real server: the server-sent event stream
 * (live delivery, Last-Event-ID resume, roles, shutdown with streams open),
 * a rollout's series and exposure, and the audit log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fb.h"
#include "fbt.h"
#include "fbt_world.h"

struct ctx {
	char *db;
	struct fbt_server srv;
	char *admin, *release, *soc, *agentrole;
	char sha[65];
};
static struct ctx *C;

/* A streaming GET in a thread: collects everything until timeout_ms. */
struct streamer {
	pthread_t t;
	char url[256];
	char auth[160];
	char last_id[64];
	long timeout_ms;
	pthread_mutex_t mu;
	char *buf;
	size_t len;
	long status;
};

static size_t collect(char *p, size_t s, size_t n, void *ud)
{
	struct streamer *st = ud;
	pthread_mutex_lock(&st->mu);
	char *nb = realloc(st->buf, st->len + s * n + 1);
	memcpy(nb + st->len, p, s * n);
	st->len += s * n;
	nb[st->len] = 0;
	st->buf = nb;
	pthread_mutex_unlock(&st->mu);
	return s * n;
}

static void *stream_thread(void *arg)
{
	struct streamer *st = arg;
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	if (st->auth[0])
		h = curl_slist_append(h, st->auth);
	if (st->last_id[0])
		h = curl_slist_append(h, st->last_id);
	curl_easy_setopt(c, CURLOPT_URL, st->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, st);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, st->timeout_ms);
	curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return NULL;
}

static void stream_open(struct streamer *st, const char *token, const char *last_id, long ms)
{
	memset(st, 0, sizeof *st);
	pthread_mutex_init(&st->mu, NULL);
	snprintf(st->url, sizeof st->url, "%s/v1/events", C->srv.url);
	if (token)
		snprintf(st->auth, sizeof st->auth, "Authorization: Bearer %s", token);
	if (last_id)
		snprintf(st->last_id, sizeof st->last_id, "Last-Event-ID: %s", last_id);
	st->timeout_ms = ms;
	pthread_create(&st->t, NULL, stream_thread, st);
}

static int stream_wait_for(struct streamer *st, const char *needle, int ms)
{
	for (int i = 0; i < ms / 50; i++) {
		pthread_mutex_lock(&st->mu);
		int found = st->buf && strstr(st->buf, needle);
		pthread_mutex_unlock(&st->mu);
		if (found)
			return 1;
		usleep(50000);
	}
	return 0;
}

static void stream_close(struct streamer *st)
{
	pthread_join(st->t, NULL);
	free(st->buf);
	pthread_mutex_destroy(&st->mu);
}

static long post(const char *path, const char *token, const char *body, json_t **out)
{
	struct fbt_resp r;
	fbt_http(&C->srv, "POST", path, token, body, strlen(body), NULL, &r);
	long st = r.status;
	if (out)
		*out = fbt_resp_json(&r);
	fbt_resp_free(&r);
	return st;
}

static json_t *get(const char *path, const char *token, long *status)
{
	struct fbt_resp r;
	fbt_http(&C->srv, "GET", path, token, NULL, 0, NULL, &r);
	*status = r.status;
	json_t *j = fbt_resp_json(&r);
	fbt_resp_free(&r);
	return j;
}

static int setup(void **state)
{
	C = calloc(1, sizeof *C);
	C->db = fbt_db_new();
	C->admin = fbt_token(C->db, "admin", "ada");
	C->release = fbt_token(C->db, "release", "rel");
	C->soc = fbt_token(C->db, "soc", "sam");
	C->agentrole = fbt_token(C->db, "agent", "agt");
	const char *extra[] = {"--snapshot_check_ms=200", "--controller_interval_ms=300",
	                       "--shutdown_grace=5", NULL};
	if (fbt_server_start(&C->srv, C->db, extra))
		return -1;
	for (int i = 0; i < 100; i++) {
		long st;
		json_t *j = get("/readyz", NULL, &st);
		json_decref(j);
		if (st == 200)
			break;
		usleep(100000);
	}
	if (post("/v1/channels", C->admin, "{\"id\":7,\"name\":\"seven\"}", NULL) != 201)
		return -1;
	char *body = fbt_world_content(fbt_world_default(), 7, 1, C->sha);
	long st = post("/v1/content", C->release, body, NULL);
	free(body);
	if (st != 201)
		return -1;
	*state = C;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(C->db);
	free(C->admin);
	free(C->release);
	free(C->soc);
	free(C->agentrole);
	free(C);
	return 0;
}

static void test_stream_roles(void **state)
{
	(void)state;
	struct fbt_resp r;
	fbt_http(&C->srv, "GET", "/v1/events", NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 401);
	fbt_resp_free(&r);
	fbt_http(&C->srv, "GET", "/v1/events", C->agentrole, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 403);
	fbt_resp_free(&r);
	const char *h[] = {"Last-Event-ID: minus-one", NULL};
	fbt_http(&C->srv, "GET", "/v1/events", C->soc, NULL, 0, h, &r);
	assert_int_equal(r.status, 400);
	fbt_resp_free(&r);
}

static void test_stream_live_resume_series_exposure_audit(void **state)
{
	(void)state;
	struct streamer live;
	stream_open(&live, C->soc, NULL, 6000);
	assert_true(stream_wait_for(&live, "firebreak event stream", 3000));
	char body[512];
	snprintf(body, sizeof body,
	         "{\"channel\":7,\"content\":\"%s\",\"policy\":{\"min_bake_s\":600},\"reason\":"
	         "\"ship it\"}",
	         C->sha);
	json_t *ro;
	assert_int_equal(post("/v1/rollouts", C->release, body, &ro), 201);
	json_int_t id = json_integer_value(json_object_get(ro, "id"));
	json_decref(ro);
	/* delivered live, with its id, type and the rollout */
	assert_true(stream_wait_for(&live, "event: rollout.started", 4000));
	char needle[64];
	snprintf(needle, sizeof needle, "\"rollout_id\":%lld", (long long)id);
	assert_true(stream_wait_for(&live, needle, 1000));
	pthread_mutex_lock(&live.mu);
	char *idline = strstr(live.buf, "id: ");
	assert_non_null(idline);
	long long evid = strtoll(idline + 4, NULL, 10);
	pthread_mutex_unlock(&live.mu);
	stream_close(&live);
	assert_true(evid > 0);

	/* resume: a client that saw evid-1 gets the event again at once */
	char last[32];
	snprintf(last, sizeof last, "%lld", evid - 1);
	struct streamer again;
	stream_open(&again, C->soc, last, 2000);
	assert_true(stream_wait_for(&again, "event: rollout.started", 2000));
	stream_close(&again);
	/* and one that saw evid does not */
	snprintf(last, sizeof last, "%lld", evid);
	stream_open(&again, C->soc, last, 1000);
	pthread_join(again.t, NULL);
	assert_non_null(strstr(again.buf ? again.buf : "", "firebreak event stream"));
	assert_null(strstr(again.buf ? again.buf : "", "rollout.started"));
	free(again.buf);
	pthread_mutex_destroy(&again.mu);

	/* the controller evaluates: series points appear (WAIT, bake time) */
	char path[96];
	snprintf(path, sizeof path, "/v1/rollouts/%lld/series", (long long)id);
	long st;
	json_t *s = NULL;
	for (int i = 0; i < 50; i++) {
		json_decref(s);
		s = get(path, C->soc, &st);
		if (st == 200 && json_array_size(json_object_get(s, "points")) > 0)
			break;
		usleep(100000);
	}
	assert_int_equal(st, 200);
	json_t *pt = json_array_get(json_object_get(s, "points"), 0);
	assert_non_null(pt);
	assert_string_equal(json_string_value(json_object_get(pt, "decision")), "WAIT");
	assert_string_equal(json_string_value(json_object_get(pt, "ring")), "canary");
	assert_true(json_is_integer(json_object_get(pt, "treated")));
	/* incremental: after=last_id returns only newer points */
	json_int_t last_pt = json_integer_value(json_object_get(s, "last_id"));
	assert_true(last_pt >= json_integer_value(json_object_get(pt, "id")));
	json_decref(s);
	snprintf(path, sizeof path, "/v1/rollouts/%lld/series?after=%lld", (long long)id,
	         (long long)last_pt);
	s = get(path, C->soc, &st);
	assert_int_equal(st, 200);
	for (size_t k = 0; k < json_array_size(json_object_get(s, "points")); k++)
		assert_true(json_integer_value(json_object_get(
		                    json_array_get(json_object_get(s, "points"), k), "id")) >
		            last_pt);
	assert_true(json_integer_value(json_object_get(s, "last_id")) >= last_pt);
	json_decref(s);
	snprintf(path, sizeof path, "/v1/rollouts/%lld/series?after=x", (long long)id);
	s = get(path, C->soc, &st);
	assert_int_equal(st, 400);
	json_decref(s);
	s = get("/v1/rollouts/99999/series", C->soc, &st);
	assert_int_equal(st, 404);
	json_decref(s);
	s = get("/v1/rollouts/abc/series", C->soc, &st);
	assert_int_equal(st, 400);
	json_decref(s);

	snprintf(path, sizeof path, "/v1/rollouts/%lld/exposure", (long long)id);
	json_t *e = get(path, C->soc, &st);
	assert_int_equal(st, 200);
	json_t *rings = json_object_get(e, "rings");
	assert_int_equal(json_object_size(rings), 4);
	assert_int_equal(
	        json_integer_value(json_object_get(json_object_get(rings, "canary"), "treated")),
	        0);
	json_decref(e);
	e = get(path, C->agentrole, &st);
	assert_int_equal(st, 403);
	json_decref(e);

	/* the audit log: filtered and paginated */
	snprintf(path, sizeof path, "/v1/audit?object=rollout/%lld", (long long)id);
	json_t *a = get(path, C->soc, &st);
	assert_int_equal(st, 200);
	json_t *first = json_array_get(json_object_get(a, "audit"), 0);
	assert_string_equal(json_string_value(json_object_get(first, "action")), "rollout.start");
	assert_string_equal(json_string_value(json_object_get(first, "actor")), "release:rel");
	assert_string_equal(json_string_value(json_object_get(first, "reason")), "ship it");
	json_decref(a);
	a = get("/v1/audit?limit=1", C->soc, &st);
	assert_int_equal(st, 200);
	assert_int_equal(json_array_size(json_object_get(a, "audit")), 1);
	json_int_t next = json_integer_value(json_object_get(a, "next_before"));
	assert_true(next > 0);
	json_decref(a);
	snprintf(path, sizeof path, "/v1/audit?limit=1&before=%lld", (long long)next);
	a = get(path, C->soc, &st);
	json_t *older = json_array_get(json_object_get(a, "audit"), 0);
	assert_true(json_integer_value(json_object_get(older, "id")) < next);
	json_decref(a);
	a = get("/v1/audit?limit=0", C->soc, &st);
	assert_int_equal(st, 400);
	json_decref(a);

	/* a halt is streamed too */
	struct streamer halts;
	stream_open(&halts, C->soc, NULL, 6000);
	assert_true(stream_wait_for(&halts, "firebreak event stream", 3000));
	snprintf(path, sizeof path, "/v1/rollouts/%lld/halt", (long long)id);
	assert_int_equal(post(path, C->soc, "{\"reason\":\"looks wrong\"}", NULL), 200);
	assert_true(stream_wait_for(&halts, "event: rollout.halted", 4000));
	stream_close(&halts);
}

/* The rollout list: limit, since (active ones always), bad parameters. */
static void test_rollout_list_limit_since(void **state)
{
	(void)state;
	long st;
	json_t *all = get("/v1/rollouts", C->soc, &st);
	assert_int_equal(st, 200);
	size_t n = json_array_size(json_object_get(all, "rollouts"));
	assert_true(n >= 1);
	json_decref(all);
	json_t *one = get("/v1/rollouts?limit=1", C->soc, &st);
	assert_int_equal(json_array_size(json_object_get(one, "rollouts")), 1);
	json_decref(one);
	/* far in the future: only active rollouts remain (there are none now) */
	json_t *fut = get("/v1/rollouts?since=4000000000", C->soc, &st);
	assert_int_equal(st, 200);
	long active = fbt_db_long(
	        C->db,
	        "SELECT count(*) FROM rollouts WHERE state IN ('staged','rolling','paused')");
	assert_int_equal((long)json_array_size(json_object_get(fut, "rollouts")), active);
	json_decref(fut);
	json_t *past = get("/v1/rollouts?since=0", C->soc, &st);
	assert_int_equal(json_array_size(json_object_get(past, "rollouts")), n);
	json_decref(past);
	json_t *bad = get("/v1/rollouts?limit=0", C->soc, &st);
	assert_int_equal(st, 400);
	json_decref(bad);
	bad = get("/v1/rollouts?since=yesterday", C->soc, &st);
	assert_int_equal(st, 400);
	json_decref(bad);
}

/* An agent whose build lacks a template the content uses is counted as
 * incompatible (it is never offered the content). */
static void test_exposure_counts_incompatible(void **state)
{
	(void)state;
	json_t *et;
	assert_int_equal(post("/v1/enrollment-tokens", C->admin, "{\"name\":\"old-builds\"}", &et),
	                 201);
	char pk64[64], body[1024];
	unsigned char pk[32], sk[64];
	crypto_sign_keypair(pk, sk);
	sodium_bin2base64(pk64, sizeof pk64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
	snprintf(body, sizeof body,
	         "{\"enrollment_token\":\"%s\",\"public_key\":\"%s\",\"capabilities\":[{\"id\":1,"
	         "\"version\":1}]}",
	         json_string_value(json_object_get(et, "token")), pk64);
	json_decref(et);
	assert_int_equal(post("/v1/enroll", NULL, body, NULL), 201);
	long st;
	json_t *list = get("/v1/rollouts", C->soc, &st); /* newest first */
	json_int_t id = json_integer_value(
	        json_object_get(json_array_get(json_object_get(list, "rollouts"), 0), "id"));
	json_decref(list);
	assert_true(id > 0);
	char path[96];
	snprintf(path, sizeof path, "/v1/rollouts/%lld/exposure", (long long)id);
	json_t *e = get(path, C->soc, &st);
	assert_int_equal(st, 200);
	json_int_t incompatible = 0, treated = 0;
	const char *ring;
	json_t *o;
	json_object_foreach(json_object_get(e, "rings"), ring, o)
	{
		incompatible += json_integer_value(json_object_get(o, "incompatible"));
		treated += json_integer_value(json_object_get(o, "treated"));
	}
	json_decref(e);
	assert_int_equal(incompatible, 1);
	assert_int_equal(treated, 0);
}

/* SIGTERM with an event stream open: the stream ends and the server exits
 * cleanly within the grace period. */
static void test_shutdown_with_open_stream(void **state)
{
	(void)state;
	struct streamer open;
	stream_open(&open, C->soc, NULL, 20000);
	assert_true(stream_wait_for(&open, "firebreak event stream", 3000));
	int64_t t0 = fb_mono_ms();
	assert_int_equal(fbt_server_stop(&C->srv, SIGTERM), 0);
	assert_true(fb_mono_ms() - t0 < 10000);
	stream_close(&open);
	assert_int_equal(open.status, 200);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_stream_roles),
	        cmocka_unit_test(test_stream_live_resume_series_exposure_audit),
	        cmocka_unit_test(test_rollout_list_limit_since),
	        cmocka_unit_test(test_exposure_counts_incompatible),
	        cmocka_unit_test(test_shutdown_with_open_stream),
	};
	int rc = cmocka_run_group_tests_name("operator", tests, setup, teardown);
	curl_global_cleanup();
	return rc;
}
