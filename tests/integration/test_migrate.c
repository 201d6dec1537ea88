/* firebreakd migrate against a real PostgreSQL: a fresh database, a re-run,
 * and a database that is ahead of the binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fbt.h"

static int migrate(const char *db, char **out, char **err)
{
	char arg[1100];
	snprintf(arg, sizeof arg, "--db=%s", db);
	const char *argv[] = {fbt_bin("firebreakd"), "migrate", arg, NULL};
	return fbt_run(argv, NULL, out, err);
}

static void test_fresh_then_rerun_is_noop(void **state)
{
	(void)state;
	char *db = fbt_db_at_migration("fbt_empty", 0), *out, *err;
	assert_non_null(db);
	assert_int_equal(migrate(db, &out, &err), 0);
	assert_non_null(strstr(out, "applied"));
	long n = fbt_db_long(db, "SELECT count(*) FROM schema_migrations");
	assert_true(n >= 1);
	/* the core tables exist; the default rings are seeded */
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM rings"), 4);
	const char *tables[] = {"channels",      "content",          "agents",         "rollouts",
	                        "gate_policies", "gate_evaluations", "signal_rollups", "events",
	                        "audit_log",     "api_tokens",       "policy_bounds"};
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
		char sql[128];
		snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[i]);
		assert_int_equal(fbt_db_long(db, sql), 0);
	}
	/* 0004: heartbeat updates can be HOT (no index on last_seen_at, room
	 * on each page for the next version of its rows) */
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM pg_indexes WHERE tablename = "
	                                 "'agents' AND indexdef LIKE '%last_seen_at%'"),
	                 0);
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM pg_class WHERE relname = 'agents' "
	                                 "AND 'fillfactor=50' = ANY (reloptions)"),
	                 1);
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM schema_migrations WHERE version = 4 "
	                                 "AND name = 'agents_hot_heartbeats'"),
	                 1);
	free(out);
	free(err);
	long applied_at = fbt_db_long(
	        db, "SELECT extract(epoch FROM max(applied_at))*1000000 FROM schema_migrations");
	assert_int_equal(migrate(db, &out, &err), 0);
	assert_non_null(strstr(out, "nothing to do"));
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM schema_migrations"), n);
	assert_int_equal(fbt_db_long(db, "SELECT extract(epoch FROM max(applied_at))*1000000 FROM "
	                                 "schema_migrations"),
	                 applied_at);
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM rings"), 4);
	free(out);
	free(err);
	free(db);
}

static void test_unknown_migration_is_refused(void **state)
{
	(void)state;
	char *db = fbt_db_new(), *out, *err;
	long tables = fbt_db_long(db, "SELECT count(*) FROM pg_tables WHERE schemaname='public'");
	assert_int_equal(fbt_db_exec(db, "INSERT INTO schema_migrations (version, name) VALUES "
	                                 "(9999, 'from_the_future')"),
	                 0);
	assert_int_not_equal(migrate(db, &out, &err), 0);
	assert_non_null(strstr(err, "9999_from_the_future"));
	assert_non_null(strstr(err, "does not know"));
	assert_int_equal(
	        fbt_db_long(db, "SELECT count(*) FROM pg_tables WHERE schemaname='public'"),
	        tables);
	free(out);
	free(err);
	/* and a running server says it is not ready, with the reason */
	struct fbt_server s;
	assert_int_equal(fbt_server_start(&s, db, NULL), 0);
	struct fbt_resp r;
	fbt_http(&s, "GET", "/readyz", NULL, NULL, 0, NULL, &r);
	assert_int_equal(r.status, 503);
	assert_non_null(strstr(r.body, "9999"));
	fbt_resp_free(&r);
	fbt_server_stop(&s, SIGTERM);
	free(db);
}

static void test_renamed_migration_is_refused(void **state)
{
	(void)state;
	char *db = fbt_db_new(), *out, *err;
	assert_int_equal(
	        fbt_db_exec(
	                db,
	                "UPDATE schema_migrations SET name = 'something_else' WHERE version = 1"),
	        0);
	assert_int_not_equal(migrate(db, &out, &err), 0);
	assert_non_null(strstr(err, "something_else"));
	free(out);
	free(err);
	free(db);
}

static void test_unreachable_database(void **state)
{
	(void)state;
	char *out, *err;
	assert_int_not_equal(migrate("host=/nonexistent port=1 dbname=x", &out, &err), 0);
	assert_non_null(strstr(err, "cannot connect"));
	free(out);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_fresh_then_rerun_is_noop),
	        cmocka_unit_test(test_unknown_migration_is_refused),
	        cmocka_unit_test(test_renamed_migration_is_refused),
	        cmocka_unit_test(test_unreachable_database),
	};
	return cmocka_run_group_tests_name("migrate", tests, NULL, NULL);
}
