/* libFuzzer target for envelopes on the signing side: fbsig_envelope_type,
 * fbsig_envelope_sign (fb-sign sign DOC) with the fixed key of the matching
 * role, and for manifests the server's assignment path (fbsig_assignment_add,
 * fbsig_assignment_sign) followed by the agent's fbsig_assignment_verify.
 * Invariants: a signed envelope is canonical and of the same type, signing
 * again with the same key changes nothing, and an assignment the server
 * builds around a manifest verifies on the agent exactly when the manifest
 * itself verifies. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void server_assignment(const uint8_t *data, size_t size)
{
	struct fb_err err = {{0}};
	struct fbsig_manifest m;
	struct fbsig_assignment *a = NULL;
	json_t *obj = NULL;
	char *env = NULL;
	size_t len = 0;
	if (fbsig_assignment_build("canary", 7, FZ_NOW - 60, FZ_NOW + 3600, 1, &obj, &err) != FB_OK)
		abort();
	if (fbsig_assignment_add(obj, data, size, &err) != FB_OK) {
		if (err.msg[0] == '\0')
			abort();
		json_decref(obj);
		return;
	}
	int mok = fbsig_manifest_verify(fz.root1, data, size, FZ_NOW, &m, &err) == FB_OK;
	if (fbsig_assignment_sign(fz_key("online1"), obj, &env, &len, &err) != FB_OK)
		abort(); /* add accepted it, so the server can sign it */
	enum fb_rc rc = fbsig_assignment_verify(fz.root1, env, len, FZ_NOW, 0, &a, &err);
	if ((rc == FB_OK) != mok)
		abort();
	if (rc == FB_OK &&
	    (a->n_channels != 1 || a->channels[0].channel != m.channel ||
	     a->channels[0].version != m.version || strcmp(a->channels[0].sha256, m.sha256) != 0))
		abort();
	fbsig_assignment_free(a);
	json_decref(obj);
	free(env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const signer[] = {"root1", "release1", "online1"};
	struct fb_err err = {{0}};
	enum fbsig_type t, t2;
	char *out = NULL, *out2 = NULL;
	size_t len = 0, len2 = 0;
	fz_setup();
	if (fbsig_envelope_type(data, size, &t, &err) != FB_OK)
		return 0;
	const struct fbsig_key *key = fz_key(signer[t]);
	if (fbsig_envelope_sign(key, t, data, size, &out, &len, &err) == FB_OK) {
		json_t *v = NULL;
		char *c = NULL;
		size_t clen = 0;
		if (fbsig_parse(out, len, &v, &err) != FB_OK ||
		    fbsig_canonical(v, &c, &clen, &err) != FB_OK || clen != len ||
		    memcmp(c, out, len) != 0)
			abort(); /* written envelopes are canonical */
		if (fbsig_envelope_type(out, len, &t2, &err) != FB_OK || t2 != t)
			abort();
		if (fbsig_envelope_sign(key, t, out, len, &out2, &len2, &err) != FB_OK ||
		    len2 != len || memcmp(out, out2, len) != 0)
			abort(); /* idempotent */
		json_decref(v);
		free(c);
	} else if (err.msg[0] == '\0') {
		abort();
	}
	if (t == FBSIG_MANIFEST)
		server_assignment(data, size);
	free(out);
	free(out2);
	return 0;
}
