/* Unit tests of the safe regular-expression engine (schema/rx.c): every
 * construct, every refusal with its message, the limits at and past each
 * boundary, pathological patterns, and a differential check against glibc. */
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rx.h"

/* Compile pat (length plen) or fail the test. */
static struct rx *compile_ok(const char *pat, size_t plen, unsigned flags)
{
	struct fb_err err = {{0}};
	struct rx *re = NULL;
	enum fb_rc rc = rx_compile(pat, plen, flags, &re, &err);

	if (rc != FB_OK)
		fail_msg("pattern '%s' refused: %s", pat, err.msg);
	assert_non_null(re);
	return re;
}

struct match_case {
	const char *pat;
	unsigned flags;
	const char *subj;
	size_t slen; /* 0: strlen(subj) */
	int want;
};

static const struct match_case match_cases[] = {
        /* literals and search semantics */
        {"abc", 0, "abc", 0, 1},
        {"abc", 0, "xxabcxx", 0, 1},
        {"abc", 0, "abx", 0, 0},
        {"abc", 0, "", 0, 0},
        {"a", 0, "bbbba", 0, 1},
        {"é", 0, "caf\xc3\xa9", 0, 1},
        {"]", 0, "a]b", 0, 1},
        {"}", 0, "a}b", 0, 1},
        /* escapes */
        {"a\\.b", 0, "a.b", 0, 1},
        {"a\\.b", 0, "axb", 0, 0},
        {"\\\\", 0, "a\\b", 0, 1},
        {"\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\^\\$", 0, "*+?()[]{}|^$", 0, 1},
        {"\\/\\-\\#", 0, "/-#", 0, 1},
        {"\\d", 0, "abc7", 0, 1},
        {"\\d", 0, "abc", 0, 0},
        {"^\\D+$", 0, "abc", 0, 1},
        {"^\\D+$", 0, "ab1", 0, 0},
        {"^\\w+$", 0, "Ab_9", 0, 1},
        {"\\w", 0, "-+ ", 0, 0},
        {"^\\W+$", 0, "-+ ", 0, 1},
        {"\\s", 0, "a\tb", 0, 1},
        {"\\s", 0, "a\vb", 0, 1},
        {"\\s", 0, "ab", 0, 0},
        {"^\\S+$", 0, "ab", 0, 1},
        {"^\\S+$", 0, "a b", 0, 0},
        {"a\\tb", 0, "a\tb", 0, 1},
        {"a\\nb", 0, "a\nb", 0, 1},
        {"a\\rb", 0, "a\rb", 0, 1},
        {"\\x41\\x7a", 0, "Az", 0, 1},
        {"\\x41", 0, "a", 0, 0},
        {"a\\x00b", 0, "a\0b", 3, 1},
        {"\\xff", 0, "\xff", 0, 1},
        /* dot */
        {"a.c", 0, "abc", 0, 1},
        {"a.c", 0, "a\nc", 0, 0},
        {"a.c", 0, "a\0c", 3, 1},
        {"^.$", 0, "\xff", 0, 1},
        /* classes */
        {"[abc]", 0, "xxb", 0, 1},
        {"[abc]", 0, "xyz", 0, 0},
        {"^[a-z_]+$", 0, "snake_case", 0, 1},
        {"^[a-z_]+$", 0, "Snake", 0, 0},
        {"[^abc]", 0, "abc", 0, 0},
        {"[^abc]", 0, "abcd", 0, 1},
        {"[^a]", 0, "\n", 0, 1},
        {"[]a]", 0, "]", 0, 1},
        {"[^]a]", 0, "]a", 0, 0},
        {"[a-]", 0, "-", 0, 1},
        {"[-a]", 0, "-", 0, 1},
        {"[a\\-z]", 0, "-", 0, 1},
        {"[a\\-z]", 0, "b", 0, 0},
        {"[\\d_]", 0, "_", 0, 1},
        {"[\\d_]", 0, "5", 0, 1},
        {"[\\d_]", 0, "x", 0, 0},
        {"[\\]]", 0, "]", 0, 1},
        {"[\\x00-\\x1f]", 0, "ab\x01", 0, 1},
        {"[\\x00-\\x1f]", 0, "ab ", 0, 0},
        {"[.*+?(){}|$^]", 0, "*", 0, 1},
        {"[[]", 0, "[", 0, 1},
        {"[\\s]", 0, "\r", 0, 1},
        {"[\\S]", 0, " ", 0, 0},
        {"[^\\x00-\\xff]", 0, "anything", 0, 0},
        /* anchors */
        {"^abc", 0, "abcd", 0, 1},
        {"^abc", 0, "xabc", 0, 0},
        {"abc$", 0, "xabc", 0, 1},
        {"abc$", 0, "abcx", 0, 0},
        {"abc$", 0, "abc\n", 0, 0},
        {"^$", 0, "", 0, 1},
        {"^$", 0, "a", 0, 0},
        {"^", 0, "", 0, 1},
        {"$", 0, "abc", 0, 1},
        {"a^b", 0, "a^b", 0, 0},
        {"a$b", 0, "a$b", 0, 0},
        {"(^a|b)c", 0, "xbc", 0, 1},
        {"(^a|b)c", 0, "xac", 0, 0},
        {"(^a|^b)c", 0, "bc", 0, 1},
        {"(^a|^b)c", 0, "xbc", 0, 0},
        {"(a$|b)", 0, "ax", 0, 0},
        {"(a$|b)", 0, "xa", 0, 1},
        /* groups and alternation */
        {"(ab)+", 0, "xababx", 0, 1},
        {"^(ab)+$", 0, "ababa", 0, 0},
        {"cat|dog", 0, "hotdog", 0, 1},
        {"cat|dog", 0, "cow", 0, 0},
        {"^(cat|dog|bird)$", 0, "bird", 0, 1},
        {"^(cat|dog|bird)$", 0, "birds", 0, 0},
        {"^a(b|c(d|e))f$", 0, "acef", 0, 1},
        {"^a(b|c(d|e))f$", 0, "acf", 0, 0},
        {"((a))", 0, "a", 0, 1},
        /* quantifiers */
        {"^ab*c$", 0, "ac", 0, 1},
        {"^ab*c$", 0, "abbbc", 0, 1},
        {"^ab+c$", 0, "ac", 0, 0},
        {"^ab+c$", 0, "abbc", 0, 1},
        {"^ab?c$", 0, "ac", 0, 1},
        {"^ab?c$", 0, "abc", 0, 1},
        {"^ab?c$", 0, "abbc", 0, 0},
        {"^a{3}$", 0, "aaa", 0, 1},
        {"^a{3}$", 0, "aa", 0, 0},
        {"^a{3}$", 0, "aaaa", 0, 0},
        {"^a{2,}$", 0, "a", 0, 0},
        {"^a{2,}$", 0, "aa", 0, 1},
        {"^a{2,}$", 0, "aaaaaaa", 0, 1},
        {"^a{0,}$", 0, "", 0, 1},
        {"^a{1,}$", 0, "", 0, 0},
        {"^a{2,4}$", 0, "a", 0, 0},
        {"^a{2,4}$", 0, "aa", 0, 1},
        {"^a{2,4}$", 0, "aaaa", 0, 1},
        {"^a{2,4}$", 0, "aaaaa", 0, 0},
        {"^a{0,2}$", 0, "", 0, 1},
        {"^a{0,2}$", 0, "aaa", 0, 0},
        {"^ba{0}c$", 0, "bc", 0, 1},
        {"^ba{0}c$", 0, "bac", 0, 0},
        {"^(ab){2}$", 0, "abab", 0, 1},
        {"^(a|bc){2,3}$", 0, "abca", 0, 1},
        {"^(a|bc){2,3}$", 0, "a", 0, 0},
        {"^\\d{3}-\\d{4}$", 0, "555-1234", 0, 1},
        {"^\\d{3}-\\d{4}$", 0, "555-123", 0, 0},
        {"^[0-9a-f]{64}$", 0, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 0,
         1},
        {"^.*$", 0, "", 0, 1},
        {"^.*$", 0, "a\nb", 0, 0},
        /* empty loops terminate */
        {"(a*)*", 0, "b", 0, 1},
        {"^(a*)*$", 0, "aaa", 0, 1},
        {"^(a?)+$", 0, "", 0, 1},
        {"^(a*|b)*c$", 0, "abbac", 0, 1},
        {"^(a{0,3}){2,}b$", 0, "aaaaaaab", 0, 1},
        {"((a{0}){5})b", 0, "b", 0, 1},
        /* ICASE */
        {"AbC", RX_ICASE, "xaBcx", 0, 1},
        {"AbC", 0, "xaBcx", 0, 0},
        {"^[a-c]+$", RX_ICASE, "AbC", 0, 1},
        {"^[A-C]+$", RX_ICASE, "abc", 0, 1},
        {"[^a]", RX_ICASE, "A", 0, 0},
        {"[^a]", RX_ICASE, "Ab", 0, 1},
        {"\\x41", RX_ICASE, "a", 0, 1},
        {"^\\d+$", RX_ICASE, "123", 0, 1},
        {"_1", RX_ICASE, "_1", 0, 1},
};

