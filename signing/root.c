/* libfbsign: the root document (keys, roles, thresholds), loading the pinned
 * root and accepting rotations signed by the previous root's keys. */
#include "sig_int.h"

#include <stdlib.h>
#include <string.h>

struct role {
	struct fbsig_pub keys[FBSIG_MAX_ROLE_KEYS];
	size_t n;
	unsigned threshold;
};

struct fbsig_root {
	int64_t version;
	int64_t expires;
	struct role roles[FBSIG_NROLES];
	json_t *sgnd; /* the verified signed object (owned reference) */
	char *bytes;  /* the envelope as received (owned) */
	size_t len;
};

static const char *const role_names[FBSIG_NROLES] = {"root", "release", "online"};

const char *fbsig_role_name(enum fbsig_role r)
{
	return (unsigned)r < FBSIG_NROLES ? role_names[r] : "?";
}

/* Parse one role {"keyids": [...], "threshold": k} against the keys map. */
static enum fb_rc role_parse(const json_t *roles, const json_t *keys, int r, struct role *out,
                             struct fb_err *err)
{
	static const char *const fields[] = {"keyids", "threshold", NULL};
	char ctx[48];
	json_t *ro = NULL;
	int64_t th = 0;
	snprintf(ctx, sizeof ctx, "root: role '%s'", role_names[r]);
	enum fb_rc rc = sigi_get_obj(roles, "root: roles", role_names[r], &ro, err);
	if (rc == FB_OK)
		rc = sigi_only_keys(ro, ctx, fields, err);
	if (rc)
		return rc;
	json_t *ids = json_object_get(ro, "keyids");
	if (!json_is_array(ids) || json_array_size(ids) == 0 ||
	    json_array_size(ids) > FBSIG_MAX_ROLE_KEYS) {
		fb_err_set(err, "%s: 'keyids' must be an array of 1..%d key ids", ctx,
		           FBSIG_MAX_ROLE_KEYS);
		return FB_EINVAL;
	}
	rc = sigi_get_int(ro, ctx, "threshold", 1, (int64_t)json_array_size(ids), &th, err);
	if (rc)
		return rc;
	out->n = 0;
	out->threshold = (unsigned)th;
	for (size_t i = 0; i < json_array_size(ids); i++) {
		json_t *id = json_array_get(ids, i);
		if (!json_is_string(id) || !sigi_is_keyid(json_string_value(id))) {
			fb_err_set(err, "%s: keyids[%zu] is not a key id", ctx, i);
			return FB_EINVAL;
		}
		const char *s = json_string_value(id);
		for (size_t j = 0; j < out->n; j++) {
			if (strcmp(out->keys[j].keyid, s) == 0) {
				fb_err_set(err, "%s: key %s listed twice", ctx, s);
				return FB_EINVAL;
			}
		}
		json_t *k = json_object_get(keys, s);
		if (!k) {
			fb_err_set(err, "%s: key %s is not in 'keys'", ctx, s);
			return FB_EINVAL;
		}
		/* keys were validated by the caller: "public" decodes to pk */
		size_t got = 0;
		struct fbsig_pub *p = &out->keys[out->n++];
		if (sigi_b64_decode(json_string_value(json_object_get(k, "public")), p->pk,
		                    FBSIG_PUBLIC_LEN, &got) != FB_OK)
			return FB_EINTERNAL;
		memcpy(p->keyid, s, sizeof p->keyid);
	}
	return FB_OK;
}

