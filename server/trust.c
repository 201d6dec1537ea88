/* The server's trust material: online key, root of trust, template registry. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "config.h"
#include "log.h"

static enum fb_rc read_passphrase(const char *path, char **out, struct fb_err *err)
{
	*out = NULL;
	unsigned char *buf;
	size_t len;
	enum fb_rc rc = fb_file_read(path, 4096, &buf, &len);
	if (rc) {
		fb_err_set(err, "online_key_passphrase_file %s: %s", path, fb_rc_str(rc));
		return rc;
	}
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	*out = (char *)buf;
	return FB_OK;
}

/* Load root_chain/<version>.json for every version below the current root,
 * oldest first, verifying each step with fbsig_root_update (the first is
 * self-signed; expired roots are fine: they are history). */
static enum fb_rc load_chain(struct fb_err *err)
{
	if (!*cfg.root_chain)
		return FB_OK;
	int64_t cur = fbsig_root_version(app.root);
	int64_t first = cur;
	char path[4096];
	for (int64_t v = cur - 1; v >= 1; v--) {
		snprintf(path, sizeof path, "%s/%lld.json", cfg.root_chain, (long long)v);
		if (access(path, R_OK) != 0)
			break;
		first = v;
	}
	if (first == cur)
		return FB_OK;
	size_t n = (size_t)(cur - first);
	app.chain = calloc(n, sizeof *app.chain);
	app.chain_len = calloc(n, sizeof *app.chain_len);
	if (!app.chain || !app.chain_len)
		return FB_ENOMEM;
	app.chain_first = first;
	app.chain_n = n;
	struct fbsig_root *prev = NULL;
	enum fb_rc rc = FB_OK;
	for (size_t i = 0; i < n && !rc; i++) {
		snprintf(path, sizeof path, "%s/%lld.json", cfg.root_chain,
		         (long long)(first + (int64_t)i));
		unsigned char *b;
		rc = fb_file_read(path, FBSIG_MAX_DOC, &b, &app.chain_len[i]);
		if (rc) {
			fb_err_set(err, "root_chain %s: %s", path, fb_rc_str(rc));
			break;
		}
		app.chain[i] = (char *)b;
		struct fbsig_root *next = NULL;
		int64_t now = fb_now_ms() / 1000;
		rc = prev ? fbsig_root_update(prev, b, app.chain_len[i], now, &next, err)
		          : fbsig_root_load_trusted(b, app.chain_len[i], now, FBSIG_ALLOW_EXPIRED,
		                                    &next, err);
		if (rc == FB_EEXPIRED && prev) /* history may have expired since */
			rc = fbsig_root_load_trusted(b, app.chain_len[i], now, FBSIG_ALLOW_EXPIRED,
			                             &next, err);
		if (rc) {
			fb_err_prefix(err, "root_chain %s", path);
			break;
		}
		fbsig_root_free(prev);
		prev = next;
	}
	if (!rc) {
		/* the current root must follow the chain's last */
		size_t len;
		const char *b = fbsig_root_bytes(app.root, &len);
		struct fbsig_root *check = NULL;
		rc = fbsig_root_update(prev, b, len, fb_now_ms() / 1000, &check, err);
		if (rc)
			fb_err_prefix(err, "root %s does not follow root_chain version %lld",
			              cfg.root, (long long)(cur - 1));
		fbsig_root_free(check);
	}
	fbsig_root_free(prev);
	if (!rc)
		log_info("trust: root chain versions %lld..%lld", (long long)first, (long long)cur);
	return rc;
}

const char *app_root_version(int64_t v, size_t *len)
{
	if (app.root && v == fbsig_root_version(app.root))
		return fbsig_root_bytes(app.root, len);
	if (v >= app.chain_first && v < app.chain_first + (int64_t)app.chain_n) {
		*len = app.chain_len[v - app.chain_first];
		return app.chain[v - app.chain_first];
	}
	return NULL;
}

enum fb_rc app_load_trust(struct fb_err *err)
{
	enum fb_rc rc;
	char *pass = NULL;
	unsigned char *root = NULL;
	size_t root_len;
	if (*cfg.online_key_passphrase_file) {
		rc = read_passphrase(cfg.online_key_passphrase_file, &pass, err);
		if (rc)
			goto out;
	}
	rc = fbsig_key_load(cfg.online_key, pass, &app.online_key, err);
	if (rc) {
		fb_err_prefix(err, "online_key %s", cfg.online_key);
		goto out;
	}
	rc = fb_file_read(cfg.root, FBSIG_MAX_DOC, &root, &root_len);
	if (rc) {
		fb_err_set(err, "root %s: %s", cfg.root, fb_rc_str(rc));
		goto out;
	}
	rc = fbsig_root_load_trusted(root, root_len, fb_now_ms() / 1000, 0, &app.root, err);
	if (rc) {
		fb_err_prefix(err, "root %s", cfg.root);
		goto out;
	}
	struct fbsig_pub pub;
	fbsig_key_pub(app.online_key, &pub);
	int listed = 0;
	for (size_t i = 0; i < fbsig_root_role_count(app.root, FBSIG_ROLE_ONLINE); i++) {
		const struct fbsig_pub *k = fbsig_root_role_key(app.root, FBSIG_ROLE_ONLINE, i);
		if (k && memcmp(k->pk, pub.pk, sizeof pub.pk) == 0)
			listed = 1;
	}
	if (!listed) {
		fb_err_set(err,
		           "online key %s is not an online key of root version %lld; agents would "
		           "refuse every assignment",
		           pub.keyid, (long long)fbsig_root_version(app.root));
		rc = FB_ECONFLICT;
		goto out;
	}
	rc = load_chain(err);
	if (rc)
		goto out;
	rc = cf_registry_load_dir(cfg.templates, &app.registry, err);
	if (rc) {
		fb_err_prefix(err, "templates %s", cfg.templates);
		goto out;
	}
	log_info("trust: root version %lld, online key %s, %zu template type(s)",
	         (long long)fbsig_root_version(app.root), pub.keyid,
	         cf_registry_count(app.registry));
out:
	if (pass) {
		sodium_memzero(pass, strlen(pass));
		free(pass);
	}
	free(root);
	if (rc)
		app_free_trust();
	return rc;
}

void app_free_trust(void)
{
	for (size_t i = 0; i < app.chain_n; i++)
		free(app.chain ? app.chain[i] : NULL);
	free(app.chain);
	free(app.chain_len);
	app.chain = NULL;
	app.chain_len = NULL;
	app.chain_n = 0;
	fbsig_key_free(app.online_key);
	fbsig_root_free(app.root);
	cf_registry_free(app.registry);
	app.online_key = NULL;
	app.root = NULL;
	app.registry = NULL;
}