static void test_match_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		const struct match_case *c = &match_cases[i];
		size_t slen = c->slen ? c->slen : strlen(c->subj);
		struct rx *re = compile_ok(c->pat, strlen(c->pat), c->flags);
		int got = rx_match(re, c->subj, slen);

		if (got != c->want)
			fail_msg("case %zu: /%s/ on \"%s\": got %d, want %d", i, c->pat, c->subj,
			         got, c->want);
		rx_free(re);
	}
}

struct refuse_case {
	const char *pat;
	size_t plen; /* 0: strlen(pat) */
	enum fb_rc rc;
	const char *msg;
};

static const struct refuse_case refuse_cases[] = {
        {"", 0, FB_EINVAL, "regex: empty pattern at offset 0"},
        {"a\0b", 3, FB_EINVAL, "regex: NUL byte at offset 1"},
        {"(a)\\1", 0, FB_EINVAL, "regex: back-references are not supported at offset 3"},
        {"a\\9", 0, FB_EINVAL, "regex: back-references are not supported at offset 1"},
        {"(?=a)", 0, FB_EINVAL,
         "regex: '(?' constructs (look-around, flags, non-capturing groups) are not supported at "
         "offset 0"},
        {"x(?!a)", 0, FB_EINVAL,
         "regex: '(?' constructs (look-around, flags, non-capturing groups) are not supported at "
         "offset 1"},
        {"(?<=a)b", 0, FB_EINVAL,
         "regex: '(?' constructs (look-around, flags, non-capturing groups) are not supported at "
         "offset 0"},
        {"(?:a)", 0, FB_EINVAL,
         "regex: '(?' constructs (look-around, flags, non-capturing groups) are not supported at "
         "offset 0"},
        {"(?i)a", 0, FB_EINVAL,
         "regex: '(?' constructs (look-around, flags, non-capturing groups) are not supported at "
         "offset 0"},
        {"a*?", 0, FB_EINVAL,
         "regex: lazy, possessive or stacked quantifier at offset 2 (use a group)"},
        {"a+?", 0, FB_EINVAL,
         "regex: lazy, possessive or stacked quantifier at offset 2 (use a group)"},
        {"a??", 0, FB_EINVAL,
         "regex: lazy, possessive or stacked quantifier at offset 2 (use a group)"},
        {"a*+", 0, FB_EINVAL,
         "regex: lazy, possessive or stacked quantifier at offset 2 (use a group)"},
        {"a++", 0, FB_EINVAL,
         "regex: lazy, possessive or stacked quantifier at offset 2 (use a group)"},
        {"a**", 0, FB_EINVAL,
         "regex: lazy, possessive or stacked quantifier at offset 2 (use a group)"},
        {"a{2}?", 0, FB_EINVAL,
         "regex: lazy, possessive or stacked quantifier at offset 4 (use a group)"},
        {"a{2}{3}", 0, FB_EINVAL,
         "regex: lazy, possessive or stacked quantifier at offset 4 (use a group)"},
        {"(a", 0, FB_EINVAL, "regex: missing ')' for group opened at offset 0"},
        {"x((a)", 0, FB_EINVAL, "regex: missing ')' for group opened at offset 1"},
        {"a)", 0, FB_EINVAL, "regex: unmatched ')' at offset 1"},
        {")", 0, FB_EINVAL, "regex: unmatched ')' at offset 0"},
        {"(a))", 0, FB_EINVAL, "regex: unmatched ')' at offset 3"},
        {"[a", 0, FB_EINVAL, "regex: unterminated class '[' at offset 0"},
        {"x[^", 0, FB_EINVAL, "regex: unterminated class '[' at offset 1"},
        {"[]", 0, FB_EINVAL, "regex: unterminated class '[' at offset 0"},
        {"[a\\]", 0, FB_EINVAL, "regex: unterminated class '[' at offset 0"},
        {"*a", 0, FB_EINVAL, "regex: nothing to repeat at offset 0"},
        {"+", 0, FB_EINVAL, "regex: nothing to repeat at offset 0"},
        {"a|?", 0, FB_EINVAL, "regex: nothing to repeat at offset 2"},
        {"(*a)", 0, FB_EINVAL, "regex: nothing to repeat at offset 1"},
        {"{2}", 0, FB_EINVAL, "regex: nothing to repeat at offset 0"},
        {"^*", 0, FB_EINVAL, "regex: nothing to repeat at offset 1"},
        {"a$+", 0, FB_EINVAL, "regex: nothing to repeat at offset 2"},
        {"a{3,2}", 0, FB_EINVAL, "regex: repetition {m,n} with m > n at offset 1"},
        {"a{", 0, FB_EINVAL,
         "regex: malformed repetition (expected {m}, {m,} or {m,n}) at offset 1"},
        {"a{}", 0, FB_EINVAL,
         "regex: malformed repetition (expected {m}, {m,} or {m,n}) at offset 1"},
        {"a{,3}", 0, FB_EINVAL,
         "regex: malformed repetition (expected {m}, {m,} or {m,n}) at offset 1"},
        {"a{1,x}", 0, FB_EINVAL,
         "regex: malformed repetition (expected {m}, {m,} or {m,n}) at offset 1"},
        {"a{1 }", 0, FB_EINVAL,
         "regex: malformed repetition (expected {m}, {m,} or {m,n}) at offset 1"},
        {"a{2", 0, FB_EINVAL,
         "regex: malformed repetition (expected {m}, {m,} or {m,n}) at offset 1"},
        {"{abc", 0, FB_EINVAL,
         "regex: malformed repetition (expected {m}, {m,} or {m,n}) at offset 0"},
        {"a|", 0, FB_EINVAL, "regex: empty alternative at offset 2"},
        {"|a", 0, FB_EINVAL, "regex: empty alternative at offset 0"},
        {"a||b", 0, FB_EINVAL, "regex: empty alternative at offset 2"},
        {"(a|)", 0, FB_EINVAL, "regex: empty alternative at offset 3"},
        {"()", 0, FB_EINVAL, "regex: empty group at offset 0"},
        {"a()b", 0, FB_EINVAL, "regex: empty group at offset 1"},
        {"[z-a]", 0, FB_EINVAL, "regex: inverted range in class at offset 1"},
        {"[\\x20-\\x10]", 0, FB_EINVAL, "regex: inverted range in class at offset 1"},
        {"[\\d-z]", 0, FB_EINVAL, "regex: class escape cannot start a range at offset 1"},
        {"[a-\\w]", 0, FB_EINVAL, "regex: class escape cannot end a range at offset 3"},
        {"[[:alpha:]]", 0, FB_EINVAL,
         "regex: POSIX class syntax '[:' is not supported at offset 1"},
        {"[[=a=]]", 0, FB_EINVAL, "regex: POSIX class syntax '[=' is not supported at offset 1"},
        {"[a-[.z.]]", 0, FB_EINVAL, "regex: POSIX class syntax '[.' is not supported at offset 3"},
        {"a\\", 0, FB_EINVAL, "regex: trailing backslash at offset 1"},
        {"[a\\", 0, FB_EINVAL, "regex: trailing backslash at offset 2"},
        {"\\x4", 0, FB_EINVAL, "regex: \\x needs two hex digits at offset 0"},
        {"\\xg0", 0, FB_EINVAL, "regex: \\x needs two hex digits at offset 0"},
        {"\\b", 0, FB_EINVAL, "regex: unsupported escape '\\b' at offset 0"},
        {"a\\B", 0, FB_EINVAL, "regex: unsupported escape '\\B' at offset 1"},
        {"\\A", 0, FB_EINVAL, "regex: unsupported escape '\\A' at offset 0"},
        {"\\z", 0, FB_EINVAL, "regex: unsupported escape '\\z' at offset 0"},
        {"\\p{L}", 0, FB_EINVAL, "regex: unsupported escape '\\p' at offset 0"},
        {"\\0", 0, FB_EINVAL, "regex: unsupported escape '\\0' at offset 0"},
        {"\\ ", 0, FB_EINVAL, "regex: unsupported escape of byte 0x20 at offset 0"},
        {"\\\xc3\xa9", 0, FB_EINVAL, "regex: unsupported escape of byte 0xc3 at offset 0"},
        {"[\\b]", 0, FB_EINVAL, "regex: unsupported escape '\\b' at offset 1"},
        {"a{256}", 0, FB_ETOOBIG, "regex: repetition count over 255 at offset 2"},
        {"a{1,256}", 0, FB_ETOOBIG, "regex: repetition count over 255 at offset 4"},
        {"a{99999999999999999999}", 0, FB_ETOOBIG, "regex: repetition count over 255 at offset 2"},
        {"(a{255}){255}", 0, FB_ETOOBIG, "regex: program over 4096 instructions at offset 8"},
        /* Four pieces of 1275 instructions: the fourth one is blamed. */
        {"((a*)*){255}((a*)*){255}((a*)*){255}((a*)*){255}", 0, FB_ETOOBIG,
         "regex: program over 4096 instructions at offset 36"},
        /* Nested copies: the inner count is fine, the outer one is blamed. */
        {"((a{16}){16}){16}", 0, FB_ETOOBIG, "regex: program over 4096 instructions at offset 13"},
        /* Alternatives add up: blamed at the branch that crosses the limit. */
        {"a{255}b{255}c{255}d{255}e{255}f{255}g{255}h{255}i{255}j{255}k{255}l{255}m{255}n{255}o{"
         "255}p{255}|xxxxxxxxxxxxxx",
         0, FB_ETOOBIG, "regex: program over 4096 instructions at offset 97"},
};

