/* libfbsign: Ed25519 keys, canonical JSON, signed envelopes and the firebreak
 * trust chain (root -> release keys -> content manifests; online key ->
 * assignments). The only code that knows these formats; see signing/README.md. */
#ifndef FB_SIGN_H
#define FB_SIGN_H

#include "fb.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Hard caps: every input larger than these is refused (FB_ETOOBIG). */
#define FBSIG_MAX_DOC       (1024 * 1024) /* bytes of one envelope */
#define FBSIG_MAX_SIGS      32            /* signatures in one envelope */
#define FBSIG_MAX_KEYS      64            /* keys in one root */
#define FBSIG_MAX_ROLE_KEYS 16            /* keyids in one role */
#define FBSIG_MAX_TEMPLATES 64            /* template refs in one manifest */
#define FBSIG_MAX_CHANNELS  256           /* channels in one assignment */
#define FBSIG_MAX_AUDIENCE  128           /* bytes of an assignment's audience */
#define FBSIG_MAX_KEYFILE   4096          /* bytes of a .key or .pub file */

#define FBSIG_PUBLIC_LEN 32
#define FBSIG_SEED_LEN   32
#define FBSIG_SIG_LEN    64
#define FBSIG_KEYID_HEX  16 /* key id: first 8 bytes of BLAKE2b-256(public key), hex */

/* Document types; each has its own signing context (domain separation). */
enum fbsig_type {
	FBSIG_ROOT = 0,
	FBSIG_MANIFEST,
	FBSIG_ASSIGNMENT,
};
/* "root", "manifest", "assignment". Static string. */
const char *fbsig_type_name(enum fbsig_type t);
/* FB_EINVAL for an unknown name. */
enum fb_rc fbsig_type_parse(const char *name, enum fbsig_type *out) FB_MUSTCHECK;

/* Initialise libsodium; call once before anything else (idempotent).
 * FB_EINTERNAL when libsodium cannot start. */
enum fb_rc fbsig_init(void) FB_MUSTCHECK;

/* ---- keys ------------------------------------------------------------- */

/* A public key and its id. Plain data, copy freely. */
struct fbsig_pub {
	unsigned char pk[FBSIG_PUBLIC_LEN];
	char keyid[FBSIG_KEYID_HEX + 1];
};

/* A secret signing key (opaque; secret bytes live in sodium_malloc memory). */
struct fbsig_key;

/* Key id of a public key: 16 lower-case hex digits into out. */
void fbsig_keyid(const unsigned char pk[FBSIG_PUBLIC_LEN], char out[FBSIG_KEYID_HEX + 1]);

/* New random key. *out: caller frees with fbsig_key_free(). */
enum fb_rc fbsig_keygen(struct fbsig_key **out) FB_MUSTCHECK;
/* Deterministic key from a 32-byte seed (test vectors). Caller frees *out. */
enum fb_rc fbsig_key_from_seed(const unsigned char seed[FBSIG_SEED_LEN],
                               struct fbsig_key **out) FB_MUSTCHECK;
/* Wipes and frees; NULL is accepted. */
void fbsig_key_free(struct fbsig_key *key);
/* Borrowed, valid while key lives. */
const char *fbsig_key_id(const struct fbsig_key *key);
void fbsig_key_pub(const struct fbsig_key *key, struct fbsig_pub *out);

/* Write BASE.pub (mode 0644) and BASE.key (mode 0600). With a passphrase
 * (NUL-terminated, non-empty) the seed is encrypted with Argon2id +
 * XSalsa20-Poly1305; with passphrase NULL it is stored plain and marked so.
 * Refuses (FB_ECONFLICT) to overwrite an existing file. */
enum fb_rc fbsig_key_save(const struct fbsig_key *key, const char *base, const char *passphrase,
                          struct fb_err *err) FB_MUSTCHECK;
/* Load a .key file. FB_EPERM when the file is readable or writable by group or
 * other, or the passphrase is wrong; FB_EINVAL when the key is encrypted and
 * passphrase is NULL. *out: caller frees with fbsig_key_free(). */
enum fb_rc fbsig_key_load(const char *path, const char *passphrase, struct fbsig_key **out,
                          struct fb_err *err) FB_MUSTCHECK;
/* *encrypted = 1 when the .key file at path needs a passphrase. */
enum fb_rc fbsig_key_file_encrypted(const char *path, int *encrypted,
                                    struct fb_err *err) FB_MUSTCHECK;
/* Load a .pub file (or the public half of a .key file). */
enum fb_rc fbsig_pub_load(const char *path, struct fbsig_pub *out, struct fb_err *err) FB_MUSTCHECK;

/* ---- canonical JSON and envelopes ------------------------------------ */

