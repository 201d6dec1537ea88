/* fbctl's online subcommands (all but rollout watch): one request each to
 * firebreakd's operator API (server/routes.c), the answer printed as a table
 * or key: value lines, or as the server's JSON with --json. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fb.h"
#include "fbctl.h"
#include "fbschema.h"

#define MAX_MANIFEST    ((size_t)1 << 20) /* bytes of a manifest file */
#define MAX_RINGS_FILE  ((size_t)1 << 20) /* bytes of a rings file (the server's cap) */
#define MAX_BOUNDS_FILE ((size_t)65536)   /* bytes of a policy bounds file (the server's cap) */

/* ---- helpers ------------------------------------------------------------------ */

/* One request on a fresh connection. On success *out is the answer (caller
 * decrefs) and, with --json, the server's JSON has been printed. */
static int request(const struct opts *o, const char *method, const char *path, const json_t *body,
                   long *status, json_t **out)
{
	struct ctl c;
	const char *raw = NULL;
	*out = NULL;
	int code = ctl_open(o, &c);
	if (code)
		return code;
	code = ctl_call(&c, method, path, body, status, out, &raw);
	if (code == EXIT_VALID && o->json)
		ctl_print_raw(raw);
	ctl_close(&c);
	return code;
}

static int usage_msg(const struct opts *o, const char *msg)
{
	fprintf(stderr, "fbctl: %s\n", msg);
	return ctl_usage(o);
}

/* The name of positional argument k in the command's usage ("ID" of
 * "ID --reason R"), into buf; "argument" when the usage has none there. */
static const char *arg_name(const struct opts *o, int k, char *buf, size_t n)
{
	const char *p = o->cmd ? o->cmd->args : "";
	snprintf(buf, n, "argument");
	for (int i = 0; *p; i++) {
		while (*p == ' ')
			p++;
		size_t len = strcspn(p, " ");
		if (*p == '[' || *p == '-' || len == 0)
			break;
		if (i == k) {
			snprintf(buf, n, "%.*s", (int)len, p);
			break;
		}
		p += len;
	}
	return buf;
}

/* Exactly n positional arguments, or a usage error naming the first one
 * missing or the first one too many. */
static int want_args(const struct opts *o, int n)
{
	char name[64], msg[256];
	if (o->argc == n)
		return 0;
	if (o->argc < n)
		snprintf(msg, sizeof msg, "missing %s", arg_name(o, o->argc, name, sizeof name));
	else
		snprintf(msg, sizeof msg, "unexpected argument \"%s\" (%s takes %d)", o->argv[n],
		         o->cmd && o->cmd->verb ? o->cmd->verb
		         : o->cmd               ? o->cmd->group
		                                : "it",
		         n);
	return usage_msg(o, msg);
}

/* Parse s (named what) as an integer in [min, max] into *v, or print a usage
 * error: EXIT_USAGE. */
static int int_arg(const struct opts *o, const char *what, const char *s, int64_t min, int64_t max,
                   int64_t *v)
{
	if (s && fb_parse_i64(s, min, max, v) == FB_OK)
		return 0;
	fprintf(stderr, "fbctl: %s must be an integer in [%lld, %lld], found \"%s\"\n", what,
	        (long long)min, (long long)max, s ? s : "");
	return ctl_usage(o);
}

/* The one positional argument as a positive id, copied as text into buf. */
static int id_arg(const struct opts *o, const char *what, char buf[24])
{
	int64_t v;
	int code = want_args(o, 1);
	if (!code)
		code = int_arg(o, what, o->argv[0], 1, INT64_MAX, &v);
	if (!code)
		snprintf(buf, 24, "%lld", (long long)v);
	return code;
}

/* --reason R, required for every action on a rollout or content: the
 * server records it in the audit log. */
static int need_reason(const struct opts *o)
{
	if (o->reason && *o->reason)
		return 0;
	return usage_msg(o, "--reason R is required (the server records it in the audit log)");
}

/* The full digest that text names, into out: text itself when it is a
 * whole digest (64 hex digits), else the one uploaded content whose digest
 * starts with it (at least 4 hex digits; GET /v1/content). what names the
 * argument in messages ("--content"). Returns 0, EXIT_USAGE for a malformed
 * or ambiguous prefix (the matches listed), EXIT_REFUSED when nothing
 * matches or the server refuses the look-up. */
static int resolve_sha(const struct opts *o, const char *what, const char *text, char out[65])
{
	char low[65];
	size_t n = strlen(text);
	struct ctl c;
	json_t *j = NULL;
	int code = EXIT_USAGE;
	for (size_t i = 0; i < n && i < 64; i++)
		low[i] = (char)(text[i] >= 'A' && text[i] <= 'F' ? text[i] - 'A' + 'a' : text[i]);
	low[n < 64 ? n : 64] = '\0';
	if (n < 4 || n > 64 || strspn(low, "0123456789abcdef") != n) {
		fprintf(stderr,
		        "fbctl: %s \"%s\" is not a sha256 digest or a prefix of one (4 to 64 hex "
		        "digits)\n",
		        what, text);
		return ctl_usage(o);
	}
	if (n == 64) {
		memcpy(out, low, 65);
		return 0;
	}
	if ((code = ctl_open(o, &c)))
		return code;
	code = ctl_call(&c, "GET", "/v1/content", NULL, NULL, &j, NULL);
	if (code)
		goto out;
	size_t i, hits = 0;
	json_t *e, *arr = json_object_get(j, "content");
	json_array_foreach(arr, i, e)
	{
		const char *d = json_string_value(json_object_get(e, "sha256"));
		if (d && strncmp(d, low, n) == 0 && hits++ == 0)
			snprintf(out, 65, "%s", d);
	}
	if (hits == 1) {
		code = 0;
		goto out;
	}
	if (hits == 0) {
		fprintf(stderr,
		        "fbctl: %s %s: no uploaded content has a digest starting with it (fbctl "
		        "content list shows them)\n",
		        what, text);
		code = EXIT_REFUSED;
		goto out;
	}
	fprintf(stderr, "fbctl: %s %s is ambiguous: %zu uploaded digests start with it:\n", what,
	        text, hits);
	json_array_foreach(arr, i, e)
	{
		const char *d = json_string_value(json_object_get(e, "sha256"));
		char ch[32], v[32];
		if (d && strncmp(d, low, n) == 0)
			fprintf(stderr, "  %s  channel %s version %s\n", d,
			        ctl_cell(e, "channel", ch, sizeof ch),
			        ctl_cell(e, "version", v, sizeof v));
	}
	fprintf(stderr, "fbctl: give more digits of the one you mean\n");
	code = EXIT_USAGE;
out:
	json_decref(j);
	ctl_close(&c);
	return code;
}

/* Parse a JSON option value (an object) or print a usage error. */
static int json_opt(const struct opts *o, const char *what, const char *text, json_t **out)
{
	json_error_t e;
	*out = json_loads(text, 0, &e);
	if (json_is_object(*out))
		return 0;
	fprintf(stderr, "fbctl: %s must be a JSON object: %s\n", what,
	        *out ? "not an object" : e.text);
	json_decref(*out);
	*out = NULL;
	return ctl_usage(o);
}

static void kv(const char *key, const char *value)
{
	printf("%-14s %s\n", key, value);
}

/* The preflight's outcome and reason as "ok: 34 events evaluated, ..." (the
 * server's reason usually starts with the outcome already). */