static void test_refusals(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(refuse_cases) / sizeof(refuse_cases[0]); i++) {
		const struct refuse_case *c = &refuse_cases[i];
		size_t plen = c->plen ? c->plen : strlen(c->pat);
		struct fb_err err = {{0}};
		struct rx *re = (struct rx *)&err; /* must be reset to NULL */
		enum fb_rc rc = rx_compile(c->pat, plen, 0, &re, &err);

		if (rc != c->rc || strcmp(err.msg, c->msg) != 0)
			fail_msg("case %zu /%s/: got rc %d \"%s\", want rc %d \"%s\"", i, c->pat,
			         (int)rc, err.msg, (int)c->rc, c->msg);
		assert_null(re);
	}
}

/* NULL err is accepted on failure; unknown flags are refused. */
static void test_null_err_and_flags(void **state)
{
	struct fb_err err = {{0}};
	struct rx *re = NULL;

	(void)state;
	assert_int_equal(rx_compile("(", 1, 0, &re, NULL), FB_EINVAL);
	assert_null(re);
	assert_int_equal(rx_compile("a", 1, 0x80, &re, &err), FB_EINVAL);
	assert_null(re);
	assert_string_equal(err.msg, "regex: unknown flags 0x80 at offset 0");
	assert_int_equal(rx_match(NULL, "a", 1), 0);
	assert_int_equal(rx_size(NULL), 0);
	rx_free(NULL);
	/* Not NUL-terminated: only pat[0..len) is read. */
	re = compile_ok("abcdef", 3, 0);
	assert_int_equal(rx_match(re, "abc", 3), 1);
	assert_int_equal(rx_match(re, "abd", 3), 0);
	rx_free(re);
}

