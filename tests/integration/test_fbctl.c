/* fbctl end to end: the real fbctl binary against the real firebreakd and
 * PostgreSQL. Every online subcommand's happy path, its --json output
 * parsed, server URL and token precedence (flag > environment > config
 * file), refusals (no token, wrong role, conflicts) and usage errors, and
 * rollout watch following a rollout that completes and one that halts while
 * simulated agents (real enrollment, events and heartbeats over HTTP) report,
 * and the admin policy bounds with an emergency rollout.
 * The tests share one server and run in order (later ones use the rings and
 * channels made by earlier ones). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fb.h"
#include "fbschema.h"
#include "fbt.h"
#include "fbt_world.h"

#define FAST_POLICY                                                                                \
	"{\"min_bake_s\":0,\"min_healthy\":1,\"hard_cap\":1,\"max_failure_rate\":0.5,"             \
	"\"confidence\":0.8,\"max_excess\":1,\"watch_s\":0,\"holdout\":0}"

struct ctx {
	char *db;
	struct fbt_server srv;
	char *admin, *release, *soc, *agentrole;
	char *home;    /* HOME of every fbctl run (its config lives here) */
	char *dir;     /* files written for fbctl */
	char *caps;    /* the registry's capabilities, for enrollment */
	char sha7[65]; /* content of channel 7, version 1 */
	char env_home[1100];
};
static struct ctx *C;

/* ---- running fbctl ------------------------------------------------------------ */

/* Run fbctl with args (NULL-terminated) and extra environment entries
 * ("K=V", NULL-terminated, may be NULL), after a clean base environment: a
 * HOME of our own and no FIREBREAK_* variables. Exit status returned,
 * output in *out and *err (caller frees). */
static int fbctl_env(const char *const *env, char **out, char **err, const char *const *args)
{
	const char *argv[64];
	int n = 0;
	argv[n++] = fbt_bin("fbctl");
	for (int i = 0; args[i] && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	const char *envv[16];
	int k = 0;
	envv[k++] = C->env_home;
	envv[k++] = "FIREBREAK_URL=";
	envv[k++] = "FIREBREAK_TOKEN=";
	envv[k++] = "FIREBREAK_CA=";
	for (int i = 0; env && env[i] && k < 15; i++)
		envv[k++] = env[i];
	envv[k] = NULL;
	return fbt_run(argv, envv, out, err);
}

/* fbctl --server URL --token TOKEN args...; token NULL: no --token. */
#define CTL(token, out, err, ...)                                                                  \
	fbctl_tok((token), (out), (err), (const char *const[]){__VA_ARGS__, NULL})
static int fbctl_tok(const char *token, char **out, char **err, const char *const *args)
{
	const char *a[64];
	int n = 0;
	a[n++] = "--server";
	a[n++] = C->srv.url;
	if (token) {
		a[n++] = "--token";
		a[n++] = token;
	}
	for (int i = 0; args[i] && n < 63; i++)
		a[n++] = args[i];
	a[n] = NULL;
	return fbctl_env(NULL, out, err, a);
}

/* Run, expect exit status want; fails the test with the output otherwise.
 * Returns stdout (caller frees). */
#define CTL_OK(want, token, ...)                                                                   \
	fbctl_want((want), (token), (const char *const[]){__VA_ARGS__, NULL}, __LINE__)
static char *fbctl_want(int want, const char *token, const char *const *args, int line)
{
	char *out, *err;
	int st = fbctl_tok(token, &out, &err, args);
	if (st != want)
		fail_msg("line %d: fbctl %s %s: exit %d, expected %d\nstdout: %s\nstderr: %s", line,
		         args[0], args[1] ? args[1] : "", st, want, out ? out : "", err ? err : "");
	free(err);
	return out;
}

/* stderr of a run expected to exit with want. */
#define CTL_ERR(want, token, ...)                                                                  \
	fbctl_err((want), (token), (const char *const[]){__VA_ARGS__, NULL}, __LINE__)
static char *fbctl_err(int want, const char *token, const char *const *args, int line)
{
	char *out, *err;
	int st = fbctl_tok(token, &out, &err, args);
	if (st != want)
		fail_msg("line %d: fbctl %s: exit %d, expected %d\nstdout: %s\nstderr: %s", line,
		         args[0], st, want, out ? out : "", err ? err : "");
	free(out);
	return err;
}

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text ? text : "", 0, &e);
	if (!j)
		fail_msg("not JSON (%s): %s", e.text, text ? text : "");
	return j;
}

static void has(const char *hay, const char *needle)
{
	if (!hay || !strstr(hay, needle)) {
		/* cmocka cuts long messages: the whole text goes to stderr first */
		fprintf(stderr, "expected \"%s\" in:\n%s\n", needle, hay ? hay : "(null)");
		fail_msg("expected \"%s\" (the text is above)", needle);
	}
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	fclose(f);
}

static char *path_in(const char *dir, const char *name)
{
	char *p = malloc(1200);
	snprintf(p, 1200, "%s/%s", dir, name);
	return p;
}

/* A channel file for channel/version and its manifest signed by two release
 * keys, on disk; paths returned (caller frees), sha filled. */
static void make_content(uint32_t channel, int64_t version, char **blob_path, char **man_path,
                         char sha[65])
{
	unsigned char *blob;
	size_t len;
	assert_int_equal(fbt_world_blob(channel, version, &blob, &len), 0);
	fb_sha256_hex(blob, len, sha);
	char *m = fbt_world_manifest(fbt_world_default(), blob, len, channel, version, 2, 86400);
	assert_non_null(m);
	char name[64];
	snprintf(name, sizeof name, "ch%u-v%lld.cf", channel, (long long)version);
	*blob_path = path_in(C->dir, name);
	snprintf(name, sizeof name, "ch%u-v%lld.manifest.json", channel, (long long)version);
	*man_path = path_in(C->dir, name);
	write_file(*blob_path, blob, len);
	write_file(*man_path, m, strlen(m));
	free(m);
	free(blob);
}

/* Upload with fbctl; returns nothing, checks the output. */
static void upload(uint32_t channel, int64_t version, char sha[65])
{
	char *b, *m;
	make_content(channel, version, &b, &m, sha);
	char *out = CTL_OK(0, C->release, "content", "upload", b, "--manifest", m);
	has(out, sha);
	has(out, "uploaded");
	free(out);
	free(b);
	free(m);
}

/* ---- agents over HTTP ------------------------------------------------------------ */

struct agent {
	int64_t id;
	char token[128];
	int nev;
};

static json_t *http_json(const char *method, const char *path, const char *token, const char *body,
                         long want)
{
	struct fbt_resp r;
	if (fbt_http(&C->srv, method, path, token, body, body ? strlen(body) : 0, NULL, &r))
		fail_msg("%s %s: transport error", method, path);
	if (r.status != want)
		fail_msg("%s %s: %ld, expected %ld: %s", method, path, r.status, want,
		         r.body ? r.body : "");
	json_t *j = fbt_resp_json(&r);
	fbt_resp_free(&r);
	return j;
}

/* Enroll one agent with an enrollment token made by fbctl. */
static void agent_enroll(struct agent *a, const char *etoken)
{
	memset(a, 0, sizeof *a);
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	crypto_sign_keypair(pk, sk);
	sodium_memzero(sk, sizeof sk);
	char pk64[64], body[4096];
	sodium_bin2base64(pk64, sizeof pk64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
	snprintf(body, sizeof body,
	         "{\"enrollment_token\":\"%s\",\"public_key\":\"%s\",\"hostname\":\"host-%s\","
	         "\"agent_version\":\"test\",\"capabilities\":%s}",
	         etoken, pk64, pk64 + 30, C->caps);
	json_t *j = http_json("POST", "/v1/enroll", NULL, body, 201);
	a->id = json_integer_value(json_object_get(j, "agent_id"));
	snprintf(a->token, sizeof a->token, "%s",
	         json_string_value(json_object_get(j, "agent_token")));
	json_decref(j);
	assert_true(a->id > 0);
}

static void agent_event(struct agent *a, const char *kind, int channel, const char *sha)
{
	char body[2048];
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"events\":[{\"id\":\"ev-%d\",\"kind\":\"%s\",\"at\":%lld,"
	         "\"channel\":%d,\"content\":\"%s\",\"boot_id\":\"boot-%lld\"%s}]}",
	         (long long)a->id, ++a->nev, kind, (long long)(fb_now_ms() / 1000), channel, sha,
	         (long long)a->id,
	         strcmp(kind, "crash") == 0 ? ",\"code\":\"0xC0000005\",\"module\":\"csagent.sys\""
	                                    : "");
	json_decref(http_json("POST", "/v1/events", a->token, body, 200));
}

static void agent_heartbeat(struct agent *a, int channel, const char *sha)
{
	char body[4096];
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"boot_id\":\"boot-%lld\",\"uptime_s\":10,"
	         "\"agent_version\":\"test\",\"active\":{\"%d\":\"%s\"},\"capabilities\":%s}",
	         (long long)a->id, (long long)a->id, channel, sha, C->caps);
	json_decref(http_json("POST", "/v1/heartbeat", a->token, body, 202));
}

/* A thread that plays agents while fbctl watches: each applies sha (or
 * applies it and crashes), then heartbeats until told to stop. */
struct driver {
	pthread_t t;
	struct agent *agents;
	int n;
	int channel;
	const char *sha;
	int crash;
	volatile int stop;
	const char *watch_out; /* the watcher's output file: events start once it shows a WAIT */
};

