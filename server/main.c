/* firebreakd: arguments, subcommands, signals and the server's life cycle. */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents.h"
#include "app.h"
#include "auth.h"
#include "config.h"
#include "content.h"
#include "controller.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "migrate.h"
#include "signals.h"
#include "snapshot.h"
#include "sso.h"
#include "stream.h"
#include "telemetry.h"
#include "tokens.h"
#include "users.h"

#ifndef FB_VERSION
#define FB_VERSION "0.1.0"
#endif

struct app app;

static void usage(FILE *f)
{
	fprintf(f, "usage: firebreakd [serve] [--name=value ...]   run the server (default)\n"
	           "       firebreakd migrate [--db CONNINFO]      apply database migrations\n"
	           "       firebreakd token create|list|revoke ...  manage API tokens\n"
	           "       firebreakd user create|list|disable|enable ...  manage users\n"
	           "       firebreakd routes                        print the route table (JSON "
	           "lines)\n"
	           "       firebreakd version | --help\n\n");
	config_usage(f);
}

static int cmd_migrate(void)
{
	PGconn *c = PQconnectdb(cfg.db);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "firebreakd migrate: cannot connect to the database: %s",
		        PQerrorMessage(c));
		PQfinish(c);
		return 1;
	}
	int applied;
	struct fb_err err;
	enum fb_rc rc = migrate_apply(c, &applied, &err);
	PQfinish(c);
	if (rc) {
		fprintf(stderr, "firebreakd migrate: %s\n", err.msg);
		return 1;
	}
	if (applied)
		printf("applied %d migration(s); schema is at %ld\n", applied, migrate_latest());
	else
		printf("schema is current at %ld; nothing to do\n", migrate_latest());
	return 0;
}

/* The route table as JSON lines: what the OpenAPI test checks against. */
static int cmd_routes(void)
{
	static const char *mn[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};
	static const char *rn[] = {"agent", "release", "soc", "admin"};
	for (size_t i = 0; i < routes_count; i++) {
		const char *method = "?";
		for (int k = 0; k < 5; k++)
			if (routes[i].method == (enum http_method)(1 << k))
				method = mn[k];
		json_t *roles = json_array();
		for (int k = 0; k < 4; k++)
			if (routes[i].roles & (1u << k))
				json_array_append_new(roles, json_string(rn[k]));
		json_t *o =
		        json_pack("{s:s,s:s,s:o,s:b}", "method", method, "path", routes[i].pattern,
		                  "roles", roles, "tenant", (routes[i].roles & ROUTE_TENANT) != 0);
		char *line = json_dumps(o, JSON_COMPACT);
		printf("%s\n", line);
		free(line);
		json_decref(o);
	}
	return 0;
}

