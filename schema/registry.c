/* Template-type registry: loads the template files (schema/templates, one type per
 * file) at start-up, answers look-ups by (id, version) and reports the
 * capabilities (the template types and versions this build interprets). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cf_internal.h"

static int is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

enum fb_rc cf_locate_dir(enum cf_dir what, const char *given, char *out, size_t n,
                         struct fb_err *err)
{
	const char *name = what == CF_DIR_CORPUS ? "corpus" : "templates";
	const char *env = what == CF_DIR_CORPUS ? "FB_CORPUS" : "FB_TEMPLATES";
	const char *flag = what == CF_DIR_CORPUS ? "--corpus" : "--templates";
	const char *v = getenv(env);
	char exe[1024], cand[4][1200];
	size_t nc = 0;
	enum fb_rc rc = FB_ENOTFOUND;
	out[0] = '\0';
	if (given || (v && *v)) {
		const char *dir = given ? given : v;
		if (is_dir(dir)) {
			snprintf(out, n, "%s", dir);
			rc = FB_OK;
		} else {
			fb_err_set(err, "%s %s (from %s) is not a directory", name, dir,
			           given ? flag : env);
		}
		goto out;
	}
	snprintf(cand[nc++], sizeof cand[0], "schema/%s", name);
	ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (el > 0) {
		exe[el] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(cand[nc++], sizeof cand[0], "%s/../share/firebreak/%s", exe, name);
		}
	}
	snprintf(cand[nc++], sizeof cand[0], "/usr/local/share/firebreak/%s", name);
	snprintf(cand[nc++], sizeof cand[0], "/usr/share/firebreak/%s", name);
	for (size_t k = 0; k < nc; k++)
		if (is_dir(cand[k])) {
			snprintf(out, n, "%s", cand[k]);
			rc = FB_OK;
			goto out;
		}
	fb_err_set(err,
	           "no %s directory found (looked in ./schema/%s%s%s, %s and %s); pass %s DIR "
	           "or set %s",
	           name, name, nc == 4 ? ", " : "", nc == 4 ? cand[1] : "", cand[nc - 2],
	           cand[nc - 1], flag, env);
out:
	return rc;
}

static const char *const type_names[] = {"absent", "int",  "string", "bytes",
                                         "regex",  "cidr", "sha256"};

const char *cf_type_name(enum cf_type t)
{
	if ((unsigned)t < sizeof type_names / sizeof type_names[0])
		return type_names[t];
	return "unknown";
}

int cf_type_from_name(const char *s)
{
	for (size_t k = 1; k < sizeof type_names / sizeof type_names[0]; k++)
		if (strcmp(s, type_names[k]) == 0)
			return (int)k;
	return -1;
}

/* Identifier: [a-z0-9_], 1..63 bytes. */
static int ident_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= CF_EVENT_MAX_NAME)
		return 0;
	for (size_t k = 0; k < n; k++) {
		char c = s[k];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

static int key_allowed(const char *key, const char *const *allowed)
{
	for (; *allowed; allowed++)
		if (strcmp(key, *allowed) == 0)
			return 1;
	return 0;
}

/* Integer member in [min, max]; *out untouched when absent and !need. */
static enum fb_rc get_int(const json_t *obj, const char *key, int need, int64_t min, int64_t max,
                          int64_t *out, struct fb_err *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		if (need) {
			fb_err_set(err, "missing \"%s\"", key);
			return FB_EINVAL;
		}
		return FB_OK;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		fb_err_set(err, "\"%s\" must be an integer in [%lld, %lld]", key, (long long)min,
		           (long long)max);
		return FB_EINVAL;
	}
	*out = json_integer_value(v);
	return FB_OK;
}

static enum fb_rc get_ident(const json_t *obj, const char *key, int need, char *out,
                            struct fb_err *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		if (need) {
			fb_err_set(err, "missing \"%s\"", key);
			return FB_EINVAL;
		}
		return FB_OK;
	}
	if (!json_is_string(v) || !ident_ok(json_string_value(v))) {
		fb_err_set(err, "\"%s\" must be a string of 1-%u characters [a-z0-9_]", key,
		           CF_EVENT_MAX_NAME - 1);
		return FB_EINVAL;
	}
	snprintf(out, CF_EVENT_MAX_NAME, "%s", json_string_value(v));
	return FB_OK;
}

