/* The agent protocol against the real firebreakd and PostgreSQL, with real
 * signatures: enrollment, content upload, poll (200/304) verified with
 * libfbsign as an agent would, blobs, heartbeats and events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fb.h"
#include "fbschema.h"
#include "fbsign.h"
#include "fbt.h"
#include "fbt_world.h"

struct ctx {
	char *db;
	struct fbt_server srv;
	char *admin, *release;
	char *caps; /* JSON array: everything the shipped templates define */
	char sha_v1[65];
};

static struct ctx *C;

static json_t *post(const char *path, const char *token, const char *body, long *status)
{
	struct fbt_resp r;
	fbt_http(&C->srv, "POST", path, token, body, body ? strlen(body) : 0, NULL, &r);
	*status = r.status;
	json_t *j = fbt_resp_json(&r);
	if (!j)
		j = json_object();
	json_object_set_new(j, "_raw", json_string(r.body ? r.body : ""));
	fbt_resp_free(&r);
	return j;
}

static char *new_enrollment_token(const char *tags)
{
	char body[512];
	snprintf(body, sizeof body, "{\"name\":\"batch\",\"tags\":%s}", tags);
	long st;
	json_t *j = post("/v1/enrollment-tokens", C->admin, body, &st);
	assert_int_equal(st, 201);
	char *t = strdup(json_string_value(json_object_get(j, "token")));
	json_decref(j);
	return t;
}

/* Enroll a fresh key; returns status, sets id and token on success. */
static long enroll(const char *etoken, const char *pk64, int64_t *id, char **token)
{
	char body[2048];
	snprintf(body, sizeof body,
	         "{\"enrollment_token\":\"%s\",\"public_key\":\"%s\",\"hostname\":\"h\","
	         "\"agent_version\":\"test\",\"capabilities\":%s}",
	         etoken, pk64, C->caps);
	long st;
	json_t *j = post("/v1/enroll", NULL, body, &st);
	if (st == 200 || st == 201) {
		*id = json_integer_value(json_object_get(j, "agent_id"));
		*token = strdup(json_string_value(json_object_get(j, "agent_token")));
	}
	json_decref(j);
	return st;
}

