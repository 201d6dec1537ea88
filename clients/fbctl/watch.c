/* fbctl rollout watch: live progress of one rollout, one line per ring of its
 * plan (bar and counts from GET /v1/rollouts/{id}/exposure, the current ring
 * marked, the ring's last gate decision), the worst health signal of the
 * current ring (GET /v1/rollouts/{id}/signals) and the last decision's reason
 * from GET /v1/rollouts/{id}, polled until the rollout completes or stops. */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "fb.h"
#include "fbctl.h"

#define BAR_WIDTH      20
#define MAX_FRAME      ((size_t)64 << 10) /* bytes of one drawn frame */
#define MAX_TRANSIENT  5                  /* transport errors in a row before giving up */
#define DEFAULT_PERIOD 1000               /* ms between refreshes (--interval 1s) */

static int64_t count(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* The bar of one ring: '#' healthy, 'x' failed (crashed, boot-looped,
 * silent), '~' treated and not yet judged, '.' not treated; in proportion
 * to the ring's agents (or to the treated when the ring size is unknown). */
static void bar(const json_t *e, char out[BAR_WIDTH + 1])
{
	int64_t agents = count(e, "agents"), treated = count(e, "treated");
	int64_t healthy = count(e, "healthy");
	int64_t failed = count(e, "crashed") + count(e, "boot_looped") + count(e, "silent");
	int64_t total = agents > treated ? agents : treated;
	int nh = 0, nf = 0, nt = 0;
	if (total > 0) {
		nt = (int)(treated * BAR_WIDTH / total);
		nh = (int)(healthy * BAR_WIDTH / total);
		nf = (int)(failed * BAR_WIDTH / total);
		if (failed > 0 && nf == 0)
			nf = 1; /* a failure is always visible */
		if (nh + nf > nt)
			nt = nh + nf;
		if (nt > BAR_WIDTH)
			nt = BAR_WIDTH;
	}
	for (int i = 0; i < BAR_WIDTH; i++)
		out[i] = i < nf ? 'x' : i < nf + nh ? '#' : i < nt ? '~' : '.';
	out[BAR_WIDTH] = '\0';
}

/* The newest evaluation of ring name, or NULL (evaluations are newest first). */
static const json_t *last_eval(const json_t *rollout, const char *name)
{
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(rollout, "evaluations"), i, e)
	{
		const char *r = json_string_value(json_object_get(e, "ring"));
		if (r && strcmp(r, name) == 0)
			return e;
	}
	return NULL;
}

/* Draw one frame of the rollout into b; worst is the current ring's worst
 * signal (ctl_worst_signal) or NULL. */
static enum fb_rc frame(const json_t *ro, const json_t *exp, const json_t *sig, const json_t *worst,
                        struct fb_buf *b)
{
	char c1[16], c2[32], c3[32];
	const char *state = json_string_value(json_object_get(ro, "state"));
	json_t *plan = json_object_get(ro, "rings");
	int64_t k = count(ro, "ring_index");
	int done_all = state && strcmp(state, "completed") == 0;
	/* watching (gate v2): the last ring promoted, its gate still judging */
	int active = state && (!strcmp(state, "rolling") || !strcmp(state, "paused") ||
	                       !strcmp(state, "staged") || !strcmp(state, "watching"));
	enum fb_rc rc = fb_buf_printf(
	        b, "rollout %lld  channel %lld  content %s v%s  %s, ring %lld of %zu\n",
	        (long long)count(ro, "id"), (long long)count(ro, "channel"),
	        ctl_short(ro, "content", 12, c1, sizeof c1), ctl_cell(ro, "version", c2, sizeof c2),
	        state ? state : "?", (long long)k + 1, json_array_size(plan));
	size_t i;
	json_t *rn;
	json_array_foreach(plan, i, rn)
	{
		const char *name = json_string_value(rn);
		if (!name || rc)
			continue;
		const json_t *e = json_object_get(json_object_get(exp, "rings"), name);
		char b1[BAR_WIDTH + 1];
		bar(e, b1);
		const char *mark = done_all || (int64_t)i < k ? "done"
		                   : (int64_t)i == k          ? (active ? ">>  " : "stop")
		                                              : "    ";
		const json_t *ev = last_eval(ro, name);
		const char *dec = ev ? json_string_value(json_object_get(ev, "decision")) : NULL;
		if (!dec && (done_all || (int64_t)i < k))
			dec = "passed"; /* its evaluations are older than the ones served */
		rc = fb_buf_printf(
		        b,
		        "%s %-8s %-7s [%s] %lld/%lld treated, %lld healthy, %lld crashed, "
		        "%lld boot-looped, %lld silent",
		        mark, name, dec ? dec : "-", b1, (long long)count(e, "treated"),
		        (long long)count(e, "agents"), (long long)count(e, "healthy"),
		        (long long)count(e, "crashed"), (long long)count(e, "boot_looped"),
		        (long long)count(e, "silent"));
		/* gate v2: the ring's holdout, the control kept on the previous file */
		if (!rc && count(e, "holdout") > 0)
			rc = fb_buf_printf(b, ", %lld held out (control)",
			                   (long long)count(e, "holdout"));
		if (!rc)
			rc = fb_buf_printf(b, "\n");
	}
	if (!rc && active) {
		char st[512];
		rc = fb_buf_printf(b, "worst signal (%s): %s\n",
		                   ctl_cell(ro, "ring", c2, sizeof c2),
		                   ctl_signal_text(sig, worst, st, sizeof st));
	}
	const json_t *last = json_array_get(json_object_get(ro, "evaluations"), 0);
	if (!rc && last) {
		const char *why = json_string_value(json_object_get(last, "reason"));
		rc = fb_buf_printf(b, "last gate decision (%s, ring %s): %s\n",
		                   ctl_time(last, "at", c3, sizeof c3),
		                   ctl_cell(last, "ring", c2, sizeof c2), why ? why : "-");
	} else if (!rc) {
		rc = fb_buf_printf(b, "last gate decision: none yet\n");
	}
	const char *sr = json_string_value(json_object_get(ro, "state_reason"));
	if (!rc && sr && *sr && !active)
		rc = fb_buf_printf(b, "%s: %s\n", state, sr);
	return rc;
}

