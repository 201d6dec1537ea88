/* Publications reach the serving snapshot through LISTEN/NOTIFY alone: with
 * the periodic check pushed out to ten minutes, publications made back to
 * back (a rollout start, then an immediate halt) must each be served, so a
 * notification that arrives while the snapshot is reloading is not lost. */
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
#include "fbsign.h"
#include "fbt.h"
#include "fbt_world.h"

static long post(struct fbt_server *s, const char *path, const char *tok, const char *body,
                 json_t **out)
{
	struct fbt_resp r;
	fbt_http(s, "POST", path, tok, body, strlen(body), NULL, &r);
	long st = r.status;
	if (out)
		*out = fbt_resp_json(&r);
	fbt_resp_free(&r);
	return st;
}

static void test_back_to_back_publications_are_served(void **state)
{
	(void)state;
	char *db = fbt_db_new();
	char *admin = fbt_token(db, "admin", "ada"), *release = fbt_token(db, "release", "rel"),
	     *soc = fbt_token(db, "soc", "sam");
	const char *extra[] = {"--snapshot_check_ms=600000", "--controller_interval_ms=600000",
	                       NULL};
	struct fbt_server s;
	assert_int_equal(fbt_server_start(&s, db, extra), 0);
	assert_int_equal(fbt_server_wait_ready(&s), 0);
	assert_int_equal(post(&s, "/v1/channels", admin, "{\"id\":9,\"name\":\"nine\"}", NULL),
	                 201);
	char sha[65];
	char *up = fbt_world_content(fbt_world_default(), 9, 1, sha);
	assert_int_equal(post(&s, "/v1/content", release, up, NULL), 201);
	free(up);
	/* one agent, in the canary ring by an explicit list */
	json_t *et;
	assert_int_equal(post(&s, "/v1/enrollment-tokens", admin, "{\"name\":\"x\"}", &et), 201);
	unsigned char pk[32], sk[64];
	char pk64[64], body[1024];
	crypto_sign_keypair(pk, sk);
	sodium_bin2base64(pk64, sizeof pk64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
	snprintf(body, sizeof body,
	         "{\"enrollment_token\":\"%s\",\"public_key\":\"%s\",\"capabilities\":[{\"id\":1,"
	         "\"version\":1},"
	         "{\"id\":2,\"version\":1},{\"id\":3,\"version\":1}]}",
	         json_string_value(json_object_get(et, "token")), pk64);
	json_decref(et);
	json_t *en;
	assert_int_equal(post(&s, "/v1/enroll", NULL, body, &en), 201);
	char *tok = strdup(json_string_value(json_object_get(en, "agent_token")));
	json_int_t aid = json_integer_value(json_object_get(en, "agent_id"));
	json_decref(en);
	char rings[512];
	snprintf(rings, sizeof rings,
	         "{\"rings\":[{\"name\":\"canary\",\"selector\":{\"agents\":[%lld]}},"
	         "{\"name\":\"ga\",\"selector\":{\"rest\":true}}]}",
	         (long long)aid);
	struct fbt_resp r;
	fbt_http(&s, "PUT", "/v1/rings", admin, rings, strlen(rings), NULL, &r);
	assert_int_equal(r.status, 200);
	fbt_resp_free(&r);

	unsigned char *rootb;
	size_t rootlen;
	struct fb_err err;
	struct fbsig_root *root;
	assert_int_equal(fb_file_read(fbt_world_default()->root_path, 1 << 20, &rootb, &rootlen),
	                 FB_OK);
	assert_int_equal(
	        fbsig_root_load_trusted(rootb, rootlen, fb_now_ms() / 1000, 0, &root, &err), FB_OK);
	free(rootb);

	for (int round = 0; round < 3; round++) {
		/* start and halt at once: two publications milliseconds apart */
		char start[256];
		snprintf(start, sizeof start, "{\"channel\":9,\"content\":\"%s\"}", sha);
		json_t *ro;
		if (round > 0) {
			/* restart the same file: clear its bad mark (two approvers) */
			char clear[128];
			snprintf(clear, sizeof clear, "/v1/content/%s/clear-bad", sha);
			char *rel2 = fbt_token(db, "release", "rel2");
			assert_int_equal(post(&s, clear, release, "{\"reason\":\"retry\"}", NULL),
			                 202);
			assert_int_equal(post(&s, clear, rel2, "{\"reason\":\"retry\"}", NULL),
			                 200);
			free(rel2);
		}
		assert_int_equal(post(&s, "/v1/rollouts", release, start, &ro), 201);
		char halt[64];
		snprintf(halt, sizeof halt, "/v1/rollouts/%lld/halt",
		         (long long)json_integer_value(json_object_get(ro, "id")));
		json_decref(ro);
		assert_int_equal(post(&s, halt, soc, "{\"reason\":\"back to back\"}", NULL), 200);
		/* and a burst of publications (pin added and removed), so that a
		 * notification lands while the snapshot reloads for the previous */
		for (int k = 0; k < 15; k++) {
			json_t *pin;
			assert_int_equal(
			        post(&s, "/v1/pins", admin,
			             "{\"tag\":\"customer=burst\",\"channel\":9,\"mode\":\"n-1\"}",
			             &pin),
			        201);
			char del[64];
			snprintf(del, sizeof del, "/v1/pins/%lld",
			         (long long)json_integer_value(json_object_get(pin, "id")));
			json_decref(pin);
			fbt_http(&s, "DELETE", del, admin, NULL, 0, NULL, &r);
			assert_int_equal(r.status, 200);
			fbt_resp_free(&r);
		}
		long want = fbt_db_long(db, "SELECT seq FROM publication");
		/* the agent must see the latest publication: the halted first file
		 * leaves the channel out, under the newest sequence */
		int64_t seen = 0;
		for (int i = 0; i < 200 && seen != want; i++) {
			fbt_http(&s, "GET", "/v1/poll", tok, NULL, 0, NULL, &r);
			struct fbsig_assignment *a;
			if (r.status == 200 &&
			    fbsig_assignment_verify(root, r.body, r.len, fb_now_ms() / 1000, 0, &a,
			                            &err) == FB_OK) {
				seen = a->sequence;
				if (seen == want)
					assert_int_equal(a->n_channels, 0);
				fbsig_assignment_free(a);
			}
			fbt_resp_free(&r);
			if (seen != want)
				usleep(100000);
		}
		if (seen != want)
			fail_msg("round %d: the agent is served publication %lld, not the latest "
			         "%ld",
			         round, (long long)seen, want);
	}
	fbsig_root_free(root);
	assert_int_equal(fbt_server_stop(&s, SIGTERM), 0);
	free(tok);
	free(db);
	free(admin);
	free(release);
	free(soc);
}

int main(void)
{
	if (sodium_init() < 0)
		return 2;
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_back_to_back_publications_are_served),
	};
	return cmocka_run_group_tests_name("publication", tests, NULL, NULL);
}