static void *drive(void *arg)
{
	struct driver *d = arg;
	/* Start once the watcher has drawn the rollout waiting for its first
	 * agent, so that its output has a before and an after. */
	for (int i = 0; i < 600; i++) {
		unsigned char *text = NULL;
		size_t len = 0;
		int seen = fb_file_read(d->watch_out, 1 << 20, &text, &len) == FB_OK &&
		           strstr((char *)text, "WAIT: no treated agent has applied");
		free(text);
		if (seen)
			break;
		usleep(50000);
	}
	for (int i = 0; i < d->n; i++) {
		agent_event(&d->agents[i], "applied", d->channel, d->sha);
		if (d->crash)
			agent_event(&d->agents[i], "crash", d->channel, d->sha);
	}
	while (!d->stop) {
		for (int i = 0; i < d->n; i++)
			agent_heartbeat(&d->agents[i], d->channel, d->sha);
		usleep(250000);
	}
	return NULL;
}

/* Run fbctl rollout watch ID (soc) with its output in a file that the driver
 * reads, the driver playing the agents meanwhile. Returns the exit status;
 * *out: everything it printed (caller frees). */
static int watch_run(const char *ids, struct driver *d, char **out)
{
	char path[1300];
	snprintf(path, sizeof path, "%s/watch-%s.out", C->dir, ids);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		putenv(C->env_home);
		const char *argv[] = {
		        fbt_bin("fbctl"), "--server", C->srv.url, "--token",    C->soc,
		        "rollout",        "watch",    ids,        "--interval", "200ms",
		        "--timeout",      "90",       NULL};
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fd);
	d->watch_out = path;
	pthread_create(&d->t, NULL, drive, d);
	int st = 0;
	waitpid(pid, &st, 0);
	d->stop = 1;
	pthread_join(d->t, NULL);
	size_t len;
	assert_int_equal(fb_file_read(path, 1 << 24, (unsigned char **)out, &len), FB_OK);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- fixture --------------------------------------------------------------------- */

static int setup(void **state)
{
	C = calloc(1, sizeof *C);
	C->db = fbt_db_new();
	C->admin = fbt_token(C->db, "admin", "ada");
	C->release = fbt_token(C->db, "release", "rel");
	C->soc = fbt_token(C->db, "soc", "sam");
	C->agentrole = fbt_token(C->db, "agent", "agt");
	C->home = fbt_tmpdir("fbctl-home");
	C->dir = fbt_tmpdir("fbctl-files");
	snprintf(C->env_home, sizeof C->env_home, "HOME=%s", C->home);
	struct cf_registry *reg;
	struct fb_err err;
	if (cf_registry_load_dir(fbt_world_default()->templates, &reg, &err))
		return -1;
	json_t *caps = cf_registry_capabilities(reg);
	C->caps = json_dumps(caps, JSON_COMPACT);
	json_decref(caps);
	cf_registry_free(reg);
	const char *extra[] = {"--controller_interval_ms=200", "--heartbeat_flush_ms=200",
	                       "--snapshot_check_ms=200", NULL};
	if (fbt_server_start(&C->srv, C->db, extra))
		return -1;
	for (int i = 0; i < 300; i++) {
		struct fbt_resp r;
		fbt_http(&C->srv, "GET", "/readyz", NULL, NULL, 0, NULL, &r);
		long st = r.status;
		fbt_resp_free(&r);
		if (st == 200)
			break;
		usleep(100000);
	}
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
	free(C->agentrole);
	free(C->home);
	free(C->dir);
	free(C->caps);
	free(C);
	return rc == 0 ? 0 : -1;
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_usage_and_help(void **state)
{
	(void)state;
	char *out = CTL_OK(0, NULL, "--help");
	has(out, "rollout watch");
	has(out, "enroll-token create");
	has(out, "FIREBREAK_TOKEN");
	free(out);
	out = CTL_OK(0, NULL, "rollout", "start", "--help");
	has(out, "usage: fbctl rollout start --channel N --content SHA");
	free(out);
	out = CTL_OK(0, NULL, "pin", "--help");
	has(out, "fbctl pin add");
	has(out, "fbctl pin rm");
	free(out);
	/* the version, from FB_VERSION; pin add's --version V is another option */
	out = CTL_OK(0, NULL, "--version");
	has(out, "fbctl " FB_VERSION "\n");
	free(out);
	out = CTL_OK(0, NULL, "version");
	has(out, "fbctl " FB_VERSION);
	free(out);
	/* a top-level mistake: one line naming it and a hint, not the usage */
	char *err = CTL_ERR(2, NULL, "rollout", "frobnicate");
	has(err, "unknown command \"rollout frobnicate\"; rollout takes: start, status");
	has(err, "Run 'fbctl rollout --help'");
	free(err);
	err = CTL_ERR(2, NULL, "frobnicate");
	assert_string_equal(err, "fbctl: unknown command \"frobnicate\"\n"
	                         "Run 'fbctl --help' for the commands and options.\n");
	free(err);
	err = CTL_ERR(2, NULL, "--frobnicate", "whoami");
	has(err, "fbctl: unknown option --frobnicate\n");
	free(err);
	err = CTL_ERR(2, NULL, "rollout", "halt", "1", "--reason");
	has(err, "fbctl: option --reason needs a value\n");
	free(err);
	err = CTL_ERR(2, C->soc, "rollout");
	has(err, "needs a subcommand: start, status");
	free(err);
	/* errors name the argument that is wrong or missing */
	err = CTL_ERR(2, C->soc, "rollout", "status");
	has(err, "fbctl: missing ID\n");
	has(err, "usage: fbctl rollout status ID");
	free(err);
	err = CTL_ERR(2, C->soc, "rollout", "status", "1", "2");
	has(err, "unexpected argument \"2\"");
	free(err);
	err = CTL_ERR(2, C->admin, "channel", "create", "7");
	has(err, "fbctl: missing NAME\n");
	free(err);
	err = CTL_ERR(2, C->soc, "rollout", "watch");
	has(err, "missing ID (the rollout to watch)");
	free(err);
	err = CTL_ERR(2, C->soc, "rollout", "watch", "1", "--interval", "1000");
	has(err, "--interval: 1000 is out of range: 100ms to 1m (a plain number is seconds");
	free(err);
	err = CTL_ERR(2, C->soc, "rollout", "watch", "1", "--timeout", "soon");
	has(err, "--timeout: \"soon\" is not a duration");
	free(err);
	err = CTL_ERR(2, C->soc, "rollout", "watch", "x", "--timeout", "5m");
	has(err, "rollout ID must be a positive integer, found \"x\"");
	free(err);
	err = CTL_ERR(2, C->admin, "enroll-token", "create", "--name", "x", "--expires", "30s");
	has(err, "--expires: 30s is out of range: 1m to 365d");
	free(err);
	err = CTL_ERR(2, C->release, "rollout", "start", "--channel", "7", "--content", "1381");
	has(err, "--reason R is required");
	free(err);
	err = CTL_ERR(2, C->release, "rollout", "start", "--channel", "7", "--content", "xyz!",
	              "--reason", "r");
	has(err, "--content \"xyz!\" is not a sha256 digest or a prefix of one");
	free(err);
	err = CTL_ERR(2, C->soc, "rollout", "status", "x1");
	has(err, "rollout ID must be an integer");
	free(err);
	err = CTL_ERR(2, C->soc, "rollout", "status", "1", "--force");
	has(err, "option --force does not apply to \"rollout status\"");
	free(err);
	err = CTL_ERR(2, C->soc, "rollout", "halt", "1");
	has(err, "--reason R is required");
	free(err);
	err = CTL_ERR(2, C->release, "rollout", "start", "--channel", "7");
	has(err, "--content SHA is required");
	free(err);
	err = CTL_ERR(2, C->release, "rollout", "start", "--channel", "7", "--content",
	              "0000000000000000000000000000000000000000000000000000000000000000",
	              "--reason", "r", "--policy", "[1]");
	has(err, "--policy must be a JSON object");
	free(err);
	/* the offline commands still work without any server */
	char *o2, *e2;
	assert_int_equal(fbctl_env(NULL, &o2, &e2, (const char *const[]){"capabilities", NULL}), 0);
	json_decref(parse(o2));
	free(o2);
	free(e2);
}

/* fbctl controller: the lease holder of this one replica, healthy once
 * it has run a cycle; --json is the server's answer; an agent may not ask. */
static void test_controller_status(void **state)
{
	(void)state;
	char *out = NULL, *err = NULL;
	int st = 1;
	for (int k = 0; k < 100 && st != 0; k++) {
		free(out);
		free(err);
		st = CTL(C->soc, &out, &err, "controller");
		if (st != 0)
			usleep(100000);
	}
	if (st != 0)
		fail_msg("controller never healthy: %s%s", out, err);
	has(out, "leader         ");
	has(out, "healthy        yes\n");
	has(out, "(leads)\n");
	has(out, "last cycle     ");
	free(out);
	free(err);
	out = CTL_OK(0, C->release, "controller", "--json");
	json_t *j = parse(out);
	assert_true(json_is_true(json_object_get(j, "healthy")));
	assert_true(json_is_true(json_object_get(j, "this_replica_leads")));
	assert_string_equal(json_string_value(json_object_get(j, "leader")),
	                    json_string_value(json_object_get(j, "this_replica")));
	json_decref(j);
	free(out);
	err = CTL_ERR(1, C->agentrole, "controller");
	has(err, "HTTP 403 forbidden");
	free(err);
}

static void test_connection_precedence_and_errors(void **state)
{
	(void)state;
	char *out, *err;
	/* no token: the server's 401 message, a hint, exit 1 */
	assert_int_equal(CTL(NULL, &out, &err, "whoami"), 1);
	has(err, "server refused GET /v1/whoami: HTTP 401 unauthenticated");
	has(err, "missing Authorization header");
	has(err, "no token configured");
	free(out);
	free(err);
	/* no server anywhere: a configuration error */
	assert_int_equal(fbctl_env(NULL, &out, &err, (const char *const[]){"whoami", NULL}), 2);
	has(err, "no server URL");
	free(out);
	free(err);
	/* a server that does not answer: transport error, exit 1 */
	assert_int_equal(
	        fbctl_env(NULL, &out, &err,
	                  (const char *const[]){"--server", "http://127.0.0.1:1", "--token", C->soc,
	                                        "channel", "list", NULL}),
	        1);
	has(err, "transport error");
	free(out);
	free(err);
	/* a CA bundle that cannot be read */
	assert_int_equal(CTL(C->soc, &out, &err, "--ca", "/nonexistent/ca.pem", "whoami"), 2);
	has(err, "CA bundle /nonexistent/ca.pem: cannot be read");
	free(out);
	free(err);

	/* the default config file (~/.config/firebreak/fbctl.conf): admin */
	char dir[1200], conf[1300], text[1024];
	snprintf(dir, sizeof dir, "%s/.config", C->home);
	mkdir(dir, 0700);
	snprintf(dir, sizeof dir, "%s/.config/firebreak", C->home);
	mkdir(dir, 0700);
	snprintf(conf, sizeof conf, "%s/fbctl.conf", dir);
	snprintf(text, sizeof text, "# fbctl test\nserver = %s\ntoken = \"%s\"\n", C->srv.url,
	         C->admin);
	write_file(conf, text, strlen(text));
	chmod(conf, 0600);
	assert_int_equal(fbctl_env(NULL, &out, &err, (const char *const[]){"whoami", NULL}), 0);
	has(out, "ada (role admin");
	free(out);
	free(err);
	/* the environment beats the file */
	char envtok[200], envurl[200];
	snprintf(envtok, sizeof envtok, "FIREBREAK_TOKEN=%s", C->soc);
	assert_int_equal(fbctl_env((const char *const[]){envtok, NULL}, &out, &err,
	                           (const char *const[]){"whoami", "--json", NULL}),
	                 0);
	json_t *j = parse(out);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "sam");
	assert_string_equal(json_string_value(json_object_get(j, "role")), "soc");
	json_decref(j);
	free(out);
	free(err);
	/* and the flag beats the environment */
	assert_int_equal(fbctl_env((const char *const[]){envtok, NULL}, &out, &err,
	                           (const char *const[]){"whoami", "--token", C->release, NULL}),
	                 0);
	has(out, "rel (role release");
	free(out);
	free(err);
	/* the same order for the server URL: env (dead) beats the file (alive)... */
	snprintf(envurl, sizeof envurl, "FIREBREAK_URL=http://127.0.0.1:1");
	assert_int_equal(fbctl_env((const char *const[]){envurl, NULL}, &out, &err,
	                           (const char *const[]){"whoami", NULL}),
	                 1);
	has(err, "transport error, no answer from http://127.0.0.1:1");
	free(out);
	free(err);
	/* ...and the flag beats the environment */
	assert_int_equal(fbctl_env((const char *const[]){envurl, NULL}, &out, &err,
	                           (const char *const[]){"whoami", "--server", C->srv.url, NULL}),
	                 0);
	has(out, "ada (role admin");
	free(out);
	free(err);
	/* --config names another file; a missing or malformed one is an error */
	char other[1300];
	snprintf(other, sizeof other, "%s/other.conf", C->dir);
	snprintf(text, sizeof text, "url = %s\ntoken = %s\n", C->srv.url, C->soc);
	write_file(other, text, strlen(text));
	chmod(other, 0600);
	assert_int_equal(fbctl_env(NULL, &out, &err,
	                           (const char *const[]){"--config", other, "whoami", NULL}),
	                 0);
	has(out, "sam (role soc");
	free(out);
	free(err);
	assert_int_equal(
	        fbctl_env(NULL, &out, &err,
	                  (const char *const[]){"--config", "/nonexistent.conf", "whoami", NULL}),
	        2);
	has(err, "config: /nonexistent.conf: cannot be read");
	free(out);
	free(err);
	snprintf(text, sizeof text, "sever = %s\n", C->srv.url);
	write_file(other, text, strlen(text));
	assert_int_equal(fbctl_env(NULL, &out, &err,
	                           (const char *const[]){"--config", other, "whoami", NULL}),
	                 2);
	has(err, "other.conf:1: unknown key \"sever\"");
	free(out);
	free(err);
	unlink(conf);
	/* a wrong role: the server's 403 message, exit 1 */
	err = CTL_ERR(1, C->soc, "channel", "create", "7", "seven");
	has(err, "HTTP 403 forbidden: role 'soc' may not do this");
	free(err);
	err = CTL_ERR(1, "fb_not-a-real-token", "channel", "list");
	has(err, "HTTP 401 unauthenticated");
	free(err);
}

