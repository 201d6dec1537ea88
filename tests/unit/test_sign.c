/* Unit tests of libfbsign: canonical JSON, key files, the root chain,
 * manifests and assignments — one test per attack, each asserting the
 * precise refusal (result code and the words of the message). */
#include "fbsign.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#define NOW 1700000000LL
#define DAY 86400LL

/* ---- fixture: keys from fixed seeds, a root, signed documents ---------- */

enum { R1, R2, R3, L1, L2, L3, L4, ON, ON2, NKEYS };
static struct fbsig_key *K[NKEYS];
static struct fbsig_pub P[NKEYS];

static int setup_keys(void **state)
{
	(void)state;
	assert_int_equal(fbsig_init(), FB_OK);
	for (int i = 0; i < NKEYS; i++) {
		unsigned char seed[FBSIG_SEED_LEN];
		memset(seed, 0x40 + i, sizeof seed);
		assert_int_equal(fbsig_key_from_seed(seed, &K[i]), FB_OK);
		fbsig_key_pub(K[i], &P[i]);
	}
	return 0;
}

static int teardown_keys(void **state)
{
	(void)state;
	for (int i = 0; i < NKEYS; i++)
		fbsig_key_free(K[i]);
	return 0;
}

/* Sign env (a string) with the listed keys; returns a new string. */
static char *sign_with(enum fbsig_type t, const char *env, const int *keys, size_t n)
{
	char *cur = strdup(env);
	assert_non_null(cur);
	for (size_t i = 0; i < n; i++) {
		char *next = NULL;
		size_t len = 0;
		struct fb_err err = {""};
		enum fb_rc rc =
		        fbsig_envelope_sign(K[keys[i]], t, cur, strlen(cur), &next, &len, &err);
		if (rc)
			fail_msg("sign: %s", err.msg);
		free(cur);
		cur = next;
	}
	return cur;
}

/* Unsigned root: root keys rk (threshold rt), release L1..L3 threshold 2. */
static char *root_env(int64_t version, int64_t expires, const int *rk, size_t nrk, unsigned rt,
                      const int *lk, size_t nlk)
{
	struct fbsig_pub rp[8], lp[8], op[1] = {P[ON]};
	for (size_t i = 0; i < nrk; i++)
		rp[i] = P[rk[i]];
	for (size_t i = 0; i < nlk; i++)
		lp[i] = P[lk[i]];
	struct fbsig_role_spec r = {rp, nrk, rt}, l = {lp, nlk, 2}, o = {op, 1, 1};
	json_t *doc = NULL;
	char *out = NULL;
	size_t len = 0;
	struct fb_err err = {""};
	if (fbsig_root_build(version, expires, &r, &l, &o, &doc, &err) ||
	    fbsig_envelope_new(FBSIG_ROOT, doc, &out, &len, &err))
		fail_msg("root: %s", err.msg);
	json_decref(doc);
	return out;
}

static const int ROOTKEYS[] = {R1, R2};
static const int RELKEYS[] = {L1, L2, L3};

/* The trusted root v1: root keys R1,R2 (threshold 2), signed by both. */
static char *root_v1(int64_t expires)
{
	char *u = root_env(1, expires, ROOTKEYS, 2, 2, RELKEYS, 3);
	char *s = sign_with(FBSIG_ROOT, u, ROOTKEYS, 2);
	free(u);
	return s;
}

static struct fbsig_root *load_root(const char *env)
{
	struct fbsig_root *r = NULL;
	struct fb_err err = {""};
	if (fbsig_root_load_trusted(env, strlen(env), NOW, 0, &r, &err))
		fail_msg("load root: %s", err.msg);
	return r;
}

static const char CONTENT[] = "channel file 291 contents\n";

static void manifest_fields(struct fbsig_manifest *m, uint32_t channel, int64_t version,
                            const char *content)
{
	memset(m, 0, sizeof *m);
	m->channel = channel;
	m->version = version;
	m->size = (int64_t)strlen(content);
	fb_sha256_hex(content, strlen(content), m->sha256);
	m->n_templates = 1;
	m->templates[0].id = 1;
	m->templates[0].version = 3;
	m->created = NOW - DAY;
	m->expires = NOW + 30 * DAY;
}

static char *manifest_env_m(const struct fbsig_manifest *m, const int *keys, size_t n)
{
	json_t *doc = NULL;
	char *u = NULL;
	size_t len = 0;
	struct fb_err err = {""};
	if (fbsig_manifest_build(m, &doc, &err) ||
	    fbsig_envelope_new(FBSIG_MANIFEST, doc, &u, &len, &err))
		fail_msg("manifest: %s", err.msg);
	json_decref(doc);
	char *s = sign_with(FBSIG_MANIFEST, u, keys, n);
	free(u);
	return s;
}

static char *manifest_env(uint32_t channel, int64_t version, const int *keys, size_t n)
{
	struct fbsig_manifest m;
	manifest_fields(&m, channel, version, CONTENT);
	return manifest_env_m(&m, keys, n);
}

static const int TWO_REL[] = {L1, L2};

/* Assignment of the given manifests, signed by key signer. */
static char *assignment_env(int64_t seq, int64_t expires, char **manifests, size_t n, int signer)
{
	json_t *doc = NULL;
	char *out = NULL;
	size_t len = 0;
	struct fb_err err = {""};
	if (fbsig_assignment_build("canary", seq, NOW - 60, expires, 1, &doc, &err))
		fail_msg("assignment: %s", err.msg);
	for (size_t i = 0; i < n; i++)
		if (fbsig_assignment_add(doc, manifests[i], strlen(manifests[i]), &err))
			fail_msg("assignment add: %s", err.msg);
	if (fbsig_assignment_sign(K[signer], doc, &out, &len, &err))
		fail_msg("assignment sign: %s", err.msg);
	json_decref(doc);
	return out;
}

