/* libfbsign: signed envelopes {"signed": {...}, "signatures": [...]}:
 * parsing, threshold verification over domain-separated bytes, signing. */
#include "sig_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

void sigi_env_cleanup(struct sigi_env *env)
{
	json_decref(env->doc);
	env->doc = NULL;
	env->sgnd = NULL;
	env->nsigs = 0;
}

enum fb_rc sigi_env_from_json(json_t *obj, enum fbsig_type type, struct sigi_env *env,
                              struct fb_err *err)
{
	static const char *const top[] = {"signed", "signatures", NULL};
	static const char *const entry[] = {"keyid", "sig", NULL};
	env->doc = json_incref(obj);
	env->sgnd = NULL;
	env->nsigs = 0;
	if (!json_is_object(obj)) {
		fb_err_set(err, "envelope is not a JSON object");
		return FB_EINVAL;
	}
	enum fb_rc rc = sigi_only_keys(obj, "envelope", top, err);
	if (rc)
		return rc;
	json_t *sigs = json_object_get(obj, "signatures");
	if (!json_is_array(sigs)) {
		fb_err_set(err, "envelope: 'signatures' must be an array");
		return FB_EINVAL;
	}
	if (json_array_size(sigs) > FBSIG_MAX_SIGS) {
		fb_err_set(err, "envelope carries %zu signatures, at most %d allowed",
		           json_array_size(sigs), FBSIG_MAX_SIGS);
		return FB_ETOOBIG;
	}
	rc = sigi_check_type(json_object_get(obj, "signed"), type, err);
	if (rc)
		return rc;
	env->sgnd = json_object_get(obj, "signed");
	for (size_t i = 0; i < json_array_size(sigs); i++) {
		json_t *e = json_array_get(sigs, i);
		char ctx[48];
		const char *id = NULL, *sig = NULL;
		size_t got = 0;
		snprintf(ctx, sizeof ctx, "signature %zu", i);
		if (!json_is_object(e)) {
			fb_err_set(err, "%s is not an object", ctx);
			return FB_ESIG;
		}
		rc = sigi_only_keys(e, ctx, entry, err);
		if (rc == FB_OK)
			rc = sigi_get_str(e, ctx, "keyid", 64, &id, err);
		if (rc == FB_OK)
			rc = sigi_get_str(e, ctx, "sig", 1024, &sig, err);
		if (rc)
			return FB_ESIG;
		if (!sigi_is_keyid(id)) {
			fb_err_set(err, "%s: keyid \"%.20s\" is not %d lower-case hex digits", ctx,
			           id, FBSIG_KEYID_HEX);
			return FB_ESIG;
		}
		struct sigi_sig *s = &env->sigs[env->nsigs];
		if (sigi_b64_decode(sig, s->sig, FBSIG_SIG_LEN, &got) != FB_OK) {
			if (got)
				fb_err_set(err,
				           "%s (key %s): %zu bytes, expected %d (%s signature)",
				           ctx, id, got, FBSIG_SIG_LEN,
				           got < FBSIG_SIG_LEN ? "truncated" : "oversized");
			else
				fb_err_set(err, "%s (key %s): 'sig' is empty or not valid base64",
				           ctx, id);
			return FB_ESIG;
		}
		memcpy(s->keyid, id, sizeof s->keyid);
		env->nsigs++;
	}
	return FB_OK;
}

enum fb_rc sigi_env_parse(const void *bytes, size_t len, enum fbsig_type type, struct sigi_env *env,
                          struct fb_err *err)
{
	json_t *v = NULL;
	env->doc = NULL;
	env->sgnd = NULL;
	env->nsigs = 0;
	enum fb_rc rc = fbsig_parse(bytes, len, &v, err);
	if (rc)
		return rc;
	rc = sigi_env_from_json(v, type, env, err);
	json_decref(v); /* env holds its own reference */
	return rc;
}

enum fb_rc sigi_env_check(const struct sigi_env *env, enum fbsig_type type,
                          const struct fbsig_pub *role_keys, size_t n, unsigned threshold,
                          const char *what, struct fb_err *err)
{
	char *msg = NULL;
	size_t mlen = 0, good = 0, unknown = 0, dup = 0;
	unsigned char counted[FBSIG_MAX_KEYS] = {0};
	enum fb_rc rc = FB_OK;
	if (n > FBSIG_MAX_KEYS) {
		fb_err_set(err, "too many %s keys", what);
		return FB_EINTERNAL;
	}
	rc = fbsig_message(type, env->sgnd, &msg, &mlen, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < env->nsigs; i++) {
		const struct sigi_sig *s = &env->sigs[i];
		size_t j = 0;
		while (j < n && strcmp(role_keys[j].keyid, s->keyid) != 0)
			j++;
		if (j == n) {
			unknown++;
			continue;
		}
		if (crypto_sign_verify_detached(s->sig, (const unsigned char *)msg, mlen,
		                                role_keys[j].pk) != 0) {
			fb_err_set(
			        err,
			        "signature %zu by %s key %s does not verify over this %s (document "
			        "altered, or signed as another document type)",
			        i, what, s->keyid, fbsig_type_name(type));
			rc = FB_ESIG;
			goto out;
		}
		if (counted[j]) {
			dup++;
			continue;
		}
		counted[j] = 1;
		good++;
	}
	if (good < threshold) {
		fb_err_set(err,
		           "%s: %zu of %u required distinct %s-key signatures (%zu signatures: %zu "
		           "by keys that are not %s keys, %zu repeating a key already counted)",
		           fbsig_type_name(type), good, threshold, what, env->nsigs, unknown, what,
		           dup);
		rc = FB_ETHRESHOLD;
	}
out:
	free(msg);
	return rc;
}

