/* libfbsign: Ed25519 signing keys and their files (.pub, and .key with the
 * seed encrypted under Argon2id + XSalsa20-Poly1305 or stored plain). */
#include "sig_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PUB_TYPE "firebreak-ed25519-public"
#define KEY_TYPE "firebreak-ed25519-secret"
/* Upper bounds on the KDF cost a key file may ask for (a hostile file must
 * not make us allocate gigabytes). */
#define KDF_MAX_OPS 16
#define KDF_MAX_MEM (1024ull * 1024 * 1024)

struct fbsig_key {
	unsigned char pk[FBSIG_PUBLIC_LEN];
	char keyid[FBSIG_KEYID_HEX + 1];
	unsigned char *sk; /* crypto_sign_SECRETKEYBYTES, sodium_malloc'd */
};

void fbsig_keyid(const unsigned char pk[FBSIG_PUBLIC_LEN], char out[FBSIG_KEYID_HEX + 1])
{
	unsigned char h[32];
	crypto_generichash(h, sizeof h, pk, FBSIG_PUBLIC_LEN, NULL, 0);
	fb_hex_encode(h, FBSIG_KEYID_HEX / 2, out);
}

void fbsig_key_free(struct fbsig_key *key)
{
	if (!key)
		return;
	sodium_free(key->sk); /* wipes */
	sodium_memzero(key, sizeof *key);
	free(key);
}

enum fb_rc fbsig_key_from_seed(const unsigned char seed[FBSIG_SEED_LEN], struct fbsig_key **out)
{
	*out = NULL;
	struct fbsig_key *k = calloc(1, sizeof *k);
	if (!k)
		return FB_ENOMEM;
	k->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	if (!k->sk) {
		free(k);
		return FB_ENOMEM;
	}
	crypto_sign_seed_keypair(k->pk, k->sk, seed);
	fbsig_keyid(k->pk, k->keyid);
	*out = k;
	return FB_OK;
}

enum fb_rc fbsig_keygen(struct fbsig_key **out)
{
	unsigned char seed[FBSIG_SEED_LEN];
	randombytes_buf(seed, sizeof seed);
	enum fb_rc rc = fbsig_key_from_seed(seed, out);
	sodium_memzero(seed, sizeof seed);
	return rc;
}

const char *fbsig_key_id(const struct fbsig_key *key)
{
	return key->keyid;
}

void fbsig_key_pub(const struct fbsig_key *key, struct fbsig_pub *out)
{
	memcpy(out->pk, key->pk, sizeof out->pk);
	memcpy(out->keyid, key->keyid, sizeof out->keyid);
}

void fbsig_sign_raw(const struct fbsig_key *key, const void *msg, size_t len,
                    unsigned char sig[FBSIG_SIG_LEN])
{
	crypto_sign_detached(sig, NULL, msg, len, key->sk);
}

/* ---- files ----------------------------------------------------------- */

/* Serialise obj and write it durably to path with mode, refusing to replace
 * an existing file. */
static enum fb_rc write_new(const char *path, json_t *obj, mode_t mode, struct fb_err *err)
{
	struct stat st;
	if (lstat(path, &st) == 0) {
		fb_err_set(err, "%s already exists; refusing to overwrite a key", path);
		return FB_ECONFLICT;
	}
	char *s = json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!s) {
		fb_err_set(err, "out of memory");
		return FB_ENOMEM;
	}
	size_t n = strlen(s);
	char *t = realloc(s, n + 2);
	if (!t) {
		sodium_memzero(s, n);
		free(s);
		return FB_ENOMEM;
	}
	t[n++] = '\n';
	t[n] = '\0';
	enum fb_rc rc = fb_file_write_atomic(path, t, n, mode);
	if (rc)
		fb_err_set(err, "cannot write %s: %s", path, strerror(errno));
	sodium_memzero(t, n);
	free(t);
	return rc;
}

static int set_b64(json_t *obj, const char *name, const unsigned char *p, size_t n)
{
	char *s = sigi_b64_encode(p, n);
	if (!s)
		return -1;
	int r = json_object_set_new(obj, name, json_string(s));
	sodium_memzero(s, strlen(s));
	free(s);
	return r;
}