static void new_key_b64(char out[64])
{
	unsigned char pk[32], sk[64];
	crypto_sign_keypair(pk, sk);
	sodium_bin2base64(out, 64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
}

static int setup(void **state)
{
	C = calloc(1, sizeof *C);
	C->db = fbt_db_new();
	C->admin = fbt_token(C->db, "admin", "ada");
	C->release = fbt_token(C->db, "release", "rel");
	const char *extra[] = {"--heartbeat_flush_ms=200", "--snapshot_check_ms=200", NULL};
	if (fbt_server_start(&C->srv, C->db, extra))
		return -1;
	struct cf_registry *reg;
	struct fb_err err;
	if (cf_registry_load_dir(fbt_world_default()->templates, &reg, &err))
		return -1;
	json_t *caps = cf_registry_capabilities(reg);
	C->caps = json_dumps(caps, JSON_COMPACT);
	json_decref(caps);
	cf_registry_free(reg);
	/* wait until the snapshot is loaded */
	for (int i = 0; i < 100; i++) {
		struct fbt_resp r;
		fbt_http(&C->srv, "GET", "/readyz", NULL, NULL, 0, NULL, &r);
		long st = r.status;
		fbt_resp_free(&r);
		if (st == 200)
			break;
		usleep(100000);
	}
	long st;
	json_t *j = post("/v1/channels", C->admin, "{\"id\":291,\"name\":\"named-pipes\"}", &st);
	json_decref(j);
	if (st != 201)
		return -1;
	*state = C;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(fbt_server_stop(&C->srv, SIGTERM), 0); /* clean exit, no leaks */
	free(C->db);
	free(C->admin);
	free(C->release);
	free(C->caps);
	free(C);
	return 0;
}

static void test_upload_valid_duplicate_and_refusals(void **state)
{
	(void)state;
	long st;
	char *body = fbt_world_content(fbt_world_default(), 291, 1, C->sha_v1);
	json_t *j = post("/v1/content", C->release, body, &st);
	assert_int_equal(st, 201);
	assert_string_equal(json_string_value(json_object_get(j, "sha256")), C->sha_v1);
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(j, "preflight"), "outcome")),
	        "ok");
	json_decref(j);
	j = post("/v1/content", C->release, body, &st); /* idempotent */
	assert_int_equal(st, 200);
	assert_true(json_is_true(json_object_get(j, "duplicate")));
	json_decref(j);
	free(body);
	assert_int_equal(fbt_db_long(C->db, "SELECT count(*) FROM content"), 1);

	/* refusals: each stores nothing */
	struct fbt_world *w = fbt_world_default();
	unsigned char *blob;
	size_t len;
	assert_int_equal(fbt_world_blob(291, 2, &blob, &len), 0);
	char *m1 = fbt_world_manifest(w, blob, len, 291, 2, 1, 86400); /* one signer of two */
	char *b1 = fbt_world_upload_body(m1, blob, len);
	j = post("/v1/content", C->release, b1, &st);
	assert_int_equal(st, 422);
	assert_non_null(strstr(json_string_value(json_object_get(j, "_raw")), "1 of 2"));
	json_decref(j);
	char *m2 = fbt_world_manifest(w, blob, len, 291, 2, 2, 86400);
	blob[len - 40] ^= 1; /* tampered byte after signing */
	char *b2 = fbt_world_upload_body(m2, blob, len);
	j = post("/v1/content", C->release, b2, &st);
	assert_int_equal(st, 422);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
	                    "blob_mismatch");
	json_decref(j);
	blob[len - 40] ^= 1;                                         /* restore */
	char *m3 = fbt_world_manifest(w, blob, len, 291, 2, 2, -10); /* expired */
	assert_non_null(m3);
	char *b3 = fbt_world_upload_body(m3, blob, len);
	j = post("/v1/content", C->release, b3, &st);
	assert_int_equal(st, 422);
	assert_non_null(strstr(json_string_value(json_object_get(j, "_raw")), "expired"));
	json_decref(j);
	/* the agent token may not upload */
	j = post("/v1/content", NULL, b3, &st);
	assert_int_equal(st, 401);
	json_decref(j);
	free(m1);
	free(b1);
	free(m2);
	free(b2);
	free(m3);
	free(b3);
	free(blob);

	/* Channel File 291: 21 fields for a 20-field template, properly signed */
	char path[1100], *text;
	snprintf(path, sizeof path, "%s/tests/data/schema/invalid/cf291.json", getenv("FB_SRC"));
	unsigned char *raw;
	size_t rlen;
	assert_int_equal(fb_file_read(path, 1 << 20, &raw, &rlen), FB_OK);
	json_t *t = json_loadb((char *)raw, rlen, 0, NULL);
	free(raw);
	json_object_set_new(t, "channel", json_integer(291));
	text = json_dumps(t, JSON_COMPACT);
	int64_t version = json_integer_value(json_object_get(t, "content_version"));
	json_decref(t);
	unsigned char *bad;
	size_t blen;
	struct fb_err err;
	assert_int_equal(cf_compile_json(NULL, text, strlen(text), &bad, &blen, &err), FB_OK);
	free(text);
	struct fbsig_template_ref refs[1] = {{1, 1}};
	/* the template used: read it from the text form's first instance */
	{
		json_t *tt = json_loadb((char *)bad, 0, 0, NULL);
		json_decref(tt);
	}
	snprintf(path, sizeof path, "%s/tests/data/schema/invalid/cf291.json", getenv("FB_SRC"));
	json_t *tf = json_load_file(path, 0, NULL);
	json_t *inst = json_array_get(json_object_get(tf, "instances"), 0);
	refs[0].id = json_integer_value(json_object_get(inst, "template"));
	refs[0].version = json_integer_value(json_object_get(inst, "template_version"));
	json_decref(tf);
	char *m4 = fbt_world_manifest_tpl(w, bad, blen, 291, version, refs, 1, 2, 86400);
	char *b4 = fbt_world_upload_body(m4, bad, blen);
	j = post("/v1/content", C->release, b4, &st);
	if (st != 422)
		fail_msg("cf291 upload: %ld %s", st, json_string_value(json_object_get(j, "_raw")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
	                    "invalid_content");
	assert_non_null(
	        strstr(json_string_value(json_object_get(j, "_raw")), "expected 20, found 21"));
	json_decref(j);
	free(m4);
	free(b4);
	free(bad);

	/* unknown channel */
	char sha[65];
	char *b5 = fbt_world_content(w, 999, 1, sha);
	j = post("/v1/content", C->release, b5, &st);
	assert_int_equal(st, 422);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
	                    "unknown_channel");
	json_decref(j);
	free(b5);
	/* malformed bodies */
	j = post("/v1/content", C->release, "{\"manifest\": 5, \"blob\": \"\"}", &st);
	assert_int_equal(st, 400);
	json_decref(j);
	j = post("/v1/content", C->release, "{\"manifest\": {}, \"blob\": \"***\"}", &st);
	assert_int_equal(st, 400);
	json_decref(j);
	assert_int_equal(fbt_db_long(C->db, "SELECT count(*) FROM content"), 1);
	assert_int_equal(
	        fbt_db_long(C->db,
	                    "SELECT count(*) FROM audit_log WHERE action = 'content.upload'"),
	        1);
}