/* Build c repeated n times (caller frees). */
static char *repeat_char(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_limit_pattern_length(void **state)
{
	struct fb_err err = {{0}};
	struct rx *re = NULL;
	char *pat = repeat_char('a', RX_MAX_PATTERN + 1);

	(void)state;
	re = compile_ok(pat, RX_MAX_PATTERN, 0);
	assert_int_equal(rx_size(re), RX_MAX_PATTERN + 1);
	assert_int_equal(rx_match(re, pat, RX_MAX_PATTERN), 1);
	assert_int_equal(rx_match(re, pat, RX_MAX_PATTERN - 1), 0);
	rx_free(re);
	re = NULL;
	assert_int_equal(rx_compile(pat, RX_MAX_PATTERN + 1, 0, &re, &err), FB_ETOOBIG);
	assert_null(re);
	assert_string_equal(err.msg, "regex: pattern longer than 1024 bytes at offset 1024");
	free(pat);
}

static void test_limit_states(void **state)
{
	/* (a{255}){16} is 4080 instructions; 15 more bytes and the final match
	 * make exactly RX_MAX_STATES. */
	const char *at = "(a{255}){16}bbbbbbbbbbbbbbb";
	const char *past = "(a{255}){16}bbbbbbbbbbbbbbbb";
	struct fb_err err = {{0}};
	struct rx *re = NULL;
	char *subj;

	(void)state;
	re = compile_ok(at, strlen(at), 0);
	assert_int_equal(rx_size(re), RX_MAX_STATES);
	subj = malloc(4080 + 16 + 1);
	assert_non_null(subj);
	memset(subj, 'a', 4080);
	memset(subj + 4080, 'b', 15);
	subj[4095] = '\0';
	assert_int_equal(rx_match(re, subj, 4095), 1);
	subj[0] = 'c'; /* only 4079 a's left */
	assert_int_equal(rx_match(re, subj, 4095), 0);
	free(subj);
	rx_free(re);
	re = NULL;
	assert_int_equal(rx_compile(past, strlen(past), 0, &re, &err), FB_ETOOBIG);
	assert_null(re);
	assert_string_equal(err.msg, "regex: program over 4096 instructions at offset 27");

	/* Unbounded forms: x{255,} is 256 instructions, x* three. */
	re = compile_ok("a{255,}", 7, 0);
	assert_int_equal(rx_size(re), 257);
	rx_free(re);
	re = compile_ok("a*", 2, 0);
	assert_int_equal(rx_size(re), 4);
	rx_free(re);
	/* 16 * 255 + 2 + 13 + match: exactly at the limit with a branch. */
	{
		const char *alt = "a{255}b{255}c{255}d{255}e{255}f{255}g{255}h{255}i{255}j{255}k{"
		                  "255}l{255}m{255}n{255}o{255}p{255}|xxxxxxxxxxxxx";

		re = compile_ok(alt, strlen(alt), 0);
		assert_int_equal(rx_size(re), RX_MAX_STATES);
		assert_int_equal(rx_match(re, "-xxxxxxxxxxxxx-", 15), 1);
		assert_int_equal(rx_match(re, "-xxxxxxxxxxxx-", 14), 0);
		rx_free(re);
	}
	/* Alternation costs two instructions per extra branch. */
	re = compile_ok("a|b|c", 5, 0);
	assert_int_equal(rx_size(re), 3 + 4 + 1);
	rx_free(re);
}

static void test_limit_repeat(void **state)
{
	struct fb_err err = {{0}};
	struct rx *re = NULL;
	char *subj = repeat_char('a', 256);

	(void)state;
	re = compile_ok("^a{255}$", 8, 0);
	assert_int_equal(rx_match(re, subj, 255), 1);
	assert_int_equal(rx_match(re, subj, 254), 0);
	assert_int_equal(rx_match(re, subj, 256), 0);
	rx_free(re);
	re = compile_ok("^a{0,255}$", 10, 0);
	assert_int_equal(rx_match(re, subj, 255), 1);
	assert_int_equal(rx_match(re, subj, 256), 0);
	rx_free(re);
	re = NULL;
	assert_int_equal(rx_compile("a{0,256}", 8, 0, &re, &err), FB_ETOOBIG);
	assert_string_equal(err.msg, "regex: repetition count over 255 at offset 4");
	assert_int_equal(rx_compile("a{256,}", 7, 0, &re, &err), FB_ETOOBIG);
	assert_string_equal(err.msg, "regex: repetition count over 255 at offset 2");
	assert_null(re);
	free(subj);
}

static void test_limit_depth(void **state)
{
	char pat[2 * (RX_MAX_DEPTH + 1) + 2];
	struct fb_err err = {{0}};
	struct rx *re = NULL;
	size_t n = 0;

	(void)state;
	for (int i = 0; i < RX_MAX_DEPTH; i++)
		pat[n++] = '(';
	pat[n++] = 'a';
	for (int i = 0; i < RX_MAX_DEPTH; i++)
		pat[n++] = ')';
	re = compile_ok(pat, n, 0);
	assert_int_equal(rx_match(re, "xa", 2), 1);
	rx_free(re);
	re = NULL;

	n = 0;
	for (int i = 0; i < RX_MAX_DEPTH + 1; i++)
		pat[n++] = '(';
	pat[n++] = 'a';
	for (int i = 0; i < RX_MAX_DEPTH + 1; i++)
		pat[n++] = ')';
	assert_int_equal(rx_compile(pat, n, 0, &re, &err), FB_ETOOBIG);
	assert_null(re);
	assert_string_equal(err.msg, "regex: groups nested deeper than 32 at offset 32");

	/* A thousand '(' is refused at the depth limit, not by the stack. */
	{
		char *deep = repeat_char('(', RX_MAX_PATTERN);

		assert_int_equal(rx_compile(deep, RX_MAX_PATTERN, 0, &re, &err), FB_ETOOBIG);
		assert_string_equal(err.msg, "regex: groups nested deeper than 32 at offset 32");
		free(deep);
	}
}

/* Patterns that take exponential time in backtracking engines finish here
 * with the right answer on 10,000 'a's. */
static void test_pathological(void **state)
{
	static const struct {
		const char *pat;
		int want;
	} cases[] = {
	        {"(a*)*b", 0},
	        {"(a|a)*b", 0},
	        {"(a+)+$", 1},
	        {"^(a+)+b", 0},
	        {"(a|aa)+c", 0},
	        {"(a*)*$", 1},
	        {"^(a?){255}a{255}$", 0},
	        {"(.*a){20}b", 0},
	        {"^(\\w+\\s?)*$", 1},
	        {"(a{0,255}){4}b", 0},
	};
	const size_t n = 10000;
	char *subj = repeat_char('a', n);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rx *re = compile_ok(cases[i].pat, strlen(cases[i].pat), 0);

		if (rx_match(re, subj, n) != cases[i].want)
			fail_msg("/%s/ on 10000 a's: want %d", cases[i].pat, cases[i].want);
		rx_free(re);
	}
	free(subj);
}

