/* firebreak common code: result codes, bounded buffers, files, hex, sha256. */
#include "fb.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *fb_rc_str(enum fb_rc rc)
{
	switch (rc) {
	case FB_OK: return "ok";
	case FB_ENOMEM: return "out of memory";
	case FB_EINVAL: return "invalid input";
	case FB_EIO: return "I/O error";
	case FB_ETOOBIG: return "too big";
	case FB_ENOTFOUND: return "not found";
	case FB_EPERM: return "permission denied";
	case FB_ESIG: return "bad signature";
	case FB_EEXPIRED: return "expired";
	case FB_EROLLBACK: return "rollback refused";
	case FB_ETHRESHOLD: return "signature threshold not met";
	case FB_EFORMAT: return "format error";
	case FB_EDB: return "database error";
	case FB_ECONFLICT: return "conflict";
	case FB_ETIMEOUT: return "timed out";
	case FB_EINTERNAL: return "internal error";
	}
	return "unknown error";
}

void fb_err_set(struct fb_err *err, const char *fmt, ...)
{
	if (!err)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
}

void fb_err_prefix(struct fb_err *err, const char *fmt, ...)
{
	if (!err)
		return;
	char pre[256], old[sizeof err->msg];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof old);
	size_t n = strnlen(pre, sizeof pre - 1);
	memcpy(err->msg, pre, n);
	if (n + 2 < sizeof err->msg) {
		err->msg[n++] = ':';
		err->msg[n++] = ' ';
	}
	size_t rest = strnlen(old, sizeof old - 1);
	if (rest > sizeof err->msg - 1 - n)
		rest = sizeof err->msg - 1 - n;
	memcpy(err->msg + n, old, rest);
	err->msg[n + rest] = '\0';
}

void fb_buf_init(struct fb_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void fb_buf_cleanup(struct fb_buf *b)
{
	free(b->data);
	fb_buf_init(b, b->max);
}

void fb_buf_reset(struct fb_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

enum fb_rc fb_buf_add(struct fb_buf *b, const void *p, size_t n)
{
	if (n > b->max || b->len > b->max - n)
		return FB_ETOOBIG;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 256;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		char *nd = realloc(b->data, ncap);
		if (!nd)
			return FB_ENOMEM;
		b->data = nd;
		b->cap = ncap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return FB_OK;
}

enum fb_rc fb_buf_addstr(struct fb_buf *b, const char *s)
{
	return fb_buf_add(b, s, strlen(s));
}

enum fb_rc fb_buf_printf(struct fb_buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return FB_EINVAL;
	if ((size_t)n < sizeof small)
		return fb_buf_add(b, small, (size_t)n);
	char *big = malloc((size_t)n + 1);
	if (!big)
		return FB_ENOMEM;
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	enum fb_rc rc = fb_buf_add(b, big, (size_t)n);
	free(big);
	return rc;
}

char *fb_buf_steal(struct fb_buf *b, size_t *len)
{
	char *d = b->data;
	if (len)
		*len = b->len;
	if (!d)
		d = calloc(1, 1);
	fb_buf_init(b, b->max);
	return d;
}

enum fb_rc fb_file_read(const char *path, size_t max, unsigned char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	enum fb_rc rc = FB_OK;
	struct fb_buf b;
	fb_buf_init(&b, max);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? FB_ENOTFOUND : FB_EIO;
	for (;;) {
		char chunk[65536];
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = FB_EIO;
			goto out;
		}
		if (n == 0)
			break;
		rc = fb_buf_add(&b, chunk, (size_t)n);
		if (rc)
			goto out;
	}
	*out = (unsigned char *)fb_buf_steal(&b, len);
out:
	close(fd);
	fb_buf_cleanup(&b);
	return rc;
}

static enum fb_rc fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash) {
		dir[0] = '.';
		dir[1] = '\0';
	} else {
		size_t n = (size_t)(slash - path);
		if (n == 0)
			n = 1;
		if (n >= sizeof dir)
			return FB_EINVAL;
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return FB_EIO;
	int r = fsync(fd);
	close(fd);
	return r ? FB_EIO : FB_OK;
}

