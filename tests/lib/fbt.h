/* Integration-test harness: fresh databases from the migrated template in
 * the throwaway cluster that tests/run.sh started, the real firebreakd as a
 * child process on a free port, HTTP through libcurl, and small helpers. */
#ifndef FBT_H
#define FBT_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#define FBT_MAX_ARGS 32

struct fbt_server {
	pid_t pid;
	int port;
	char url[128];
	char db[512];
	char log[512];
	int tls;
};

struct fbt_resp {
	long status;
	char *body; /* NUL-terminated; free with fbt_resp_free */
	size_t len;
	char *headers; /* raw response headers */
};

/* Connection string of a new database cloned from the migrated template;
 * caller frees. Aborts the test program if the cluster is not there. */
char *fbt_db_new(void);
/* Connection string of a new database named PREFIX_PID holding the schema as
 * it was after the first n files of migrations/ (in order, recorded in
 * schema_migrations the way firebreakd migrate records them; n 0: empty),
 * for testing a migration on the data of its time; caller frees. NULL on
 * any error (said on stderr). */
char *fbt_db_at_migration(const char *prefix, int n);
/* Connection string of the cluster's maintenance database (borrowed). */
const char *fbt_pg_admin(void);
/* Restart the whole cluster (stop, start). 0 on success. */
int fbt_pg_restart(void);

/* Start firebreakd serve on a free port against db, with extra "--k=v"
 * arguments (NULL-terminated list, may be NULL); waits until /healthz
 * answers. 0 on success. */
int fbt_server_start(struct fbt_server *s, const char *db, const char *const *extra);
/* Wait until /readyz answers 200 (database reachable, schema current,
 * snapshot loaded), up to 20 s. 0 when ready. */
int fbt_server_wait_ready(const struct fbt_server *s);
/* Send sig and wait (up to 30 s, then SIGKILL). Returns the exit status, or
 * 128+signal if it died by a signal. */
int fbt_server_stop(struct fbt_server *s, int sig);

/* HTTP request to the server; token and body may be NULL. Extra headers as
 * "Name: value" strings, NULL-terminated (may be NULL). 0 on transport
 * success (any status). */
int fbt_http(const struct fbt_server *s, const char *method, const char *path, const char *token,
             const char *body, size_t len, const char *const *headers, struct fbt_resp *out);
/* The same from the local address source (e.g. "127.0.0.2": every
 * 127.0.0.0/8 address reaches the server on loopback), so that the server
 * sees another peer; NULL: the default. */
int fbt_http_from(const struct fbt_server *s, const char *source, const char *method,
                  const char *path, const char *token, const char *body, size_t len,
                  const char *const *headers, struct fbt_resp *out);
void fbt_resp_free(struct fbt_resp *r);
/* Parse r->body as JSON (NULL if it is not). Caller decrefs. */
json_t *fbt_resp_json(const struct fbt_resp *r);
/* The error code of a {"error":{"code":...}} body, or "" (borrowed from a
 * static buffer, valid until the next call). */
const char *fbt_error_code(const struct fbt_resp *r);
/* The string member k of object o, or "" when o is not an object or the
 * member is missing or not a string (borrowed from o). */
const char *fbt_jstr(const json_t *o, const char *k);
/* Value of a response header (case-insensitive), copied into buf; NULL. */
const char *fbt_header(const struct fbt_resp *r, const char *name, char *buf, size_t n);

/* Create an API token with the real CLI (firebreakd token create); caller frees. */
char *fbt_token(const char *db, const char *role, const char *name);

/* Run a query and return the first column of the first row as a long
 * (e.g. SELECT count(*) ...); -1 on error. */
long fbt_db_long(const char *db, const char *sql);
/* The same with the query formatted printf-style (up to 4 KiB; longer is
 * an error): -1 on error. */
long fbt_db_longf(const char *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Run a statement; 0 on success. */
int fbt_db_exec(const char *db, const char *sql);

/* Run a program (argv[0] is a path), capture stdout and stderr (caller
 * frees; may pass NULL to discard). Returns the exit status, or 128+signal. */
int fbt_run(const char *const *argv, const char *const *env, char **out, char **err);

/* Path of a built binary: $FB_BIN/name (static buffer per call index). */
const char *fbt_bin(const char *name);
/* A fresh directory under the run's work directory; caller frees. */
char *fbt_tmpdir(const char *tag);

#endif
