/* fbctl: the operator and release-engineer CLI. Offline channel-file
 * commands (validate, compile, decompile, preflight, eval, capabilities) are
 * here; the online ones, which talk to firebreakd, are in online.c and
 * watch.c. Every subcommand is one row of the command table below. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fb.h"
#include "fbctl.h"
#include "fbschema.h"

/* Load the template registry from --templates, $FB_TEMPLATES or the
 * installed places (cf_locate_dir); prints why not and returns -1. */
static int load_registry(const struct opts *o, struct cf_registry **reg)
{
	struct fb_err err = {{0}};
	char dir[1200];
	if (cf_locate_dir(CF_DIR_TEMPLATES, o->templates, dir, sizeof dir, &err) != FB_OK) {
		fprintf(stderr, "fbctl: %s\n", err.msg);
		return -1;
	}
	if (cf_registry_load_dir(dir, reg, &err) != FB_OK) {
		fprintf(stderr, "fbctl: templates %s: %s (pass --templates DIR for another)\n", dir,
		        err.msg);
		return -1;
	}
	return 0;
}

/* Read a channel file: binary as is, or the JSON text form (first
 * non-blank byte '{') compiled. *bin is the binary (caller frees). */
static int read_input(const struct cf_registry *reg, const char *path, unsigned char **bin,
                      size_t *len, struct fb_err *err, int *is_invalid)
{
	unsigned char *raw = NULL;
	size_t n = 0;
	enum fb_rc rc = fb_file_read(path, CF_MAX_JSON, &raw, &n);
	*is_invalid = 0;
	if (rc) {
		fb_err_set(err, "%s: cannot read: %s", path, fb_rc_str(rc));
		*is_invalid = rc == FB_ETOOBIG;
		return -1;
	}
	size_t k = 0;
	while (k < n && (raw[k] == ' ' || raw[k] == '\n' || raw[k] == '\t' || raw[k] == '\r'))
		k++;
	if (k < n && raw[k] == '{') {
		rc = cf_compile_json(reg, (char *)raw, n, bin, len, err);
		free(raw);
		if (rc) {
			fb_err_prefix(err, "text form");
			*is_invalid = 1;
			return -1;
		}
		return 0;
	}
	*bin = raw;
	*len = n;
	return 0;
}

static void print_templates(const struct cf_file *f, FILE *out)
{
	size_t n;
	const struct cf_tpl_ref *r = cf_file_templates(f, &n);
	for (size_t k = 0; k < n; k++)
		fprintf(out, "%s%u v%u", k ? ", " : "", r[k].id, r[k].version);
}

static int cmd_validate(struct opts *o)
{
	struct cf_registry *reg = NULL;
	struct cf_file *f = NULL;
	unsigned char *bin = NULL;
	size_t len = 0;
	struct fb_err err = {{0}};
	int invalid = 0, code = EXIT_USAGE;
	if (o->argc != 1) {
		fprintf(stderr, "usage: fbctl validate [--templates DIR] [--json] FILE\n");
		return EXIT_USAGE;
	}
	const char *path = o->argv[0];
	if (load_registry(o, &reg))
		goto out;
	if (read_input(reg, path, &bin, &len, &err, &invalid) == 0) {
		enum fb_rc rc = cf_parse(reg, bin, len, &f, &err);
		invalid = rc != FB_OK;
	} else if (!invalid) {
		fprintf(stderr, "fbctl: %s\n", err.msg);
		goto out;
	}
	code = invalid ? EXIT_INVALID : EXIT_VALID;
	if (o->json) {
		json_t *j = invalid ? json_pack("{s:s,s:b,s:s}", "file", path, "valid", 0, "error",
		                                err.msg)
		                    : json_pack("{s:s,s:b,s:I,s:I,s:I,s:I,s:o}", "file", path,
		                                "valid", 1, "channel",
		                                (json_int_t)cf_file_channel(f), "content_version",
		                                (json_int_t)cf_file_content_version(f), "instances",
		                                (json_int_t)cf_file_instance_count(f), "size",
		                                (json_int_t)len, "templates",
		                                cf_file_templates_json(f));
		char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(j);
	} else if (invalid) {
		printf("%s: invalid: %s\n", path, err.msg);
	} else {
		printf("%s: valid: channel %u, content version %lld, %zu instances, %zu bytes, "
		       "templates ",
		       path, cf_file_channel(f), (long long)cf_file_content_version(f),
		       cf_file_instance_count(f), len);
		print_templates(f, stdout);
		printf("\n");
	}
out:
	cf_file_free(f);
	cf_registry_free(reg);
	free(bin);
	return code;
}