static enum fb_rc parse_field(const json_t *o, struct cf_field_def *fd, struct fb_err *err)
{
	static const char *const keys[] = {
	        "name", "type",    "required",   "role",   "attr",  "op",          "min",
	        "max",  "max_len", "max_states", "family", "icase", "description", NULL};
	enum fb_rc rc;
	const char *key;
	json_t *val;
	if (!json_is_object(o)) {
		fb_err_set(err, "not an object");
		return FB_EINVAL;
	}
	json_object_foreach((json_t *)o, key, val)
	{
		if (!key_allowed(key, keys)) {
			fb_err_set(err, "unknown key \"%s\"", key);
			return FB_EINVAL;
		}
	}
	if ((rc = get_ident(o, "name", 1, fd->name, err)))
		return rc;
	json_t *t = json_object_get(o, "type");
	int ty = json_is_string(t) ? cf_type_from_name(json_string_value(t)) : -1;
	if (ty < 0) {
		fb_err_set(err, "\"type\" must be one of int, string, bytes, regex, cidr, sha256");
		return FB_EINVAL;
	}
	fd->type = (enum cf_type)ty;
	json_t *req = json_object_get(o, "required");
	if (req && !json_is_boolean(req)) {
		fb_err_set(err, "\"required\" must be true or false");
		return FB_EINVAL;
	}
	fd->required = req ? json_is_true(req) : 1;
	if ((rc = get_ident(o, "attr", 0, fd->attr, err)))
		return rc;
	json_t *role = json_object_get(o, "role");
	const char *rs = role ? json_string_value(role) : (fd->attr[0] ? "match" : "meta");
	if (!rs) {
		fb_err_set(err, "\"role\" must be a string");
		return FB_EINVAL;
	}
	if (strcmp(rs, "match") == 0) {
		fd->role = CF_ROLE_MATCH;
		if (!fd->attr[0]) {
			fb_err_set(err, "a match field needs \"attr\" (the event attribute)");
			return FB_EINVAL;
		}
	} else if (strcmp(rs, "action") == 0) {
		fd->role = CF_ROLE_ACTION;
		if (fd->type != CF_T_INT || fd->attr[0]) {
			fb_err_set(err, "an action field must be of type int without \"attr\"");
			return FB_EINVAL;
		}
	} else if (strcmp(rs, "meta") == 0) {
		fd->role = CF_ROLE_META;
		if (fd->attr[0]) {
			fb_err_set(err, "a meta field takes no \"attr\"");
			return FB_EINVAL;
		}
	} else {
		fb_err_set(err, "\"role\" must be match, action or meta");
		return FB_EINVAL;
	}
	/* default comparison per type, "op" may refine it */
	switch (fd->type) {
	case CF_T_REGEX: fd->op = CF_OP_REGEX; break;
	case CF_T_CIDR: fd->op = CF_OP_IN_CIDR; break;
	default: fd->op = CF_OP_EQ; break;
	}
	json_t *op = json_object_get(o, "op");
	if (op) {
		const char *os = json_string_value(op);
		int ok = 0;
		if (os && fd->type == CF_T_STRING) {
			ok = 1;
			if (strcmp(os, "eq") == 0)
				fd->op = CF_OP_EQ;
			else if (strcmp(os, "contains") == 0)
				fd->op = CF_OP_CONTAINS;
			else if (strcmp(os, "prefix") == 0)
				fd->op = CF_OP_PREFIX;
			else if (strcmp(os, "suffix") == 0)
				fd->op = CF_OP_SUFFIX;
			else
				ok = 0;
		} else if (os && fd->type == CF_T_INT) {
			ok = 1;
			if (strcmp(os, "eq") == 0)
				fd->op = CF_OP_EQ;
			else if (strcmp(os, "ge") == 0)
				fd->op = CF_OP_GE;
			else if (strcmp(os, "le") == 0)
				fd->op = CF_OP_LE;
			else
				ok = 0;
		}
		if (!ok || fd->role != CF_ROLE_MATCH) {
			fb_err_set(err,
			           "\"op\" not valid here (string match: eq, contains, prefix, "
			           "suffix; int match: eq, ge, le)");
			return FB_EINVAL;
		}
	}
	fd->min = INT64_MIN;
	fd->max = INT64_MAX;
	if (fd->type == CF_T_INT) {
		if ((rc = get_int(o, "min", 0, INT64_MIN, INT64_MAX, &fd->min, err)) ||
		    (rc = get_int(o, "max", 0, INT64_MIN, INT64_MAX, &fd->max, err)))
			return rc;
		if (fd->min > fd->max) {
			fb_err_set(err, "\"min\" > \"max\"");
			return FB_EINVAL;
		}
		if (fd->role == CF_ROLE_ACTION &&
		    (fd->min < CF_ACT_LOG || fd->max > CF_ACT_BLOCK)) {
			fb_err_set(err, "an action field needs min >= %d and max <= %d", CF_ACT_LOG,
			           CF_ACT_BLOCK);
			return FB_EINVAL;
		}
	} else if (json_object_get(o, "min") || json_object_get(o, "max")) {
		fb_err_set(err, "\"min\"/\"max\" apply to int fields only");
		return FB_EINVAL;
	}
	int64_t v = CF_MAX_VALUE;
	if (fd->type == CF_T_STRING || fd->type == CF_T_BYTES || fd->type == CF_T_REGEX) {
		if ((rc = get_int(o, "max_len", 0, 1, CF_MAX_VALUE, &v, err)))
			return rc;
	} else if (json_object_get(o, "max_len")) {
		fb_err_set(err, "\"max_len\" applies to string, bytes and regex fields only");
		return FB_EINVAL;
	}
	fd->max_len = (uint32_t)v;
	v = RX_MAX_STATES;
	if (fd->type == CF_T_REGEX) {
		if ((rc = get_int(o, "max_states", 0, 1, RX_MAX_STATES, &v, err)))
			return rc;
		json_t *ic = json_object_get(o, "icase");
		if (ic && !json_is_boolean(ic)) {
			fb_err_set(err, "\"icase\" must be true or false");
			return FB_EINVAL;
		}
		fd->allowed_flags = (!ic || json_is_true(ic)) ? RX_ICASE : 0;
	} else if (json_object_get(o, "max_states") || json_object_get(o, "icase")) {
		fb_err_set(err, "\"max_states\"/\"icase\" apply to regex fields only");
		return FB_EINVAL;
	}
	fd->max_states = (uint32_t)v;
	v = 0;
	if (fd->type == CF_T_CIDR) {
		if ((rc = get_int(o, "family", 0, 0, 6, &v, err)))
			return rc;
		if (v != 0 && v != 4 && v != 6) {
			fb_err_set(err, "\"family\" must be 4, 6 or 0 (either)");
			return FB_EINVAL;
		}
	} else if (json_object_get(o, "family")) {
		fb_err_set(err, "\"family\" applies to cidr fields only");
		return FB_EINVAL;
	}
	fd->family = (int)v;
	return FB_OK;
}

