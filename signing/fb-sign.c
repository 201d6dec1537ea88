/* fb-sign: the release engineer's signing tool — keys, roots, manifests,
 * signatures and verification, all through libfbsign. */
#include "fbschema.h"
#include "fbsign.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define EXIT_FAIL  1 /* the operation failed or the document is invalid */
#define EXIT_USAGE 2 /* bad command line */

#define PASS_MAX     1024
#define MAX_CONTENT  (256u * 1024 * 1024)
#define DAY          86400
#define MAX_KEYS_OPT FBSIG_MAX_ROLE_KEYS

static const char *prog = "fb-sign";
static char **g_argv; /* the subcommand's argv, for naming a bad option */

/* The argument getopt_long stopped at (the bad option). */
static const char *argv_at_error(void)
{
	return g_argv && optind > 0 ? g_argv[optind - 1] : "?";
}

static void FB_PRINTF(1, 2) msg(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int usage_err(const char *cmd, const char *what)
{
	if (strcmp(what, "unknown option") == 0 && optind > 0)
		msg("%s: unknown option or missing value: %s (see fb-sign %s --help)", cmd,
		    argv_at_error(), cmd);
	else
		msg("%s: %s (see fb-sign %s --help)", cmd, what, cmd);
	return EXIT_USAGE;
}

/* Parse an integer option strictly; 0 on success. */
static int int_opt(const char *cmd, const char *name, const char *s, int64_t min, int64_t max,
                   int64_t *out)
{
	if (fb_parse_i64(s, min, max, out) != FB_OK) {
		msg("%s: --%s: \"%s\" is not an integer in %" PRId64 "..%" PRId64, cmd, name, s,
		    min, max);
		return -1;
	}
	return 0;
}

/* Parse a duration option (fb_parse_duration_ms) of 1 minute to 100 years
 * into whole seconds; 0 on success. */
static int duration_opt(const char *cmd, const char *name, const char *s, int64_t *out)
{
	struct fb_err err = {""};
	int64_t ms;
	if (fb_parse_duration_ms(s, 60000, 100LL * 365 * DAY * 1000, &ms, &err) != FB_OK) {
		msg("%s: --%s: %s", cmd, name, err.msg);
		return -1;
	}
	*out = ms / 1000;
	return 0;
}

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

/* ---- passphrases ------------------------------------------------------ */

/* Read the first line of path into a new sodium_malloc'd string. */
static char *pass_from_file(const char *path)
{
	unsigned char *data = NULL;
	size_t len = 0;
	enum fb_rc rc = fb_file_read(path, PASS_MAX, &data, &len);
	if (rc) {
		msg("cannot read passphrase file %s: %s", path,
		    rc == FB_ETOOBIG ? "longer than 1024 bytes" : fb_rc_str(rc));
		return NULL;
	}
	size_t n = 0;
	while (n < len && data[n] != '\n' && data[n] != '\r')
		n++;
	char *p = sodium_malloc(n + 1);
	if (p) {
		memcpy(p, data, n);
		p[n] = '\0';
	}
	sodium_memzero(data, len);
	free(data);
	if (p && !*p) {
		msg("passphrase file %s holds an empty passphrase", path);
		sodium_free(p);
		return NULL;
	}
	return p;
}

/* Prompt on the controlling terminal without echo. */
static char *pass_from_tty(const char *prompt)
{
	FILE *tty = fopen("/dev/tty", "r+");
	if (!tty) {
		msg("no terminal to ask for a passphrase: use --passphrase-file");
		return NULL;
	}
	char *p = sodium_malloc(PASS_MAX + 2);
	struct termios old, noecho;
	int restore = 0;
	if (!p)
		goto fail;
	fprintf(tty, "%s", prompt);
	fflush(tty);
	if (tcgetattr(fileno(tty), &old) == 0) {
		noecho = old;
		noecho.c_lflag &= ~(tcflag_t)ECHO;
		restore = tcsetattr(fileno(tty), TCSAFLUSH, &noecho) == 0;
	}
	int ok = fgets(p, PASS_MAX + 2, tty) != NULL;
	if (restore)
		tcsetattr(fileno(tty), TCSAFLUSH, &old);
	fputc('\n', tty);
	if (!ok)
		goto fail;
	size_t n = strcspn(p, "\r\n");
	if (n > PASS_MAX || n == 0) {
		msg(n ? "passphrase longer than %d bytes" : "empty passphrase", PASS_MAX);
		goto fail;
	}
	p[n] = '\0';
	fclose(tty);
	return p;
fail:
	sodium_free(p);
	fclose(tty);
	return NULL;
}

/* ---- files ------------------------------------------------------------ */

/* Read a document (capped); prints the reason on failure. Caller frees. */
static unsigned char *read_doc(const char *path, size_t max, size_t *len)
{
	unsigned char *data = NULL;
	enum fb_rc rc = fb_file_read(path, max, &data, len);
	if (rc == FB_ETOOBIG)
		msg("%s: larger than %zu bytes", path, max);
	else if (rc)
		msg("cannot read %s: %s", path,
		    rc == FB_ENOTFOUND ? "no such file" : fb_rc_str(rc));
	return rc ? NULL : data;
}

/* Write data (plus a newline) to path atomically, or to stdout for "-". */
static int write_doc(const char *path, const char *data, size_t len)
{
	if (!path || strcmp(path, "-") == 0) {
		if (fwrite(data, 1, len, stdout) != len || fputc('\n', stdout) == EOF ||
		    fflush(stdout) != 0) {
			msg("cannot write to standard output");
			return -1;
		}
		return 0;
	}
	char *t = malloc(len + 1);
	if (!t) {
		msg("out of memory");
		return -1;
	}
	memcpy(t, data, len);
	t[len] = '\n';
	enum fb_rc rc = fb_file_write_atomic(path, t, len + 1, 0644);
	free(t);
	if (rc) {
		msg("cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void print_json(json_t *v)
{
	char *s = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (s)
		puts(s);
	free(s);
	json_decref(v);
}

/* ---- keygen ------------------------------------------------------------- */

static const char keygen_help[] =
        "usage: fb-sign keygen --out NAME [--no-passphrase | --passphrase-file FILE] [--json]\n"
        "\n"
        "Create an Ed25519 key pair: NAME.pub (public, shareable) and NAME.key (secret,\n"
        "mode 0600). Unless --no-passphrase, the secret key is encrypted with a\n"
        "passphrase (Argon2id + XSalsa20-Poly1305) read from FILE (first line) or asked\n"
        "twice on the terminal. Prints the key id (or, with --json, an object).\n";

static int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
	                                     {"no-passphrase", no_argument, NULL, 'n'},
	                                     {"passphrase-file", required_argument, NULL, 'p'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *out = NULL, *pfile = NULL;
	int nopass = 0, json = 0, c, ret = EXIT_FAIL;
	char *pass = NULL;
	struct fbsig_key *key = NULL;
	struct fb_err err = {""};
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'n': nopass = 1; break;
		case 'p': pfile = optarg; break;
		case 'j': json = 1; break;
		case 'h': fputs(keygen_help, stdout); return 0;
		default: return usage_err("keygen", "unknown option");
		}
	}
	if (!out || optind != argc)
		return usage_err("keygen", "--out NAME is required and nothing else");
	if (nopass && pfile)
		return usage_err("keygen",
		                 "--no-passphrase and --passphrase-file exclude each other");
	if (pfile) {
		pass = pass_from_file(pfile);
		if (!pass)
			goto out;
	} else if (!nopass) {
		pass = pass_from_tty("passphrase for the new key: ");
		char *again = pass ? pass_from_tty("the same passphrase again: ") : NULL;
		int same = again && strcmp(pass, again) == 0;
		sodium_free(again);
		if (!same) {
			if (pass)
				msg("keygen: the passphrases differ");
			goto out;
		}
	}
	if (fbsig_keygen(&key)) {
		msg("keygen: cannot create a key");
		goto out;
	}
	if (fbsig_key_save(key, out, pass, &err)) {
		msg("keygen: %s", err.msg);
		goto out;
	}
	if (json) {
		struct fbsig_pub pub;
		char b64[sodium_base64_ENCODED_LEN(FBSIG_PUBLIC_LEN,
		                                   sodium_base64_VARIANT_ORIGINAL)];
		fbsig_key_pub(key, &pub);
		sodium_bin2base64(b64, sizeof b64, pub.pk, sizeof pub.pk,
		                  sodium_base64_VARIANT_ORIGINAL);
		print_json(json_pack("{s:s, s:s, s:s+, s:s+, s:b}", "keyid", pub.keyid, "public",
		                     b64, "pub_file", out, ".pub", "key_file", out, ".key",
		                     "encrypted", pass != NULL));
	} else {
		printf("%s\n", fbsig_key_id(key));
		msg("wrote %s.pub and %s.key (%s)", out, out,
		    pass ? "encrypted with the passphrase" : "NOT encrypted");
	}
	ret = 0;
out:
	fbsig_key_free(key);
	sodium_free(pass);
	return ret;
}

/* ---- sign --------------------------------------------------------------- */

static const char sign_help[] =
        "usage: fb-sign sign --key NAME.key [--passphrase-file FILE] --type TYPE DOC [--out F]\n"
        "\n"
        "Add a signature by the key to the envelope in DOC (TYPE: root, manifest or\n"
        "assignment; it must match the document's _type). The result replaces DOC\n"
        "atomically, or goes to F (\"-\" for standard output). Signing again with a key\n"
        "that already signed these fields changes nothing and exits 1 (\"already signed\n"
        "by KEYID\"): a threshold needs distinct keys. A stale signature by the key (over\n"
        "fields since changed) is replaced.\n";

/* The signature value by keyid in the envelope bytes a (NULL when none). */
static const char *sig_by(const json_t *env, const char *keyid)
{
	size_t i;
	json_t *sg;
	json_array_foreach(json_object_get(env, "signatures"), i, sg)
	{
		const char *k = json_string_value(json_object_get(sg, "keyid"));
		if (k && strcmp(k, keyid) == 0)
			return json_string_value(json_object_get(sg, "sig"));
	}
	return NULL;
}

/* Compare keyid's signature in the document before signing (old) with the
 * one after (new): *had when old carried one, *same when it is the same
 * signature. 1 when both parsed, else 0. */
static int signature_of(const void *old, size_t olen, const char *keyid, int *had, int *same,
                        const void *new_, size_t nlen)
{
	json_t *a = NULL, *b = NULL;
	int ok = fbsig_parse(old, olen, &a, NULL) == FB_OK &&
	         fbsig_parse(new_, nlen, &b, NULL) == FB_OK;
	if (ok) {
		const char *sa = sig_by(a, keyid), *sb = sig_by(b, keyid);
		*had = sa != NULL;
		*same = sa && sb && strcmp(sa, sb) == 0;
	}
	json_decref(a);
	json_decref(b);
	return ok;
}

/* Load a secret key, asking for its passphrase when it is encrypted. */
static struct fbsig_key *load_key(const char *path, const char *pfile)
{
	struct fb_err err = {""};
	struct fbsig_key *key = NULL;
	char *pass = NULL;
	int enc = 0;
	if (fbsig_key_file_encrypted(path, &enc, &err)) {
		msg("%s", err.msg);
		return NULL;
	}
	if (enc) {
		pass = pfile ? pass_from_file(pfile) : pass_from_tty("passphrase: ");
		if (!pass)
			return NULL;
	}
	if (fbsig_key_load(path, pass, &key, &err))
		msg("%s", err.msg);
	sodium_free(pass);
	return key;
}

static int cmd_sign(int argc, char **argv)
{
	static const struct option opts[] = {{"key", required_argument, NULL, 'k'},
	                                     {"passphrase-file", required_argument, NULL, 'p'},
	                                     {"type", required_argument, NULL, 't'},
	                                     {"out", required_argument, NULL, 'o'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *kpath = NULL, *pfile = NULL, *tname = NULL, *out = NULL;
	int c, ret = EXIT_FAIL;
	enum fbsig_type type;
	struct fbsig_key *key = NULL;
	unsigned char *doc = NULL;
	char *res = NULL;
	size_t len = 0, rlen = 0;
	struct fb_err err = {""};
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'k': kpath = optarg; break;
		case 'p': pfile = optarg; break;
		case 't': tname = optarg; break;
		case 'o': out = optarg; break;
		case 'h': fputs(sign_help, stdout); return 0;
		default: return usage_err("sign", "unknown option");
		}
	}
	if (!kpath || !tname || optind != argc - 1)
		return usage_err("sign", "--key, --type and one DOC are required");
	if (fbsig_type_parse(tname, &type))
		return usage_err("sign", "--type must be root, manifest or assignment");
	const char *path = argv[optind];
	doc = read_doc(path, FBSIG_MAX_DOC, &len);
	if (!doc)
		goto out;
	key = load_key(kpath, pfile);
	if (!key)
		goto out;
	if (fbsig_envelope_sign(key, type, doc, len, &res, &rlen, &err)) {
		msg("sign: %s: %s", path, err.msg);
		goto out;
	}
	/* Ed25519 is deterministic: the same key over the same signed fields
	 * gives the same signature, so an equal one means it was there. */
	int had = 0, same = 0;
	if (signature_of(doc, len, fbsig_key_id(key), &had, &same, res, rlen) && same) {
		msg("sign: %s is already signed by key %s; nothing changed (another signature must "
		    "come from another key)",
		    path, fbsig_key_id(key));
		goto out;
	}
	if (write_doc(out ? out : path, res, rlen))
		goto out;
	msg("signed %s as %s with key %s%s", path, tname, fbsig_key_id(key),
	    had ? " (its earlier signature, over other signed fields, replaced)" : "");
	ret = 0;
out:
	fbsig_key_free(key);
	free(doc);
	free(res);
	return ret;
}

/* ---- root init / rotate -------------------------------------------------- */

static const char root_help[] =
        "usage: fb-sign root init   --root-key K.pub... [--root-threshold N]\n"
        "                           --release-key K.pub... [--threshold N]\n"
        "                           --online-key K.pub... [--online-threshold N]\n"
        "                           [--expires DURATION] --out ROOT.json\n"
        "       fb-sign root rotate --from CURRENT.json (same key options) --out NEXT.json\n"
        "\n"
        "Write an unsigned root envelope: the root keys (which sign roots), the release\n"
        "keys and how many distinct ones must sign a manifest (--threshold, default 2),\n"
        "and the server's online key(s) that sign assignments. Each --*-key option is\n"
        "repeatable. Sign the result with `fb-sign sign --type root`: an initial root\n"
        "with its own root keys, a rotated root (version = current + 1) with the\n"
        "threshold of the current root keys and of the new root keys.\n"
        "Defaults: --root-threshold 1, --online-threshold 1, --expires 365d (a duration:\n"
        "30d, 12h, ...; --expires-days D still works).\n";

static int cmd_root(int argc, char **argv)
{
	static const struct option opts[] = {{"root-key", required_argument, NULL, 'R'},
	                                     {"release-key", required_argument, NULL, 'L'},
	                                     {"online-key", required_argument, NULL, 'O'},
	                                     {"root-threshold", required_argument, NULL, 'r'},
	                                     {"threshold", required_argument, NULL, 'l'},
	                                     {"release-threshold", required_argument, NULL, 'l'},
	                                     {"online-threshold", required_argument, NULL, 'o'},
	                                     {"expires-days", required_argument, NULL, 'e'},
	                                     {"expires", required_argument, NULL, 'E'},
	                                     {"from", required_argument, NULL, 'f'},
	                                     {"now", required_argument, NULL, 'N'},
	                                     {"out", required_argument, NULL, 'w'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	struct fbsig_pub keys[FBSIG_NROLES][MAX_KEYS_OPT];
	size_t nkeys[FBSIG_NROLES] = {0};
	int64_t th[FBSIG_NROLES] = {1, 2, 1}, life = 365 * DAY, now = now_s(), version = 1;
	const char *from = NULL, *out = NULL, *sub = argc > 1 ? argv[1] : "";
	struct fb_err err = {""};
	json_t *doc = NULL;
	char *res = NULL;
	unsigned char *cur = NULL;
	size_t rlen = 0, clen = 0;
	int c, ret = EXIT_FAIL, role;
	struct fbsig_root *curroot = NULL;
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
		fputs(root_help, stdout);
		return 0;
	}
	if (strcmp(sub, "init") != 0 && strcmp(sub, "rotate") != 0)
		return usage_err("root", "expected 'root init' or 'root rotate'");
	argc--;
	argv++;
	g_argv = argv;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'R':
		case 'L':
		case 'O':
			role = c == 'R'   ? FBSIG_ROLE_ROOT
			       : c == 'L' ? FBSIG_ROLE_RELEASE
			                  : FBSIG_ROLE_ONLINE;
			if (nkeys[role] == MAX_KEYS_OPT)
				return usage_err("root", "too many keys for one role");
			if (fbsig_pub_load(optarg, &keys[role][nkeys[role]], &err)) {
				msg("root %s: %s", sub, err.msg);
				return EXIT_FAIL;
			}
			nkeys[role]++;
			break;
		case 'r':
		case 'l':
		case 'o':
			role = c == 'r'   ? FBSIG_ROLE_ROOT
			       : c == 'l' ? FBSIG_ROLE_RELEASE
			                  : FBSIG_ROLE_ONLINE;
			if (int_opt("root", "threshold", optarg, 1, MAX_KEYS_OPT, &th[role]))
				return EXIT_USAGE;
			break;
		case 'e':
			if (int_opt("root", "expires-days", optarg, 1, 100 * 365, &life))
				return EXIT_USAGE;
			life *= DAY;
			break;
		case 'E':
			if (duration_opt("root", "expires", optarg, &life))
				return EXIT_USAGE;
			break;
		case 'N':
			if (int_opt("root", "now", optarg, 0, INT64_MAX / 2, &now))
				return EXIT_USAGE;
			break;
		case 'f': from = optarg; break;
		case 'w': out = optarg; break;
		case 'h': fputs(root_help, stdout); return 0;
		default: return usage_err("root", "unknown option");
		}
	}
	if (!out || optind != argc)
		return usage_err("root", "--out is required");
	if (!nkeys[0] || !nkeys[1] || !nkeys[2])
		return usage_err("root", "at least one --root-key, --release-key and --online-key");
	if ((strcmp(sub, "rotate") == 0) != (from != NULL))
		return usage_err("root", "'root rotate' needs --from; 'root init' refuses it");
	if (from) {
		/* The current root is trusted here as the base of the rotation;
		 * verify it is well-formed and self-signed (expired is fine). */
		cur = read_doc(from, FBSIG_MAX_DOC, &clen);
		if (!cur)
			goto out;
		if (fbsig_root_load_trusted(cur, clen, now, FBSIG_ALLOW_EXPIRED, &curroot, &err)) {
			msg("root rotate: %s: %s", from, err.msg);
			goto out;
		}
		version = fbsig_root_version(curroot) + 1;
	}
	struct fbsig_role_spec spec[FBSIG_NROLES];
	for (int r = 0; r < FBSIG_NROLES; r++) {
		spec[r].keys = keys[r];
		spec[r].n = nkeys[r];
		spec[r].threshold = (unsigned)th[r];
	}
	if (fbsig_root_build(version, now + life, &spec[0], &spec[1], &spec[2], &doc, &err) ||
	    fbsig_envelope_new(FBSIG_ROOT, doc, &res, &rlen, &err)) {
		msg("root %s: %s", sub, err.msg);
		goto out;
	}
	if (write_doc(out, res, rlen))
		goto out;
	msg("wrote unsigned root version %" PRId64 " to %s; sign it with fb-sign sign --type root",
	    version, out);
	ret = 0;
out:
	fbsig_root_free(curroot);
	json_decref(doc);
	free(res);
	free(cur);
	return ret;
}

/* ---- manifest create -------------------------------------------------- */

static const char manifest_help[] =
        "usage: fb-sign manifest create --content FILE --templates DIR --out MANIFEST.json\n"
        "                               [--channel N] [--version V] [--expires DURATION]\n"
        "                               [--created T]\n"
        "       fb-sign manifest create --channel N --version V --content FILE\n"
        "                               --template ID:VER... --out MANIFEST.json\n"
        "\n"
        "Write an unsigned content manifest for FILE: channel, content version, sha256,\n"
        "size, the template types (id:version) the file uses, created (Unix seconds,\n"
        "default now) and expires (a duration after created, default 365d;\n"
        "--expires-days D still works). Unless the template types are given by hand\n"
        "(--template, with --channel and --version), the file is parsed and validated\n"
        "by libfbschema (the parser the server and the agents run) against the registry\n"
        "in --templates DIR, else $FB_TEMPLATES, else ./schema/templates or the\n"
        "installed share/firebreak/templates; it supplies the template list, channel\n"
        "and version, and a file it refuses gets no manifest. Sign the result with\n"
        "`fb-sign sign --type manifest` by as many\n"
        "release keys as the root requires.\n";

static int cmd_manifest(int argc, char **argv)
{
	static const struct option opts[] = {{"channel", required_argument, NULL, 'c'},
	                                     {"version", required_argument, NULL, 'v'},
	                                     {"content", required_argument, NULL, 'f'},
	                                     {"template", required_argument, NULL, 't'},
	                                     {"templates", required_argument, NULL, 'T'},
	                                     {"expires-days", required_argument, NULL, 'e'},
	                                     {"expires", required_argument, NULL, 'E'},
	                                     {"created", required_argument, NULL, 'C'},
	                                     {"out", required_argument, NULL, 'o'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	struct fbsig_manifest *m = calloc(1, sizeof *m);
	int64_t ch = -1, ver = 0, life = 365 * DAY, created = now_s();
	const char *content = NULL, *out = NULL, *tdir = NULL, *sub = argc > 1 ? argv[1] : "";
	char tbuf[1200];
	struct cf_registry *reg = NULL;
	struct cf_file *file = NULL;
	unsigned char *data = NULL;
	size_t len = 0, rlen = 0;
	json_t *doc = NULL;
	char *res = NULL;
	struct fb_err err = {""};
	int c, ret = EXIT_USAGE;
	if (!m) {
		msg("out of memory");
		return EXIT_FAIL;
	}
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
		fputs(manifest_help, stdout);
		ret = 0;
		goto out;
	}
	if (strcmp(sub, "create") != 0) {
		ret = usage_err("manifest", "expected 'manifest create'");
		goto out;
	}
	argc--;
	argv++;
	g_argv = argv;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (int_opt("manifest", "channel", optarg, 0, UINT32_MAX, &ch))
				goto out;
			break;
		case 'v':
			if (int_opt("manifest", "version", optarg, 1, INT64_MAX, &ver))
				goto out;
			break;
		case 'e':
			if (int_opt("manifest", "expires-days", optarg, 1, 100 * 365, &life))
				goto out;
			life *= DAY;
			break;
		case 'E':
			if (duration_opt("manifest", "expires", optarg, &life))
				goto out;
			break;
		case 'C':
			if (int_opt("manifest", "created", optarg, 0, INT64_MAX / 2, &created))
				goto out;
			break;
		case 'f': content = optarg; break;
		case 'o': out = optarg; break;
		case 'T': tdir = optarg; break;
		case 't': {
			char idbuf[32];
			const char *colon = strchr(optarg, ':');
			size_t n = colon ? (size_t)(colon - optarg) : 0;
			struct fbsig_template_ref *t = &m->templates[m->n_templates];
			if (m->n_templates == FBSIG_MAX_TEMPLATES) {
				ret = usage_err("manifest", "too many --template options");
				goto out;
			}
			if (!colon || n == 0 || n >= sizeof idbuf) {
				ret = usage_err("manifest", "--template takes ID:VERSION");
				goto out;
			}
			memcpy(idbuf, optarg, n);
			idbuf[n] = '\0';
			if (int_opt("manifest", "template", idbuf, 0, INT64_MAX, &t->id) ||
			    int_opt("manifest", "template", colon + 1, 0, INT64_MAX, &t->version))
				goto out;
			m->n_templates++;
			break;
		}
		case 'h':
			fputs(manifest_help, stdout);
			ret = 0;
			goto out;
		default: ret = usage_err("manifest", "unknown option"); goto out;
		}
	}
	if (!content || !out || optind != argc) {
		ret = usage_err("manifest", "--content FILE and --out MANIFEST.json are required");
		goto out;
	}
	if (tdir && m->n_templates) {
		ret = usage_err("manifest", "--template and --templates exclude each other");
		goto out;
	}
	/* Without --template ID:VER by hand, the file is parsed against the
	 * registry from --templates, $FB_TEMPLATES or the installed places. */
	if (!m->n_templates) {
		if (cf_locate_dir(CF_DIR_TEMPLATES, tdir, tbuf, sizeof tbuf, &err) != FB_OK) {
			msg("manifest create: %s (or give --channel, --version and --template "
			    "ID:VER "
			    "by hand)",
			    err.msg);
			ret = EXIT_USAGE;
			goto out;
		}
		tdir = tbuf;
	} else if (ch < 0 || !ver) {
		ret = usage_err("manifest", "--template by hand needs --channel N and --version V");
		goto out;
	}
	ret = EXIT_FAIL;
	data = read_doc(content, MAX_CONTENT, &len);
	if (!data)
		goto out;
	if (tdir) {
		/* The one parser decides what the file is. */
		if (cf_registry_load_dir(tdir, &reg, &err)) {
			msg("manifest create: templates %s: %s", tdir, err.msg);
			goto out;
		}
		if (cf_parse(reg, data, len, &file, &err)) {
			msg("manifest create: %s is not a valid channel file: %s", content,
			    err.msg);
			goto out;
		}
		if ((ch >= 0 && (uint32_t)ch != cf_file_channel(file)) ||
		    (ver && ver != cf_file_content_version(file))) {
			msg("manifest create: %s is channel %" PRIu32 " version %" PRId64
			    ", not what --channel/--version say",
			    content, cf_file_channel(file), cf_file_content_version(file));
			goto out;
		}
		ch = cf_file_channel(file);
		ver = cf_file_content_version(file);
		size_t n;
		const struct cf_tpl_ref *t = cf_file_templates(file, &n);
		if (n > FBSIG_MAX_TEMPLATES) {
			msg("manifest create: the file uses %zu template types (at most %d)", n,
			    FBSIG_MAX_TEMPLATES);
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			m->templates[i].id = t[i].id;
			m->templates[i].version = t[i].version;
		}
		m->n_templates = n;
	}
	m->channel = (uint32_t)ch;
	m->version = ver;
	m->size = (int64_t)len;
	m->created = created;
	m->expires = created + life;
	fb_sha256_hex(data, len, m->sha256);
	if (fbsig_manifest_build(m, &doc, &err) ||
	    fbsig_envelope_new(FBSIG_MANIFEST, doc, &res, &rlen, &err)) {
		msg("manifest create: %s", err.msg);
		goto out;
	}
	if (write_doc(out, res, rlen))
		goto out;
	msg("wrote unsigned manifest (channel %" PRIu32 ", version %" PRId64
	    ", %zu bytes, sha256 %s) to %s",
	    m->channel, m->version, len, m->sha256, out);
	ret = 0;
out:
	cf_file_free(file);
	cf_registry_free(reg);
	json_decref(doc);
	free(res);
	free(data);
	free(m);
	return ret;
}