static void test_enroll(void **state)
{
	(void)state;
	char *et = new_enrollment_token("{\"site\":\"fra1\"}");
	char pk[64];
	new_key_b64(pk);
	int64_t id1, id2;
	char *t1, *t2;
	assert_int_equal(enroll(et, pk, &id1, &t1), 201);
	assert_int_equal(enroll(et, pk, &id2, &t2), 200); /* same key: idempotent */
	assert_int_equal(id1, id2);
	assert_string_equal(t1, t2);
	char sql[256];
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM agents WHERE id = %lld AND tags->>'site' = 'fra1'",
	         (long long)id1);
	assert_int_equal(fbt_db_long(C->db, sql), 1);
	/* refusals store nothing */
	long agents = fbt_db_long(C->db, "SELECT count(*) FROM agents");
	char bogus[68] = "fe_";
	memset(bogus + 3, '0', 64);
	bogus[67] = 0;
	int64_t id;
	char *t;
	new_key_b64(pk);
	assert_int_equal(enroll(bogus, pk, &id, &t), 401);
	assert_int_equal(enroll(et, "not-a-key", &id, &t), 400);
	long st;
	json_t *j = post("/v1/enroll", NULL, "{\"enrollment_token\": 1}", &st);
	assert_int_equal(st, 400);
	json_decref(j);
	assert_int_equal(fbt_db_long(C->db, "SELECT count(*) FROM agents"), agents);
	/* a use-limited token */
	j = post("/v1/enrollment-tokens", C->admin, "{\"name\":\"once\",\"max_uses\":1}", &st);
	char *once = strdup(json_string_value(json_object_get(j, "token")));
	json_decref(j);
	new_key_b64(pk);
	assert_int_equal(enroll(once, pk, &id, &t), 201);
	free(t);
	new_key_b64(pk);
	assert_int_equal(enroll(once, pk, &id, &t), 401);
	/* a forged agent token */
	struct fbt_resp r;
	char forged[128];
	snprintf(forged, sizeof forged, "fa_%lld_00000000000000000000000000000000", (long long)id1);
	fbt_http(&C->srv, "GET", "/v1/poll", forged, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 401);
	fbt_resp_free(&r);
	free(once);
	free(et);
	free(t1);
	free(t2);
}

