/* fbctl's online plumbing: where the server URL and token come from (flag,
 * environment, config file), one request through libfbclient with the
 * server's refusals and transport errors told apart, and text tables. */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fb.h"
#include "fbctl.h"

#define CTL_MAX_RESPONSE ((size_t)64 << 20) /* bytes of one response body */
#define CTL_MAX_CELL     72                 /* characters of a table cell */

/* Settings read from the config file; strings owned (freed in conf_cleanup). */
struct conf {
	char *server;
	char *token;
	char *ca;
};

static enum fb_rc conf_set(void *ctx, const char *key, const char *value, struct fb_err *err)
{
	struct conf *cf = ctx;
	char **slot = NULL;
	if (strcmp(key, "server") == 0 || strcmp(key, "url") == 0)
		slot = &cf->server;
	else if (strcmp(key, "token") == 0)
		slot = &cf->token;
	else if (strcmp(key, "ca") == 0)
		slot = &cf->ca;
	if (!slot) {
		fb_err_set(err, "unknown key \"%s\" (known: server, token, ca)", key);
		return FB_EINVAL;
	}
	free(*slot);
	*slot = strdup(value);
	return *slot ? FB_OK : FB_ENOMEM;
}

static void conf_cleanup(struct conf *cf)
{
	free(cf->server);
	if (cf->token) {
		memset(cf->token, 0, strlen(cf->token));
		free(cf->token);
	}
	free(cf->ca);
	memset(cf, 0, sizeof *cf);
}

/* A non-empty environment variable, or NULL. */
static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

int ctl_open(const struct opts *o, struct ctl *c)
{
	struct conf cf = {0};
	struct fb_err err = {{0}};
	char defpath[1024];
	const char *path = o->config;
	int code = EXIT_USAGE;
	memset(c, 0, sizeof *c);
	if (!path && env_nonempty("HOME")) {
		snprintf(defpath, sizeof defpath, "%s/.config/firebreak/fbctl.conf",
		         getenv("HOME"));
		if (access(defpath, F_OK) == 0)
			path = defpath;
	}
	if (path) {
		if (fbc_conf_read(path, conf_set, &cf, &err) != FB_OK) {
			fprintf(stderr, "fbctl: config: %s\n", err.msg);
			goto out;
		}
		struct stat st;
		if (cf.token && stat(path, &st) == 0 && (st.st_mode & 077))
			fprintf(stderr,
			        "fbctl: warning: %s holds a token and is readable by others "
			        "(chmod 600 it)\n",
			        path);
	}
	const char *server = o->server                       ? o->server
	                     : env_nonempty("FIREBREAK_URL") ? env_nonempty("FIREBREAK_URL")
	                                                     : cf.server;
	const char *token = o->token                          ? o->token
	                    : env_nonempty("FIREBREAK_TOKEN") ? env_nonempty("FIREBREAK_TOKEN")
	                                                      : cf.token;
	const char *ca = o->ca                          ? o->ca
	                 : env_nonempty("FIREBREAK_CA") ? env_nonempty("FIREBREAK_CA")
	                                                : cf.ca;
	if (!server || !*server) {
		fprintf(stderr, "fbctl: no server URL: pass --server URL, set FIREBREAK_URL or put "
		                "\"server = URL\" in ~/.config/firebreak/fbctl.conf\n");
		goto out;
	}
	struct fbc_opts fo = {
	        .base_url = server, .ca_bundle = ca, .timeout_ms = 60000, .user_agent = "fbctl"};
	if (fbc_new(&fo, &c->http, &err) != FB_OK) {
		fprintf(stderr, "fbctl: %s\n",
		        err.msg[0] ? err.msg : "cannot set up the HTTP client");
		goto out;
	}
	if (token && *token) {
		enum fb_rc rc = fbc_set_token(c->http, token);
		if (rc) {
			fprintf(stderr, "fbctl: the token is %s\n",
			        rc == FB_ETOOBIG ? "too long" : "not printable ASCII");
			goto out;
		}
		c->have_token = 1;
	}
	code = EXIT_VALID;
out:
	if (code != EXIT_VALID) {
		fbc_free(c->http);
		c->http = NULL;
	}
	conf_cleanup(&cf);
	return code;
}

/* The server's message with the API's words for an option replaced by
 * fbctl's flag ("pass \"supersede\": true" -> "add --supersede"), into buf. */