/* ---- verify ------------------------------------------------------------- */

static const char verify_help[] =
        "usage: fb-sign verify --root ROOT.json DOC [--content FILE] [--channel N]\n"
        "                      [--last-sequence S] [--now T] [--json]\n"
        "\n"
        "Verify DOC (its type comes from its _type) against the trusted root ROOT:\n"
        "  root        the next root (version + 1, signed by the threshold of the\n"
        "              current and of its own root keys), or ROOT itself\n"
        "  manifest    release-key threshold and expiry; with --content, the file's\n"
        "              size and sha256; with --channel, that it belongs to channel N\n"
        "  assignment  online-key signature, expiry, sequence > S (default 0), and\n"
        "              every embedded manifest\n"
        "Prints \"valid\" or \"invalid: reason\" (--json: an object) and exits 0 or 1.\n"
        "--now T sets the clock (Unix seconds) for expiry checks.\n";

static int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {{"root", required_argument, NULL, 'r'},
	                                     {"content", required_argument, NULL, 'c'},
	                                     {"channel", required_argument, NULL, 'C'},
	                                     {"last-sequence", required_argument, NULL, 's'},
	                                     {"now", required_argument, NULL, 'N'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *rpath = NULL, *cpath = NULL;
	int64_t channel = -1, lastseq = 0, now = now_s();
	int c, json = 0;
	unsigned char *rb = NULL, *db = NULL, *cb = NULL;
	size_t rl = 0, dl = 0, cl = 0;
	struct fbsig_root *root = NULL, *next = NULL;
	struct fbsig_manifest *m = NULL;
	struct fbsig_assignment *a = NULL;
	enum fbsig_type type = FBSIG_ROOT;
	struct fb_err err = {""};
	enum fb_rc rc = FB_OK;
	json_t *info = NULL;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': rpath = optarg; break;
		case 'c': cpath = optarg; break;
		case 'C':
			if (int_opt("verify", "channel", optarg, 0, UINT32_MAX, &channel))
				return EXIT_USAGE;
			break;
		case 's':
			if (int_opt("verify", "last-sequence", optarg, 0, INT64_MAX, &lastseq))
				return EXIT_USAGE;
			break;
		case 'N':
			if (int_opt("verify", "now", optarg, 0, INT64_MAX, &now))
				return EXIT_USAGE;
			break;
		case 'j': json = 1; break;
		case 'h': fputs(verify_help, stdout); return 0;
		default: return usage_err("verify", "unknown option");
		}
	}
	if (!rpath || optind != argc - 1)
		return usage_err("verify", "--root and one DOC are required");
	const char *dpath = argv[optind];
	info = json_object();
	if (!info)
		return EXIT_FAIL;
	rb = read_doc(rpath, FBSIG_MAX_DOC, &rl);
	db = read_doc(dpath, FBSIG_MAX_DOC + 1, &dl);
	if (cpath)
		cb = read_doc(cpath, MAX_CONTENT, &cl);
	if (!rb || !db || (cpath && !cb)) {
		rc = FB_EIO;
		fb_err_set(&err, "cannot read the input files");
		goto out;
	}
	rc = fbsig_envelope_type(db, dl, &type, &err);
	if (rc)
		goto out;
	json_object_set_new(info, "type", json_string(fbsig_type_name(type)));
	/* An expired trusted root may still authorise its successor. */
	rc = fbsig_root_load_trusted(rb, rl, now, type == FBSIG_ROOT ? FBSIG_ALLOW_EXPIRED : 0,
	                             &root, &err);
	if (rc)
		goto out;
	if (type == FBSIG_ROOT) {
		/* The successor of the trusted root, or the trusted root itself. */
		rc = fbsig_root_update(root, db, dl, now, &next, &err);
		if (rc == FB_EROLLBACK) {
			/* Not a successor: valid only if it is the trusted root
			 * itself (same signed content, self-signed, unexpired). */
			struct fbsig_root *self = NULL;
			struct fb_err e2 = {""};
			enum fb_rc r2 = fbsig_root_load_trusted(db, dl, now, FBSIG_ALLOW_EXPIRED,
			                                        &self, &e2);
			if (r2 == FB_OK &&
			    json_equal(fbsig_root_signed(self), fbsig_root_signed(root))) {
				rc = FB_OK;
				if (now >= fbsig_root_expires(self)) {
					fb_err_set(&err,
					           "root version %lld expired at %lld (now %lld)",
					           (long long)fbsig_root_version(self),
					           (long long)fbsig_root_expires(self),
					           (long long)now);
					rc = FB_EEXPIRED;
				}
				next = self;
			} else {
				fbsig_root_free(self);
			}
		}
		if (rc)
			goto out;
		json_object_set_new(info, "version", json_integer(fbsig_root_version(next)));
		json_object_set_new(info, "expires", json_integer(fbsig_root_expires(next)));
	} else if (type == FBSIG_MANIFEST) {
		m = calloc(1, sizeof *m);
		rc = m ? fbsig_manifest_verify(root, db, dl, now, m, &err) : FB_ENOMEM;
		if (rc == FB_OK && cb)
			rc = fbsig_manifest_check_blob(
			        m, cb, cl, channel >= 0 ? (uint32_t)channel : m->channel, &err);
		else if (rc == FB_OK && channel >= 0 && m->channel != (uint32_t)channel) {
			fb_err_set(&err,
			           "manifest is for channel %" PRIu32 ", not channel %" PRId64,
			           m->channel, channel);
			rc = FB_EINVAL;
		}
		if (rc)
			goto out;
		json_object_set_new(info, "channel", json_integer(m->channel));
		json_object_set_new(info, "version", json_integer(m->version));
		json_object_set_new(info, "sha256", json_string(m->sha256));
		json_object_set_new(info, "size", json_integer(m->size));
		json_object_set_new(info, "expires", json_integer(m->expires));
		json_object_set_new(info, "content_checked", json_boolean(cb != NULL));
	} else {
		rc = fbsig_assignment_verify(root, db, dl, now, lastseq, &a, &err);
		if (rc)
			goto out;
		json_t *chs = json_array();
		for (size_t i = 0; i < a->n_channels; i++)
			json_array_append_new(chs, json_pack("{s:I, s:I, s:s}", "channel",
			                                     (json_int_t)a->channels[i].channel,
			                                     "version",
			                                     (json_int_t)a->channels[i].version,
			                                     "sha256", a->channels[i].sha256));
		json_object_set_new(info, "audience", json_string(a->audience));
		json_object_set_new(info, "sequence", json_integer(a->sequence));
		json_object_set_new(info, "expires", json_integer(a->expires));
		json_object_set_new(info, "channels", chs);
	}
