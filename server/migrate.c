/* Schema migrations: apply the compiled-in SQL files in order, one
 * transaction each, serialised across processes by an advisory lock. */
#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"

#define MIGRATE_LOCK_KEY "7460298117" /* arbitrary, firebreak-specific */

long migrate_latest(void)
{
	return migrations_count ? migrations[migrations_count - 1].version : 0;
}

static const struct migration *find(long version)
{
	for (size_t i = 0; i < migrations_count; i++)
		if (migrations[i].version == version)
			return &migrations[i];
	return NULL;
}

/* Compare what the database records with what we carry. *current is the
 * highest recorded version (0 if none or no table). */
static enum fb_rc inspect(PGconn *c, long *current, struct fb_err *err)
{
	*current = 0;
	PGresult *r =
	        db_exec(c, err, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL);
	if (!r)
		return FB_EDB;
	int exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!exists)
		return FB_OK;
	r = db_exec(c, err, "SELECT version, name FROM schema_migrations ORDER BY version", 0,
	            NULL);
	if (!r)
		return FB_EDB;
	enum fb_rc rc = FB_OK;
	for (int i = 0; i < PQntuples(r); i++) {
		long v = strtol(PQgetvalue(r, i, 0), NULL, 10);
		const char *name = PQgetvalue(r, i, 1);
		const struct migration *m = find(v);
		if (!m) {
			fb_err_set(err,
			           "database has migration %04ld_%s, which this firebreakd does "
			           "not know "
			           "(it carries up to %04ld); upgrade firebreakd",
			           v, name, migrate_latest());
			rc = FB_ECONFLICT;
			goto out;
		}
		if (strcmp(m->name, name) != 0) {
			fb_err_set(err,
			           "database records migration %04ld as '%s' but this firebreakd "
			           "has '%s'",
			           v, name, m->name);
			rc = FB_ECONFLICT;
			goto out;
		}
		*current = v;
	}
out:
	PQclear(r);
	return rc;
}

enum fb_rc migrate_apply(PGconn *c, int *applied, struct fb_err *err)
{
	*applied = 0;
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	enum fb_rc rc = db_cmd(c, err,
	                       "CREATE TABLE IF NOT EXISTS schema_migrations ("
	                       " version integer PRIMARY KEY, name text NOT NULL,"
	                       " applied_at timestamptz NOT NULL DEFAULT now())");
	if (rc)
		return rc;
	const char *key[] = {MIGRATE_LOCK_KEY};
	PGresult *r = db_exec(c, err, "SELECT pg_advisory_lock($1::bigint)", 1, key);
	if (!r)
		return FB_EDB;
	PQclear(r);

	long current;
	rc = inspect(c, &current, err);
	if (rc)
		goto out;
	for (size_t i = 0; i < migrations_count; i++) {
		const struct migration *m = &migrations[i];
		if (m->version <= current)
			continue;
		rc = db_cmd(c, err, "BEGIN");
		if (rc)
			goto out;
		PGresult *mr = PQexec(c, m->sql);
		ExecStatusType st = PQresultStatus(mr);
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			fb_err_set(err, "migration %04ld_%s failed: %s", m->version, m->name,
			           PQresultErrorMessage(mr));
			PQclear(mr);
			PQclear(PQexec(c, "ROLLBACK"));
			rc = FB_EDB;
			goto out;
		}
		PQclear(mr);
		char vbuf[24];
		snprintf(vbuf, sizeof vbuf, "%ld", m->version);
		const char *p[] = {vbuf, m->name};
		r = db_exec(c, err, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
		            2, p);
		if (!r) {
			PQclear(PQexec(c, "ROLLBACK"));
			rc = FB_EDB;
			goto out;
		}
		PQclear(r);
		rc = db_cmd(c, err, "COMMIT");
		if (rc)
			goto out;
		(*applied)++;
		log_info("applied migration %04ld_%s", m->version, m->name);
	}
out:
	r = db_exec(c, NULL, "SELECT pg_advisory_unlock($1::bigint)", 1, key);
	PQclear(r);
	return rc;
}

enum fb_rc migrate_check(PGconn *c, struct fb_err *err)
{
	long current;
	enum fb_rc rc = inspect(c, &current, err);
	if (rc)
		return rc;
	if (current != migrate_latest()) {
		fb_err_set(err,
		           "database schema is at migration %ld, this firebreakd needs %ld; run "
		           "'firebreakd migrate'",
		           current, migrate_latest());
		return FB_ECONFLICT;
	}
	return FB_OK;
}