enum fb_rc fbsig_key_save(const struct fbsig_key *key, const char *base, const char *passphrase,
                          struct fb_err *err)
{
	enum fb_rc rc = FB_ENOMEM;
	json_t *pub = NULL, *sec = NULL;
	char pubpath[4096], keypath[4096];
	unsigned char *seedbox = NULL, *dk = NULL;
	if ((size_t)snprintf(pubpath, sizeof pubpath, "%s.pub", base) >= sizeof pubpath ||
	    (size_t)snprintf(keypath, sizeof keypath, "%s.key", base) >= sizeof keypath) {
		fb_err_set(err, "key path too long");
		return FB_EINVAL;
	}
	if (passphrase && !*passphrase) {
		fb_err_set(err, "empty passphrase; use no passphrase explicitly instead");
		return FB_EINVAL;
	}
	pub = json_pack("{s:s, s:s}", "type", PUB_TYPE, "keyid", key->keyid);
	sec = json_pack("{s:s, s:s}", "type", KEY_TYPE, "keyid", key->keyid);
	if (!pub || !sec || set_b64(pub, "public", key->pk, sizeof key->pk) ||
	    set_b64(sec, "public", key->pk, sizeof key->pk))
		goto out;
	/* The seed is the first half of libsodium's secret key. */
	const unsigned char *seed = key->sk;
	if (!passphrase) {
		if (json_object_set_new(sec, "kdf", json_string("none")) ||
		    set_b64(sec, "seed", seed, FBSIG_SEED_LEN))
			goto out;
	} else {
		unsigned char salt[crypto_pwhash_SALTBYTES], nonce[crypto_secretbox_NONCEBYTES];
		unsigned long long ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
		size_t mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
		randombytes_buf(salt, sizeof salt);
		randombytes_buf(nonce, sizeof nonce);
		dk = sodium_malloc(crypto_secretbox_KEYBYTES);
		seedbox = sodium_malloc(FBSIG_SEED_LEN + crypto_secretbox_MACBYTES);
		if (!dk || !seedbox)
			goto out;
		if (crypto_pwhash(dk, crypto_secretbox_KEYBYTES, passphrase, strlen(passphrase),
		                  salt, ops, mem, crypto_pwhash_ALG_ARGON2ID13) != 0) {
			fb_err_set(err, "key derivation failed (out of memory?)");
			goto out;
		}
		crypto_secretbox_easy(seedbox, seed, FBSIG_SEED_LEN, nonce, dk);
		if (json_object_set_new(sec, "kdf", json_string("argon2id13")) ||
		    json_object_set_new(sec, "opslimit", json_integer((json_int_t)ops)) ||
		    json_object_set_new(sec, "memlimit", json_integer((json_int_t)mem)) ||
		    set_b64(sec, "salt", salt, sizeof salt) ||
		    set_b64(sec, "nonce", nonce, sizeof nonce) ||
		    set_b64(sec, "box", seedbox, FBSIG_SEED_LEN + crypto_secretbox_MACBYTES))
			goto out;
	}
	rc = write_new(keypath, sec, 0600, err);
	if (rc)
		goto out;
	rc = write_new(pubpath, pub, 0644, err);
	if (rc)
		unlink(keypath);
out:
	if (rc == FB_ENOMEM)
		fb_err_set(err, "out of memory");
	sodium_free(dk);
	sodium_free(seedbox);
	if (sec) {
		/* Wipe the plain seed's base64 held by the JSON tree. */
		json_t *s = json_object_get(sec, "seed");
		if (s)
			sodium_memzero((char *)json_string_value(s), json_string_length(s));
		json_decref(sec);
	}
	json_decref(pub);
	return rc;
}

/* Read a key file without following links; when secret, refuse a file that
 * group or other may read or write. *out is NUL-terminated, caller wipes
 * and frees it. */
static enum fb_rc read_keyfile(const char *path, int secret, char **out, size_t *len,
                               struct fb_err *err)
{
	*out = NULL;
	*len = 0;
	enum fb_rc rc = FB_OK;
	char *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		fb_err_set(err, "cannot open %s: %s", path, strerror(errno));
		return errno == ENOENT ? FB_ENOTFOUND : FB_EIO;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		fb_err_set(err, "%s is not a regular file", path);
		rc = FB_EINVAL;
		goto out;
	}
	if (secret && (st.st_mode & 077)) {
		fb_err_set(err,
		           "secret key file %s has mode %04o: it must not be accessible by group "
		           "or other (chmod 600 %s)",
		           path, (unsigned)(st.st_mode & 07777), path);
		rc = FB_EPERM;
		goto out;
	}
	if (st.st_size > FBSIG_MAX_KEYFILE) {
		fb_err_set(err, "%s is %lld bytes, over the %d-byte limit for key files", path,
		           (long long)st.st_size, FBSIG_MAX_KEYFILE);
		rc = FB_ETOOBIG;
		goto out;
	}
	buf = calloc(1, FBSIG_MAX_KEYFILE + 1);
	if (!buf) {
		rc = FB_ENOMEM;
		goto out;
	}
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, FBSIG_MAX_KEYFILE + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fb_err_set(err, "cannot read %s: %s", path, strerror(errno));
			rc = FB_EIO;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > FBSIG_MAX_KEYFILE) {
			fb_err_set(err, "%s is over the %d-byte limit for key files", path,
			           FBSIG_MAX_KEYFILE);
			rc = FB_ETOOBIG;
			goto out;
		}
	}
	*out = buf;
	*len = n;
	buf = NULL;