static const char *preflight_text(const json_t *pf, char *buf, size_t n)
{
	char o[32], r[400];
	ctl_cell(pf, "outcome", o, sizeof o);
	ctl_cell(pf, "reason", r, sizeof r);
	size_t ol = strlen(o);
	if (strncmp(r, o, ol) == 0 && r[ol] == ':')
		snprintf(buf, n, "%s", r);
	else
		snprintf(buf, n, "%s: %s", o, r);
	return buf;
}

/* A JSON array of strings as "a, b, c" into buf. */
static const char *list_text(const json_t *arr, char *buf, size_t n)
{
	size_t i, len = 0;
	json_t *v;
	buf[0] = '\0';
	json_array_foreach(arr, i, v)
	{
		int w = snprintf(buf + len, n - len, "%s%s", i ? ", " : "",
		                 json_is_string(v) ? json_string_value(v) : "?");
		if (w < 0 || (size_t)w >= n - len)
			break;
		len += (size_t)w;
	}
	return buf;
}

/* ---- whoami ---------------------------------------------------------------------- */

int cmd_whoami(struct opts *o)
{
	json_t *j = NULL;
	int code = want_args(o, 0);
	if (!code)
		code = request(o, "GET", "/v1/whoami", NULL, NULL, &j);
	if (code || o->json)
		goto out;
	char b1[160], b2[128], b3[32], b4[160];
	const json_t *roles = json_object_get(j, "roles");
	const char *via = json_string_value(json_object_get(j, "via"));
	printf("%s (role%s %s)", ctl_cell(j, "name", b1, sizeof b1),
	       json_array_size(roles) > 1 ? "s" : "", list_text(roles, b2, sizeof b2));
	if (via && strcmp(via, "proxy") == 0)
		printf(" through the single-sign-on proxy, no token\n");
	else if (via && strcmp(via, "agent") == 0)
		printf(" by agent token\n");
	else
		printf(" by token %s \"%s\"\n", ctl_cell(j, "token_id", b3, sizeof b3),
		       ctl_cell(j, "token_name", b4, sizeof b4));
	if (json_is_string(json_object_get(j, "tenant")))
		printf("acting for tenant %s\n", ctl_cell(j, "tenant", b1, sizeof b1));
out:
	json_decref(j);
	return code;
}

/* ---- the controller --------------------------------------------------------------- */

/* A number of seconds as "1.2s", or "-" for null. */
static const char *secs(const json_t *o, const char *key, char *buf, size_t n)
{
	const json_t *v = json_object_get(o, key);
	if (json_is_number(v))
		snprintf(buf, n, "%.1fs", json_number_value(v));
	else
		snprintf(buf, n, "-");
	return buf;
}

int cmd_controller(struct opts *o)
{
	json_t *j = NULL;
	int code = want_args(o, 0);
	if (!code)
		code = request(o, "GET", "/v1/controller", NULL, NULL, &j);
	if (code)
		goto out;
	int healthy = json_is_true(json_object_get(j, "healthy"));
	if (!o->json) {
		char b[256], c[64], d[64], e[64];
		kv("leader", ctl_cell(j, "leader", b, sizeof b));
		kv("epoch", ctl_cell(j, "epoch", b, sizeof b));
		printf("%-14s expires in %s (lease %sms)\n", "lease",
		       secs(j, "lease_expires_in_s", c, sizeof c),
		       ctl_cell(j, "lease_ms", d, sizeof d));
		printf("%-14s %s, %s ago (every %sms)\n", "last cycle",
		       ctl_cell(j, "last_cycle_at", b, sizeof b),
		       secs(j, "last_cycle_age_s", c, sizeof c),
		       ctl_cell(j, "interval_ms", e, sizeof e));
		kv("healthy", healthy ? "yes" : "no");
		if (json_is_true(json_object_get(j, "lost")))
			kv("lost", "yes (controller.lost raised, no cycle since)");
		printf("%-14s %s (%s)\n", "this replica", ctl_cell(j, "this_replica", b, sizeof b),
		       json_is_true(json_object_get(j, "this_replica_leads")) ? "leads"
		                                                              : "does not lead");
	}
	if (!healthy) {
		fflush(stdout);
		fprintf(stderr, "fbctl: the controller is not healthy: no cycle within three "
		                "intervals; no gate is looking at the rollouts\n");
		code = EXIT_REFUSED;
	}
out:
	json_decref(j);
	return code;
}

/* ---- channels ------------------------------------------------------------------------ */

int cmd_channel_create(struct opts *o)
{
	json_t *j = NULL, *body = NULL;
	int64_t id;
	long st;
	int code = want_args(o, 2);
	if (!code)
		code = int_arg(o, "channel ID", o->argv[0], 1, 0xffffffffLL, &id);
	if (code)
		return code;
	body = json_pack("{s:I,s:s}", "id", (json_int_t)id, "name", o->argv[1]);
	if (o->description)
		json_object_set_new(body, "description", json_string(o->description));
	code = request(o, "POST", "/v1/channels", body, &st, &j);
	if (!code && !o->json)
		printf("channel %lld \"%s\" %s\n", (long long)id, o->argv[1],
		       st == 201 ? "created" : "already exists (unchanged)");
	json_decref(body);
	json_decref(j);
	return code;
}

int cmd_channel_list(struct opts *o)
{
	json_t *j = NULL;
	int code = want_args(o, 0);
	if (!code)
		code = request(o, "GET", "/v1/channels", NULL, NULL, &j);
	if (code || o->json)
		goto out;
	static const struct ctl_col cols[] = {{"ID", "id", CTL_COL_CELL, NULL},
	                                      {"NAME", "name", CTL_COL_CELL, NULL},
	                                      {"GA", "ga", CTL_COL_DIGEST, NULL},
	                                      {"PREVIOUS GA", "previous_ga", CTL_COL_DIGEST, NULL},
	                                      {"DESCRIPTION", "description", CTL_COL_CELL, NULL}};
	ctl_print_list(json_object_get(j, "channels"), cols, 5, stdout);
out:
	json_decref(j);
	return code;
}

/* ---- content ---------------------------------------------------------------------------- */

int cmd_content_upload(struct opts *o)
{
	unsigned char *blob = NULL, *mtext = NULL;
	size_t blen = 0, mlen = 0;
	char *b64 = NULL;
	json_t *manifest = NULL, *body = NULL, *j = NULL;
	long st;
	int code = want_args(o, 1);
	if (code)
		return code;
	if (!o->manifest)
		return usage_msg(o, "--manifest MANIFEST.json is required (the signed manifest, "
		                    "made with fb-sign)");
	code = EXIT_USAGE;
	enum fb_rc rc = fb_file_read(o->argv[0], CF_MAX_FILE, &blob, &blen);
	if (rc) {
		fprintf(stderr, "fbctl: %s: cannot read: %s\n", o->argv[0], fb_rc_str(rc));
		goto out;
	}
	if ((rc = fb_file_read(o->manifest, MAX_MANIFEST, &mtext, &mlen))) {
		fprintf(stderr, "fbctl: %s: cannot read: %s\n", o->manifest, fb_rc_str(rc));
		goto out;
	}
	json_error_t e;
	manifest = json_loadb((const char *)mtext, mlen, 0, &e);
	if (!json_is_object(manifest)) {
		fprintf(stderr, "fbctl: %s: not a signed manifest (a JSON object): %s\n",
		        o->manifest, manifest ? "not an object" : e.text);
		goto out;
	}
	size_t b64len = sodium_base64_encoded_len(blen, sodium_base64_VARIANT_ORIGINAL);
	if (!(b64 = malloc(b64len))) {
		fprintf(stderr, "fbctl: out of memory\n");
		goto out;
	}
	sodium_bin2base64(b64, b64len, blob, blen, sodium_base64_VARIANT_ORIGINAL);
	body = json_pack("{s:O,s:s}", "manifest", manifest, "blob", b64);
	if (!body) {
		fprintf(stderr, "fbctl: out of memory\n");
		goto out;
	}
	code = request(o, "POST", "/v1/content", body, &st, &j);
	if (code || o->json)
		goto out;
	char a[80], b[32], c[32], d[32], g[512];
	if (st == 200)
		printf("%s: already uploaded (channel %s, version %s)\n",
		       ctl_cell(j, "sha256", a, sizeof a), ctl_cell(j, "channel", b, sizeof b),
		       ctl_cell(j, "version", c, sizeof c));
	else
		printf("%s: uploaded: channel %s, version %s, %s bytes, preflight %s\n",
		       ctl_cell(j, "sha256", a, sizeof a), ctl_cell(j, "channel", b, sizeof b),
		       ctl_cell(j, "version", c, sizeof c), ctl_cell(j, "size", d, sizeof d),
		       preflight_text(json_object_get(j, "preflight"), g, sizeof g));
out:
	free(blob);
	free(mtext);
	free(b64);
	json_decref(manifest);
	json_decref(body);
	json_decref(j);
	return code;
}