/* On simple patterns where POSIX ERE and rx agree (no \n in subjects, no
 * escapes glibc treats differently), rx_match equals regexec(REG_EXTENDED). */
static void test_differential_glibc(void **state)
{
	static const char *pats[] = {
	        "abc",           "a|b",      "^ab*c$",        "[a-c]+", "x(ab|cd)+y",
	        "a{2,3}",        "^a{2,3}$", "[^0-9]",        "a.c",    "colou?r",
	        "(foo|bar)baz$", "^$",       "^(a|b)*$",      "b+a+",   "^[a-z]{2}[0-9]?$",
	        "(ab){2,}",      "a(b|c)?d", "^.*x.*$",       "[-a]",   "c$|^a",
	        "^(aa|a)(a|b)$", "[.][*]",   "^(a{0,2}b){2}", "z{0}y",  "^[^a-c]*$",
	};
	static const char *subjs[] = {
	        "",     "a",     "b",      "abc",    "aabbcc",  "xabcdy", "xaby",  "aaa",
	        "aaaa", "color", "colour", "foobaz", "barbazx", "ab",     "abab",  "9",
	        "ab1",  "axc",   "abd",    "ad",     "acd",     "x",      "-",     "cab",
	        "aab",  ".*",    "babab",  "y",      "dddd",    "bbaa",   "abbbc", "ababab",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
		struct rx *re = compile_ok(pats[i], strlen(pats[i]), 0);
		regex_t pre;

		assert_int_equal(regcomp(&pre, pats[i], REG_EXTENDED | REG_NOSUB), 0);
		for (size_t j = 0; j < sizeof(subjs) / sizeof(subjs[0]); j++) {
			int want = regexec(&pre, subjs[j], 0, NULL, 0) == 0;
			int got = rx_match(re, subjs[j], strlen(subjs[j]));

			if (got != want)
				fail_msg("/%s/ on \"%s\": rx %d, glibc %d", pats[i], subjs[j], got,
				         want);
		}
		regfree(&pre);
		rx_free(re);
	}
}

