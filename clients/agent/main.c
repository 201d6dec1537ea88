/* fb-agent: the reference endpoint agent. Flags and config file (one
 * declarative table), --once or the daemon loop (poll interval plus jitter,
 * heartbeat interval, exponential backoff), clean stop on SIGTERM/SIGINT. */
#include "agent.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

enum opt_type { OPT_STR, OPT_INT, OPT_SECRET };

/* The configuration table: every setting, its flag / config-file key, type,
 * default and help. Defaults live only here. */
struct opt {
	const char *name; /* flag --name; config key with '-' as '_' */
	enum opt_type type;
	size_t off;
	const char *def; /* NULL: no default */
	int64_t min, max;
	const char *arg, *help;
};

#define O(f) offsetof(struct ag_config, f)
static const struct opt opts[] = {
        {"server", OPT_STR, O(server), NULL, 0, 0, "URL", "server base URL (http[s]://host:port)"},
        {"root", OPT_STR, O(root), NULL, 0, 0, "FILE", "pinned root of trust (root.json)"},
        {"state-dir", OPT_STR, O(state_dir), "/var/lib/fb-agent", 0, 0, "DIR",
         "state directory (identity, slots, state.json)"},
        {"templates", OPT_STR, O(templates), "/usr/local/share/firebreak/templates", 0, 0, "DIR",
         "template registry this build interprets (its capabilities)"},
        {"channels", OPT_STR, O(channels), "", 0, 0, "LIST",
         "comma-separated channel ids to follow (empty: every assigned channel)"},
        {"enroll-token", OPT_SECRET, O(enroll_token), NULL, 0, 0, "TOKEN",
         "enrollment token (first start only)"},
        {"ca-bundle", OPT_STR, O(ca_bundle), NULL, 0, 0, "FILE",
         "PEM CA bundle to verify the server (HTTPS)"},
        {"hostname", OPT_STR, O(hostname), NULL, 0, 0, "NAME",
         "host name reported at enrollment (default: gethostname)"},
        {"log-level", OPT_STR, O(log_level), "info", 0, 0, "LEVEL", "debug, info, warn or error"},
        {"poll-interval", OPT_INT, O(poll_interval_s), "60", 1, 86400, "S",
         "seconds between polls"},
        {"poll-jitter", OPT_INT, O(poll_jitter_s), "10", 0, 86400, "S",
         "random extra seconds added to each poll interval"},
        {"heartbeat-interval", OPT_INT, O(heartbeat_interval_s), "30", 1, 86400, "S",
         "seconds between heartbeats"},
        {"backoff-max", OPT_INT, O(backoff_max_s), "300", 1, 86400, "S",
         "cap of the exponential back-off after errors"},
        {"timeout", OPT_INT, O(timeout_s), "30", 1, 3600, "S", "HTTP request time-out"},
        {"boot-loop-starts", OPT_INT, O(boot_loop_starts), "3", 1, 1000, "N",
         "boot-loop guard: N unclean starts ..."},
        {"boot-loop-minutes", OPT_INT, O(boot_loop_minutes), "10", 1, 10080, "M",
         "... within M minutes after a content change revert to the last known good"},
        {"health", OPT_INT, O(health), "1", 0, 1, "0|1",
         "send the health object (CPU, memory, evaluation counts) with heartbeats"},
        {"scan-interval", OPT_INT, O(scan_interval_s), "10", 0, 86400, "S",
         "seconds between content evaluation passes (0: only after each poll)"},
        {"scan-input", OPT_STR, O(scan_input), "", 0, 0, "FILE",
         "JSON Lines events to evaluate content on (empty: the host's processes)"},
        {"scan-max-events", OPT_INT, O(scan_max_events), "256", 0, 10000, "N",
         "events per evaluation pass (0: no evaluation)"},
        {"scan-max-ms", OPT_INT, O(scan_max_ms), "2000", 1, 60000, "MS",
         "wall-clock cap of one evaluation pass"},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: fb-agent [--config FILE] [--once] [options]\n\n"
	             "The firebreak reference agent: enrolls, polls its signed assignment,\n"
	             "verifies it and every channel file against the pinned root, stages\n"
	             "content into A/B slots, reports heartbeats and events, and reverts by\n"
	             "itself after a boot loop.\n\noptions (config-file key = flag name "
	             "with '_' for '-'):\n");
	fprintf(out, "  --config FILE              read settings from FILE (\"key = value\" "
	             "lines); flags win\n");
	fprintf(out, "  --once                     one cycle (enroll, poll, apply, heartbeat, "
	             "events), then exit\n");
	for (size_t i = 0; i < NOPTS; i++) {
		char left[64];
		snprintf(left, sizeof left, "--%s %s", opts[i].name, opts[i].arg);
		fprintf(out, "  %-26s %s", left, opts[i].help);
		if (opts[i].def && opts[i].def[0])
			fprintf(out, " [%s]", opts[i].def);
		fputc('\n', out);
	}
	fprintf(out,
	        "  --help                     this text\n\n"
	        "environment (TEST ONLY, never in production):\n"
	        "  FB_AGENT_TEST_CRASH_ON=SHA256[,SHA256...]  exit with status %d, without the\n"
	        "      clean-stop mark, when content with one of these digests is active at\n"
	        "      start-up or has just been applied (simulates a crashing sensor)\n\n"
	        "exit status: 0 ok, 1 failure (--once: any step failed), 2 usage or "
	        "configuration error,\n             %d test crash hook\n",
	        AG_CRASH_STATUS, AG_CRASH_STATUS);
}