static void test_channels_and_content(void **state)
{
	(void)state;
	char *out = CTL_OK(0, C->admin, "channel", "create", "7", "seven", "--description", "test");
	has(out, "channel 7 \"seven\" created");
	free(out);
	out = CTL_OK(0, C->admin, "channel", "create", "7", "seven");
	has(out, "already exists (unchanged)");
	free(out);
	char *err = CTL_ERR(1, C->admin, "channel", "create", "7", "other-name");
	has(err, "HTTP 409 conflict: channel id 7 or name 'other-name' is taken");
	free(err);
	out = CTL_OK(0, C->admin, "channel", "create", "8", "eight");
	free(out);
	out = CTL_OK(0, C->admin, "channel", "create", "9", "nine");
	free(out);
	out = CTL_OK(0, C->soc, "channel", "list");
	has(out, "ID");
	has(out, "seven");
	has(out, "eight");
	free(out);
	out = CTL_OK(0, C->soc, "channel", "list", "--json");
	json_t *j = parse(out);
	json_t *first = json_array_get(json_object_get(j, "channels"), 0);
	assert_int_equal(json_integer_value(json_object_get(first, "id")), 7);
	assert_string_equal(json_string_value(json_object_get(first, "description")), "test");
	json_decref(j);
	free(out);

	/* upload: refused for soc, stored for release, idempotent */
	char *b, *m;
	make_content(7, 1, &b, &m, C->sha7);
	err = CTL_ERR(1, C->soc, "content", "upload", b, "--manifest", m);
	has(err, "HTTP 403 forbidden");
	free(err);
	err = CTL_ERR(2, C->release, "content", "upload", b);
	has(err, "--manifest MANIFEST.json is required");
	free(err);
	out = CTL_OK(0, C->release, "content", "upload", b, "--manifest", m);
	has(out, C->sha7);
	has(out, "uploaded: channel 7, version 1");
	has(out, "preflight ok");
	free(out);
	out = CTL_OK(0, C->release, "content", "upload", b, "--manifest", m, "--json");
	j = parse(out);
	assert_string_equal(json_string_value(json_object_get(j, "sha256")), C->sha7);
	assert_true(json_is_true(json_object_get(j, "duplicate")));
	json_decref(j);
	free(out);
	/* a manifest for another file: the server's refusal */
	char *b2, *m2, sha2[65];
	make_content(7, 2, &b2, &m2, sha2);
	err = CTL_ERR(1, C->release, "content", "upload", b, "--manifest", m2);
	has(err, "HTTP 422 blob_mismatch");
	free(err);
	free(b2);
	free(m2);
	free(b);
	free(m);

	out = CTL_OK(0, C->soc, "content", "list");
	has(out, "SHA256");
	has(out, C->sha7);
	free(out);
	out = CTL_OK(0, C->soc, "content", "list", "--channel", "7", "--json");
	j = parse(out);
	json_t *c = json_array_get(json_object_get(j, "content"), 0);
	assert_string_equal(json_string_value(json_object_get(c, "sha256")), C->sha7);
	assert_int_equal(json_array_size(json_object_get(j, "content")), 1);
	json_decref(j);
	free(out);
	out = CTL_OK(0, C->soc, "content", "list", "--channel", "8", "--json");
	j = parse(out);
	assert_int_equal(json_array_size(json_object_get(j, "content")), 0);
	json_decref(j);
	free(out);
	out = CTL_OK(0, C->soc, "content", "show", C->sha7);
	has(out, "preflight      ok");
	has(out, "signed by");
	has(out, "version        1");
	free(out);
	out = CTL_OK(0, C->soc, "content", "show", C->sha7, "--json");
	j = parse(out);
	assert_int_equal(json_integer_value(json_object_get(j, "channel")), 7);
	assert_int_equal(
	        json_array_size(json_object_get(json_object_get(j, "manifest"), "signatures")), 2);
	json_decref(j);
	free(out);
	char zero[65];
	memset(zero, '0', 64);
	zero[64] = '\0';
	err = CTL_ERR(1, C->soc, "content", "show", zero);
	has(err, "HTTP 404 not_found: no content 0000");
	free(err);
	err = CTL_ERR(2, C->soc, "content", "show", "abc");
	has(err, "content \"abc\" is not a sha256 digest or a prefix of one (4 to 64 hex");
	free(err);

	/* a unique prefix names the content, upper case too */
	char pre[16];
	snprintf(pre, sizeof pre, "%.12s", C->sha7);
	out = CTL_OK(0, C->soc, "content", "show", pre);
	has(out, C->sha7);
	free(out);
	for (char *q = pre; *q; q++)
		*q = (char)(*q >= 'a' && *q <= 'f' ? *q - 'a' + 'A' : *q);
	out = CTL_OK(0, C->soc, "content", "show", pre, "--json");
	j = parse(out);
	assert_string_equal(json_string_value(json_object_get(j, "sha256")), C->sha7);
	json_decref(j);
	free(out);
	/* a prefix nothing has */
	snprintf(pre, sizeof pre, "%.9s", C->sha7);
	pre[8] = pre[8] == '0' ? '1' : '0';
	err = CTL_ERR(1, C->soc, "content", "show", pre);
	has(err, "no uploaded content has a digest starting with it");
	free(err);
	/* two files whose digests share their first 4 digits: the files are
	 * deterministic per (channel, version), so search versions of channel
	 * 11 (of its own) for such a pair and upload both */
	out = CTL_OK(0, C->admin, "channel", "create", "11", "eleven");
	free(out);
	char(*seen)[65] = calloc(4000, 65);
	int va = 0, vb = 0;
	for (int v = 1; v < 4000 && !vb; v++) {
		unsigned char *blob;
		size_t len;
		assert_int_equal(fbt_world_blob(11, v, &blob, &len), 0);
		fb_sha256_hex(blob, len, seen[v]);
		free(blob);
		for (int u = 1; u < v && !vb; u++)
			if (strncmp(seen[u], seen[v], 4) == 0) {
				va = u;
				vb = v;
			}
	}
	assert_true(vb > 0);
	char sa[65], sb[65];
	upload(11, va, sa);
	upload(11, vb, sb);
	snprintf(pre, sizeof pre, "%.4s", sa);
	err = CTL_ERR(2, C->soc, "content", "show", pre);
	has(err, "is ambiguous: 2 uploaded digests start with it");
	has(err, sa);
	has(err, sb);
	has(err, "channel 11 version");
	free(err);
	free(seen);
}