int cmd_content_list(struct opts *o)
{
	json_t *j = NULL;
	char path[128] = "/v1/content";
	int64_t ch;
	int code = want_args(o, 0);
	if (!code && o->channel)
		code = int_arg(o, "--channel", o->channel, 1, 0xffffffffLL, &ch);
	if (code)
		return code;
	ctl_query(path, sizeof path, "channel", o->channel);
	code = request(o, "GET", path, NULL, NULL, &j);
	if (code || o->json)
		goto out;
	static const struct ctl_col cols[] = {
	        {"SHA256", "sha256", CTL_COL_CELL, NULL},
	        {"CHANNEL", "channel", CTL_COL_CELL, NULL},
	        {"VERSION", "version", CTL_COL_CELL, NULL},
	        {"SIZE", "size", CTL_COL_CELL, NULL},
	        {"PREFLIGHT", "preflight.outcome", CTL_COL_CELL, NULL},
	        {"BAD", "bad", CTL_COL_CELL, NULL},
	        {"UPLOADED", "created", CTL_COL_TIME, NULL}};
	ctl_print_list(json_object_get(j, "content"), cols, 7, stdout);
out:
	json_decref(j);
	return code;
}

int cmd_content_show(struct opts *o)
{
	json_t *j = NULL;
	char path[128], sha[65];
	int code = want_args(o, 1);
	if (!code)
		code = resolve_sha(o, "content", o->argv[0], sha);
	if (code)
		return code;
	snprintf(path, sizeof path, "/v1/content/%s", sha);
	code = request(o, "GET", path, NULL, NULL, &j);
	if (code || o->json)
		goto out;
	char b[512];
	kv("sha256", ctl_cell(j, "sha256", b, sizeof b));
	kv("channel", ctl_cell(j, "channel", b, sizeof b));
	kv("version", ctl_cell(j, "version", b, sizeof b));
	kv("size", ctl_cell(j, "size", b, sizeof b));
	kv("uploaded", ctl_time(j, "created", b, sizeof b));
	kv("templates", ctl_cell(j, "templates", b, sizeof b));
	kv("preflight", preflight_text(json_object_get(j, "preflight"), b, sizeof b));
	kv("bad", ctl_cell(j, "bad", b, sizeof b));
	if (json_is_true(json_object_get(j, "bad")))
		kv("bad reason", ctl_cell(j, "bad_reason", b, sizeof b));
	json_t *m = json_object_get(j, "manifest");
	json_t *signed_ = json_object_get(m, "signed");
	printf("manifest\n");
	printf("  %-12s %s\n", "created", ctl_time(signed_, "created", b, sizeof b));
	printf("  %-12s %s\n", "expires", ctl_time(signed_, "expires", b, sizeof b));
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(m, "signatures"), i, s)
	{
		printf("  %-12s %s\n", i == 0 ? "signed by" : "",
		       ctl_cell(s, "keyid", b, sizeof b));
	}
out:
	json_decref(j);
	return code;
}

int cmd_content_clear_bad(struct opts *o)
{
	json_t *j = NULL, *body = NULL;
	char path[160], sha[65];
	long st;
	int code = want_args(o, 1);
	if (!code)
		code = need_reason(o);
	if (!code)
		code = resolve_sha(o, "content", o->argv[0], sha);
	if (code)
		return code;
	snprintf(path, sizeof path, "/v1/content/%s/clear-bad", sha);
	body = json_pack("{s:s}", "reason", o->reason);
	code = request(o, "POST", path, body, &st, &j);
	if (!code && !o->json) {
		char a[64], b[32], c[32], d[256];
		if (st == 202)
			printf("content %s: %s approval recorded (%s of %s): %s\n", sha,
			       ctl_cell(j, "action", a, sizeof a),
			       ctl_cell(j, "approvals", b, sizeof b),
			       ctl_cell(j, "needed", c, sizeof c),
			       ctl_cell(j, "message", d, sizeof d));
		else
			printf("content %s: not marked bad\n", sha);
	}
	json_decref(body);
	json_decref(j);
	return code;
}

/* ---- rollouts ------------------------------------------------------------------------------ */

static void print_rollout_line(const json_t *r)
{
	char a[32], b[32], c[16], d[32], e[32], f[64];
	printf("rollout %s: %s, channel %s, content %s version %s, ring %s\n",
	       ctl_cell(r, "id", a, sizeof a), ctl_cell(r, "state", b, sizeof b),
	       ctl_cell(r, "channel", d, sizeof d), ctl_short(r, "content", 12, c, sizeof c),
	       ctl_cell(r, "version", e, sizeof e), ctl_cell(r, "ring", f, sizeof f));
	const char *why = json_string_value(json_object_get(r, "state_reason"));
	if (why && *why)
		printf("  reason: %s\n", why);
}

int cmd_rollout_start(struct opts *o)
{
	json_t *j = NULL, *body = NULL, *pol = NULL;
	int64_t ch;
	char sha[65];
	int code = want_args(o, 0);
	if (code)
		return code;
	if (!o->channel)
		return usage_msg(o, "--channel N is required");
	if (!o->content)
		return usage_msg(o, "--content SHA is required");
	if ((code = int_arg(o, "--channel", o->channel, 1, 0xffffffffLL, &ch)))
		return code;
	if ((code = need_reason(o)))
		return code;
	if (o->policy && (code = json_opt(o, "--policy", o->policy, &pol)))
		return code;
	if ((code = resolve_sha(o, "--content", o->content, sha)))
		goto out;
	body = json_pack("{s:I,s:s}", "channel", (json_int_t)ch, "content", sha);
	if (o->rings) {
		json_t *arr = json_array();
		const char *p = o->rings;
		while (*p) {
			const char *comma = strchr(p, ',');
			size_t n = comma ? (size_t)(comma - p) : strlen(p);
			if (n == 0 || n > 64) {
				json_decref(arr);
				code = usage_msg(o,
				                 "--rings is a comma-separated list of ring names");
				goto out;
			}
			json_array_append_new(arr, json_stringn(p, n));
			p += n + (comma ? 1 : 0);
		}
		json_object_set_new(body, "rings", arr);
	}
	if (pol)
		json_object_set(body, "policy", pol);
	if (o->supersede)
		json_object_set_new(body, "supersede", json_true());
	if (o->emergency)
		json_object_set_new(body, "emergency", json_true());
	if (o->reason)
		json_object_set_new(body, "reason", json_string(o->reason));
	code = request(o, "POST", "/v1/rollouts", body, NULL, &j);
	if (code || o->json)
		goto out;
	char a[32], b[512];
	if (json_is_true(json_object_get(j, "emergency")))
		printf("rollout %s staged (emergency): channel %lld, content %s, rings %s\n"
		       "it starts when a second, different release or admin user runs: fbctl "
		       "rollout approve %s --reason R\n",
		       ctl_cell(j, "id", a, sizeof a), (long long)ch, sha,
		       list_text(json_object_get(j, "rings"), b, sizeof b), a);
	else
		printf("rollout %s started: channel %lld, content %s, rings %s\n",
		       ctl_cell(j, "id", a, sizeof a), (long long)ch, sha,
		       list_text(json_object_get(j, "rings"), b, sizeof b));
out:
	json_decref(pol);
	json_decref(body);
	json_decref(j);
	return code;
}