out:
	if (json) {
		json_object_set_new(info, "valid", json_boolean(rc == FB_OK));
		if (rc) {
			json_object_set_new(info, "error", json_string(err.msg));
			json_object_set_new(info, "code", json_string(fb_rc_str(rc)));
		}
		print_json(info);
		info = NULL;
	} else if (rc == FB_OK) {
		printf("valid: %s %s\n", fbsig_type_name(type), dpath);
	} else {
		printf("invalid: %s\n", dpath);
		msg("verify: %s: %s (%s)", dpath, err.msg, fb_rc_str(rc));
	}
	json_decref(info);
	fbsig_root_free(root);
	fbsig_root_free(next);
	fbsig_assignment_free(a);
	free(m);
	free(rb);
	free(db);
	free(cb);
	return rc ? EXIT_FAIL : 0;
}

/* ---- inspect ------------------------------------------------------------ */

static const char inspect_help[] =
        "usage: fb-sign inspect DOC [--json]\n"
        "\n"
        "Show an envelope without verifying it: its type, the signed fields, the key\n"
        "ids that signed it and the sha256 of its canonical signed bytes.\n";

static int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	int c, json = 0, ret = EXIT_FAIL;
	unsigned char *db = NULL;
	size_t dl = 0, ml = 0;
	json_t *doc = NULL, *out = NULL;
	char *msgb = NULL;
	enum fbsig_type type;
	struct fb_err err = {""};
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = 1; break;
		case 'h': fputs(inspect_help, stdout); return 0;
		default: return usage_err("inspect", "unknown option");
		}
	}
	if (optind != argc - 1)
		return usage_err("inspect", "one DOC is required");
	const char *path = argv[optind];
	db = read_doc(path, FBSIG_MAX_DOC + 1, &dl);
	if (!db)
		goto out;
	if (fbsig_envelope_type(db, dl, &type, &err) || fbsig_parse(db, dl, &doc, &err)) {
		msg("inspect: %s: %s", path, err.msg);
		goto out;
	}
	json_t *sgnd = json_object_get(doc, "signed");
	json_t *sigs = json_object_get(doc, "signatures");
	char hex[FB_SHA256_HEX_LEN + 1];
	if (fbsig_message(type, sgnd, &msgb, &ml, &err)) {
		msg("inspect: %s: %s", path, err.msg);
		goto out;
	}
	fb_sha256_hex(msgb, ml, hex);
	json_t *ids = json_array();
	for (size_t i = 0; json_is_array(sigs) && i < json_array_size(sigs); i++) {
		json_t *id = json_object_get(json_array_get(sigs, i), "keyid");
		json_array_append_new(ids, json_is_string(id) ? json_copy(id) : json_null());
	}
	out = json_pack("{s:s, s:O, s:o, s:s}", "type", fbsig_type_name(type), "signed", sgnd,
	                "signed_by", ids, "message_sha256", hex);
	if (json) {
		print_json(out);
		out = NULL;
	} else {
		char *s = json_dumps(sgnd, JSON_INDENT(2) | JSON_SORT_KEYS);
		printf("type: %s\nmessage sha256: %s\nsignatures (%zu, not verified):",
		       fbsig_type_name(type), hex, json_array_size(ids));
		for (size_t i = 0; i < json_array_size(ids); i++) {
			json_t *id = json_array_get(ids, i);
			printf(" %s", json_is_string(id) ? json_string_value(id) : "?");
		}
		printf("\nsigned:\n%s\n", s ? s : "?");
		free(s);
	}
	ret = 0;
