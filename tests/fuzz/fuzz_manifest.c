/* libFuzzer target for content manifests as the server verifies an upload
 * (server/content.c) and the agent checks content against one:
 * fbsig_manifest_verify under the golden root-v1 and root-v2 at a fixed now,
 * then fbsig_manifest_check_blob. A manifest is only accepted when the
 * vectors signed exactly its bytes (fuzz_sign.h: forgeries never verify),
 * its fields are in range, and a blob passes only for its own channel,
 * size and digest. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char content291[] = "firebreak test vector channel file 291\n";

static void check_manifest(const struct fbsig_manifest *m, const uint8_t *data, size_t size)
{
	struct fb_err err = {{0}};
	char hex[FB_SHA256_HEX_LEN + 1];
	size_t clen = sizeof content291 - 1;
	if (m->version < 1 || m->size < 0 || m->created >= m->expires || m->expires <= FZ_NOW ||
	    m->n_templates > FBSIG_MAX_TEMPLATES || !fz_is_sha_hex(m->sha256))
		abort();
	json_t *sgnd = fz_signed_of(data, size);
	fz_assert_known(FBSIG_MANIFEST, sgnd);
	json_decref(sgnd);
	fb_sha256_hex(content291, clen, hex);
	int match = (size_t)m->size == clen && strcmp(hex, m->sha256) == 0;
	if ((fbsig_manifest_check_blob(m, content291, clen, m->channel, &err) == FB_OK) != match)
		abort();
	if (fbsig_manifest_check_blob(m, content291, clen, m->channel + 1, &err) == FB_OK)
		abort(); /* mix-and-match: another channel's file */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fb_err err = {{0}};
	struct fbsig_manifest m;
	fz_setup();
	const struct fbsig_root *roots[2] = {fz.root1, fz.root2};
	for (size_t i = 0; i < 2; i++) {
		err.msg[0] = '\0';
		enum fb_rc rc = fbsig_manifest_verify(roots[i], data, size, FZ_NOW, &m, &err);
		if (rc == FB_OK)
			check_manifest(&m, data, size);
		else if (err.msg[0] == '\0')
			abort();
	}
	return 0;
}