static void test_poll_verify_etag_and_blobs(void **state)
{
	(void)state;
	/* Put v1 on every ring: a rollout, promoted by force is not needed:
	 * the test only needs an assignment naming content; use ring 0. */
	char *et = new_enrollment_token("{}");
	char pk[64];
	new_key_b64(pk);
	int64_t id;
	char *tok;
	assert_int_equal(enroll(et, pk, &id, &tok), 201);
	struct fbt_resp r;
	fbt_http(&C->srv, "GET", "/v1/poll", tok, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	char etag[128];
	assert_non_null(fbt_header(&r, "ETag", etag, sizeof etag));
	/* verify exactly as an agent does */
	unsigned char *rootb;
	size_t rootlen;
	assert_int_equal(fb_file_read(fbt_world_default()->root_path, 1 << 20, &rootb, &rootlen),
	                 FB_OK);
	struct fbsig_root *root;
	struct fb_err err;
	assert_int_equal(
	        fbsig_root_load_trusted(rootb, rootlen, fb_now_ms() / 1000, 0, &root, &err), FB_OK);
	free(rootb);
	struct fbsig_assignment *a;
	if (fbsig_assignment_verify(root, r.body, r.len, fb_now_ms() / 1000, 0, &a, &err))
		fail_msg("assignment does not verify: %s", err.msg);
	int64_t seq1 = a->sequence;
	fbsig_assignment_free(a);
	fbt_resp_free(&r);
	char inm[160];
	snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
	const char *h[] = {inm, NULL};
	fbt_http(&C->srv, "GET", "/v1/poll", tok, NULL, 0, h, &r);
	assert_int_equal(r.status, 304);
	fbt_resp_free(&r);

	/* start a rollout: the canary assignment changes (new sequence) */
	char body[256];
	snprintf(body, sizeof body,
	         "{\"channel\":291,\"content\":\"%s\",\"rings\":[\"canary\",\"early\",\"broad\","
	         "\"ga\"]}",
	         C->sha_v1);
	long st;
	json_t *j = post("/v1/rollouts", C->release, body, &st);
	assert_int_equal(st, 201);
	json_decref(j);
	/* every agent's ring: put this one in canary explicitly */
	char rings[512];
	snprintf(rings, sizeof rings,
	         "{\"rings\":[{\"name\":\"canary\",\"selector\":{\"agents\":[%lld]}},"
	         "{\"name\":\"early\",\"selector\":{\"percent\":10}},{\"name\":\"broad\","
	         "\"selector\":{\"percent\":40}},"
	         "{\"name\":\"ga\",\"selector\":{\"rest\":true}}]}",
	         (long long)id);
	fbt_http(&C->srv, "PUT", "/v1/rings", C->admin, rings, strlen(rings), NULL, &r);
	assert_int_equal(r.status, 200);
	fbt_resp_free(&r);
	int got = 0;
	for (int i = 0; i < 50 && !got; i++) {
		fbt_http(&C->srv, "GET", "/v1/poll", tok, NULL, 0, h, &r);
		if (r.status == 200) {
			assert_int_equal(fbsig_assignment_verify(root, r.body, r.len,
			                                         fb_now_ms() / 1000, seq1, &a,
			                                         &err),
			                 FB_OK);
			if (a->n_channels == 1 && strcmp(a->channels[0].sha256, C->sha_v1) == 0) {
				got = 1;
				assert_string_equal(a->audience, "canary");
			}
			assert_true(a->sequence > seq1);
			fbsig_assignment_free(a);
		}
		fbt_resp_free(&r);
		if (!got)
			usleep(100000);
	}
	assert_true(got);
	fbsig_root_free(root);

	/* blobs: immutable, ranged, 404 unknown */
	char path[128];
	snprintf(path, sizeof path, "/v1/blobs/%s", C->sha_v1);
	fbt_http(&C->srv, "GET", path, NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	char hv[256], want[80];
	assert_non_null(fbt_header(&r, "Cache-Control", hv, sizeof hv));
	assert_string_equal(hv, "public, max-age=31536000, immutable");
	snprintf(want, sizeof want, "\"%s\"", C->sha_v1);
	assert_non_null(fbt_header(&r, "ETag", hv, sizeof hv));
	assert_string_equal(hv, want);
	char got_sha[65];
	fb_sha256_hex(r.body, r.len, got_sha);
	assert_string_equal(got_sha, C->sha_v1);
	size_t full = r.len;
	char *copy = malloc(full);
	memcpy(copy, r.body, full);
	fbt_resp_free(&r);
	const char *rh[] = {"Range: bytes=4-11", NULL};
	fbt_http(&C->srv, "GET", path, NULL, NULL, 0, rh, &r);
	assert_int_equal(r.status, 206);
	assert_int_equal(r.len, 8);
	assert_memory_equal(r.body, copy + 4, 8);
	fbt_resp_free(&r);
	const char *rh2[] = {"Range: bytes=999999-", NULL};
	fbt_http(&C->srv, "GET", path, NULL, NULL, 0, rh2, &r);
	assert_int_equal(r.status, 416);
	fbt_resp_free(&r);
	free(copy);
	char unknown[128] = "/v1/blobs/";
	memset(unknown + 10, 'a', 64);
	unknown[74] = 0;
	fbt_http(&C->srv, "GET", unknown, NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 404);
	fbt_resp_free(&r);
	fbt_http(&C->srv, "GET", "/v1/blobs/xyz", NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 400);
	fbt_resp_free(&r);
	free(tok);
	free(et);
}

static void test_heartbeat_and_events(void **state)
{
	(void)state;
	char *et = new_enrollment_token("{}");
	char pk[64], pk2[64];
	new_key_b64(pk);
	new_key_b64(pk2);
	int64_t id, other;
	char *tok, *tok2;
	assert_int_equal(enroll(et, pk, &id, &tok), 201);
	assert_int_equal(enroll(et, pk2, &other, &tok2), 201);
	char body[1024];
	snprintf(
	        body, sizeof body,
	        "{\"agent_id\":%lld,\"boot_id\":\"boot-1\",\"uptime_s\":42,\"agent_version\":\"t\","
	        "\"active\":{\"291\":\"%s\"},\"capabilities\":%s}",
	        (long long)id, C->sha_v1, C->caps);
	long st;
	json_t *j = post("/v1/heartbeat", tok, body, &st);
	assert_int_equal(st, 202);
	json_decref(j);
	char sql[256];
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM agents WHERE id = %lld AND boot_id = 'boot-1' AND uptime_s "
	         "= 42 "
	         "AND active->>'291' = '%s' AND last_seen_at IS NOT NULL",
	         (long long)id, C->sha_v1);
	int seen = 0;
	for (int i = 0; i < 30 && !seen; i++) { /* flush interval is 200 ms */
		seen = fbt_db_long(C->db, sql) == 1;
		if (!seen)
			usleep(100000);
	}
	assert_true(seen);
	/* for another agent: 403; malformed: 400; both store nothing */
	j = post("/v1/heartbeat", tok2, body, &st);
	assert_int_equal(st, 403);
	json_decref(j);
	const char *bad[] = {
	        "{\"agent_id\":%lld,\"boot_id\":\"b\",\"uptime_s\":-1,\"active\":{}}",
	        "{\"agent_id\":%lld,\"boot_id\":\"b\",\"uptime_s\":1,\"active\":{\"7\":\"%s\"}}",
	        "{\"agent_id\":%lld,\"boot_id\":\"b\",\"uptime_s\":1,\"active\":{\"291\":"
	        "\"nothex\"}}",
	        "{\"agent_id\":%lld,\"boot_id\":\"b\",\"uptime_s\":1,\"active\":{},\"extra\":1}",
	        "{\"agent_id\":\"%lld\",\"boot_id\":\"b\",\"uptime_s\":1,\"active\":{}}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(body, sizeof body, bad[i], (long long)other, C->sha_v1);
		j = post("/v1/heartbeat", tok2, body, &st);
		if (st != 400)
			fail_msg("heartbeat case %zu: status %ld: %s", i, st,
			         json_string_value(json_object_get(j, "_raw")));
		json_decref(j);
	}
	usleep(500000);
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM agents WHERE id = %lld AND last_seen_at IS NOT NULL",
	         (long long)other);
	assert_int_equal(fbt_db_long(C->db, sql), 0);

	/* events: durable, idempotent, all-or-nothing */
	int64_t now = fb_now_ms() / 1000;
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"events\":[{\"id\":\"e1\",\"kind\":\"applied\",\"at\":%lld,"
	         "\"boot_id\":\"boot-1\",\"channel\":291,\"content\":\"%s\"},"
	         "{\"id\":\"e2\",\"kind\":\"crash\",\"at\":%lld,\"boot_id\":\"boot-0\",\"channel\":"
	         "291,"
	         "\"content\":\"%s\",\"code\":\"0xC0000005\",\"module\":\"drv.sys\"}]}",
	         (long long)id, (long long)now, C->sha_v1, (long long)now, C->sha_v1);
	j = post("/v1/events", tok, body, &st);
	assert_int_equal(st, 200);
	assert_int_equal(json_integer_value(json_object_get(j, "accepted")), 2);
	json_decref(j);
	j = post("/v1/events", tok, body, &st); /* a retry */
	assert_int_equal(st, 200);
	assert_int_equal(json_integer_value(json_object_get(j, "accepted")), 0);
	assert_int_equal(json_integer_value(json_object_get(j, "duplicates")), 2);
	json_decref(j);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM events WHERE agent_id = %lld",
	         (long long)id);
	assert_int_equal(fbt_db_long(C->db, sql), 2);
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM events WHERE agent_id = %lld AND kind = 'crash' AND "
	         "details->>'module' = 'drv.sys'",
	         (long long)id);
	assert_int_equal(fbt_db_long(C->db, sql), 1);
	j = post("/v1/events", tok2, body, &st); /* for another agent */
	assert_int_equal(st, 403);
	json_decref(j);
	long before = fbt_db_long(C->db, "SELECT count(*) FROM events");
	const char *badev[] = {
	        /* second event bad: the first must not be stored either */
	        "{\"agent_id\":%lld,\"events\":[{\"id\":\"ok1\",\"kind\":\"applied\",\"at\":%lld,"
	        "\"channel\":291,\"content\":\"%s\"},"
	        "{\"id\":\"bad\",\"kind\":\"applied\",\"at\":%lld,\"channel\":291,\"content\":"
	        "\"xyz\"}]}",
	        "{\"agent_id\":%lld,\"events\":[{\"id\":\"x\",\"kind\":\"exploded\",\"at\":%lld,"
	        "\"channel\":291,\"content\":\"%s\"}]}",
	        "{\"agent_id\":%lld,\"events\":[{\"id\":\"x\",\"kind\":\"applied\",\"at\":1,"
	        "\"channel\":291,\"content\":\"%s\"}]}",
	        "{\"agent_id\":%lld,\"events\":[]}",
	        "{\"agent_id\":%lld,\"events\":[{\"id\":\"x\",\"kind\":\"boot_loop\",\"at\":%lld,"
	        "\"channel\":291,\"reverted_from\":\"%s\"}]}",
	};
	for (size_t i = 0; i < sizeof badev / sizeof badev[0]; i++) {
		char b[2048];
		if (i == 0)
			snprintf(b, sizeof b, badev[i], (long long)id, (long long)now, C->sha_v1,
			         (long long)now);
		else if (i == 2)
			snprintf(b, sizeof b, badev[i], (long long)id, C->sha_v1);
		else if (i == 3)
			snprintf(b, sizeof b, badev[i], (long long)id);
		else
			snprintf(b, sizeof b, badev[i], (long long)id, (long long)now, C->sha_v1);
		j = post("/v1/events", tok, b, &st);
		if (st != 400)
			fail_msg("events case %zu: status %ld", i, st);
		if (i == 0)
			assert_non_null(
			        strstr(json_string_value(json_object_get(j, "_raw")), "events[1]"));
		json_decref(j);
	}
	assert_int_equal(fbt_db_long(C->db, "SELECT count(*) FROM events"), before);
	/* oversized telemetry */
	size_t big = 300 * 1024;
	char *huge = malloc(big + 1);
	memset(huge, ' ', big);
	huge[0] = '{';
	huge[big - 1] = '}';
	huge[big] = 0;
	j = post("/v1/events", tok, huge, &st);
	assert_int_equal(st, 413);
	json_decref(j);
	free(huge);
	free(tok);
	free(tok2);
	free(et);
}

