/* Process-wide state of firebreakd shared by the handlers. */
#ifndef FB_APP_H
#define FB_APP_H

#include "db.h"
#include "fbschema.h"
#include "fbsign.h"
#include "http.h"

struct app {
	struct db_pool *db;
	int64_t started_ms;           /* wall clock at start-up */
	struct fbsig_key *online_key; /* signs assignments */
	struct fbsig_root *root;      /* the root of trust, verified at start */
	struct cf_registry *registry; /* template types the server understands */
	/* Earlier roots (root_chain directory), oldest first, each verified as
	 * the successor of the one before it and the last followed by root:
	 * served by GET /v1/roots/{version} so agents can rotate step by step. */
	char **chain;
	size_t *chain_len;
	int64_t chain_first; /* version of chain[0] */
	size_t chain_n;
};

/* Load the online key, the root and the template registry named by cfg.
 * On failure err says which file and why. */
enum fb_rc app_load_trust(struct fb_err *err) FB_MUSTCHECK;
void app_free_trust(void);
/* Borrow a pool connection (give it back with db_release(app.db, c)), or
 * reply 503 saying why and return NULL. */
PGconn *app_db_or_reply(struct http_req *req);
/* Bytes of root version v (borrowed) or NULL. */
const char *app_root_version(int64_t v, size_t *len);

extern struct app app;

#endif