static const char *in_fbctl_words(const char *msg, char *buf, size_t n)
{
	static const char *const words[][2] = {
	        {"pass \"supersede\": true", "add --supersede"},
	        {"\"force\": true", "--force"},
	        {"\"emergency\": true", "--emergency"},
	        {"set by \"policy\"", "set by --policy"},
	        {"with \"policy\" or \"ring_policies\"", "with --policy"},
	};
	size_t len = 0;
	buf[0] = '\0';
	while (*msg && len + 1 < n) {
		size_t k = 0, nw = sizeof words / sizeof words[0];
		while (k < nw && strncmp(msg, words[k][0], strlen(words[k][0])) != 0)
			k++;
		if (k < nw) {
			int w = snprintf(buf + len, n - len, "%s", words[k][1]);
			if (w < 0 || (size_t)w >= n - len)
				break;
			len += (size_t)w;
			msg += strlen(words[k][0]);
		} else {
			buf[len++] = *msg++;
			buf[len] = '\0';
		}
	}
	return buf;
}

/* The last response, kept for *raw until the next call or ctl_close. */
static struct fbc_resp g_resp;
static int g_resp_init;

void ctl_close(struct ctl *c)
{
	fbc_free(c->http);
	c->http = NULL;
	if (g_resp_init)
		fbc_resp_cleanup(&g_resp);
	g_resp_init = 0;
}

int ctl_call(struct ctl *c, const char *method, const char *path, const json_t *body, long *status,
             json_t **out, const char **raw)
{
	struct fb_err err = {{0}};
	char *text = NULL;
	int code = EXIT_REFUSED;
	*out = NULL;
	if (raw)
		*raw = NULL;
	if (status)
		*status = 0;
	if (!g_resp_init) {
		fbc_resp_init(&g_resp);
		g_resp_init = 1;
	}
	if (body && !(text = json_dumps(body, JSON_COMPACT))) {
		fprintf(stderr, "fbctl: cannot encode the request body\n");
		return EXIT_USAGE;
	}
	struct fbc_req req = {.method = method,
	                      .path = path,
	                      .body = text,
	                      .body_len = text ? strlen(text) : 0,
	                      .auth = c->have_token,
	                      .max_body = CTL_MAX_RESPONSE};
	enum fb_rc rc = fbc_do(c->http, &req, &g_resp, &err);
	if (text) {
		memset(text, 0, strlen(text)); /* may carry a token's name or content */
		free(text);
	}
	if (rc) {
		fprintf(stderr, "fbctl: transport error, no answer from %s: %s\n",
		        fbc_base_url(c->http), err.msg);
		return EXIT_REFUSED;
	}
	if (status)
		*status = g_resp.status;
	if (g_resp.status < 200 || g_resp.status > 299) {
		const char *msg = g_resp.err_msg[0] ? g_resp.err_msg : g_resp.body.data;
		char said[FBC_MAX_ERRMSG + 64];
		fprintf(stderr, "fbctl: server refused %s %s: HTTP %ld%s%s: %.*s\n", method, path,
		        g_resp.status, g_resp.err_code[0] ? " " : "", g_resp.err_code, 400,
		        msg && *msg ? in_fbctl_words(msg, said, sizeof said) : "(no message)");
		if (g_resp.status == 401 && !c->have_token)
			fprintf(stderr,
			        "fbctl: no token configured: pass --token TOKEN, set "
			        "FIREBREAK_TOKEN or put \"token = TOKEN\" in the config file\n");
		return EXIT_REFUSED;
	}
	const char *b = g_resp.body.data ? g_resp.body.data : "";
	json_error_t jerr;
	json_t *j = *b ? json_loads(b, 0, &jerr) : json_object();
	if (!j) {
		fprintf(stderr, "fbctl: %s %s: the server's answer is not JSON: %s\n", method, path,
		        jerr.text);
		goto out;
	}
	*out = j;
	if (raw)
		*raw = b;
	code = EXIT_VALID;
out:
	return code;
}

int ctl_query(char *path, size_t n, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	if (!value)
		return 0;
	size_t len = strlen(path);
	int first = strchr(path, '?') == NULL;
	int w = snprintf(path + len, n - len, "%c%s=", first ? '?' : '&', key);
	if (w < 0 || (size_t)w >= n - len)
		return -1;
	len += (size_t)w;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		            (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ||
		            *p == '~';
		if (len + (plain ? 1 : 3) >= n)
			return -1;
		if (plain) {
			path[len++] = (char)*p;
		} else {
			path[len++] = '%';
			path[len++] = hex[*p >> 4];
			path[len++] = hex[*p & 15];
		}
	}
	path[len] = '\0';
	return 0;
}