out:
	if (buf) {
		sodium_memzero(buf, FBSIG_MAX_KEYFILE + 1);
		free(buf);
	}
	close(fd);
	return rc;
}

static void wipe_free(char *p, size_t n)
{
	if (p) {
		sodium_memzero(p, n);
		free(p);
	}
}

/* Parse a key file's JSON; check its type and that keyid matches the public
 * key. *pk filled; *out a new reference. */
static enum fb_rc parse_keyfile(const char *path, const char *buf, size_t len, const char *type,
                                json_t **out, unsigned char pk[FBSIG_PUBLIC_LEN],
                                struct fb_err *err)
{
	*out = NULL;
	json_error_t je;
	const char *t = NULL, *id = NULL, *pub = NULL;
	char want[FBSIG_KEYID_HEX + 1];
	size_t got = 0;
	json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!v || !json_is_object(v)) {
		fb_err_set(err, "%s: not a key file (JSON error at line %d: %s)", path, je.line,
		           v ? "not an object" : je.text);
		json_decref(v);
		return FB_EINVAL;
	}
	enum fb_rc rc = sigi_get_str(v, path, "type", 64, &t, err);
	if (rc == FB_OK && strcmp(t, type) != 0 &&
	    !(strcmp(type, PUB_TYPE) == 0 && strcmp(t, KEY_TYPE) == 0)) {
		fb_err_set(err, "%s: key file of type \"%s\", expected \"%s\"", path, t, type);
		rc = FB_EINVAL;
	}
	if (rc == FB_OK)
		rc = sigi_get_str(v, path, "keyid", 64, &id, err);
	if (rc == FB_OK)
		rc = sigi_get_str(v, path, "public", 64, &pub, err);
	if (rc == FB_OK && sigi_b64_decode(pub, pk, FBSIG_PUBLIC_LEN, &got) != FB_OK) {
		fb_err_set(err, "%s: 'public' is not base64 of %d bytes", path, FBSIG_PUBLIC_LEN);
		rc = FB_EINVAL;
	}
	if (rc == FB_OK) {
		fbsig_keyid(pk, want);
		if (strcmp(want, id) != 0) {
			fb_err_set(err, "%s: keyid %.20s does not match the public key (%s)", path,
			           id, want);
			rc = FB_EINVAL;
		}
	}
	if (rc) {
		json_decref(v);
		return rc;
	}
	*out = v;
	return FB_OK;
}

enum fb_rc fbsig_pub_load(const char *path, struct fbsig_pub *out, struct fb_err *err)
{
	unsigned char pk[FBSIG_PUBLIC_LEN];
	char *buf = NULL;
	size_t len = 0;
	json_t *v = NULL;
	enum fb_rc rc = read_keyfile(path, 0, &buf, &len, err);
	if (rc)
		goto out;
	rc = parse_keyfile(path, buf, len, PUB_TYPE, &v, pk, err);
	if (rc)
		goto out;
	memcpy(out->pk, pk, sizeof pk);
	fbsig_keyid(out->pk, out->keyid);
out:
	json_decref(v);
	wipe_free(buf, len);
	return rc;
}

enum fb_rc fbsig_key_file_encrypted(const char *path, int *encrypted, struct fb_err *err)
{
	char *buf = NULL;
	size_t len = 0;
	json_t *v = NULL;
	unsigned char pk[FBSIG_PUBLIC_LEN];
	const char *kdf = NULL;
	enum fb_rc rc = read_keyfile(path, 1, &buf, &len, err);
	if (rc == FB_OK)
		rc = parse_keyfile(path, buf, len, KEY_TYPE, &v, pk, err);
	if (rc == FB_OK)
		rc = sigi_get_str(v, path, "kdf", 32, &kdf, err);
	if (rc == FB_OK)
		*encrypted = strcmp(kdf, "none") != 0;
	json_decref(v);
	wipe_free(buf, len);
	return rc;
}

/* Decode base64 field name of v into exactly n bytes at out. */
static enum fb_rc b64_field(const json_t *v, const char *path, const char *name, unsigned char *out,
                            size_t n, struct fb_err *err)
{
	const char *s = NULL;
	size_t got = 0;
	enum fb_rc rc = sigi_get_str(v, path, name, 128, &s, err);
	if (rc)
		return rc;
	if (sigi_b64_decode(s, out, n, &got) != FB_OK) {
		fb_err_set(err, "%s: '%s' is not base64 of %zu bytes", path, name, n);
		return FB_EINVAL;
	}
	return FB_OK;
}

