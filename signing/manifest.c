/* libfbsign: content manifests (signed by release keys) and assignments
 * (signed by the server's online key, embedding the manifests they name). */
#include "sig_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONTENT_SIZE ((int64_t)1 << 40) /* 1 TiB: far above any channel file */

static enum fb_rc root_not_expired(const struct fbsig_root *root, int64_t now, struct fb_err *err)
{
	if (now >= fbsig_root_expires(root)) {
		fb_err_set(err, "trusted root version %lld expired at %lld (now %lld)",
		           (long long)fbsig_root_version(root), (long long)fbsig_root_expires(root),
		           (long long)now);
		return FB_EEXPIRED;
	}
	return FB_OK;
}

/* Check a role of root against env (copies the role's keys out). */
static enum fb_rc check_role(const struct fbsig_root *root, enum fbsig_role role,
                             const struct sigi_env *env, enum fbsig_type type, struct fb_err *err)
{
	struct fbsig_pub keys[FBSIG_MAX_ROLE_KEYS];
	size_t n = fbsig_root_role_count(root, role);
	for (size_t i = 0; i < n; i++)
		keys[i] = *fbsig_root_role_key(root, role, i);
	return sigi_env_check(env, type, keys, n, fbsig_root_threshold(root, role),
	                      fbsig_role_name(role), err);
}

/* ---- manifest ---------------------------------------------------------- */

enum fb_rc sigi_manifest_parse(const json_t *sgnd, struct fbsig_manifest *m, struct fb_err *err)
{
	static const char *const fields[] = {"_type",     "channel", "version", "sha256", "size",
	                                     "templates", "created", "expires", NULL};
	static const char *const tfields[] = {"id", "version", NULL};
	int64_t ch = 0;
	const char *sha = NULL;
	memset(m, 0, sizeof *m);
	enum fb_rc rc = sigi_check_type(sgnd, FBSIG_MANIFEST, err);
	if (rc == FB_OK)
		rc = sigi_only_keys(sgnd, "manifest", fields, err);
	if (rc == FB_OK)
		rc = sigi_get_int(sgnd, "manifest", "channel", 0, UINT32_MAX, &ch, err);
	if (rc == FB_OK)
		rc = sigi_get_int(sgnd, "manifest", "version", 1, INT64_MAX, &m->version, err);
	if (rc == FB_OK)
		rc = sigi_get_str(sgnd, "manifest", "sha256", FB_SHA256_HEX_LEN, &sha, err);
	if (rc == FB_OK && !fb_is_sha256_hex(sha)) {
		fb_err_set(err, "manifest: 'sha256' must be 64 lower-case hex digits");
		rc = FB_EINVAL;
	}
	if (rc == FB_OK)
		rc = sigi_get_int(sgnd, "manifest", "size", 0, MAX_CONTENT_SIZE, &m->size, err);
	if (rc == FB_OK)
		rc = sigi_get_int(sgnd, "manifest", "created", 0, INT64_MAX, &m->created, err);
	if (rc == FB_OK)
		rc = sigi_get_int(sgnd, "manifest", "expires", m->created + 1, INT64_MAX,
		                  &m->expires, err);
	if (rc)
		return rc;
	m->channel = (uint32_t)ch;
	memcpy(m->sha256, sha, sizeof m->sha256);
	json_t *t = json_object_get(sgnd, "templates");
	if (!json_is_array(t) || json_array_size(t) > FBSIG_MAX_TEMPLATES) {
		fb_err_set(err, "manifest: 'templates' must be an array of at most %d entries",
		           FBSIG_MAX_TEMPLATES);
		return FB_EINVAL;
	}
	for (size_t i = 0; i < json_array_size(t); i++) {
		char ctx[48];
		json_t *e = json_array_get(t, i);
		snprintf(ctx, sizeof ctx, "manifest: templates[%zu]", i);
		if (!json_is_object(e)) {
			fb_err_set(err, "%s must be an object", ctx);
			return FB_EINVAL;
		}
		rc = sigi_only_keys(e, ctx, tfields, err);
		if (rc == FB_OK)
			rc = sigi_get_int(e, ctx, "id", 0, INT64_MAX, &m->templates[i].id, err);
		if (rc == FB_OK)
			rc = sigi_get_int(e, ctx, "version", 0, INT64_MAX, &m->templates[i].version,
			                  err);
		if (rc)
			return rc;
		m->n_templates++;
	}
	return FB_OK;
}

