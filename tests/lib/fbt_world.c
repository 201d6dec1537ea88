/* A test world: real keys from fixed seeds, a signed root, signed content. */
#include "fbt_world.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fb.h"
#include "fbschema.h"
#include "fbt.h"

static int key_from(uint8_t tag, struct fbsig_key **out)
{
	unsigned char seed[FBSIG_SEED_LEN];
	memset(seed, tag, sizeof seed);
	return fbsig_key_from_seed(seed, out) == FB_OK ? 0 : -1;
}

int fbt_world_new(struct fbt_world *w)
{
	memset(w, 0, sizeof *w);
	if (fbsig_init())
		return -1;
	char *dir = fbt_tmpdir("world");
	snprintf(w->dir, sizeof w->dir, "%s", dir);
	free(dir);
	const char *src = getenv("FB_SRC") ? getenv("FB_SRC") : ".";
	snprintf(w->templates, sizeof w->templates, "%s/schema/templates", src);
	snprintf(w->corpus, sizeof w->corpus, "%s/schema/corpus", src);
	for (int i = 0; i < 2; i++)
		if (key_from((uint8_t)(0x10 + i), &w->root_keys[i]))
			return -1;
	for (int i = 0; i < 3; i++)
		if (key_from((uint8_t)(0x20 + i), &w->release_keys[i]))
			return -1;
	if (key_from(0x30, &w->online))
		return -1;
	struct fbsig_pub rootp[2], relp[3], onp;
	for (int i = 0; i < 2; i++)
		fbsig_key_pub(w->root_keys[i], &rootp[i]);
	for (int i = 0; i < 3; i++)
		fbsig_key_pub(w->release_keys[i], &relp[i]);
	fbsig_key_pub(w->online, &onp);
	struct fbsig_role_spec rs = {rootp, 2, 2}, rel = {relp, 3, 2}, on = {&onp, 1, 1};
	struct fb_err err;
	json_t *root = NULL;
	int64_t now = fb_now_ms() / 1000;
	if (fbsig_root_build(1, now + 365 * 86400, &rs, &rel, &on, &root, &err)) {
		fprintf(stderr, "fbt_world: root: %s\n", err.msg);
		return -1;
	}
	char *env = NULL, *env2 = NULL;
	size_t len, len2;
	int rc = -1;
	if (fbsig_document_sign(w->root_keys[0], FBSIG_ROOT, root, &env, &len, &err) ||
	    fbsig_envelope_sign(w->root_keys[1], FBSIG_ROOT, env, len, &env2, &len2, &err)) {
		fprintf(stderr, "fbt_world: sign root: %s\n", err.msg);
		goto out;
	}
	snprintf(w->root_path, sizeof w->root_path, "%s/root.json", w->dir);
	if (fb_file_write_atomic(w->root_path, env2, len2, 0644))
		goto out;
	char base[1100];
	snprintf(base, sizeof base, "%s/online", w->dir);
	if (fbsig_key_save(w->online, base, NULL, &err)) {
		fprintf(stderr, "fbt_world: online key: %s\n", err.msg);
		goto out;
	}
	snprintf(w->online_key_path, sizeof w->online_key_path, "%s/online.key", w->dir);
	snprintf(w->argbuf[0], sizeof w->argbuf[0], "--online_key=%s", w->online_key_path);
	snprintf(w->argbuf[1], sizeof w->argbuf[1], "--root=%s", w->root_path);
	snprintf(w->argbuf[2], sizeof w->argbuf[2], "--templates=%s", w->templates);
	snprintf(w->argbuf[3], sizeof w->argbuf[3], "--corpus=%s", w->corpus);
	for (int i = 0; i < 4; i++)
		w->args[i] = w->argbuf[i];
	w->args[4] = NULL;
	rc = 0;
out:
	json_decref(root);
	free(env);
	free(env2);
	return rc;
}

void fbt_world_free(struct fbt_world *w)
{
	for (int i = 0; i < 2; i++)
		fbsig_key_free(w->root_keys[i]);
	for (int i = 0; i < 3; i++)
		fbsig_key_free(w->release_keys[i]);
	fbsig_key_free(w->online);
	memset(w, 0, sizeof *w);
}

struct fbt_world *fbt_world_default(void)
{
	static struct fbt_world w;
	static int made;
	if (!made) {
		if (fbt_world_new(&w)) {
			fprintf(stderr, "fbt: cannot make the default test world\n");
			exit(2);
		}
		made = 1;
	}
	return &w;
}