/* Canonical bytes of v (sorted keys, no whitespace, integers only, UTF-8).
 * FB_EINVAL on a real number or a non-canonicalisable value, FB_ETOOBIG past
 * FBSIG_MAX_DOC. *out: NUL-terminated, caller frees with free(). */
enum fb_rc fbsig_canonical(const json_t *v, char **out, size_t *len,
                           struct fb_err *err) FB_MUSTCHECK;
/* Strict parse of a document: at most FBSIG_MAX_DOC bytes, an object at top,
 * duplicate keys, reals, NUL in strings and trailing bytes refused.
 * *out: new reference, caller json_decref()s. */
enum fb_rc fbsig_parse(const void *bytes, size_t len, json_t **out,
                       struct fb_err *err) FB_MUSTCHECK;
/* The bytes a signature covers: "firebreak/v1/" TYPE "\n" || canonical(signed).
 * *out: caller frees with free(). */
enum fb_rc fbsig_message(enum fbsig_type type, const json_t *signed_obj, char **out, size_t *len,
                         struct fb_err *err) FB_MUSTCHECK;
/* Raw Ed25519 signature of msg (no domain separation added). */
void fbsig_sign_raw(const struct fbsig_key *key, const void *msg, size_t len,
                    unsigned char sig[FBSIG_SIG_LEN]);

/* New envelope {"signed": signed_obj, "signatures": [one by key]} in
 * canonical form. signed_obj is checked to be a well-formed document of type
 * (its "_type" included). *out: caller frees with free(). */
enum fb_rc fbsig_document_sign(const struct fbsig_key *key, enum fbsig_type type,
                               const json_t *signed_obj, char **out, size_t *len,
                               struct fb_err *err) FB_MUSTCHECK;
/* Add key's signature to an existing envelope (bytes), replacing an earlier
 * signature by the same key (idempotent). The document must be well-formed
 * and of type. *out: canonical envelope, caller frees with free(). */
enum fb_rc fbsig_envelope_sign(const struct fbsig_key *key, enum fbsig_type type, const void *bytes,
                               size_t len, char **out, size_t *outlen,
                               struct fb_err *err) FB_MUSTCHECK;
/* An unsigned envelope {"signed": signed_obj, "signatures": []} after
 * checking signed_obj is a well-formed document of type. Caller frees *out. */
enum fb_rc fbsig_envelope_new(enum fbsig_type type, const json_t *signed_obj, char **out,
                              size_t *len, struct fb_err *err) FB_MUSTCHECK;
/* Parse an envelope and report the document type named by its "_type"
 * (no signature checked). */
enum fb_rc fbsig_envelope_type(const void *bytes, size_t len, enum fbsig_type *out,
                               struct fb_err *err) FB_MUSTCHECK;

/* ---- root ------------------------------------------------------------- */

enum fbsig_role {
	FBSIG_ROLE_ROOT = 0,
	FBSIG_ROLE_RELEASE,
	FBSIG_ROLE_ONLINE,
};
#define FBSIG_NROLES 3
const char *fbsig_role_name(enum fbsig_role r);

struct fbsig_root; /* a verified root (opaque) */

/* Keys and threshold of one role when building a root. */
struct fbsig_role_spec {
	const struct fbsig_pub *keys;
	size_t n;
	unsigned threshold;
};
/* New root signed object (not yet signed). *out: new reference. */
enum fb_rc fbsig_root_build(int64_t version, int64_t expires, const struct fbsig_role_spec *root,
                            const struct fbsig_role_spec *release,
                            const struct fbsig_role_spec *online, json_t **out,
                            struct fb_err *err) FB_MUSTCHECK;

#define FBSIG_ALLOW_EXPIRED                                                                        \
	1u /* fbsig_root_load_trusted: accept an expired root                                      \
	    * (only to update from it with fbsig_root_update) */
/* Load the pinned root: well-formed, signed by the threshold of its own root
 * keys, not expired at now (unless flags has FBSIG_ALLOW_EXPIRED).
 * *out: caller frees with fbsig_root_free(). */
enum fb_rc fbsig_root_load_trusted(const void *bytes, size_t len, int64_t now, unsigned flags,
                                   struct fbsig_root **out, struct fb_err *err) FB_MUSTCHECK;
/* Accept the next root: version == cur + 1 (FB_EROLLBACK when not newer,
 * FB_EINVAL on a skip), signed by the threshold of cur's root keys and by
 * the threshold of its own root keys, not expired at now. cur may be expired.
 * *out: caller frees with fbsig_root_free(). */
enum fb_rc fbsig_root_update(const struct fbsig_root *cur, const void *bytes, size_t len,
                             int64_t now, struct fbsig_root **out, struct fb_err *err) FB_MUSTCHECK;
