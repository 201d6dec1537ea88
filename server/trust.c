/* The server's trust material: online key, root of trust, template registry. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	fbsig_key_free(app.online_key);
	fbsig_root_free(app.root);
	cf_registry_free(app.registry);
	app.online_key = NULL;
	app.root = NULL;
	app.registry = NULL;
}
