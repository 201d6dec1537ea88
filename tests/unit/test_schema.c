/* Unit tests of the channel-file parser/validator and text form: the
 * table-driven cases of tests/data/schema/cases.txt (one invalid file per
 * validation rule, Channel File 291 among them), round trips, registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cf_internal.h"

#define DATA "tests/data/schema/"

static struct cf_registry *reg;

static int setup(void **state)
{
	struct fb_err err = {{0}};
	if (cf_registry_load_dir("schema/templates", &reg, &err) != FB_OK) {
		fprintf(stderr, "registry: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	cf_registry_free(reg);
	return 0;
}

/* Compile a JSON file of tests/data/schema (no registry check). */
static unsigned char *compile_file(const char *rel, size_t *len)
{
	char path[512];
	unsigned char *text = NULL, *bin = NULL;
	size_t n = 0;
	struct fb_err err = {{0}};
	snprintf(path, sizeof path, DATA "%s", rel);
	assert_int_equal(fb_file_read(path, CF_MAX_JSON, &text, &n), FB_OK);
	if (cf_compile_json(NULL, (char *)text, n, &bin, len, &err) != FB_OK)
		fail_msg("%s: %s", path, err.msg);
	free(text);
	return bin;
}

/* Apply one mutation token to *buf (may reallocate). */
static void mutate(unsigned char **buf, size_t *len, const char *op)
{
	unsigned long off = 0, n = 0;
	char hex[256] = "";
	unsigned char bytes[128];
	if (sscanf(op, "set:%lu:%255s", &off, hex) == 2 ||
	    sscanf(op, "xor:%lu:%255s", &off, hex) == 2) {
		size_t bl = strlen(hex) / 2;
		assert_int_equal(fb_hex_decode(hex, bytes, bl), FB_OK);
		assert_true(off + bl <= *len);
		for (size_t k = 0; k < bl; k++)
			(*buf)[off + k] = op[0] == 's'
			                          ? bytes[k]
			                          : (unsigned char)((*buf)[off + k] ^ bytes[k]);
	} else if (sscanf(op, "u32:%lu:%lu", &off, &n) == 2) {
		assert_true(off + 4 <= *len);
		cf_put32(*buf + off, (uint32_t)n);
	} else if (sscanf(op, "append:%255s", hex) == 1) {
		size_t bl = strlen(hex) / 2;
		assert_int_equal(fb_hex_decode(hex, bytes, bl), FB_OK);
		*buf = realloc(*buf, *len + bl);
		assert_non_null(*buf);
		memcpy(*buf + *len, bytes, bl);
		*len += bl;
	} else if (sscanf(op, "grow:%lu", &n) == 1) {
		assert_true(n >= *len);
		*buf = realloc(*buf, n);
		assert_non_null(*buf);
		memset(*buf + *len, 0, n - *len);
		*len = n;
	} else if (sscanf(op, "truncate:%lu", &n) == 1) {
		assert_true(n <= *len);
		*len = n;
	} else if (strcmp(op, "fixlen") == 0) {
		assert_true(*len >= CF_HEADER_LEN);
		cf_put32(*buf + 16, (uint32_t)*len);
	} else if (strcmp(op, "fixsum") == 0) {
		assert_true(*len >= CF_HEADER_LEN);
		cf_checksum(*buf, *len, *buf + CF_CHECKSUM_OFF);
	} else {
		fail_msg("unknown mutation \"%s\"", op);
	}
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

/* Every row of cases.txt: compile, mutate, parse, compare result and message. */
static void test_cases_table(void **state)
{
	FILE *fp = fopen(DATA "cases.txt", "r");
	char line[2048];
	int rows = 0, invalid_rows = 0, cf291 = 0;
	assert_non_null(fp);
	while (fgets(line, sizeof line, fp)) {
		char *cols[4], *p = line, *save = NULL;
		if (line[0] == '#' || trim(line)[0] == '\0')
			continue;
		for (int k = 0; k < 4; k++) {
			char *bar = k < 3 ? strchr(p, '|') : NULL;
			if (k < 3 && !bar)
				fail_msg("cases.txt: malformed row: %s", line);
			if (bar)
				*bar = '\0';
			cols[k] = trim(p);
			p = bar ? bar + 1 : p;
		}
		size_t len = 0;
		unsigned char *buf = compile_file(cols[0], &len);
		for (char *op = strtok_r(cols[1], " ", &save); op; op = strtok_r(NULL, " ", &save))
			mutate(&buf, &len, op);
		struct cf_file *f = NULL;
		struct fb_err err = {{0}};
		enum fb_rc rc = cf_parse(reg, buf, len, &f, &err);
		enum fb_rc want = strcmp(cols[3], "ok") == 0       ? FB_OK
		                  : strcmp(cols[3], "toobig") == 0 ? FB_ETOOBIG
		                                                   : FB_EFORMAT;
		if (rc != want)
			fail_msg("%s [%s]: expected %s, got %s: %s", cols[0], cols[1],
			         fb_rc_str(want), fb_rc_str(rc), err.msg);
		if (want == FB_OK) {
			assert_non_null(f);
		} else {
			assert_null(f);
			invalid_rows++;
			char *save2 = NULL;
			for (char *e = strtok_r(cols[2], ";", &save2); e;
			     e = strtok_r(NULL, ";", &save2)) {
				if (!strstr(err.msg, e))
					fail_msg("%s [%s]: message \"%s\" lacks \"%s\"", cols[0],
					         cols[1], err.msg, e);
			}
			cf291 += strcmp(cols[0], "invalid/cf291.json") == 0;
		}
		cf_file_free(f);
		free(buf);
		rows++;
	}
	fclose(fp);
	assert_true(rows >= 40);
	assert_true(invalid_rows >= 34);
	assert_int_equal(cf291, 1);
	printf("cases.txt: %d rows\n", rows);
}

/* The CF291 shape in detail: the message names the instance, expected 20 and
 * found 21; the same instance with 21 fields is valid against v2. */
static void test_cf291(void **state)
{
	size_t len;
	struct cf_file *f = NULL;
	struct fb_err err = {{0}};
	unsigned char *buf = compile_file("invalid/cf291.json", &len);
	assert_int_equal(cf_parse(reg, buf, len, &f, &err), FB_EFORMAT);
	assert_null(f);
	assert_non_null(strstr(err.msg, "instance 0 (id 291)"));
	assert_non_null(strstr(err.msg, "expected 20, found 21"));
	assert_non_null(strstr(err.msg, "at byte 50"));
	buf[48] = 2; /* template_version 1 -> 2 (21 fields) */
	cf_checksum(buf, len, buf + CF_CHECKSUM_OFF);
	assert_int_equal(cf_parse(reg, buf, len, &f, &err), FB_OK);
	size_t n;
	const struct cf_tpl_ref *r = cf_file_templates(f, &n);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].id, 7);
	assert_int_equal(r[0].version, 2);
	cf_file_free(f);
	free(buf);
}

