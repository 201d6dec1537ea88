/* Migration 0009 (tenants) on a database from before tenants: everything
 * that existed becomes the default tenant's, in its group "default", whose
 * hosts may still get early content; what is GA has been GA "forever"
 * (ga_history); a GA change from then on is recorded; the server starts on
 * it and shows the agent's tenant and group. Real PostgreSQL, the real
 * firebreakd migrate and serve. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the three above, which it needs */

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fb.h"
#include "fbt.h"

#define ADMIN_TOKEN                                                                                \
	"fb_"                                                                                      \
	"5555555555555555555555555555555555555555555555555555555555555555"
#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void test_migration_to_tenants(void **state)
{
	(void)state;
	/* the schema as it was at 0008, applied the way firebreakd migrate does */
	char *db = fbt_db_at_migration("fbt_tenmig", 8);
	assert_non_null(db);
	/* an operator, a channel with GA content, an enrollment token and two
	 * agents enrolled with it */
	assert_int_equal(
	        fbt_db_exec(
	                db,
	                "INSERT INTO users (name, roles) VALUES ('ops', '{admin}');"
	                "INSERT INTO api_tokens (name, role, token_hash, user_id) SELECT 'ops', "
	                "'admin', sha256('" ADMIN_TOKEN "'), id FROM users;"
	                "INSERT INTO channels (id, name) VALUES (291, 'cf');"
	                "INSERT INTO content (sha256, channel_id, version, size, blob, manifest) "
	                "VALUES ('" SHA_A "', 291, 1, 0, '', '{}'), ('" SHA_B "', 291, 2, 0, '', "
	                "'{}');"
	                "UPDATE channels SET ga_sha256 = '" SHA_A "';"
	                "INSERT INTO enrollment_tokens (name, token_hash) VALUES ('fleet', "
	                "sha256('fe_x'));"
	                "INSERT INTO agents (public_key, enrolled_with) SELECT "
	                "decode(repeat(to_hex(k + 16), 32), 'hex'), 1 FROM generate_series(1, "
	                "2) k"),
	        0);
	char arg[1100];
	snprintf(arg, sizeof arg, "--db=%s", db);
	const char *argv[] = {fbt_bin("firebreakd"), "migrate", arg, NULL};
	char *out, *err;
	assert_int_equal(fbt_run(argv, NULL, &out, &err), 0);
	free(out);
	free(err);
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM tenants WHERE id = 1 AND name = "
	                                 "'default' AND default_mode = 'early'"),
	                 1);
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM agents WHERE group_id = 1"), 2);
	assert_int_equal(
	        fbt_db_long(db, "SELECT count(*) FROM enrollment_tokens WHERE group_id = 1"), 1);
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM users WHERE tenant_id IS NULL"), 1);
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM ga_history WHERE channel_id = 291 "
	                                 "AND sha256 = '" SHA_A "' AND since = '-infinity'"),
	                 1);
	assert_int_equal(fbt_db_long(db, "SELECT count(*) WHERE content_mode(1, 291) = 'early'"),
	                 1);
	/* a new tenant gets ids after the default's */
	assert_int_equal(fbt_db_exec(db, "INSERT INTO tenants (name) VALUES ('acme')"), 0);
	assert_int_equal(fbt_db_long(db, "SELECT id FROM tenants WHERE name = 'acme'"), 2);
	/* a GA change is recorded from now on; an update that leaves it is not */
	assert_int_equal(fbt_db_exec(db, "UPDATE channels SET ga_sha256 = '" SHA_B "'; "
	                                 "UPDATE channels SET description = 'x'"),
	                 0);
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM ga_history WHERE sha256 = '" SHA_B
	                                 "' AND since > now() - interval '1 minute'"),
	                 1);
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM ga_history"), 2);

	/* the server starts on it and shows the agents' tenant and group */
	struct fbt_server s;
	assert_int_equal(fbt_server_start(&s, db, NULL), 0);
	assert_int_equal(fbt_server_wait_ready(&s), 0);
	struct fbt_resp r;
	fbt_http(&s, "GET", "/v1/agents", ADMIN_TOKEN, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	json_t *j = fbt_resp_json(&r);
	json_t *agents = json_object_get(j, "agents");
	assert_int_equal(json_array_size(agents), 2);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(fbt_jstr(json_array_get(agents, i), "tenant"), "default");
		assert_string_equal(fbt_jstr(json_array_get(agents, i), "group"), "default");
	}
	json_decref(j);
	fbt_resp_free(&r);
	fbt_http(&s, "GET", "/v1/whoami", ADMIN_TOKEN, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 200);
	j = fbt_resp_json(&r);
	assert_true(json_is_null(json_object_get(j, "tenant")));
	json_decref(j);
	fbt_resp_free(&r);
	fbt_server_stop(&s, 15);
	free(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_migration_to_tenants),
	};
	return cmocka_run_group_tests_name("tenant_migration", tests, NULL, NULL);
}
