/* PostgreSQL connection pool with reconnect, and statement helpers. */
#include "db.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static uint64_t g_errors; /* failed statements, all pools */

struct db_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *conninfo;
	int n;
	PGconn **conns;
	unsigned char *busy;
	struct db_pool_stats stats;
};

enum fb_rc db_pool_new(const char *conninfo, int n, struct db_pool **out)
{
	*out = NULL;
	struct db_pool *p = calloc(1, sizeof *p);
	if (!p)
		return FB_ENOMEM;
	p->conninfo = strdup(conninfo);
	p->conns = calloc((size_t)n, sizeof *p->conns);
	p->busy = calloc((size_t)n, 1);
	if (!p->conninfo || !p->conns || !p->busy) {
		free(p->conninfo);
		free(p->conns);
		free(p->busy);
		free(p);
		return FB_ENOMEM;
	}
	p->n = n;
	p->stats.size = n;
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	*out = p;
	return FB_OK;
}

void db_pool_free(struct db_pool *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->n; i++)
		if (p->conns[i])
			PQfinish(p->conns[i]);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->conninfo);
	free(p->conns);
	free(p->busy);
	free(p);
}

static void notice_quiet(void *arg, const char *msg)
{
	(void)arg;
	log_debug("postgres: %s", msg);
}

/* Make slot i usable: open it, or notice that the server went away (the
 * socket reads EOF after a restart) and reopen it. Called without the lock;
 * the slot is reserved by the caller. */
static int slot_ready(struct db_pool *p, int i)
{
	PGconn *c = p->conns[i];
	if (c && PQstatus(c) == CONNECTION_OK && PQconsumeInput(c) &&
	    PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE)
		return 1;
	if (c) {
		PQfinish(c);
		p->conns[i] = NULL;
		__atomic_add_fetch(&p->stats.reconnects, 1, __ATOMIC_RELAXED);
	}
	c = PQconnectdb(p->conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		log_warn("database connection failed: %s", PQerrorMessage(c));
		PQfinish(c);
		return 0;
	}
	PQsetNoticeProcessor(c, notice_quiet, NULL);
	p->conns[i] = c;
	return 1;
}

PGconn *db_acquire(struct db_pool *p, int wait_ms, const char **why)
{
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += wait_ms / 1000;
	deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	int slot = -1, waited = 0;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		for (int i = 0; i < p->n; i++) {
			if (!p->busy[i]) {
				slot = i;
				break;
			}
		}
		if (slot >= 0)
			break;
		waited = 1;
		if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT) {
			p->stats.timeouts++;
			pthread_mutex_unlock(&p->mu);
			*why = "no free database connection";
			return NULL;
		}
	}
	p->busy[slot] = 1;
	p->stats.busy++;
	if (waited)
		p->stats.waits++;
	pthread_mutex_unlock(&p->mu);

	if (!slot_ready(p, slot)) {
		pthread_mutex_lock(&p->mu);
		p->busy[slot] = 0;
		p->stats.busy--;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		*why = "database unreachable";
		return NULL;
	}
	*why = NULL;
	return p->conns[slot];
}

void db_release(struct db_pool *p, PGconn *c)
{
	if (!c)
		return;
	/* A connection left inside a transaction (a handler's bug or a failed
	 * COMMIT) is rolled back so the next user starts clean. */
	if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
		PGresult *r = PQexec(c, "ROLLBACK");
		PQclear(r);
	}
	pthread_mutex_lock(&p->mu);
	for (int i = 0; i < p->n; i++) {
		if (p->conns[i] == c) {
			p->busy[i] = 0;
			p->stats.busy--;
			break;
		}
	}
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

void db_pool_get_stats(struct db_pool *p, struct db_pool_stats *out)
{
	pthread_mutex_lock(&p->mu);
	*out = p->stats;
	out->reconnects = __atomic_load_n(&p->stats.reconnects, __ATOMIC_RELAXED);
	out->errors = __atomic_load_n(&g_errors, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&p->mu);
}

PGresult *db_exec_state(PGconn *c, struct fb_err *err, char sqlstate[6], const char *sql,
                        int nparams, const char *const *params)
{
	if (sqlstate)
		sqlstate[0] = '\0';
	PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	__atomic_add_fetch(&g_errors, 1, __ATOMIC_RELAXED);
	const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
	fb_err_set(err, "%s", (msg && *msg) ? msg : "database error");
	if (err) {
		size_t n = strlen(err->msg);
		while (n && err->msg[n - 1] == '\n')
			err->msg[--n] = '\0';
	}
	if (sqlstate && r) {
		const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (code)
			snprintf(sqlstate, 6, "%s", code);
	}
	PQclear(r);
	return NULL;
}

PGresult *db_exec(PGconn *c, struct fb_err *err, const char *sql, int nparams,
                  const char *const *params)
{
	return db_exec_state(c, err, NULL, sql, nparams, params);
}

enum fb_rc db_cmd(PGconn *c, struct fb_err *err, const char *sql)
{
	PGresult *r = db_exec(c, err, sql, 0, NULL);
	if (!r)
		return FB_EDB;
	PQclear(r);
	return FB_OK;
}