out:
	json_decref(out);
	json_decref(doc);
	free(msgb);
	free(db);
	return ret;
}

/* ---- main ---------------------------------------------------------------- */

static const char main_help[] =
        "usage: fb-sign COMMAND [options]   (fb-sign COMMAND --help for details)\n"
        "\n"
        "  keygen           create a key pair (NAME.pub, NAME.key)\n"
        "  root init        write a first root (keys, roles, thresholds)\n"
        "  root rotate      write the next root version\n"
        "  manifest create  write a content manifest for a channel file\n"
        "  sign             add a signature to a root, manifest or assignment\n"
        "  verify           verify a document against a trusted root\n"
        "  inspect          show a document without verifying it\n"
        "  --version        print the version\n"
        "\n"
        "Durations (--expires): a number and a unit, 30s, 5m, 2h, 1d; a plain number is\n"
        "seconds. Exit status: 0 success, 1 failure, refusal (already signed by that key)\n"
        "or invalid document, 2 usage error.\n";

int main(int argc, char **argv)
{
	if (fbsig_init()) {
		msg("cannot initialise libsodium");
		return EXIT_FAIL;
	}
	if (argc < 2) {
		fprintf(stderr, "usage: fb-sign COMMAND [options]\nRun 'fb-sign --help' for the "
		                "commands.\n");
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("fb-sign %s\n", FB_VERSION);
		return 0;
	}
	const char *cmd = argv[1];
	argc--;
	argv++;
	g_argv = argv;
	opterr = 0; /* usage_err names the option */
	if (strcmp(cmd, "keygen") == 0)
		return cmd_keygen(argc, argv);
	if (strcmp(cmd, "sign") == 0)
		return cmd_sign(argc, argv);
	if (strcmp(cmd, "root") == 0)
		return cmd_root(argc, argv);
	if (strcmp(cmd, "manifest") == 0)
		return cmd_manifest(argc, argv);
	if (strcmp(cmd, "verify") == 0)
		return cmd_verify(argc, argv);
	if (strcmp(cmd, "inspect") == 0)
		return cmd_inspect(argc, argv);
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(main_help, stdout);
		return 0;
	}
	msg("unknown command \"%s\"", cmd);
	fprintf(stderr, "Run 'fb-sign --help' for the commands.\n");
	return EXIT_USAGE;
}