enum fb_rc fbsig_manifest_build(const struct fbsig_manifest *m, json_t **out, struct fb_err *err)
{
	*out = NULL;
	enum fb_rc rc = FB_ENOMEM;
	json_t *doc = NULL, *t = json_array();
	if (!t || m->n_templates > FBSIG_MAX_TEMPLATES)
		goto out;
	for (size_t i = 0; i < m->n_templates; i++) {
		json_t *e = json_pack("{s:I, s:I}", "id", (json_int_t)m->templates[i].id, "version",
		                      (json_int_t)m->templates[i].version);
		if (!e || json_array_append_new(t, e))
			goto out;
	}
	doc = json_pack("{s:s, s:I, s:I, s:s, s:I, s:O, s:I, s:I}", "_type", "manifest", "channel",
	                (json_int_t)m->channel, "version", (json_int_t)m->version, "sha256",
	                m->sha256, "size", (json_int_t)m->size, "templates", t, "created",
	                (json_int_t)m->created, "expires", (json_int_t)m->expires);
	if (!doc)
		goto out;
	struct fbsig_manifest check;
	rc = sigi_manifest_parse(doc, &check, err);
	if (rc == FB_OK) {
		*out = doc;
		doc = NULL;
	}
out:
	if (rc == FB_ENOMEM)
		fb_err_set(err, "cannot build manifest (out of memory or too many templates)");
	json_decref(t);
	json_decref(doc);
	return rc;
}

/* Verify a parsed manifest envelope: release threshold, then expiry. */
static enum fb_rc manifest_verify_env(const struct fbsig_root *root, const struct sigi_env *env,
                                      int64_t now, struct fbsig_manifest *out, struct fb_err *err)
{
	enum fb_rc rc = sigi_manifest_parse(env->sgnd, out, err);
	if (rc == FB_OK)
		rc = check_role(root, FBSIG_ROLE_RELEASE, env, FBSIG_MANIFEST, err);
	if (rc == FB_OK && now >= out->expires) {
		fb_err_set(err,
		           "manifest for channel %" PRIu32
		           " version %lld expired at %lld (now %lld)",
		           out->channel, (long long)out->version, (long long)out->expires,
		           (long long)now);
		rc = FB_EEXPIRED;
	}
	return rc;
}

enum fb_rc fbsig_manifest_verify(const struct fbsig_root *root, const void *bytes, size_t len,
                                 int64_t now, struct fbsig_manifest *out, struct fb_err *err)
{
	struct sigi_env *env = calloc(1, sizeof *env);
	struct fbsig_manifest *m = calloc(1, sizeof *m);
	enum fb_rc rc = env && m ? FB_OK : FB_ENOMEM;
	if (rc == FB_OK)
		rc = root_not_expired(root, now, err);
	if (rc == FB_OK)
		rc = sigi_env_parse(bytes, len, FBSIG_MANIFEST, env, err);
	if (rc == FB_OK)
		rc = manifest_verify_env(root, env, now, m, err);
	if (rc == FB_OK)
		*out = *m;
	if (env)
		sigi_env_cleanup(env);
	free(env);
	free(m);
	return rc;
}

enum fb_rc fbsig_manifest_check_blob(const struct fbsig_manifest *m, const void *blob, size_t len,
                                     uint32_t expected_channel, struct fb_err *err)
{
	char hex[FB_SHA256_HEX_LEN + 1];
	if (m->channel != expected_channel) {
		fb_err_set(err,
		           "manifest is for channel %" PRIu32 ", not channel %" PRIu32
		           " (content of another channel refused)",
		           m->channel, expected_channel);
		return FB_EINVAL;
	}
	if ((uint64_t)len != (uint64_t)m->size) {
		fb_err_set(err, "content is %zu bytes, the signed manifest says %lld", len,
		           (long long)m->size);
		return FB_ESIG;
	}
	fb_sha256_hex(blob, len, hex);
	if (strcmp(hex, m->sha256) != 0) {
		fb_err_set(err, "content sha256 %s does not match the signed manifest's %s", hex,
		           m->sha256);
		return FB_ESIG;
	}
	return FB_OK;
}