/* The regexes of one file together stay within CF_MAX_FILE_STATES. */
static void test_file_regex_total(void **state)
{
	struct fb_buf b;
	unsigned char *bin = NULL;
	size_t len;
	struct cf_file *f = NULL;
	struct fb_err err = {{0}};
	fb_buf_init(&b, 1u << 22);
	assert_int_equal(fb_buf_addstr(&b, "{\"format\":1,\"channel\":1,\"content_version\":1,"
	                                   "\"instances\":["),
	                 FB_OK);
	for (int k = 1; k <= 300; k++) /* each about 970 states, under max_states 1024 */
		assert_int_equal(
		        fb_buf_printf(&b,
		                      "%s{\"id\":%d,\"template\":1,\"template_version\":1,"
		                      "\"fields\":[{\"string\":\"r\"},{\"int\":1},{\"regex\":"
		                      "\"[a-z]{255}[0-9]{255}[a-z]{255}[0-9]{200}\"},null,"
		                      "null,null]}",
		                      k > 1 ? "," : "", k),
		        FB_OK);
	assert_int_equal(fb_buf_addstr(&b, "]}"), FB_OK);
	assert_int_equal(cf_compile_json(NULL, b.data, b.len, &bin, &len, &err), FB_OK);
	assert_int_equal(cf_parse(reg, bin, len, &f, &err), FB_EFORMAT);
	assert_null(f);
	assert_non_null(strstr(err.msg, "field 2 \"process_name\""));
	assert_non_null(strstr(err.msg, "expected at most 262144 states in all regexes"));
	free(bin);
	fb_buf_cleanup(&b);
}