/* Structural parse of a root signed object into r (no signatures). */
static enum fb_rc root_parse(const json_t *sgnd, struct fbsig_root *r, struct fb_err *err)
{
	static const char *const fields[] = {"_type", "version", "expires", "keys", "roles", NULL};
	static const char *const kfields[] = {"public", NULL};
	json_t *keys = NULL, *roles = NULL;
	enum fb_rc rc = sigi_check_type(sgnd, FBSIG_ROOT, err);
	if (rc == FB_OK)
		rc = sigi_only_keys(sgnd, "root", fields, err);
	if (rc == FB_OK)
		rc = sigi_get_int(sgnd, "root", "version", 1, INT64_MAX, &r->version, err);
	if (rc == FB_OK)
		rc = sigi_get_int(sgnd, "root", "expires", 0, INT64_MAX, &r->expires, err);
	if (rc == FB_OK)
		rc = sigi_get_obj(sgnd, "root", "keys", &keys, err);
	if (rc == FB_OK)
		rc = sigi_get_obj(sgnd, "root", "roles", &roles, err);
	if (rc)
		return rc;
	if (json_object_size(keys) == 0 || json_object_size(keys) > FBSIG_MAX_KEYS) {
		fb_err_set(err, "root: 'keys' must hold 1..%d keys", FBSIG_MAX_KEYS);
		return FB_EINVAL;
	}
	const char *id;
	json_t *k;
	json_object_foreach(keys, id, k)
	{
		char ctx[64], want[FBSIG_KEYID_HEX + 1];
		const char *pub = NULL;
		unsigned char pk[FBSIG_PUBLIC_LEN];
		size_t got = 0;
		snprintf(ctx, sizeof ctx, "root: key %.20s", id);
		if (!sigi_is_keyid(id)) {
			fb_err_set(err, "%s: not a key id (%d lower-case hex digits)", ctx,
			           FBSIG_KEYID_HEX);
			return FB_EINVAL;
		}
		if (!json_is_object(k)) {
			fb_err_set(err, "%s: must be an object", ctx);
			return FB_EINVAL;
		}
		rc = sigi_only_keys(k, ctx, kfields, err);
		if (rc == FB_OK)
			rc = sigi_get_str(k, ctx, "public", 64, &pub, err);
		if (rc)
			return rc;
		if (sigi_b64_decode(pub, pk, sizeof pk, &got) != FB_OK) {
			fb_err_set(err, "%s: 'public' is not base64 of %d bytes", ctx,
			           FBSIG_PUBLIC_LEN);
			return FB_EINVAL;
		}
		fbsig_keyid(pk, want);
		if (strcmp(want, id) != 0) {
			fb_err_set(err,
			           "%s: key id does not match the public key (which has id %s)",
			           ctx, want);
			return FB_EINVAL;
		}
	}
	static const char *const rfields[] = {"root", "release", "online", NULL};
	rc = sigi_only_keys(roles, "root: roles", rfields, err);
	for (int i = 0; rc == FB_OK && i < FBSIG_NROLES; i++)
		rc = role_parse(roles, keys, i, &r->roles[i], err);
	if (rc)
		return rc;
	/* The online key lives on the server: it must never count as a release
	 * or root key, or a server compromise could sign content or roots. */
	const struct role *on = &r->roles[FBSIG_ROLE_ONLINE];
	for (size_t i = 0; i < on->n; i++) {
		for (int o = 0; o < FBSIG_ROLE_ONLINE; o++) {
			for (size_t j = 0; j < r->roles[o].n; j++) {
				if (strcmp(on->keys[i].keyid, r->roles[o].keys[j].keyid) == 0) {
					fb_err_set(err,
					           "root: online key %s is also a %s key; the "
					           "online key must hold no other role",
					           on->keys[i].keyid, role_names[o]);
					return FB_EINVAL;
				}
			}
		}
	}
	return FB_OK;
}

enum fb_rc sigi_root_check(const json_t *sgnd, struct fb_err *err)
{
	struct fbsig_root *r = calloc(1, sizeof *r);
	if (!r)
		return FB_ENOMEM;
	enum fb_rc rc = root_parse(sgnd, r, err);
	free(r);
	return rc;
}

void fbsig_root_free(struct fbsig_root *root)
{
	if (!root)
		return;
	json_decref(root->sgnd);
	free(root->bytes);
	free(root);
}

/* Parse env bytes into a new root holding a copy of bytes. */
static enum fb_rc root_new(const void *bytes, size_t len, struct sigi_env *env,
                           struct fbsig_root **out, struct fb_err *err)
{
	*out = NULL;
	struct fbsig_root *r = calloc(1, sizeof *r);
	if (!r)
		return FB_ENOMEM;
	enum fb_rc rc = sigi_env_parse(bytes, len, FBSIG_ROOT, env, err);
	if (rc == FB_OK)
		rc = root_parse(env->sgnd, r, err);
	if (rc == FB_OK) {
		r->bytes = malloc(len + 1);
		if (!r->bytes) {
			rc = FB_ENOMEM;
		} else {
			memcpy(r->bytes, bytes, len);
			r->bytes[len] = '\0';
			r->len = len;
			r->sgnd = json_incref(env->sgnd);
		}
	}
	if (rc) {
		fbsig_root_free(r);
		return rc;
	}
	*out = r;
	return FB_OK;
}

static enum fb_rc role_check(const struct sigi_env *env, const struct fbsig_root *by,
                             const char *what, struct fb_err *err)
{
	const struct role *ro = &by->roles[FBSIG_ROLE_ROOT];
	return sigi_env_check(env, FBSIG_ROOT, ro->keys, ro->n, ro->threshold, what, err);
}

enum fb_rc fbsig_root_load_trusted(const void *bytes, size_t len, int64_t now, unsigned flags,
                                   struct fbsig_root **out, struct fb_err *err)
{
	*out = NULL;
	struct fbsig_root *r = NULL;
	struct sigi_env *env = calloc(1, sizeof *env);
	if (!env)
		return FB_ENOMEM;
	enum fb_rc rc = root_new(bytes, len, env, &r, err);
	if (rc == FB_OK)
		rc = role_check(env, r, "root", err);
	if (rc == FB_OK && !(flags & FBSIG_ALLOW_EXPIRED) && now >= r->expires) {
		fb_err_set(err, "root version %lld expired at %lld (now %lld)",
		           (long long)r->version, (long long)r->expires, (long long)now);
		rc = FB_EEXPIRED;
	}
	if (rc == FB_OK) {
		*out = r;
		r = NULL;
	} else {
		fb_err_prefix(err, "trusted root");
	}
	fbsig_root_free(r);
	sigi_env_cleanup(env);
	free(env);
	return rc;
}