static int cmd_compile(struct opts *o)
{
	struct cf_registry *reg = NULL;
	struct cf_file *f = NULL;
	unsigned char *raw = NULL, *bin = NULL;
	size_t n = 0, len = 0;
	struct fb_err err = {{0}};
	int code = EXIT_USAGE;
	if (o->argc != 2) {
		fprintf(stderr, "usage: fbctl compile [--templates DIR] [--unchecked] IN.json "
		                "OUT.cf\n");
		return EXIT_USAGE;
	}
	enum fb_rc rc = fb_file_read(o->argv[0], CF_MAX_JSON, &raw, &n);
	if (rc) {
		fprintf(stderr, "fbctl: %s: cannot read: %s\n", o->argv[0], fb_rc_str(rc));
		goto out;
	}
	if (!o->unchecked && load_registry(o, &reg))
		goto out;
	code = EXIT_INVALID;
	if ((rc = cf_compile_json(reg, (char *)raw, n, &bin, &len, &err))) {
		printf("%s: invalid: %s\n", o->argv[0], err.msg);
		goto out;
	}
	if (!o->unchecked && (rc = cf_parse(reg, bin, len, &f, &err))) {
		printf("%s: invalid: %s\n", o->argv[0], err.msg);
		goto out;
	}
	if ((rc = fb_file_write_atomic(o->argv[1], bin, len, 0644))) {
		fprintf(stderr, "fbctl: %s: cannot write: %s\n", o->argv[1], fb_rc_str(rc));
		code = EXIT_USAGE;
		goto out;
	}
	char hex[FB_SHA256_HEX_LEN + 1];
	fb_sha256_hex(bin, len, hex);
	printf("%s: %zu bytes, sha256 %s%s\n", o->argv[1], len, hex,
	       o->unchecked ? " (unchecked)" : "");
	code = EXIT_VALID;
out:
	cf_file_free(f);
	cf_registry_free(reg);
	free(raw);
	free(bin);
	return code;
}

static int cmd_decompile(struct opts *o)
{
	struct cf_registry *reg = NULL;
	unsigned char *bin = NULL;
	size_t len = 0;
	char *text = NULL;
	struct fb_err err = {{0}};
	int code = EXIT_USAGE;
	if (o->argc != 1) {
		fprintf(stderr, "usage: fbctl decompile IN.cf\n");
		return EXIT_USAGE;
	}
	enum fb_rc rc = fb_file_read(o->argv[0], CF_MAX_FILE, &bin, &len);
	if (rc) {
		fprintf(stderr, "fbctl: %s: cannot read: %s\n", o->argv[0], fb_rc_str(rc));
		code = rc == FB_ETOOBIG ? EXIT_INVALID : EXIT_USAGE;
		goto out;
	}
	if (load_registry(o, &reg))
		fprintf(stderr, "fbctl: decompiling without field names\n");
	if ((rc = cf_decompile_json(reg, bin, len, &text, &err))) {
		fprintf(stderr, "%s: cannot decompile: %s\n", o->argv[0], err.msg);
		code = EXIT_INVALID;
		goto out;
	}
	printf("%s\n", text);
	code = EXIT_VALID;
out:
	cf_registry_free(reg);
	free(bin);
	free(text);
	return code;
}

static int cmd_preflight(struct opts *o)
{
	struct cf_registry *reg = NULL;
	unsigned char *bin = NULL;
	size_t len = 0;
	struct fb_err err = {{0}};
	struct cf_preflight_report rep;
	int invalid = 0, code = EXIT_USAGE;
	if (o->argc != 1) {
		fprintf(stderr,
		        "usage: fbctl preflight [--templates DIR] [--corpus DIR] [--json] FILE\n");
		return EXIT_USAGE;
	}
	if (load_registry(o, &reg))
		goto out;
	if (read_input(reg, o->argv[0], &bin, &len, &err, &invalid)) {
		printf("%s: %s: %s\n", o->argv[0], invalid ? "invalid" : "error", err.msg);
		code = invalid ? EXIT_INVALID : EXIT_USAGE;
		goto out;
	}
	char corpus[1200];
	if (cf_locate_dir(CF_DIR_CORPUS, o->corpus, corpus, sizeof corpus, &err) != FB_OK) {
		fprintf(stderr, "fbctl: %s\n", err.msg);
		goto out;
	}
	if (cf_preflight(reg, bin, len, corpus, NULL, &rep) != FB_OK) {
		fprintf(stderr, "fbctl: %s\n", rep.reason);
		goto out;
	}
	code = rep.outcome == CF_PF_OK ? EXIT_VALID : EXIT_INVALID;
	if (o->json) {
		static const char *const names[] = {"ok",      "invalid",    "crash",
		                                    "timeout", "eval_error", "error"};
		json_t *j =
		        json_pack("{s:s,s:s,s:b,s:I,s:I,s:I,s:s}", "file", o->argv[0], "outcome",
		                  (unsigned)rep.outcome < 6 ? names[rep.outcome] : "error", "ok",
		                  rep.outcome == CF_PF_OK, "events", (json_int_t)rep.events,
		                  "matches", (json_int_t)rep.matches, "elapsed_ms",
		                  (json_int_t)rep.elapsed_ms, "reason", rep.reason);
		char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
		if (t)
			printf("%s\n", t);
		free(t);
		json_decref(j);
	} else {
		printf("%s: %s\n", o->argv[0], rep.reason);
	}
out:
	cf_registry_free(reg);
	free(bin);
	return code;
}