static void test_rings_pins_tokens_agents_audit(void **state)
{
	(void)state;
	char *out = CTL_OK(0, C->soc, "ring", "list");
	has(out, "canary");
	has(out, "{\"percent\":1}");
	free(out);
	/* canary by tag, so that the watched agents are in it */
	char *rings = path_in(C->dir, "rings.json");
	const char *rtext = "[{\"name\":\"canary\",\"selector\":{\"tag\":\"fleet=canary\"}},"
	                    "{\"name\":\"early\",\"selector\":{\"percent\":10}},"
	                    "{\"name\":\"broad\",\"selector\":{\"percent\":39}},"
	                    "{\"name\":\"ga\",\"selector\":{\"rest\":true}}]";
	write_file(rings, rtext, strlen(rtext));
	char *err = CTL_ERR(1, C->release, "ring", "set", rings);
	has(err, "HTTP 403 forbidden: role 'release' may not do this");
	free(err);
	out = CTL_OK(0, C->admin, "ring", "set", rings, "--reason", "canary by tag");
	has(out, "rings replaced");
	has(out, "fleet=canary");
	free(out);
	out = CTL_OK(0, C->soc, "ring", "list", "--json");
	json_t *j = parse(out);
	json_t *r0 = json_array_get(json_object_get(j, "rings"), 0);
	assert_string_equal(json_string_value(json_object_get(r0, "name")), "canary");
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(r0, "selector"), "tag")),
	        "fleet=canary");
	json_decref(j);
	free(out);
	const char *bad = "{\"rings\":[{\"name\":\"only\",\"selector\":{\"percent\":5}}]}";
	write_file(rings, bad, strlen(bad));
	err = CTL_ERR(1, C->admin, "ring", "set", rings);
	has(err, "the last ring must be {\"rest\": true}");
	free(err);
	free(rings);

	/* pins */
	out = CTL_OK(0, C->admin, "pin", "add", "--tag", "site=fra1", "--channel", "7", "--mode",
	             "n-1", "--reason", "hold fra1");
	has(out, "pin 1: site=fra1 on channel 7 -> n-1");
	free(out);
	out = CTL_OK(0, C->admin, "pin", "add", "--tag", "site=ams1", "--channel", "7", "--mode",
	             "version", "--version", "1");
	has(out, "-> version 1");
	free(out);
	err = CTL_ERR(2, C->admin, "pin", "add", "--tag", "a=b", "--channel", "7", "--mode",
	              "version");
	has(err, "--mode version needs --version V");
	free(err);
	err = CTL_ERR(1, C->admin, "pin", "add", "--tag", "site=fra1", "--channel", "7", "--mode",
	              "n-1");
	has(err, "HTTP 409 conflict: tag site=fra1 is already pinned on channel 7");
	free(err);
	out = CTL_OK(0, C->soc, "pin", "list");
	has(out, "site=fra1");
	has(out, "site=ams1");
	free(out);
	out = CTL_OK(0, C->admin, "pin", "rm", "1");
	has(out, "pin 1 deleted");
	free(out);
	out = CTL_OK(0, C->soc, "pin", "list", "--json");
	j = parse(out);
	assert_int_equal(json_array_size(json_object_get(j, "pins")), 1);
	assert_string_equal(json_string_value(json_object_get(
	                            json_array_get(json_object_get(j, "pins"), 0), "tag")),
	                    "site=ams1");
	json_decref(j);
	free(out);
	err = CTL_ERR(1, C->admin, "pin", "rm", "1");
	has(err, "HTTP 404 not_found: no pin 1");
	free(err);

	/* API tokens: made, used, listed, revoked */
	char *tok = CTL_OK(0, C->admin, "token", "create", "--role", "soc", "--name", "viewer");
	tok[strcspn(tok, "\n")] = '\0';
	out = CTL_OK(0, tok, "whoami");
	has(out, "viewer (role soc");
	free(out);
	err = CTL_ERR(1, C->soc, "token", "list");
	has(err, "HTTP 403 forbidden");
	free(err);
	out = CTL_OK(0, C->admin, "token", "list", "--json");
	j = parse(out);
	json_int_t viewer = 0;
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(j, "tokens"), i, t)
	{
		if (strcmp(json_string_value(json_object_get(t, "name")), "viewer") == 0)
			viewer = json_integer_value(json_object_get(t, "id"));
	}
	json_decref(j);
	free(out);
	assert_true(viewer > 0);
	char vid[24];
	snprintf(vid, sizeof vid, "%lld", (long long)viewer);
	out = CTL_OK(0, C->admin, "token", "list");
	has(out, "viewer");
	free(out);
	out = CTL_OK(0, C->admin, "token", "revoke", vid);
	has(out, "revoked");
	free(out);
	err = CTL_ERR(1, tok, "whoami");
	has(err, "unknown or revoked token");
	free(err);
	free(tok);

	/* users: created, issued tokens, changed, disabled; one-line refusals */
	out = CTL_OK(0, C->admin, "user", "create", "alice", "--role", "release,soc", "--email",
	             "Alice@Example.com", "--reason", "joined release");
	has(out, "created user alice (id ");
	has(out, "roles release, soc; alice@example.com");
	free(out);
	err = CTL_ERR(1, C->admin, "user", "create", "alice", "--role", "soc");
	has(err, "HTTP 409 conflict: field 'name': a user called 'alice' exists");
	assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1);
	free(err);
	err = CTL_ERR(1, C->admin, "user", "create", "bob", "--role", "root");
	has(err, "HTTP 400 invalid: roles[0] must be one of");
	free(err);
	err = CTL_ERR(2, C->admin, "user", "create", "bob");
	has(err, "--role ROLE[,ROLE...] is required");
	free(err);
	tok = CTL_OK(0, C->admin, "token", "create", "--role", "release", "--name", "alice-laptop",
	             "--user", "alice");
	tok[strcspn(tok, "\n")] = '\0';
	out = CTL_OK(0, tok, "whoami");
	has(out, "alice (role release) by token ");
	has(out, " \"alice-laptop\"");
	free(out);
	err = CTL_ERR(1, C->admin, "token", "create", "--role", "admin", "--name", "x", "--user",
	              "alice");
	has(err, "HTTP 422 invalid_user: field 'role': user 'alice' does not hold role 'admin'");
	free(err);
	err = CTL_ERR(1, C->admin, "token", "create", "--role", "soc", "--name", "x", "--user",
	              "nobody");
	has(err, "HTTP 422 unknown_user: field 'user': no user 'nobody'");
	free(err);
	out = CTL_OK(0, C->admin, "user", "list");
	has(out, "alice@example.com");
	has(out, "release, soc");
	free(out);
	out = CTL_OK(0, C->admin, "user", "show", "alice");
	has(out, "alice-laptop");
	free(out);
	out = CTL_OK(0, C->admin, "token", "list");
	has(out, "alice-laptop  alice");
	free(out);
	out = CTL_OK(0, C->admin, "user", "set", "alice", "--email", "-", "--reason", "no SSO");
	has(out, "no e-mail");
	free(out);
	err = CTL_ERR(2, C->admin, "user", "disable", "alice");
	has(err, "--reason R is required");
	free(err);
	out = CTL_OK(0, C->admin, "user", "disable", "alice", "--reason", "left");
	has(out, "; disabled");
	free(out);
	err = CTL_ERR(1, tok, "whoami");
	has(err, "HTTP 401 unauthenticated: user 'alice' is disabled");
	free(err);
	out = CTL_OK(0, C->admin, "user", "enable", "alice", "--reason", "back");
	free(out);
	out = CTL_OK(0, tok, "whoami");
	has(out, "alice (role release)");
	free(out);
	out = CTL_OK(0, C->soc, "audit", "--user", "ada", "--action", "user.disable");
	has(out, "admin:ada");
	has(out, "user/");
	free(out);
	free(tok);

	/* an enrollment token from fbctl enrolls an agent, which fbctl then lists */
	char *et = CTL_OK(0, C->admin, "enroll-token", "create", "--name", "canaries", "--tags",
	                  "{\"fleet\":\"canary\"}", "--max-uses", "5", "--expires", "3600");
	et[strcspn(et, "\n")] = '\0';
	assert_int_equal(strncmp(et, "fe_", 3), 0);
	err = CTL_ERR(2, C->admin, "enroll-token", "create", "--name", "x", "--tags", "not json");
	has(err, "--tags must be a JSON object");
	free(err);
	struct agent a;
	agent_enroll(&a, et);
	free(et);
	char aid[24];
	snprintf(aid, sizeof aid, "%lld", (long long)a.id);
	out = CTL_OK(0, C->soc, "agent", "list");
	has(out, "HOSTNAME");
	has(out, "{\"fleet\":\"canary\"}");
	free(out);
	/* the snapshot places it in canary (by tag) within a few checks */
	int found = 0;
	for (int k = 0; k < 50 && !found; k++) {
		out = CTL_OK(0, C->soc, "agent", "list", "--ring", "canary", "--json");
		j = parse(out);
		found = json_array_size(json_object_get(j, "agents")) == 1 &&
		        json_integer_value(json_object_get(
		                json_array_get(json_object_get(j, "agents"), 0), "id")) == a.id;
		json_decref(j);
		free(out);
		if (!found)
			usleep(100000);
	}
	assert_true(found);
	out = CTL_OK(0, C->soc, "agent", "list", "--ring", "ga", "--json");
	j = parse(out);
	assert_int_equal(json_array_size(json_object_get(j, "agents")), 0);
	json_decref(j);
	free(out);
	out = CTL_OK(0, C->soc, "agent", "list", "--limit", "1", "--json");
	j = parse(out);
	assert_int_equal(json_array_size(json_object_get(j, "agents")), 1);
	json_decref(j);
	free(out);
	out = CTL_OK(0, C->soc, "agent", "show", aid);
	has(out, "hostname       host-");
	has(out, "ring           canary");
	free(out);
	out = CTL_OK(0, C->soc, "agent", "show", aid, "--json");
	j = parse(out);
	assert_int_equal(json_integer_value(json_object_get(j, "id")), a.id);
	json_decref(j);
	free(out);
	err = CTL_ERR(1, C->soc, "agent", "show", "99999");
	has(err, "no agent 99999");
	free(err);
	err = CTL_ERR(1, C->agentrole, "agent", "list");
	has(err, "HTTP 403 forbidden: role 'agent' may not do this");
	free(err);

	/* the audit log: filtered, paged */
	out = CTL_OK(0, C->soc, "audit", "--action", "channel.create", "--json");
	j = parse(out);
	assert_int_equal(json_array_size(json_object_get(j, "audit")), 4);
	json_array_foreach(json_object_get(j, "audit"), i, t)
	{
		assert_string_equal(json_string_value(json_object_get(t, "action")),
		                    "channel.create");
	}
	json_decref(j);
	free(out);
	out = CTL_OK(0, C->soc, "audit", "--object", "rings");
	has(out, "rings.replace");
	has(out, "canary by tag");
	has(out, "admin:ada");
	free(out);
	char *o2, *e2;
	assert_int_equal(CTL(C->soc, &o2, &e2, "audit", "--limit", "1"), 0);
	has(e2, "more: fbctl audit --before ");
	long long before = strtoll(strstr(e2, "--before ") + 9, NULL, 10);
	assert_true(before > 1);
	free(o2);
	free(e2);
	char bs[24];
	snprintf(bs, sizeof bs, "%lld", before);
	out = CTL_OK(0, C->soc, "audit", "--limit", "2", "--before", bs, "--json");
	j = parse(out);
	assert_int_equal(json_array_size(json_object_get(j, "audit")), 2);
	json_array_foreach(json_object_get(j, "audit"), i, t)
	{
		assert_true(json_integer_value(json_object_get(t, "id")) < before);
	}
	json_decref(j);
	free(out);
	err = CTL_ERR(2, C->soc, "audit", "--limit", "0");
	has(err, "--limit must be an integer in [1, 1000]");
	free(err);
}