void fbsig_root_free(struct fbsig_root *root);
int64_t fbsig_root_version(const struct fbsig_root *root);
int64_t fbsig_root_expires(const struct fbsig_root *root);
unsigned fbsig_root_threshold(const struct fbsig_root *root, enum fbsig_role role);
/* Number of keys in role; fbsig_root_role_key gives the i-th (borrowed). */
size_t fbsig_root_role_count(const struct fbsig_root *root, enum fbsig_role role);
const struct fbsig_pub *fbsig_root_role_key(const struct fbsig_root *root, enum fbsig_role role,
                                            size_t i);
/* The verified envelope bytes (borrowed, valid while root lives), e.g. to
 * persist the new trusted root after an update. */
const char *fbsig_root_bytes(const struct fbsig_root *root, size_t *len);
/* Borrowed: the verified signed object. */
const json_t *fbsig_root_signed(const struct fbsig_root *root);

/* ---- content manifest ------------------------------------------------ */

struct fbsig_template_ref {
	int64_t id;
	int64_t version;
};
struct fbsig_manifest {
	uint32_t channel;
	int64_t version; /* > 0 */
	char sha256[FB_SHA256_HEX_LEN + 1];
	int64_t size;
	size_t n_templates;
	struct fbsig_template_ref templates[FBSIG_MAX_TEMPLATES];
	int64_t created;
	int64_t expires;
};
/* Signed object of a manifest from m (checked). *out: new reference. */
enum fb_rc fbsig_manifest_build(const struct fbsig_manifest *m, json_t **out,
                                struct fb_err *err) FB_MUSTCHECK;
/* Verify a manifest envelope against root at now: well-formed, not expired,
 * signed by at least the release threshold of distinct release keys.
 * FB_ESIG (malformed signature, or a release key's signature that does not
 * verify), FB_ETHRESHOLD, FB_EEXPIRED, FB_EINVAL. *out filled on success. */
enum fb_rc fbsig_manifest_verify(const struct fbsig_root *root, const void *bytes, size_t len,
                                 int64_t now, struct fbsig_manifest *out,
                                 struct fb_err *err) FB_MUSTCHECK;
/* The content matches a verified manifest: channel == expected_channel
 * (mix-and-match), size and sha256 equal. FB_EINVAL / FB_ESIG otherwise. */
enum fb_rc fbsig_manifest_check_blob(const struct fbsig_manifest *m, const void *blob, size_t len,
                                     uint32_t expected_channel, struct fb_err *err) FB_MUSTCHECK;

/* ---- assignment ------------------------------------------------------- */

struct fbsig_assignment_entry {
	uint32_t channel;
	int64_t version;
	char sha256[FB_SHA256_HEX_LEN + 1];
	int64_t size;
	struct fbsig_manifest manifest; /* the verified embedded manifest */
};
struct fbsig_assignment {
	char audience[FBSIG_MAX_AUDIENCE + 1];
	int64_t sequence;
	int64_t issued;
	int64_t expires;
	int64_t root_version;
	size_t n_channels;
	struct fbsig_assignment_entry *channels; /* sorted by channel */
};
/* New assignment signed object with no channels. *out: new reference. */
enum fb_rc fbsig_assignment_build(const char *audience, int64_t sequence, int64_t issued,
                                  int64_t expires, int64_t root_version, json_t **out,
                                  struct fb_err *err) FB_MUSTCHECK;
/* Add the content of a manifest envelope (bytes) to an assignment signed
 * object under its channel, copying version, sha256 and size from the
 * manifest. The manifest is parsed, not verified. FB_ECONFLICT when the
 * channel is already present. */
enum fb_rc fbsig_assignment_add(json_t *assignment, const void *manifest_env, size_t len,
                                struct fb_err *err) FB_MUSTCHECK;
/* Server side: sign an assignment signed object with the online key.
 * *out: canonical envelope, caller frees with free(). */
enum fb_rc fbsig_assignment_sign(const struct fbsig_key *online, const json_t *signed_obj,
                                 char **out, size_t *len, struct fb_err *err) FB_MUSTCHECK;
/* Agent side: verify an assignment envelope: online-key threshold, not
 * expired at now, sequence > last_sequence (FB_EROLLBACK), root_version not
 * above the root's (FB_ECONFLICT: update the root first), and every embedded
 * manifest verified against root with channel/version/sha256/size equal to
 * the entry it sits under (FB_EINVAL on mix-and-match).
 * *out: caller frees with fbsig_assignment_free(). */
enum fb_rc fbsig_assignment_verify(const struct fbsig_root *root, const void *bytes, size_t len,
                                   int64_t now, int64_t last_sequence,
                                   struct fbsig_assignment **out, struct fb_err *err) FB_MUSTCHECK;
void fbsig_assignment_free(struct fbsig_assignment *a);

#endif