static int cmd_serve(void)
{
	int status = 1;
	struct fb_err err;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Block before any thread starts, so every thread inherits the mask and
	 * only sigwait below sees these signals. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	app.started_ms = fb_now_ms();
	/* The metrics' labels of the route table ("GET /v1/poll"). */
	char **labels = calloc(routes_count + 1, sizeof *labels);
	static const char *const mnames[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};
	for (size_t i = 0; labels && i < routes_count; i++) {
		const char *mn = "?";
		for (int k = 0; k < 5; k++)
			if (routes[i].method == (enum http_method)(1 << k))
				mn = mnames[k];
		size_t n = strlen(mn) + strlen(routes[i].pattern) + 2;
		if ((labels[i] = malloc(n)))
			snprintf(labels[i], n, "%s %s", mn, routes[i].pattern);
	}
	int bad = !labels || db_pool_new(cfg.db, (int)cfg.db_pool, &app.db) ||
	          metrics_init((const char *const *)labels, routes_count);
	for (size_t i = 0; labels && i < routes_count; i++)
		free(labels[i]);
	free(labels);
	if (bad) {
		log_error("out of memory at start-up");
		goto out;
	}
	if (app_load_trust(&err) || sso_init(&err)) {
		log_error("%s", err.msg);
		goto out;
	}
	/* The agent table asks the snapshot where an agent belongs, for its
	 * ring's name and for a new publication (on revocation). */
	static const struct agents_snapshot agents_snapshot = {
	        .place = snapshot_agent_place,
	        .ring = snapshot_agent_ring,
	        .publish = snapshot_publish,
	};
	agents_set_snapshot(&agents_snapshot);
	/* Database-dependent start-up happens in the snapshot thread, which
	 * retries until the database is reachable and current and the
	 * agent-token key is loaded; until then /readyz and the agent endpoints
	 * answer 503. */
	struct sig_thresholds st;
	sig_thresholds_default(&st);
	for (int i = 0; i < SIG_COUNT; i++) {
		if (cfg.signal_k > 0)
			st.k[i] = (int)cfg.signal_k;
		if (cfg.signal_warmup > 0)
			st.warmup[i] = (int)cfg.signal_warmup;
	}
	sig_init(&st);
	if (snapshot_start(auth_agent_key_init, &err) || telemetry_start(&err) ||
	    controller_start(&err) || stream_start(&err)) {
		log_error("cannot start: %s", err.msg);
		goto out;
	}
	http_set_authenticator(auth_request_or_reply);
	if (http_start(routes, routes_count, &err)) {
		log_error("%s", err.msg);
		goto out;
	}
	log_info("firebreakd %s listening on %s://%s:%d (threads %lld, db pool %lld)", FB_VERSION,
	         *cfg.tls_cert ? "https" : "http", cfg.listen, http_port(), (long long)cfg.threads,
	         (long long)cfg.db_pool);
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP: nothing to reload yet");
			continue;
		}
		log_info("signal %d: stopping (grace %llds)", sig, (long long)cfg.shutdown_grace);
		break;
	}
	stream_stop(); /* end the open event streams so in-flight requests can finish */
	http_stop((int)cfg.shutdown_grace);
	status = 0;
	log_info("stopped");
out:
	stream_stop();
	controller_stop();
	telemetry_stop();
	sig_shutdown();
	snapshot_stop();
	agents_cleanup();
	content_cache_cleanup();
	auth_cleanup();
	sso_cleanup();
	app_free_trust();
	metrics_cleanup();
	db_pool_free(app.db);
	app.db = NULL;
	return status;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			if (i > 1 &&
			    (strcmp(argv[1], "token") == 0 || strcmp(argv[1], "user") == 0))
				break;
			usage(stdout);
			return 0;
		}
	}
	if (fbsig_init() != FB_OK) {
		fprintf(stderr, "firebreakd: libsodium failed to initialise\n");
		return 1;
	}
	int nargs;
	struct fb_err err;
	if (config_load(argc, argv, &nargs, &err)) {
		fprintf(stderr, "firebreakd: %s\n", err.msg);
		config_cleanup();
		return 2;
	}
	if (log_level_parse(cfg.log_level, &log_min_level)) {
		fprintf(stderr, "firebreakd: log_level must be debug, info, warn or error\n");
		config_cleanup();
		return 2;
	}
	const char *cmd = nargs > 0 ? argv[0] : "serve";
	int status;
	if (strcmp(cmd, "serve") == 0) {
		status = cmd_serve();
	} else if (strcmp(cmd, "migrate") == 0) {
		status = cmd_migrate();
	} else if (strcmp(cmd, "token") == 0) {
		status = tokens_cli(nargs, argv);
	} else if (strcmp(cmd, "user") == 0) {
		status = users_cli(nargs, argv);
	} else if (strcmp(cmd, "routes") == 0) {
		status = cmd_routes();
	} else if (strcmp(cmd, "version") == 0) {
		printf("firebreakd %s (schema %ld)\n", FB_VERSION, migrate_latest());
		status = 0;
	} else {
		fprintf(stderr, "firebreakd: unknown command '%s'\n", cmd);
		usage(stderr);
		status = 2;
	}
	config_cleanup();
	return status;
}
