/* Safe regular expressions for channel-file rules: a small engine whose
 * matching time is linear in the subject (NFA simulation, no backtracking)
 * and whose patterns are refused past hard complexity limits. */
#ifndef FB_RX_H
#define FB_RX_H

#include <stddef.h>

#include "fb.h"

/* Hard limits; a pattern beyond any of them is refused by rx_compile. */
#define RX_MAX_PATTERN 1024 /* bytes of pattern text */
#define RX_MAX_STATES  4096 /* compiled program size (instructions) */
#define RX_MAX_REPEAT  255  /* largest m or n in {m,n} */
#define RX_MAX_DEPTH   32   /* nesting of groups */

/* rx_compile flags */
#define RX_ICASE 1u /* ASCII case-insensitive */

struct rx;

/* Compile pat[0..len) (need not be NUL-terminated; a NUL byte inside is
 * refused). Syntax: literals; escapes \\ \. \* etc., \d \D \w \W \s \S \t \n
 * \r \xHH; . (any byte but \n); classes [a-z_] [^...] with escapes inside;
 * anchors ^ $; groups ( ); alternation |; quantifiers * + ? {m} {m,} {m,n}.
 * Back-references, look-around and other constructs are refused.
 * On success *out is set (caller frees with rx_free()); on failure *out is
 * NULL, err says what and at which byte offset, and the result is FB_EINVAL
 * (syntax) or FB_ETOOBIG (a limit above). */
enum fb_rc rx_compile(const char *pat, size_t len, unsigned flags, struct rx **out,
                      struct fb_err *err) FB_MUSTCHECK;

/* 1 when the pattern matches anywhere in s[0..n) (search semantics; use ^ and
 * $ to anchor), 0 otherwise. Time O(n * program size); memory fixed at
 * compile time; never fails. */
int rx_match(const struct rx *re, const char *s, size_t n);

/* Number of instructions of the compiled program (for complexity budgets). */
size_t rx_size(const struct rx *re);

/* Accepts NULL. */
void rx_free(struct rx *re);

#endif