static void test_accessors(void **state)
{
	size_t len;
	struct cf_file *f = NULL;
	struct fb_err err = {{0}};
	unsigned char *buf = compile_file("valid/mixed_versions.json", &len);
	assert_int_equal(cf_parse(reg, buf, len, &f, &err), FB_OK);
	assert_int_equal(cf_file_channel(f), 291);
	assert_int_equal(cf_file_content_version(f), 9);
	assert_int_equal(cf_file_instance_count(f), 3);
	json_t *used = cf_file_templates_json(f);
	json_t *want = json_loads("[{\"id\":1,\"version\":1},{\"id\":7,\"version\":1},"
	                          "{\"id\":7,\"version\":2}]",
	                          0, NULL);
	assert_true(json_equal(used, want));
	json_decref(want);
	json_decref(used);
	cf_file_free(f);
	free(buf);
}

/* JSON -> binary -> JSON -> binary gives the same JSON and the same bytes. */
static void test_round_trip(void **state)
{
	static const char *const files[] = {"valid/basic.json",         "valid/empty.json",
	                                    "valid/hex_string.json",    "valid/named_pipe_v1.json",
	                                    "valid/named_pipe_v2.json", "valid/mixed_versions.json",
	                                    "invalid/cf291.json"};
	for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
		char path[256];
		unsigned char *text = NULL, *bin = NULL, *bin2 = NULL;
		size_t n, len, len2;
		char *out = NULL;
		struct fb_err err = {{0}};
		snprintf(path, sizeof path, DATA "%s", files[k]);
		assert_int_equal(fb_file_read(path, CF_MAX_JSON, &text, &n), FB_OK);
		assert_int_equal(cf_compile_json(NULL, (char *)text, n, &bin, &len, &err), FB_OK);
		assert_int_equal(cf_decompile_json(NULL, bin, len, &out, &err), FB_OK);
		json_t *a = json_loadb((char *)text, n, 0, NULL), *b = json_loads(out, 0, NULL);
		if (!json_equal(a, b))
			fail_msg("%s: decompiled JSON differs:\n%s", files[k], out);
		assert_int_equal(cf_compile_json(NULL, out, strlen(out), &bin2, &len2, &err),
		                 FB_OK);
		assert_int_equal(len, len2);
		assert_memory_equal(bin, bin2, len);
		json_decref(a);
		json_decref(b);
		free(text);
		free(bin);
		free(bin2);
		free(out);
	}
}

/* With a registry, decompile annotates template and field names, and the
 * annotated JSON compiles back to the same bytes. */
static void test_round_trip_named(void **state)
{
	static const char *const files[] = {"valid/basic.json", "valid/mixed_versions.json",
	                                    "invalid/cf291.json", "invalid/unknown_template.json"};
	for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
		size_t len, len2;
		unsigned char *bin = compile_file(files[k], &len), *bin2 = NULL;
		char *out = NULL;
		struct fb_err err = {{0}};
		assert_int_equal(cf_decompile_json(reg, bin, len, &out, &err), FB_OK);
		if (k < 3) {
			assert_non_null(strstr(out, "\"name\": \"rule_name\""));
			assert_non_null(strstr(out, "\"template_name\": \""));
		}
		if (k == 1)
			assert_non_null(strstr(
			        out, "\"name\": \"parent_name\",\n          \"absent\": true"));
		if (k == 2) /* the 21st field has no name in a 20-field template */
			assert_non_null(strstr(out, "null\n"));
		assert_int_equal(cf_compile_json(reg, out, strlen(out), &bin2, &len2, &err), FB_OK);
		assert_int_equal(len, len2);
		assert_memory_equal(bin, bin2, len);
		free(bin);
		free(bin2);
		free(out);
	}
}

