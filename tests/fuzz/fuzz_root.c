/* libFuzzer target for the root of trust: fbsig_root_load_trusted (the
 * agent's pinned and saved roots, the server's configured root) with and
 * without FBSIG_ALLOW_EXPIRED, and fbsig_root_update (rotation) from the
 * golden root-v1 and root-v2. A root is only ever accepted when the vectors
 * signed it (fuzz_sign.h), an accepted root is self-consistent, and the same
 * bytes are never accepted as their own successor. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_root(const struct fbsig_root *r, const uint8_t *data, size_t size)
{
	struct fb_err err = {{0}};
	struct fbsig_root *again = NULL;
	size_t blen = 0;
	if (fbsig_root_version(r) < 1)
		abort();
	for (int role = 0; role < FBSIG_NROLES; role++) {
		size_t n = fbsig_root_role_count(r, (enum fbsig_role)role);
		unsigned th = fbsig_root_threshold(r, (enum fbsig_role)role);
		if (n < 1 || n > FBSIG_MAX_ROLE_KEYS || th < 1 || th > n)
			abort();
		for (size_t i = 0; i < n; i++) {
			const struct fbsig_pub *k =
			        fbsig_root_role_key(r, (enum fbsig_role)role, i);
			char id[FBSIG_KEYID_HEX + 1];
			fbsig_keyid(k->pk, id);
			if (strcmp(id, k->keyid) != 0)
				abort(); /* a listed id always matches its key */
		}
	}
	json_t *sgnd = fz_signed_of(data, size);
	fz_assert_known(FBSIG_ROOT, sgnd);
	if (!json_equal(sgnd, fbsig_root_signed(r)))
		abort();
	json_decref(sgnd);
	/* What an agent persists loads back as the same root... */
	const char *b = fbsig_root_bytes(r, &blen);
	if (fbsig_root_load_trusted(b, blen, FZ_NOW, FBSIG_ALLOW_EXPIRED, &again, &err) != FB_OK ||
	    fbsig_root_version(again) != fbsig_root_version(r))
		abort();
	fbsig_root_free(again);
	again = NULL;
	/* ...and is not its own successor (replay). */
	if (fbsig_root_update(r, data, size, FZ_NOW, &again, &err) != FB_EROLLBACK || again)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fb_err err = {{0}};
	struct fbsig_root *r = NULL, *rx = NULL, *next = NULL;
	fz_setup();

	enum fb_rc rc = fbsig_root_load_trusted(data, size, FZ_NOW, 0, &r, &err);
	enum fb_rc rcx =
	        fbsig_root_load_trusted(data, size, FZ_NOW, FBSIG_ALLOW_EXPIRED, &rx, &err);
	if (rc == FB_OK) {
		if (rcx != FB_OK || fbsig_root_expires(r) <= FZ_NOW)
			abort();
		check_root(r, data, size);
	} else if (rcx == FB_OK) {
		if (rc != FB_EEXPIRED || fbsig_root_expires(rx) > FZ_NOW)
			abort(); /* the flag only waives expiry */
		check_root(rx, data, size);
	}
	if ((rc != FB_OK && r) || (rcx != FB_OK && rx))
		abort();

	/* Rotation from the pinned v1 (the agent's path) and from v2. */
	const struct fbsig_root *cur[2] = {fz.root1, fz.root2};
	for (size_t i = 0; i < 2; i++) {
		rc = fbsig_root_update(cur[i], data, size, FZ_NOW, &next, &err);
		if (rc == FB_OK) {
			if (fbsig_root_version(next) != fbsig_root_version(cur[i]) + 1 ||
			    fbsig_root_expires(next) <= FZ_NOW)
				abort();
			check_root(next, data, size);
		} else if (next || err.msg[0] == '\0') {
			abort();
		}
		fbsig_root_free(next);
		next = NULL;
	}
	fbsig_root_free(r);
	fbsig_root_free(rx);
	return 0;
}