static const char *clip(char *buf, size_t n)
{
	size_t len = strlen(buf);
	size_t max = n - 1 < CTL_MAX_CELL ? n - 1 : CTL_MAX_CELL;
	if (len > max && max > 3)
		memcpy(buf + max - 3, "...", 4);
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\t' || *p == '\r')
			*p = ' ';
	return buf;
}

const char *ctl_cell(const json_t *obj, const char *key, char *buf, size_t n)
{
	const json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		snprintf(buf, n, "-");
	else if (json_is_string(v))
		snprintf(buf, n, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, n, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, n, "%g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, n, "%s", json_is_true(v) ? "yes" : "no");
	else {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		snprintf(buf, n, "%s", s ? s : "?");
		free(s);
	}
	return clip(buf, n);
}

const char *ctl_time(const json_t *obj, const char *key, char *buf, size_t n)
{
	const json_t *v = json_object_get(obj, key);
	if (!json_is_integer(v)) {
		snprintf(buf, n, "-");
		return buf;
	}
	time_t t = (time_t)json_integer_value(v);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
		snprintf(buf, n, "%lld", (long long)t);
	return buf;
}

const char *ctl_short(const json_t *obj, const char *key, size_t k, char *buf, size_t n)
{
	const char *s = json_string_value(json_object_get(obj, key));
	snprintf(buf, n, "%.*s", (int)k, s ? s : "-");
	return buf;
}

void ctl_table_init(struct ctl_table *t, size_t ncols)
{
	memset(t, 0, sizeof *t);
	t->ncols = ncols < CTL_TABLE_MAX_COLS ? ncols : CTL_TABLE_MAX_COLS;
}

static void oom(void)
{
	fprintf(stderr, "fbctl: out of memory\n");
	exit(EXIT_USAGE);
}

void ctl_table_add(struct ctl_table *t, const char *const *row)
{
	if (t->nrows >= CTL_TABLE_MAX_ROWS)
		return; /* the server's own limits keep lists below this */
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **cells = realloc(t->cells, cap * t->ncols * sizeof *cells);
		if (!cells)
			oom();
		t->cells = cells;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		char *s = strdup(row[i] ? row[i] : "-");
		if (!s)
			oom();
		t->cells[t->nrows * t->ncols + i] = s;
	}
	t->nrows++;
}

void ctl_table_print(const struct ctl_table *t, FILE *out)
{
	size_t w[CTL_TABLE_MAX_COLS] = {0};
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols; i++) {
			size_t l = strlen(t->cells[r * t->ncols + i]);
			if (l > w[i])
				w[i] = l;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t i = 0; i < t->ncols; i++) {
			const char *s = t->cells[r * t->ncols + i];
			if (i + 1 == t->ncols)
				fprintf(out, "%s", s);
			else
				fprintf(out, "%-*s  ", (int)w[i], s);
		}
		fprintf(out, "\n");
	}
}

void ctl_table_cleanup(struct ctl_table *t)
{
	for (size_t k = 0; k < t->nrows * t->ncols; k++)
		free(t->cells[k]);
	free(t->cells);
	memset(t, 0, sizeof *t);
}

int ctl_duration(const struct opts *o, const char *flag, const char *s, int64_t min_ms,
                 int64_t max_ms, int64_t *ms)
{
	struct fb_err err = {{0}};
	enum fb_rc rc = fb_parse_duration_ms(s, min_ms, max_ms, ms, &err);
	if (rc == FB_OK)
		return 0;
	int64_t v;
	fprintf(stderr, "fbctl: %s: %s%s\n", flag, err.msg,
	        rc == FB_ETOOBIG && fb_parse_i64(s, 0, INT64_MAX, &v) == FB_OK
	                ? " (a plain number is seconds; write the unit, e.g. 500ms)"
	                : "");
	return ctl_usage(o);
}

/* The member at a dotted path ("preflight.outcome") of obj, or NULL. */
static const json_t *member(const json_t *obj, const char *path)
{
	char key[64];
	while (obj && strchr(path, '.')) {
		size_t n = (size_t)(strchr(path, '.') - path);
		snprintf(key, sizeof key, "%.*s", (int)n, path);
		obj = json_object_get(obj, key);
		path += n + 1;
	}
	return obj ? json_object_get(obj, path) : NULL;
}