/* Operators' agent listing: filters by tag, content, health and ring, and
 * paging; every agent returned matches, and a matching one is not missed. */
/* Platform facts at enrolment and in heartbeats, faulting_channel on crash
 * events: the valid ones are stored, anything out of range gets 400 naming
 * the field and stores nothing. */
static void expect_400(const char *path, const char *token, const char *body, const char *needle)
{
	long st;
	json_t *j = post(path, token, body, &st);
	const char *raw = json_string_value(json_object_get(j, "_raw"));
	if (st != 400 || !strstr(raw, needle))
		fail_msg("%s: expected 400 naming \"%s\", got %ld: %s", path, needle, st, raw);
	json_decref(j);
}

static void test_platform_facts(void **state)
{
	(void)state;
	char *et = new_enrollment_token("{}");
	char pk[64];
	new_key_b64(pk);
	static const struct {
		const char *platform, *needle;
	} bad[] = {
	        {"\"windows\"", "field 'platform' must be an object"},
	        {"{\"os\":\"win dows\"}", "platform.os must be a string"},
	        {"{\"os\":7}", "platform.os must be a string"},
	        {"{\"os_build\":\"123456789012345678901234567890123\"}", "platform.os_build"},
	        {"{\"arch\":\"x86_64_with_extras\"}", "platform.arch must be a string"},
	        {"{\"kernel\":\"6.1\"}", "platform: unknown field 'kernel'"},
	        {"{\"extra\":{\"HW\":\"t14\"}}", "platform.extra.HW"},
	        {"{\"extra\":{\"hw\":\"t 14\"}}", "platform.extra.hw"},
	        {"{\"extra\":{\"a\":\"1\",\"b\":\"1\",\"c\":\"1\",\"d\":\"1\",\"e\":\"1\",\"f\":"
	         "\"1\","
	         "\"g\":\"1\",\"h\":\"1\",\"i\":\"1\"}}",
	         "platform.extra must be an object of at most 8"},
	};
	long before = fbt_db_long(C->db, "SELECT count(*) FROM agents");
	char body[4096];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(body, sizeof body,
		         "{\"enrollment_token\":\"%s\",\"public_key\":\"%s\",\"agent_version\":"
		         "\"t\","
		         "\"capabilities\":%s,\"platform\":%s}",
		         et, pk, C->caps, bad[i].platform);
		expect_400("/v1/enroll", NULL, body, bad[i].needle);
	}
	assert_int_equal(fbt_db_long(C->db, "SELECT count(*) FROM agents"), before);

	snprintf(body, sizeof body,
	         "{\"enrollment_token\":\"%s\",\"public_key\":\"%s\",\"agent_version\":\"7.11\","
	         "\"capabilities\":%s,\"platform\":{\"os\":\"windows\",\"os_build\":\"22631\","
	         "\"arch\":\"x86_64\",\"extra\":{\"hw_model\":\"t14\"}}}",
	         et, pk, C->caps);
	long st;
	json_t *j = post("/v1/enroll", NULL, body, &st);
	assert_int_equal(st, 201);
	int64_t id = json_integer_value(json_object_get(j, "agent_id"));
	char *tok = strdup(json_string_value(json_object_get(j, "agent_token")));
	json_decref(j);
	char sql[512];
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM agents WHERE id = %lld AND os = 'windows' AND os_build = "
	         "'22631' AND arch = 'x86_64' AND platform_extra ->> 'hw_model' = 't14'",
	         (long long)id);
	assert_int_equal(fbt_db_long(C->db, sql), 1);

	/* A heartbeat after an OS upgrade carries the new facts. */
	const char *hb = "{\"agent_id\":%lld,\"boot_id\":\"b2\",\"uptime_s\":1,\"active\":{},"
	                 "\"platform\":%s}";
	snprintf(body, sizeof body, hb, (long long)id, "{\"os_build\":\"22631 \"}");
	expect_400("/v1/heartbeat", tok, body, "platform.os_build must be a string");
	snprintf(body, sizeof body, hb, (long long)id, "{\"os\":\"windows\",\"boot\":\"x\"}");
	expect_400("/v1/heartbeat", tok, body, "platform: unknown field 'boot'");
	snprintf(sql, sizeof sql, "SELECT count(*) FROM agents WHERE id = %lld AND boot_id = 'b2'",
	         (long long)id);
	usleep(600000);
	assert_int_equal(fbt_db_long(C->db, sql), 0); /* the refused heartbeats left no trace */
	snprintf(body, sizeof body, hb, (long long)id,
	         "{\"os\":\"windows\",\"os_build\":\"26100\",\"arch\":\"arm64\"}");
	j = post("/v1/heartbeat", tok, body, &st);
	assert_int_equal(st, 202);
	json_decref(j);
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM agents WHERE id = %lld AND os_build = '26100' AND arch = "
	         "'arm64' AND platform_extra = '{}' AND boot_id = 'b2'",
	         (long long)id);
	int seen = 0;
	for (int i = 0; i < 50 && !seen; i++) {
		seen = fbt_db_long(C->db, sql) == 1;
		if (!seen)
			usleep(100000);
	}
	assert_true(seen);

	/* faulting_channel: an integer channel id, on crash events only. */
	const char *ev =
	        "{\"agent_id\":%lld,\"events\":[{\"id\":\"%s\",\"kind\":\"%s\",\"at\":%lld,"
	        "\"channel\":291,\"content\":\"%s\",\"faulting_channel\":%s}]}";
	long long now = (long long)(fb_now_ms() / 1000);
	snprintf(body, sizeof body, ev, (long long)id, "c1", "crash", now, C->sha_v1, "\"291\"");
	expect_400("/v1/events", tok, body, "events[0].faulting_channel must be a channel id");
	snprintf(body, sizeof body, ev, (long long)id, "c1", "crash", now, C->sha_v1, "0");
	expect_400("/v1/events", tok, body, "events[0].faulting_channel must be a channel id");
	snprintf(body, sizeof body, ev, (long long)id, "a1", "applied", now, C->sha_v1, "291");
	expect_400("/v1/events", tok, body, "unknown field 'faulting_channel' for kind applied");
	snprintf(sql, sizeof sql, "SELECT count(*) FROM events WHERE agent_id = %lld",
	         (long long)id);
	assert_int_equal(fbt_db_long(C->db, sql), 0);
	snprintf(body, sizeof body, ev, (long long)id, "c1", "crash", now, C->sha_v1, "292");
	j = post("/v1/events", tok, body, &st);
	assert_int_equal(st, 200);
	json_decref(j);
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM events WHERE agent_id = %lld AND kind = 'crash' AND "
	         "(details ->> 'faulting_channel')::int = 292",
	         (long long)id);
	assert_int_equal(fbt_db_long(C->db, sql), 1);
	free(tok);
	free(et);
}