/* Name annotations are checked against the registry when one is given. */
static void test_compile_names(void **state)
{
	const char *pre = "{\"format\":1,\"channel\":1,\"content_version\":1,\"instances\":[{"
	                  "\"id\":1,\"template\":1,\"template_version\":1,";
	char buf[1024];
	unsigned char *bin = NULL;
	size_t len;
	struct fb_err err = {{0}};
	/* fields in the right places: fine */
	snprintf(buf, sizeof buf,
	         "%s\"template_name\":\"process_rule\",\"fields\":[{\"name\":\"rule_name\","
	         "\"string\":\"r\"},{\"name\":\"action\",\"int\":1},{\"name\":\"process_name\","
	         "\"regex\":\"x\"},{\"name\":\"command_line\",\"absent\":true},null,null]}]}",
	         pre);
	assert_int_equal(cf_compile_json(reg, buf, strlen(buf), &bin, &len, &err), FB_OK);
	struct cf_file *f = NULL;
	assert_int_equal(cf_parse(reg, bin, len, &f, &err), FB_OK);
	cf_file_free(f);
	free(bin);
	bin = NULL;
	/* two fields swapped */
	snprintf(buf, sizeof buf,
	         "%s\"fields\":[{\"name\":\"action\",\"int\":1},{\"name\":\"rule_name\","
	         "\"string\":\"r\"}]}]}",
	         pre);
	assert_int_equal(cf_compile_json(reg, buf, strlen(buf), &bin, &len, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "instance 0: field 0: named \"action\", but field 0 of "
	                                "template 1 \"process_rule\" v1 is \"rule_name\""));
	/* wrong template name */
	snprintf(buf, sizeof buf, "%s\"template_name\":\"named_pipe\",\"fields\":[]}]}", pre);
	assert_int_equal(cf_compile_json(reg, buf, strlen(buf), &bin, &len, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "template 1 v1 is \"process_rule\""));
	/* a named field past the template's end (the CF291 shape, caught at compile) */
	snprintf(buf, sizeof buf,
	         "%s\"fields\":[null,null,null,null,null,null,{\"name\":\"extra\",\"int\":1}]}]}",
	         pre);
	assert_int_equal(cf_compile_json(reg, buf, strlen(buf), &bin, &len, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "field 6: named \"extra\", but template 1 "
	                                "\"process_rule\" v1 declares only 6 fields"));
	/* without a registry names are not checked */
	assert_int_equal(cf_compile_json(NULL, buf, strlen(buf), &bin, &len, &err), FB_OK);
	free(bin);
	bin = NULL;
	/* "absent" must be alone */
	snprintf(buf, sizeof buf, "%s\"fields\":[{\"absent\":true,\"int\":1}]}]}", pre);
	assert_int_equal(cf_compile_json(reg, buf, strlen(buf), &bin, &len, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "\"absent\""));
}

static void expect_compile_error(const char *json, const char *needle)
{
	unsigned char *bin = NULL;
	size_t len = 0;
	struct fb_err err = {{0}};
	enum fb_rc rc = cf_compile_json(NULL, json, strlen(json), &bin, &len, &err);
	assert_int_not_equal(rc, FB_OK);
	assert_null(bin);
	if (!strstr(err.msg, needle))
		fail_msg("compile error \"%s\" lacks \"%s\"", err.msg, needle);
}

