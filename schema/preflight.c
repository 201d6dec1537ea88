/* The preflight gate (FORMAT.md "Preflight"): parse a channel file, then run
 * it through the interpreter in a forked, resource-limited, network-less
 * child over the shipped event corpus plus events made from its own values. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cf_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define CF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CF_ASAN 1
#endif
#endif

#define PF_MAX_EVENTS 20000u /* corpus events loaded */
#define PF_MAX_FILES  256u   /* corpus files */

const char *cf_preflight_outcome_str(enum cf_preflight_outcome o)
{
	switch (o) {
	case CF_PF_OK: return "ok";
	case CF_PF_INVALID: return "invalid";
	case CF_PF_CRASH: return "crash";
	case CF_PF_TIMEOUT: return "time-out";
	case CF_PF_EVAL_ERROR: return "evaluation error";
	case CF_PF_ERROR: return "preflight error";
	}
	return "unknown";
}

struct evlist {
	struct cf_event **ev;
	size_t n, cap;
};

static void evlist_free(struct evlist *l)
{
	for (size_t k = 0; k < l->n; k++)
		cf_event_free(l->ev[k]);
	free(l->ev);
}

static enum fb_rc evlist_add_json(struct evlist *l, const json_t *obj, struct fb_err *err)
{
	enum fb_rc rc;
	struct cf_event *ev = NULL;
	if (l->n == l->cap) {
		fb_err_set(err, "more than %zu events", l->cap);
		return FB_ETOOBIG;
	}
	if ((rc = cf_event_from_json(obj, &ev, err)))
		return rc;
	l->ev[l->n++] = ev;
	return FB_OK;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Load every *.json of dir (each a JSON array of event objects). */
static enum fb_rc load_corpus(const char *dir, struct evlist *l, struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	DIR *d = opendir(dir);
	char *names[PF_MAX_FILES];
	size_t nn = 0;
	unsigned char *text = NULL;
	json_t *root = NULL;
	if (!d) {
		fb_err_set(err, "corpus %s: %s", dir, strerror(errno));
		return FB_EIO;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 6 || de->d_name[0] == '.' || strcmp(de->d_name + n - 5, ".json") != 0)
			continue;
		if (nn == PF_MAX_FILES) {
			fb_err_set(err, "corpus %s: more than %u files", dir, PF_MAX_FILES);
			rc = FB_ETOOBIG;
			goto out;
		}
		if (!(names[nn] = strdup(de->d_name))) {
			rc = FB_ENOMEM;
			goto out;
		}
		nn++;
	}
	qsort(names, nn, sizeof names[0], name_cmp);
	for (size_t k = 0; k < nn; k++) {
		char path[4096];
		size_t len;
		json_error_t jerr;
		snprintf(path, sizeof path, "%s/%s", dir, names[k]);
		if ((rc = fb_file_read(path, CF_MAX_JSON, &text, &len))) {
			fb_err_set(err, "corpus %s: %s", path, fb_rc_str(rc));
			goto out;
		}
		root = json_loadb((char *)text, len, JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_array(root)) {
			fb_err_set(err, "corpus %s: expected a JSON array of events (%s)", path,
			           root ? "not an array" : jerr.text);
			rc = FB_EINVAL;
			goto out;
		}
		for (size_t j = 0; j < json_array_size(root); j++) {
			if ((rc = evlist_add_json(l, json_array_get(root, j), err))) {
				fb_err_prefix(err, "corpus %s event %zu", path, j);
				goto out;
			}
		}
		json_decref(root);
		root = NULL;
		free(text);
		text = NULL;
	}
out:
	closedir(d);
	for (size_t k = 0; k < nn; k++)
		free(names[k]);
	json_decref(root);
	free(text);
	return rc;
}

/* A literal string the pattern likely matches (heuristic: first alternative,
 * one member per class, escapes resolved, quantifiers dropped). */
