/* fbctl's tenant commands: tenants (customer organisations) and their host
 * groups, and the customer content policies that say when content reaches
 * a tenant's hosts (GET/POST /v1/tenants..., server/README.md "Tenants and
 * customer content policies"). */
#include <stdlib.h>
#include <string.h>

#include "fb.h"
#include "fbctl.h"

/* One request on a fresh connection; with --json the server's JSON is
 * printed. On success *out is the answer (caller decrefs). */
static int request(const struct opts *o, const char *method, const char *path, const json_t *body,
                   json_t **out)
{
	struct ctl c;
	const char *raw = NULL;
	*out = NULL;
	int code = ctl_open(o, &c);
	if (code)
		return code;
	code = ctl_call(&c, method, path, body, NULL, out, &raw);
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

/* Exactly n positional arguments, named by names (e.g. "TENANT", "NAME"). */
static int want_args(const struct opts *o, int n, const char *const *names)
{
	char msg[256];
	if (o->argc == n)
		return 0;
	if (o->argc < n)
		snprintf(msg, sizeof msg, "missing %s", names[o->argc]);
	else
		snprintf(msg, sizeof msg, "unexpected argument \"%s\" (%s %s takes %d)", o->argv[n],
		         o->cmd->group, o->cmd->verb, n);
	return usage_msg(o, msg);
}

/* A tenant's or group's name (^[a-z0-9][a-z0-9_-]{0,63}$, the server's
 * rule; a tenant may also be given by id, which matches it too), or a usage
 * error naming what. */
static int name_arg(const struct opts *o, const char *what, const char *s)
{
	size_t n = strlen(s);
	int ok =
	        n >= 1 && n <= 64 && ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9'));
	for (size_t i = 1; ok && i < n; i++)
		ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		     s[i] == '-';
	if (ok)
		return 0;
	fprintf(stderr,
	        "fbctl: %s \"%s\": lower-case letters, digits, _ and -, starting with a letter or "
	        "digit, at most 64\n",
	        what, s);
	return ctl_usage(o);
}

static int int_arg(const struct opts *o, const char *what, const char *s, int64_t min, int64_t max,
                   int64_t *v)
{
	if (s && fb_parse_i64(s, min, max, v) == FB_OK)
		return 0;
	fprintf(stderr, "fbctl: %s must be an integer in [%lld, %lld], found \"%s\"\n", what,
	        (long long)min, (long long)max, s ? s : "");
	return ctl_usage(o);
}

/* A Unix time as a time, anything else as it is. */
static const char *when_cell(const json_t *row, const char *key, char *buf, size_t n)
{
	return json_is_integer(json_object_get(row, key)) ? ctl_time(row, key, buf, n)
	                                                  : ctl_cell(row, key, buf, n);
}

static const char *updated_cell(const json_t *row, char *buf, size_t n)
{
	return when_cell(row, "updated_at", buf, n);
}

/* "default, lab" : the names of a tenant's groups (GET /v1/tenants gives
 * their number). */
static const char *groups_cell(const json_t *row, char *buf, size_t n)
{
	size_t i, len = 0;
	json_t *g;
	if (json_is_integer(json_object_get(row, "groups")))
		return ctl_cell(row, "groups", buf, n);
	buf[0] = '\0';
	json_array_foreach(json_object_get(row, "groups"), i, g)
	{
		int w = snprintf(buf + len, n - len, "%s%s", i ? ", " : "",
		                 json_is_string(json_object_get(g, "name"))
		                         ? json_string_value(json_object_get(g, "name"))
		                         : "?");
		if (w < 0 || (size_t)w >= n - len)
			break;
		len += (size_t)w;
	}
	return buf;
}

/* What a policy applies to: "group lab" or "every group". */
static const char *scope_cell(const json_t *row, char *buf, size_t n)
{
	const char *g = json_string_value(json_object_get(row, "group"));
	snprintf(buf, n, "%s", g ? g : "(all)");
	return buf;
}

static const char *channel_cell(const json_t *row, char *buf, size_t n)
{
	if (json_is_integer(json_object_get(row, "channel")))
		return ctl_cell(row, "channel", buf, n);
	snprintf(buf, n, "(all)");
	return buf;
}

/* The mode with what qualifies it: "delayed 7200s", "version 3", "paused". */
static const char *mode_cell(const json_t *row, char *buf, size_t n)
{
	char m[32], v[64];
	ctl_cell(row, "mode", m, sizeof m);
	if (json_is_integer(json_object_get(row, "delay_s")))
		snprintf(buf, n, "%s %ss", m, ctl_cell(row, "delay_s", v, sizeof v));
	else if (json_is_integer(json_object_get(row, "version")))
		snprintf(buf, n, "%s %s", m, ctl_cell(row, "version", v, sizeof v));
	else
		snprintf(buf, n, "%s", m);
	return buf;
}

static const struct ctl_col POLICY_COLS[] = {
        {"ID", "id", CTL_COL_CELL, NULL},
        {"GROUP", NULL, CTL_COL_FN, scope_cell},
        {"CHANNEL", NULL, CTL_COL_FN, channel_cell},
        {"MODE", NULL, CTL_COL_FN, mode_cell},
        {"PAUSED AT", "paused_at", CTL_COL_CELL, NULL},
        {"REASON", "reason", CTL_COL_CELL, NULL},
        {"UPDATED", NULL, CTL_COL_FN, updated_cell},
        {"BY", "updated_by", CTL_COL_CELL, NULL},
};
#define NPOLICY_COLS (sizeof POLICY_COLS / sizeof POLICY_COLS[0])

/* ---- tenants ------------------------------------------------------------------- */

int cmd_tenant_list(struct opts *o)
{
	json_t *j = NULL;
	int code = want_args(o, 0, NULL);
	if (!code)
		code = request(o, "GET", "/v1/tenants", NULL, &j);
	if (code || o->json)
		goto out;
	static const struct ctl_col cols[] = {{"ID", "id", CTL_COL_CELL, NULL},
	                                      {"NAME", "name", CTL_COL_CELL, NULL},
	                                      {"DEFAULT MODE", "default_mode", CTL_COL_CELL, NULL},
	                                      {"AGENTS", "agents", CTL_COL_CELL, NULL},
	                                      {"GROUPS", NULL, CTL_COL_FN, groups_cell}};
	ctl_print_list(json_object_get(j, "tenants"), cols, 5, stdout);
out:
	json_decref(j);
	return code;
}

int cmd_tenant_create(struct opts *o)
{
	static const char *const names[] = {"NAME"};
	json_t *j = NULL, *body = NULL;
	int code = want_args(o, 1, names);
	if (!code)
		code = name_arg(o, "NAME", o->argv[0]);
	if (code)
		return code;
	if (o->default_mode && strcmp(o->default_mode, "early") && strcmp(o->default_mode, "ga"))
		return usage_msg(o, "--default-mode must be early or ga");
	body = json_pack("{s:s}", "name", o->argv[0]);
	if (o->default_mode)
		json_object_set_new(body, "default_mode", json_string(o->default_mode));
	if (o->reason)
		json_object_set_new(body, "reason", json_string(o->reason));
	code = request(o, "POST", "/v1/tenants", body, &j);
	if (!code && !o->json) {
		char a[32], b[80], c[16], g[512];
		printf("created tenant %s (id %s): default mode %s; groups %s\n",
		       ctl_cell(j, "name", b, sizeof b), ctl_cell(j, "id", a, sizeof a),
		       ctl_cell(j, "default_mode", c, sizeof c), groups_cell(j, g, sizeof g));
	}
	json_decref(body);
	json_decref(j);
	return code;
}

int cmd_tenant_show(struct opts *o)
{
	static const char *const names[] = {"NAME"};
	json_t *j = NULL;
	char path[128];
	int code = want_args(o, 1, names);
	if (!code)
		code = name_arg(o, "NAME", o->argv[0]);
	if (code)
		return code;
	snprintf(path, sizeof path, "/v1/tenants/%s", o->argv[0]);
	code = request(o, "GET", path, NULL, &j);
	if (code || o->json)
		goto out;
	char a[32], b[80], c[16];
	printf("tenant %s (id %s): default mode %s\n\n", ctl_cell(j, "name", b, sizeof b),
	       ctl_cell(j, "id", a, sizeof a), ctl_cell(j, "default_mode", c, sizeof c));
	static const struct ctl_col gcols[] = {{"GROUP", "id", CTL_COL_CELL, NULL},
	                                       {"NAME", "name", CTL_COL_CELL, NULL},
	                                       {"AGENTS", "agents", CTL_COL_CELL, NULL}};
	ctl_print_list(json_object_get(j, "groups"), gcols, 3, stdout);
	printf("\n");
	if (json_array_size(json_object_get(j, "policies")) == 0)
		printf("no content policies: every group is %s on every channel\n", c);
	else
		ctl_print_list(json_object_get(j, "policies"), POLICY_COLS, NPOLICY_COLS, stdout);
out:
	json_decref(j);
	return code;
}

int cmd_tenant_group_create(struct opts *o)
{
	static const char *const names[] = {"TENANT", "NAME"};
	json_t *j = NULL, *body = NULL;
	char path[128];
	int code = want_args(o, 2, names);
	if (!code)
		code = name_arg(o, "TENANT", o->argv[0]);
	if (!code)
		code = name_arg(o, "NAME", o->argv[1]);
	if (code)
		return code;
	snprintf(path, sizeof path, "/v1/tenants/%s/groups", o->argv[0]);
	body = json_pack("{s:s}", "name", o->argv[1]);
	if (o->reason)
		json_object_set_new(body, "reason", json_string(o->reason));
	code = request(o, "POST", path, body, &j);
	if (!code && !o->json) {
		char a[32], b[80], c[80];
		printf("created group %s (id %s) of tenant %s\n", ctl_cell(j, "name", b, sizeof b),
		       ctl_cell(j, "id", a, sizeof a), ctl_cell(j, "tenant", c, sizeof c));
	}
	json_decref(body);
	json_decref(j);
	return code;
}

/* ---- customer content policies -------------------------------------------------- */

int cmd_policy_list(struct opts *o)
{
	static const char *const names[] = {"TENANT"};
	json_t *j = NULL;
	char path[128];
	int code = want_args(o, 1, names);
	if (!code)
		code = name_arg(o, "TENANT", o->argv[0]);
	if (code)
		return code;
	snprintf(path, sizeof path, "/v1/tenants/%s/policies", o->argv[0]);
	code = request(o, "GET", path, NULL, &j);
	if (!code && !o->json)
		ctl_print_list(json_object_get(j, "policies"), POLICY_COLS, NPOLICY_COLS, stdout);
	json_decref(j);
	return code;
}

#define MAX_DELAY_S 7776000LL /* 90 days: the server's bound on delay_s */

int cmd_policy_set(struct opts *o)
{
	static const char *const names[] = {"TENANT"};
	static const char *const modes[] = {"early", "ga", "delayed", "paused", "n-1", "version"};
	json_t *j = NULL, *body = NULL;
	char path[128];
	int64_t ch = 0, ver = 0, delay_ms = 0;
	int code = want_args(o, 1, names);
	if (!code)
		code = name_arg(o, "TENANT", o->argv[0]);
	if (!code && o->group)
		code = name_arg(o, "--group", o->group);
	if (code)
		return code;
	if (!o->mode)
		return usage_msg(o, "--mode early|ga|delayed|paused|n-1|version is required");
	int known = 0;
	for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++)
		known |= strcmp(o->mode, modes[k]) == 0;
	if (!known)
		return usage_msg(o, "--mode must be early, ga, delayed, paused, n-1 or version");
	if (!o->reason || !*o->reason)
		return usage_msg(o,
		                 "--reason R is required (the server records it in the audit log)");
	int delayed = strcmp(o->mode, "delayed") == 0, versioned = strcmp(o->mode, "version") == 0;
	if (delayed != (o->delay != NULL))
		return usage_msg(o, delayed ? "--mode delayed needs --delay DURATION"
		                            : "--delay goes with --mode delayed only");
	if (versioned != (o->version != NULL))
		return usage_msg(o, versioned ? "--mode version needs --version V"
		                              : "--version goes with --mode version only");
	if (o->channel && (code = int_arg(o, "--channel", o->channel, 1, 0xffffffffLL, &ch)))
		return code;
	if (o->version && (code = int_arg(o, "--version", o->version, 1, INT64_MAX, &ver)))
		return code;
	if (o->delay &&
	    (code = ctl_duration(o, "--delay", o->delay, 1000, MAX_DELAY_S * 1000, &delay_ms)))
		return code;
	body = json_pack("{s:s,s:s}", "mode", o->mode, "reason", o->reason);
	if (o->group)
		json_object_set_new(body, "group", json_string(o->group));
	if (o->channel)
		json_object_set_new(body, "channel", json_integer(ch));
	if (o->delay)
		json_object_set_new(body, "delay_s", json_integer(delay_ms / 1000));
	if (o->version)
		json_object_set_new(body, "version", json_integer(ver));
	snprintf(path, sizeof path, "/v1/tenants/%s/policies", o->argv[0]);
	code = request(o, "PUT", path, body, &j);
	if (!code && !o->json) {
		char a[32], g[80], c[32], m[96], p[512];
		printf("policy %s of %s: group %s, channel %s: %s", ctl_cell(j, "id", a, sizeof a),
		       o->argv[0], scope_cell(j, g, sizeof g), channel_cell(j, c, sizeof c),
		       mode_cell(j, m, sizeof m));
		if (json_object_get(j, "paused_at"))
			printf(" (stays on %s)", ctl_cell(j, "paused_at", p, sizeof p));
		printf("\n");
	}
	json_decref(body);
	json_decref(j);
	return code;
}

int cmd_policy_delete(struct opts *o)
{
	static const char *const names[] = {"TENANT", "ID"};
	json_t *j = NULL;
	char path[160];
	int64_t id;
	int code = want_args(o, 2, names);
	if (!code)
		code = name_arg(o, "TENANT", o->argv[0]);
	if (!code)
		code = int_arg(o, "policy ID", o->argv[1], 1, INT64_MAX, &id);
	if (code)
		return code;
	snprintf(path, sizeof path, "/v1/tenants/%s/policies/%lld", o->argv[0], (long long)id);
	code = request(o, "DELETE", path, NULL, &j);
	if (!code && !o->json)
		printf("policy %lld of %s deleted\n", (long long)id, o->argv[0]);
	json_decref(j);
	return code;
}
