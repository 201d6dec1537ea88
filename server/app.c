/* Helpers every handler shares: borrowing a database connection. */
#include "app.h"

#include "config.h"

PGconn *app_db_or_reply(struct http_req *req)
{
	const char *why;
	PGconn *c = db_acquire(app.db, (int)cfg.db_wait_ms, &why);
	if (!c)
		http_unavailable(req, why);
	return c;
}