/* What makes a frame new: the state, the ring, per ring its last decision
 * and counts, the worst signal and its counts, the last decision's ring and
 * words and the state's reason; not the time stamps nor the figures inside
 * the gate's reason ("bake 3s of 600s") or the signal's statistic, which move
 * at every evaluation. Written into k. */
static enum fb_rc change_key(const json_t *ro, const json_t *exp, const json_t *worst,
                             struct fb_buf *k)
{
	enum fb_rc rc = fb_buf_printf(k, "%s %lld|",
	                              json_string_value(json_object_get(ro, "state"))
	                                      ? json_string_value(json_object_get(ro, "state"))
	                                      : "?",
	                              (long long)count(ro, "ring_index"));
	size_t i;
	json_t *rn;
	json_array_foreach(json_object_get(ro, "rings"), i, rn)
	{
		const char *name = json_string_value(rn);
		const json_t *e = json_object_get(json_object_get(exp, "rings"), name ? name : "");
		const json_t *ev = name ? last_eval(ro, name) : NULL;
		const char *dec = ev ? json_string_value(json_object_get(ev, "decision")) : NULL;
		if (!rc)
			rc = fb_buf_printf(
			        k, "%s %s %lld %lld %lld %lld %lld %lld %lld|", name ? name : "?",
			        dec ? dec : "-", (long long)count(e, "agents"),
			        (long long)count(e, "holdout"), (long long)count(e, "treated"),
			        (long long)count(e, "healthy"), (long long)count(e, "crashed"),
			        (long long)count(e, "boot_looped"), (long long)count(e, "silent"));
	}
	if (!rc && worst) {
		const char *sname = json_string_value(json_object_get(worst, "signal"));
		rc = fb_buf_printf(k, "%s %lld %lld %lld %lld|", sname ? sname : "?",
		                   (long long)count(worst, "degraded"),
		                   (long long)count(worst, "treated"),
		                   (long long)count(worst, "control_degraded"),
		                   (long long)count(worst, "control"));
	}
	const json_t *last = json_array_get(json_object_get(ro, "evaluations"), 0);
	const char *why = json_string_value(json_object_get(last, "reason"));
	const char *ring = json_string_value(json_object_get(last, "ring"));
	if (!rc)
		rc = fb_buf_printf(k, "%s|", ring ? ring : "-");
	for (const char *p = why ? why : ""; !rc && *p; p++)
		if (*p < '0' || *p > '9')
			rc = fb_buf_add(k, p, 1);
	const char *sr = json_string_value(json_object_get(ro, "state_reason"));
	if (!rc)
		rc = fb_buf_printf(k, "|%s", sr ? sr : "");
	return rc;
}

static int lines_of(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Columns of the terminal on stdout (80 when unknown). */
static int term_cols(void)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}

/* Print text with every line cut to fit in cols - 1 columns (bytes, so a
 * line never wraps and the redraw can count lines; a cut never splits a
 * UTF-8 sequence). */