static void test_agent_filters(void **state)
{
	(void)state;
	struct fbt_resp r;
	long total = fbt_db_long(C->db, "SELECT count(*) FROM agents");
	struct {
		const char *query;
		const char *sql;
	} cases[] = {
	        {"/v1/agents?tag=site=fra1&limit=1000",
	         "SELECT count(*) FROM agents WHERE tags->>'site' = 'fra1'"},
	        {"/v1/agents?health=never&limit=1000",
	         "SELECT count(*) FROM agents WHERE last_seen_at IS NULL"},
	        {"/v1/agents?health=healthy&limit=1000",
	         "SELECT count(*) FROM agents WHERE last_seen_at >= now() - interval '300 "
	         "seconds'"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		fbt_http(&C->srv, "GET", cases[i].query, C->admin, NULL, 0, NULL, &r);
		assert_int_equal(r.status, 200);
		json_t *j = fbt_resp_json(&r);
		long want = fbt_db_long(C->db, cases[i].sql);
		if ((long)json_array_size(json_object_get(j, "agents")) != want)
			fail_msg("%s: %zu agents, database says %ld", cases[i].query,
			         json_array_size(json_object_get(j, "agents")), want);
		assert_true(want > 0 && want < total);
		json_decref(j);
		fbt_resp_free(&r);
	}
	char q[200];
	snprintf(q, sizeof q, "/v1/agents?content=%s&limit=1000", C->sha_v1);
	fbt_http(&C->srv, "GET", q, C->admin, NULL, 0, NULL, &r);
	json_t *j = fbt_resp_json(&r);
	fbt_resp_free(&r);
	assert_int_equal((long)json_array_size(json_object_get(j, "agents")),
	                 fbt_db_long(C->db, "SELECT count(*) FROM agents a, "
	                                    "jsonb_each_text(a.active) x WHERE x.value <> ''"));
	json_decref(j);
	/* the canary ring holds exactly the one listed agent */
	fbt_http(&C->srv, "GET", "/v1/agents?ring=canary&limit=1000", C->admin, NULL, 0, NULL, &r);
	j = fbt_resp_json(&r);
	fbt_resp_free(&r);
	assert_int_equal(json_array_size(json_object_get(j, "agents")), 1);
	assert_string_equal(json_string_value(json_object_get(
	                            json_array_get(json_object_get(j, "agents"), 0), "ring")),
	                    "canary");
	json_decref(j);
	/* paging: limit 1 then after=next_after, ids strictly increasing, all seen */
	long seen = 0, prev = 0;
	char path[128] = "/v1/agents?limit=1";
	for (int guard = 0; guard < 100; guard++) {
		fbt_http(&C->srv, "GET", path, C->admin, NULL, 0, NULL, &r);
		j = fbt_resp_json(&r);
		fbt_resp_free(&r);
		json_t *a = json_array_get(json_object_get(j, "agents"), 0);
		if (!a) {
			json_decref(j);
			break;
		}
		long id = (long)json_integer_value(json_object_get(a, "id"));
		assert_true(id > prev);
		prev = id;
		seen++;
		json_t *next = json_object_get(j, "next_after");
		if (!next) {
			json_decref(j);
			break;
		}
		snprintf(path, sizeof path, "/v1/agents?limit=1&after=%lld",
		         (long long)json_integer_value(next));
		json_decref(j);
	}
	assert_int_equal(seen, total);
	const char *bad[] = {"/v1/agents?tag=nokey", "/v1/agents?content=xyz",
	                     "/v1/agents?health=sick", "/v1/agents?limit=0"};
	for (size_t i = 0; i < 4; i++) {
		fbt_http(&C->srv, "GET", bad[i], C->admin, NULL, 0, NULL, &r);
		assert_int_equal(r.status, 400);
		fbt_resp_free(&r);
	}
}

/* A replica that has not loaded an agent yet, while the database is away:
 * 503 (a load balancer retries elsewhere, the agent retries later), not
 * 403 (which says "not enrolled"); once the database is back, served. */
static void test_unloaded_agent_while_database_away(void **state)
{
	(void)state;
	struct fbt_server srv2;
	const char *extra[] = {"--snapshot_check_ms=600000", "--heartbeat_flush_ms=200", NULL};
	assert_int_equal(fbt_server_start(&srv2, C->db, extra), 0);
	assert_int_equal(fbt_server_wait_ready(&srv2), 0);
	char *et = new_enrollment_token("{}");
	char pk[64];
	new_key_b64(pk);
	int64_t id;
	char *tok;
	assert_int_equal(enroll(et, pk, &id, &tok), 201); /* through the first replica */
	const char *dbn = strstr(C->db, "dbname=");
	assert_non_null(dbn);
	char name[128], sql[512];
	snprintf(name, sizeof name, "%s", dbn + strlen("dbname="));
	name[strcspn(name, " ")] = '\0';
	snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS false", name);
	assert_int_equal(fbt_db_exec(fbt_pg_admin(), sql), 0);
	snprintf(sql, sizeof sql,
	         "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'",
	         name);
	assert_int_equal(fbt_db_exec(fbt_pg_admin(), sql), 0);
	struct fbt_resp r;
	assert_int_equal(fbt_http(&srv2, "GET", "/v1/poll", tok, NULL, 0, NULL, &r), 0);
	long st = r.status;
	const char *code = fbt_error_code(&r);
	if (st != 503 || !code || strcmp(code, "unavailable"))
		fail_msg("poll while the database is away: %ld %s", st, r.body ? r.body : "");
	fbt_resp_free(&r);
	char body[512];
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"boot_id\":\"b\",\"uptime_s\":1,\"active\":{}}",
	         (long long)id);
	assert_int_equal(
	        fbt_http(&srv2, "POST", "/v1/heartbeat", tok, body, strlen(body), NULL, &r), 0);
	st = r.status;
	fbt_resp_free(&r);
	assert_int_equal(st, 503);
	snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS true", name);
	assert_int_equal(fbt_db_exec(fbt_pg_admin(), sql), 0);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(fbt_http(&srv2, "GET", "/v1/poll", tok, NULL, 0, NULL, &r), 0);
		st = r.status;
		fbt_resp_free(&r);
		if (st == 200)
			break;
		usleep(100000);
	}
	assert_int_equal(st, 200);
	assert_int_equal(fbt_server_stop(&srv2, SIGTERM), 0);
	free(tok);
	free(et);
}