static json_int_t start_rollout(const char *sha, const char *channel, const char *const *more)
{
	const char *args[24] = {"rollout", "start",    "--channel", channel, "--content",
	                        sha,       "--reason", "ship it",   "--json"};
	int n = 9;
	for (int i = 0; more && more[i]; i++)
		args[n++] = more[i];
	args[n] = NULL;
	char *out, *err;
	int st = fbctl_tok(C->release, &out, &err, args);
	if (st != 0)
		fail_msg("rollout start: exit %d: %s", st, err);
	json_t *j = parse(out);
	json_int_t id = json_integer_value(json_object_get(j, "id"));
	assert_string_equal(json_string_value(json_object_get(j, "state")), "rolling");
	json_decref(j);
	free(out);
	free(err);
	assert_true(id > 0);
	return id;
}

static void test_rollout_actions(void **state)
{
	(void)state;
	json_int_t id = start_rollout(
	        C->sha7, "7", (const char *const[]){"--policy", "{\"min_bake_s\":600}", NULL});
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	char *out = CTL_OK(0, C->soc, "rollout", "status", ids);
	has(out, "state          rolling");
	has(out, "ring           1 of 4 (canary)");
	has(out, C->sha7);
	free(out);
	/* the controller's evaluations show with their reasons */
	int seen = 0;
	for (int k = 0; k < 50 && !seen; k++) {
		out = CTL_OK(0, C->soc, "rollout", "status", ids, "--json");
		json_t *j = parse(out);
		json_t *ev = json_array_get(json_object_get(j, "evaluations"), 0);
		seen = ev != NULL;
		if (seen)
			assert_string_equal(json_string_value(json_object_get(ev, "decision")),
			                    "WAIT");
		json_decref(j);
		free(out);
		if (!seen)
			usleep(100000);
	}
	assert_true(seen);
	out = CTL_OK(0, C->soc, "rollout", "status", ids);
	has(out, "WAIT: no treated agent has applied the new content yet");
	free(out);
	out = CTL_OK(0, C->soc, "rollout", "list");
	has(out, "1/4 canary");
	has(out, "rolling");
	free(out);
	out = CTL_OK(0, C->soc, "rollout", "list", "--state", "active", "--json");
	json_t *j = parse(out);
	assert_int_equal(json_integer_value(json_object_get(
	                         json_array_get(json_object_get(j, "rollouts"), 0), "id")),
	                 id);
	json_decref(j);
	free(out);
	out = CTL_OK(0, C->soc, "rollout", "list", "--state", "completed", "--json");
	j = parse(out);
	assert_int_equal(json_array_size(json_object_get(j, "rollouts")), 0);
	json_decref(j);
	free(out);
	char *err = CTL_ERR(1, C->soc, "rollout", "list", "--state", "sideways");
	has(err, "HTTP 400 invalid: state must be one of");
	free(err);

	/* a second rollout on the channel needs --supersede */
	char sha2[65];
	upload(7, 2, sha2);
	err = CTL_ERR(1, C->release, "rollout", "start", "--channel", "7", "--content", sha2,
	              "--reason", "next");
	has(err, "HTTP 409 active_rollout");
	has(err, "add --supersede to replace it"); /* fbctl's flag, not the API's field */
	assert_null(strstr(err, "\"supersede\""));
	free(err);
	err = CTL_ERR(1, C->release, "rollout", "start", "--channel", "7", "--content", sha2,
	              "--rings", "early,ga", "--reason", "skip canary");
	has(err, "ring0_required");
	free(err);
	/* started by the 12 digits the tables print */
	char p2[13];
	memcpy(p2, sha2, 12);
	p2[12] = '\0';
	json_int_t id2 =
	        start_rollout(p2, "7",
	                      (const char *const[]){"--supersede", "--rings", "canary,early",
	                                            "--policy", "{\"min_bake_s\":600}", NULL});
	out = CTL_OK(0, C->soc, "rollout", "status", ids);
	has(out, "state          superseded");
	free(out);
	snprintf(ids, sizeof ids, "%lld", (long long)id2);
	out = CTL_OK(0, C->soc, "rollout", "status", ids, "--json");
	j = parse(out);
	assert_int_equal(json_array_size(json_object_get(j, "rings")), 2);
	assert_string_equal(json_string_value(json_object_get(j, "content")), sha2);
	json_decref(j);
	free(out);

	/* watch to a pipe: a frame only when something changed, not at every
	 * evaluation ("bake 1s of 600s", "bake 2s ...") */
	for (int k = 0; k < 50; k++) {
		out = CTL_OK(0, C->soc, "rollout", "status", ids, "--json");
		j = parse(out);
		int evaluated = json_array_size(json_object_get(j, "evaluations")) > 0;
		json_decref(j);
		free(out);
		if (evaluated)
			break;
		usleep(100000);
	}
	char *werr;
	assert_int_equal(CTL(C->soc, &out, &werr, "rollout", "watch", ids, "--interval", "200ms",
	                     "--timeout", "3s"),
	                 1);
	has(werr, "is still rolling after 3s (--timeout)");
	has(out, "WAIT: no treated agent has applied the new content yet (bake");
	int frames = 0;
	for (const char *q = out; (q = strstr(q, "-- ")) != NULL; q += 3)
		frames += q == out || q[-1] == '\n';
	if (frames != 1)
		fail_msg("expected 1 frame in 3 s of an unchanged rollout, got %d:\n%s", frames,
		         out);
	free(out);
	free(werr);
	/* --json: one line per change, the server's two answers */
	assert_int_equal(CTL(C->soc, &out, &werr, "rollout", "watch", ids, "--interval", "200ms",
	                     "--timeout", "2s", "--json"),
	                 1);
	assert_non_null(strchr(out, '\n'));
	assert_int_equal(strchr(out, '\n')[1], '\0'); /* one line */
	j = parse(out);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "rollout"), "id")),
	                 id2);
	assert_true(json_is_object(json_object_get(json_object_get(j, "exposure"), "rings")));
	json_decref(j);
	free(out);
	free(werr);

	/* pause, resume, promote refused by the gate, halt, resume needs two */
	err = CTL_ERR(1, C->soc, "rollout", "pause", ids, "--reason", "look");
	has(err, "HTTP 403 forbidden: role 'soc' may not do this");
	free(err);
	out = CTL_OK(0, C->release, "rollout", "pause", ids, "--reason", "look first");
	has(out, "paused");
	has(out, "reason: look first");
	free(out);
	/* pausing again changes nothing: refused, exit 1, the first reason kept */
	err = CTL_ERR(1, C->release, "rollout", "pause", ids, "--reason", "look again");
	has(err, "is already paused (reason: look first); nothing changed");
	free(err);
	out = CTL_OK(0, C->release, "rollout", "resume", ids, "--reason", "looked", "--json");
	j = parse(out);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "rolling");
	json_decref(j);
	free(out);
	err = CTL_ERR(1, C->release, "rollout", "resume", ids, "--reason", "looked twice",
	              "--json");
	has(err, "is already rolling (reason: looked); nothing changed");
	free(err);
	char obj[40];
	snprintf(obj, sizeof obj, "rollout/%s", ids);
	out = CTL_OK(0, C->soc, "audit", "--object", obj);
	assert_null(strstr(out, "look again"));
	assert_null(strstr(out, "looked twice"));
	free(out);
	err = CTL_ERR(1, C->release, "rollout", "promote", ids, "--reason", "hurry");
	has(err, "HTTP 409 gate_refuses: the gate does not allow a promotion now");
	free(err);
	out = CTL_OK(0, C->release, "rollout", "promote", ids, "--reason", "hurry", "--force");
	has(out, "force-promote approval recorded (1 of 2)");
	free(out);
	static const char why[] =
	        "operator says stop: crash reports from three canary hosts in "
	        "the lab, dumps attached to INC-4711, do not resume before the fix";
	out = CTL_OK(0, C->soc, "rollout", "halt", ids, "--reason", why);
	has(out, "halted");
	has(out, "manual halt by sam: operator says stop");
	free(out);
	/* the status shows the whole reason, not its first 72 characters */
	out = CTL_OK(0, C->soc, "rollout", "status", ids);
	has(out, why);
	free(out);
	/* halting or reverting it again changes nothing: exit 1 (with no agent
	 * exposed the controller soon moves it on to reverted) */
	err = CTL_ERR(1, C->soc, "rollout", "revert", ids, "--reason", "again");
	has(err, "nothing changed");
	has(err, "(reason: manual halt by sam: operator says stop");
	free(err);
	err = CTL_ERR(1, C->soc, "rollout", "halt", ids, "--reason", "again");
	has(err, "nothing changed");
	free(err);
	out = CTL_OK(0, C->release, "rollout", "resume", ids, "--reason", "fixed");
	has(out, "resume approval recorded (1 of 2)");
	free(out);
	out = CTL_OK(0, C->soc, "rollout", "list");
	has(out, "manual halt by sam");
	free(out);
	/* watch on a rollout that has already halted: at once, exit 3 */
	out = CTL_OK(3, C->soc, "rollout", "watch", ids, "--interval", "200ms");
	has(out, ": manual halt by sam: operator says stop");
	assert_true(strstr(out, "reverted, ring 1 of 2") || strstr(out, "halted, ring 1 of 2"));
	free(out);
	err = CTL_ERR(1, C->soc, "rollout", "watch", "99999");
	has(err, "HTTP 404 not_found: no rollout 99999");
	free(err);
	err = CTL_ERR(1, C->soc, "rollout", "halt", "99999", "--reason", "x");
	has(err, "no rollout 99999");
	free(err);
}

