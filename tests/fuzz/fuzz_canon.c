/* libFuzzer target for libfbsign's encoding layer: the strict document parser
 * (fbsig_parse), canonical JSON (fbsig_canonical) on what it accepts and on
 * any JSON value jansson accepts, the signed-bytes builder (fbsig_message)
 * and fbsig_envelope_type. Invariants: canonicalisation is idempotent and
 * lossless, the canonical form of a parsed document parses back to an equal
 * document, the message is exactly the context string and the canonical
 * bytes, and the type of an envelope does not depend on its layout. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Canonical bytes of v twice (via a re-parse): must agree. Returns the first. */
static char *canon_twice(const json_t *v, size_t flags, size_t *len)
{
	struct fb_err err = {{0}};
	char *c1 = NULL, *c2 = NULL;
	size_t l1 = 0, l2 = 0;
	json_error_t je;
	if (fbsig_canonical(v, &c1, &l1, &err) != FB_OK) {
		if (err.msg[0] == '\0')
			abort(); /* every refusal carries a reason */
		return NULL;
	}
	if (strlen(c1) != l1)
		abort(); /* NUL-terminated, no NUL inside */
	json_t *w = json_loadb(c1, l1, flags, &je);
	if (!w || !json_equal(v, w))
		abort(); /* canonical form must mean the same value */
	if (fbsig_canonical(w, &c2, &l2, &err) != FB_OK || l2 != l1 || memcmp(c1, c2, l1) != 0)
		abort(); /* idempotent */
	json_decref(w);
	free(c2);
	*len = l1;
	return c1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fb_err err = {{0}};
	json_error_t je;
	json_t *v = NULL;
	char *c = NULL;
	size_t clen = 0;
	fz_setup();

	/* Any JSON value: the encoder alone (it takes arbitrary json_t). */
	json_t *any = json_loadb((const char *)data, size,
	                         JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
	if (any) {
		free(canon_twice(any, JSON_DECODE_ANY | JSON_ALLOW_NUL, &clen));
		json_decref(any);
	}

	/* The strict document parser, as every verifier uses it. */
	enum fb_rc rc = fbsig_parse(data, size, &v, &err);
	if (rc != FB_OK) {
		if (v || err.msg[0] == '\0' || (size > FBSIG_MAX_DOC && rc != FB_ETOOBIG))
			abort();
	} else {
		if (!json_is_object(v))
			abort();
		c = canon_twice(v, 0, &clen);
		if (!c)
			abort(); /* a parsed document is always canonicalisable */
		json_t *again = NULL;
		if (fbsig_parse(c, clen, &again, &err) != FB_OK || !json_equal(v, again))
			abort(); /* the canonical form passes the strict parser */
		json_decref(again);
		for (int t = FBSIG_ROOT; t <= FBSIG_ASSIGNMENT; t++) {
			char *m = NULL;
			size_t mlen = 0;
			char pre[32];
			int plen = snprintf(pre, sizeof pre, "firebreak/v1/%s\n",
			                    fbsig_type_name((enum fbsig_type)t));
			if (fbsig_message((enum fbsig_type)t, v, &m, &mlen, &err) != FB_OK)
				abort();
			if (mlen != (size_t)plen + clen || memcmp(m, pre, (size_t)plen) != 0 ||
			    memcmp(m + plen, c, clen) != 0)
				abort();
			free(m);
		}
		enum fbsig_type t1, t2;
		enum fb_rc r1 = fbsig_envelope_type(data, size, &t1, &err);
		enum fb_rc r2 = fbsig_envelope_type(c, clen, &t2, &err);
		if (r1 != r2 || (r1 == FB_OK && t1 != t2))
			abort();
	}
	json_decref(v);
	free(c);
	return 0;
}