static json_t *regex_sample(const struct cf_value *v)
{
	char out[CF_MAX_VALUE + 1];
	size_t n = 0;
	for (size_t k = 0; k < v->len && n < CF_MAX_VALUE; k++) {
		char c = (char)v->p[k];
		switch (c) {
		case '^':
		case '$':
		case '(':
		case ')':
		case '*':
		case '+':
		case '?': continue;
		case '|': k = v->len; continue;
		case '.': out[n++] = 'x'; continue;
		case '{': { /* x{m,n}: x already written once, write it m - 1 more times */
			unsigned m = 0;
			while (++k < v->len && v->p[k] >= '0' && v->p[k] <= '9')
				m = m < 1000 ? m * 10 + (unsigned)(v->p[k] - '0') : m;
			while (k < v->len && v->p[k] != '}')
				k++;
			for (unsigned r = 1; n > 0 && r < m && n < CF_MAX_VALUE; r++) {
				out[n] = out[n - 1];
				n++;
			}
			continue;
		}
		case '[':
			k++;
			if (k < v->len && v->p[k] == '^') {
				out[n++] = '#';
				k++;
			} else if (k < v->len) {
				out[n++] = (char)v->p[k];
			}
			while (k < v->len && v->p[k] != ']')
				k++;
			continue;
		case '\\':
			if (++k >= v->len)
				continue;
			c = (char)v->p[k];
			out[n++] = c == 'd'   ? '7'
			           : c == 'w' ? 'w'
			           : c == 's' ? ' '
			           : c == 't' ? '\t'
			           : c == 'n' ? '\n'
			           : c == 'r' ? '\r'
			                      : c;
			continue;
		default: out[n++] = c;
		}
	}
	return json_stringn(out, n);
}

static json_t *value_sample(const struct cf_value *v)
{
	char s[80];
	switch (v->type) {
	case CF_T_INT: return json_integer(v->i);
	case CF_T_STRING:
	case CF_T_BYTES: return json_stringn((const char *)v->p, v->len);
	case CF_T_REGEX: return regex_sample(v);
	case CF_T_CIDR:
		cf_cidr_format(v, s, sizeof s);
		*strchr(s, '/') = '\0';
		return json_string(s);
	case CF_T_SHA256: fb_hex_encode(v->p, 32, s); return json_string(s);
	default: return NULL;
	}
}

/* One event per instance built from its match values, and one stress event
 * giving every attribute the file tests a maximal-length value. */
static enum fb_rc generate_events(const struct cf_file *f, struct evlist *l, struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	json_t *stress = json_object(), *obj = NULL;
	char *big = malloc(CF_MAX_VALUE);
	if (!stress || !big) {
		rc = FB_ENOMEM;
		goto out;
	}
	memset(big, 'a', CF_MAX_VALUE);
	for (size_t k = 0; k < f->n; k++) {
		const struct cf_instance *in = &f->inst[k];
		obj = json_object();
		if (!obj) {
			rc = FB_ENOMEM;
			goto out;
		}
		for (size_t j = 0; j < in->tpl->nfields; j++) {
			const struct cf_field_def *fd = &in->tpl->fields[j];
			if (fd->role != CF_ROLE_MATCH || in->v[j].type == CF_T_ABSENT)
				continue;
			json_t *s = json_object_size(obj) < CF_EVENT_MAX_ATTRS
			                    ? value_sample(&in->v[j])
			                    : NULL;
			if (s) /* NULL: not representable (bytes that are not UTF-8) */
				json_object_set_new(obj, fd->attr, s);
			if (json_object_size(stress) < CF_EVENT_MAX_ATTRS &&
			    !json_object_get(stress, fd->attr))
				json_object_set_new(stress, fd->attr,
				                    json_stringn(big, CF_MAX_VALUE));
		}
		if ((rc = evlist_add_json(l, obj, err)))
			goto out;
		json_decref(obj);
		obj = NULL;
	}
	rc = evlist_add_json(l, stress, err);
out:
	json_decref(obj);
	json_decref(stress);
	free(big);
	return rc;
}

/* What the child tells the parent; smaller than PIPE_BUF, so one write. */
struct pf_msg {
	int32_t eval_rc; /* 0 ok, else the enum fb_rc of the failing evaluation */
	int32_t net_isolated;
	uint64_t events, matches;
	char reason[400];
};

/* Bytes of address space the calling process maps now (/proc/self/statm),
 * 0 if unknown. Read in the parent: the child's limit is this plus
 * limits->address_space, so a parent with many thread stacks mapped does not
 * leave the child without room to grow its own stack. */
static uint64_t current_vm_bytes(void)
{
	unsigned char *text = NULL;
	size_t len = 0;
	int64_t pages = 0;
	if (fb_file_read("/proc/self/statm", 4096, &text, &len) != FB_OK)
		return 0;
	char *sp = strchr((char *)text, ' ');
	if (sp)
		*sp = '\0';
	if (fb_parse_i64((char *)text, 0, INT64_MAX / 65536, &pages) != FB_OK)
		pages = 0;
	free(text);
	long ps = sysconf(_SC_PAGESIZE);
	return (uint64_t)pages * (uint64_t)(ps > 0 ? ps : 4096);
}

