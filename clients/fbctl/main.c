/* fbctl: the operator and release-engineer CLI. This first version has the
 * offline channel-file commands (validate, compile, decompile, preflight,
 * eval, capabilities); online commands are added as rows of the command table. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fb.h"
#include "fbschema.h"

/* Exit codes: 0 success/valid, 1 the input is invalid or refused, 2 usage or
 * I/O error. */
enum { EXIT_VALID = 0, EXIT_INVALID = 1, EXIT_USAGE = 2 };

struct opts {
	const char *templates; /* --templates DIR */
	const char *corpus;    /* --corpus DIR (preflight) */
	int json;              /* --json */
	int unchecked;         /* --unchecked (compile without registry validation) */
	int argc;              /* positional arguments after the command */
	char **argv;
};

static const char *templates_dir(const struct opts *o)
{
	struct stat st;
	if (o->templates)
		return o->templates;
	if (getenv("FB_TEMPLATES"))
		return getenv("FB_TEMPLATES");
	if (stat("schema/templates", &st) == 0 && S_ISDIR(st.st_mode))
		return "schema/templates";
	return "/usr/local/share/firebreak/templates";
}

static int load_registry(const struct opts *o, struct cf_registry **reg)
{
	struct fb_err err = {{0}};
	if (cf_registry_load_dir(templates_dir(o), reg, &err) != FB_OK) {
		fprintf(stderr, "fbctl: templates: %s\n", err.msg);
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
		fprintf(stderr, "usage: fbctl preflight [--templates DIR] [--corpus DIR] FILE\n");
		return EXIT_USAGE;
	}
	if (load_registry(o, &reg))
		goto out;
	if (read_input(reg, o->argv[0], &bin, &len, &err, &invalid)) {
		printf("%s: %s: %s\n", o->argv[0], invalid ? "invalid" : "error", err.msg);
		code = invalid ? EXIT_INVALID : EXIT_USAGE;
		goto out;
	}
	const char *corpus = o->corpus ? o->corpus : "schema/corpus";
	if (cf_preflight(reg, bin, len, corpus, NULL, &rep) != FB_OK) {
		fprintf(stderr, "fbctl: %s\n", rep.reason);
		goto out;
	}
	printf("%s: %s\n", o->argv[0], rep.reason);
	code = rep.outcome == CF_PF_OK ? EXIT_VALID : EXIT_INVALID;
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

struct command {
	const char *name;
	int (*run)(struct opts *o);
	const char *args;
	const char *help;
};

/* The command table: one row per subcommand (online ones are added here). */
static const struct command commands[] = {
        {"validate", cmd_validate, "FILE",
         "check a channel file (binary or JSON text form); exit 0 valid, 1 invalid"},
        {"compile", cmd_compile, "IN.json OUT.cf",
         "compile the JSON text form to the binary form (validated unless --unchecked)"},
        {"decompile", cmd_decompile, "IN.cf", "print the JSON text form of a binary file"},
        {"preflight", cmd_preflight, "FILE",
         "run the file through the interpreter in a limited child over the event corpus"},
        {"eval", cmd_eval, "FILE EVENT.json",
         "evaluate the file's rules against one event; print the verdict as JSON"},
        {"capabilities", cmd_capabilities, "",
         "print the template types and versions the registry interprets"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: fbctl [options] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
		fprintf(out, "  %-13s %-15s %s\n", commands[k].name, commands[k].args,
		        commands[k].help);
	fprintf(out, "\noptions:\n"
	             "  --templates DIR  template registry (default $FB_TEMPLATES, "
	             "./schema/templates,\n"
	             "                   /usr/local/share/firebreak/templates)\n"
	             "  --corpus DIR     event corpus for preflight (default ./schema/corpus)\n"
	             "  --json           machine-readable output (validate)\n"
	             "  --unchecked      compile without validating against the registry "
	             "(test data)\n"
	             "  --help           this text\n"
	             "\nexit status: 0 ok/valid, 1 invalid or refused, 2 usage or I/O error\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"templates", required_argument, NULL, 't'},
	        {"corpus", required_argument, NULL, 'c'},
	        {"json", no_argument, NULL, 'j'},
	        {"unchecked", no_argument, NULL, 'u'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct opts o = {0};
	int c;
	/* options may come before or after the command ("+" is not used) */
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 't': o.templates = optarg; break;
		case 'c': o.corpus = optarg; break;
		case 'j': o.json = 1; break;
		case 'u': o.unchecked = 1; break;
		case 'h': usage(stdout); return EXIT_VALID;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
		if (strcmp(argv[optind], commands[k].name) == 0) {
			o.argc = argc - optind - 1;
			o.argv = argv + optind + 1;
			return commands[k].run(&o);
		}
	}
	fprintf(stderr, "fbctl: unknown command \"%s\"\n", argv[optind]);
	usage(stderr);
	return EXIT_USAGE;
}
