/* PostgreSQL access: a fixed pool of libpq connections that notices a
 * restarted database and reconnects, plus small result helpers. */
#ifndef FB_DB_H
#define FB_DB_H

#include <libpq-fe.h>
#include <stdint.h>

#include "fb.h"

struct db_pool;

struct db_pool_stats {
	int size;
	int busy;
	uint64_t waits;      /* acquisitions that had to wait */
	uint64_t timeouts;   /* acquisitions that gave up */
	uint64_t reconnects; /* connections re-established */
	uint64_t errors;     /* failed statements */
};

/* Create a pool of n connections to conninfo. Connections are opened lazily,
 * so a pool can be created while the database is down. Caller frees with
 * db_pool_free(). */
enum fb_rc db_pool_new(const char *conninfo, int n, struct db_pool **out) FB_MUSTCHECK;
void db_pool_free(struct db_pool *p);

/* Borrow a healthy connection, waiting up to wait_ms for one to be free.
 * Reconnects a connection that went bad. NULL when none can be had (busy or
 * database unreachable); *why (static string) says which. Give it back with
 * db_release(). */
PGconn *db_acquire(struct db_pool *p, int wait_ms, const char **why);
void db_release(struct db_pool *p, PGconn *c);
void db_pool_get_stats(struct db_pool *p, struct db_pool_stats *out);

/* Run a parameterised statement ($1..$n, text parameters, NULL = SQL NULL).
 * Returns the result when it is PGRES_COMMAND_OK or PGRES_TUPLES_OK (caller
 * PQclear()s it), NULL otherwise with the server's message in err. */
PGresult *db_exec(PGconn *c, struct fb_err *err, const char *sql, int nparams,
                  const char *const *params);
/* Same, and on failure copies the SQLSTATE (e.g. "23505") into sqlstate
 * (6 bytes) when it is not NULL. */
PGresult *db_exec_state(PGconn *c, struct fb_err *err, char sqlstate[6], const char *sql,
                        int nparams, const char *const *params);
/* Run statements that return nothing (BEGIN, COMMIT, ...). */
enum fb_rc db_cmd(PGconn *c, struct fb_err *err, const char *sql) FB_MUSTCHECK;

#endif