/* Runs in the forked child: no allocation, no locks; ends with _exit(). */
static void child_run(int wfd, const struct cf_file *f, const struct evlist *l,
                      const struct cf_preflight_limits *lim)
{
	struct pf_msg m;
	memset(&m, 0, sizeof m);
	struct rlimit r;
	/* signals the caller blocked (e.g. a server's SIGTERM) must not shield the child */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* SIGXCPU at the soft limit (default action: terminate), SIGKILL a second later */
	signal(SIGXCPU, SIG_DFL);
	r.rlim_cur = lim->cpu_seconds;
	r.rlim_max = (rlim_t)lim->cpu_seconds + 1;
	setrlimit(RLIMIT_CPU, &r);
#ifndef CF_ASAN
	r.rlim_cur = r.rlim_max = lim->address_space;
	setrlimit(RLIMIT_AS, &r);
#endif
	if (unshare(CLONE_NEWNET) == 0 || unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0)
		m.net_isolated = 1;
	/* Descriptors: 0-2 open (on /dev/null if the caller had them closed), the
	 * result pipe moved to 3, everything else closed, and RLIMIT_NOFILE 4 so
	 * that no new descriptor (socket, file) can be created at all. */
	for (int fd = 0; fd < 3; fd++)
		if (fd != wfd && fcntl(fd, F_GETFD) == -1)
			open("/dev/null", O_RDWR); /* takes the lowest free number: fd */
	if (wfd != 3) {
		if (dup2(wfd, 3) != 3)
			_exit(3);
		close(wfd);
		if (wfd < 3)
			open("/dev/null", O_RDWR); /* refill the stdio slot */
		wfd = 3;
	}
	if (close_range(4, ~0u, 0) != 0)
		for (int fd = 4; fd < 65536; fd++)
			close(fd);
	r.rlim_cur = r.rlim_max = 4;
	setrlimit(RLIMIT_NOFILE, &r);

	/* TEST ONLY faults: set by tests through the limits struct, never by content */
	if (lim->test_fault == CF_PF_FAULT_CRASH) {
		signal(SIGSEGV, SIG_DFL); /* bypass sanitizer handlers: die of the signal */
		raise(SIGSEGV);
	} else if (lim->test_fault == CF_PF_FAULT_HANG) {
		for (volatile unsigned long spin = 0;; spin++)
			;
	} else if (lim->test_fault == CF_PF_FAULT_NET_PROBE) {
		/* reaching 127.0.0.1 must fail: no socket (fd limit) or no route (netns) */
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9)};
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (s >= 0 && connect(s, (struct sockaddr *)&sin, sizeof sin) == 0 &&
		    send(s, "x", 1, 0) == 1) {
			signal(SIGSEGV, SIG_DFL);
			raise(SIGSEGV);
		}
	}

	for (size_t k = 0; k < l->n; k++) {
		struct cf_verdict vd;
		struct fb_err e;
		e.msg[0] = '\0';
		enum fb_rc rc = cf_content_eval(f, l->ev[k], lim->step_budget, &vd, &e);
		m.events++;
		if (rc) {
			m.eval_rc = (int32_t)rc;
			snprintf(m.reason, sizeof m.reason, "event %zu: %.360s", k, e.msg);
			break;
		}
		m.matches += vd.matches > 0;
	}
	ssize_t w = write(wfd, &m, sizeof m);
	_exit(w == (ssize_t)sizeof m ? 0 : 2);
}

enum fb_rc cf_preflight(const struct cf_registry *reg, const void *buf, size_t len,
                        const char *corpus_dir, const struct cf_preflight_limits *limits,
                        struct cf_preflight_report *report)
{
	enum fb_rc rc = FB_OK;
	struct cf_file *f = NULL;
	struct evlist l = {0};
	struct fb_err err = {{0}};
	struct cf_preflight_limits lim = {0};
	int fds[2] = {-1, -1};
	pid_t pid = -1;
	memset(report, 0, sizeof *report);
	report->outcome = CF_PF_ERROR;

	if (limits)
		lim = *limits;
	if (lim.wall_ms <= 0)
		lim.wall_ms = 10000;
	if (!lim.cpu_seconds)
		lim.cpu_seconds = 5;
	if (!lim.address_space)
		lim.address_space = 1ull << 30;
	lim.address_space += current_vm_bytes();

