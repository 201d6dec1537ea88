/* firebreakd configuration: one declarative table of parameters, read from a
 * file, then environment variables (FIREBREAK_<NAME>), then --name=value flags. */
#ifndef FB_CONFIG_H
#define FB_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "fb.h"

struct fb_config {
	char *listen;    /* address to bind */
	int64_t port;    /* TCP port */
	int64_t threads; /* HTTP worker threads */
	int64_t connection_limit;
	int64_t request_timeout; /* seconds of inactivity before a connection is dropped */
	int64_t shutdown_grace;  /* seconds to let in-flight requests finish */
	char *db;                /* libpq connection string */
	int64_t db_pool;         /* connections in the pool */
	int64_t db_wait_ms;      /* how long a request waits for a free connection */
	int64_t max_body;        /* bytes; larger request bodies get 413 */
	int64_t max_upload;      /* bytes; cap for content uploads */
	char *log_level;
	char *tls_cert; /* PEM file; with tls_key, serve HTTPS */
	char *tls_key;
	char *online_key; /* secret key file signing assignments */
	char *online_key_passphrase_file;
	char *root;                     /* the signed root envelope agents pin */
	char *root_chain;               /* directory of earlier roots: <version>.json */
	char *templates;                /* template registry directory */
	char *corpus;                   /* preflight event corpus directory */
	int64_t preflight_wall_ms;      /* preflight time limit */
	int64_t assignment_ttl;         /* seconds an assignment stays valid */
	int64_t heartbeat_flush_ms;     /* batch interval of the heartbeat flusher */
	int64_t signal_warmup;          /* health samples before a host's verdicts (signals.h) */
	int64_t signal_k;               /* consecutive beats above threshold; 0 = defaults */
	int64_t snapshot_check_ms;      /* periodic snapshot freshness check */
	int64_t controller_interval_ms; /* gate evaluation interval */
	int64_t controller_lease_ms;    /* lease length; 0 = 2 x controller_interval_ms */
	int64_t restart_grace_s;        /* silence not counted this long after start-up */
	char *webhook_url;              /* POSTed on halts and reverts; empty = off */
	int64_t controller;             /* 1 = take part in controller election */
	/* single sign-on through a trusted authenticating proxy (sso.h) */
	char *sso_proxies;       /* addresses/CIDRs the identity headers are taken from */
	char *sso_secret_file;   /* the shared secret the proxy sends */
	char *sso_secret_header; /* the header that carries it */
	char *sso_user_header;   /* the asserted user name */
	char *sso_email_header;  /* the asserted e-mail address */
	char *sso_match;         /* "email" or "name": which one names the user */
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
