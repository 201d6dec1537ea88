/* libfbsign against the golden vectors in tests/vectors/sign_vectors.json,
 * which tests/vectors/gen.py produced with an independent implementation
 * (Python cryptography): keys, canonical bytes, signatures, verdicts. */
#include "fbsign.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#define VECTORS "tests/vectors/sign_vectors.json"

static json_t *V;

static const char *const rc_names[] = {
        "FB_OK",    "FB_ENOMEM",    "FB_EINVAL",   "FB_EIO",       "FB_ETOOBIG",    "FB_ENOTFOUND",
        "FB_EPERM", "FB_ESIG",      "FB_EEXPIRED", "FB_EROLLBACK", "FB_ETHRESHOLD", "FB_EFORMAT",
        "FB_EDB",   "FB_ECONFLICT", "FB_ETIMEOUT", "FB_EINTERNAL",
};

static const char *rc_name(enum fb_rc rc)
{
	return (size_t)rc < sizeof rc_names / sizeof rc_names[0] ? rc_names[rc] : "?";
}

static const char *str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	if (!s)
		fail_msg("vector field '%s' missing", k);
	return s;
}

/* The key named name, from its seed. Caller frees. */
static struct fbsig_key *key_named(const char *name)
{
	size_t i;
	json_t *k;
	json_array_foreach(json_object_get(V, "keys"), i, k)
	{
		if (strcmp(str(k, "name"), name) != 0)
			continue;
		unsigned char seed[32];
		struct fbsig_key *key = NULL;
		assert_int_equal(fb_hex_decode(str(k, "seed"), seed, sizeof seed), FB_OK);
		assert_int_equal(fbsig_key_from_seed(seed, &key), FB_OK);
		return key;
	}
	fail_msg("no key %s", name);
	return NULL;
}

static const json_t *doc_named(const char *name)
{
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(V, "documents"), i, d)
	{
		if (strcmp(str(d, "name"), name) == 0)
			return d;
	}
	fail_msg("no document %s", name);
	return NULL;
}

static int setup(void **state)
{
	(void)state;
	json_error_t je;
	if (fbsig_init())
		return -1;
	V = json_load_file(VECTORS, 0, &je);
	if (!V) {
		fprintf(stderr, "%s: %s (run from the repository root)\n", VECTORS, je.text);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	json_decref(V);
	return 0;
}

static void test_vector_keys(void **state)
{
	(void)state;
	size_t i;
	json_t *k;
	assert_true(json_array_size(json_object_get(V, "keys")) >= 7);
	json_array_foreach(json_object_get(V, "keys"), i, k)
	{
		struct fbsig_key *key = key_named(str(k, "name"));
		struct fbsig_pub pub;
		char b64[64];
		fbsig_key_pub(key, &pub);
		sodium_bin2base64(b64, sizeof b64, pub.pk, sizeof pub.pk,
		                  sodium_base64_VARIANT_ORIGINAL);
		assert_string_equal(b64, str(k, "public"));
		assert_string_equal(fbsig_key_id(key), str(k, "keyid"));
		fbsig_key_free(key);
	}
}

static void test_vector_canonical(void **state)
{
	(void)state;
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(V, "canonical"), i, c)
	{
		const char *in = str(c, "input");
		json_t *v = NULL;
		char *out = NULL;
		size_t len = 0;
		enum fb_rc rc = fbsig_parse(in, strlen(in), &v, NULL);
		if (rc == FB_OK)
			rc = fbsig_canonical(v, &out, &len, NULL);
		json_t *want_err = json_object_get(c, "error");
		if (want_err) {
			if (strcmp(rc_name(rc), json_string_value(want_err)) != 0)
				fail_msg("%s: got %s", str(c, "name"), rc_name(rc));
		} else {
			if (rc)
				fail_msg("%s: %s", str(c, "name"), rc_name(rc));
			assert_string_equal(out, str(c, "canonical"));
			assert_int_equal(len, strlen(str(c, "canonical")));
		}
		free(out);
		json_decref(v);
	}
}

static void test_vector_documents(void **state)
{
	(void)state;
	size_t i, j;
	json_t *d, *s;
	json_array_foreach(json_object_get(V, "documents"), i, d)
	{
		enum fbsig_type t;
		char *msg = NULL, *env = NULL;
		size_t mlen = 0, elen = 0;
		char hex[65];
		assert_int_equal(fbsig_type_parse(str(d, "type"), &t), FB_OK);
		json_t *sgnd = json_object_get(d, "signed");
		assert_int_equal(fbsig_message(t, sgnd, &msg, &mlen, NULL), FB_OK);
		assert_string_equal(msg, str(d, "message"));
		fb_sha256_hex(msg, mlen, hex);
		assert_string_equal(hex, str(d, "message_sha256"));
		/* Build the envelope through the library, key by key. */
		assert_int_equal(fbsig_envelope_new(t, sgnd, &env, &elen, NULL), FB_OK);
		json_array_foreach(json_object_get(d, "signatures"), j, s)
		{
			struct fbsig_key *key = key_named(str(s, "key"));
			unsigned char sig[64];
			char b64[128], *next = NULL;
			size_t nlen = 0;
			fbsig_sign_raw(key, msg, mlen, sig);
			sodium_bin2base64(b64, sizeof b64, sig, 64, sodium_base64_VARIANT_ORIGINAL);
			assert_string_equal(b64, str(s, "sig"));
			assert_string_equal(fbsig_key_id(key), str(s, "keyid"));
			assert_int_equal(fbsig_envelope_sign(key, t, env, elen, &next, &nlen, NULL),
			                 FB_OK);
			free(env);
			env = next;
			elen = nlen;
			fbsig_key_free(key);
		}
		assert_string_equal(env, str(d, "envelope_canonical"));
		free(env);
		free(msg);
	}
}

