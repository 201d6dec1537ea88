/* fb-agent's content evaluation (scan.h): local events from /proc or an
 * input file, every active channel file run over them with cf_content_eval,
 * the outcomes counted for the heartbeat's health object. */
#include "scan.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AG_SCAN_MAX_PIDS 65536 /* /proc entries looked at in one pass */

static void say(const struct ag_scan_opts *o, const char *level, const char *fmt, ...)
        FB_PRINTF(3, 4);
static void say(const struct ag_scan_opts *o, const char *level, const char *fmt, ...)
{
	if (!o->log)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	o->log(level, "%s", msg);
}

void ag_scanner_cleanup(struct ag_scanner *sc)
{
	for (size_t i = 0; i < sc->n; i++)
		cf_file_free(sc->files[i].f);
	memset(sc, 0, sizeof *sc);
}

/* ---- events from /proc ------------------------------------------------------ */

/* comm and ppid of pid from /proc/<pid>/stat ("pid (comm) state ppid ...";
 * comm may hold spaces and parentheses: it ends at the last ')'). */
static int proc_stat(long pid, char *comm, size_t n, long *ppid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	if (ag_proc_read(path, buf, sizeof buf) <= 0)
		return -1;
	char *open_p = strchr(buf, '('), *close_p = strrchr(buf, ')');
	if (!open_p || !close_p || close_p < open_p)
		return -1;
	size_t l = (size_t)(close_p - open_p - 1);
	if (l >= n)
		l = n - 1;
	memcpy(comm, open_p + 1, l);
	comm[l] = '\0';
	char state = 0;
	if (sscanf(close_p + 1, " %c %ld", &state, ppid) != 2)
		return -1;
	return 0;
}

static int cmp_long_desc(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* The event of process pid, or NULL (gone, kernel thread, zombie: no
 * command line). */
static struct cf_event *proc_event(long pid, struct fb_err *err)
{
	char comm[64], pcomm[64] = "", path[64], cmd[CF_MAX_VALUE + 1];
	long ppid = 0, pp = 0;
	if (proc_stat(pid, comm, sizeof comm, &ppid))
		return NULL;
	snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
	ssize_t n = ag_proc_read(path, cmd, sizeof cmd);
	if (n <= 0)
		return NULL;
	for (ssize_t k = 0; k < n; k++)
		if (cmd[k] == '\0')
			cmd[k] = ' ';
	while (n > 0 && cmd[n - 1] == ' ')
		n--;
	cmd[n] = '\0';
	int has_parent = ppid > 0 && proc_stat(ppid, pcomm, sizeof pcomm, &pp) == 0;
	/* Names and command lines are bytes, not necessarily UTF-8: the event
	 * takes them as they are (json_stringn_nocheck; never serialised). */
	json_t *o = json_object();
	if (!o ||
	    json_object_set_new(o, "process_name", json_stringn_nocheck(comm, strlen(comm))) ||
	    json_object_set_new(o, "command_line", json_stringn_nocheck(cmd, (size_t)n)) ||
	    json_object_set_new(o, "pid", json_integer(pid)) ||
	    (has_parent &&
	     json_object_set_new(o, "parent_name", json_stringn_nocheck(pcomm, strlen(pcomm))))) {
		json_decref(o);
		return NULL;
	}
	struct cf_event *ev = NULL;
	if (cf_event_from_json(o, &ev, err))
		ev = NULL;
	json_decref(o);
	return ev;
}

static enum fb_rc proc_events(struct cf_event **evs, size_t max, size_t *n, struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	long *pids = NULL;
	size_t np = 0;
	DIR *d = opendir("/proc");
	if (!d) {
		fb_err_set(err, "/proc: %s", strerror(errno));
		return FB_EIO;
	}
	pids = malloc(AG_SCAN_MAX_PIDS * sizeof *pids);
	if (!pids) {
		rc = FB_ENOMEM;
		goto out;
	}
	struct dirent *de;
	while (np < AG_SCAN_MAX_PIDS && (de = readdir(d)) != NULL) {
		int64_t pid = 0;
		if (de->d_name[0] >= '1' && de->d_name[0] <= '9' &&
		    fb_parse_i64(de->d_name, 1, LONG_MAX, &pid) == FB_OK)
			pids[np++] = (long)pid;
	}
	qsort(pids, np, sizeof *pids, cmp_long_desc);
	for (size_t i = 0; i < np && *n < max; i++) {
		struct fb_err e2 = {""};
		struct cf_event *ev = proc_event(pids[i], &e2);
		if (ev)
			evs[(*n)++] = ev;
	}
out:
	free(pids);
	closedir(d);
	return rc;
}

/* ---- events from a file ----------------------------------------------------- */

static enum fb_rc file_events(const struct ag_scan_opts *o, struct cf_event **evs, size_t max,
                              size_t *n, struct fb_err *err)
{
	unsigned char *data = NULL;
	size_t len = 0;
	enum fb_rc rc = fb_file_read(o->input, AG_SCAN_MAX_INPUT, &data, &len);
	if (rc) {
		fb_err_set(err, "scan-input %s: %s", o->input,
		           rc == FB_ETOOBIG ? "over 1 MiB" : fb_rc_str(rc));
		return rc == FB_ETOOBIG ? FB_ETOOBIG : FB_EIO;
	}
	const char *p = (const char *)data, *end = p + len;
	size_t line = 0;
	while (p < end && *n < max) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		line++;
		const char *s = p;
		while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
			s++;
		if (s < e && *s != '#') {
			struct cf_event *ev = NULL;
			struct fb_err le = {""};
			if (cf_event_from_text(s, (size_t)(e - s), &ev, &le))
				say(o, "warn", "scan-input %s line %zu skipped: %s", o->input, line,
				    le.msg);
			else
				evs[(*n)++] = ev;
		}
		p = nl ? nl + 1 : end;
	}
	free(data);
	return FB_OK;
}

