/* Integration-test harness: real PostgreSQL, real firebreakd, real HTTP. */
#include "fbt.h"
#include "fb.h"
#include "fbt_world.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "fbt: %s\n", what);
	exit(2);
}

static const char *env_or_die(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v) {
		fprintf(stderr, "fbt: %s is not set; run the tests through tests/run.sh\n", name);
		exit(2);
	}
	return v;
}

const char *fbt_pg_admin(void)
{
	return env_or_die("FBT_PG");
}

static char *with_dbname(const char *dbname)
{
	const char *admin = fbt_pg_admin();
	const char *p = strstr(admin, " dbname=");
	size_t n = p ? (size_t)(p - admin) : strlen(admin);
	char *s = malloc(n + strlen(dbname) + 16);
	if (!s)
		die("out of memory");
	snprintf(s, n + strlen(dbname) + 16, "%.*s dbname=%s", (int)n, admin, dbname);
	return s;
}

int fbt_db_exec(const char *db, const char *sql)
{
	PGconn *c = PQconnectdb(db);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "fbt: connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "fbt: %s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

long fbt_db_long(const char *db, const char *sql)
{
	PGconn *c = PQconnectdb(db);
	long v = -1;
	if (PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 &&
		    !PQgetisnull(r, 0, 0))
			v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
		else if (PQresultStatus(r) != PGRES_TUPLES_OK)
			fprintf(stderr, "fbt: %s: %s", sql, PQresultErrorMessage(r));
		PQclear(r);
	}
	PQfinish(c);
	return v;
}

long fbt_db_longf(const char *db, const char *fmt, ...)
{
	char sql[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof sql) {
		fprintf(stderr, "fbt: query longer than %zu bytes: %.80s...\n", sizeof sql, sql);
		return -1;
	}
	return fbt_db_long(db, sql);
}

char *fbt_db_new(void)
{
	static int counter;
	char name[64], sql[160];
	snprintf(name, sizeof name, "fbt_%ld_%d", (long)getpid(), ++counter);
	snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE fbt_template", name);
	if (fbt_db_exec(fbt_pg_admin(), sql))
		die("cannot create a test database (is the cluster up?)");
	return with_dbname(name);
}

int fbt_pg_restart(void)
{
	const char *dir = env_or_die("FBT_PGDIR");
	char script[1024];
	snprintf(script, sizeof script, "%s/tests/pg.sh", env_or_die("FB_SRC"));
	const char *argv[] = {script, "restart", dir, NULL};
	return fbt_run(argv, NULL, NULL, NULL);
}

const char *fbt_bin(const char *name)
{
	static char bufs[8][1024];
	static int i;
	char *b = bufs[i++ % 8];
	snprintf(b, 1024, "%s/%s", env_or_die("FB_BIN"), name);
	return b;
}

char *fbt_tmpdir(const char *tag)
{
	static int counter;
	char *p = malloc(1024);
	if (!p)
		die("out of memory");
	snprintf(p, 1024, "%s/%s.%ld.%d", env_or_die("FBT_WORK"), tag, (long)getpid(), ++counter);
	if (mkdir(p, 0755) && errno != EEXIST)
		die("mkdir failed");
	return p;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sa;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) ||
	    getsockname(fd, (struct sockaddr *)&sa, &len))
		die("cannot find a free port");
	int port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int fbt_server_start(struct fbt_server *s, const char *db, const char *const *extra)
{
	memset(s, 0, sizeof *s);
	s->port = free_port();
	snprintf(s->db, sizeof s->db, "%s", db);
	static int counter;
	snprintf(s->log, sizeof s->log, "%s/firebreakd.%ld.%d.log", env_or_die("FBT_WORK"),
	         (long)getpid(), ++counter);
	const char *argv[FBT_MAX_ARGS + 8];
	char portarg[32], dbarg[600];
	snprintf(portarg, sizeof portarg, "--port=%d", s->port);
	snprintf(dbarg, sizeof dbarg, "--db=%s", db);
	int n = 0;
	argv[n++] = fbt_bin("firebreakd");
	argv[n++] = "serve";
	argv[n++] = portarg;
	argv[n++] = dbarg;
	argv[n++] = "--log_level=debug";
	int has_root = 0;
	for (int i = 0; extra && extra[i] && i < FBT_MAX_ARGS; i++) {
		argv[n++] = extra[i];
		if (strncmp(extra[i], "--tls_cert=", 11) == 0)
			s->tls = 1;
		if (strncmp(extra[i], "--root=", 7) == 0)
			has_root = 1;
	}
	if (!has_root) /* the default world's trust material */
		for (int i = 0; fbt_world_default()->args[i]; i++)
			argv[n++] = fbt_world_default()->args[i];
	argv[n] = NULL;
	snprintf(s->url, sizeof s->url, "%s://127.0.0.1:%d", s->tls ? "https" : "http", s->port);

	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	s->pid = pid;
	for (int i = 0; i < 300; i++) {
		struct fbt_resp r;
		if (fbt_http(s, "GET", "/healthz", NULL, NULL, 0, NULL, &r) == 0 &&
		    r.status == 200) {
			fbt_resp_free(&r);
			return 0;
		}
		fbt_resp_free(&r);
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			fprintf(stderr, "fbt: firebreakd exited during start-up; log %s\n", s->log);
			s->pid = 0;
			return -1;
		}
		sleep_ms(50);
	}
	fprintf(stderr, "fbt: firebreakd did not become healthy; log %s\n", s->log);
	return -1;
}

