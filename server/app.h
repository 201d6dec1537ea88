/* Process-wide state of firebreakd shared by the handlers. */
#ifndef FB_APP_H
#define FB_APP_H

#include "db.h"

struct app {
	struct db_pool *db;
	int64_t started_ms; /* wall clock at start-up */
};

extern struct app app;

#endif