int fbt_world_blob(uint32_t channel, int64_t version, unsigned char **blob, size_t *len)
{
	*blob = NULL;
	char path[1100];
	snprintf(path, sizeof path, "%s/tests/data/schema/valid/basic.json",
	         getenv("FB_SRC") ? getenv("FB_SRC") : ".");
	json_t *t = json_load_file(path, 0, NULL);
	if (!t)
		return -1;
	json_object_set_new(t, "channel", json_integer(channel));
	json_object_set_new(t, "content_version", json_integer(version));
	char *text = json_dumps(t, JSON_COMPACT);
	json_decref(t);
	struct fb_err err;
	int rc = cf_compile_json(NULL, text, strlen(text), blob, len, &err) == FB_OK ? 0 : -1;
	if (rc)
		fprintf(stderr, "fbt_world: compile: %s\n", err.msg);
	free(text);
	return rc;
}

char *fbt_world_manifest_tpl(struct fbt_world *w, const unsigned char *blob, size_t len,
                             uint32_t channel, int64_t version, const struct fbsig_template_ref *t,
                             size_t n, int nsign, int64_t expires)
{
	struct fb_err err;
	char *env = NULL;
	json_t *obj = NULL;
	struct fbsig_manifest m = {0};
	m.channel = channel;
	m.version = version;
	fb_sha256_hex(blob, len, m.sha256);
	m.size = (int64_t)len;
	for (size_t i = 0; i < n && i < FBSIG_MAX_TEMPLATES; i++)
		m.templates[i] = t[i];
	m.n_templates = n;
	int64_t now = fb_now_ms() / 1000;
	m.created = now - 60;
	m.expires = now + expires;
	if (expires < 0)
		m.created = now + expires - 3600;
	if (fbsig_manifest_build(&m, &obj, &err)) {
		fprintf(stderr, "fbt_world: manifest: %s\n", err.msg);
		goto out;
	}
	size_t elen;
	if (fbsig_envelope_new(FBSIG_MANIFEST, obj, &env, &elen, &err))
		goto out;
	for (int i = 0; i < nsign && i < 3; i++) {
		char *next;
		size_t nlen;
		if (fbsig_envelope_sign(w->release_keys[i], FBSIG_MANIFEST, env, elen, &next, &nlen,
		                        &err)) {
			fprintf(stderr, "fbt_world: sign: %s\n", err.msg);
			free(env);
			env = NULL;
			goto out;
		}
		free(env);
		env = next;
		elen = nlen;
	}
out:
	json_decref(obj);
	return env;
}

char *fbt_world_manifest(struct fbt_world *w, const unsigned char *blob, size_t len,
                         uint32_t channel, int64_t version, int nsign, int64_t expires)
{
	struct cf_registry *reg = NULL;
	struct cf_file *f = NULL;
	struct fb_err err;
	char *env = NULL;
	if (cf_registry_load_dir(w->templates, &reg, &err) || cf_parse(reg, blob, len, &f, &err)) {
		fprintf(stderr, "fbt_world: parse: %s\n", err.msg);
		goto out;
	}
	size_t n;
	const struct cf_tpl_ref *t = cf_file_templates(f, &n);
	struct fbsig_template_ref refs[FBSIG_MAX_TEMPLATES];
	for (size_t i = 0; i < n && i < FBSIG_MAX_TEMPLATES; i++) {
		refs[i].id = t[i].id;
		refs[i].version = t[i].version;
	}
	env = fbt_world_manifest_tpl(w, blob, len, channel, version, refs, n, nsign, expires);
out:
	cf_file_free(f);
	cf_registry_free(reg);
	return env;
}

char *fbt_world_upload_body(const char *manifest, const unsigned char *blob, size_t len)
{
	size_t b64len = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(b64len);
	sodium_bin2base64(b64, b64len, blob, len, sodium_base64_VARIANT_ORIGINAL);
	json_t *m = json_loads(manifest, 0, NULL);
	json_t *body = json_pack("{s:o,s:s}", "manifest", m ? m : json_null(), "blob", b64);
	char *s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	free(b64);
	return s;
}

char *fbt_world_content(struct fbt_world *w, uint32_t channel, int64_t version, char sha[65])
{
	unsigned char *blob;
	size_t len;
	if (fbt_world_blob(channel, version, &blob, &len))
		return NULL;
	fb_sha256_hex(blob, len, sha);
	char *m = fbt_world_manifest(w, blob, len, channel, version, 2, 30 * 86400);
	char *body = m ? fbt_world_upload_body(m, blob, len) : NULL;
	free(m);
	free(blob);
	return body;
}