enum fb_rc sigi_doc_check(enum fbsig_type type, const json_t *sgnd, struct fb_err *err)
{
	struct fbsig_manifest m;
	enum fb_rc rc = sigi_check_type(sgnd, type, err);
	if (rc)
		return rc;
	switch (type) {
	case FBSIG_ROOT: return sigi_root_check(sgnd, err);
	case FBSIG_MANIFEST: return sigi_manifest_parse(sgnd, &m, err);
	case FBSIG_ASSIGNMENT: return sigi_assignment_check(sgnd, err);
	}
	return FB_EINVAL;
}

/* Canonical bytes of {"signed": sgnd, "signatures": [sigs]}. */
static enum fb_rc env_write(const json_t *sgnd, const struct sigi_sig *sigs, size_t n, char **out,
                            size_t *len, struct fb_err *err)
{
	enum fb_rc rc = FB_ENOMEM;
	json_t *env = json_object(), *arr = json_array();
	if (!env || !arr)
		goto out;
	for (size_t i = 0; i < n; i++) {
		char *b = sigi_b64_encode(sigs[i].sig, FBSIG_SIG_LEN);
		json_t *e = b ? json_pack("{s:s, s:s}", "keyid", sigs[i].keyid, "sig", b) : NULL;
		free(b);
		if (!e || json_array_append_new(arr, e))
			goto out;
	}
	if (json_object_set(env, "signed", (json_t *)sgnd) ||
	    json_object_set(env, "signatures", arr))
		goto out;
	rc = fbsig_canonical(env, out, len, err);
out:
	if (rc == FB_ENOMEM)
		fb_err_set(err, "out of memory");
	json_decref(arr);
	json_decref(env);
	return rc;
}

/* Append (or replace) key's signature over sgnd in sigs[0..*n). */
static enum fb_rc add_sig(const struct fbsig_key *key, enum fbsig_type type, const json_t *sgnd,
                          struct sigi_sig *sigs, size_t *n, struct fb_err *err)
{
	char *msg = NULL;
	size_t mlen = 0, i = 0;
	enum fb_rc rc = fbsig_message(type, sgnd, &msg, &mlen, err);
	if (rc)
		return rc;
	while (i < *n && strcmp(sigs[i].keyid, fbsig_key_id(key)) != 0)
		i++;
	if (i == *n) {
		if (*n >= FBSIG_MAX_SIGS) {
			fb_err_set(err, "envelope already carries %d signatures", FBSIG_MAX_SIGS);
			free(msg);
			return FB_ETOOBIG;
		}
		(*n)++;
	}
	memcpy(sigs[i].keyid, fbsig_key_id(key), sizeof sigs[i].keyid);
	fbsig_sign_raw(key, msg, mlen, sigs[i].sig);
	free(msg);
	return FB_OK;
}

enum fb_rc fbsig_envelope_new(enum fbsig_type type, const json_t *signed_obj, char **out,
                              size_t *len, struct fb_err *err)
{
	*out = NULL;
	*len = 0;
	enum fb_rc rc = sigi_doc_check(type, signed_obj, err);
	if (rc)
		return rc;
	return env_write(signed_obj, NULL, 0, out, len, err);
}

enum fb_rc fbsig_document_sign(const struct fbsig_key *key, enum fbsig_type type,
                               const json_t *signed_obj, char **out, size_t *len,
                               struct fb_err *err)
{
	*out = NULL;
	*len = 0;
	struct sigi_sig sig;
	size_t n = 0;
	enum fb_rc rc = sigi_doc_check(type, signed_obj, err);
	if (rc == FB_OK)
		rc = add_sig(key, type, signed_obj, &sig, &n, err);
	if (rc == FB_OK)
		rc = env_write(signed_obj, &sig, n, out, len, err);
	return rc;
}

enum fb_rc fbsig_envelope_sign(const struct fbsig_key *key, enum fbsig_type type, const void *bytes,
                               size_t len, char **out, size_t *outlen, struct fb_err *err)
{
	*out = NULL;
	*outlen = 0;
	struct sigi_env *env = calloc(1, sizeof *env);
	if (!env)
		return FB_ENOMEM;
	enum fb_rc rc = sigi_env_parse(bytes, len, type, env, err);
	if (rc == FB_OK)
		rc = sigi_doc_check(type, env->sgnd, err);
	if (rc == FB_OK)
		rc = add_sig(key, type, env->sgnd, env->sigs, &env->nsigs, err);
	if (rc == FB_OK)
		rc = env_write(env->sgnd, env->sigs, env->nsigs, out, outlen, err);
	sigi_env_cleanup(env);
	free(env);
	return rc;
}

enum fb_rc fbsig_envelope_type(const void *bytes, size_t len, enum fbsig_type *out,
                               struct fb_err *err)
{
	json_t *v = NULL;
	enum fb_rc rc = fbsig_parse(bytes, len, &v, err);
	if (rc)
		return rc;
	json_t *s = json_object_get(v, "signed");
	json_t *t = json_is_object(s) ? json_object_get(s, "_type") : NULL;
	if (!json_is_string(t)) {
		fb_err_set(err, "not a signed envelope: no \"signed\"._type");
		rc = FB_EINVAL;
	} else if (fbsig_type_parse(json_string_value(t), out) != FB_OK) {
		fb_err_set(err, "unknown document type \"%.40s\"", json_string_value(t));
		rc = FB_EINVAL;
	}
	json_decref(v);
	return rc;
}