/* Parse, let f modify the JSON, and re-serialise (compact). */
static char *mutate(const char *env, void (*f)(json_t *doc))
{
	json_error_t je;
	json_t *doc = json_loads(env, 0, &je);
	assert_non_null(doc);
	f(doc);
	char *s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	assert_non_null(s);
	return s;
}

#define EXPECT_ERR(call, code, words)                                                              \
	do {                                                                                       \
		struct fb_err err_ = {""};                                                         \
		struct fb_err *xerr = &err_;                                                       \
		enum fb_rc rc_ = (call);                                                           \
		if (rc_ != (code))                                                                 \
			fail_msg("expected %s, got %s: %s", fb_rc_str(code), fb_rc_str(rc_),       \
			         err_.msg);                                                        \
		if (!strstr(err_.msg, (words)))                                                    \
			fail_msg("message \"%s\" lacks \"%s\"", err_.msg, (words));                \
	} while (0)

/* ---- canonical JSON ------------------------------------------------------ */

static void test_canonical_sorted_compact(void **state)
{
	(void)state;
	json_t *v = NULL;
	char *out = NULL;
	size_t len = 0;
	const char *in =
	        "{ \"b\" : [1, -2, {\"z\":true, \"a\":null}],\n \"a\": \"x\\u00e9\\n\\u0001\\\"/\","
	        " \"A\": false, \"\\u00e9\": 0 }";
	assert_int_equal(fbsig_parse(in, strlen(in), &v, NULL), FB_OK);
	assert_int_equal(fbsig_canonical(v, &out, &len, NULL), FB_OK);
	const char *want =
	        "{\"A\":false,\"a\":\"x\xc3\xa9\\n\\u0001\\\"/\",\"b\":[1,-2,{\"a\":null,"
	        "\"z\":true}],\"\xc3\xa9\":0}";
	assert_string_equal(out, want);
	assert_int_equal(len, strlen(want));
	/* Idempotent: canonical bytes parse back to the same canonical bytes. */
	json_t *v2 = NULL;
	char *out2 = NULL;
	size_t len2 = 0;
	assert_int_equal(fbsig_parse(out, len, &v2, NULL), FB_OK);
	assert_int_equal(fbsig_canonical(v2, &out2, &len2, NULL), FB_OK);
	assert_string_equal(out, out2);
	free(out);
	free(out2);
	json_decref(v);
	json_decref(v2);
}

static void test_canonical_refusals(void **state)
{
	(void)state;
	json_t *v = NULL;
	const char *real = "{\"a\":{\"b\":1.5}}";
	EXPECT_ERR(fbsig_parse(real, strlen(real), &v, xerr), FB_EINVAL, "real number at 'b'");
	assert_null(v);
	const char *exp = "{\"a\":1e3}";
	EXPECT_ERR(fbsig_parse(exp, strlen(exp), &v, xerr), FB_EINVAL, "real number");
	const char *dup = "{\"a\":1,\"a\":2}";
	EXPECT_ERR(fbsig_parse(dup, strlen(dup), &v, xerr), FB_EINVAL, "duplicate");
	const char *trail = "{\"a\":1} x";
	EXPECT_ERR(fbsig_parse(trail, strlen(trail), &v, xerr), FB_EINVAL, "JSON error");
	const char *arr = "[1]";
	EXPECT_ERR(fbsig_parse(arr, strlen(arr), &v, xerr), FB_EINVAL, "not a JSON object");
	const char *nul = "{\"a\":\"x\\u0000y\"}";
	EXPECT_ERR(fbsig_parse(nul, strlen(nul), &v, xerr), FB_EINVAL, "JSON error");
	const char *big = "{\"a\":2}";
	EXPECT_ERR(fbsig_parse(big, FBSIG_MAX_DOC + 1, &v, xerr), FB_ETOOBIG, "over the");
	/* A real built in memory is refused by the encoder too. */
	json_t *r = json_pack("{s:f}", "x", 0.5);
	char *out = NULL;
	size_t len = 0;
	EXPECT_ERR(fbsig_canonical(r, &out, &len, xerr), FB_EINVAL, "real number at 'x'");
	assert_null(out);
	json_decref(r);
}

static void test_message_domain_separated(void **state)
{
	(void)state;
	json_t *v = json_pack("{s:s,s:i}", "_type", "manifest", "a", 1);
	char *m = NULL, *r = NULL;
	size_t ml = 0, rl = 0;
	assert_int_equal(fbsig_message(FBSIG_MANIFEST, v, &m, &ml, NULL), FB_OK);
	assert_int_equal(fbsig_message(FBSIG_ROOT, v, &r, &rl, NULL), FB_OK);
	assert_string_equal(m, "firebreak/v1/manifest\n{\"_type\":\"manifest\",\"a\":1}");
	assert_string_equal(r, "firebreak/v1/root\n{\"_type\":\"manifest\",\"a\":1}");
	free(m);
	free(r);
	json_decref(v);
}

/* ---- key files -------------------------------------------------------- */

static char tmpdir[64];

