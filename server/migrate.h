/* Schema migrations: numbered SQL files compiled into firebreakd and applied
 * in order, each in its own transaction, recorded in schema_migrations. */
#ifndef FB_MIGRATE_H
#define FB_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

#include "fb.h"

struct migration {
	long version;
	const char *name;
	const char *sql;
};

/* Generated from the files in migrations/ by tools/embed.c, in version order. */
extern const struct migration migrations[];
extern const size_t migrations_count;

/* Highest migration version this binary carries. */
long migrate_latest(void);

/* Apply every missing migration. Refuses (FB_ECONFLICT, err says which) a
 * database that records a migration this binary does not know or under
 * another name. *applied is the number applied now (0 = already current). */
enum fb_rc migrate_apply(PGconn *c, int *applied, struct fb_err *err) FB_MUSTCHECK;

/* FB_OK when the database is exactly at migrate_latest(); FB_ECONFLICT with
 * the reason otherwise (behind, ahead, or unknown migrations). */
enum fb_rc migrate_check(PGconn *c, struct fb_err *err) FB_MUSTCHECK;

#endif
