/* libFuzzer target for the agent's main network input: the signed
 * assignment (fbsig_assignment_verify, as clients/agent/agent.c calls it)
 * under the golden root-v1 and root-v2 at a fixed now. An accepted
 * assignment and every manifest it embeds must be ones the vectors signed
 * (fuzz_sign.h), its entries must be sorted, in range and agree with their
 * manifests, and replaying it at its own sequence must be refused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_assignment(const struct fbsig_root *root, const struct fbsig_assignment *a,
                             const uint8_t *data, size_t size)
{
	struct fb_err err = {{0}};
	struct fbsig_assignment *again = NULL;
	size_t alen = strnlen(a->audience, sizeof a->audience);
	if (alen < 1 || alen > FBSIG_MAX_AUDIENCE || a->sequence < 1 || a->issued >= a->expires ||
	    a->expires <= FZ_NOW || a->root_version < 1 ||
	    a->root_version > fbsig_root_version(root) || a->n_channels > FBSIG_MAX_CHANNELS ||
	    (a->n_channels && !a->channels))
		abort();
	json_t *sgnd = fz_signed_of(data, size);
	fz_assert_known(FBSIG_ASSIGNMENT, sgnd);
	json_t *chans = json_object_get(sgnd, "channels");
	if (json_object_size(chans) != a->n_channels)
		abort();
	for (size_t i = 0; i < a->n_channels; i++) {
		const struct fbsig_assignment_entry *e = &a->channels[i];
		char key[16];
		if (i > 0 && a->channels[i - 1].channel >= e->channel)
			abort(); /* sorted, unique */
		if (e->manifest.channel != e->channel || e->manifest.version != e->version ||
		    e->manifest.size != e->size || strcmp(e->manifest.sha256, e->sha256) != 0 ||
		    !fz_is_sha_hex(e->sha256) || e->manifest.expires <= FZ_NOW)
			abort(); /* mix-and-match */
		snprintf(key, sizeof key, "%u", (unsigned)e->channel);
		const json_t *menv = json_object_get(json_object_get(chans, key), "manifest");
		if (!menv)
			abort();
		fz_assert_known(FBSIG_MANIFEST, json_object_get(menv, "signed"));
	}
	json_decref(sgnd);
	if (fbsig_assignment_verify(root, data, size, FZ_NOW, a->sequence, &again, &err) !=
	            FB_EROLLBACK ||
	    again)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fb_err err = {{0}};
	fz_setup();
	const struct fbsig_root *roots[2] = {fz.root1, fz.root2};
	for (size_t i = 0; i < 2; i++) {
		struct fbsig_assignment *a = NULL;
		err.msg[0] = '\0';
		enum fb_rc rc = fbsig_assignment_verify(roots[i], data, size, FZ_NOW, 0, &a, &err);
		if (rc == FB_OK)
			check_assignment(roots[i], a, data, size);
		else if (a || err.msg[0] == '\0')
			abort();
		fbsig_assignment_free(a);
	}
	return 0;
}