int cmd_rollout_status(struct opts *o)
{
	json_t *j = NULL, *sig = NULL, *worst = NULL;
	char id[24], path[64];
	int code = id_arg(o, "rollout ID", id);
	if (code)
		return code;
	struct ctl cx;
	if ((code = ctl_open(o, &cx)))
		return code;
	snprintf(path, sizeof path, "/v1/rollouts/%s", id);
	code = ctl_call(&cx, "GET", path, NULL, NULL, &j, NULL);
	/* the current ring's worst health signal; the rest of the status is
	 * shown without it when the server cannot say (the refusal is printed) */
	snprintf(path, sizeof path, "/v1/rollouts/%s/signals", id);
	int sig_code = code ? code : ctl_call(&cx, "GET", path, NULL, NULL, &sig, NULL);
	ctl_close(&cx);
	if (code)
		goto out;
	worst = sig_code ? NULL : ctl_worst_signal(sig);
	if (o->json) {
		/* the rollout as the server gave it, and worst_signal (null: none) */
		json_object_set_new(j, "worst_signal", worst ? json_incref(worst) : json_null());
		char *t = json_dumps(j, JSON_COMPACT);
		ctl_print_raw(t);
		free(t);
		goto out;
	}
	char b[512], c[64];
	kv("rollout", ctl_cell(j, "id", b, sizeof b));
	kv("state", ctl_cell(j, "state", b, sizeof b));
	if (json_is_true(json_object_get(j, "emergency")))
		kv("emergency", "yes (started by two approvers)");
	const char *sr = json_string_value(json_object_get(j, "state_reason"));
	if (sr)
		ctl_print_wrapped(stdout, "reason", 15, sr); /* whole, never cut */
	kv("channel", ctl_cell(j, "channel", b, sizeof b));
	snprintf(c, sizeof c, "%s", ctl_cell(j, "version", b, sizeof b));
	printf("%-14s %s (version %s)%s\n", "content", ctl_cell(j, "content", b, sizeof b), c,
	       json_is_true(json_object_get(j, "content_bad")) ? " marked bad" : "");
	kv("previous", ctl_cell(j, "previous", b, sizeof b));
	json_t *rings = json_object_get(j, "rings");
	json_int_t k = json_integer_value(json_object_get(j, "ring_index"));
	printf("%-14s %lld of %zu (%s)\n", "ring", (long long)k + 1, json_array_size(rings),
	       ctl_cell(j, "ring", b, sizeof b));
	kv("plan", list_text(rings, b, sizeof b));
	/* gate v2: each ring's holdout, the control kept on the previous file */
	size_t hi;
	json_t *h;
	json_array_foreach(json_object_get(j, "holdout_agents"), hi, h)
	{
		json_int_t held = json_integer_value(json_object_get(h, "held"));
		if (held <= 0)
			continue;
		char lbl[64];
		snprintf(lbl, sizeof lbl, "holdout %s", ctl_cell(h, "ring", b, sizeof b));
		printf("%-14s %lld of %lld agents kept on the previous content (the control)\n",
		       lbl, (long long)held,
		       (long long)json_integer_value(json_object_get(h, "agents")));
	}
	if (!sig_code)
		ctl_print_wrapped(stdout, "worst signal", 15,
		                  ctl_signal_text(sig, worst, b, sizeof b)); /* whole, never cut */
	kv("started", ctl_time(j, "started", b, sizeof b));
	kv("ring started", ctl_time(j, "ring_started", b, sizeof b));
	kv("finished", ctl_time(j, "finished", b, sizeof b));
	json_t *evs = json_object_get(j, "evaluations");
	printf("latest evaluations:%s\n", json_array_size(evs) ? "" : " none yet");
	size_t i;
	json_t *e;
	json_array_foreach(evs, i, e)
	{
		char t[32], r[64], d[16], head[160];
		const char *why = json_string_value(json_object_get(e, "reason"));
		int w = snprintf(head, sizeof head, "  %s  %-8s %-8s ",
		                 ctl_time(e, "at", t, sizeof t), ctl_cell(e, "ring", r, sizeof r),
		                 ctl_cell(e, "decision", d, sizeof d));
		ctl_print_wrapped(stdout, head, w, why ? why : "");
		if (i >= 9)
			break;
	}
out:
	json_decref(j);
	json_decref(sig);
	json_decref(worst);
	return code;
}

/* "2/4 early": a rollout's ring position and name. */
static const char *ring_cell(const json_t *r, char *buf, size_t n)
{
	const char *name = json_string_value(json_object_get(r, "ring"));
	snprintf(buf, n, "%lld/%zu %s",
	         (long long)json_integer_value(json_object_get(r, "ring_index")) + 1,
	         json_array_size(json_object_get(r, "rings")), name ? name : "-");
	return buf;
}

int cmd_rollout_list(struct opts *o)
{
	json_t *j = NULL;
	char path[128] = "/v1/rollouts";
	int code = want_args(o, 0);
	if (code)
		return code;
	ctl_query(path, sizeof path, "state", o->state);
	code = request(o, "GET", path, NULL, NULL, &j);
	if (code || o->json)
		goto out;
	static const struct ctl_col cols[] = {{"ID", "id", CTL_COL_CELL, NULL},
	                                      {"CHANNEL", "channel", CTL_COL_CELL, NULL},
	                                      {"CONTENT", "content", CTL_COL_DIGEST, NULL},
	                                      {"VERSION", "version", CTL_COL_CELL, NULL},
	                                      {"STATE", "state", CTL_COL_CELL, NULL},
	                                      {"RING", NULL, CTL_COL_FN, ring_cell},
	                                      {"STARTED", "started", CTL_COL_TIME, NULL},
	                                      {"REASON", "state_reason", CTL_COL_CELL, NULL}};
	ctl_print_list(json_object_get(j, "rollouts"), cols, 8, stdout);
out:
	json_decref(j);
	return code;
}

/* Whether verb would change nothing on a rollout in state (the server
 * answers such a request 200 with the rollout as it is, and records
 * nothing): pause on paused, resume on rolling, halt or revert on halted or
 * reverted. */
