/* firebreakd configuration: the one table of parameters and their defaults. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct fb_config cfg;

enum param_type { P_STR, P_INT };

struct param {
	const char *name;
	enum param_type type;
	void *var;
	const char *def;
	int64_t min, max;
	const char *help;
};

/* The one place defaults live (PgBouncer bouncer_params style). */
static const struct param params[] = {
        {"listen", P_STR, &cfg.listen, "127.0.0.1", 0, 0, "address to listen on"},
        {"port", P_INT, &cfg.port, "8080", 0, 65535, "TCP port (0 = any free port)"},
        {"threads", P_INT, &cfg.threads, "2", 1, 256, "HTTP worker threads (epoll thread pool)"},
        {"connection_limit", P_INT, &cfg.connection_limit, "10000", 1, 1000000,
         "maximum concurrent client connections"},
        {"request_timeout", P_INT, &cfg.request_timeout, "30", 1, 3600,
         "seconds of client inactivity before a connection is closed"},
        {"shutdown_grace", P_INT, &cfg.shutdown_grace, "10", 0, 600,
         "seconds in-flight requests get to finish on SIGTERM/SIGINT"},
        {"db", P_STR, &cfg.db, "dbname=firebreak", 0, 0, "PostgreSQL connection string (libpq)"},
        {"db_pool", P_INT, &cfg.db_pool, "4", 1, 256, "database connections in the pool"},
        {"db_wait_ms", P_INT, &cfg.db_wait_ms, "2000", 1, 60000,
         "milliseconds a request waits for a free database connection (then 503)"},
        {"max_body", P_INT, &cfg.max_body, "1048576", 1024, 1073741824,
         "largest request body in bytes (413 beyond)"},
        {"max_upload", P_INT, &cfg.max_upload, "1048576", 1024, 1073741824,
         "largest channel file accepted for upload, in bytes (the format caps files at 1 MiB)"},
        {"log_level", P_STR, &cfg.log_level, "info", 0, 0, "debug, info, warn or error"},
        {"tls_cert", P_STR, &cfg.tls_cert, "", 0, 0, "PEM certificate; with tls_key, serve HTTPS"},
        {"tls_key", P_STR, &cfg.tls_key, "", 0, 0, "PEM private key for tls_cert"},
        {"online_key", P_STR, &cfg.online_key, "/etc/firebreak/online.key", 0, 0,
         "online key file (fb-sign keygen) that signs assignments"},
        {"online_key_passphrase_file", P_STR, &cfg.online_key_passphrase_file, "", 0, 0,
         "file holding the online key's passphrase (empty: key is not encrypted)"},
        {"root", P_STR, &cfg.root, "/etc/firebreak/root.json", 0, 0,
         "signed root of trust (fb-sign root init) served to agents"},
        {"root_chain", P_STR, &cfg.root_chain, "", 0, 0,
         "directory of earlier roots (<version>.json) served for step-by-step rotation"},
        {"templates", P_STR, &cfg.templates, "/usr/local/share/firebreak/templates", 0, 0,
         "template registry directory (*.json)"},
        {"corpus", P_STR, &cfg.corpus, "/usr/local/share/firebreak/corpus", 0, 0,
         "preflight event corpus directory"},
        {"preflight_wall_ms", P_INT, &cfg.preflight_wall_ms, "10000", 100, 600000,
         "time limit of the preflight run of an uploaded file"},
        {"assignment_ttl", P_INT, &cfg.assignment_ttl, "3600", 10, 604800,
         "seconds a signed assignment stays valid (re-signed at half-life)"},
        {"heartbeat_flush_ms", P_INT, &cfg.heartbeat_flush_ms, "2000", 50, 60000,
         "interval of the batched heartbeat writes"},
        {"signal_warmup", P_INT, &cfg.signal_warmup, "0", 0, 255,
         "heartbeats with health that make a host's baseline before any verdict (0: each "
         "signal's default, GATE.md)"},
        {"signal_k", P_INT, &cfg.signal_k, "0", 0, 100,
         "consecutive heartbeats above the threshold that make a host degraded (0: each "
         "signal's default, GATE.md)"},
        {"snapshot_check_ms", P_INT, &cfg.snapshot_check_ms, "5000", 50, 600000,
         "periodic check of the serving snapshot besides LISTEN/NOTIFY"},
        {"controller_interval_ms", P_INT, &cfg.controller_interval_ms, "2000", 50, 600000,
         "interval of the rollout controller's gate evaluations"},
        {"controller_lease_ms", P_INT, &cfg.controller_lease_ms, "0", 0, 3600000,
         "controller lease: a leader that has not renewed it for this long is replaced and "
         "cannot write any more (0: twice controller_interval_ms)"},
        {"restart_grace_s", P_INT, &cfg.restart_grace_s, "-1", -1, 86400,
         "silence is not counted this long after start-up (-1: the policy's silence timeout)"},
        {"webhook_url", P_STR, &cfg.webhook_url, "", 0, 0,
         "URL POSTed (JSON) on halts, reverts and stalls; retried with backoff"},
        {"controller", P_INT, &cfg.controller, "1", 0, 1,
         "1: this replica may run the controller (the holder of the controller lease does)"},
        {"sso_proxies", P_STR, &cfg.sso_proxies, "", 0, 0,
         "addresses or CIDRs of the authenticating reverse proxy whose identity headers are "
         "believed (with the shared secret); empty = single sign-on off"},
        {"sso_secret_file", P_STR, &cfg.sso_secret_file, "", 0, 0,
         "file holding the secret (32 characters or more) the proxy sends in sso_secret_header"},
        {"sso_secret_header", P_STR, &cfg.sso_secret_header, "X-Firebreak-Proxy-Secret", 0, 0,
         "request header carrying the proxy's shared secret"},
        {"sso_user_header", P_STR, &cfg.sso_user_header, "X-Forwarded-User", 0, 0,
         "request header with the user name the proxy asserts"},
        {"sso_email_header", P_STR, &cfg.sso_email_header, "X-Forwarded-Email", 0, 0,
         "request header with the e-mail address the proxy asserts"},
        {"sso_match", P_STR, &cfg.sso_match, "email", 0, 0,
         "how an asserted identity names a user: email (sso_email_header = users.email) or "
         "name (sso_user_header = users.name)"},
};
#define NPARAMS (sizeof params / sizeof params[0])