enum fb_rc ag_scan_events(const struct ag_scan_opts *o, struct cf_event **evs, size_t max,
                          size_t *n, struct fb_err *err)
{
	*n = 0;
	if (max > AG_SCAN_MAX_EVENTS)
		max = AG_SCAN_MAX_EVENTS;
	if (o->input && o->input[0])
		return file_events(o, evs, max, n, err);
	return proc_events(evs, max, n, err);
}

/* ---- the pass --------------------------------------------------------------- */

/* Load channel ch's active file (content sha) into lf. */
static void load_file(struct ag_state *st, const struct cf_registry *reg,
                      const struct ag_scan_opts *o, uint32_t ch, const char *sha,
                      struct ag_loaded *lf)
{
	char path[PATH_MAX], got[FB_SHA256_HEX_LEN + 1];
	unsigned char *data = NULL;
	size_t len = 0;
	struct fb_err perr = {""};
	cf_file_free(lf->f);
	lf->f = NULL;
	lf->channel = ch;
	snprintf(lf->sha256, sizeof lf->sha256, "%s", sha);
	lf->why[0] = '\0';
	enum fb_rc rc = ag_slot_path(st, ch, AG_SLOT_NONE, path, sizeof path);
	if (!rc)
		rc = fb_file_read(path, CF_MAX_FILE, &data, &len);
	if (rc) {
		snprintf(lf->why, sizeof lf->why, "active slot unreadable: %s", fb_rc_str(rc));
		goto out;
	}
	fb_sha256_hex(data, len, got);
	if (strcmp(got, sha) != 0) {
		snprintf(lf->why, sizeof lf->why, "active slot holds %.16s..., not the content",
		         got);
		goto out;
	}
	ag_breadcrumb(st, ch); /* parsing is interpreting: a crash here names ch */
	rc = cf_parse(reg, data, len, &lf->f, &perr);
	ag_breadcrumb(st, 0);
	if (rc) {
		snprintf(lf->why, sizeof lf->why, "does not parse: %s", perr.msg);
		goto out;
	}
	if (cf_file_channel(lf->f) != ch) {
		snprintf(lf->why, sizeof lf->why, "file header names channel %u",
		         cf_file_channel(lf->f));
		cf_file_free(lf->f);
		lf->f = NULL;
	}
out:
	free(data);
	if (lf->why[0])
		say(o, "warn",
		    "channel %u content %.12s cannot be evaluated (each evaluation "
		    "counts as an error): %s",
		    ch, sha, lf->why);
}

/* Bring sc in line with the active contents of st: load what changed, drop
 * channels no longer active. */