static int is_noop(const char *verb, const char *state)
{
	if (!state)
		return 0;
	if (strcmp(verb, "pause") == 0)
		return strcmp(state, "paused") == 0;
	if (strcmp(verb, "resume") == 0)
		return strcmp(state, "rolling") == 0;
	if (strcmp(verb, "halt") == 0 || strcmp(verb, "revert") == 0)
		return strcmp(state, "halted") == 0 || strcmp(state, "reverted") == 0;
	return 0;
}

/* Say that the rollout already is where verb would take it; EXIT_REFUSED. */
static int refuse_noop(const char *id, const json_t *r)
{
	char st[32], why[1100];
	fprintf(stderr,
	        "fbctl: rollout %s is already %s (reason: %s); nothing changed and this "
	        "reason was not recorded\n",
	        id, ctl_cell(r, "state", st, sizeof st),
	        ctl_cell(r, "state_reason", why, sizeof why));
	return EXIT_REFUSED;
}

/* POST /v1/rollouts/{id}/{verb} with the reason (and force); 202 is an
 * approval recorded and waiting for a second approver. A request that
 * would change nothing (is_noop, judged on the state before and on the
 * answer: a reason other than ours means another request got there first)
 * is refused: exit 1. */
static int rollout_action(struct opts *o, const char *verb)
{
	json_t *j = NULL, *body = NULL, *before = NULL;
	struct ctl c = {0};
	const char *raw = NULL;
	char id[24], path[96], path0[64];
	long st;
	int code = id_arg(o, "rollout ID", id);
	if (!code)
		code = need_reason(o);
	if (code)
		return code;
	if ((code = ctl_open(o, &c)))
		return code;
	snprintf(path0, sizeof path0, "/v1/rollouts/%s", id);
	snprintf(path, sizeof path, "/v1/rollouts/%s/%s", id, verb);
	if ((code = ctl_call(&c, "GET", path0, NULL, NULL, &before, NULL)))
		goto out;
	if (is_noop(verb, json_string_value(json_object_get(before, "state")))) {
		code = refuse_noop(id, before);
		goto out;
	}
	body = json_pack("{s:s}", "reason", o->reason);
	if (o->force)
		json_object_set_new(body, "force", json_true());
	if ((code = ctl_call(&c, "POST", path, body, &st, &j, &raw)))
		goto out;
	const char *why = json_string_value(json_object_get(j, "state_reason"));
	if (st == 200 && is_noop(verb, json_string_value(json_object_get(j, "state"))) &&
	    !(why && strstr(why, o->reason))) {
		code = refuse_noop(id, j);
		goto out;
	}
	if (o->json) {
		ctl_print_raw(raw);
	} else if (st == 202) {
		char a[64], b[32], d[32], e[256];
		printf("rollout %s: %s approval recorded (%s of %s): %s\n", id,
		       ctl_cell(j, "action", a, sizeof a), ctl_cell(j, "approvals", b, sizeof b),
		       ctl_cell(j, "needed", d, sizeof d), ctl_cell(j, "message", e, sizeof e));
	} else {
		print_rollout_line(j);
	}
out:
	ctl_close(&c);
	json_decref(before);
	json_decref(body);
	json_decref(j);
	return code;
}

int cmd_rollout_promote(struct opts *o)
{
	return rollout_action(o, "promote");
}
int cmd_rollout_pause(struct opts *o)
{
	return rollout_action(o, "pause");
}
int cmd_rollout_resume(struct opts *o)
{
	return rollout_action(o, "resume");
}
int cmd_rollout_halt(struct opts *o)
{
	return rollout_action(o, "halt");
}
int cmd_rollout_revert(struct opts *o)
{
	return rollout_action(o, "revert");
}
int cmd_rollout_approve(struct opts *o)
{
	return rollout_action(o, "approve");
}

/* ---- policy bounds ------------------------------------------------------------------ */

/* Add a row per key of a bounds section (key -> {"min", "max"}). */
static void bounds_rows(struct ctl_table *t, const char *scope, const json_t *sec)
{
	const char *key;
	json_t *b;
	json_object_foreach((json_t *)sec, key, b)
	{
		char mn[32], mx[32];
		ctl_table_add(t, (const char *[]){scope, key, ctl_cell(b, "min", mn, sizeof mn),
		                                  ctl_cell(b, "max", mx, sizeof mx)});
	}
}

static void print_bounds(const json_t *j)
{
	char v[32], when[32], who[160], why[512];
	ctl_cell(j, "version", v, sizeof v);
	if (json_integer_value(json_object_get(j, "version")) == 0)
		printf("no policy bounds set (version 0): any override within the gate's absolute "
		       "bounds is accepted\n");
	else
		printf("policy bounds version %s, set %s by %s: %s\n", v,
		       ctl_time(j, "updated", when, sizeof when),
		       ctl_cell(j, "updated_by", who, sizeof who),
		       ctl_cell(j, "reason", why, sizeof why));
	const char *key;
	json_t *f;
	json_object_foreach(json_object_get(j, "emergency_floor"), key, f)
	{
		char x[32];
		printf("emergency floor: %s >= %s\n", key,
		       ctl_cell(json_object_get(j, "emergency_floor"), key, x, sizeof x));
	}
	struct ctl_table t;
	ctl_table_init(&t, 4);
	ctl_table_add(&t, (const char *[]){"SCOPE", "KEY", "MIN", "MAX"});
	bounds_rows(&t, "global", json_object_get(j, "bounds"));
	const char *ring;
	json_t *rb;
	json_object_foreach(json_object_get(j, "rings"), ring, rb)
	{
		char scope[64];
		snprintf(scope, sizeof scope, "ring %s", ring);
		bounds_rows(&t, scope, rb);
	}
	bounds_rows(&t, "emergency", json_object_get(j, "emergency"));
	if (t.nrows > 1)
		ctl_table_print(&t, stdout);
	ctl_table_cleanup(&t);
}

int cmd_policy_bounds_get(struct opts *o)
{
	json_t *j = NULL;
	int code = want_args(o, 0);
	if (!code)
		code = request(o, "GET", "/v1/policy-bounds", NULL, NULL, &j);
	if (!code && !o->json)
		print_bounds(j);
	json_decref(j);
	return code;
}

int cmd_policy_bounds_set(struct opts *o)
{
	unsigned char *text = NULL;
	size_t len = 0;
	json_t *body = NULL, *j = NULL;
	int code = want_args(o, 1);
	if (code)
		return code;
	code = EXIT_USAGE;
	enum fb_rc rc = fb_file_read(o->argv[0], MAX_BOUNDS_FILE, &text, &len);
	if (rc) {
		fprintf(stderr, "fbctl: %s: cannot read: %s\n", o->argv[0], fb_rc_str(rc));
		goto out;
	}
	json_error_t e;
	body = json_loadb((const char *)text, len, 0, &e);
	if (!json_is_object(body)) {
		fprintf(stderr,
		        "fbctl: %s: expected a JSON object {\"bounds\": ..., \"rings\": ..., "
		        "\"emergency\": ...}: %s\n",
		        o->argv[0], body ? "not an object" : e.text);
		goto out;
	}
	if (o->reason && *o->reason)
		json_object_set_new(body, "reason", json_string(o->reason));
	if (!json_string_length(json_object_get(body, "reason"))) {
		code = usage_msg(o, "--reason R is required (or a \"reason\" in the file; the "
		                    "server records it in the audit log)");
		goto out;
	}
	code = request(o, "PUT", "/v1/policy-bounds", body, NULL, &j);
	if (!code && !o->json)
		print_bounds(j);
out:
	free(text);
	json_decref(body);
	json_decref(j);
	return code;
}

