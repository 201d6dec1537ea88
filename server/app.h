/* Process-wide state of firebreakd shared by the handlers. */
#ifndef FB_APP_H
#define FB_APP_H

#include "db.h"
#include "fbschema.h"
#include "fbsign.h"

struct app {
	struct db_pool *db;
	int64_t started_ms;           /* wall clock at start-up */
	struct fbsig_key *online_key; /* signs assignments */
	struct fbsig_root *root;      /* the root of trust, verified at start */
	struct cf_registry *registry; /* template types the server understands */
};

/* Load the online key, the root and the template registry named by cfg.
 * On failure err says which file and why. */
enum fb_rc app_load_trust(struct fb_err *err) FB_MUSTCHECK;
void app_free_trust(void);

extern struct app app;

#endif
