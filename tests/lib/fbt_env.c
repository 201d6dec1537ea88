/* A rollout test's environment: database, tokens, replicas, checked HTTP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the three above, which it needs */

#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb.h"
#include "fbschema.h"
#include "fbt_env.h"
#include "fbt_world.h"

void fbt_env_start(struct fbt_env *e, struct fbt_server *s, const char *const *flags)
{
	const char *extra[16] = {"--heartbeat_flush_ms=200", "--snapshot_check_ms=200",
	                         "--controller_interval_ms=200"};
	int n = 3;
	for (int i = 0; flags && flags[i]; i++) {
		if (n == 15)
			fail_msg("fbt_env_start: more than 12 flags");
		extra[n++] = flags[i];
	}
	extra[n] = NULL;
	assert_int_equal(fbt_server_start(s, e->db, extra), 0);
	assert_int_equal(fbt_server_wait_ready(s), 0);
	if (!e->cur)
		e->cur = s;
}

/* Every template's capability as a JSON array (caller frees). */
static char *all_capabilities(void)
{
	struct cf_registry *reg;
	struct fb_err err;
	if (cf_registry_load_dir(fbt_world_default()->templates, &reg, &err))
		fail_msg("templates: %s", err.msg);
	json_t *caps = cf_registry_capabilities(reg);
	char *s = json_dumps(caps, JSON_COMPACT);
	json_decref(caps);
	cf_registry_free(reg);
	assert_non_null(s);
	return s;
}

/* The default world's root, trusted as an agent's pinned one (caller frees
 * with fbsig_root_free()). */
static struct fbsig_root *trusted_root(void)
{
	unsigned char *b;
	size_t len;
	struct fb_err err;
	struct fbsig_root *root = NULL;
	assert_int_equal(fb_file_read(fbt_world_default()->root_path, 1 << 20, &b, &len), FB_OK);
	enum fb_rc rc = fbsig_root_load_trusted(b, len, fb_now_ms() / 1000, 0, &root, &err);
	free(b);
	if (rc)
		fail_msg("root: %s", err.msg);
	return root;
}

void fbt_env_up(struct fbt_env *e, const char *const *flags)
{
	memset(e, 0, sizeof *e);
	assert_true(sodium_init() >= 0);
	e->db = fbt_db_new();
	e->admin = fbt_token(e->db, "admin", "ada");
	e->rel1 = fbt_token(e->db, "release", "rel-one");
	e->rel2 = fbt_token(e->db, "release", "rel-two");
	e->soc = fbt_token(e->db, "soc", "soc-one");
	assert_non_null(e->admin);
	assert_non_null(e->rel1);
	assert_non_null(e->rel2);
	assert_non_null(e->soc);
	fbt_env_start(e, &e->srv, flags);
	e->caps = all_capabilities();
	e->root = trusted_root();
	fbt_env_expect(e, 201, "POST", "/v1/channels", e->admin,
	               "{\"id\":291,\"name\":\"named-pipes\"}");
}

void fbt_env_down(struct fbt_env *e)
{
	if (e->srv.pid > 0)
		assert_int_equal(fbt_server_stop(&e->srv, SIGTERM), 0); /* clean exit, no leaks */
	if (e->srv2.pid > 0)
		assert_int_equal(fbt_server_stop(&e->srv2, SIGTERM), 0);
	free(e->db);
	free(e->admin);
	free(e->rel1);
	free(e->rel2);
	free(e->soc);
	free(e->caps);
	fbsig_root_free(e->root);
	memset(e, 0, sizeof *e);
}

const char *fbt_env_raw(const json_t *j)
{
	return fbt_jstr(j, "_raw");
}

json_t *fbt_env_call(struct fbt_env *e, const char *method, const char *path, const char *token,
                     const char *body, long *status)
{
	struct fbt_resp r;
	if (fbt_http(e->cur, method, path, token, body, body ? strlen(body) : 0, NULL, &r))
		fail_msg("%s %s: transport error", method, path);
	*status = r.status;
	json_t *j = fbt_resp_json(&r);
	if (!json_is_object(j)) {
		json_decref(j);
		j = json_object();
	}
	json_object_set_new(j, "_raw", json_string(r.body ? r.body : ""));
	fbt_resp_free(&r);
	return j;
}

json_t *fbt_env_want(struct fbt_env *e, long want, const char *method, const char *path,
                     const char *token, const char *body)
{
	long st;
	json_t *j = fbt_env_call(e, method, path, token, body, &st);
	if (st != want)
		fail_msg("%s %s: expected %ld, got %ld: %s", method, path, want, st,
		         fbt_env_raw(j));
	return j;
}

void fbt_env_expect(struct fbt_env *e, long want, const char *method, const char *path,
                    const char *token, const char *body)
{
	json_decref(fbt_env_want(e, want, method, path, token, body));
}

void fbt_env_expect_code(struct fbt_env *e, long want, const char *code, const char *method,
                         const char *path, const char *token, const char *body)
{
	json_t *j = fbt_env_want(e, want, method, path, token, body);
	const char *got = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
	if (!got || strcmp(got, code))
		fail_msg("%s %s: expected error %s: %s", method, path, code, fbt_env_raw(j));
	json_decref(j);
}

void fbt_env_refused(struct fbt_env *e, long want, const char *code, const char *method,
                     const char *path, const char *token, const char *body,
                     const char *const *needles)
{
	json_t *j = fbt_env_want(e, want, method, path, token, body);
	json_t *err = json_object_get(j, "error");
	const char *got = json_string_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	if (!got || strcmp(got, code))
		fail_msg("%s %s: expected error %s: %s", method, path, code, fbt_env_raw(j));
	for (int i = 0; needles[i]; i++)
		if (!msg || !strstr(msg, needles[i]))
			fail_msg("%s %s: expected \"%s\" in the message: %s", method, path,
			         needles[i], fbt_env_raw(j));
	json_decref(j);
}