/* ---- rings and pins ----------------------------------------------------------------------------
 */

static void print_rings(const json_t *rings)
{
	struct ctl_table t;
	ctl_table_init(&t, 3);
	ctl_table_add(&t, (const char *[]){"POSITION", "NAME", "SELECTOR"});
	size_t i;
	json_t *r;
	json_array_foreach(rings, i, r)
	{
		char a[16], b[64], c[256];
		snprintf(a, sizeof a, "%zu", i);
		ctl_table_add(&t, (const char *[]){a, ctl_cell(r, "name", b, sizeof b),
		                                   ctl_cell(r, "selector", c, sizeof c)});
	}
	ctl_table_print(&t, stdout);
	ctl_table_cleanup(&t);
}

int cmd_ring_list(struct opts *o)
{
	json_t *j = NULL;
	int code = want_args(o, 0);
	if (!code)
		code = request(o, "GET", "/v1/rings", NULL, NULL, &j);
	if (!code && !o->json)
		print_rings(json_object_get(j, "rings"));
	json_decref(j);
	return code;
}

int cmd_ring_set(struct opts *o)
{
	unsigned char *text = NULL;
	size_t len = 0;
	json_t *doc = NULL, *body = NULL, *j = NULL;
	int code = want_args(o, 1);
	if (code)
		return code;
	code = EXIT_USAGE;
	enum fb_rc rc = fb_file_read(o->argv[0], MAX_RINGS_FILE, &text, &len);
	if (rc) {
		fprintf(stderr, "fbctl: %s: cannot read: %s\n", o->argv[0], fb_rc_str(rc));
		goto out;
	}
	json_error_t e;
	doc = json_loadb((const char *)text, len, 0, &e);
	if (json_is_array(doc)) {
		body = json_pack("{s:O}", "rings", doc);
	} else if (json_is_object(doc) && json_is_array(json_object_get(doc, "rings"))) {
		body = json_deep_copy(doc);
	} else {
		fprintf(stderr,
		        "fbctl: %s: expected the rings as a JSON array, or an object with "
		        "\"rings\": %s\n",
		        o->argv[0], doc ? "wrong shape" : e.text);
		goto out;
	}
	if (o->reason)
		json_object_set_new(body, "reason", json_string(o->reason));
	code = request(o, "PUT", "/v1/rings", body, NULL, &j);
	if (!code && !o->json) {
		printf("rings replaced:\n");
		print_rings(json_object_get(j, "rings"));
	}
out:
	free(text);
	json_decref(doc);
	json_decref(body);
	json_decref(j);
	return code;
}

int cmd_pin_list(struct opts *o)
{
	json_t *j = NULL;
	int code = want_args(o, 0);
	if (!code)
		code = request(o, "GET", "/v1/pins", NULL, NULL, &j);
	if (code || o->json)
		goto out;
	static const struct ctl_col cols[] = {{"ID", "id", CTL_COL_CELL, NULL},
	                                      {"TAG", "tag", CTL_COL_CELL, NULL},
	                                      {"CHANNEL", "channel", CTL_COL_CELL, NULL},
	                                      {"MODE", "mode", CTL_COL_CELL, NULL},
	                                      {"VERSION", "version", CTL_COL_CELL, NULL}};
	ctl_print_list(json_object_get(j, "pins"), cols, 5, stdout);
out:
	json_decref(j);
	return code;
}

int cmd_pin_add(struct opts *o)
{
	json_t *j = NULL, *body = NULL;
	int64_t ch, v = 0;
	int code = want_args(o, 0);
	if (code)
		return code;
	if (!o->tag || !o->channel || !o->mode)
		return usage_msg(o, "--tag k=v, --channel N and --mode n-1|version are required");
	if ((code = int_arg(o, "--channel", o->channel, 1, 0xffffffffLL, &ch)))
		return code;
	if (strcmp(o->mode, "n-1") && strcmp(o->mode, "version"))
		return usage_msg(o, "--mode must be n-1 or version");
	if (strcmp(o->mode, "version") == 0 && !o->version)
		return usage_msg(o, "--mode version needs --version V");
	if (o->version && (code = int_arg(o, "--version", o->version, 1, INT64_MAX, &v)))
		return code;
	body = json_pack("{s:s,s:I,s:s}", "tag", o->tag, "channel", (json_int_t)ch, "mode",
	                 o->mode);
	if (o->version)
		json_object_set_new(body, "version", json_integer(v));
	if (o->reason)
		json_object_set_new(body, "reason", json_string(o->reason));
	code = request(o, "POST", "/v1/pins", body, NULL, &j);
	if (!code && !o->json) {
		char a[32];
		printf("pin %s: %s on channel %lld -> %s%s%s\n", ctl_cell(j, "id", a, sizeof a),
		       o->tag, (long long)ch, o->mode, o->version ? " " : "",
		       o->version ? o->version : "");
	}
	json_decref(body);
	json_decref(j);
	return code;
}

int cmd_pin_rm(struct opts *o)
{
	json_t *j = NULL;
	char id[24], path[64];
	int code = id_arg(o, "pin ID", id);
	if (code)
		return code;
	snprintf(path, sizeof path, "/v1/pins/%s", id);
	code = request(o, "DELETE", path, NULL, NULL, &j);
	if (!code && !o->json)
		printf("pin %s deleted\n", id);
	json_decref(j);
	return code;
}

/* ---- agents ---------------------------------------------------------------------------------- */

int cmd_agent_list(struct opts *o)
{
	json_t *j = NULL;
	char path[512] = "/v1/agents", sha[65];
	int64_t v;
	int code = want_args(o, 0);
	if (!code && o->limit)
		code = int_arg(o, "--limit", o->limit, 1, 10000, &v);
	if (!code && o->after)
		code = int_arg(o, "--after", o->after, 0, INT64_MAX, &v);
	if (!code && o->health && strcmp(o->health, "healthy") && strcmp(o->health, "silent") &&
	    strcmp(o->health, "never"))
		code = usage_msg(o, "--health must be healthy, silent or never");
	if (!code && o->tag && (!strchr(o->tag, '=') || o->tag[0] == '='))
		code = usage_msg(o, "--tag must be key=value");
	if (!code && o->content)
		code = resolve_sha(o, "--content", o->content, sha);
	if (code)
		return code;
	/* every filter is the server's (GET /v1/agents), so --limit counts
	 * matching agents */
	if (ctl_query(path, sizeof path, "ring", o->ring) ||
	    ctl_query(path, sizeof path, "tag", o->tag) ||
	    ctl_query(path, sizeof path, "content", o->content ? sha : NULL) ||
	    ctl_query(path, sizeof path, "health", o->health) ||
	    ctl_query(path, sizeof path, "tenant", o->tenant) ||
	    ctl_query(path, sizeof path, "group", o->group) ||
	    ctl_query(path, sizeof path, "after", o->after) ||
	    ctl_query(path, sizeof path, "limit", o->limit))
		return usage_msg(o, "filters too long");
	code = request(o, "GET", path, NULL, NULL, &j);
	if (code || o->json)
		goto out;
	static const struct ctl_col cols[] = {{"ID", "id", CTL_COL_CELL, NULL},
	                                      {"HOSTNAME", "hostname", CTL_COL_CELL, NULL},
	                                      {"TENANT", "tenant", CTL_COL_CELL, NULL},
	                                      {"GROUP", "group", CTL_COL_CELL, NULL},
	                                      {"RING", "ring", CTL_COL_CELL, NULL},
	                                      {"TAGS", "tags", CTL_COL_CELL, NULL},
	                                      {"VERSION", "agent_version", CTL_COL_CELL, NULL},
	                                      {"HEALTH", "health", CTL_COL_CELL, NULL},
	                                      {"ACTIVE", "active", CTL_COL_CELL, NULL},
	                                      {"LAST SEEN", "last_seen", CTL_COL_TIME, NULL},
	                                      {"REVOKED", "revoked", CTL_COL_CELL, NULL}};
	ctl_print_list(json_object_get(j, "agents"), cols, 11, stdout);
	json_t *next = json_object_get(j, "next_after");
	fflush(stdout); /* the hint follows the table on a terminal */
	if (json_is_integer(next))
		fprintf(stderr, "more: add --after %lld\n", (long long)json_integer_value(next));
out:
	json_decref(j);
	return code;
}