static void test_compile_errors(void **state)
{
	expect_compile_error("{", "line 1");
	expect_compile_error("[]", "expected an object");
	expect_compile_error("{\"format\":2,\"channel\":1,\"content_version\":1,\"instances\":[]}",
	                     "\"format\"");
	expect_compile_error("{\"format\":1,\"channel\":1,\"content_version\":1,\"instances\":[],"
	                     "\"x\":1}",
	                     "unknown key \"x\"");
	expect_compile_error("{\"format\":1,\"channel\":-1,\"content_version\":1,\"instances\":[]}",
	                     "\"channel\"");
	const char *pre =
	        "{\"format\":1,\"channel\":1,\"content_version\":1,\"instances\":[{\"id\":1,"
	        "\"template\":1,\"template_version\":1,\"fields\":[";
	char buf[512];
	snprintf(buf, sizeof buf, "%s{\"cidr\":\"10.0.0.0/33\"}]}]}", pre);
	expect_compile_error(buf, "instance 0: field 0: \"cidr\"");
	snprintf(buf, sizeof buf, "%s{\"sha256\":\"abc\"}]}]}", pre);
	expect_compile_error(buf, "64 hex digits");
	snprintf(buf, sizeof buf, "%s{\"int\":1,\"string\":\"a\"}]}]}", pre);
	expect_compile_error(buf, "one type per field");
	snprintf(buf, sizeof buf, "%s{\"bytes\":\"abc\"}]}]}", pre);
	expect_compile_error(buf, "even number of hex digits");
	snprintf(buf, sizeof buf, "%s{\"bytes\":\"zz\"}]}]}", pre);
	expect_compile_error(buf, "bad hex");
	snprintf(buf, sizeof buf, "%s{}]}]}", pre);
	expect_compile_error(buf, "no value");
}

/* Decompile refuses structurally broken files with a reason. */
static void test_decompile_errors(void **state)
{
	size_t len;
	char *out = NULL;
	struct fb_err err = {{0}};
	unsigned char *buf = compile_file("valid/basic.json", &len);
	assert_int_equal(cf_decompile_json(NULL, buf, len - 1, &out, &err), FB_EFORMAT);
	assert_non_null(strstr(err.msg, "total length"));
	buf[100] ^= 1;
	assert_int_equal(cf_decompile_json(NULL, buf, len, &out, &err), FB_EFORMAT);
	assert_non_null(strstr(err.msg, "checksum"));
	assert_null(out);
	free(buf);
}

/* The parser never reads outside the buffer: every prefix of a valid file,
 * with length and checksum fixed, is rejected cleanly (ASan checks reads). */
static void test_every_prefix(void **state)
{
	size_t len;
	unsigned char *full = compile_file("valid/basic.json", &len);
	for (size_t n = 0; n < len; n++) {
		unsigned char *b = malloc(n ? n : 1);
		assert_non_null(b);
		memcpy(b, full, n);
		if (n >= CF_HEADER_LEN) {
			cf_put32(b + 16, (uint32_t)n);
			cf_checksum(b, n, b + CF_CHECKSUM_OFF);
		}
		struct cf_file *f = NULL;
		struct fb_err err = {{0}};
		assert_int_equal(cf_parse(reg, b, n, &f, &err), FB_EFORMAT);
		assert_null(f);
		assert_true(err.msg[0] != '\0');
		free(b);
	}
	free(full);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	assert_int_equal(fb_file_write_atomic(path, text, strlen(text), 0644), FB_OK);
}