/* Parse one template document into t. */
static enum fb_rc parse_template(const json_t *root, struct cf_template *t, struct fb_err *err)
{
	static const char *const keys[] = {"id", "name", "version", "description", "fields", NULL};
	enum fb_rc rc;
	const char *key;
	json_t *val;
	int64_t v = 0;
	if (!json_is_object(root)) {
		fb_err_set(err, "top level must be an object");
		return FB_EINVAL;
	}
	json_object_foreach((json_t *)root, key, val)
	{
		if (!key_allowed(key, keys)) {
			fb_err_set(err, "unknown key \"%s\"", key);
			return FB_EINVAL;
		}
	}
	if ((rc = get_int(root, "id", 1, 1, UINT32_MAX, &v, err)))
		return rc;
	t->id = (uint32_t)v;
	if ((rc = get_int(root, "version", 1, 1, UINT16_MAX, &v, err)))
		return rc;
	t->version = (uint16_t)v;
	if ((rc = get_ident(root, "name", 1, t->name, err)))
		return rc;
	json_t *fields = json_object_get(root, "fields");
	if (!json_is_array(fields) || json_array_size(fields) == 0 ||
	    json_array_size(fields) > CF_MAX_FIELDS) {
		fb_err_set(err, "\"fields\" must be an array of 1-%u field objects", CF_MAX_FIELDS);
		return FB_EINVAL;
	}
	t->nfields = (uint16_t)json_array_size(fields);
	int nmatch = 0;
	for (size_t k = 0; k < t->nfields; k++) {
		if ((rc = parse_field(json_array_get(fields, k), &t->fields[k], err))) {
			fb_err_prefix(err, "field %zu", k);
			return rc;
		}
		for (size_t j = 0; j < k; j++)
			if (strcmp(t->fields[j].name, t->fields[k].name) == 0) {
				fb_err_set(err, "field %zu: duplicate name \"%s\"", k,
				           t->fields[k].name);
				return FB_EINVAL;
			}
		nmatch += t->fields[k].role == CF_ROLE_MATCH;
	}
	(void)nmatch; /* a template with no match field never matches; allowed */
	return FB_OK;
}