/* A path id that is not a positive integer: 400 naming what it is, on
 * every route with one (the one helper they share). */
static void test_bad_path_ids(void **state)
{
	(void)state;
	static const struct {
		const char *method, *path, *what;
	} cases[] = {
	        {"GET", "/v1/agents/abc", "agent id"},
	        {"POST", "/v1/agents/0/revoke", "agent id"},
	        {"GET", "/v1/rollouts/-3", "rollout id"},
	        {"POST", "/v1/rollouts/x/halt", "rollout id"},
	        {"GET", "/v1/rollouts/9x/exposure", "rollout id"},
	        {"DELETE", "/v1/pins/abc", "pin id"},
	        {"DELETE", "/v1/tokens/abc", "token id"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fbt_resp r;
		const char *body = strcmp(cases[i].method, "POST") ? NULL : "{\"reason\":\"x\"}";
		assert_int_equal(fbt_http(&C->srv, cases[i].method, cases[i].path, C->admin, body,
		                          body ? strlen(body) : 0, NULL, &r),
		                 0);
		char want[96];
		snprintf(want, sizeof want, "%s must be a positive integer, found", cases[i].what);
		if (r.status != 400 || !r.body || !strstr(r.body, want))
			fail_msg("%s %s: %ld %s", cases[i].method, cases[i].path, r.status,
			         r.body ? r.body : "");
		fbt_resp_free(&r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_upload_valid_duplicate_and_refusals),
	        cmocka_unit_test(test_enroll),
	        cmocka_unit_test(test_poll_verify_etag_and_blobs),
	        cmocka_unit_test(test_heartbeat_and_events),
	        cmocka_unit_test(test_agent_filters),
	        cmocka_unit_test(test_platform_facts),
	        cmocka_unit_test(test_bad_path_ids),
	        cmocka_unit_test(test_unloaded_agent_while_database_away), /* last */
	};
	return cmocka_run_group_tests_name("protocol", tests, setup, teardown);
}