static int cmd_eval(struct opts *o)
{
	struct cf_registry *reg = NULL;
	struct cf_file *f = NULL;
	struct cf_event *ev = NULL;
	unsigned char *bin = NULL, *evtext = NULL;
	size_t len = 0, evlen = 0;
	struct fb_err err = {{0}};
	struct cf_verdict vd;
	int invalid = 0, code = EXIT_USAGE;
	if (o->argc != 2) {
		fprintf(stderr, "usage: fbctl eval [--templates DIR] FILE EVENT.json\n");
		return EXIT_USAGE;
	}
	if (load_registry(o, &reg))
		goto out;
	if (read_input(reg, o->argv[0], &bin, &len, &err, &invalid) ||
	    cf_parse(reg, bin, len, &f, &err) != FB_OK) {
		printf("%s: %s: %s\n", o->argv[0], invalid || bin ? "invalid" : "error", err.msg);
		code = invalid || bin ? EXIT_INVALID : EXIT_USAGE;
		goto out;
	}
	enum fb_rc rc = fb_file_read(o->argv[1], CF_MAX_JSON, &evtext, &evlen);
	if (rc) {
		fprintf(stderr, "fbctl: %s: cannot read: %s\n", o->argv[1], fb_rc_str(rc));
		goto out;
	}
	if (cf_event_from_text((char *)evtext, evlen, &ev, &err) != FB_OK) {
		printf("%s: invalid: %s\n", o->argv[1], err.msg);
		code = EXIT_INVALID;
		goto out;
	}
	if (cf_content_eval(f, ev, 0, &vd, &err) != FB_OK) {
		printf("%s: evaluation error: %s\n", o->argv[1], err.msg);
		code = EXIT_INVALID;
		goto out;
	}
	printf("{\"action\":\"%s\",\"matches\":%u,\"first_match\":%u,\"action_rule\":%u,"
	       "\"steps\":%llu}\n",
	       cf_action_str(vd.action), vd.matches, vd.first_match, vd.action_rule,
	       (unsigned long long)vd.steps);
	code = EXIT_VALID;
out:
	cf_event_free(ev);
	cf_file_free(f);
	cf_registry_free(reg);
	free(bin);
	free(evtext);
	return code;
}

static int cmd_capabilities(struct opts *o)
{
	struct cf_registry *reg = NULL;
	if (o->argc != 0) {
		fprintf(stderr, "usage: fbctl capabilities [--templates DIR]\n");
		return EXIT_USAGE;
	}
	if (load_registry(o, &reg))
		return EXIT_USAGE;
	json_t *caps = cf_registry_capabilities(reg);
	char *s = caps ? json_dumps(caps, JSON_COMPACT) : NULL;
	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(caps);
	cf_registry_free(reg);
	return s ? EXIT_VALID : EXIT_USAGE;
}

static int cmd_version(struct opts *o)
{
	(void)o;
	printf("fbctl %s\n", FB_VERSION);
	return EXIT_VALID;
}

#define OFFLINE (OB(O_TEMPLATES) | OB(O_CORPUS) | OB(O_JSON) | OB(O_UNCHECKED))
#define J       OB(O_JSON)