static int tpl_cmp(const void *a, const void *b)
{
	const struct cf_template *x = a, *y = b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return (x->version > y->version) - (x->version < y->version);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

enum fb_rc cf_registry_load_dir(const char *dir, struct cf_registry **out, struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	struct cf_registry *reg = NULL;
	char **names = NULL;
	size_t nnames = 0;
	unsigned char *text = NULL;
	json_t *root = NULL;
	DIR *d = NULL;
	*out = NULL;

	d = opendir(dir);
	if (!d) {
		fb_err_set(err, "templates directory %s: %s", dir, strerror(errno));
		rc = FB_EIO;
		goto out;
	}
	names = calloc(CF_MAX_TEMPLATES + 1, sizeof *names);
	reg = calloc(1, sizeof *reg);
	if (!names || !reg) {
		rc = FB_ENOMEM;
		goto out;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0 || de->d_name[0] == '.')
			continue;
		if (nnames == CF_MAX_TEMPLATES) {
			fb_err_set(err, "templates directory %s: more than %u template files", dir,
			           CF_MAX_TEMPLATES);
			rc = FB_ETOOBIG;
			goto out;
		}
		names[nnames] = strdup(de->d_name);
		if (!names[nnames]) {
			rc = FB_ENOMEM;
			goto out;
		}
		nnames++;
	}
	qsort(names, nnames, sizeof *names, name_cmp);
	reg->t = calloc(nnames ? nnames : 1, sizeof *reg->t);
	if (!reg->t) {
		rc = FB_ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < nnames; k++) {
		char path[4096];
		size_t len = 0;
		json_error_t jerr;
		snprintf(path, sizeof path, "%s/%s", dir, names[k]);
		rc = fb_file_read(path, CF_MAX_JSON, &text, &len);
		if (rc) {
			fb_err_set(err, "%s: cannot read (%s)", path, fb_rc_str(rc));
			goto out;
		}
		root = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &jerr);
		if (!root) {
			fb_err_set(err, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
			rc = FB_EINVAL;
			goto out;
		}
		rc = parse_template(root, &reg->t[reg->n], err);
		if (rc) {
			fb_err_prefix(err, "%s", path);
			goto out;
		}
		for (size_t j = 0; j < reg->n; j++) {
			const struct cf_template *o = &reg->t[j], *t = &reg->t[reg->n];
			if (o->id == t->id && o->version == t->version) {
				fb_err_set(err, "%s: template id %u version %u defined twice", path,
				           t->id, t->version);
				rc = FB_EINVAL;
				goto out;
			}
			if (o->id == t->id && strcmp(o->name, t->name) != 0) {
				fb_err_set(err, "%s: template id %u is named \"%s\" elsewhere",
				           path, t->id, o->name);
				rc = FB_EINVAL;
				goto out;
			}
		}
		reg->n++;
		json_decref(root);
		root = NULL;
		free(text);
		text = NULL;
	}
	qsort(reg->t, reg->n, sizeof *reg->t, tpl_cmp);
	*out = reg;
	reg = NULL;
out:
	if (d)
		closedir(d);
	for (size_t k = 0; k < nnames; k++)
		free(names[k]);
	free(names);
	free(text);
	json_decref(root);
	cf_registry_free(reg);
	return rc;
}

