/* firebreakd configuration: one declarative table of parameters, read from a
 * file, then environment variables (FIREBREAK_<NAME>), then --name=value flags. */
#ifndef FB_CONFIG_H
#define FB_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "fb.h"

struct fb_config {
	char *listen;		 /* address to bind */
	int64_t port;		 /* TCP port */
	int64_t threads;	 /* HTTP worker threads */
	int64_t connection_limit;
	int64_t request_timeout; /* seconds of inactivity before a connection is dropped */
	int64_t shutdown_grace;	 /* seconds to let in-flight requests finish */
	char *db;		 /* libpq connection string */
	int64_t db_pool;	 /* connections in the pool */
	int64_t db_wait_ms;	 /* how long a request waits for a free connection */
	int64_t max_body;	 /* bytes; larger request bodies get 413 */
	int64_t max_upload;	 /* bytes; cap for content uploads */
	char *log_level;
	char *tls_cert; /* PEM file; with tls_key, serve HTTPS */
	char *tls_key;
};

extern struct fb_config cfg;

/* Load defaults, then the config file (--config FILE, FIREBREAK_CONFIG, or
 * /etc/firebreak/firebreakd.conf if it exists), then FIREBREAK_* variables,
 * then flags. Flags are --name=value or --name value anywhere in argv[1..];
 * the remaining arguments are moved to the front of argv and their count
 * stored in *nargs. On failure err names the parameter and the source. */
enum fb_rc config_load(int argc, char **argv, int *nargs, struct fb_err *err) FB_MUSTCHECK;
/* Print every parameter with its default and help text. */
void config_usage(FILE *f);
/* Free the strings held by cfg. */
void config_cleanup(void);

#endif
