/* fbctl's tenant commands end to end: the real fbctl binary against the
 * real firebreakd and PostgreSQL. tenant list|create|show|group-create,
 * policy list|set|delete, users and enrollment tokens of a tenant, the
 * agent list's tenant and group, and the exits: 2 for a usage error found
 * before any request, 1 for the server's refusal (another tenant's
 * identifiers, bad input, conflicts, a role that may not). The tests share
 * one server and run in order. */
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
#include "fbt.h"
#include "fbt_world.h"

struct ctx {
	char *db;
	struct fbt_server srv;
	char *admin, *release, *soc;
	char *acme_admin, *acme_release, *bolt_admin; /* tenant tokens, made by the tests */
	char *caps;
	char *home;
	char env_home[1100];
};
static struct ctx *C;

/* fbctl --server URL [--token TOKEN] args..., in a clean environment;
 * exit status returned, output in *out and *err (caller frees). */
static int fbctl_tok(const char *token, char **out, char **err, const char *const *args)
{
	const char *argv[64],
	        *env[] = {C->env_home, "FIREBREAK_URL=", "FIREBREAK_TOKEN=", "FIREBREAK_CA=", NULL};
	int n = 0;
	argv[n++] = fbt_bin("fbctl");
	argv[n++] = "--server";
	argv[n++] = C->srv.url;
	if (token) {
		argv[n++] = "--token";
		argv[n++] = token;
	}
	for (int i = 0; args[i] && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return fbt_run(argv, env, out, err);
}

/* Run, expect exit status want, fail with the output otherwise; returns
 * stdout (caller frees). */
#define CTL_OK(want, token, ...)                                                                   \
	ctl_want((want), (token), (const char *const[]){__VA_ARGS__, NULL}, __LINE__, 0)
/* The same, returning stderr. */
#define CTL_ERR(want, token, ...)                                                                  \
	ctl_want((want), (token), (const char *const[]){__VA_ARGS__, NULL}, __LINE__, 1)
static char *ctl_want(int want, const char *token, const char *const *args, int line, int errout)
{
	char *out, *err;
	int st = fbctl_tok(token, &out, &err, args);
	if (st != want)
		fail_msg("line %d: fbctl %s %s: exit %d, expected %d\nstdout: %s\nstderr: %s", line,
		         args[0], args[1] ? args[1] : "", st, want, out ? out : "", err ? err : "");
	if (errout) {
		free(out);
		return err;
	}
	free(err);
	return out;
}

static void has(const char *hay, const char *needle)
{
	if (!hay || !strstr(hay, needle)) {
		fprintf(stderr, "expected \"%s\" in:\n%s\n", needle, hay ? hay : "(null)");
		fail_msg("expected \"%s\" (the text is above)", needle);
	}
}

/* Check and free. */
static void has_free(char *text, const char *needle)
{
	has(text, needle);
	free(text);
}

/* The token printed on stdout by fbctl token create (caller frees). */
static char *token_of(const char *user, const char *role, const char *name)
{
	char *out = CTL_OK(0, C->admin, "token", "create", "--role", role, "--name", name, "--user",
	                   user);
	out[strcspn(out, "\n")] = '\0';
	assert_true(strlen(out) > 16);
	return out;
}

/* Enroll an agent with the enrollment token that fbctl printed (its
 * stdout, freed here); returns the agent's id. */
static int64_t enroll(char *etoken, const char *hostname)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	char pk64[64];
	etoken[strcspn(etoken, "\n")] = '\0';
	crypto_sign_keypair(pk, sk);
	sodium_memzero(sk, sizeof sk);
	sodium_bin2base64(pk64, sizeof pk64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
	size_t n = strlen(C->caps) + 1024;
	char *body = malloc(n);
	assert_non_null(body);
	snprintf(body, n,
	         "{\"enrollment_token\":\"%s\",\"public_key\":\"%s\",\"hostname\":\"%s\","
	         "\"agent_version\":\"test\",\"capabilities\":%s}",
	         etoken, pk64, hostname, C->caps);
	struct fbt_resp r;
	assert_int_equal(
	        fbt_http(&C->srv, "POST", "/v1/enroll", NULL, body, strlen(body), NULL, &r), 0);
	if (r.status != 201)
		fail_msg("enroll: %ld %s", r.status, r.body);
	json_t *j = fbt_resp_json(&r);
	int64_t id = json_integer_value(json_object_get(j, "agent_id"));
	assert_true(id > 0);
	json_decref(j);
	fbt_resp_free(&r);
	free(body);
	free(etoken);
	return id;
}

static int setup(void **state)
{
	C = calloc(1, sizeof *C);
	C->db = fbt_db_new();
	C->admin = fbt_token(C->db, "admin", "ada");
	C->release = fbt_token(C->db, "release", "rel");
	C->soc = fbt_token(C->db, "soc", "sam");
	C->home = fbt_tmpdir("fbctl-tenants-home");
	snprintf(C->env_home, sizeof C->env_home, "HOME=%s", C->home);
	struct cf_registry *reg;
	struct fb_err err;
	if (cf_registry_load_dir(fbt_world_default()->templates, &reg, &err))
		return -1;
	json_t *caps = cf_registry_capabilities(reg);
	C->caps = json_dumps(caps, JSON_COMPACT);
	json_decref(caps);
	cf_registry_free(reg);
	if (fbt_server_start(&C->srv, C->db, NULL) || fbt_server_wait_ready(&C->srv))
		return -1;
	*state = C;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	int rc = fbt_server_stop(&C->srv, SIGTERM);
	free(C->db);
	free(C->admin);
	free(C->release);
	free(C->soc);
	free(C->acme_admin);
	free(C->acme_release);
	free(C->bolt_admin);
	free(C->caps);
	free(C->home);
	free(C);
	return rc == 0 ? 0 : -1;
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_usage_errors(void **state)
{
	(void)state;
	char *out = CTL_OK(0, NULL, "tenant", "--help");
	has(out, "usage: fbctl tenant create NAME [--default-mode early|ga]");
	has(out, "usage: fbctl tenant group-create TENANT NAME");
	free(out);
	out = CTL_OK(0, NULL, "policy", "--help");
	has(out, "usage: fbctl policy set TENANT [--group G] [--channel N] --mode");
	has(out, "usage: fbctl policy delete TENANT ID");
	free(out);
	/* found before any request: exit 2, the server never asked */
	has_free(CTL_ERR(2, C->admin, "tenant", "create"), "missing NAME");
	has_free(CTL_ERR(2, C->admin, "tenant", "create", "Acme Corp"), "NAME \"Acme Corp\"");
	has_free(CTL_ERR(2, C->admin, "tenant", "create", "acme", "--default-mode", "late"),
	         "--default-mode must be early or ga");
	has_free(CTL_ERR(2, C->admin, "tenant", "show", "../v1/tokens"), "NAME \"../v1/tokens\"");
	has_free(CTL_ERR(2, C->admin, "tenant", "group-create", "acme"), "missing NAME");
	has_free(CTL_ERR(2, C->admin, "tenant", "frob"), "tenant takes: list, create, show");
	has_free(CTL_ERR(2, C->admin, "policy", "list"), "missing TENANT");
	has_free(CTL_ERR(2, C->admin, "policy", "set", "acme", "--reason", "x"), "--mode");
	has_free(CTL_ERR(2, C->admin, "policy", "set", "acme", "--mode", "sometimes", "--reason",
	                 "x"),
	         "--mode must be early, ga, delayed, paused, n-1 or version");
	has_free(CTL_ERR(2, C->admin, "policy", "set", "acme", "--mode", "ga"), "--reason");
	has_free(
	        CTL_ERR(2, C->admin, "policy", "set", "acme", "--mode", "delayed", "--reason", "x"),
	        "--mode delayed needs --delay");
	has_free(CTL_ERR(2, C->admin, "policy", "set", "acme", "--mode", "ga", "--delay", "2h",
	                 "--reason", "x"),
	         "--delay goes with --mode delayed only");
	has_free(CTL_ERR(2, C->admin, "policy", "set", "acme", "--mode", "delayed", "--delay",
	                 "91d", "--reason", "x"),
	         "--delay: 91d is out of range: 1s to 90d");
	has_free(
	        CTL_ERR(2, C->admin, "policy", "set", "acme", "--mode", "version", "--reason", "x"),
	        "--mode version needs --version");
	has_free(CTL_ERR(2, C->admin, "policy", "set", "acme", "--mode", "n-1", "--version", "3",
	                 "--reason", "x"),
	         "--version goes with --mode version only");
	has_free(CTL_ERR(2, C->admin, "policy", "set", "acme", "--mode", "ga", "--channel", "x",
	                 "--reason", "r"),
	         "--channel must be an integer");
	has_free(CTL_ERR(2, C->admin, "policy", "delete", "acme", "one"), "policy ID");
	has_free(CTL_ERR(2, C->admin, "policy", "list", "acme", "--mode", "ga"),
	         "option --mode does not apply to \"policy list\"");
}

static void test_tenants_groups_users(void **state)
{
	(void)state;
	char *out = CTL_OK(0, C->admin, "tenant", "create", "acme", "--default-mode", "early",
	                   "--reason", "customer A signed");
	has(out, "created tenant acme (id ");
	has(out, "default mode early; groups default");
	free(out);
	has_free(CTL_OK(0, C->admin, "tenant", "create", "bolt"), "default mode ga");
	/* refused by the server: exit 1 with its answer */
	has_free(CTL_ERR(1, C->admin, "tenant", "create", "acme"), "HTTP 409 conflict");
	has_free(CTL_ERR(1, C->soc, "tenant", "create", "socco"), "HTTP 403 forbidden");
	has_free(CTL_OK(0, C->admin, "tenant", "group-create", "acme", "lab"),
	         "created group lab (id ");
	has_free(CTL_ERR(1, C->admin, "tenant", "group-create", "acme", "lab"), "HTTP 409");
	has_free(CTL_ERR(1, C->admin, "tenant", "group-create", "nope", "lab"), "HTTP 404");

	out = CTL_OK(0, C->admin, "tenant", "list");
	has(out, "DEFAULT MODE");
	has(out, "GROUPS");
	has(out, "acme");
	has(out, "bolt");
	free(out);

	/* a tenant's operator, its tokens, and who they say it is */
	has_free(CTL_OK(0, C->admin, "user", "create", "acme-ops", "--role", "release,soc,admin",
	                "--tenant", "acme"),
	         "; tenant acme");
	has_free(CTL_OK(0, C->admin, "user", "create", "bolt-ops", "--role", "admin", "--tenant",
	                "bolt"),
	         "; tenant bolt");
	has_free(CTL_ERR(1, C->admin, "user", "create", "nobody-ops", "--role", "soc", "--tenant",
	                 "no-such-tenant"),
	         "HTTP 400");
	C->acme_admin = token_of("acme-ops", "admin", "acme-ops-admin");
	C->acme_release = token_of("acme-ops", "release", "acme-ops-release");
	C->bolt_admin = token_of("bolt-ops", "admin", "bolt-ops-admin");
	has_free(CTL_OK(0, C->acme_admin, "whoami"), "acting for tenant acme");
	out = CTL_OK(0, C->admin, "user", "list");
	has(out, "TENANT");
	has(out, "acme-ops");
	free(out);

	/* the tenant's own admin makes groups and enrollment tokens of its own */
	has_free(CTL_OK(0, C->acme_admin, "tenant", "group-create", "acme", "edge"),
	         "of tenant acme");
	has_free(CTL_ERR(1, C->bolt_admin, "tenant", "group-create", "acme", "evil"), "HTTP 404");
	int64_t lab = enroll(CTL_OK(0, C->acme_admin, "enroll-token", "create", "--name",
	                            "acme-lab", "--group", "lab"),
	                     "lab-host");
	char labid[24];
	snprintf(labid, sizeof labid, "%lld", (long long)lab);
	/* ring 0 is a host of the vendor's own (the default tenant, early), so
	 * that what the tenants choose never leaves it without early hosts */
	int64_t v = enroll(CTL_OK(0, C->admin, "enroll-token", "create", "--name", "vendor"),
	                   "vendor-host");
	char rings[512];
	snprintf(rings, sizeof rings,
	         "{\"rings\":[{\"name\":\"canary\",\"selector\":{\"agents\":[%lld]}},"
	         "{\"name\":\"ga\",\"selector\":{\"rest\":true}}],\"reason\":\"test rings\"}",
	         (long long)v);
	struct fbt_resp r;
	assert_int_equal(
	        fbt_http(&C->srv, "PUT", "/v1/rings", C->admin, rings, strlen(rings), NULL, &r), 0);
	if (r.status != 200)
		fail_msg("rings: %ld %s", r.status, r.body);
	fbt_resp_free(&r);
	has_free(CTL_ERR(1, C->bolt_admin, "enroll-token", "create", "--name", "x", "--tenant",
	                 "acme"),
	         "HTTP 4");

	/* the agent list shows tenant and group, and filters by them */
	out = CTL_OK(0, C->admin, "agent", "list");
	has(out, "TENANT");
	has(out, "GROUP");
	has(out, "lab-host");
	has(out, "acme");
	has(out, "lab");
	free(out);
	has_free(CTL_OK(0, C->admin, "agent", "list", "--tenant", "acme", "--group", "lab"),
	         "lab-host");
	out = CTL_OK(0, C->bolt_admin, "agent", "list");
	assert_null(strstr(out, "lab-host"));
	free(out);
	out = CTL_OK(0, C->acme_admin, "agent", "show", labid);
	has(out, "tenant         acme\n");
	has(out, "group          lab\n");
	free(out);
	has_free(CTL_ERR(1, C->bolt_admin, "agent", "show", labid), "HTTP 404 not_found");
	out = CTL_OK(0, C->admin, "agent", "list", "--tenant", "bolt");
	assert_null(strstr(out, "lab-host"));
	free(out);
}

static void test_policies(void **state)
{
	(void)state;
	has_free(CTL_OK(0, C->admin, "channel", "create", "291", "named-pipes"), "291");
	char *out =
	        CTL_OK(0, C->acme_release, "policy", "set", "acme", "--group", "lab", "--channel",
	               "291", "--mode", "delayed", "--delay", "2h", "--reason", "the lab waits");
	has(out, "of acme: group lab, channel 291: delayed 7200s");
	char id[32];
	assert_int_equal(sscanf(out, "policy %31s", id), 1);
	free(out);
	out = CTL_OK(0, C->acme_release, "policy", "list", "acme");
	has(out, "GROUP");
	has(out, "lab");
	has(out, "delayed 7200s");
	has(out, "the lab waits");
	free(out);
	out = CTL_OK(0, C->admin, "policy", "list", "acme", "--json");
	json_t *j = json_loads(out, 0, NULL);
	assert_non_null(j);
	json_t *p = json_array_get(json_object_get(j, "policies"), 0);
	assert_int_equal(json_integer_value(json_object_get(p, "delay_s")), 7200);
	json_decref(j);
	free(out);
	out = CTL_OK(0, C->acme_admin, "tenant", "show", "acme");
	has(out, "tenant acme (id ");
	has(out, "default mode early");
	has(out, "edge");
	has(out, "delayed 7200s");
	free(out);
	has_free(CTL_OK(0, C->bolt_admin, "tenant", "show", "bolt"), "no content policies");
	/* the whole tenant paused: what it stays on is recorded */
	has_free(CTL_OK(0, C->bolt_admin, "policy", "set", "bolt", "--mode", "paused", "--reason",
	                "freeze"),
	         "group (all), channel (all): paused");

	/* refusals: the server's, exit 1, naming the field */
	char *err = CTL_ERR(1, C->acme_release, "policy", "set", "acme", "--group", "nope",
	                    "--mode", "ga", "--reason", "x");
	has(err, "HTTP 400 invalid");
	has(err, "group");
	free(err);
	err = CTL_ERR(1, C->acme_release, "policy", "set", "acme", "--channel", "291", "--mode",
	              "version", "--version", "99", "--reason", "x");
	has(err, "HTTP 400 invalid");
	has(err, "version");
	free(err);
	/* another tenant's: as if it did not exist */
	has_free(CTL_ERR(1, C->bolt_admin, "policy", "list", "acme"), "HTTP 404 not_found");
	has_free(
	        CTL_ERR(1, C->bolt_admin, "policy", "set", "acme", "--mode", "ga", "--reason", "x"),
	        "HTTP 404 not_found");
	has_free(CTL_ERR(1, C->bolt_admin, "policy", "delete", "acme", id), "HTTP 404 not_found");
	has_free(CTL_ERR(1, C->bolt_admin, "policy", "delete", "bolt", id), "HTTP 404 not_found");
	has_free(CTL_ERR(1, C->bolt_admin, "tenant", "show", "acme"), "HTTP 404 not_found");
	has_free(CTL_ERR(1, C->bolt_admin, "tenant", "list"), "HTTP 404 not_found");

	has_free(CTL_OK(0, C->acme_release, "policy", "delete", "acme", id), "deleted");
	has_free(CTL_ERR(1, C->acme_release, "policy", "delete", "acme", id), "HTTP 404");
	out = CTL_OK(0, C->acme_release, "policy", "list", "acme");
	assert_null(strstr(out, "7200"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_usage_errors),
	        cmocka_unit_test(test_tenants_groups_users),
	        cmocka_unit_test(test_policies),
	};
	return cmocka_run_group_tests_name("fbctl_tenants", tests, setup, teardown);
}