int cmd_agent_show(struct opts *o)
{
	json_t *j = NULL;
	char id[24], path[64];
	int code = id_arg(o, "agent ID", id);
	if (code)
		return code;
	snprintf(path, sizeof path, "/v1/agents/%s", id);
	code = request(o, "GET", path, NULL, NULL, &j);
	if (code || o->json)
		goto out;
	char b[512];
	kv("agent", ctl_cell(j, "id", b, sizeof b));
	kv("hostname", ctl_cell(j, "hostname", b, sizeof b));
	kv("tenant", ctl_cell(j, "tenant", b, sizeof b));
	kv("group", ctl_cell(j, "group", b, sizeof b));
	kv("ring", ctl_cell(j, "ring", b, sizeof b));
	kv("tags", ctl_cell(j, "tags", b, sizeof b));
	kv("version", ctl_cell(j, "agent_version", b, sizeof b));
	kv("active", ctl_cell(j, "active", b, sizeof b));
	kv("boot", ctl_cell(j, "boot_id", b, sizeof b));
	kv("uptime (s)", ctl_cell(j, "uptime_s", b, sizeof b));
	kv("last seen", ctl_time(j, "last_seen", b, sizeof b));
	kv("revoked", ctl_cell(j, "revoked", b, sizeof b));
	kv("capabilities", ctl_cell(j, "capabilities", b, sizeof b));
out:
	json_decref(j);
	return code;
}

int cmd_agent_revoke(struct opts *o)
{
	json_t *j = NULL, *body = NULL;
	char id[24], path[64];
	int code = id_arg(o, "agent ID", id);
	if (code)
		return code;
	snprintf(path, sizeof path, "/v1/agents/%s/revoke", id);
	body = json_object();
	code = request(o, "POST", path, body, NULL, &j);
	if (!code && !o->json)
		printf("agent %s revoked\n", id);
	json_decref(body);
	json_decref(j);
	return code;
}

/* ---- tokens, enrollment tokens, audit
 * ------------------------------------------------------------ */

int cmd_token_create(struct opts *o)
{
	json_t *j = NULL, *body = NULL;
	int code = want_args(o, 0);
	if (code)
		return code;
	if (!o->role || !o->name)
		return usage_msg(o, "--role agent|release|soc|admin and --name N are required");
	body = json_pack("{s:s,s:s}", "role", o->role, "name", o->name);
	if (o->user)
		json_object_set_new(body, "user", json_string(o->user));
	code = request(o, "POST", "/v1/tokens", body, NULL, &j);
	if (!code && !o->json) {
		char a[32], b[256], u[160];
		printf("%s\n", ctl_cell(j, "token", b, sizeof b));
		sodium_memzero(b, sizeof b);
		fprintf(stderr,
		        "created %s token %s \"%s\" of user %s%s; it is shown only this once\n",
		        o->role, ctl_cell(j, "id", a, sizeof a), o->name,
		        ctl_cell(j, "user", u, sizeof u),
		        json_is_true(json_object_get(j, "user_created")) ? " (a new user)" : "");
	}
	json_decref(body);
	json_decref(j);
	return code;
}

int cmd_token_list(struct opts *o)
{
	json_t *j = NULL;
	int code = want_args(o, 0);
	if (!code)
		code = request(o, "GET", "/v1/tokens", NULL, NULL, &j);
	if (code || o->json)
		goto out;
	static const struct ctl_col cols[] = {{"ID", "id", CTL_COL_CELL, NULL},
	                                      {"ROLE", "role", CTL_COL_CELL, NULL},
	                                      {"NAME", "name", CTL_COL_CELL, NULL},
	                                      {"USER", "user", CTL_COL_CELL, NULL},
	                                      {"CREATED", "created", CTL_COL_TIME, NULL},
	                                      {"REVOKED", "revoked", CTL_COL_CELL, NULL}};
	ctl_print_list(json_object_get(j, "tokens"), cols, 6, stdout);
out:
	json_decref(j);
	return code;
}

int cmd_token_revoke(struct opts *o)
{
	json_t *j = NULL;
	char id[24], path[64];
	int code = id_arg(o, "token ID", id);
	if (code)
		return code;
	snprintf(path, sizeof path, "/v1/tokens/%s", id);
	code = request(o, "DELETE", path, NULL, NULL, &j);
	if (!code && !o->json)
		printf("token %s revoked\n", id);
	json_decref(j);
	return code;
}

int cmd_enroll_token_create(struct opts *o)
{
	json_t *j = NULL, *body = NULL, *tags = NULL;
	int64_t uses = 0, exp = 0;
	int code = want_args(o, 0);
	if (code)
		return code;
	if (!o->name)
		return usage_msg(o, "--name N is required");
	if (o->max_uses && (code = int_arg(o, "--max-uses", o->max_uses, 1, 100000000, &uses)))
		return code;
	if (o->expires &&
	    (code = ctl_duration(o, "--expires", o->expires, 60000, 365 * 86400000LL, &exp)))
		return code;
	if (o->tags && (code = json_opt(o, "--tags", o->tags, &tags)))
		return code;
	body = json_pack("{s:s}", "name", o->name);
	if (tags)
		json_object_set(body, "tags", tags);
	if (o->max_uses)
		json_object_set_new(body, "max_uses", json_integer(uses));
	if (o->expires)
		json_object_set_new(body, "expires_in_s", json_integer(exp / 1000));
	if (o->tenant)
		json_object_set_new(body, "tenant", json_string(o->tenant));
	if (o->group)
		json_object_set_new(body, "group", json_string(o->group));
	code = request(o, "POST", "/v1/enrollment-tokens", body, NULL, &j);
	if (!code && !o->json) {
		char a[32], b[128];
		printf("%s\n", ctl_cell(j, "token", b, sizeof b));
		sodium_memzero(b, sizeof b);
		fprintf(stderr, "created enrollment token %s \"%s\"; it is shown only this once\n",
		        ctl_cell(j, "id", a, sizeof a), o->name);
	}
	json_decref(tags);
	json_decref(body);
	json_decref(j);
	return code;
}