static const struct param *param_find(const char *name, size_t len)
{
	for (size_t i = 0; i < NPARAMS; i++)
		if (strlen(params[i].name) == len && strncmp(params[i].name, name, len) == 0)
			return &params[i];
	return NULL;
}

static enum fb_rc param_set(const struct param *p, const char *value, const char *source,
                            struct fb_err *err)
{
	if (p->type == P_INT) {
		int64_t v;
		if (fb_parse_i64(value, p->min, p->max, &v)) {
			fb_err_set(err, "%s: %s: expected an integer in [%lld, %lld], found '%s'",
			           source, p->name, (long long)p->min, (long long)p->max, value);
			return FB_EINVAL;
		}
		*(int64_t *)p->var = v;
		return FB_OK;
	}
	char *s = strdup(value);
	if (!s)
		return FB_ENOMEM;
	char **slot = p->var;
	free(*slot);
	*slot = s;
	return FB_OK;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static enum fb_rc load_file(const char *path, int required, struct fb_err *err)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		if (!required && errno == ENOENT)
			return FB_OK;
		fb_err_set(err, "config file %s: %s", path, strerror(errno));
		return FB_EIO;
	}
	enum fb_rc rc = FB_OK;
	char line[4096];
	int lineno = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		char *s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			fb_err_set(err, "%s:%d: expected 'name = value'", path, lineno);
			rc = FB_EINVAL;
			goto out;
		}
		*eq = '\0';
		char *name = trim(s), *value = trim(eq + 1);
		const struct param *p = param_find(name, strlen(name));
		if (!p) {
			fb_err_set(err, "%s:%d: unknown parameter '%s'", path, lineno, name);
			rc = FB_EINVAL;
			goto out;
		}
		char source[600];
		snprintf(source, sizeof source, "%s:%d", path, lineno);
		rc = param_set(p, value, source, err);
		if (rc)
			goto out;
	}