static const struct opt *find_opt(const char *name)
{
	for (size_t i = 0; i < NOPTS; i++) {
		const char *a = opts[i].name, *b = name;
		while (*a && *b && (*a == *b || (*a == '-' && *b == '_')))
			a++, b++;
		if (!*a && !*b)
			return &opts[i];
	}
	return NULL;
}

/* Free a string setting, wiping secrets. */
static void free_str(const struct opt *o, char **slot)
{
	if (*slot && o->type == OPT_SECRET)
		sodium_memzero(*slot, strlen(*slot));
	free(*slot);
	*slot = NULL;
}

static enum fb_rc set_opt(struct ag_config *c, const struct opt *o, const char *val,
                          struct fb_err *err)
{
	char *base = (char *)c;
	if (o->type == OPT_INT) {
		int64_t v = 0;
		if (fb_parse_i64(val, o->min, o->max, &v)) {
			fb_err_set(err, "%s: \"%s\" is not an integer in %lld..%lld", o->name, val,
			           (long long)o->min, (long long)o->max);
			return FB_EINVAL;
		}
		*(int64_t *)(base + o->off) = v;
		return FB_OK;
	}
	char **slot = (char **)(base + o->off);
	char *dup = strdup(val);
	if (!dup)
		return FB_ENOMEM;
	free_str(o, slot);
	*slot = dup;
	return FB_OK;
}

static enum fb_rc conf_cb(void *ctx, const char *key, const char *value, struct fb_err *err)
{
	const struct opt *o = find_opt(key);
	if (!o) {
		fb_err_set(err, "unknown setting \"%s\"", key);
		return FB_EINVAL;
	}
	return set_opt(ctx, o, value, err);
}

static void config_free(struct ag_config *c)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (opts[i].type != OPT_INT)
			free_str(&opts[i], (char **)((char *)c + opts[i].off));
}