/* ---- assignment ------------------------------------------------------- */

/* Channel id from its decimal key: canonical decimal, 0..UINT32_MAX. */
static enum fb_rc channel_key(const char *k, uint32_t *out, struct fb_err *err)
{
	int64_t v = 0;
	size_t n = strlen(k);
	int digits = n > 0 && n <= 10 && !(n > 1 && k[0] == '0');
	for (size_t i = 0; digits && i < n; i++)
		digits = k[i] >= '0' && k[i] <= '9';
	if (!digits || fb_parse_i64(k, 0, UINT32_MAX, &v) != FB_OK) {
		fb_err_set(err, "assignment: channel key \"%.20s\" is not a decimal channel id", k);
		return FB_EINVAL;
	}
	*out = (uint32_t)v;
	return FB_OK;
}

/* One entry {"version","sha256","size","manifest"} under channel key k. */
static enum fb_rc entry_parse(const char *k, const json_t *e, struct fbsig_assignment_entry *out,
                              struct sigi_env *menv, struct fb_err *err)
{
	static const char *const fields[] = {"version", "sha256", "size", "manifest", NULL};
	char ctx[64];
	const char *sha = NULL;
	snprintf(ctx, sizeof ctx, "assignment: channel %.12s", k);
	enum fb_rc rc = channel_key(k, &out->channel, err);
	if (rc)
		return rc;
	if (!json_is_object(e)) {
		fb_err_set(err, "%s: entry must be an object", ctx);
		return FB_EINVAL;
	}
	rc = sigi_only_keys(e, ctx, fields, err);
	if (rc == FB_OK)
		rc = sigi_get_int(e, ctx, "version", 1, INT64_MAX, &out->version, err);
	if (rc == FB_OK)
		rc = sigi_get_str(e, ctx, "sha256", FB_SHA256_HEX_LEN, &sha, err);
	if (rc == FB_OK && !fb_is_sha256_hex(sha)) {
		fb_err_set(err, "%s: 'sha256' must be 64 lower-case hex digits", ctx);
		rc = FB_EINVAL;
	}
	if (rc == FB_OK)
		rc = sigi_get_int(e, ctx, "size", 0, MAX_CONTENT_SIZE, &out->size, err);
	if (rc)
		return rc;
	memcpy(out->sha256, sha, sizeof out->sha256);
	rc = sigi_env_from_json(json_object_get(e, "manifest"), FBSIG_MANIFEST, menv, err);
	if (rc == FB_OK)
		rc = sigi_manifest_parse(menv->sgnd, &out->manifest, err);
	if (rc)
		fb_err_prefix(err, "%s: embedded manifest", ctx);
	return rc;
}

/* Structural parse of an assignment into a (entries allocated). With root,
 * every embedded manifest is also verified and compared with its entry. */