static void test_registry_errors(void **state)
{
	char dir[] = "/tmp/fbschema-reg-XXXXXX";
	struct cf_registry *r = NULL;
	struct fb_err err = {{0}};
	assert_non_null(mkdtemp(dir));
	assert_int_equal(cf_registry_load_dir("/nonexistent/dir", &r, &err), FB_EIO);
	assert_null(r);
	/* empty directory: a registry with nothing in it */
	assert_int_equal(cf_registry_load_dir(dir, &r, &err), FB_OK);
	assert_int_equal(cf_registry_count(r), 0);
	cf_registry_free(r);
	r = NULL;
	write_file(dir, "a.json",
	           "{\"id\":5,\"name\":\"t\",\"version\":1,\"fields\":[{\"name\":\"x\",\"type\":"
	           "\"regex\",\"attr\":\"a\"}]}");
	assert_int_equal(cf_registry_load_dir(dir, &r, &err), FB_OK);
	assert_int_equal(cf_registry_count(r), 1);
	cf_registry_free(r);
	r = NULL;
	write_file(dir, "b.json",
	           "{\"id\":5,\"name\":\"t\",\"version\":1,\"fields\":[{\"name\":\"x\",\"type\":"
	           "\"int\"}]}");
	assert_int_equal(cf_registry_load_dir(dir, &r, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "template id 5 version 1 defined twice"));
	write_file(dir, "b.json",
	           "{\"id\":6,\"name\":\"t\",\"version\":1,\"fields\":[{\"name\":\"x\",\"type\":"
	           "\"float\"}]}");
	assert_int_equal(cf_registry_load_dir(dir, &r, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "b.json: field 0: \"type\""));
	write_file(dir, "b.json",
	           "{\"id\":6,\"name\":\"t\",\"version\":1,\"fields\":[{\"name\":\"x\",\"type\":"
	           "\"int\",\"role\":\"action\",\"min\":0,\"max\":9}]}");
	assert_int_equal(cf_registry_load_dir(dir, &r, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "action field"));
	write_file(dir, "b.json",
	           "{\"id\":6,\"name\":\"t\",\"version\":1,\"fields\":[{\"name\":\"x\",\"type\":"
	           "\"string\",\"maxlen\":3}]}");
	assert_int_equal(cf_registry_load_dir(dir, &r, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "unknown key \"maxlen\""));
	write_file(dir, "b.json", "{\"id\":6,");
	assert_int_equal(cf_registry_load_dir(dir, &r, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "b.json:1:"));
	assert_null(r);
	char path[512];
	snprintf(path, sizeof path, "%s/a.json", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/b.json", dir);
	unlink(path);
	rmdir(dir);
}

static void test_capabilities(void **state)
{
	struct fb_err err = {{0}};
	json_t *caps = cf_registry_capabilities(reg);
	json_t *want = json_loads("[{\"id\":1,\"version\":1},{\"id\":2,\"version\":1},"
	                          "{\"id\":3,\"version\":1},{\"id\":7,\"version\":1},"
	                          "{\"id\":7,\"version\":2}]",
	                          0, NULL);
	assert_true(json_equal(caps, want));
	json_t *used = json_loads("[{\"id\":7,\"version\":2},{\"id\":1,\"version\":1}]", 0, NULL);
	assert_int_equal(cf_capabilities_cover(caps, used, &err), FB_OK);
	/* an agent build that knows only named_pipe v1 cannot take v2 content */
	json_t *old = json_loads("[{\"id\":1,\"version\":1},{\"id\":7,\"version\":1}]", 0, NULL);
	assert_int_equal(cf_capabilities_cover(old, used, &err), FB_ENOTFOUND);
	assert_non_null(strstr(err.msg, "template id 7 version 2"));
	json_t *bad = json_loads("[{\"id\":\"7\"}]", 0, NULL);
	assert_int_equal(cf_capabilities_cover(caps, bad, &err), FB_EINVAL);
	json_t *empty = json_array();
	assert_int_equal(cf_capabilities_cover(old, empty, &err), FB_OK);
	json_decref(caps);
	json_decref(want);
	json_decref(used);
	json_decref(old);
	json_decref(bad);
	json_decref(empty);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cases_table),      cmocka_unit_test(test_cf291),
	        cmocka_unit_test(test_accessors),        cmocka_unit_test(test_file_regex_total),
	        cmocka_unit_test(test_round_trip_named), cmocka_unit_test(test_compile_names),
	        cmocka_unit_test(test_round_trip),       cmocka_unit_test(test_compile_errors),
	        cmocka_unit_test(test_decompile_errors), cmocka_unit_test(test_every_prefix),
	        cmocka_unit_test(test_registry_errors),  cmocka_unit_test(test_capabilities),
	};
	return cmocka_run_group_tests_name("schema", tests, setup, teardown);
}
