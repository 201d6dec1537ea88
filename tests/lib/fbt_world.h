/* A test "world": real Ed25519 keys (2 root, 3 release, 1 online) made from
 * fixed seeds, a signed root, the online key file, and helpers that build
 * signed channel files and upload bodies, so integration tests run the
 * server, agents and CLIs against real trust material. */
#ifndef FBT_WORLD_H
#define FBT_WORLD_H

#include <stddef.h>
#include <stdint.h>

#include "fbsign.h"

struct fbt_world {
	char dir[1024];
	char root_path[1100];
	char online_key_path[1100];
	char templates[1100];
	char corpus[1100];
	struct fbsig_key *root_keys[2];
	struct fbsig_key *release_keys[3];
	struct fbsig_key *online;
	char argbuf[4][1200];
	const char *args[5]; /* NULL-terminated firebreakd flags */
};

/* Make a world in a fresh directory under the run's work directory.
 * 0 on success. Free with fbt_world_free(). */
int fbt_world_new(struct fbt_world *w);
void fbt_world_free(struct fbt_world *w);

/* The process-wide default world (made on first use); borrowed. */
struct fbt_world *fbt_world_default(void);

/* A valid channel file for channel/version (from the text form of
 * tests/data/schema/valid/basic.json). *blob: caller frees. 0 on success. */
int fbt_world_blob(uint32_t channel, int64_t version, unsigned char **blob, size_t *len);

/* A manifest for blob signed by the first nsign release keys (0..3), with
 * expires seconds from now (negative = already expired). Caller frees. */
char *fbt_world_manifest(struct fbt_world *w, const unsigned char *blob, size_t len,
                         uint32_t channel, int64_t version, int nsign, int64_t expires);

/* The same without parsing the blob: the manifest lists templates t[0..n)
 * (for files the parser refuses). */
char *fbt_world_manifest_tpl(struct fbt_world *w, const unsigned char *blob, size_t len,
                             uint32_t channel, int64_t version, const struct fbsig_template_ref *t,
                             size_t n, int nsign, int64_t expires);

/* The JSON body of POST /v1/content for blob + manifest. Caller frees. */
char *fbt_world_upload_body(const char *manifest, const unsigned char *blob, size_t len);

/* Everything above at once: a valid file for channel/version signed by 2
 * release keys. sha receives its digest. Caller frees the body. */
char *fbt_world_content(struct fbt_world *w, uint32_t channel, int64_t version, char sha[65]);

#endif