/* Run one verification case; returns its result. */
static enum fb_rc run_check(const json_t *c, struct fb_err *err)
{
	const json_t *rd = doc_named(str(c, "root"));
	const char *rbytes = str(rd, "envelope_canonical");
	int64_t now = json_integer_value(json_object_get(c, "now"));
	const char *type = str(c, "type");
	const char *mode = json_string_value(json_object_get(c, "mode"));
	char *bytes = json_dumps(json_object_get(c, "doc"), JSON_COMPACT);
	struct fbsig_root *root = NULL, *next = NULL;
	struct fbsig_assignment *a = NULL;
	struct fbsig_manifest m;
	enum fb_rc rc;
	assert_non_null(bytes);
	if (strcmp(type, "root") == 0 && mode && strcmp(mode, "trusted") == 0) {
		rc = fbsig_root_load_trusted(bytes, strlen(bytes), now, 0, &root, err);
		goto out;
	}
	rc = fbsig_root_load_trusted(rbytes, strlen(rbytes), now, 0, &root, err);
	if (rc)
		fail_msg("%s: trusted root: %s", str(c, "name"), err->msg);
	if (strcmp(type, "root") == 0) {
		rc = fbsig_root_update(root, bytes, strlen(bytes), now, &next, err);
	} else if (strcmp(type, "manifest") == 0) {
		rc = fbsig_manifest_verify(root, bytes, strlen(bytes), now, &m, err);
		json_t *content = json_object_get(c, "content");
		if (rc == FB_OK && content)
			rc = fbsig_manifest_check_blob(
			        &m, json_string_value(content), json_string_length(content),
			        (uint32_t)json_integer_value(json_object_get(c, "channel")), err);
	} else {
		rc = fbsig_assignment_verify(
		        root, bytes, strlen(bytes), now,
		        json_integer_value(json_object_get(c, "last_sequence")), &a, err);
	}
out:
	fbsig_assignment_free(a);
	fbsig_root_free(next);
	fbsig_root_free(root);
	free(bytes);
	return rc;
}

static void test_vector_checks(void **state)
{
	(void)state;
	size_t i;
	json_t *c;
	int ok = 0, refused = 0;
	json_array_foreach(json_object_get(V, "checks"), i, c)
	{
		struct fb_err err = {""};
		enum fb_rc rc = run_check(c, &err);
		if (strcmp(rc_name(rc), str(c, "expect")) != 0)
			fail_msg("check \"%s\": expected %s, got %s (%s)", str(c, "name"),
			         str(c, "expect"), rc_name(rc), err.msg);
		if (rc == FB_OK)
			ok++;
		else
			refused++;
	}
	assert_true(ok >= 4);
	assert_true(refused >= 20);
}

/* Any single flipped bit of a golden signature is a forgery and fails. */
static void test_vector_forgeries(void **state)
{
	(void)state;
	const json_t *rd = doc_named("root-v1");
	const char *rbytes = str(rd, "envelope_canonical");
	const char *mbytes = str(doc_named("manifest-291"), "envelope_canonical");
	struct fbsig_root *root = NULL;
	struct fbsig_manifest m;
	int64_t now = 1700000100;
	assert_int_equal(fbsig_root_load_trusted(rbytes, strlen(rbytes), now, 0, &root, NULL),
	                 FB_OK);
	assert_int_equal(fbsig_manifest_verify(root, mbytes, strlen(mbytes), now, &m, NULL), FB_OK);
	json_t *env = json_loads(mbytes, 0, NULL);
	json_t *sig0 = json_array_get(json_object_get(env, "signatures"), 0);
	unsigned char sig[64];
	size_t bin = 0;
	assert_int_equal(sodium_base642bin(sig, sizeof sig,
	                                   json_string_value(json_object_get(sig0, "sig")), 88,
	                                   NULL, &bin, NULL, sodium_base64_VARIANT_ORIGINAL),
	                 0);
	for (int bit = 0; bit < 64 * 8; bit += 7) {
		char b64[128];
		sig[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		sodium_bin2base64(b64, sizeof b64, sig, 64, sodium_base64_VARIANT_ORIGINAL);
		sig[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		json_object_set_new(sig0, "sig", json_string(b64));
		char *bytes = json_dumps(env, JSON_COMPACT);
		struct fb_err err = {""};
		enum fb_rc rc = fbsig_manifest_verify(root, bytes, strlen(bytes), now, &m, &err);
		if (rc != FB_ESIG)
			fail_msg("bit %d flipped: %s (%s)", bit, rc_name(rc), err.msg);
		free(bytes);
	}
	json_decref(env);
	fbsig_root_free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_vector_keys),      cmocka_unit_test(test_vector_canonical),
	        cmocka_unit_test(test_vector_documents), cmocka_unit_test(test_vector_checks),
	        cmocka_unit_test(test_vector_forgeries),
	};
	return cmocka_run_group_tests_name("sign_vectors", tests, setup, teardown);
}