static int setup_tmp(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/fbsign-test-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int teardown_tmp(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_key_files_roundtrip(void **state)
{
	(void)state;
	char base[128], kpath[160], ppath[160];
	struct fbsig_key *k = NULL, *back = NULL;
	struct fbsig_pub pub;
	struct fb_err err = {""};
	int enc = -1;
	struct stat st;
	assert_int_equal(fbsig_keygen(&k), FB_OK);
	/* encrypted */
	snprintf(base, sizeof base, "%s/enc", tmpdir);
	snprintf(kpath, sizeof kpath, "%s.key", base);
	snprintf(ppath, sizeof ppath, "%s.pub", base);
	assert_int_equal(fbsig_key_save(k, base, "correct horse", &err), FB_OK);
	assert_int_equal(stat(kpath, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(fbsig_key_file_encrypted(kpath, &enc, &err), FB_OK);
	assert_int_equal(enc, 1);
	assert_int_equal(fbsig_key_load(kpath, "correct horse", &back, &err), FB_OK);
	assert_string_equal(fbsig_key_id(back), fbsig_key_id(k));
	fbsig_key_free(back);
	back = NULL;
	assert_int_equal(fbsig_pub_load(ppath, &pub, &err), FB_OK);
	assert_string_equal(pub.keyid, fbsig_key_id(k));
	/* the secret never appears in the file */
	unsigned char *data = NULL;
	size_t len = 0;
	assert_int_equal(fb_file_read(kpath, 4096, &data, &len), FB_OK);
	assert_null(strstr((char *)data, "\"seed\""));
	assert_non_null(strstr((char *)data, "argon2id13"));
	free(data);
	/* refuses to overwrite */
	EXPECT_ERR(fbsig_key_save(k, base, NULL, xerr), FB_ECONFLICT, "already exists");
	/* plain */
	snprintf(base, sizeof base, "%s/plain", tmpdir);
	snprintf(kpath, sizeof kpath, "%s.key", base);
	assert_int_equal(fbsig_key_save(k, base, NULL, &err), FB_OK);
	assert_int_equal(fbsig_key_file_encrypted(kpath, &enc, &err), FB_OK);
	assert_int_equal(enc, 0);
	assert_int_equal(fbsig_key_load(kpath, NULL, &back, &err), FB_OK);
	assert_string_equal(fbsig_key_id(back), fbsig_key_id(k));
	/* same signature from the reloaded key */
	unsigned char s1[64], s2[64];
	fbsig_sign_raw(k, "m", 1, s1);
	fbsig_sign_raw(back, "m", 1, s2);
	assert_memory_equal(s1, s2, 64);
	fbsig_key_free(back);
	fbsig_key_free(k);
}

static void test_key_wrong_passphrase(void **state)
{
	(void)state;
	char base[128], kpath[160];
	struct fbsig_key *k = NULL, *back = NULL;
	struct fb_err err = {""};
	assert_int_equal(fbsig_keygen(&k), FB_OK);
	snprintf(base, sizeof base, "%s/wp", tmpdir);
	snprintf(kpath, sizeof kpath, "%s.key", base);
	assert_int_equal(fbsig_key_save(k, base, "right", &err), FB_OK);
	EXPECT_ERR(fbsig_key_load(kpath, "wrong", &back, xerr), FB_EPERM, "wrong passphrase");
	assert_null(back);
	EXPECT_ERR(fbsig_key_load(kpath, NULL, &back, xerr), FB_EINVAL, "passphrase is required");
	assert_null(back);
	fbsig_key_free(k);
}

static void test_key_loose_permissions(void **state)
{
	(void)state;
	char base[128], kpath[160];
	struct fbsig_key *k = NULL, *back = NULL;
	struct fb_err err = {""};
	assert_int_equal(fbsig_keygen(&k), FB_OK);
	snprintf(base, sizeof base, "%s/loose", tmpdir);
	snprintf(kpath, sizeof kpath, "%s.key", base);
	assert_int_equal(fbsig_key_save(k, base, NULL, &err), FB_OK);
	assert_int_equal(chmod(kpath, 0640), 0);
	EXPECT_ERR(fbsig_key_load(kpath, NULL, &back, xerr), FB_EPERM, "mode 0640");
	assert_int_equal(chmod(kpath, 0604), 0);
	EXPECT_ERR(fbsig_key_load(kpath, NULL, &back, xerr), FB_EPERM, "group or other");
	assert_null(back);
	assert_int_equal(chmod(kpath, 0600), 0);
	assert_int_equal(fbsig_key_load(kpath, NULL, &back, &err), FB_OK);
	fbsig_key_free(back);
	fbsig_key_free(k);
}

/* ---- root ------------------------------------------------------------- */

static void test_root_trusted(void **state)
{
	(void)state;
	char *r = root_v1(NOW + 365 * DAY);
	struct fbsig_root *root = load_root(r);
	assert_int_equal(fbsig_root_version(root), 1);
	assert_int_equal(fbsig_root_threshold(root, FBSIG_ROLE_RELEASE), 2);
	assert_int_equal(fbsig_root_role_count(root, FBSIG_ROLE_RELEASE), 3);
	assert_string_equal(fbsig_root_role_key(root, FBSIG_ROLE_ONLINE, 0)->keyid, P[ON].keyid);
	fbsig_root_free(root);
	free(r);
}

static void test_root_expired(void **state)
{
	(void)state;
	char *r = root_v1(NOW - 1);
	struct fbsig_root *root = NULL;
	EXPECT_ERR(fbsig_root_load_trusted(r, strlen(r), NOW, 0, &root, xerr), FB_EEXPIRED,
	           "root version 1 expired");
	assert_null(root);
	assert_int_equal(
	        fbsig_root_load_trusted(r, strlen(r), NOW, FBSIG_ALLOW_EXPIRED, &root, NULL),
	        FB_OK);
	/* ...but nothing verifies against it */
	char *m = manifest_env(291, 1, TWO_REL, 2);
	struct fbsig_manifest out;
	EXPECT_ERR(fbsig_manifest_verify(root, m, strlen(m), NOW, &out, xerr), FB_EEXPIRED,
	           "trusted root version 1 expired");
	fbsig_root_free(root);
	free(m);
	free(r);
}

static void test_root_below_own_threshold(void **state)
{
	(void)state;
	char *u = root_env(1, NOW + DAY, ROOTKEYS, 2, 2, RELKEYS, 3);
	const int one[] = {R1, L1, L2}; /* release keys do not count for roots */
	char *s = sign_with(FBSIG_ROOT, u, one, 3);
	struct fbsig_root *root = NULL;
	EXPECT_ERR(fbsig_root_load_trusted(s, strlen(s), NOW, 0, &root, xerr), FB_ETHRESHOLD,
	           "1 of 2 required distinct root-key signatures");
	assert_null(root);
	free(u);
	free(s);
}

static void test_root_online_key_alone(void **state)
{
	(void)state;
	struct fbsig_pub rp[1] = {P[R1]}, lp[2] = {P[L1], P[L2]}, op[1] = {P[L1]};
	struct fbsig_role_spec r = {rp, 1, 1}, l = {lp, 2, 2}, o = {op, 1, 1};
	json_t *doc = NULL;
	EXPECT_ERR(fbsig_root_build(1, NOW + DAY, &r, &l, &o, &doc, xerr), FB_EINVAL,
	           "online key must hold no other role");
	l.threshold = 3;
	o.keys = &P[ON];
	EXPECT_ERR(fbsig_root_build(1, NOW + DAY, &r, &l, &o, &doc, xerr), FB_EINVAL,
	           "'threshold' is 3, expected 1..2");
	assert_null(doc);
}

/* v2 rotates the root keys to R2,R3 and drops release key L3 for L4. */
static const int NEWROOT[] = {R2, R3};
static const int NEWREL[] = {L1, L2, L4};

static void test_root_rotation(void **state)
{
	(void)state;
	char *r1 = root_v1(NOW + DAY);
	struct fbsig_root *cur = load_root(r1), *next = NULL;
	char *u = root_env(2, NOW + 2 * DAY, NEWROOT, 2, 2, NEWREL, 3);
	const int signers[] = {R1, R2, R3};
	char *s = sign_with(FBSIG_ROOT, u, signers, 3);
	struct fb_err err = {""};
	if (fbsig_root_update(cur, s, strlen(s), NOW, &next, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(fbsig_root_version(next), 2);
	/* The retired release key L3 no longer counts; the new L4 does. */
	const int old_pair[] = {L1, L3}, new_pair[] = {L1, L4};
	char *m_old = manifest_env(291, 1, old_pair, 2), *m_new = manifest_env(291, 1, new_pair, 2);
	struct fbsig_manifest m;
	assert_int_equal(fbsig_manifest_verify(cur, m_old, strlen(m_old), NOW, &m, NULL), FB_OK);
	EXPECT_ERR(fbsig_manifest_verify(next, m_old, strlen(m_old), NOW, &m, xerr), FB_ETHRESHOLD,
	           "1 of 2 required distinct release-key");
	assert_int_equal(fbsig_manifest_verify(next, m_new, strlen(m_new), NOW, &m, NULL), FB_OK);
	/* Replaying v1 after v2 is refused. */
	struct fbsig_root *back = NULL;
	EXPECT_ERR(fbsig_root_update(next, r1, strlen(r1), NOW, &back, xerr), FB_EROLLBACK,
	           "not newer than the trusted version 2");
	assert_null(back);
	fbsig_root_free(cur);
	fbsig_root_free(next);
	free(r1);
	free(u);
	free(s);
	free(m_old);
	free(m_new);
}

static void test_root_rotation_too_few_old_keys(void **state)
{
	(void)state;
	char *r1 = root_v1(NOW + DAY);
	struct fbsig_root *cur = load_root(r1), *next = NULL;
	char *u = root_env(2, NOW + 2 * DAY, NEWROOT, 2, 2, NEWREL, 3);
	/* Only one old root key (R2, which is also new): an attacker holding
	 * the new keys and one old key cannot rotate. */
	const int signers[] = {R2, R3};
	char *s = sign_with(FBSIG_ROOT, u, signers, 2);
	EXPECT_ERR(fbsig_root_update(cur, s, strlen(s), NOW, &next, xerr), FB_ETHRESHOLD,
	           "1 of 2 required distinct previous-root-key signatures");
	assert_null(next);
	/* Old keys alone are not enough either: the new root must sign itself. */
	const int old_only[] = {R1, R2};
	char *s2 = sign_with(FBSIG_ROOT, u, old_only, 2);
	EXPECT_ERR(fbsig_root_update(cur, s2, strlen(s2), NOW, &next, xerr), FB_ETHRESHOLD,
	           "1 of 2 required distinct new-root-key signatures");
	fbsig_root_free(cur);
	free(r1);
	free(u);
	free(s);
	free(s2);
}

static void test_root_rotation_version_skip(void **state)
{
	(void)state;
	char *r1 = root_v1(NOW + DAY);
	struct fbsig_root *cur = load_root(r1), *next = NULL;
	char *u = root_env(3, NOW + 2 * DAY, ROOTKEYS, 2, 2, RELKEYS, 3);
	char *s = sign_with(FBSIG_ROOT, u, ROOTKEYS, 2);
	EXPECT_ERR(fbsig_root_update(cur, s, strlen(s), NOW, &next, xerr), FB_EINVAL,
	           "version 3, expected 2");
	char *u1 = root_env(1, NOW + 2 * DAY, ROOTKEYS, 2, 2, RELKEYS, 3);
	char *s1 = sign_with(FBSIG_ROOT, u1, ROOTKEYS, 2);
	EXPECT_ERR(fbsig_root_update(cur, s1, strlen(s1), NOW, &next, xerr), FB_EROLLBACK,
	           "not newer");
	/* An expired successor is refused. */
	char *ue = root_env(2, NOW - 1, ROOTKEYS, 2, 2, RELKEYS, 3);
	char *se = sign_with(FBSIG_ROOT, ue, ROOTKEYS, 2);
	EXPECT_ERR(fbsig_root_update(cur, se, strlen(se), NOW, &next, xerr), FB_EEXPIRED,
	           "root version 2 expired");
	assert_null(next);
	fbsig_root_free(cur);
	free(r1);
	free(u);
	free(s);
	free(u1);
	free(s1);
	free(ue);
	free(se);
}

/* ---- manifest --------------------------------------------------------- */

struct world {
	char *root_env;
	struct fbsig_root *root;
};

static int setup_world(void **state)
{
	struct world *w = calloc(1, sizeof *w);
	w->root_env = root_v1(NOW + 365 * DAY);
	w->root = load_root(w->root_env);
	*state = w;
	return 0;
}

static int teardown_world(void **state)
{
	struct world *w = *state;
	fbsig_root_free(w->root);
	free(w->root_env);
	free(w);
	return 0;
}

static void test_manifest_ok_and_blob(void **state)
{
	struct world *w = *state;
	char *e = manifest_env(291, 7, TWO_REL, 2);
	struct fbsig_manifest m;
	struct fb_err err = {""};
	if (fbsig_manifest_verify(w->root, e, strlen(e), NOW, &m, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(m.channel, 291);
	assert_int_equal(m.version, 7);
	assert_int_equal(m.n_templates, 1);
	assert_int_equal(m.templates[0].version, 3);
	assert_int_equal(fbsig_manifest_check_blob(&m, CONTENT, strlen(CONTENT), 291, &err), FB_OK);
	/* tampered content byte */
	char bad[sizeof CONTENT];
	memcpy(bad, CONTENT, sizeof CONTENT);
	bad[3] ^= 1;
	EXPECT_ERR(fbsig_manifest_check_blob(&m, bad, strlen(bad), 291, xerr), FB_ESIG,
	           "does not match the signed manifest");
	EXPECT_ERR(fbsig_manifest_check_blob(&m, CONTENT, strlen(CONTENT) - 1, 291, xerr), FB_ESIG,
	           "the signed manifest says 26");
	/* mix-and-match: a valid manifest of channel 291 served for channel 292 */
	EXPECT_ERR(fbsig_manifest_check_blob(&m, CONTENT, strlen(CONTENT), 292, xerr), FB_EINVAL,
	           "for channel 291, not channel 292");
	free(e);
}

static void bump_version(json_t *doc)
{
	json_object_set_new(json_object_get(doc, "signed"), "version", json_integer(8));
}

static void test_manifest_tampered_field(void **state)
{
	struct world *w = *state;
	char *e = manifest_env(291, 7, TWO_REL, 2);
	char *t = mutate(e, bump_version);
	struct fbsig_manifest m;
	EXPECT_ERR(fbsig_manifest_verify(w->root, t, strlen(t), NOW, &m, xerr), FB_ESIG,
	           "signature 0 by release key");
	free(e);
	free(t);
}

static void test_manifest_unknown_key(void **state)
{
	struct world *w = *state;
	const int with_unknown[] = {L1, L4}; /* L4 is not in root v1 */
	char *e = manifest_env(291, 7, with_unknown, 2);
	struct fbsig_manifest m;
	EXPECT_ERR(fbsig_manifest_verify(w->root, e, strlen(e), NOW, &m, xerr), FB_ETHRESHOLD,
	           "1 of 2 required distinct release-key signatures (2 signatures: 1 by keys that "
	           "are not release keys");
	/* The online key and root keys are not release keys either. */
	const int wrong_roles[] = {L1, ON, R1};
	char *e2 = manifest_env(291, 7, wrong_roles, 3);
	EXPECT_ERR(fbsig_manifest_verify(w->root, e2, strlen(e2), NOW, &m, xerr), FB_ETHRESHOLD,
	           "1 of 2 required");
	free(e);
	free(e2);
}

static void dup_first_sig(json_t *doc)
{
	json_t *sigs = json_object_get(doc, "signatures");
	json_array_append_new(sigs, json_deep_copy(json_array_get(sigs, 0)));
}

static void test_manifest_same_key_twice(void **state)
{
	struct world *w = *state;
	const int one[] = {L1};
	char *e = manifest_env(291, 7, one, 1);
	char *t = mutate(e, dup_first_sig);
	struct fbsig_manifest m;
	EXPECT_ERR(fbsig_manifest_verify(w->root, t, strlen(t), NOW, &m, xerr), FB_ETHRESHOLD,
	           "1 of 2 required distinct release-key signatures (2 signatures: 0 by keys that "
	           "are not release keys, 1 repeating a key already counted)");
	/* signing again with the same key does not add a second signature */
	char *again = sign_with(FBSIG_MANIFEST, e, one, 1);
	assert_string_equal(again, e);
	free(e);
	free(t);
	free(again);
}

static void test_manifest_expired(void **state)
{
	struct world *w = *state;
	struct fbsig_manifest m;
	manifest_fields(&m, 291, 7, CONTENT);
	m.expires = NOW;
	char *e = manifest_env_m(&m, TWO_REL, 2);
	EXPECT_ERR(fbsig_manifest_verify(w->root, e, strlen(e), NOW, &m, xerr), FB_EEXPIRED,
	           "manifest for channel 291 version 7 expired at 1700000000");
	assert_int_equal(fbsig_manifest_verify(w->root, e, strlen(e), NOW - 1, &m, NULL), FB_OK);
	free(e);
}

static const char *sig_value;
static void set_sig(json_t *doc)
{
	json_object_set_new(json_array_get(json_object_get(doc, "signatures"), 0), "sig",
	                    json_string(sig_value));
}

static void test_manifest_bad_signature_sizes(void **state)
{
	struct world *w = *state;
	char *e = manifest_env(291, 7, TWO_REL, 2);
	struct fbsig_manifest m;
	/* 63 bytes */
	sig_value =
	        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7"
	        "PD0+";
	char *t = mutate(e, set_sig);
	EXPECT_ERR(fbsig_manifest_verify(w->root, t, strlen(t), NOW, &m, xerr), FB_ESIG,
	           "63 bytes, expected 64 (truncated signature)");
	free(t);
	/* 66 bytes */
	sig_value =
	        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7"
	        "PD0+P0BB";
	t = mutate(e, set_sig);
	EXPECT_ERR(fbsig_manifest_verify(w->root, t, strlen(t), NOW, &m, xerr), FB_ESIG,
	           "66 bytes, expected 64 (oversized signature)");
	free(t);
	sig_value = "not base64!";
	t = mutate(e, set_sig);
	EXPECT_ERR(fbsig_manifest_verify(w->root, t, strlen(t), NOW, &m, xerr), FB_ESIG,
	           "not valid base64");
	free(t);
	/* a huge signature value */
	char *huge = malloc(5000);
	memset(huge, 'A', 4999);
	huge[4999] = '\0';
	sig_value = huge;
	t = mutate(e, set_sig);
	EXPECT_ERR(fbsig_manifest_verify(w->root, t, strlen(t), NOW, &m, xerr), FB_ESIG,
	           "at most 1024 allowed");
	free(t);
	free(huge);
	free(e);
}

static void many_sigs(json_t *doc)
{
	json_t *sigs = json_object_get(doc, "signatures");
	while (json_array_size(sigs) <= FBSIG_MAX_SIGS)
		json_array_append_new(sigs, json_deep_copy(json_array_get(sigs, 0)));
}

static void test_manifest_too_many_signatures(void **state)
{
	struct world *w = *state;
	char *e = manifest_env(291, 7, TWO_REL, 2);
	char *t = mutate(e, many_sigs);
	struct fbsig_manifest m;
	EXPECT_ERR(fbsig_manifest_verify(w->root, t, strlen(t), NOW, &m, xerr), FB_ETOOBIG,
	           "at most 32 allowed");
	free(e);
	free(t);
}

static void retype_root(json_t *doc)
{
	json_object_set_new(json_object_get(doc, "signed"), "_type", json_string("root"));
}

static void test_type_confusion(void **state)
{
	struct world *w = *state;
	struct fbsig_root *next = NULL;
	struct fbsig_manifest m;
	struct fbsig_assignment *a = NULL;
	/* A manifest presented where a root or an assignment is expected. */
	char *e = manifest_env(291, 7, TWO_REL, 2);
	EXPECT_ERR(fbsig_root_update(w->root, e, strlen(e), NOW, &next, xerr), FB_EINVAL,
	           "document type is \"manifest\", expected \"root\"");
	EXPECT_ERR(fbsig_assignment_verify(w->root, e, strlen(e), NOW, 0, &a, xerr), FB_EINVAL,
	           "expected \"assignment\"");
	/* A signature made under the root context over a manifest's bytes does
	 * not verify as a manifest signature (domain separation). */
	json_error_t je;
	json_t *doc = json_loads(e, 0, &je);
	json_t *sgnd = json_object_get(doc, "signed");
	json_array_clear(json_object_get(doc, "signatures"));
	const int signers[] = {L1, L2};
	for (int i = 0; i < 2; i++) {
		char *msg = NULL;
		size_t len = 0;
		unsigned char sig[64];
		char b64[128];
		assert_int_equal(fbsig_message(FBSIG_ROOT, sgnd, &msg, &len, NULL), FB_OK);
		fbsig_sign_raw(K[signers[i]], msg, len, sig);
		sodium_bin2base64(b64, sizeof b64, sig, 64, sodium_base64_VARIANT_ORIGINAL);
		json_array_append_new(
		        json_object_get(doc, "signatures"),
		        json_pack("{s:s,s:s}", "keyid", P[signers[i]].keyid, "sig", b64));
		free(msg);
	}
	char *x = json_dumps(doc, JSON_COMPACT);
	EXPECT_ERR(fbsig_manifest_verify(w->root, x, strlen(x), NOW, &m, xerr), FB_ESIG,
	           "signed as another document type");
	/* ...and relabelling the document as a root breaks the signature too
	 * (and fails the root's structure first). */
	char *y = mutate(x, retype_root);
	EXPECT_ERR(fbsig_root_update(w->root, y, strlen(y), NOW, &next, xerr), FB_EINVAL,
	           "root: unknown field");
	json_decref(doc);
	free(x);
	free(y);
	free(e);
}

static void test_oversized_document(void **state)
{
	struct world *w = *state;
	size_t n = FBSIG_MAX_DOC + 10;
	char *big = malloc(n + 1);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	big[n] = '\0';
	struct fbsig_manifest m;
	EXPECT_ERR(fbsig_manifest_verify(w->root, big, n, NOW, &m, xerr), FB_ETOOBIG,
	           "over the 1048576-byte limit");
	free(big);
}

/* ---- assignment ------------------------------------------------------- */

static void test_assignment_ok_and_revert(void **state)
{
	struct world *w = *state;
	char *m1 = manifest_env(291, 7, TWO_REL, 2), *m2 = manifest_env(12, 3, TWO_REL, 2);
	char *ms[] = {m1, m2};
	char *a = assignment_env(5, NOW + 600, ms, 2, ON);
	struct fbsig_assignment *out = NULL;
	struct fb_err err = {""};
	if (fbsig_assignment_verify(w->root, a, strlen(a), NOW, 4, &out, &err))
		fail_msg("%s", err.msg);
	assert_string_equal(out->audience, "canary");
	assert_int_equal(out->sequence, 5);
	assert_int_equal(out->n_channels, 2);
	assert_int_equal(out->channels[0].channel, 12); /* sorted */
	assert_int_equal(out->channels[1].channel, 291);
	assert_int_equal(out->channels[1].version, 7);
	assert_int_equal(out->channels[1].manifest.version, 7);
	assert_int_equal(fbsig_manifest_check_blob(&out->channels[1].manifest, CONTENT,
	                                           strlen(CONTENT), 291, &err),
	                 FB_OK);
	fbsig_assignment_free(out);
	out = NULL;
	/* A revert: a newer sequence naming older content is accepted. */
	char *old = manifest_env(291, 6, TWO_REL, 2);
	char *ms2[] = {old};
	char *rev = assignment_env(6, NOW + 600, ms2, 1, ON);
	assert_int_equal(fbsig_assignment_verify(w->root, rev, strlen(rev), NOW, 5, &out, &err),
	                 FB_OK);
	assert_int_equal(out->channels[0].version, 6);
	fbsig_assignment_free(out);
	/* Adding the same channel twice is refused when building. */
	json_t *doc = NULL;
	assert_int_equal(fbsig_assignment_build("early", 1, NOW, NOW + 60, 1, &doc, NULL), FB_OK);
	assert_int_equal(fbsig_assignment_add(doc, m1, strlen(m1), NULL), FB_OK);
	EXPECT_ERR(fbsig_assignment_add(doc, m1, strlen(m1), xerr), FB_ECONFLICT,
	           "already names channel 291");
	json_decref(doc);
	free(m1);
	free(m2);
	free(a);
	free(old);
	free(rev);
}

static void test_assignment_rollback(void **state)
{
	struct world *w = *state;
	char *m1 = manifest_env(291, 7, TWO_REL, 2);
	char *ms[] = {m1};
	char *a = assignment_env(5, NOW + 600, ms, 1, ON);
	struct fbsig_assignment *out = NULL;
	EXPECT_ERR(fbsig_assignment_verify(w->root, a, strlen(a), NOW, 5, &out, xerr), FB_EROLLBACK,
	           "sequence 5 is not greater than the last accepted 5");
	EXPECT_ERR(fbsig_assignment_verify(w->root, a, strlen(a), NOW, 9, &out, xerr), FB_EROLLBACK,
	           "sequence 5 is not greater than the last accepted 9");
	assert_null(out);
	free(m1);
	free(a);
}

static void test_assignment_expired(void **state)
{
	struct world *w = *state;
	char *m1 = manifest_env(291, 7, TWO_REL, 2);
	char *ms[] = {m1};
	char *a = assignment_env(5, NOW, ms, 1, ON);
	struct fbsig_assignment *out = NULL;
	EXPECT_ERR(fbsig_assignment_verify(w->root, a, strlen(a), NOW, 0, &out, xerr), FB_EEXPIRED,
	           "assignment sequence 5 for 'canary' expired at 1700000000");
	/* An embedded manifest past its expiry invalidates the assignment. */
	struct fbsig_manifest m;
	manifest_fields(&m, 12, 1, CONTENT);
	m.expires = NOW - 5;
	char *mx = manifest_env_m(&m, TWO_REL, 2);
	char *ms2[] = {mx};
	char *a2 = assignment_env(6, NOW + 600, ms2, 1, ON);
	EXPECT_ERR(fbsig_assignment_verify(w->root, a2, strlen(a2), NOW, 0, &out, xerr),
	           FB_EEXPIRED,
	           "channel 12: embedded manifest: manifest for channel 12 version 1 "
	           "expired");
	assert_null(out);
	free(m1);
	free(a);
	free(mx);
	free(a2);
}

static void test_assignment_wrong_signer(void **state)
{
	struct world *w = *state;
	char *m1 = manifest_env(291, 7, TWO_REL, 2);
	char *ms[] = {m1};
	char *a = assignment_env(5, NOW + 600, ms, 1, L1); /* a release key is not online */
	struct fbsig_assignment *out = NULL;
	EXPECT_ERR(fbsig_assignment_verify(w->root, a, strlen(a), NOW, 0, &out, xerr),
	           FB_ETHRESHOLD, "0 of 1 required distinct online-key signatures");
	free(a);
	a = assignment_env(5, NOW + 600, ms, 1, ON2); /* an unknown online key */
	EXPECT_ERR(fbsig_assignment_verify(w->root, a, strlen(a), NOW, 0, &out, xerr),
	           FB_ETHRESHOLD, "1 by keys that are not online keys");
	assert_null(out);
	free(m1);
	free(a);
}

static void tamper_entry_sha(json_t *doc)
{
	json_t *e =
	        json_object_get(json_object_get(json_object_get(doc, "signed"), "channels"), "291");
	json_object_set_new(e, "sha256",
	                    json_string("00000000000000000000000000000000000000000000"
	                                "00000000000000000000"));
}

static void test_assignment_tampered(void **state)
{
	struct world *w = *state;
	char *m1 = manifest_env(291, 7, TWO_REL, 2);
	char *ms[] = {m1};
	char *a = assignment_env(5, NOW + 600, ms, 1, ON);
	char *t = mutate(a, tamper_entry_sha);
	struct fbsig_assignment *out = NULL;
	EXPECT_ERR(fbsig_assignment_verify(w->root, t, strlen(t), NOW, 0, &out, xerr), FB_ESIG,
	           "signature 0 by online key");
	assert_null(out);
	free(m1);
	free(a);
	free(t);
}

/* The server (or an attacker holding the online key) files channel 292's
 * manifest under channel 291: the online signature is valid, the embedded
 * manifest is valid, the pairing is not. */
static void test_assignment_mix_and_match(void **state)
{
	struct world *w = *state;
	char *m292 = manifest_env(292, 7, TWO_REL, 2);
	json_t *manifest = json_loads(m292, 0, NULL);
	struct fbsig_manifest mf;
	manifest_fields(&mf, 292, 7, CONTENT);
	json_t *doc = NULL;
	assert_int_equal(fbsig_assignment_build("canary", 5, NOW, NOW + 600, 1, &doc, NULL), FB_OK);
	json_object_set_new(json_object_get(doc, "channels"), "291",
	                    json_pack("{s:i, s:s, s:I, s:o}", "version", 7, "sha256", mf.sha256,
	                              "size", (json_int_t)mf.size, "manifest", manifest));
	char *a = NULL;
	size_t len = 0;
	assert_int_equal(fbsig_assignment_sign(K[ON], doc, &a, &len, NULL), FB_OK);
	struct fbsig_assignment *out = NULL;
	EXPECT_ERR(fbsig_assignment_verify(w->root, a, len, NOW, 0, &out, xerr), FB_EINVAL,
	           "but its manifest is for channel 292 version 7");
	free(a);
	/* Same channel, but the entry names another version than its manifest. */
	json_object_set_new(json_object_get(json_object_get(doc, "channels"), "291"), "version",
	                    json_integer(8));
	json_object_del(json_object_get(doc, "channels"), "291");
	char *m291 = manifest_env(291, 7, TWO_REL, 2);
	json_object_set_new(json_object_get(doc, "channels"), "291",
	                    json_pack("{s:i, s:s, s:I, s:o}", "version", 8, "sha256", mf.sha256,
	                              "size", (json_int_t)mf.size, "manifest",
	                              json_loads(m291, 0, NULL)));
	assert_int_equal(fbsig_assignment_sign(K[ON], doc, &a, &len, NULL), FB_OK);
	EXPECT_ERR(fbsig_assignment_verify(w->root, a, len, NOW, 0, &out, xerr), FB_EINVAL,
	           "channel 291 names version 8");
	assert_null(out);
	json_decref(doc);
	free(a);
	free(m292);
	free(m291);
}

static void test_assignment_weak_manifest(void **state)
{
	struct world *w = *state;
	const int one[] = {L1};
	char *m1 = manifest_env(291, 7, one, 1);
	char *ms[] = {m1};
	char *a = assignment_env(5, NOW + 600, ms, 1, ON);
	struct fbsig_assignment *out = NULL;
	EXPECT_ERR(fbsig_assignment_verify(w->root, a, strlen(a), NOW, 0, &out, xerr),
	           FB_ETHRESHOLD, "channel 291: embedded manifest: manifest: 1 of 2 required");
	assert_null(out);
	free(m1);
	free(a);
}

static void test_assignment_newer_root_needed(void **state)
{
	struct world *w = *state;
	json_t *doc = NULL;
	char *a = NULL;
	size_t len = 0;
	assert_int_equal(fbsig_assignment_build("canary", 5, NOW, NOW + 600, 2, &doc, NULL), FB_OK);
	assert_int_equal(fbsig_assignment_sign(K[ON], doc, &a, &len, NULL), FB_OK);
	struct fbsig_assignment *out = NULL;
	EXPECT_ERR(fbsig_assignment_verify(w->root, a, len, NOW, 0, &out, xerr), FB_ECONFLICT,
	           "needs root version 2, trusted root is version 1");
	json_decref(doc);
	free(a);
}

/* Random byte mutations of a valid assignment (fixed seed): whatever the
 * library accepts must carry exactly the signed content of the original;
 * everything else is refused with a known code (and, under ASan, without a
 * memory error or leak). */
static void test_assignment_mutations(void **state)
{
	struct world *w = *state;
	char *m1 = manifest_env(291, 7, TWO_REL, 2), *m2 = manifest_env(12, 3, TWO_REL, 2);
	char *ms[] = {m1, m2};
	char *a = assignment_env(5, NOW + 600, ms, 2, ON);
	size_t len = strlen(a);
	json_t *orig = json_loads(a, 0, NULL);
	char *buf = malloc(len + 1);
	static const char alphabet[] = " {}[]\",:0123456789abcdefAZ_";
	uint64_t x = 0x9e3779b97f4a7c15ull;
	int accepted = 0;
	for (int iter = 0; iter < 3000; iter++) {
		memcpy(buf, a, len + 1);
		int nmut = 1 + iter % 3;
		for (int k = 0; k < nmut; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[x % len] = alphabet[(x >> 32) % (sizeof alphabet - 1)];
		}
		struct fbsig_assignment *out = NULL;
		struct fb_err err = {""};
		enum fb_rc rc = fbsig_assignment_verify(w->root, buf, len, NOW, 0, &out, &err);
		if (rc == FB_OK) {
			json_t *got = json_loads(buf, 0, NULL);
			assert_non_null(got);
			assert_true(json_equal(json_object_get(got, "signed"),
			                       json_object_get(orig, "signed")));
			json_decref(got);
			fbsig_assignment_free(out);
			accepted++;
			continue;
		}
		assert_null(out);
		assert_true(rc == FB_EINVAL || rc == FB_ESIG || rc == FB_ETHRESHOLD ||
		            rc == FB_EEXPIRED || rc == FB_EROLLBACK || rc == FB_ECONFLICT ||
		            rc == FB_ETOOBIG);
		assert_true(err.msg[0] != '\0');
	}
	assert_true(accepted < 3000);
	json_decref(orig);
	free(buf);
	free(a);
	free(m1);
	free(m2);
}

#define W(t) cmocka_unit_test_setup_teardown(t, setup_world, teardown_world)

int main(void)
{
	const struct CMUnitTest basic[] = {
	        cmocka_unit_test(test_canonical_sorted_compact),
	        cmocka_unit_test(test_canonical_refusals),
	        cmocka_unit_test(test_message_domain_separated),
	        cmocka_unit_test(test_key_files_roundtrip),
	        cmocka_unit_test(test_key_wrong_passphrase),
	        cmocka_unit_test(test_key_loose_permissions),
	        cmocka_unit_test(test_root_trusted),
	        cmocka_unit_test(test_root_expired),
	        cmocka_unit_test(test_root_below_own_threshold),
	        cmocka_unit_test(test_root_online_key_alone),
	        cmocka_unit_test(test_root_rotation),
	        cmocka_unit_test(test_root_rotation_too_few_old_keys),
	        cmocka_unit_test(test_root_rotation_version_skip),
	};
	const struct CMUnitTest world[] = {
	        W(test_manifest_ok_and_blob),
	        W(test_manifest_tampered_field),
	        W(test_manifest_unknown_key),
	        W(test_manifest_same_key_twice),
	        W(test_manifest_expired),
	        W(test_manifest_bad_signature_sizes),
	        W(test_manifest_too_many_signatures),
	        W(test_type_confusion),
	        W(test_oversized_document),
	        W(test_assignment_ok_and_revert),
	        W(test_assignment_rollback),
	        W(test_assignment_expired),
	        W(test_assignment_wrong_signer),
	        W(test_assignment_tampered),
	        W(test_assignment_mix_and_match),
	        W(test_assignment_weak_manifest),
	        W(test_assignment_newer_root_needed),
	        W(test_assignment_mutations),
	};
	int fails = 0;
	if (setup_keys(NULL) || setup_tmp(NULL))
		return 1;
	fails += cmocka_run_group_tests_name("sign", basic, NULL, NULL);
	fails += cmocka_run_group_tests_name("sign_docs", world, NULL, NULL);
	teardown_tmp(NULL);
	teardown_keys(NULL);
	return fails ? 1 : 0;
}