/* The command table: one row per subcommand, with the options it takes. */
static const struct command commands[] = {
        {"validate", NULL, cmd_validate, OFFLINE, "[--json] FILE",
         "check a channel file (binary or JSON text form); exit 0 valid, 1 invalid"},
        {"compile", NULL, cmd_compile, OFFLINE, "[--unchecked] IN.json OUT.cf",
         "compile the JSON text form to the binary form (validated unless --unchecked)"},
        {"decompile", NULL, cmd_decompile, OFFLINE, "IN.cf",
         "print the JSON text form of a binary file"},
        {"preflight", NULL, cmd_preflight, OFFLINE, "[--corpus DIR] [--json] FILE",
         "run the file through the interpreter in a limited child over the event corpus"},
        {"eval", NULL, cmd_eval, OFFLINE, "FILE EVENT.json",
         "evaluate the file's rules against one event; print the verdict as JSON"},
        {"capabilities", NULL, cmd_capabilities, OFFLINE, "",
         "print the template types and versions the registry interprets"},
        {"version", NULL, cmd_version, OFFLINE, "", "print fbctl's version (also fbctl --version)"},
        {"whoami", NULL, cmd_whoami, J, "[--json]",
         "who the server takes you for: user, role(s), token, and how you were "
         "authenticated"},
        {"controller", NULL, cmd_controller, J, "[--json]",
         "which replica holds the controller lease, its last cycle, whether it is healthy "
         "(exit 1 when not: no gate is running)"},
        {"channel", "create", cmd_channel_create, J | OB(O_DESCRIPTION),
         "ID NAME [--description D]", "create a channel (admin); the same again is a no-op"},
        {"channel", "list", cmd_channel_list, J, "[--json]",
         "channels with their GA and previous GA content"},
        {"content", "upload", cmd_content_upload, J | OB(O_MANIFEST),
         "FILE.cf --manifest MANIFEST.json",
         "upload a binary channel file and its signed manifest (release, admin); the server "
         "verifies, parses and preflights it"},
        {"content", "list", cmd_content_list, J | OB(O_CHANNEL), "[--channel N] [--json]",
         "uploaded content, newest version first per channel"},
        {"content", "show", cmd_content_show, J, "SHA [--json]",
         "one content (SHA: its digest or any unique prefix): size, templates, preflight, bad "
         "mark, manifest signers"},
        {"content", "clear-bad", cmd_content_clear_bad, J | OB(O_REASON), "SHA --reason R",
         "clear a halted content's bad mark so it can be rolled out again (release, admin; "
         "two different approvers)"},
        {"rollout", "start", cmd_rollout_start,
         J | OB(O_CHANNEL) | OB(O_CONTENT) | OB(O_RINGS) | OB(O_POLICY) | OB(O_SUPERSEDE) |
                 OB(O_REASON) | OB(O_EMERGENCY),
         "--channel N --content SHA --reason R [--rings a,b] [--policy JSON] [--supersede] "
         "[--emergency]",
         "start a rollout through the rings (release, admin); SHA may be any unique prefix "
         "of the digest; --policy overrides the gate policy of every ring, e.g. "
         "'{\"min_bake_s\":600}', within the admin policy bounds; --supersede replaces the "
         "channel's active rollout; --emergency stages it until a second approver runs "
         "rollout approve, and lets min_bake_s go below the normal bound down to the "
         "emergency floor"},
        {"rollout", "status", cmd_rollout_status, J, "ID [--json]",
         "one rollout: state, ring, and its latest gate evaluations with their reasons"},
        {"rollout", "list", cmd_rollout_list, J | OB(O_STATE), "[--state S] [--json]",
         "rollouts, newest first; S: staged, rolling, paused, watching, completed, halted, "
         "reverted, superseded or active"},
        {"rollout", "watch", cmd_rollout_watch, J | OB(O_INTERVAL) | OB(O_TIMEOUT),
         "ID [--interval DURATION] [--timeout DURATION] [--json]",
         "live progress per ring until the rollout ends (--interval default 1s, 100ms to 1m; "
         "--json: one line of JSON per change); exit 0 completed, 3 halted, reverted or "
         "superseded, 1 on errors or at --timeout"},
        {"rollout", "promote", cmd_rollout_promote, J | OB(O_REASON) | OB(O_FORCE),
         "ID --reason R [--force]",
         "promote to the next ring now if the gate allows it; --force overrides the gate "
         "with two release approvers"},
        {"rollout", "approve", cmd_rollout_approve, J | OB(O_REASON), "ID --reason R",
         "start a staged emergency rollout at ring 0: a second, different release or admin "
         "user than its creator"},
        {"rollout", "pause", cmd_rollout_pause, J | OB(O_REASON), "ID --reason R",
         "stop promotions (assignments stay as they are); exit 1 if it is already paused"},
        {"rollout", "resume", cmd_rollout_resume, J | OB(O_REASON), "ID --reason R",
         "resume a paused rollout (exit 1 if it is already rolling); a halted one needs two "
         "approvers and restarts at ring 0"},
        {"rollout", "halt", cmd_rollout_halt, J | OB(O_REASON), "ID --reason R",
         "halt at once: exposed agents go back to the previous content (soc and up); exit 1 "
         "if it is already halted"},
        {"rollout", "revert", cmd_rollout_revert, J | OB(O_REASON), "ID --reason R",
         "halt an active rollout, or take a completed one's GA back to the previous content"},
        {"ring", "list", cmd_ring_list, J, "[--json]", "the rings in order with their selectors"},
        {"ring", "set", cmd_ring_set, J | OB(O_REASON), "FILE.json [--reason R]",
         "replace the rings (admin) with FILE: [{\"name\":..., \"selector\":...}, ...]"},
        {"policy-bounds", "get", cmd_policy_bounds_get, J, "[--json]",
         "the admin bounds on rollout gate policies and the emergency floor in force"},
        {"policy-bounds", "set", cmd_policy_bounds_set, J | OB(O_REASON), "FILE.json [--reason R]",
         "replace the bounds (admin) with FILE: {\"bounds\": {KEY: {\"min\": .., \"max\": ..}}, "
         "\"rings\": {RING: {...}}, \"emergency\": {\"min_bake_s\": {\"min\": ..}}}; a reason "
         "from --reason or the file's \"reason\""},
        {"pin", "list", cmd_pin_list, J, "[--json]", "tag pins"},
        {"pin", "add", cmd_pin_add,
         J | OB(O_TAG) | OB(O_CHANNEL) | OB(O_MODE) | OB(O_VERSION) | OB(O_REASON),
         "--tag k=v --channel N --mode n-1|version [--version V] [--reason R]",
         "hold agents with the tag at GA's predecessor or at one version (admin)"},
        {"pin", "rm", cmd_pin_rm, J, "ID", "delete a pin (admin)"},
        {"agent", "list", cmd_agent_list,
         J | OB(O_RING) | OB(O_TAG) | OB(O_CONTENT) | OB(O_HEALTH) | OB(O_LIMIT) | OB(O_AFTER) |
                 OB(O_TENANT) | OB(O_GROUP),
         "[--ring R] [--tag k=v] [--content SHA] [--health healthy|silent|never] [--tenant T] "
         "[--group G] [--limit N] [--after ID] [--json]",
         "agents in id order, filtered by the server; the first N (default 100) after agent "
         "ID; --content: agents running that content (a unique digest prefix will do)"},
        {"agent", "show", cmd_agent_show, J, "ID [--json]", "one agent"},
        {"agent", "revoke", cmd_agent_revoke, J, "ID",
         "revoke an agent (admin): the server refuses its polls from now on"},
        {"token", "create", cmd_token_create, J | OB(O_ROLE) | OB(O_NAME) | OB(O_USER),
         "--role agent|release|soc|admin --name N [--user NAME|ID]",
         "issue an API token to a user who holds the role (admin); printed once on stdout. "
         "Without --user: to the user called N, created with that role if there is none"},
        {"token", "list", cmd_token_list, J, "[--json]", "API tokens and their users (admin)"},
        {"user", "create", cmd_user_create,
         J | OB(O_ROLE) | OB(O_EMAIL) | OB(O_REASON) | OB(O_TENANT),
         "NAME --role ROLE[,ROLE...] [--email ADDRESS] [--tenant T] [--reason R]",
         "create a user (admin): a person or a machine that tokens are issued to; --email is "
         "what the single-sign-on proxy asserts; --tenant: the user and its tokens act for "
         "that tenant only"},
        {"user", "list", cmd_user_list, J, "[--json]", "users, their roles and e-mail (admin)"},
        {"user", "show", cmd_user_show, J, "NAME|ID [--json]", "one user and its tokens (admin)"},
        {"user", "set", cmd_user_set, J | OB(O_ROLE) | OB(O_EMAIL) | OB(O_REASON),
         "NAME|ID [--role ROLE[,ROLE...]] [--email ADDRESS|-] [--reason R]",
         "change a user's roles (its tokens for a role it loses fail at once) or e-mail ("
         "- removes it) (admin)"},
        {"user", "disable", cmd_user_disable, J | OB(O_REASON), "NAME|ID --reason R",
         "disable a user (admin): all its tokens fail from now on, and single sign-on "
         "refuses it"},
        {"user", "enable", cmd_user_enable, J | OB(O_REASON), "NAME|ID --reason R",
         "enable a disabled user again (admin)"},
        {"token", "revoke", cmd_token_revoke, J, "ID", "revoke an API token (admin)"},
        {"audit", NULL, cmd_audit,
         J | OB(O_ACTION) | OB(O_OBJECT) | OB(O_ACTOR) | OB(O_USER) | OB(O_LIMIT) | OB(O_BEFORE),
         "[--action A] [--object O] [--actor A] [--user NAME] [--limit N] [--before ID] "
         "[--json]",
         "the audit log, newest first; page with --before"},
        {"enroll-token", "create", cmd_enroll_token_create,
         J | OB(O_NAME) | OB(O_TAGS) | OB(O_MAX_USES) | OB(O_EXPIRES) | OB(O_TENANT) | OB(O_GROUP),
         "--name N [--tags JSON] [--max-uses N] [--expires DURATION] [--tenant T] [--group G]",
         "create an agent enrollment token (admin); printed once on stdout; the agents "
         "enrolled with it belong to host group G (default \"default\") of tenant T (default: "
         "yours)"},
        {"tenant", "list", cmd_tenant_list, J, "[--json]",
         "tenants (customer organisations) with their default mode, agents and host groups"},
        {"tenant", "create", cmd_tenant_create, J | OB(O_DEFAULT_MODE) | OB(O_REASON),
         "NAME [--default-mode early|ga] [--reason R]",
         "create a tenant with its host group \"default\" (admin); --default-mode: what its "
         "groups get on a channel no policy names (default ga)"},
        {"tenant", "show", cmd_tenant_show, J, "NAME [--json]",
         "one tenant: its host groups with their agents and its content policies"},
        {"tenant", "group-create", cmd_tenant_group_create, J | OB(O_REASON),
         "TENANT NAME [--reason R]", "create a host group in a tenant (admin)"},
        {"policy", "list", cmd_policy_list, J, "TENANT [--json]",
         "a tenant's customer content policies"},
        {"policy", "set", cmd_policy_set,
         J | OB(O_GROUP) | OB(O_CHANNEL) | OB(O_MODE) | OB(O_DELAY) | OB(O_VERSION) | OB(O_REASON),
         "TENANT [--group G] [--channel N] --mode early|ga|delayed|paused|n-1|version "
         "[--delay DURATION] [--version V] --reason R",
         "when content reaches a tenant's hosts (release, admin): for group G (default: the "
         "whole tenant) on channel N (default: every channel); --delay (delayed: content GA "
         "for that long, 1s to 90d), --version (version: that version); setting paused again "
         "moves the group to today's GA"},
        {"policy", "delete", cmd_policy_delete, J, "TENANT ID",
         "delete a content policy (release, admin): its groups fall back to the next most "
         "specific one"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* Option names, indexed by enum ctl_opt (for messages and getopt). */
static const struct option optdefs[O_COUNT_] = {
        [O_TEMPLATES] = {"templates", required_argument, NULL, 256 + O_TEMPLATES},
        [O_CORPUS] = {"corpus", required_argument, NULL, 256 + O_CORPUS},
        [O_JSON] = {"json", no_argument, NULL, 256 + O_JSON},
        [O_UNCHECKED] = {"unchecked", no_argument, NULL, 256 + O_UNCHECKED},
        [O_CHANNEL] = {"channel", required_argument, NULL, 256 + O_CHANNEL},
        [O_CONTENT] = {"content", required_argument, NULL, 256 + O_CONTENT},
        [O_RINGS] = {"rings", required_argument, NULL, 256 + O_RINGS},
        [O_POLICY] = {"policy", required_argument, NULL, 256 + O_POLICY},
        [O_SUPERSEDE] = {"supersede", no_argument, NULL, 256 + O_SUPERSEDE},
        [O_REASON] = {"reason", required_argument, NULL, 256 + O_REASON},
        [O_FORCE] = {"force", no_argument, NULL, 256 + O_FORCE},
        [O_RING] = {"ring", required_argument, NULL, 256 + O_RING},
        [O_LIMIT] = {"limit", required_argument, NULL, 256 + O_LIMIT},
        [O_TAG] = {"tag", required_argument, NULL, 256 + O_TAG},
        [O_MODE] = {"mode", required_argument, NULL, 256 + O_MODE},
        [O_VERSION] = {"version", required_argument, NULL, 256 + O_VERSION},
        [O_ROLE] = {"role", required_argument, NULL, 256 + O_ROLE},
        [O_NAME] = {"name", required_argument, NULL, 256 + O_NAME},
        [O_ACTION] = {"action", required_argument, NULL, 256 + O_ACTION},
        [O_OBJECT] = {"object", required_argument, NULL, 256 + O_OBJECT},
        [O_ACTOR] = {"actor", required_argument, NULL, 256 + O_ACTOR},
        [O_BEFORE] = {"before", required_argument, NULL, 256 + O_BEFORE},
        [O_TAGS] = {"tags", required_argument, NULL, 256 + O_TAGS},
        [O_MAX_USES] = {"max-uses", required_argument, NULL, 256 + O_MAX_USES},
        [O_EXPIRES] = {"expires", required_argument, NULL, 256 + O_EXPIRES},
        [O_MANIFEST] = {"manifest", required_argument, NULL, 256 + O_MANIFEST},
        [O_INTERVAL] = {"interval", required_argument, NULL, 256 + O_INTERVAL},
        [O_TIMEOUT] = {"timeout", required_argument, NULL, 256 + O_TIMEOUT},
        [O_DESCRIPTION] = {"description", required_argument, NULL, 256 + O_DESCRIPTION},
        [O_STATE] = {"state", required_argument, NULL, 256 + O_STATE},
        [O_EMERGENCY] = {"emergency", no_argument, NULL, 256 + O_EMERGENCY},
        [O_HEALTH] = {"health", required_argument, NULL, 256 + O_HEALTH},
        [O_AFTER] = {"after", required_argument, NULL, 256 + O_AFTER},
        [O_USER] = {"user", required_argument, NULL, 256 + O_USER},
        [O_EMAIL] = {"email", required_argument, NULL, 256 + O_EMAIL},
        [O_TENANT] = {"tenant", required_argument, NULL, 256 + O_TENANT},
        [O_GROUP] = {"group", required_argument, NULL, 256 + O_GROUP},
        [O_DEFAULT_MODE] = {"default-mode", required_argument, NULL, 256 + O_DEFAULT_MODE},
        [O_DELAY] = {"delay", required_argument, NULL, 256 + O_DELAY},
};

/* Store the value of option k. */
static void opt_set(struct opts *o, int k, const char *v)
{
	const char **slot = NULL;
	switch (k) {
	case O_JSON: o->json = 1; break;
	case O_UNCHECKED: o->unchecked = 1; break;
	case O_SUPERSEDE: o->supersede = 1; break;
	case O_FORCE: o->force = 1; break;
	case O_EMERGENCY: o->emergency = 1; break;
	case O_TEMPLATES: slot = &o->templates; break;
	case O_CORPUS: slot = &o->corpus; break;
	case O_CHANNEL: slot = &o->channel; break;
	case O_CONTENT: slot = &o->content; break;
	case O_RINGS: slot = &o->rings; break;
	case O_POLICY: slot = &o->policy; break;
	case O_REASON: slot = &o->reason; break;
	case O_RING: slot = &o->ring; break;
	case O_LIMIT: slot = &o->limit; break;
	case O_TAG: slot = &o->tag; break;
	case O_MODE: slot = &o->mode; break;
	case O_VERSION: slot = &o->version; break;
	case O_ROLE: slot = &o->role; break;
	case O_NAME: slot = &o->name; break;
	case O_ACTION: slot = &o->action; break;
	case O_OBJECT: slot = &o->object; break;
	case O_ACTOR: slot = &o->actor; break;
	case O_BEFORE: slot = &o->before; break;
	case O_TAGS: slot = &o->tags; break;
	case O_MAX_USES: slot = &o->max_uses; break;
	case O_EXPIRES: slot = &o->expires; break;
	case O_MANIFEST: slot = &o->manifest; break;
	case O_INTERVAL: slot = &o->interval; break;
	case O_TIMEOUT: slot = &o->timeout; break;
	case O_DESCRIPTION: slot = &o->description; break;
	case O_STATE: slot = &o->state; break;
	case O_HEALTH: slot = &o->health; break;
	case O_AFTER: slot = &o->after; break;
	case O_USER: slot = &o->user; break;
	case O_EMAIL: slot = &o->email; break;
	case O_TENANT: slot = &o->tenant; break;
	case O_GROUP: slot = &o->group; break;
	case O_DEFAULT_MODE: slot = &o->default_mode; break;
	case O_DELAY: slot = &o->delay; break;
	default: break;
	}
	if (slot)
		*slot = v;
	o->seen |= OB(k);
}

static const char CONNECTION_HELP[] =
        "connection (online commands; a flag wins over the environment, which wins over the "
        "file):\n"
        "  --server URL     firebreakd's base URL            (FIREBREAK_URL, server = URL)\n"
        "  --token TOKEN    API token                        (FIREBREAK_TOKEN, token = TOKEN)\n"
        "  --ca FILE        CA bundle (PEM) for https://     (FIREBREAK_CA, ca = FILE)\n"
        "  --config FILE    key = value file (default ~/.config/firebreak/fbctl.conf)\n";

static void command_name(const struct command *c, char *buf, size_t n)
{
	snprintf(buf, n, "%s%s%s", c->group, c->verb ? " " : "", c->verb ? c->verb : "");
}

static void command_help(const struct command *c, FILE *out)
{
	char name[64];
	command_name(c, name, sizeof name);
	fprintf(out, "usage: fbctl %s %s\n  %s\n", name, c->args, c->help);
}

int ctl_usage(const struct opts *o)
{
	if (o->cmd) {
		char name[64];
		command_name(o->cmd, name, sizeof name);
		fprintf(stderr, "usage: fbctl %s %s\n(fbctl %s --help for more)\n", name,
		        o->cmd->args, name);
	}
	return EXIT_USAGE;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: fbctl [options] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t k = 0; k < NCOMMANDS; k++) {
		char name[64];
		command_name(&commands[k], name, sizeof name);
		fprintf(out, "  %-20s %s\n  %-20s   %s\n", name, commands[k].args, "",
		        commands[k].help);
	}
	fprintf(out, "\noffline options:\n"
	             "  --templates DIR  template registry (default $FB_TEMPLATES, then "
	             "./schema/templates,\n"
	             "                   <fbctl>/../share/firebreak/templates, "
	             "/usr/local/share/...,\n"
	             "                   /usr/share/firebreak/templates)\n"
	             "  --corpus DIR     event corpus for preflight (default $FB_CORPUS, then "
	             "the same places)\n"
	             "  --json           machine-readable output (validate, every read command)\n"
	             "  --unchecked      compile without validating against the registry "
	             "(test data)\n"
	             "  --help           this text; after a command, that command's help\n\n");
	fputs(CONNECTION_HELP, out);
	fprintf(out, "\ndurations (--interval, --timeout, --expires): a number and a unit, 250ms, "
	             "30s, 5m, 2h, 1d;\na plain number is seconds\n"
	             "\nexit status: 0 ok/valid; 1 refused (by the server, or nothing to do: "
	             "already paused, ...),\ninvalid, or no answer from the server; 2 usage, "
	             "configuration or local I/O error;\n3 (rollout watch) the rollout halted\n");
}

/* "start, status, list" : the verbs of group, into buf. */
static const char *group_verbs(const char *group, char *buf, size_t n)
{
	size_t len = 0;
	buf[0] = '\0';
	for (size_t k = 0; k < NCOMMANDS; k++) {
		if (strcmp(commands[k].group, group) != 0 || !commands[k].verb)
			continue;
		int w = snprintf(buf + len, n - len, "%s%s", len ? ", " : "", commands[k].verb);
		if (w < 0 || (size_t)w >= n - len)
			break;
		len += (size_t)w;
	}
	return buf;
}

/* The help of every command of group (e.g. "fbctl rollout --help"). */
static void group_help(const char *group, FILE *out)
{
	for (size_t k = 0; k < NCOMMANDS; k++)
		if (strcmp(commands[k].group, group) == 0)
			command_help(&commands[k], out);
}

/* Whether argv is "--version" among options and no command word (options
 * that take a value skip it). */
static int version_asked(int argc, char **argv, const struct option *longopts)
{
	int asked = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0)
			return 0; /* a command word: --version is pin add's */
		size_t len = strcspn(a + 2, "=");
		if (len == 7 && strncmp(a + 2, "version", 7) == 0 && !a[9]) {
			asked = 1;
			continue;
		}
		for (const struct option *lo = longopts; lo->name; lo++)
			if (strlen(lo->name) == len && strncmp(lo->name, a + 2, len) == 0 &&
			    lo->has_arg == required_argument && !a[2 + len])
				i++;
	}
	return asked;
}