static void put_clipped(const char *text, int cols)
{
	size_t max = (size_t)cols - 1;
	while (*text) {
		size_t len = strcspn(text, "\n");
		size_t n = len;
		if (n > max) {
			n = max;
			while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
				n--;
		}
		fwrite(text, 1, n, stdout);
		fputc('\n', stdout);
		text += len + (text[len] == '\n');
	}
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* GET path; 0 and *out on success; -1 for a transport error (worth a retry);
 * EXIT_REFUSED for a refusal (already reported). */
static int fetch(struct ctl *c, const char *path, json_t **out)
{
	long st = 0;
	int code = ctl_call(c, "GET", path, NULL, &st, out, NULL);
	if (code && st == 0)
		return -1;
	return code;
}

int cmd_rollout_watch(struct opts *o)
{
	struct ctl c;
	struct fb_buf cur, prev, key;
	json_t *ro = NULL, *exp = NULL, *sig = NULL, *worst = NULL;
	int64_t id, period = DEFAULT_PERIOD, limit_ms = 0;
	char path[64], epath[80], spath[80];
	int code;
	if (o->argc != 1) {
		fprintf(stderr,
		        o->argc ? "fbctl: rollout watch takes one rollout ID, found %d arguments\n"
		                : "fbctl: missing ID (the rollout to watch)\n",
		        o->argc);
		return ctl_usage(o);
	}
	if (fb_parse_i64(o->argv[0], 1, INT64_MAX, &id)) {
		fprintf(stderr, "fbctl: rollout ID must be a positive integer, found \"%s\"\n",
		        o->argv[0]);
		return ctl_usage(o);
	}
	if (o->interval && (code = ctl_duration(o, "--interval", o->interval, 100, 60000, &period)))
		return code;
	if (o->timeout &&
	    (code = ctl_duration(o, "--timeout", o->timeout, 1000, 7 * 86400000LL, &limit_ms)))
		return code;
	if ((code = ctl_open(o, &c)))
		return code;
	fb_buf_init(&cur, MAX_FRAME);
	fb_buf_init(&prev, MAX_FRAME);
	fb_buf_init(&key, MAX_FRAME);
	snprintf(path, sizeof path, "/v1/rollouts/%lld", (long long)id);
	snprintf(epath, sizeof epath, "/v1/rollouts/%lld/exposure", (long long)id);
	snprintf(spath, sizeof spath, "/v1/rollouts/%lld/signals", (long long)id);
	int tty = isatty(STDOUT_FILENO), drawn = 0, transient = 0;
	int64_t start = fb_mono_ms();
	for (;;) {
		json_decref(ro);
		json_decref(exp);
		json_decref(sig);
		json_decref(worst);
		ro = exp = sig = worst = NULL;
		int r = fetch(&c, path, &ro);
		if (r == 0)
			r = fetch(&c, epath, &exp);
		if (r == 0)
			r = fetch(&c, spath, &sig);
		if (r > 0) {
			code = r;
			break;
		}
		if (r < 0) {
			if (++transient >= MAX_TRANSIENT) {
				fprintf(stderr,
				        "fbctl: giving up after %d transport errors in a row\n",
				        transient);
				code = EXIT_REFUSED;
				break;
			}
			sleep_ms(period);
			continue;
		}
		transient = 0;
		worst = ctl_worst_signal(sig);
		fb_buf_reset(&cur);
		fb_buf_reset(&key);
		if (frame(ro, exp, sig, worst, &cur) || fb_buf_add(&cur, "", 0) ||
		    change_key(ro, exp, worst, &key) || fb_buf_add(&key, "", 0)) {
			fprintf(stderr, "fbctl: the progress display is over %zu bytes\n",
			        MAX_FRAME);
			code = EXIT_USAGE;
			break;
		}
		int changed = !prev.data || strcmp(prev.data, key.data) != 0;
		if (o->json) {
			/* one line of JSON per change: both answers as the server gave
			 * them and the current ring's worst signal (null when none) */
			if (changed) {
				json_t *both = json_pack("{s:O,s:O,s:O?}", "rollout", ro,
				                         "exposure", exp, "worst_signal", worst);
				char *t = both ? json_dumps(both, JSON_COMPACT) : NULL;
				if (t)
					printf("%s\n", t);
				free(t);
				json_decref(both);
			}
		} else if (tty) {
			/* ANSI redraw: back up over the last frame, clear, draw */
			if (drawn)
				printf("\033[%dA\033[J", drawn);
			put_clipped(cur.data, term_cols());
			drawn = lines_of(cur.data);
		} else if (changed) {
			/* Plain output (a pipe, a log): a new frame only when it changed. */
			char ts[32];
			json_t *now = json_pack("{s:I}", "t", (json_int_t)time(NULL));
			printf("-- %s\n%s", ctl_time(now, "t", ts, sizeof ts), cur.data);
			json_decref(now);
		}
		if (changed) {
			fb_buf_reset(&prev);
			if (fb_buf_add(&prev, key.data, key.len) || fb_buf_add(&prev, "", 0)) {
				code = EXIT_USAGE;
				break;
			}
		}
		fflush(stdout);
		const char *state = json_string_value(json_object_get(ro, "state"));
		if (state && strcmp(state, "completed") == 0) {
			code = EXIT_VALID;
			break;
		}
		if (state && (!strcmp(state, "halted") || !strcmp(state, "reverted") ||
		              !strcmp(state, "superseded"))) {
			code = EXIT_HALTED;
			break;
		}
		if (limit_ms && fb_mono_ms() - start >= limit_ms) {
			char d[32];
			fprintf(stderr, "fbctl: rollout %lld is still %s after %s (--timeout)\n",
			        (long long)id, state ? state : "?",
			        fb_duration_str(limit_ms, d, sizeof d));
			code = EXIT_REFUSED;
			break;
		}
		sleep_ms(period);
	}
	json_decref(ro);
	json_decref(exp);
	json_decref(sig);
	json_decref(worst);
	fb_buf_cleanup(&cur);
	fb_buf_cleanup(&prev);
	fb_buf_cleanup(&key);
	ctl_close(&c);
	return code;
}