/* Enroll n canary agents with one fresh enrollment token. */
static void canaries(struct agent *a, int n)
{
	char *et = CTL_OK(0, C->admin, "enroll-token", "create", "--name", "watchers", "--tags",
	                  "{\"fleet\":\"canary\"}");
	et[strcspn(et, "\n")] = '\0';
	for (int i = 0; i < n; i++)
		agent_enroll(&a[i], et);
	free(et);
	/* the snapshot check places them in canary (by tag): wait until it has
	 * (a fixed sleep was too short on a busy machine now and then) */
	int placed = 0;
	for (int k = 0; k < 100 && placed < n; k++) {
		char *out = CTL_OK(0, C->soc, "agent", "list", "--ring", "canary", "--json");
		json_t *j = parse(out);
		json_t *list = json_object_get(j, "agents");
		placed = 0;
		for (int i = 0; i < n; i++)
			for (size_t x = 0; x < json_array_size(list); x++)
				placed += json_integer_value(json_object_get(
				                  json_array_get(list, x), "id")) == a[i].id;
		json_decref(j);
		free(out);
		if (placed < n)
			usleep(100000);
	}
	assert_int_equal(placed, n);
}

static void test_watch_completed(void **state)
{
	(void)state;
	char sha[65];
	upload(8, 1, sha);
	struct agent a[2];
	canaries(a, 2);
	json_int_t id = start_rollout(
	        sha, "8",
	        (const char *const[]){"--rings", "canary,early", "--policy", FAST_POLICY, NULL});
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	struct driver d = {.agents = a, .n = 2, .channel = 8, .sha = sha};
	char *out;
	int st = watch_run(ids, &d, &out);
	if (st != 0)
		fail_msg("watch: exit %d\noutput: %s", st, out);
	/* plain output (not a tty): one frame per change, first rolling, last completed */
	has(out, "-- ");
	has(out, "rolling, ring 1 of 2");
	has(out, ">>   canary");
	has(out, "WAIT: no treated agent has applied the new content yet");
	has(out, "completed, ring 2 of 2");
	has(out, "done canary");
	has(out, "done early");
	/* canary also holds the agent enrolled earlier, which never applies */
	has(out, "canary   PROMOTE [#############.......] 2/3 treated, 2 healthy, 0 crashed, "
	         "0 boot-looped, 0 silent");
	has(out, "PROMOTE: baked");
	assert_true(strstr(out, "rolling") < strstr(out, "completed"));
	free(out);
	out = CTL_OK(0, C->soc, "channel", "list", "--json");
	json_t *j = parse(out);
	json_t *ch8 = json_array_get(json_object_get(j, "channels"), 1);
	assert_string_equal(json_string_value(json_object_get(ch8, "ga")), sha);
	json_decref(j);
	free(out);
}

static void test_watch_halted(void **state)
{
	(void)state;
	char sha[65];
	upload(9, 1, sha);
	struct agent a[1];
	canaries(a, 1);
	json_int_t id =
	        start_rollout(sha, "9", (const char *const[]){"--policy", FAST_POLICY, NULL});
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	struct driver d = {.agents = a, .n = 1, .channel = 9, .sha = sha, .crash = 1};
	char *out;
	int st = watch_run(ids, &d, &out);
	if (st != 3)
		fail_msg("watch: exit %d, expected 3\noutput: %s", st, out);
	has(out, "rolling, ring 1 of 4");
	/* halted, and reverted as soon as no exposed agent runs the file */
	assert_true(strstr(out, "halted, ring 1 of 4") || strstr(out, "reverted, ring 1 of 4"));
	has(out, "stop canary");
	has(out, "canary   HALT    [xxxxx...............] 1/4 treated, 0 healthy, 1 crashed");
	has(out, "HALT: 1 treated agents crashed or boot-looped on the new content");
	has(out, ": HALT: 1 treated agents crashed"); /* the state's reason */
	free(out);
	out = CTL_OK(0, C->soc, "content", "show", sha);
	has(out, "bad            yes");
	free(out);
	/* clearing the bad mark takes two different approvers */
	char *err = CTL_ERR(2, C->release, "content", "clear-bad", sha);
	has(err, "--reason R is required");
	free(err);
	err = CTL_ERR(1, C->soc, "content", "clear-bad", sha, "--reason", "fixed");
	has(err, "HTTP 403 forbidden");
	free(err);
	out = CTL_OK(0, C->release, "content", "clear-bad", sha, "--reason", "root cause fixed");
	has(out, "clear-bad approval recorded (1 of 2)");
	free(out);
	out = CTL_OK(0, C->admin, "content", "clear-bad", sha, "--reason", "agreed");
	has(out, "not marked bad");
	free(out);
	out = CTL_OK(0, C->soc, "content", "show", sha, "--json");
	json_t *j = parse(out);
	assert_true(json_is_false(json_object_get(j, "bad")));
	json_decref(j);
	free(out);
	/* the crashed host is revoked */
	char aid[24];
	snprintf(aid, sizeof aid, "%lld", (long long)a[0].id);
	err = CTL_ERR(1, C->release, "agent", "revoke", aid);
	has(err, "HTTP 403 forbidden: role 'release' may not do this");
	free(err);
	out = CTL_OK(0, C->admin, "agent", "revoke", aid);
	has(out, "agent ");
	has(out, " revoked");
	free(out);
	out = CTL_OK(0, C->soc, "agent", "show", aid);
	has(out, "revoked        yes");
	free(out);
}

/* agent list's filters are the server's, so --limit counts agents that
 * match: two agents outside canary, then one in it; after the ones before
 * them, "--ring canary --limit 1" is the canary, not an empty page. */
static void test_agent_list_server_filters(void **state)
{
	(void)state;
	char *et = CTL_OK(0, C->admin, "enroll-token", "create", "--name", "others", "--tags",
	                  "{\"fleet\":\"other\"}", "--expires", "1h");
	et[strcspn(et, "\n")] = '\0';
	struct agent o1, o2, can;
	agent_enroll(&o1, et);
	agent_enroll(&o2, et);
	free(et);
	canaries(&can, 1);
	char after[24], cid[24];
	snprintf(after, sizeof after, "%lld", (long long)o1.id - 1);
	snprintf(cid, sizeof cid, "%lld", (long long)can.id);
	char *out = CTL_OK(0, C->soc, "agent", "list", "--ring", "canary", "--after", after,
	                   "--limit", "1", "--json");
	json_t *j = parse(out);
	json_t *arr = json_object_get(j, "agents");
	assert_int_equal(json_array_size(arr), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 0), "id")), can.id);
	json_decref(j);
	free(out);
	char *err;
	assert_int_equal(CTL(C->soc, &out, &err, "agent", "list", "--ring", "canary", "--after",
	                     after, "--limit", "1"),
	                 0);
	has(out, "HEALTH");
	has(out, cid);
	has(err, "more: add --after ");
	free(out);
	free(err);
	out = CTL_OK(0, C->soc, "agent", "list", "--tag", "fleet=other", "--json");
	j = parse(out);
	arr = json_object_get(j, "agents");
	assert_int_equal(json_array_size(arr), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 0), "id")), o1.id);
	json_decref(j);
	free(out);
	out = CTL_OK(0, C->soc, "agent", "list", "--tag", "fleet=other", "--health", "never",
	             "--json");
	j = parse(out);
	assert_int_equal(json_array_size(json_object_get(j, "agents")), 2);
	json_decref(j);
	free(out);
	err = CTL_ERR(2, C->soc, "agent", "list", "--health", "sick");
	has(err, "--health must be healthy, silent or never");
	free(err);
	err = CTL_ERR(2, C->soc, "agent", "list", "--tag", "fleet");
	has(err, "--tag must be key=value");
	free(err);
	/* --content by a digest prefix: the agents that run it (none here) */
	char pre[16];
	snprintf(pre, sizeof pre, "%.10s", C->sha7);
	out = CTL_OK(0, C->soc, "agent", "list", "--content", pre, "--json");
	j = parse(out);
	assert_true(json_is_array(json_object_get(j, "agents")));
	json_decref(j);
	free(out);
}

