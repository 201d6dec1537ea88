/* firebreak common code: result codes, bounded buffers, files, hex, sha256.
 * Shared by every library and binary; knows nothing about servers or agents. */
#ifndef FB_COMMON_H
#define FB_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The release version of every firebreak binary (firebreakd, fbctl, fb-sign,
 * fb-agent, fb-fleet): the one place it is set. */
#define FB_VERSION "0.1.0"

#define FB_MUSTCHECK    __attribute__((warn_unused_result))
#define FB_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* The one result enum shared by firebreak's libraries. */
enum fb_rc {
	FB_OK = 0,
	FB_ENOMEM,     /* allocation failed */
	FB_EINVAL,     /* malformed or out-of-range input */
	FB_EIO,        /* file or network I/O failed */
	FB_ETOOBIG,    /* input over its hard cap */
	FB_ENOTFOUND,  /* no such object */
	FB_EPERM,      /* not allowed (permissions, role, loose key file) */
	FB_ESIG,       /* signature missing, malformed or wrong */
	FB_EEXPIRED,   /* document past its expiry */
	FB_EROLLBACK,  /* version/sequence not newer than the one accepted */
	FB_ETHRESHOLD, /* fewer distinct authorised signers than required */
	FB_EFORMAT,    /* binary/text format violated */
	FB_EDB,        /* database error */
	FB_ECONFLICT,  /* state does not allow the operation */
	FB_ETIMEOUT,   /* took too long */
	FB_EINTERNAL,  /* bug or unexpected condition */
};

/* Static English name of a result code ("ok", "out of memory", ...). */
const char *fb_rc_str(enum fb_rc rc);

/* A precise, human-readable error: what was wrong and where (field, index,
 * byte offset). Functions that take a struct fb_err * fill it on failure;
 * NULL is accepted and means the caller does not want the text. */
struct fb_err {
	char msg[512];
};
void fb_err_set(struct fb_err *err, const char *fmt, ...) FB_PRINTF(2, 3);
/* Prefix the existing message: "ctx: old message". */
void fb_err_prefix(struct fb_err *err, const char *fmt, ...) FB_PRINTF(2, 3);

/* Growable byte buffer with a hard cap (curl dynbuf style). Always
 * NUL-terminated after a successful add, so text can be used as a C string. */
struct fb_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max; /* fb_buf_add fails with FB_ETOOBIG past this many bytes */
};

void fb_buf_init(struct fb_buf *b, size_t max);
void fb_buf_cleanup(struct fb_buf *b);
void fb_buf_reset(struct fb_buf *b);
enum fb_rc fb_buf_add(struct fb_buf *b, const void *p, size_t n) FB_MUSTCHECK;
enum fb_rc fb_buf_addstr(struct fb_buf *b, const char *s) FB_MUSTCHECK;
enum fb_rc fb_buf_printf(struct fb_buf *b, const char *fmt, ...) FB_PRINTF(2, 3) FB_MUSTCHECK;
/* Hand the data to the caller (who frees it with free()) and reset b. */
char *fb_buf_steal(struct fb_buf *b, size_t *len);

/* Read a whole file of at most max bytes. On success *out (caller frees with
 * free(), NUL-terminated) and *len are set; FB_ETOOBIG past max. */
enum fb_rc fb_file_read(const char *path, size_t max, unsigned char **out,
                        size_t *len) FB_MUSTCHECK;
/* Write durably: temp file in the same directory, fsync, rename, fsync dir. */
enum fb_rc fb_file_write_atomic(const char *path, const void *p, size_t n,
                                mode_t mode) FB_MUSTCHECK;

/* Lower-case hex; out must hold 2*n+1 bytes. */
void fb_hex_encode(const unsigned char *in, size_t n, char *out);
/* Exactly 2*outlen hex digits expected; FB_EINVAL otherwise. */
enum fb_rc fb_hex_decode(const char *hex, unsigned char *out, size_t outlen) FB_MUSTCHECK;

#define FB_SHA256_LEN     32
#define FB_SHA256_HEX_LEN 64
void fb_sha256(const void *p, size_t n, unsigned char out[FB_SHA256_LEN]);
void fb_sha256_hex(const void *p, size_t n, char out[FB_SHA256_HEX_LEN + 1]);
/* True when s is exactly 64 lower-case hex digits. */
int fb_is_sha256_hex(const char *s);

/* Strict integer parsing of a whole string (no atoi): FB_EINVAL on junk or
 * out of [min, max]. */
enum fb_rc fb_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) FB_MUSTCHECK;

/* A duration: a whole number followed by one unit, ms (milliseconds), s,
 * m, h or d; a plain number is seconds ("30s", "5m", "2h", "1d", "90",
 * "250ms"). The result in milliseconds must lie in [min_ms, max_ms].
 * FB_EINVAL on junk (err says what was expected), FB_ETOOBIG when out of
 * range (err names the range in the same syntax). err may be NULL. */
enum fb_rc fb_parse_duration_ms(const char *s, int64_t min_ms, int64_t max_ms, int64_t *out,
                                struct fb_err *err) FB_MUSTCHECK;
/* ms written in the duration syntax with the largest unit that divides it
 * ("90s", "5m", "250ms", "1d"). buf of n bytes; returns buf. */
const char *fb_duration_str(int64_t ms, char *buf, size_t n);

/* Wall clock in milliseconds / monotonic clock in milliseconds. */
int64_t fb_now_ms(void);
int64_t fb_mono_ms(void);

#endif
