/* Root rotation on the server: with root_chain, GET /v1/roots/{v} serves
 * every earlier root so an agent several versions behind can step forward;
 * a chain that does not verify step by step stops the server at start-up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb.h"
#include "fbsign.h"
#include "fbt.h"
#include "fbt_world.h"

/* Root version v of the default world's keys, signed by both root keys. */
static char *root_v(struct fbt_world *w, int64_t v, size_t *len)
{
	struct fbsig_pub rootp[2], relp[3], onp;
	for (int i = 0; i < 2; i++)
		fbsig_key_pub(w->root_keys[i], &rootp[i]);
	for (int i = 0; i < 3; i++)
		fbsig_key_pub(w->release_keys[i], &relp[i]);
	fbsig_key_pub(w->online, &onp);
	struct fbsig_role_spec rs = {rootp, 2, 2}, rel = {relp, 3, 2}, on = {&onp, 1, 1};
	json_t *obj;
	struct fb_err err;
	assert_int_equal(
	        fbsig_root_build(v, fb_now_ms() / 1000 + 86400 * 30, &rs, &rel, &on, &obj, &err),
	        FB_OK);
	char *a, *b;
	size_t la;
	assert_int_equal(fbsig_document_sign(w->root_keys[0], FBSIG_ROOT, obj, &a, &la, &err),
	                 FB_OK);
	assert_int_equal(fbsig_envelope_sign(w->root_keys[1], FBSIG_ROOT, a, la, &b, len, &err),
	                 FB_OK);
	free(a);
	json_decref(obj);
	return b;
}

static void write_file(const char *path, const char *b, size_t len)
{
	assert_int_equal(fb_file_write_atomic(path, b, len, 0644), FB_OK);
}

static void test_chain_served_step_by_step(void **state)
{
	(void)state;
	struct fbt_world *w = fbt_world_default();
	char *dir = fbt_tmpdir("chain");
	char p1[1200], p2[1200], p3[1200];
	snprintf(p1, sizeof p1, "%s/1.json", dir);
	snprintf(p2, sizeof p2, "%s/2.json", dir);
	snprintf(p3, sizeof p3, "%s/root3.json", dir);
	unsigned char *r1;
	size_t l1, l2, l3;
	assert_int_equal(fb_file_read(w->root_path, 1 << 20, &r1, &l1), FB_OK);
	char *r2 = root_v(w, 2, &l2), *r3 = root_v(w, 3, &l3);
	write_file(p1, (char *)r1, l1);
	write_file(p2, r2, l2);
	write_file(p3, r3, l3);
	char a_root[1300], a_chain[1300];
	snprintf(a_root, sizeof a_root, "--root=%s", p3);
	snprintf(a_chain, sizeof a_chain, "--root_chain=%s", dir);
	const char *extra[] = {a_root, a_chain, w->args[0], w->args[2], w->args[3], NULL};
	char *db = fbt_db_new();
	struct fbt_server s;
	assert_int_equal(fbt_server_start(&s, db, extra), 0);
	struct fbt_resp r;
	const char *want[] = {(char *)r1, r2, r3};
	size_t wl[] = {l1, l2, l3};
	for (int v = 1; v <= 3; v++) {
		char path[64];
		snprintf(path, sizeof path, "/v1/roots/%d", v);
		fbt_http(&s, "GET", path, NULL, NULL, 0, NULL, &r);
		assert_int_equal(r.status, 200);
		assert_int_equal(r.len, wl[v - 1]);
		assert_memory_equal(r.body, want[v - 1], wl[v - 1]);
		fbt_resp_free(&r);
	}
	fbt_http(&s, "GET", "/v1/roots/4", NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 404);
	fbt_resp_free(&r);
	/* an agent pinned to 1 can verify 2 then 3 */
	struct fbsig_root *t1, *t2, *t3;
	struct fb_err err;
	int64_t now = fb_now_ms() / 1000;
	assert_int_equal(fbsig_root_load_trusted(r1, l1, now, 0, &t1, &err), FB_OK);
	assert_int_equal(fbsig_root_update(t1, r2, l2, now, &t2, &err), FB_OK);
	assert_int_equal(fbsig_root_update(t2, r3, l3, now, &t3, &err), FB_OK);
	fbsig_root_free(t1);
	fbsig_root_free(t2);
	fbsig_root_free(t3);
	assert_int_equal(fbt_server_stop(&s, SIGTERM), 0);

	/* a broken chain (version 2 missing a root signature) refuses to start */
	char *half;
	size_t hl;
	{
		struct fbsig_pub rootp[2], relp[3], onp;
		for (int i = 0; i < 2; i++)
			fbsig_key_pub(w->root_keys[i], &rootp[i]);
		for (int i = 0; i < 3; i++)
			fbsig_key_pub(w->release_keys[i], &relp[i]);
		fbsig_key_pub(w->online, &onp);
		struct fbsig_role_spec rs = {rootp, 2, 2}, rel = {relp, 3, 2}, on = {&onp, 1, 1};
		json_t *obj;
		assert_int_equal(fbsig_root_build(2, now + 86400, &rs, &rel, &on, &obj, &err),
		                 FB_OK);
		assert_int_equal(
		        fbsig_document_sign(w->root_keys[0], FBSIG_ROOT, obj, &half, &hl, &err),
		        FB_OK);
		json_decref(obj);
	}
	write_file(p2, half, hl);
	char portless[1300];
	snprintf(portless, sizeof portless, "--db=%s", db);
	const char *argv[] = {fbt_bin("firebreakd"),
	                      "serve",
	                      "--port=0",
	                      portless,
	                      a_root,
	                      a_chain,
	                      w->args[0],
	                      w->args[2],
	                      w->args[3],
	                      NULL};
	char *out, *errs;
	assert_int_equal(fbt_run(argv, NULL, &out, &errs), 1);
	assert_non_null(strstr(errs, "root_chain"));
	assert_non_null(strstr(errs, "2.json"));
	free(out);
	free(errs);
	free(half);
	free(r1);
	free(r2);
	free(r3);
	free(db);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_chain_served_step_by_step),
	};
	return cmocka_run_group_tests_name("rootchain", tests, NULL, NULL);
}