enum fb_rc fbsig_root_update(const struct fbsig_root *cur, const void *bytes, size_t len,
                             int64_t now, struct fbsig_root **out, struct fb_err *err)
{
	*out = NULL;
	struct fbsig_root *r = NULL;
	struct sigi_env *env = calloc(1, sizeof *env);
	if (!env)
		return FB_ENOMEM;
	enum fb_rc rc = root_new(bytes, len, env, &r, err);
	if (rc)
		goto out;
	if (r->version <= cur->version) {
		fb_err_set(err,
		           "new root has version %lld, not newer than the trusted version %lld",
		           (long long)r->version, (long long)cur->version);
		rc = FB_EROLLBACK;
		goto out;
	}
	if (r->version != cur->version + 1) {
		fb_err_set(err,
		           "new root has version %lld, expected %lld (versions cannot be skipped)",
		           (long long)r->version, (long long)cur->version + 1);
		rc = FB_EINVAL;
		goto out;
	}
	rc = role_check(env, cur, "previous-root", err);
	if (rc == FB_OK)
		rc = role_check(env, r, "new-root", err);
	if (rc)
		goto out;
	if (now >= r->expires) {
		fb_err_set(err, "root version %lld expired at %lld (now %lld)",
		           (long long)r->version, (long long)r->expires, (long long)now);
		rc = FB_EEXPIRED;
		goto out;
	}
	*out = r;
	r = NULL;
out:
	if (rc)
		fb_err_prefix(err, "root update from version %lld", (long long)cur->version);
	fbsig_root_free(r);
	sigi_env_cleanup(env);
	free(env);
	return rc;
}

int64_t fbsig_root_version(const struct fbsig_root *root)
{
	return root->version;
}

int64_t fbsig_root_expires(const struct fbsig_root *root)
{
	return root->expires;
}

unsigned fbsig_root_threshold(const struct fbsig_root *root, enum fbsig_role role)
{
	return (unsigned)role < FBSIG_NROLES ? root->roles[role].threshold : 0;
}

size_t fbsig_root_role_count(const struct fbsig_root *root, enum fbsig_role role)
{
	return (unsigned)role < FBSIG_NROLES ? root->roles[role].n : 0;
}

const struct fbsig_pub *fbsig_root_role_key(const struct fbsig_root *root, enum fbsig_role role,
                                            size_t i)
{
	if ((unsigned)role >= FBSIG_NROLES || i >= root->roles[role].n)
		return NULL;
	return &root->roles[role].keys[i];
}

const char *fbsig_root_bytes(const struct fbsig_root *root, size_t *len)
{
	*len = root->len;
	return root->bytes;
}

const json_t *fbsig_root_signed(const struct fbsig_root *root)
{
	return root->sgnd;
}

enum fb_rc fbsig_root_build(int64_t version, int64_t expires, const struct fbsig_role_spec *root,
                            const struct fbsig_role_spec *release,
                            const struct fbsig_role_spec *online, json_t **out, struct fb_err *err)
{
	*out = NULL;
	const struct fbsig_role_spec *specs[FBSIG_NROLES] = {root, release, online};
	enum fb_rc rc = FB_ENOMEM;
	json_t *doc = json_pack("{s:s, s:I, s:I}", "_type", "root", "version", (json_int_t)version,
	                        "expires", (json_int_t)expires);
	json_t *keys = json_object(), *roles = json_object();
	if (!doc || !keys || !roles)
		goto out;
	for (int r = 0; r < FBSIG_NROLES; r++) {
		json_t *ids = json_array();
		json_t *ro = json_pack("{s:o, s:I}", "keyids", ids, "threshold",
		                       (json_int_t)specs[r]->threshold);
		if (!ro || json_object_set_new(roles, role_names[r], ro))
			goto out;
		for (size_t i = 0; i < specs[r]->n; i++) {
			const struct fbsig_pub *p = &specs[r]->keys[i];
			char *b = sigi_b64_encode(p->pk, sizeof p->pk);
			json_t *k = b ? json_pack("{s:s}", "public", b) : NULL;
			free(b);
			if (!k || json_object_set_new(keys, p->keyid, k) ||
			    json_array_append_new(ids, json_string(p->keyid)))
				goto out;
		}
	}
	if (json_object_set(doc, "keys", keys) || json_object_set(doc, "roles", roles))
		goto out;
	rc = sigi_root_check(doc, err);
	if (rc == FB_OK) {
		*out = doc;
		doc = NULL;
	}
out:
	if (rc == FB_ENOMEM)
		fb_err_set(err, "out of memory");
	json_decref(keys);
	json_decref(roles);
	json_decref(doc);
	return rc;
}