int fbt_server_wait_ready(const struct fbt_server *s)
{
	for (int i = 0; i < 400; i++) {
		struct fbt_resp r;
		int ok = fbt_http(s, "GET", "/readyz", NULL, NULL, 0, NULL, &r) == 0 &&
		         r.status == 200;
		fbt_resp_free(&r);
		if (ok)
			return 0;
		sleep_ms(50);
	}
	fprintf(stderr, "fbt: firebreakd did not become ready; log %s\n", s->log);
	return -1;
}

int fbt_server_stop(struct fbt_server *s, int sig)
{
	if (s->pid <= 0)
		return -1;
	kill(s->pid, sig);
	int st = 0;
	for (int i = 0; i < 3000; i++) {
		pid_t w = waitpid(s->pid, &st, WNOHANG);
		if (w == s->pid)
			break;
		if (i == 2999) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &st, 0);
		}
		sleep_ms(10);
	}
	s->pid = 0;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

struct sink {
	char *p;
	size_t n;
};

static size_t sink_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct sink *s = ud;
	size_t add = size * nmemb;
	char *np = realloc(s->p, s->n + add + 1);
	if (!np)
		return 0;
	memcpy(np + s->n, data, add);
	s->n += add;
	np[s->n] = '\0';
	s->p = np;
	return add;
}

int fbt_http(const struct fbt_server *s, const char *method, const char *path, const char *token,
             const char *body, size_t len, const char *const *headers, struct fbt_resp *out)
{
	return fbt_http_from(s, NULL, method, path, token, body, len, headers, out);
}

int fbt_http_from(const struct fbt_server *s, const char *source, const char *method,
                  const char *path, const char *token, const char *body, size_t len,
                  const char *const *headers, struct fbt_resp *out)
{
	memset(out, 0, sizeof *out);
	CURL *c = curl_easy_init();
	if (!c)
		return -1;
	char url[2048], auth[256];
	snprintf(url, sizeof url, "%s%s", s->url, path);
	struct curl_slist *h = NULL;
	if (token) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	int has_ct = 0;
	for (int i = 0; headers && headers[i]; i++) {
		h = curl_slist_append(h, headers[i]);
		if (strncasecmp(headers[i], "content-type:", 13) == 0)
			has_ct = 1;
	}
	if (body && !has_ct)
		h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	struct sink b = {0}, hd = {0};
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &hd);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	if (source)
		curl_easy_setopt(c, CURLOPT_INTERFACE, source);
	const char *ca = getenv("FBT_CA");
	if (s->tls && ca)
		curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	CURLcode rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	out->body = b.p ? b.p : calloc(1, 1);
	out->len = b.n;
	out->headers = hd.p ? hd.p : calloc(1, 1);
	return rc == CURLE_OK ? 0 : -1;
}

void fbt_resp_free(struct fbt_resp *r)
{
	free(r->body);
	free(r->headers);
	r->body = r->headers = NULL;
}

json_t *fbt_resp_json(const struct fbt_resp *r)
{
	return r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
}

const char *fbt_error_code(const struct fbt_resp *r)
{
	static char code[64];
	code[0] = '\0';
	json_t *j = fbt_resp_json(r);
	const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
	if (c)
		snprintf(code, sizeof code, "%s", c);
	json_decref(j);
	return code;
}