/* Decrypt (or decode) the seed of a parsed .key file into seed. */
static enum fb_rc key_seed(const char *path, const json_t *v, const char *passphrase,
                           unsigned char seed[FBSIG_SEED_LEN], struct fb_err *err)
{
	const char *kdf = NULL;
	enum fb_rc rc = sigi_get_str(v, path, "kdf", 32, &kdf, err);
	if (rc)
		return rc;
	if (strcmp(kdf, "none") == 0) {
		static const char *const plain[] = {"type", "keyid", "public", "kdf", "seed", NULL};
		rc = sigi_only_keys(v, path, plain, err);
		if (rc == FB_OK)
			rc = b64_field(v, path, "seed", seed, FBSIG_SEED_LEN, err);
		return rc;
	}
	if (strcmp(kdf, "argon2id13") != 0) {
		fb_err_set(err, "%s: unknown kdf \"%.32s\"", path, kdf);
		return FB_EINVAL;
	}
	if (!passphrase) {
		fb_err_set(err, "%s is encrypted: a passphrase is required", path);
		return FB_EINVAL;
	}
	static const char *const enc[] = {"type",     "keyid", "public", "kdf", "opslimit",
	                                  "memlimit", "salt",  "nonce",  "box", NULL};
	unsigned char salt[crypto_pwhash_SALTBYTES], nonce[crypto_secretbox_NONCEBYTES];
	unsigned char box[FBSIG_SEED_LEN + crypto_secretbox_MACBYTES];
	int64_t ops = 0, mem = 0;
	unsigned char *dk = NULL;
	rc = sigi_only_keys(v, path, enc, err);
	if (rc == FB_OK)
		rc = sigi_get_int(v, path, "opslimit", crypto_pwhash_OPSLIMIT_MIN, KDF_MAX_OPS,
		                  &ops, err);
	if (rc == FB_OK)
		rc = sigi_get_int(v, path, "memlimit", crypto_pwhash_MEMLIMIT_MIN,
		                  (int64_t)KDF_MAX_MEM, &mem, err);
	if (rc == FB_OK)
		rc = b64_field(v, path, "salt", salt, sizeof salt, err);
	if (rc == FB_OK)
		rc = b64_field(v, path, "nonce", nonce, sizeof nonce, err);
	if (rc == FB_OK)
		rc = b64_field(v, path, "box", box, sizeof box, err);
	if (rc)
		return rc;
	dk = sodium_malloc(crypto_secretbox_KEYBYTES);
	if (!dk)
		return FB_ENOMEM;
	if (crypto_pwhash(dk, crypto_secretbox_KEYBYTES, passphrase, strlen(passphrase), salt,
	                  (unsigned long long)ops, (size_t)mem,
	                  crypto_pwhash_ALG_ARGON2ID13) != 0) {
		fb_err_set(err, "%s: key derivation failed (out of memory?)", path);
		rc = FB_ENOMEM;
	} else if (crypto_secretbox_open_easy(seed, box, sizeof box, nonce, dk) != 0) {
		fb_err_set(err, "%s: wrong passphrase (or the key file is corrupted)", path);
		rc = FB_EPERM;
	}
	sodium_free(dk);
	return rc;
}

enum fb_rc fbsig_key_load(const char *path, const char *passphrase, struct fbsig_key **out,
                          struct fb_err *err)
{
	*out = NULL;
	char *buf = NULL;
	size_t len = 0;
	json_t *v = NULL;
	struct fbsig_key *k = NULL;
	unsigned char pk[FBSIG_PUBLIC_LEN];
	unsigned char *seed = sodium_malloc(FBSIG_SEED_LEN);
	enum fb_rc rc = seed ? FB_OK : FB_ENOMEM;
	if (rc == FB_OK)
		rc = read_keyfile(path, 1, &buf, &len, err);
	if (rc == FB_OK)
		rc = parse_keyfile(path, buf, len, KEY_TYPE, &v, pk, err);
	if (rc == FB_OK)
		rc = key_seed(path, v, passphrase, seed, err);
	if (rc == FB_OK)
		rc = fbsig_key_from_seed(seed, &k);
	if (rc == FB_OK && sodium_memcmp(k->pk, pk, sizeof pk) != 0) {
		fb_err_set(err, "%s: the secret key does not match its public key", path);
		rc = FB_EINVAL;
	}
	if (rc == FB_OK) {
		*out = k;
		k = NULL;
	}
	if (v) {
		json_t *s = json_object_get(v, "seed");
		if (json_is_string(s))
			sodium_memzero((char *)json_string_value(s), json_string_length(s));
		json_decref(v);
	}
	fbsig_key_free(k);
	sodium_free(seed);
	wipe_free(buf, len);
	return rc;
}
