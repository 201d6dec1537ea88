/* The one duration syntax of the command-line tools (common/fb.c):
 * fb_parse_duration_ms and fb_duration_str, table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "fb.h"

static void test_parse_good(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int64_t ms;
	} t[] = {{"30s", 30000},    {"5m", 300000},   {"2h", 7200000}, {"1d", 86400000},
	         {"90", 90000},     {"250ms", 250},   {"0", 0},        {"0s", 0},
	         {"7d", 604800000}, {"1000ms", 1000}, {"60m", 3600000}};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int64_t v = -1;
		struct fb_err err = {{0}};
		assert_int_equal(fb_parse_duration_ms(t[i].in, 0, INT64_MAX / 2, &v, &err), FB_OK);
		assert_int_equal(v, t[i].ms);
	}
}

static void test_parse_bad(void **state)
{
	(void)state;
	static const char *const junk[] = {"",
	                                   "s",
	                                   "5 m",
	                                   "5min",
	                                   "-5s",
	                                   "+5s",
	                                   "1.5h",
	                                   "5M",
	                                   "5mss",
	                                   "h5",
	                                   "99999999999999999999d",
	                                   "0x10"};
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
		int64_t v = 42;
		struct fb_err err = {{0}};
		enum fb_rc rc = fb_parse_duration_ms(junk[i], 0, INT64_MAX / 2, &v, &err);
		if (rc == FB_OK)
			fail_msg("\"%s\" was accepted as %lld ms", junk[i], (long long)v);
		assert_int_equal(v, 42); /* untouched on failure */
		assert_non_null(strstr(err.msg, "duration") ? err.msg : strstr(err.msg, "range"));
	}
	/* in range or not, named in the same syntax */
	int64_t v;
	struct fb_err err = {{0}};
	assert_int_equal(fb_parse_duration_ms("1000", 100, 60000, &v, &err), FB_ETOOBIG);
	assert_string_equal(err.msg, "1000 is out of range: 100ms to 1m");
	assert_int_equal(fb_parse_duration_ms("50ms", 100, 60000, &v, &err), FB_ETOOBIG);
	assert_int_equal(fb_parse_duration_ms("1m", 100, 60000, &v, &err), FB_OK);
	assert_int_equal(v, 60000);
	assert_int_equal(fb_parse_duration_ms("5m", 100, 60000, &v, NULL), FB_ETOOBIG);
}

static void test_format(void **state)
{
	(void)state;
	static const struct {
		int64_t ms;
		const char *out;
	} t[] = {{0, "0s"},        {250, "250ms"},       {1000, "1s"},     {90000, "90s"},
	         {300000, "5m"},   {7200000, "2h"},      {86400000, "1d"}, {604800000, "7d"},
	         {1500, "1500ms"}, {31536000000, "365d"}};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char buf[32];
		assert_string_equal(fb_duration_str(t[i].ms, buf, sizeof buf), t[i].out);
		int64_t back;
		assert_int_equal(fb_parse_duration_ms(buf, 0, INT64_MAX / 2, &back, NULL), FB_OK);
		assert_int_equal(back, t[i].ms);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_good),
	        cmocka_unit_test(test_parse_bad),
	        cmocka_unit_test(test_format),
	};
	return cmocka_run_group_tests_name("duration", tests, NULL, NULL);
}