int cmd_audit(struct opts *o)
{
	json_t *j = NULL;
	char path[1024] = "/v1/audit";
	int64_t v;
	int code = want_args(o, 0);
	if (!code && o->limit)
		code = int_arg(o, "--limit", o->limit, 1, 1000, &v);
	if (!code && o->before)
		code = int_arg(o, "--before", o->before, 1, INT64_MAX, &v);
	if (code)
		return code;
	if (ctl_query(path, sizeof path, "action", o->action) ||
	    ctl_query(path, sizeof path, "object", o->object) ||
	    ctl_query(path, sizeof path, "actor", o->actor) ||
	    ctl_query(path, sizeof path, "user", o->user) ||
	    ctl_query(path, sizeof path, "limit", o->limit) ||
	    ctl_query(path, sizeof path, "before", o->before))
		return usage_msg(o, "filters too long");
	code = request(o, "GET", path, NULL, NULL, &j);
	if (code || o->json)
		goto out;
	static const struct ctl_col cols[] = {
	        {"ID", "id", CTL_COL_CELL, NULL},         {"AT", "at", CTL_COL_TIME, NULL},
	        {"ACTOR", "actor", CTL_COL_CELL, NULL},   {"ACTION", "action", CTL_COL_CELL, NULL},
	        {"OBJECT", "object", CTL_COL_CELL, NULL}, {"REASON", "reason", CTL_COL_CELL, NULL}};
	ctl_print_list(json_object_get(j, "audit"), cols, 6, stdout);
	json_t *next = json_object_get(j, "next_before");
	fflush(stdout); /* the hint follows the table on a terminal */
	if (json_is_integer(next))
		fprintf(stderr, "more: fbctl audit --before %lld\n",
		        (long long)json_integer_value(next));
out:
	json_decref(j);
	return code;
}

/* ---- users ------------------------------------------------------------------------ */

/* "release,soc" as a JSON array (new reference); NULL for NULL. */
static json_t *roles_json(const char *s)
{
	if (!s)
		return NULL;
	json_t *a = json_array();
	char buf[256];
	snprintf(buf, sizeof buf, "%s", s);
	for (char *p = buf, *e; *p; p = e) {
		e = p + strcspn(p, ",");
		if (*e)
			*e++ = '\0';
		json_array_append_new(a, json_string(p));
	}
	return a;
}

/* The user named by the one positional argument, as a path into path. */
static int user_path(const struct opts *o, const char *suffix, char *path, size_t n)
{
	int code = want_args(o, 1);
	if (code)
		return code;
	for (const char *c = o->argv[0]; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		      (*c >= '0' && *c <= '9') || strchr("._@+-", *c)))
			return usage_msg(
			        o, "NAME|ID: a user's name (letters, digits, . _ @ + -) or id");
	snprintf(path, n, "/v1/users/%s%s", o->argv[0], suffix);
	return 0;
}

/* One user as a line: "alice (id 4): roles release, soc; alice@example.com". */
static void print_user(const json_t *u)
{
	char a[160], b[32], c[128];
	const char *email = json_string_value(json_object_get(u, "email"));
	const char *tenant = json_string_value(json_object_get(u, "tenant"));
	printf("%s (id %s): roles %s; %s%s%s%s\n", ctl_cell(u, "name", a, sizeof a),
	       ctl_cell(u, "id", b, sizeof b), list_text(json_object_get(u, "roles"), c, sizeof c),
	       email ? email : "no e-mail", tenant ? "; tenant " : "", tenant ? tenant : "",
	       json_is_true(json_object_get(u, "disabled")) ? "; disabled" : "");
}

int cmd_user_create(struct opts *o)
{
	json_t *j = NULL, *body = NULL;
	int code = want_args(o, 1);
	if (code)
		return code;
	if (!o->role)
		return usage_msg(o, "--role ROLE[,ROLE...] is required");
	body = json_pack("{s:s,s:o}", "name", o->argv[0], "roles", roles_json(o->role));
	if (o->email)
		json_object_set_new(body, "email", json_string(o->email));
	if (o->tenant)
		json_object_set_new(body, "tenant", json_string(o->tenant));
	if (o->reason)
		json_object_set_new(body, "reason", json_string(o->reason));
	code = request(o, "POST", "/v1/users", body, NULL, &j);
	if (!code && !o->json) {
		printf("created user ");
		print_user(j);
	}
	json_decref(body);
	json_decref(j);
	return code;
}

static const char *roles_cell(const json_t *row, char *buf, size_t n)
{
	return list_text(json_object_get(row, "roles"), buf, n);
}

int cmd_user_list(struct opts *o)
{
	json_t *j = NULL;
	int code = want_args(o, 0);
	if (!code)
		code = request(o, "GET", "/v1/users", NULL, NULL, &j);
	if (code || o->json)
		goto out;
	static const struct ctl_col cols[] = {{"ID", "id", CTL_COL_CELL, NULL},
	                                      {"NAME", "name", CTL_COL_CELL, NULL},
	                                      {"EMAIL", "email", CTL_COL_CELL, NULL},
	                                      {"TENANT", "tenant", CTL_COL_CELL, NULL},
	                                      {"ROLES", NULL, CTL_COL_FN, roles_cell},
	                                      {"TOKENS", "active_tokens", CTL_COL_CELL, NULL},
	                                      {"DISABLED", "disabled", CTL_COL_CELL, NULL}};
	ctl_print_list(json_object_get(j, "users"), cols, 7, stdout);
out:
	json_decref(j);
	return code;
}

int cmd_user_show(struct opts *o)
{
	json_t *j = NULL;
	char path[200];
	int code = user_path(o, "", path, sizeof path);
	if (!code)
		code = request(o, "GET", path, NULL, NULL, &j);
	if (code || o->json)
		goto out;
	print_user(j);
	if (json_is_true(json_object_get(j, "disabled"))) {
		char r[1100];
		printf("disabled: %s\n", ctl_cell(j, "disabled_reason", r, sizeof r));
	}
	static const struct ctl_col cols[] = {{"TOKEN", "id", CTL_COL_CELL, NULL},
	                                      {"ROLE", "role", CTL_COL_CELL, NULL},
	                                      {"NAME", "name", CTL_COL_CELL, NULL},
	                                      {"CREATED", "created", CTL_COL_TIME, NULL},
	                                      {"REVOKED", "revoked", CTL_COL_CELL, NULL}};
	ctl_print_list(json_object_get(j, "tokens"), cols, 5, stdout);
out:
	json_decref(j);
	return code;
}

int cmd_user_set(struct opts *o)
{
	json_t *j = NULL, *body = NULL;
	char path[200];
	int code = user_path(o, "", path, sizeof path);
	if (code)
		return code;
	if (!o->role && !o->email)
		return usage_msg(o, "give --role and/or --email to change");
	body = json_object();
	if (o->role)
		json_object_set_new(body, "roles", roles_json(o->role));
	if (o->email)
		json_object_set_new(body, "email",
		                    strcmp(o->email, "-") ? json_string(o->email) : json_null());
	if (o->reason)
		json_object_set_new(body, "reason", json_string(o->reason));
	code = request(o, "PATCH", path, body, NULL, &j);
	if (!code && !o->json)
		print_user(j);
	json_decref(body);
	json_decref(j);
	return code;
}

static int user_toggle(struct opts *o, const char *verb)
{
	json_t *j = NULL, *body = NULL;
	char path[200], suffix[16];
	snprintf(suffix, sizeof suffix, "/%s", verb);
	int code = user_path(o, suffix, path, sizeof path);
	if (!code)
		code = need_reason(o);
	if (code)
		return code;
	body = json_pack("{s:s}", "reason", o->reason);
	code = request(o, "POST", path, body, NULL, &j);
	if (!code && !o->json)
		print_user(j);
	json_decref(body);
	json_decref(j);
	return code;
}

int cmd_user_disable(struct opts *o)
{
	return user_toggle(o, "disable");
}

int cmd_user_enable(struct opts *o)
{
	return user_toggle(o, "enable");
}