void cf_registry_free(struct cf_registry *reg)
{
	if (!reg)
		return;
	free(reg->t);
	free(reg);
}

size_t cf_registry_count(const struct cf_registry *reg)
{
	return reg ? reg->n : 0;
}

const struct cf_template *cf_registry_find(const struct cf_registry *reg, uint32_t id,
                                           uint16_t version)
{
	struct cf_template key = {.id = id, .version = version};
	if (!reg || !reg->n)
		return NULL;
	return bsearch(&key, reg->t, reg->n, sizeof *reg->t, tpl_cmp);
}

int cf_registry_has_id(const struct cf_registry *reg, uint32_t id)
{
	for (size_t k = 0; reg && k < reg->n; k++)
		if (reg->t[k].id == id)
			return 1;
	return 0;
}

static json_t *pair_json(uint32_t id, uint16_t version)
{
	return json_pack("{s:I,s:i}", "id", (json_int_t)id, "version", (int)version);
}

json_t *cf_registry_capabilities(const struct cf_registry *reg)
{
	json_t *a = json_array();
	for (size_t k = 0; a && reg && k < reg->n; k++) {
		if (json_array_append_new(a, pair_json(reg->t[k].id, reg->t[k].version))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

json_t *cf_file_templates_json(const struct cf_file *f)
{
	json_t *a = json_array();
	for (size_t k = 0; a && f && k < f->nrefs; k++) {
		if (json_array_append_new(a, pair_json(f->refs[k].id, f->refs[k].version))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* Read element k of a capabilities-style array. */
static enum fb_rc pair_get(const json_t *a, size_t k, const char *what, json_int_t *id,
                           json_int_t *ver, struct fb_err *err)
{
	json_t *e = json_array_get(a, k);
	json_t *i = json_object_get(e, "id"), *v = json_object_get(e, "version");
	if (!json_is_integer(i) || !json_is_integer(v)) {
		fb_err_set(err, "%s[%zu]: expected {\"id\": integer, \"version\": integer}", what,
		           k);
		return FB_EINVAL;
	}
	*id = json_integer_value(i);
	*ver = json_integer_value(v);
	return FB_OK;
}

enum fb_rc cf_capabilities_cover(const json_t *capabilities, const json_t *used, struct fb_err *err)
{
	enum fb_rc rc;
	json_int_t id, ver, cid, cver;
	if (!json_is_array(capabilities) || !json_is_array(used)) {
		fb_err_set(err, "capabilities and templates used must be JSON arrays");
		return FB_EINVAL;
	}
	for (size_t k = 0; k < json_array_size(capabilities); k++)
		if ((rc = pair_get(capabilities, k, "capabilities", &cid, &cver, err)))
			return rc;
	for (size_t k = 0; k < json_array_size(used); k++) {
		if ((rc = pair_get(used, k, "templates", &id, &ver, err)))
			return rc;
		int found = 0;
		for (size_t j = 0; !found && j < json_array_size(capabilities); j++) {
			if ((rc = pair_get(capabilities, j, "capabilities", &cid, &cver, err)))
				return rc;
			found = cid == id && cver == ver;
		}
		if (!found) {
			fb_err_set(err,
			           "template id %lld version %lld is not interpreted by this agent "
			           "build",
			           (long long)id, (long long)ver);
			return FB_ENOTFOUND;
		}
	}
	return FB_OK;
}
