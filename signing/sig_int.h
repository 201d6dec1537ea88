/* libfbsign internals shared between its source files (not installed, not
 * for other modules): base64, strict field readers, parsed envelopes. */
#ifndef FB_SIG_INT_H
#define FB_SIG_INT_H

#include "fbsign.h"

/* base64 (standard alphabet, padded) of n bytes into a new NUL-terminated
 * string; caller frees with free(). NULL on allocation failure. */
char *sigi_b64_encode(const unsigned char *in, size_t n);
/* Decode exactly want bytes from b64; FB_EINVAL when malformed, *got is the
 * decoded length (so a caller can report truncated/oversized input). */
enum fb_rc sigi_b64_decode(const char *b64, unsigned char *out, size_t want,
                           size_t *got) FB_MUSTCHECK;

/* Strict field readers. ctx names the object for messages ("manifest"). */
enum fb_rc sigi_only_keys(const json_t *obj, const char *ctx, const char *const *allowed,
                          struct fb_err *err) FB_MUSTCHECK;
enum fb_rc sigi_get_int(const json_t *obj, const char *ctx, const char *name, int64_t min,
                        int64_t max, int64_t *out, struct fb_err *err) FB_MUSTCHECK;
/* *out borrowed from obj. */
enum fb_rc sigi_get_str(const json_t *obj, const char *ctx, const char *name, size_t maxlen,
                        const char **out, struct fb_err *err) FB_MUSTCHECK;
/* *out borrowed from obj. */
enum fb_rc sigi_get_obj(const json_t *obj, const char *ctx, const char *name, json_t **out,
                        struct fb_err *err) FB_MUSTCHECK;
enum fb_rc sigi_check_type(const json_t *signed_obj, enum fbsig_type want,
                           struct fb_err *err) FB_MUSTCHECK;
int sigi_is_keyid(const char *s);

/* One signature entry of an envelope. */
struct sigi_sig {
	char keyid[FBSIG_KEYID_HEX + 1];
	unsigned char sig[FBSIG_SIG_LEN];
};
/* A parsed envelope: doc owns the JSON, sgnd is borrowed from it. */
struct sigi_env {
	json_t *doc;
	json_t *sgnd;
	size_t nsigs;
	struct sigi_sig sigs[FBSIG_MAX_SIGS];
};
/* Parse an envelope (strict) and check the signed object's "_type" equals
 * type. Caller calls sigi_env_cleanup() whatever the result. */
enum fb_rc sigi_env_parse(const void *bytes, size_t len, enum fbsig_type type, struct sigi_env *env,
                          struct fb_err *err) FB_MUSTCHECK;
/* As sigi_env_parse, for an envelope already parsed into obj (borrowed). */
enum fb_rc sigi_env_from_json(json_t *obj, enum fbsig_type type, struct sigi_env *env,
                              struct fb_err *err) FB_MUSTCHECK;
void sigi_env_cleanup(struct sigi_env *env);
/* Count distinct keys of role_keys[0..n) with a valid signature over the
 * domain-separated message of env; an invalid signature by one of them is
 * FB_ESIG; signatures by other keys are ignored. FB_ETHRESHOLD below
 * threshold. what names the role in messages ("release"). */
enum fb_rc sigi_env_check(const struct sigi_env *env, enum fbsig_type type,
                          const struct fbsig_pub *role_keys, size_t n, unsigned threshold,
                          const char *what, struct fb_err *err) FB_MUSTCHECK;

/* Structural checks of a signed object by type (no signature involved). */
enum fb_rc sigi_doc_check(enum fbsig_type type, const json_t *sgnd,
                          struct fb_err *err) FB_MUSTCHECK;
enum fb_rc sigi_manifest_parse(const json_t *sgnd, struct fbsig_manifest *m,
                               struct fb_err *err) FB_MUSTCHECK;
enum fb_rc sigi_assignment_check(const json_t *sgnd, struct fb_err *err) FB_MUSTCHECK;
enum fb_rc sigi_root_check(const json_t *sgnd, struct fb_err *err) FB_MUSTCHECK;

#endif