const char *fbt_jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

const char *fbt_header(const struct fbt_resp *r, const char *name, char *buf, size_t n)
{
	size_t nl = strlen(name);
	for (const char *line = r->headers; line && *line;) {
		const char *end = strstr(line, "\r\n");
		size_t ll = end ? (size_t)(end - line) : strlen(line);
		if (ll > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (*v == ' ')
				v++;
			snprintf(buf, n, "%.*s", (int)(ll - (size_t)(v - line)), v);
			return buf;
		}
		if (!end)
			break;
		line = end + 2;
	}
	return NULL;
}

static char *read_all_fd(int fd)
{
	struct sink s = {0};
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		sink_write(buf, 1, (size_t)n, &s);
	return s.p ? s.p : calloc(1, 1);
}

int fbt_run(const char *const *argv, const char *const *env, char **out, char **err)
{
	if (out)
		*out = NULL;
	if (err)
		*err = NULL;
	char opath[] = "/tmp/fbt-out.XXXXXX", epath[] = "/tmp/fbt-err.XXXXXX";
	int ofd = mkstemp(opath), efd = mkstemp(epath);
	if (ofd < 0 || efd < 0)
		die("mkstemp failed");
	unlink(opath);
	unlink(epath);
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(ofd, 1);
		dup2(efd, 2);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		for (int i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	lseek(ofd, 0, SEEK_SET);
	lseek(efd, 0, SEEK_SET);
	if (out)
		*out = read_all_fd(ofd);
	if (err)
		*err = read_all_fd(efd);
	close(ofd);
	close(efd);
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

char *fbt_token(const char *db, const char *role, const char *name)
{
	char dbarg[600];
	snprintf(dbarg, sizeof dbarg, "--db=%s", db);
	const char *argv[] = {fbt_bin("firebreakd"),
	                      "token",
	                      "create",
	                      "--role",
	                      role,
	                      "--name",
	                      name,
	                      dbarg,
	                      NULL};
	char *out = NULL, *err = NULL;
	int rc = fbt_run(argv, NULL, &out, &err);
	if (rc != 0) {
		fprintf(stderr, "fbt: token create failed (%d): %s\n", rc, err);
		free(out);
		free(err);
		return NULL;
	}
	free(err);
	out[strcspn(out, "\n")] = '\0';
	return out;
}

char *fbt_db_at_migration(const char *prefix, int n)
{
	char name[96], sql[256];
	snprintf(name, sizeof name, "%s_%ld", prefix, (long)getpid());
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
	const char *admin = fbt_pg_admin();
	const char *at = strstr(admin, " dbname=");
	if (!at || fbt_db_exec(admin, sql))
		return NULL;
	char *db = malloc(1024);
	if (!db)
		return NULL;
	snprintf(db, 1024, "%.*s dbname=%s", (int)(at - admin), admin, name);
	if (n <= 0)
		return db;
	char pattern[1100];
	snprintf(pattern, sizeof pattern, "%s/migrations/*.sql",
	         getenv("FB_SRC") ? getenv("FB_SRC") : ".");
	glob_t g;
	int globbed = glob(pattern, 0, NULL, &g) == 0;
	int ok = globbed && g.gl_pathc >= (size_t)n &&
	         fbt_db_exec(db, "CREATE TABLE schema_migrations (version integer PRIMARY KEY, "
	                         "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT "
	                         "now())") == 0;
	for (int i = 0; ok && i < n; i++) { /* glob sorts: 0001_..., 0002_... */
		unsigned char *text = NULL;
		size_t len;
		const char *base = strrchr(g.gl_pathv[i], '/') + 1;
		ok = fb_file_read(g.gl_pathv[i], 1 << 20, &text, &len) == FB_OK &&
		     fbt_db_exec(db, (const char *)text) == 0;
		free(text);
		/* "0008_users.sql": version 8, name "users" */
		snprintf(sql, sizeof sql,
		         "INSERT INTO schema_migrations (version, name) VALUES (%d, '%.*s')", i + 1,
		         (int)(strlen(base) - 9), base + 5);
		ok = ok && fbt_db_exec(db, sql) == 0;
		if (!ok)
			fprintf(stderr, "fbt: cannot apply %s\n", g.gl_pathv[i]);
	}
	if (globbed)
		globfree(&g);
	if (!ok) {
		free(db);
		return NULL;
	}
	return db;
}