out:
	fclose(f);
	return rc;
}

enum fb_rc config_load(int argc, char **argv, int *nargs, struct fb_err *err)
{
	enum fb_rc rc;
	*nargs = 0;
	for (size_t i = 0; i < NPARAMS; i++) {
		rc = param_set(&params[i], params[i].def, "default", err);
		if (rc)
			return rc;
	}

	/* The config file named by flag, environment, or the default path. */
	const char *file = getenv("FIREBREAK_CONFIG");
	int required = file != NULL;
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--config=", 9) == 0) {
			file = argv[i] + 9;
			required = 1;
		} else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			file = argv[i + 1];
			required = 1;
		}
	}
	rc = load_file(file ? file : "/etc/firebreak/firebreakd.conf", required, err);
	if (rc)
		return rc;

	for (size_t i = 0; i < NPARAMS; i++) {
		char env[128] = "FIREBREAK_";
		size_t n = strlen(env);
		for (const char *c = params[i].name; *c && n < sizeof env - 1; c++)
			env[n++] = (char)toupper((unsigned char)*c);
		env[n] = '\0';
		const char *v = getenv(env);
		if (v) {
			rc = param_set(&params[i], v, env, err);
			if (rc)
				return rc;
		}
	}

	int out = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			argv[out++] = argv[i];
			continue;
		}
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		const char *value = eq ? eq + 1 : NULL;
		if (nlen == 6 && strncmp(name, "config", 6) == 0) {
			if (!value)
				i++;
			continue;
		}
		const struct param *p = param_find(name, nlen);
		if (!p) { /* not ours: leave it to the subcommand */
			argv[out++] = argv[i];
			continue;
		}
		if (!value) {
			if (i + 1 >= argc) {
				fb_err_set(err, "flag --%s needs a value", p->name);
				return FB_EINVAL;
			}
			value = argv[++i];
		}
		char source[160];
		snprintf(source, sizeof source, "flag --%s", p->name);
		rc = param_set(p, value, source, err);
		if (rc)
			return rc;
	}
	*nargs = out - 1;
	for (int i = 0; i < *nargs; i++)
		argv[i] = argv[i + 1];
	/* a leader must be able to renew its lease between two cycles */
	if (cfg.controller_lease_ms && cfg.controller_lease_ms <= cfg.controller_interval_ms) {
		fb_err_set(err,
		           "controller_lease_ms (%lld) must be longer than controller_interval_ms "
		           "(%lld)",
		           (long long)cfg.controller_lease_ms,
		           (long long)cfg.controller_interval_ms);
		return FB_EINVAL;
	}
	return FB_OK;
}

void config_usage(FILE *f)
{
	fprintf(f, "Parameters (file: name = value; environment: FIREBREAK_NAME; flag: "
	           "--name=value):\n");
	for (size_t i = 0; i < NPARAMS; i++)
		fprintf(f, "  --%-18s %s (default: %s)\n", params[i].name, params[i].help,
		        *params[i].def ? params[i].def : "none");
	fprintf(f, "  --%-18s %s\n", "config",
	        "config file (default /etc/firebreak/firebreakd.conf)");
}

void config_cleanup(void)
{
	for (size_t i = 0; i < NPARAMS; i++) {
		if (params[i].type == P_STR) {
			char **slot = params[i].var;
			free(*slot);
			*slot = NULL;
		}
	}
}