void ctl_print_list(const json_t *rows, const struct ctl_col *cols, size_t ncols, FILE *out)
{
	struct ctl_table t;
	const char *head[CTL_TABLE_MAX_COLS], *cell[CTL_TABLE_MAX_COLS];
	char bufs[CTL_TABLE_MAX_COLS][CTL_MAX_CELL + 200];
	ctl_table_init(&t, ncols);
	for (size_t i = 0; i < t.ncols; i++)
		head[i] = cols[i].head;
	ctl_table_add(&t, head);
	size_t r;
	json_t *row;
	json_array_foreach(rows, r, row)
	{
		for (size_t i = 0; i < t.ncols; i++) {
			const char *key = cols[i].key ? cols[i].key : "";
			const char *leaf = strrchr(key, '.') ? strrchr(key, '.') + 1 : key;
			json_t *parent = (json_t *)row;
			if (leaf != key) {
				char ppath[64];
				snprintf(ppath, sizeof ppath, "%.*s", (int)(leaf - key - 1), key);
				parent = (json_t *)member(row, ppath);
			}
			char *b = bufs[i];
			size_t bn = sizeof bufs[i];
			switch (cols[i].kind) {
			case CTL_COL_TIME: cell[i] = ctl_time(parent, leaf, b, bn); break;
			case CTL_COL_DIGEST: cell[i] = ctl_short(parent, leaf, 12, b, bn); break;
			case CTL_COL_FN: cell[i] = cols[i].fn(row, b, bn); break;
			default: cell[i] = ctl_cell(parent, leaf, b, bn); break;
			}
		}
		ctl_table_add(&t, cell);
	}
	ctl_table_print(&t, out);
	ctl_table_cleanup(&t);
}

void ctl_print_wrapped(FILE *out, const char *label, int indent, const char *text)
{
	int cols = 0;
	struct winsize ws;
	if (isatty(fileno(out)) && ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
		cols = ws.ws_col - 1;
	fprintf(out, "%-*s", indent, label);
	if (!cols) {
		fprintf(out, "%s\n", text);
		return;
	}
	int width = cols - indent > 20 ? cols - indent : 20, col = 0;
	const char *p = text;
	while (*p) {
		size_t w = strcspn(p, " ");
		if (col > 0 && col + 1 + (int)w > width) {
			fprintf(out, "\n%*s", indent, "");
			col = 0;
		} else if (col > 0) {
			fputc(' ', out);
			col++;
		}
		fwrite(p, 1, w, out);
		col += (int)w;
		p += w;
		while (*p == ' ')
			p++;
	}
	fputc('\n', out);
}

void ctl_print_raw(const char *raw)
{
	printf("%s\n", raw ? raw : "");
}

/* The ring of the signals answer where the rollout is now, or NULL. */
static const json_t *current_signal_ring(const json_t *signals)
{
	return json_array_get(json_object_get(signals, "rings"),
	                      (size_t)json_integer_value(json_object_get(signals, "ring_index")));
}

json_t *ctl_worst_signal(const json_t *signals)
{
	const json_t *ring = current_signal_ring(signals);
	const json_t *w = json_object_get(ring, "worst");
	if (!json_is_object(w))
		return NULL;
	json_t *out = json_deep_copy(w);
	if (out)
		json_object_set(out, "ring", json_object_get(ring, "ring"));
	return out;
}

static double num(const json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

/* A rate member as "12.34", or "-" when null (no host-time). */
static void rate_text(const json_t *o, const char *k, char *buf, size_t n)
{
	if (json_is_number(json_object_get(o, k)))
		snprintf(buf, n, "%.2f", num(o, k));
	else
		snprintf(buf, n, "-");
}

const char *ctl_signal_text(const json_t *signals, const json_t *worst, char *buf, size_t n)
{
	char r1[32], r2[32];
	if (worst) {
		rate_text(worst, "treated_per_1000h", r1, sizeof r1);
		rate_text(worst, "control_per_1000h", r2, sizeof r2);
		const char *label = json_string_value(json_object_get(worst, "label"));
		snprintf(buf, n,
		         "%s: %lld of %lld degraded vs %lld of %lld in control (%s vs %s per 1000 "
		         "host-hours); log-LR %.2f of %.2f",
		         label ? label : "?", (long long)num(worst, "degraded"),
		         (long long)num(worst, "treated"),
		         (long long)num(worst, "control_degraded"),
		         (long long)num(worst, "control"), r1, r2, num(worst, "statistic"),
		         num(worst, "threshold"));
		return buf;
	}
	const json_t *ring = current_signal_ring(signals);
	const char *k;
	json_t *s;
	size_t looks = 0;
	json_object_foreach((json_t *)json_object_get(ring, "signals"), k, s)
	{
		looks += json_array_size(json_object_get(s, "points"));
	}
	snprintf(buf, n, "%s",
	         !ring   ? "-"
	         : looks ? "no host degraded on any signal"
	                 : "no look at the signals in this ring yet");
	return buf;
}