static enum fb_rc assignment_parse(const json_t *sgnd, const struct fbsig_root *root, int64_t now,
                                   struct fbsig_assignment *a, struct fb_err *err)
{
	static const char *const fields[] = {"_type",   "audience",     "sequence", "issued",
	                                     "expires", "root_version", "channels", NULL};
	const char *aud = NULL;
	json_t *chans = NULL;
	struct sigi_env *menv = NULL;
	enum fb_rc rc = sigi_check_type(sgnd, FBSIG_ASSIGNMENT, err);
	if (rc == FB_OK)
		rc = sigi_only_keys(sgnd, "assignment", fields, err);
	if (rc == FB_OK)
		rc = sigi_get_str(sgnd, "assignment", "audience", FBSIG_MAX_AUDIENCE, &aud, err);
	if (rc == FB_OK && !*aud) {
		fb_err_set(err, "assignment: 'audience' is empty");
		rc = FB_EINVAL;
	}
	if (rc == FB_OK)
		rc = sigi_get_int(sgnd, "assignment", "sequence", 1, INT64_MAX, &a->sequence, err);
	if (rc == FB_OK)
		rc = sigi_get_int(sgnd, "assignment", "issued", 0, INT64_MAX, &a->issued, err);
	if (rc == FB_OK)
		rc = sigi_get_int(sgnd, "assignment", "expires", a->issued + 1, INT64_MAX,
		                  &a->expires, err);
	if (rc == FB_OK)
		rc = sigi_get_int(sgnd, "assignment", "root_version", 1, INT64_MAX,
		                  &a->root_version, err);
	if (rc == FB_OK)
		rc = sigi_get_obj(sgnd, "assignment", "channels", &chans, err);
	if (rc)
		return rc;
	snprintf(a->audience, sizeof a->audience, "%s", aud);
	if (json_object_size(chans) > FBSIG_MAX_CHANNELS) {
		fb_err_set(err, "assignment names %zu channels, at most %d allowed",
		           json_object_size(chans), FBSIG_MAX_CHANNELS);
		return FB_ETOOBIG;
	}
	a->channels =
	        calloc(json_object_size(chans) ? json_object_size(chans) : 1, sizeof *a->channels);
	menv = calloc(1, sizeof *menv);
	if (!a->channels || !menv) {
		free(menv);
		return FB_ENOMEM;
	}
	const char *k;
	json_t *e;
	json_object_foreach(chans, k, e)
	{
		struct fbsig_assignment_entry *ent = &a->channels[a->n_channels];
		rc = entry_parse(k, e, ent, menv, err);
		if (rc == FB_OK && root) {
			struct fbsig_manifest *m = &ent->manifest;
			rc = manifest_verify_env(root, menv, now, m, err);
			if (rc) {
				fb_err_prefix(err, "assignment: channel %s: embedded manifest", k);
			} else if (m->channel != ent->channel || m->version != ent->version ||
			           strcmp(m->sha256, ent->sha256) != 0 || m->size != ent->size) {
				fb_err_set(err,
				           "assignment: channel %s names version %lld sha256 "
				           "%.12s... size %lld, but its manifest is for channel "
				           "%" PRIu32 " version %lld sha256 %.12s... size %lld "
				           "(mix-and-match refused)",
				           k, (long long)ent->version, ent->sha256,
				           (long long)ent->size, m->channel, (long long)m->version,
				           m->sha256, (long long)m->size);
				rc = FB_EINVAL;
			}
		}
		sigi_env_cleanup(menv);
		if (rc)
			break;
		a->n_channels++;
	}
	free(menv);
	if (rc)
		return rc;
	/* Sort by channel (insertion sort; at most FBSIG_MAX_CHANNELS). */
	for (size_t i = 1; i < a->n_channels; i++) {
		struct fbsig_assignment_entry t = a->channels[i];
		size_t j = i;
		for (; j > 0 && a->channels[j - 1].channel > t.channel; j--)
			a->channels[j] = a->channels[j - 1];
		a->channels[j] = t;
	}
	return FB_OK;
}

void fbsig_assignment_free(struct fbsig_assignment *a)
{
	if (!a)
		return;
	free(a->channels);
	free(a);
}

enum fb_rc sigi_assignment_check(const json_t *sgnd, struct fb_err *err)
{
	struct fbsig_assignment *a = calloc(1, sizeof *a);
	if (!a)
		return FB_ENOMEM;
	enum fb_rc rc = assignment_parse(sgnd, NULL, 0, a, err);
	fbsig_assignment_free(a);
	return rc;
}

enum fb_rc fbsig_assignment_build(const char *audience, int64_t sequence, int64_t issued,
                                  int64_t expires, int64_t root_version, json_t **out,
                                  struct fb_err *err)
{
	*out = NULL;
	json_t *doc = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:{}}", "_type", "assignment",
	                        "audience", audience, "sequence", (json_int_t)sequence, "issued",
	                        (json_int_t)issued, "expires", (json_int_t)expires, "root_version",
	                        (json_int_t)root_version, "channels");
	if (!doc) {
		fb_err_set(err, "cannot build assignment (out of memory or audience not UTF-8)");
		return FB_ENOMEM;
	}
	enum fb_rc rc = sigi_assignment_check(doc, err);
	if (rc) {
		json_decref(doc);
		return rc;
	}
	*out = doc;
	return FB_OK;
}

