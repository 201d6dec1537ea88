/* Shared set-up of the libfbsign fuzz targets (fuzz_canon.c, fuzz_envelope.c,
 * fuzz_root.c, fuzz_manifest.c, fuzz_assignment.c). Everything is fixed:
 * the keys, roots and signatures are the golden ones of
 * tests/vectors/sign_vectors.json (read once, from the repository root, or
 * from $FB_VECTORS), and "now" is FZ_NOW.
 *
 * The forgery oracle: at set-up every envelope in the vectors (documents,
 * checks, and the manifests embedded in assignments) is scanned, and each
 * message ("firebreak/v1/" TYPE "\n" canonical(signed)) that carries at least
 * one signature valid under a vector key (checked here with libsodium
 * directly) is recorded. A document the library accepts must have one of
 * these messages: the fuzzer has no secret key, so anything else would be a
 * forgery. The seed corpora only hold envelopes from the vectors. */
#ifndef FUZZ_SIGN_H
#define FUZZ_SIGN_H

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fbsign.h"

#define FZ_NOW     INT64_C(1700000100) /* the vectors' "now" */
#define FZ_MAXKEYS 16
#define FZ_MAXMSG  256

static struct {
	json_t *vec;
	struct fbsig_root *root1, *root2; /* root-v1 (pinned), root-v2 (its rotation) */
	struct fbsig_key *key[FZ_MAXKEYS];
	char name[FZ_MAXKEYS][32];
	struct fbsig_pub pub[FZ_MAXKEYS];
	size_t nkeys;
	char *msg[FZ_MAXMSG];
	size_t msglen[FZ_MAXMSG];
	size_t nmsg;
} fz;

static inline void fz_die(const char *what, const struct fb_err *err)
{
	fprintf(stderr, "fuzz_sign: %s: %s\n", what, err ? err->msg : "");
	abort();
}

/* Secret key named name ("release1", "online1", "root1", ...). */
static inline const struct fbsig_key *fz_key(const char *name)
{
	for (size_t i = 0; i < fz.nkeys; i++)
		if (strcmp(fz.name[i], name) == 0)
			return fz.key[i];
	fz_die(name, NULL);
	return NULL;
}

static inline int fz_msg_known(const char *m, size_t len)
{
	for (size_t i = 0; i < fz.nmsg; i++)
		if (fz.msglen[i] == len && memcmp(fz.msg[i], m, len) == 0)
			return 1;
	return 0;
}

/* Record env's message when one of its signatures verifies under a vector key;
 * recurse into the manifests an assignment embeds. */
static inline void fz_scan(const json_t *env)
{
	const json_t *sgnd = json_object_get(env, "signed"),
	             *sigs = json_object_get(env, "signatures");
	enum fbsig_type t;
	struct fb_err err = {{0}};
	char *m = NULL;
	size_t mlen = 0, i;
	json_t *e;
	const char *tn = json_string_value(json_object_get(sgnd, "_type"));
	if (!json_is_object(sgnd) || !json_is_array(sigs) || !tn ||
	    fbsig_type_parse(tn, &t) != FB_OK)
		return;
	if (t == FBSIG_ASSIGNMENT) {
		const char *ch;
		json_t *c;
		json_object_foreach(json_object_get(sgnd, "channels"), ch, c)
		        fz_scan(json_object_get(c, "manifest"));
	}
	if (fbsig_message(t, sgnd, &m, &mlen, &err) != FB_OK)
		return; /* e.g. the vector with a real number */
	json_array_foreach(sigs, i, e)
	{
		const char *id = json_string_value(json_object_get(e, "keyid"));
		const char *b64 = json_string_value(json_object_get(e, "sig"));
		unsigned char sig[FBSIG_SIG_LEN];
		size_t got = 0;
		if (!id || !b64 ||
		    sodium_base642bin(sig, sizeof sig, b64, strlen(b64), NULL, &got, NULL,
		                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    got != sizeof sig)
			continue;
		for (size_t k = 0; k < fz.nkeys; k++)
			if (strcmp(fz.pub[k].keyid, id) == 0 &&
			    crypto_sign_verify_detached(sig, (const unsigned char *)m, mlen,
			                                fz.pub[k].pk) == 0 &&
			    !fz_msg_known(m, mlen)) {
				if (fz.nmsg == FZ_MAXMSG)
					fz_die("too many vector messages", NULL);
				fz.msg[fz.nmsg] = m;
				fz.msglen[fz.nmsg++] = mlen;
				m = NULL;
				break;
			}
		if (!m)
			break;
	}
	free(m);
}

static inline const char *fz_doc_envelope(const char *name)
{
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(fz.vec, "documents"), i, d)
	{
		const char *n = json_string_value(json_object_get(d, "name"));
		if (n && strcmp(n, name) == 0)
			return json_string_value(json_object_get(d, "envelope_canonical"));
	}
	fz_die(name, NULL);
	return NULL;
}