static void sleep_until_stop(int64_t ms)
{
	int64_t end = fb_mono_ms() + ms;
	while (!stop_requested) {
		int64_t left = end - fb_mono_ms();
		if (left <= 0)
			break;
		if (left > 200)
			left = 200;
		struct timespec ts = {left / 1000, (long)(left % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/* The daemon loop: a poll every interval + jitter, a heartbeat (and event
 * report) every heartbeat interval, exponential back-off on errors; an
 * evaluation pass every scan interval and an agent-CPU sample about every
 * second, sleeping in between. */
static int run_daemon(struct ag *a, const struct ag_config *cfg)
{
	int failures = 0;
	int64_t next_poll = 0, next_hb = 0, next_sample = fb_mono_ms() + 1000;
	int64_t scan_ms = cfg->scan_interval_s * 1000, next_scan = INT64_MAX;
	while (!stop_requested) {
		int64_t now = fb_mono_ms();
		struct fb_err err = {""};
		enum fb_rc rc = FB_OK;
		if (now >= next_sample) {
			ag_health_sample(&a->health, now, 0);
			next_sample = now + 1000;
		}
		if (now >= next_poll) {
			rc = ag_cycle(a, &err);
			int64_t wait = cfg->poll_interval_s * 1000;
			if (cfg->poll_jitter_s > 0)
				wait += (int64_t)randombytes_uniform(
				        (uint32_t)(cfg->poll_jitter_s * 1000));
			if (rc) {
				failures++;
				int64_t b = 1000;
				for (int i = 1; i < failures && b < cfg->backoff_max_s * 1000; i++)
					b *= 2;
				if (b > cfg->backoff_max_s * 1000)
					b = cfg->backoff_max_s * 1000;
				wait = b / 2 + (int64_t)randombytes_uniform((uint32_t)(b / 2 + 1));
				ag_log("warn", "cycle failed (%s); retrying in %lld ms", err.msg,
				       (long long)wait);
			} else {
				failures = 0;
			}
			next_poll = fb_mono_ms() + wait;
			next_hb = fb_mono_ms() + cfg->heartbeat_interval_s * 1000;
			if (scan_ms > 0) /* the cycle evaluated */
				next_scan = fb_mono_ms() + scan_ms;
		} else if (now >= next_scan) {
			ag_evaluate(a);
			next_scan = fb_mono_ms() + scan_ms;
		} else if (now >= next_hb) {
			if (a->id.agent_id > 0) {
				if (ag_heartbeat(a, &err))
					ag_log("error", "heartbeat: %s", err.msg);
				else if (ag_flush_events(a, &err))
					ag_log("error", "events: %s", err.msg);
			}
			next_hb = fb_mono_ms() + cfg->heartbeat_interval_s * 1000;
		}
		int64_t until = next_poll < next_hb ? next_poll : next_hb;
		until = next_scan < until ? next_scan : until;
		until = next_sample < until ? next_sample : until;
		sleep_until_stop(until - fb_mono_ms());
	}
	ag_log("info", "stop requested");
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	struct ag_config cfg;
	memset(&cfg, 0, sizeof cfg);
	struct fb_err err = {""};
	int status = EXIT_USAGE, once = 0;
	const char *config_file = NULL;
	struct ag a;
	memset(&a, 0, sizeof a);
	int opened = 0;

	/* Defaults, then the config file, then flags (so flags win). */
	for (size_t i = 0; i < NOPTS; i++)
		if (opts[i].def && set_opt(&cfg, &opts[i], opts[i].def, &err))
			goto out;
	struct option lo[NOPTS + 4];
	memset(lo, 0, sizeof lo);
	for (size_t i = 0; i < NOPTS; i++)
		lo[i] = (struct option){opts[i].name, required_argument, NULL, 1000 + (int)i};
	lo[NOPTS] = (struct option){"config", required_argument, NULL, 'c'};
	lo[NOPTS + 1] = (struct option){"once", no_argument, NULL, 'o'};
	lo[NOPTS + 2] = (struct option){"help", no_argument, NULL, 'h'};
	for (int pass = 0; pass < 2; pass++) {
		optind = 1;
		opterr = pass; /* complain once */
		int c;
		while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
			if (c == 'h') {
				usage(stdout);
				status = EXIT_OK;
				goto out;
			}
			if (c == '?') {
				if (pass) {
					fprintf(stderr, "fb-agent: see fb-agent --help\n");
					goto out;
				}
				continue;
			}
			if (pass == 0) {
				if (c == 'c')
					config_file = optarg;
				continue;
			}
			if (c == 'o')
				once = 1;
			else if (c >= 1000 && set_opt(&cfg, &opts[c - 1000], optarg, &err)) {
				fprintf(stderr, "fb-agent: --%s\n", err.msg);
				goto out;
			}
		}
		if (pass == 0 && config_file && fbc_conf_read(config_file, conf_cb, &cfg, &err)) {
			fprintf(stderr, "fb-agent: config %s\n", err.msg);
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "fb-agent: unexpected argument \"%s\"\n", argv[optind]);
		goto out;
	}
	if (ag_log_set_level(cfg.log_level)) {
		fprintf(stderr, "fb-agent: --log-level: \"%s\" is not debug, info, warn or error\n",
		        cfg.log_level);
		goto out;
	}
	if (!cfg.server || !cfg.root) {
		fprintf(stderr, "fb-agent: --server and --root are required (see --help)\n");
		goto out;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (fbc_global_init()) {
		fprintf(stderr, "fb-agent: libcurl did not start\n");
		status = EXIT_FAIL;
		goto out;
	}
	if (ag_open(&a, &cfg, &err)) {
		ag_log("error", "start-up: %s", err.msg);
		status = EXIT_USAGE;
		goto out;
	}
	opened = 1;
	if (once) {
		enum fb_rc rc = ag_cycle(&a, &err);
		if (rc)
			ag_log("error", "cycle failed: %s", err.msg);
		status = rc ? EXIT_FAIL : EXIT_OK;
	} else {
		status = run_daemon(&a, &cfg);
	}
out:
	ag_close(&a, opened); /* a clean stop only after a successful start */
	config_free(&cfg);
	fbc_global_cleanup();
	return status;
}