enum fb_rc fbsig_assignment_add(json_t *assignment, const void *manifest_env, size_t len,
                                struct fb_err *err)
{
	struct fbsig_manifest m;
	char key[16];
	json_t *chans = json_object_get(assignment, "channels");
	struct sigi_env *env = calloc(1, sizeof *env);
	enum fb_rc rc = env ? FB_OK : FB_ENOMEM;
	if (rc == FB_OK)
		rc = sigi_env_parse(manifest_env, len, FBSIG_MANIFEST, env, err);
	if (rc == FB_OK)
		rc = sigi_manifest_parse(env->sgnd, &m, err);
	if (rc == FB_OK && !json_is_object(chans)) {
		fb_err_set(err, "not an assignment: no 'channels' object");
		rc = FB_EINVAL;
	}
	if (rc)
		goto out;
	snprintf(key, sizeof key, "%" PRIu32, m.channel);
	if (json_object_get(chans, key)) {
		fb_err_set(err, "assignment already names channel %s", key);
		rc = FB_ECONFLICT;
		goto out;
	}
	if (json_object_size(chans) >= FBSIG_MAX_CHANNELS) {
		fb_err_set(err, "assignment already names %d channels", FBSIG_MAX_CHANNELS);
		rc = FB_ETOOBIG;
		goto out;
	}
	json_t *e = json_pack("{s:I, s:s, s:I, s:O}", "version", (json_int_t)m.version, "sha256",
	                      m.sha256, "size", (json_int_t)m.size, "manifest", env->doc);
	if (!e || json_object_set_new(chans, key, e)) {
		rc = FB_ENOMEM;
		fb_err_set(err, "out of memory");
	}
out:
	if (env)
		sigi_env_cleanup(env);
	free(env);
	return rc;
}

enum fb_rc fbsig_assignment_sign(const struct fbsig_key *online, const json_t *signed_obj,
                                 char **out, size_t *len, struct fb_err *err)
{
	return fbsig_document_sign(online, FBSIG_ASSIGNMENT, signed_obj, out, len, err);
}

enum fb_rc fbsig_assignment_verify(const struct fbsig_root *root, const void *bytes, size_t len,
                                   int64_t now, int64_t last_sequence,
                                   struct fbsig_assignment **out, struct fb_err *err)
{
	*out = NULL;
	struct fbsig_assignment *a = calloc(1, sizeof *a);
	struct sigi_env *env = calloc(1, sizeof *env);
	enum fb_rc rc = a && env ? FB_OK : FB_ENOMEM;
	if (rc == FB_OK)
		rc = root_not_expired(root, now, err);
	if (rc == FB_OK)
		rc = sigi_env_parse(bytes, len, FBSIG_ASSIGNMENT, env, err);
	/* Signature first: nothing of an unsigned document is trusted. */
	if (rc == FB_OK)
		rc = check_role(root, FBSIG_ROLE_ONLINE, env, FBSIG_ASSIGNMENT, err);
	if (rc)
		goto out;
	rc = assignment_parse(env->sgnd, NULL, 0, a, err);
	if (rc)
		goto out;
	if (now >= a->expires) {
		fb_err_set(err, "assignment sequence %lld for '%s' expired at %lld (now %lld)",
		           (long long)a->sequence, a->audience, (long long)a->expires,
		           (long long)now);
		rc = FB_EEXPIRED;
		goto out;
	}
	if (a->sequence <= last_sequence) {
		fb_err_set(err,
		           "assignment sequence %lld is not greater than the last accepted %lld "
		           "(rollback or replay refused)",
		           (long long)a->sequence, (long long)last_sequence);
		rc = FB_EROLLBACK;
		goto out;
	}
	if (a->root_version > fbsig_root_version(root)) {
		fb_err_set(err, "assignment needs root version %lld, trusted root is version %lld",
		           (long long)a->root_version, (long long)fbsig_root_version(root));
		rc = FB_ECONFLICT;
		goto out;
	}
	free(a->channels);
	a->channels = NULL;
	a->n_channels = 0;
	rc = assignment_parse(env->sgnd, root, now, a, err);
	if (rc)
		goto out;
	*out = a;
	a = NULL;
out:
	fbsig_assignment_free(a);
	if (env)
		sigi_env_cleanup(env);
	free(env);
	return rc;
}