/* Admin policy bounds (policy-bounds get/set) and an emergency rollout
 * (rollout start --emergency, rollout approve by a second user). */
static void test_policy_bounds_and_emergency(void **state)
{
	(void)state;
	char *out = CTL_OK(0, NULL, "policy-bounds", "--help");
	has(out, "fbctl policy-bounds get");
	has(out, "fbctl policy-bounds set FILE.json");
	free(out);
	out = CTL_OK(0, NULL, "rollout", "approve", "--help");
	has(out, "usage: fbctl rollout approve ID --reason R");
	free(out);
	char *err = CTL_ERR(2, C->admin, "policy-bounds", "set");
	has(err, "fbctl: missing FILE.json\n");
	free(err);
	err = CTL_ERR(2, C->release, "rollout", "start", "--channel", "10", "--content",
	              "0000000000000000000000000000000000000000000000000000000000000000",
	              "--emergency");
	has(err, "--reason R is required");
	free(err);
	err = CTL_ERR(2, C->release, "rollout", "approve", "1");
	has(err, "--reason R is required");
	free(err);

	/* none set yet */
	out = CTL_OK(0, C->soc, "policy-bounds", "get");
	has(out, "no policy bounds set (version 0)");
	has(out, "emergency floor: min_bake_s >= 300");
	free(out);

	/* set from a file: admin only, a reason from the file or --reason */
	char *file = path_in(C->dir, "bounds.json");
	static const char doc[] =
	        "{\"bounds\":{\"min_bake_s\":{\"min\":600},\"confidence\":{\"min\":0.9,\"max\":"
	        "0.999}},\"rings\":{\"canary\":{\"hard_cap\":{\"min\":1,\"max\":5}}},"
	        "\"emergency\":{\"min_bake_s\":{\"min\":60}}}";
	write_file(file, doc, sizeof doc - 1);
	err = CTL_ERR(2, C->admin, "policy-bounds", "set", file);
	has(err, "--reason R is required");
	free(err);
	err = CTL_ERR(1, C->release, "policy-bounds", "set", file, "--reason", "mine");
	has(err, "HTTP 403 forbidden");
	free(err);
	out = CTL_OK(0, C->admin, "policy-bounds", "set", file, "--reason", "change board 12");
	has(out, "policy bounds version 1, set ");
	has(out, "by admin:ada: change board 12");
	has(out, "emergency floor: min_bake_s >= 60");
	has(out, "SCOPE");
	has(out, "global       min_bake_s  600  -");
	has(out, "global       confidence  0.9  0.999");
	has(out, "ring canary  hard_cap    1    5");
	has(out, "emergency    min_bake_s  60   -");
	free(out);
	char *bad = path_in(C->dir, "bounds-bad.json");
	static const char baddoc[] = "{\"bounds\":{\"min_bake\":{\"min\":1}},\"reason\":\"typo\"}";
	write_file(bad, baddoc, sizeof baddoc - 1);
	err = CTL_ERR(1, C->admin, "policy-bounds", "set", bad);
	has(err, "HTTP 422 unknown_key: bounds: unknown policy key \"min_bake\"");
	free(err);
	out = CTL_OK(0, C->release, "policy-bounds", "get", "--json");
	json_t *j = parse(out);
	assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
	assert_int_equal(
	        json_integer_value(json_object_get(
	                json_object_get(json_object_get(j, "bounds"), "min_bake_s"), "min")),
	        600);
	json_decref(j);
	free(out);

	/* a rollout outside them is refused; an emergency may bake shorter */
	out = CTL_OK(0, C->admin, "channel", "create", "10", "ten");
	free(out);
	char sha[65];
	upload(10, 1, sha);
	err = CTL_ERR(1, C->release, "rollout", "start", "--channel", "10", "--content", sha,
	              "--policy", "{\"min_bake_s\":120}", "--reason", "hurry");
	has(err, "HTTP 422 policy_out_of_bounds: ring 'canary': min_bake_s = 120 is below the "
	         "lower bound 600");
	has(err, "the value is set by --policy"); /* fbctl's flag, not the API's field */
	free(err);
	err = CTL_ERR(1, C->release, "rollout", "start", "--channel", "10", "--content", sha,
	              "--policy", "{\"min_bake_s\":30}", "--emergency", "--reason", "CVE fix");
	has(err, "lower bound 60 of the emergency floor");
	free(err);
	out = CTL_OK(0, C->release, "rollout", "start", "--channel", "10", "--content", sha,
	             "--policy", "{\"min_bake_s\":120}", "--emergency", "--reason", "CVE fix");
	has(out, "staged (emergency): channel 10");
	long long id = 0;
	assert_int_equal(sscanf(out, "rollout %lld staged", &id), 1);
	char ids[24], hint[80];
	snprintf(ids, sizeof ids, "%lld", id);
	snprintf(hint, sizeof hint, "fbctl rollout approve %s --reason R", ids);
	has(out, hint);
	free(out);
	out = CTL_OK(0, C->soc, "rollout", "status", ids);
	has(out, "state          staged");
	has(out, "emergency      yes");
	free(out);
	/* the creator again does not count; soc cannot; a second user starts it */
	out = CTL_OK(0, C->release, "rollout", "approve", ids, "--reason", "me again");
	has(out, "emergency-start approval recorded (1 of 2)");
	free(out);
	err = CTL_ERR(1, C->soc, "rollout", "approve", ids, "--reason", "me too");
	has(err, "HTTP 403 forbidden");
	free(err);
	out = CTL_OK(0, C->admin, "rollout", "approve", ids, "--reason", "checked the diff");
	has(out, "rolling");
	has(out, "ring canary");
	has(out, "emergency start approved by ada: checked the diff");
	free(out);
	err = CTL_ERR(1, C->admin, "rollout", "approve", ids, "--reason", "again");
	has(err, "HTTP 409 conflict");
	free(err);
	out = CTL_OK(0, C->soc, "audit", "--action", "rollout.approve");
	has(out, "admin:ada");
	has(out, "checked the diff");
	free(out);

	/* cleared again for the tests after this one */
	static const char none[] = "{}";
	write_file(file, none, sizeof none - 1);
	out = CTL_OK(0, C->admin, "policy-bounds", "set", file, "--reason", "clear");
	has(out, "policy bounds version 2");
	free(out);
	free(file);
	free(bad);
}

/* HTTPS: a throwaway CA; the server is refused without the CA bundle and
 * trusted with it from --ca, FIREBREAK_CA or the config file's "ca". */