enum fb_rc fb_file_write_atomic(const char *path, const void *p, size_t n, mode_t mode)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
		return FB_EINVAL;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return FB_EIO;
	const char *c = p;
	size_t left = n;
	while (left) {
		ssize_t w = write(fd, c, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			unlink(tmp);
			return FB_EIO;
		}
		c += w;
		left -= (size_t)w;
	}
	if (fchmod(fd, mode) || fsync(fd)) {
		close(fd);
		unlink(tmp);
		return FB_EIO;
	}
	close(fd);
	if (rename(tmp, path)) {
		unlink(tmp);
		return FB_EIO;
	}
	return fsync_dir_of(path);
}

void fb_hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

enum fb_rc fb_hex_decode(const char *hex, unsigned char *out, size_t outlen)
{
	if (strlen(hex) != 2 * outlen)
		return FB_EINVAL;
	for (size_t i = 0; i < outlen; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return FB_EINVAL;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return FB_OK;
}

void fb_sha256(const void *p, size_t n, unsigned char out[FB_SHA256_LEN])
{
	unsigned int olen = FB_SHA256_LEN;
	EVP_Digest(p, n, out, &olen, EVP_sha256(), NULL);
}

void fb_sha256_hex(const void *p, size_t n, char out[FB_SHA256_HEX_LEN + 1])
{
	unsigned char d[FB_SHA256_LEN];
	fb_sha256(p, n, d);
	fb_hex_encode(d, sizeof d, out);
}

int fb_is_sha256_hex(const char *s)
{
	if (!s)
		return 0;
	size_t i;
	for (i = 0; s[i]; i++) {
		if (i >= FB_SHA256_HEX_LEN)
			return 0;
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return i == FB_SHA256_HEX_LEN;
}

enum fb_rc fb_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (!s || !*s)
		return FB_EINVAL;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return FB_EINVAL;
	*out = v;
	return FB_OK;
}

static const struct {
	const char *name;
	int64_t ms;
} duration_units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};

const char *fb_duration_str(int64_t ms, char *buf, size_t n)
{
	size_t k = 3; /* "0s" */
	if (ms != 0)
		for (k = 0; k + 1 < sizeof duration_units / sizeof duration_units[0] &&
		            ms % duration_units[k].ms != 0;
		     k++)
			;
	snprintf(buf, n, "%lld%s", (long long)(ms / duration_units[k].ms), duration_units[k].name);
	return buf;
}

enum fb_rc fb_parse_duration_ms(const char *s, int64_t min_ms, int64_t max_ms, int64_t *out,
                                struct fb_err *err)
{
	char lo[32], hi[32];
	if (!s || !*s || *s < '0' || *s > '9') {
		fb_err_set(err,
		           "\"%s\" is not a duration (a number with a unit: 30s, 5m, 2h, 1d, "
		           "250ms; a plain number is seconds)",
		           s ? s : "");
		return FB_EINVAL;
	}
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	int64_t unit = 0;
	if (*end == '\0')
		unit = 1000;
	for (size_t k = 0; !unit && k < sizeof duration_units / sizeof duration_units[0]; k++)
		if (strcmp(end, duration_units[k].name) == 0)
			unit = duration_units[k].ms;
	if (errno || !unit) {
		fb_err_set(err,
		           "\"%s\" is not a duration (a number with a unit: 30s, 5m, 2h, 1d, "
		           "250ms; a plain number is seconds)",
		           s);
		return FB_EINVAL;
	}
	if (v > INT64_MAX / unit || v * unit < min_ms || v * unit > max_ms) {
		fb_err_set(err, "%s is out of range: %s to %s", s,
		           fb_duration_str(min_ms, lo, sizeof lo),
		           fb_duration_str(max_ms, hi, sizeof hi));
		return FB_ETOOBIG;
	}
	*out = v * unit;
	return FB_OK;
}

int64_t fb_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t fb_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