static inline void fz_setup(void)
{
	struct fb_err err = {{0}};
	json_error_t je;
	size_t i;
	json_t *k, *d;
	const char *path =
	        getenv("FB_VECTORS") ? getenv("FB_VECTORS") : "tests/vectors/sign_vectors.json";
	if (fz.vec)
		return;
	if (fbsig_init() != FB_OK)
		fz_die("fbsig_init", NULL);
	fz.vec = json_load_file(path, 0, &je);
	if (!fz.vec) {
		fprintf(stderr, "fuzz_sign: %s: %s (run from the repository root)\n", path,
		        je.text);
		abort();
	}
	json_array_foreach(json_object_get(fz.vec, "keys"), i, k)
	{
		unsigned char seed[FBSIG_SEED_LEN];
		const char *name = json_string_value(json_object_get(k, "name"));
		if (fz.nkeys == FZ_MAXKEYS || !name ||
		    fb_hex_decode(json_string_value(json_object_get(k, "seed")), seed,
		                  sizeof seed) != FB_OK ||
		    fbsig_key_from_seed(seed, &fz.key[fz.nkeys]) != FB_OK)
			fz_die("vector key", NULL);
		snprintf(fz.name[fz.nkeys], sizeof fz.name[0], "%s", name);
		fbsig_key_pub(fz.key[fz.nkeys], &fz.pub[fz.nkeys]);
		fz.nkeys++;
	}
	json_array_foreach(json_object_get(fz.vec, "documents"), i, d)
	{
		const char *env = json_string_value(json_object_get(d, "envelope_canonical"));
		json_t *v = env ? json_loads(env, 0, &je) : NULL;
		if (!v)
			fz_die("vector document", NULL);
		fz_scan(v);
		json_decref(v);
	}
	json_array_foreach(json_object_get(fz.vec, "checks"), i, d)
	        fz_scan(json_object_get(d, "doc"));
	const char *r1 = fz_doc_envelope("root-v1"), *r2 = fz_doc_envelope("root-v2");
	if (fbsig_root_load_trusted(r1, strlen(r1), FZ_NOW, 0, &fz.root1, &err) != FB_OK)
		fz_die("root-v1", &err);
	if (fbsig_root_update(fz.root1, r2, strlen(r2), FZ_NOW, &fz.root2, &err) != FB_OK)
		fz_die("root-v2", &err);
}

/* Abort unless the message of sgnd as type t is one the vectors signed. */
static inline void fz_assert_known(enum fbsig_type t, const json_t *sgnd)
{
	struct fb_err err = {{0}};
	char *m = NULL;
	size_t mlen = 0;
	if (fbsig_message(t, sgnd, &m, &mlen, &err) != FB_OK)
		fz_die("message of an accepted document", &err);
	if (!fz_msg_known(m, mlen)) {
		fprintf(stderr, "fuzz_sign: FORGERY: accepted a %s nobody signed:\n%.*s\n",
		        fbsig_type_name(t), (int)mlen, m);
		abort();
	}
	free(m);
}

/* The "signed" object of an envelope the library accepted (new reference). */
static inline json_t *fz_signed_of(const void *bytes, size_t len)
{
	struct fb_err err = {{0}};
	json_t *v = NULL;
	if (fbsig_parse(bytes, len, &v, &err) != FB_OK)
		fz_die("re-parse of an accepted envelope", &err);
	json_t *s = json_incref(json_object_get(v, "signed"));
	json_decref(v);
	if (!json_is_object(s))
		fz_die("accepted envelope without a signed object", NULL);
	return s;
}

/* 64 lower-case hex digits. */
static inline int fz_is_sha_hex(const char *s)
{
	for (size_t i = 0; i < FB_SHA256_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[FB_SHA256_HEX_LEN] == '\0';
}

#endif