static void sync_files(struct ag_scanner *sc, struct ag_state *st, const struct cf_registry *reg,
                       const struct ag_scan_opts *o)
{
	for (size_t i = 0; i < sc->n;) {
		const char *sha = ag_state_active(st, sc->files[i].channel);
		if (sha) {
			i++;
			continue;
		}
		cf_file_free(sc->files[i].f);
		sc->files[i] = sc->files[--sc->n];
	}
	for (size_t i = 0; i < st->n_channels; i++) {
		uint32_t ch = st->ch[i].id;
		const char *sha = ag_state_active(st, ch);
		if (!sha)
			continue;
		struct ag_loaded *lf = NULL;
		for (size_t k = 0; k < sc->n; k++)
			if (sc->files[k].channel == ch)
				lf = &sc->files[k];
		if (!lf) {
			if (sc->n >= AG_MAX_CHANNELS)
				continue;
			lf = &sc->files[sc->n++];
			memset(lf, 0, sizeof *lf);
		} else if (strcmp(lf->sha256, sha) == 0 && lf->f) {
			continue;
		} else if (strcmp(lf->sha256, sha) == 0 && !lf->f) {
			/* failed before: try again quietly (a transient read error) */
			ag_scan_log_fn log = o->log;
			struct ag_scan_opts quiet = *o;
			quiet.log = NULL;
			load_file(st, reg, &quiet, ch, sha, lf);
			if (lf->f && log)
				log("info", "channel %u content %.12s loads now", ch, sha);
			continue;
		}
		load_file(st, reg, o, ch, sha, lf);
	}
}

enum fb_rc ag_scan_pass(struct ag_scanner *sc, struct ag_state *st, const struct cf_registry *reg,
                        const struct ag_scan_opts *o, struct ag_health *h,
                        struct ag_scan_result *res, struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	int64_t t0 = fb_mono_ms();
	struct cf_event **evs = NULL;
	size_t n = 0, max = o->max_events;
	memset(res, 0, sizeof *res);
	if (max == 0)
		return FB_OK;
	if (max > AG_SCAN_MAX_EVENTS)
		max = AG_SCAN_MAX_EVENTS;
	sync_files(sc, st, reg, o);
	res->channels = sc->n;
	if (sc->n == 0)
		goto out;
	evs = calloc(max, sizeof *evs);
	if (!evs) {
		rc = FB_ENOMEM;
		goto out;
	}
	if ((rc = ag_scan_events(o, evs, max, &n, err)))
		goto out;
	res->events = n;
	for (size_t i = 0; i < sc->n && !res->truncated; i++) {
		const struct ag_loaded *lf = &sc->files[i];
		struct ag_chan_health *c = ag_health_channel(h, lf->channel);
		uint64_t timeouts = 0, errors = 0, matches = 0, blocks = 0;
		uint32_t block_rule = 0;
		char first[256] = "";
		if (!c)
			continue;
		ag_breadcrumb(st, lf->channel); /* a crash in these evaluations names it */
		for (size_t k = 0; k < n; k++) {
			if (o->max_ms > 0 && fb_mono_ms() - t0 >= o->max_ms) {
				res->truncated = 1;
				break;
			}
			c->evals++;
			res->evals++;
			if (!lf->f) {
				c->errors++;
				continue;
			}
			struct cf_verdict vd;
			struct fb_err ee = {""};
			enum fb_rc erc = cf_content_eval(lf->f, evs[k], o->budget, &vd, &ee);
			if (erc) {
				if (erc == FB_ETIMEOUT)
					timeouts++, c->timeouts++;
				else
					errors++, c->errors++;
				if (!first[0])
					snprintf(first, sizeof first, "%s", ee.msg);
				continue;
			}
			if (vd.matches == 0)
				continue;
			matches++;
			c->detections++;
			res->matches++;
			if (vd.action == CF_ACT_BLOCK) { /* counted, never acted on */
				blocks++;
				c->blocks++;
				if (!block_rule)
					block_rule = vd.action_rule;
			}
		}
		ag_breadcrumb(st, 0);
		if (timeouts || errors)
			say(o, "warn",
			    "channel %u content %.12s: %llu time-out(s), %llu error(s) in %zu "
			    "evaluations (first: %s)",
			    lf->channel, lf->sha256, (unsigned long long)timeouts,
			    (unsigned long long)errors, n, first);
		if (matches)
			say(o, "debug",
			    "channel %u: %llu detection(s), %llu would be blocked (first by rule "
			    "%u; fb-agent never blocks)",
			    lf->channel, (unsigned long long)matches, (unsigned long long)blocks,
			    block_rule);
	}
	if (res->truncated)
		say(o, "warn", "evaluation pass stopped at its %lld ms cap after %llu evaluations",
		    (long long)o->max_ms, (unsigned long long)res->evals);
out:
	for (size_t k = 0; k < n; k++)
		cf_event_free(evs[k]);
	free(evs);
	res->ms = fb_mono_ms() - t0;
	return rc;
}