	if ((rc = cf_parse(reg, buf, len, &f, &err))) {
		report->outcome = CF_PF_INVALID;
		snprintf(report->reason, sizeof report->reason, "invalid: %.480s", err.msg);
		rc = FB_OK;
		goto out;
	}
	l.cap = PF_MAX_EVENTS + f->n + 1;
	l.ev = calloc(l.cap, sizeof *l.ev);
	if (!l.ev) {
		rc = FB_ENOMEM;
		goto out;
	}
	l.cap = PF_MAX_EVENTS;
	if (corpus_dir && (rc = load_corpus(corpus_dir, &l, &err)))
		goto fail;
	l.cap = PF_MAX_EVENTS + f->n + 1;
	if ((rc = generate_events(f, &l, &err)))
		goto fail;
	if (pipe2(fds, O_CLOEXEC) != 0) {
		fb_err_set(&err, "pipe: %s", strerror(errno));
		rc = FB_EIO;
		goto fail;
	}
	int64_t t0 = fb_mono_ms(), deadline = t0 + lim.wall_ms;
	pid = fork();
	if (pid < 0) {
		fb_err_set(&err, "fork: %s", strerror(errno));
		rc = FB_EIO;
		goto fail;
	}
	if (pid == 0) {
		close(fds[0]);
		child_run(fds[1], f, &l, &lim);
	}
	close(fds[1]);
	fds[1] = -1;

	struct pf_msg m;
	size_t got = 0;
	int killed = 0, status = 0;
	memset(&m, 0, sizeof m);
	for (;;) { /* read the result until EOF or the deadline */
		int64_t left = deadline - fb_mono_ms();
		if (left <= 0) {
			kill(pid, SIGKILL);
			killed = 1;
			break;
		}
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		int pr = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
		if (pr < 0 && errno != EINTR) {
			kill(pid, SIGKILL);
			killed = 1;
			break;
		}
		if (pr <= 0)
			continue;
		ssize_t r = read(fds[0], (char *)&m + got, sizeof m - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got == sizeof m)
			break;
	}
	for (;;) { /* reap; the child exits right after writing */
		pid_t w = waitpid(pid, &status, killed ? 0 : WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			fb_err_set(&err, "waitpid: %s", strerror(errno));
			rc = FB_EIO;
			pid = -1;
			goto fail;
		}
		if (w == 0 && fb_mono_ms() >= deadline) {
			kill(pid, SIGKILL);
			killed = 1;
		} else if (w == 0) {
			usleep(1000);
		}
	}
	pid = -1;
	report->elapsed_ms = fb_mono_ms() - t0;
	report->events = m.events;
	report->matches = m.matches;
	report->net_isolated = m.net_isolated;
	m.reason[sizeof m.reason - 1] = '\0';
	if (killed) {
		report->outcome = CF_PF_TIMEOUT;
		report->signal = SIGKILL;
		snprintf(report->reason, sizeof report->reason,
		         "time-out: no result within %lld ms of wall-clock time; child killed",
		         (long long)lim.wall_ms);
	} else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU) {
		report->outcome = CF_PF_TIMEOUT;
		report->signal = SIGXCPU;
		snprintf(report->reason, sizeof report->reason,
		         "time-out: CPU limit of %u s exceeded (SIGXCPU)", lim.cpu_seconds);
	} else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
		report->outcome = CF_PF_TIMEOUT;
		report->signal = SIGKILL;
		snprintf(report->reason, sizeof report->reason,
		         "time-out: child killed by SIGKILL (CPU hard limit of %u s, or the "
		         "out-of-memory killer)",
		         lim.cpu_seconds + 1);
	} else if (WIFSIGNALED(status)) {
		report->outcome = CF_PF_CRASH;
		report->signal = WTERMSIG(status);
		snprintf(report->reason, sizeof report->reason,
		         "crash: interpreter child killed by signal %d (%s)", WTERMSIG(status),
		         strsignal(WTERMSIG(status)));
	} else if (got != sizeof m || WEXITSTATUS(status) != 0) {
		report->outcome = CF_PF_CRASH;
		snprintf(report->reason, sizeof report->reason,
		         "crash: interpreter child exited with status %d without a result "
		         "(sanitizer or runtime abort)",
		         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	} else if (m.eval_rc) {
		report->outcome = CF_PF_EVAL_ERROR;
		snprintf(report->reason, sizeof report->reason, "evaluation error (%s): %.400s",
		         fb_rc_str((enum fb_rc)m.eval_rc), m.reason);
	} else {
		report->outcome = CF_PF_OK;
		snprintf(report->reason, sizeof report->reason,
		         "ok: %llu events evaluated, %llu matched, %lld ms%s",
		         (unsigned long long)m.events, (unsigned long long)m.matches,
		         (long long)report->elapsed_ms,
		         m.net_isolated ? "" : " (no network namespace: fd limit only)");
	}
	rc = FB_OK;
	goto out;
fail:
	report->outcome = CF_PF_ERROR;
	snprintf(report->reason, sizeof report->reason, "preflight error: %.480s", err.msg);
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	evlist_free(&l);
	cf_file_free(f);
	return rc;
}
