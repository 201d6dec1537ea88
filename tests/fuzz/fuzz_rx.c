/* libFuzzer target for the regex engine (schema/rx.c): compile any pattern,
 * match it against any subject; must never crash, hang or leak, and must
 * agree with glibc's POSIX engine where the two syntaxes coincide. */
#include <regex.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rx.h"

/* True when every byte of p[0..n) is in the set chars. */
static int only(const char *p, size_t n, const char *chars)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\0' || strchr(chars, p[i]) == NULL)
			return 0;
	return 1;
}

/* On a small alphabet without escapes, newlines or NULs, rx and POSIX ERE
 * (REG_EXTENDED, C locale) mean the same thing for every pattern rx accepts;
 * trap when the answers differ. */
static void differential(const char *pat, size_t plen, unsigned flags, const struct rx *re,
                         const char *subj, size_t slen)
{
	static const char alphabet[] = "abcAB.()|*+?{}0123,[]^-$";
	int cflags = REG_EXTENDED | REG_NOSUB | (flags & RX_ICASE ? REG_ICASE : 0);
	char p[128], s[128];
	regex_t pre;

	if (plen >= sizeof(p) || slen >= sizeof(s) || !only(pat, plen, alphabet) ||
	    !only(subj, slen, alphabet))
		return;
	/* glibc folds case inside bracket ranges in its own way ("[]-c]" is an
	 * invalid range under REG_ICASE); compare classes case-sensitively only. */
	if ((flags & RX_ICASE) && memchr(pat, '[', plen))
		return;
	memcpy(p, pat, plen);
	p[plen] = '\0';
	memcpy(s, subj, slen);
	s[slen] = '\0';
	if (regcomp(&pre, p, cflags) != 0)
		__builtin_trap(); /* rx accepted something POSIX refuses */
	if ((regexec(&pre, s, 0, NULL, 0) == 0) != rx_match(re, subj, slen))
		__builtin_trap();
	regfree(&pre);
}

/* Input: one flags byte (bit 0: RX_ICASE), then the pattern, then a NUL byte,
 * then the subject (the rest). Without a NUL the whole rest is the pattern
 * and it is also matched against itself. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fb_err err;
	struct rx *re = NULL;
	const char *pat, *subj;
	size_t plen, slen;
	const uint8_t *nul;
	unsigned flags;
	enum fb_rc rc;
	int m;

	if (size < 1)
		return 0;
	flags = data[0] & 1u ? RX_ICASE : 0;
	pat = (const char *)data + 1;
	plen = size - 1;
	nul = memchr(pat, '\0', plen);
	if (nul) {
		subj = (const char *)nul + 1;
		slen = plen - (size_t)((const char *)nul - pat) - 1;
		plen = (size_t)((const char *)nul - pat);
	} else {
		subj = pat;
		slen = plen;
	}
	/* Matching is linear in the subject, so long subjects find nothing new;
	 * the cap keeps each run fast under the runner's -max_len=65536. */
	if (slen > 4096)
		slen = 4096;
	err.msg[0] = '\0';
	rc = rx_compile(pat, plen, flags, &re, &err);
	if (rc != FB_OK) {
		/* Every refusal is a syntax error or a limit, names its offset
		 * and leaves no program. */
		if ((rc != FB_EINVAL && rc != FB_ETOOBIG) || re != NULL ||
		    strncmp(err.msg, "regex: ", 7) != 0 || strstr(err.msg, " at offset ") == NULL)
			__builtin_trap();
		return 0;
	}
	if (rx_size(re) < 1 || rx_size(re) > RX_MAX_STATES)
		__builtin_trap();
	m = rx_match(re, subj, slen);
	if (m != 0 && m != 1)
		__builtin_trap();
	if (rx_match(re, subj, slen) != m) /* deterministic */
		__builtin_trap();
	(void)rx_match(re, subj, 0);
	differential(pat, plen, flags, re, subj, slen);
	rx_free(re);
	return 0;
}