/* Several threads match on one compiled struct rx at once. */
struct thread_arg {
	const struct rx *re;
	int bad;
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	static const char yes[] = "xx user-1234-admin yy";
	static const char no[] = "xx user-12a4-admin yy";

	for (int i = 0; i < 2000; i++) {
		if (rx_match(a->re, yes, sizeof(yes) - 1) != 1)
			a->bad++;
		if (rx_match(a->re, no, sizeof(no) - 1) != 0)
			a->bad++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	const char *pat = "user-\\d+-(admin|root)";
	struct rx *re = compile_ok(pat, strlen(pat), 0);
	struct thread_arg args[4];
	pthread_t tids[4];

	(void)state;
	for (int i = 0; i < 4; i++) {
		args[i].re = re;
		args[i].bad = 0;
		assert_int_equal(pthread_create(&tids[i], NULL, thread_main, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(tids[i], NULL), 0);
		assert_int_equal(args[i].bad, 0);
	}
	rx_free(re);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_match_table),
	        cmocka_unit_test(test_refusals),
	        cmocka_unit_test(test_null_err_and_flags),
	        cmocka_unit_test(test_limit_pattern_length),
	        cmocka_unit_test(test_limit_states),
	        cmocka_unit_test(test_limit_repeat),
	        cmocka_unit_test(test_limit_depth),
	        cmocka_unit_test(test_pathological),
	        cmocka_unit_test(test_differential_glibc),
	        cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