static int openssl(const char *const *args)
{
	const char *argv[24] = {"/usr/bin/openssl"};
	size_t n = 1;
	for (; args[n - 1] && n < 23; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	return fbt_run(argv, NULL, NULL, NULL);
}

static void test_https_ca(void **state)
{
	(void)state;
	if (access("/usr/bin/openssl", X_OK) != 0)
		skip();
	char *ca = path_in(C->dir, "ca.pem"), *cakey = path_in(C->dir, "ca.key");
	char *key = path_in(C->dir, "srv.key"), *csr = path_in(C->dir, "srv.csr");
	char *crt = path_in(C->dir, "srv.pem"), *ext = path_in(C->dir, "srv.ext");
	write_file(ext, "subjectAltName=IP:127.0.0.1\n", 28);
	const char *mkca[] = {"req",    "-x509",    "-newkey",
	                      "ec",     "-pkeyopt", "ec_paramgen_curve:P-256",
	                      "-nodes", "-keyout",  cakey,
	                      "-out",   ca,         "-days",
	                      "2",      "-subj",    "/CN=fbctl test CA",
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
	char certarg[1300], keyarg[1300];
	snprintf(certarg, sizeof certarg, "--tls_cert=%s", crt);
	snprintf(keyarg, sizeof keyarg, "--tls_key=%s", key);
	const char *extra[] = {certarg, keyarg, "--controller=0", NULL};
	setenv("FBT_CA", ca, 1);
	struct fbt_server tls;
	assert_int_equal(fbt_server_start(&tls, C->db, extra), 0);
	assert_int_equal(strncmp(tls.url, "https://", 8), 0);
	char *out, *err;
	/* the system store does not know the test CA */
	assert_int_equal(fbctl_env(NULL, &out, &err,
	                           (const char *const[]){"--server", tls.url, "--token", C->soc,
	                                                 "whoami", NULL}),
	                 1);
	has(err, "transport error");
	assert_non_null(strcasestr(err, "certificate"));
	free(out);
	free(err);
	assert_int_equal(fbctl_env(NULL, &out, &err,
	                           (const char *const[]){"--server", tls.url, "--token", C->soc,
	                                                 "--ca", ca, "whoami", NULL}),
	                 0);
	has(out, "sam (role soc");
	free(out);
	free(err);
	char envca[1300];
	snprintf(envca, sizeof envca, "FIREBREAK_CA=%s", ca);
	assert_int_equal(fbctl_env((const char *const[]){envca, NULL}, &out, &err,
	                           (const char *const[]){"--server", tls.url, "--token", C->soc,
	                                                 "channel", "list", NULL}),
	                 0);
	has(out, "seven");
	free(out);
	free(err);
	char *conf = path_in(C->dir, "tls.conf"), text[2600];
	snprintf(text, sizeof text, "server = %s\ntoken = %s\nca = %s\n", tls.url, C->admin, ca);
	write_file(conf, text, strlen(text));
	chmod(conf, 0600);
	assert_int_equal(fbctl_env(NULL, &out, &err,
	                           (const char *const[]){"--config", conf, "whoami", NULL}),
	                 0);
	has(out, "ada (role admin");
	free(out);
	free(err);
	assert_int_equal(fbt_server_stop(&tls, SIGTERM), 0);
	unsetenv("FBT_CA");
	free(conf);
	free(ca);
	free(cakey);
	free(key);
	free(csr);
	free(crt);
	free(ext);
}

/* Gate v2's holdout in fbctl: rollout status and the watch frame say how
 * many agents of each ring the rollout keeps on the previous content. */
static void test_status_holdout(void **state)
{
	(void)state;
	char *out = CTL_OK(0, C->admin, "channel", "create", "12", "twelve");
	free(out);
	char sha[65];
	upload(12, 1, sha);
	enum { N = 60 };
	static struct agent a[N];
	canaries(a, N);
	json_int_t id = start_rollout(
	        sha, "12",
	        (const char *const[]){"--rings", "canary,early", "--policy",
	                              "{\"holdout\":0.1,\"holdout_min\":5,\"min_bake_s\":600}",
	                              NULL});
	char ids[24], path[64];
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	snprintf(path, sizeof path, "/v1/rollouts/%lld", (long long)id);
	json_int_t held = 0, agents = 0;
	for (int k = 0; k < 50 && held == 0; k++) { /* until the snapshot has it */
		json_t *r = http_json("GET", path, C->soc, NULL, 200);
		json_t *h0 = json_array_get(json_object_get(r, "holdout_agents"), 0);
		held = json_integer_value(json_object_get(h0, "held"));
		agents = json_integer_value(json_object_get(h0, "agents"));
		json_decref(r);
		if (!held)
			usleep(100000);
	}
	assert_true(held > 0 && held < agents);
	char want[160];
	snprintf(want, sizeof want,
	         "holdout canary %lld of %lld agents kept on the previous content (the control)",
	         (long long)held, (long long)agents);
	out = CTL_OK(0, C->soc, "rollout", "status", ids);
	has(out, want);
	free(out);
	snprintf(want, sizeof want, ", %lld held out (control)", (long long)held);
	out = CTL_OK(1, C->soc, "rollout", "watch", ids, "--interval", "200ms", "--timeout", "1s");
	has(out, want);
	free(out);
	out = CTL_OK(0, C->soc, "rollout", "halt", ids, "--reason", "end of test");
	free(out);
}

/* A heartbeat of agent a running sha on channel (NULL: nothing there) with
 * its agent CPU p95 in a health object. */
static void health_beat(struct agent *a, int channel, const char *sha, int cpu)
{
	char body[4096], active[128] = "{}";
	if (sha)
		snprintf(active, sizeof active, "{\"%d\":\"%s\"}", channel, sha);
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"boot_id\":\"boot-%lld\",\"uptime_s\":60,"
	         "\"agent_version\":\"test\",\"active\":%s,\"health\":{\"interval_s\":60,"
	         "\"agent_cpu_p95\":%d,\"agent_cpu_mean\":5,\"agent_rss_kb\":40000}}",
	         (long long)a->id, (long long)a->id, active, cpu);
	json_decref(http_json("POST", "/v1/heartbeat", a->token, body, 202));
}

/* Until the current ring's agent_cpu series of the rollout at path has a
 * point with `degraded` treated hosts degraded on it. */
static void wait_cpu_degraded(const char *path, struct agent *a, int n, const char *sha,
                              int degraded)
{
	for (int i = 0; i < 600; i++) {
		for (int k = 0; k < n; k++) /* the first three applied; two stayed */
			health_beat(&a[k], 13, k < 3 ? sha : NULL, degraded && k < 2 ? 97 : 11);
		json_t *j = http_json("GET", path, C->soc, NULL, 200);
		json_t *ring = json_array_get(json_object_get(j, "rings"), 0);
		json_t *pts = json_object_get(
		        json_object_get(json_object_get(ring, "signals"), "agent_cpu"), "points");
		json_t *last = json_array_get(pts, json_array_size(pts) - 1);
		int ok = last && json_integer_value(json_object_get(last, "degraded")) == degraded;
		json_decref(j);
		if (ok)
			return;
		usleep(200000);
	}
	fail_msg("%s: no look with %d degraded on agent_cpu", path, degraded);
}

/* Health signals (issue 17) in fbctl: rollout status and watch show the
 * current ring's worst signal with its degraded counts, and --json carries
 * it; real heartbeats make two of three treated hosts degraded on agent CPU
 * (at a confidence that keeps them from halting it). */
static void test_worst_signal(void **state)
{
	(void)state;
	char *out = CTL_OK(0, C->admin, "channel", "create", "13", "thirteen");
	free(out);
	char sha[65];
	upload(13, 1, sha);
	enum { N = 5 };
	struct agent a[N];
	canaries(a, N);
	json_int_t id = start_rollout(
	        sha, "13",
	        (const char *const[]){"--rings", "canary,early", "--policy",
	                              "{\"holdout\":0,\"min_bake_s\":3600,\"confidence\":0.999}",
	                              NULL});
	char ids[24], path[80];
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	snprintf(path, sizeof path, "/v1/rollouts/%lld/signals", (long long)id);
	for (int k = 0; k < 3; k++)
		agent_event(&a[k], "applied", 13, sha);
	/* the gate looked, nobody degraded: five normal beats (each host's baseline) */
	for (int b = 0; b < 4; b++)
		for (int k = 0; k < N; k++)
			health_beat(&a[k], 13, k < 3 ? sha : NULL, 10 + b % 3);
	wait_cpu_degraded(path, a, N, sha, 0);
	out = CTL_OK(0, C->soc, "rollout", "status", ids);
	has(out, "worst signal   no host degraded on any signal\n");
	free(out);
	out = CTL_OK(0, C->soc, "rollout", "status", ids, "--json");
	json_t *j = parse(out);
	assert_true(json_is_null(json_object_get(j, "worst_signal")));
	json_decref(j);
	free(out);

	/* agents 0 and 1 (treated) keep their CPU at 97 % for three beats */
	wait_cpu_degraded(path, a, N, sha, 2);
	out = CTL_OK(0, C->soc, "rollout", "status", ids);
	has(out, "worst signal   agent CPU: 2 of 3 degraded vs 0 of 2 in control (");
	has(out, " vs 0.00 per 1000 host-hours); log-LR ");
	has(out, " of 8.29\n");
	free(out);
	out = CTL_OK(0, C->soc, "rollout", "status", ids, "--json");
	j = parse(out);
	assert_int_equal(json_integer_value(json_object_get(j, "id")), id); /* the rollout */
	json_t *w = json_object_get(j, "worst_signal");
	assert_string_equal(json_string_value(json_object_get(w, "signal")), "agent_cpu");
	assert_string_equal(json_string_value(json_object_get(w, "ring")), "canary");
	assert_int_equal(json_integer_value(json_object_get(w, "degraded")), 2);
	assert_int_equal(json_integer_value(json_object_get(w, "treated")), 3);
	assert_int_equal(json_integer_value(json_object_get(w, "control_degraded")), 0);
	assert_int_equal(json_integer_value(json_object_get(w, "control")), 2);
	assert_true(json_real_value(json_object_get(w, "statistic")) <
	            json_real_value(json_object_get(w, "threshold")));
	json_decref(j);
	free(out);

	/* watch: the line under the rings; --json: worst_signal in every line */
	out = CTL_OK(1, C->soc, "rollout", "watch", ids, "--interval", "200ms", "--timeout", "1s");
	has(out, "worst signal (canary): agent CPU: 2 of 3 degraded vs 0 of 2 in control (");
	assert_true(strstr(out, ">>   canary") < strstr(out, "worst signal (canary)"));
	free(out);
	out = CTL_OK(1, C->soc, "rollout", "watch", ids, "--interval", "200ms", "--timeout", "1s",
	             "--json");
	out[strcspn(out, "\n")] = '\0';
	j = parse(out);
	w = json_object_get(j, "worst_signal");
	assert_string_equal(json_string_value(json_object_get(w, "signal")), "agent_cpu");
	assert_int_equal(json_integer_value(json_object_get(w, "degraded")), 2);
	assert_non_null(json_object_get(j, "rollout"));
	assert_non_null(json_object_get(j, "exposure"));
	json_decref(j);
	free(out);
	out = CTL_OK(0, C->soc, "rollout", "halt", ids, "--reason", "end of test");
	free(out);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_usage_and_help),
	        cmocka_unit_test(test_controller_status),
	        cmocka_unit_test(test_connection_precedence_and_errors),
	        cmocka_unit_test(test_channels_and_content),
	        cmocka_unit_test(test_rings_pins_tokens_agents_audit),
	        cmocka_unit_test(test_rollout_actions),
	        cmocka_unit_test(test_watch_completed),
	        cmocka_unit_test(test_watch_halted),
	        cmocka_unit_test(test_agent_list_server_filters),
	        cmocka_unit_test(test_policy_bounds_and_emergency),
	        cmocka_unit_test(test_https_ca),
	        cmocka_unit_test(test_status_holdout), /* it fills the canary ring */
	        cmocka_unit_test(test_worst_signal),
	};
	int rc = cmocka_run_group_tests_name("fbctl", tests, setup, teardown);
	curl_global_cleanup();
	return rc;
}