/* The one-line hint after a top-level mistake. */
static int top_usage_error(void)
{
	fprintf(stderr, "Run 'fbctl --help' for the commands and options.\n");
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	struct option longopts[O_COUNT_ + 6];
	size_t n = 0;
	for (int k = 0; k < O_COUNT_; k++)
		longopts[n++] = optdefs[k];
	longopts[n++] = (struct option){"server", required_argument, NULL, 'S'};
	longopts[n++] = (struct option){"token", required_argument, NULL, 'T'};
	longopts[n++] = (struct option){"config", required_argument, NULL, 'C'};
	longopts[n++] = (struct option){"ca", required_argument, NULL, 'A'};
	longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
	longopts[n] = (struct option){NULL, 0, NULL, 0};
	/* "fbctl [options] --version" with no command: pin add takes --version V */
	if (version_asked(argc, argv, longopts))
		return cmd_version(NULL);
	struct opts o = {0};
	int c, help = 0;
	opterr = 0; /* our own messages, naming the option */
	/* options may come before or after the command ("+" is not used) */
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'S': o.server = optarg; break;
		case 'T': o.token = optarg; break;
		case 'C': o.config = optarg; break;
		case 'A': o.ca = optarg; break;
		case 'h': help = 1; break;
		case ':':
			fprintf(stderr, "fbctl: option %s needs a value\n", argv[optind - 1]);
			return top_usage_error();
		default:
			if (c >= 256 && c < 256 + O_COUNT_) {
				opt_set(&o, c - 256, optarg);
				break;
			}
			if (optopt)
				fprintf(stderr, "fbctl: unknown option -%c\n", optopt);
			else
				fprintf(stderr, "fbctl: unknown option %s\n", argv[optind - 1]);
			return top_usage_error();
		}
	}
	if (optind >= argc) {
		if (help) {
			usage(stdout);
			return EXIT_VALID;
		}
		fprintf(stderr, "usage: fbctl [options] COMMAND [ARGS]\n");
		return top_usage_error();
	}
	const char *group = argv[optind];
	const char *verb = optind + 1 < argc ? argv[optind + 1] : NULL;
	const struct command *cmd = NULL;
	int group_known = 0;
	for (size_t k = 0; k < NCOMMANDS && !cmd; k++) {
		if (strcmp(group, commands[k].group) != 0)
			continue;
		group_known = 1;
		if (!commands[k].verb || (verb && strcmp(verb, commands[k].verb) == 0))
			cmd = &commands[k];
	}
	if (!cmd) {
		char verbs[256];
		if (!group_known) {
			fprintf(stderr, "fbctl: unknown command \"%s\"\n", group);
			return top_usage_error();
		}
		if (help && !verb) {
			group_help(group, stdout);
			return EXIT_VALID;
		}
		if (verb)
			fprintf(stderr, "fbctl: unknown command \"%s %s\"; %s takes: %s\n", group,
			        verb, group, group_verbs(group, verbs, sizeof verbs));
		else
			fprintf(stderr, "fbctl: \"%s\" needs a subcommand: %s\n", group,
			        group_verbs(group, verbs, sizeof verbs));
		fprintf(stderr, "Run 'fbctl %s --help' for what each does.\n", group);
		return EXIT_USAGE;
	}
	if (help) {
		command_help(cmd, stdout);
		if (cmd->takes != OFFLINE)
			fputs(CONNECTION_HELP, stdout);
		return EXIT_VALID;
	}
	o.cmd = cmd;
	uint64_t stray = o.seen & ~cmd->takes;
	for (int k = 0; k < O_COUNT_; k++)
		if (stray & OB(k)) {
			char name[64];
			command_name(cmd, name, sizeof name);
			fprintf(stderr, "fbctl: option --%s does not apply to \"%s\"\n",
			        optdefs[k].name, name);
			return ctl_usage(&o);
		}
	int skip = cmd->verb ? 2 : 1;
	o.argc = argc - optind - skip;
	o.argv = argv + optind + skip;
	if (cmd->takes == OFFLINE)
		return cmd->run(&o);
	if (fbc_global_init() != FB_OK) {
		fprintf(stderr, "fbctl: libcurl could not be initialised\n");
		return EXIT_USAGE;
	}
	int code = cmd->run(&o);
	fbc_global_cleanup();
	return code;
}
