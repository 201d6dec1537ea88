/* Unit tests of the heartbeat-body recogniser: the bodies agents send are
 * recognised with the right values; anything outside its subset is left to
 * jansson; and, checked differentially against jansson over a few hundred
 * thousand mutated bodies (fixed seed), whatever it accepts jansson parses
 * (rejecting duplicate keys, as the server does) to the same values. */
#include "hbbody.h"
#include "signals.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define BODY                                                                                       \
	"{\"agent_id\":42,\"boot_id\":\"bench-42\",\"uptime_s\":3601,\"agent_version\":\"1.0.0\"," \
	"\"active\":{\"291\":\"" SHA_A "\",\"292\":\"" SHA_A "\"},\"capabilities\":[{\"id\":1,"    \
	"\"version\":1},{\"id\":7,\"version\":2}]}"

#define HEALTH_BODY                                                                                \
	"{\"agent_id\":5,\"boot_id\":\"b\",\"uptime_s\":9,\"active\":{\"291\":\"" SHA_A "\"},"     \
	"\"health\":{\"interval_s\":60,\"agent_cpu_p95\":7,\"agent_cpu_mean\":2,\"host_cpu\":31,"  \
	"\"agent_rss_kb\":51200,\"channels\":{\"291\":{\"evals\":1200,\"errors\":1,"               \
	"\"timeouts\":0,\"detections\":3,\"blocks\":0},\"7\":{}}}}"

static int parses(const char *s, struct hbbody *o)
{
	return hbbody_parse(s, strlen(s), o);
}

static int text_is(const struct hbbody_text *t, const char *s)
{
	return t->n == strlen(s) && memcmp(t->p, s, t->n) == 0;
}

static void test_agent_body(void **state)
{
	(void)state;
	static struct hbbody o;
	assert_true(parses(BODY, &o));
	assert_int_equal(o.agent_id, 42);
	assert_int_equal(o.uptime_s, 3601);
	assert_true(text_is(&o.boot_id, "bench-42"));
	assert_true(o.has_version);
	assert_true(text_is(&o.version, "1.0.0"));
	assert_int_equal(o.nactive, 2);
	assert_true(text_is(&o.active_key[1], "292"));
	assert_true(text_is(&o.active_val[0], SHA_A));
	assert_true(o.has_caps);
	assert_int_equal(o.ncaps, 2);
	assert_int_equal(o.cap_id[1], 7);
	assert_int_equal(o.cap_version[1], 2);
	/* whitespace anywhere JSON allows it, any key order, optional fields */
	assert_true(parses(" \r\n{ \"uptime_s\" : 0 ,\t\"active\" : { } , \"boot_id\":\"b\","
	                   "\"agent_id\":1, \"capabilities\" : [ { \"version\" : 65535 , \"id\" : "
	                   "4294967295 } ] }\n ",
	                   &o));
	assert_false(o.has_version);
	assert_int_equal(o.nactive, 0);
	assert_int_equal(o.cap_id[0], 4294967295u);
	assert_int_equal(o.cap_version[0], 65535);
	assert_true(parses("{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},"
	                   "\"capabilities\":[]}",
	                   &o));
	assert_true(o.has_caps);
	assert_int_equal(o.ncaps, 0);
}

/* The health object's host figures, as parsed. */
static void assert_host(const struct hbbody *o, int64_t interval, int64_t p95, int64_t mean,
                        int64_t host, int64_t rss)
{
	assert_true(o->has_health);
	assert_int_equal(o->health.interval_s, interval);
	assert_int_equal(o->health.agent_cpu_p95, p95);
	assert_int_equal(o->health.agent_cpu_mean, mean);
	assert_int_equal(o->health.host_cpu, host);
	assert_int_equal(o->health.agent_rss_kb, rss);
}

static void test_health_body(void **state)
{
	(void)state;
	static struct hbbody o;
	assert_true(parses(HEALTH_BODY, &o));
	assert_host(&o, 60, 7, 2, 31, 51200);
	assert_int_equal(o.health.nch, 2);
	assert_int_equal(o.health.ch[0].channel, 291);
	assert_int_equal(o.health.ch[0].evals, 1200);
	assert_int_equal(o.health.ch[0].errors, 1);
	assert_int_equal(o.health.ch[0].detections, 3);
	assert_int_equal(o.health.ch[1].channel, 7);
	assert_int_equal(o.health.ch[1].evals, -1); /* not sent */
	/* the keys in another order than agents send them: the same values */
	assert_true(parses("{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},"
	                   "\"health\":{\"channels\":{\"291\":{\"blocks\":4,\"detections\":3,"
	                   "\"timeouts\":2,\"errors\":1,\"evals\":9}},\"agent_rss_kb\":5,"
	                   "\"host_cpu\":4,\"agent_cpu_mean\":3,\"agent_cpu_p95\":2,"
	                   "\"interval_s\":60}}",
	                   &o));
	assert_host(&o, 60, 2, 3, 4, 5);
	assert_int_equal(o.health.nch, 1);
	assert_int_equal(o.health.ch[0].evals, 9);
	assert_int_equal(o.health.ch[0].errors, 1);
	assert_int_equal(o.health.ch[0].timeouts, 2);
	assert_int_equal(o.health.ch[0].detections, 3);
	assert_int_equal(o.health.ch[0].blocks, 4);
	/* a body without health has none */
	assert_true(parses(BODY, &o));
	assert_false(o.has_health);
	/* left to jansson: what is not an unsigned integer, unknown or twice */
	const char *others[] = {
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"interval_s\":-1}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"interval_s\":1.5}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"cpu\":1}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"interval_s\":1,\"interval_s\":2}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"01\":{}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"1\":{},\"1\":{}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"1\":{\"evals\":1,\"evals\":1}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"1\":{\"evals\":1,\"errors\":1,\"errors\":1}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"1\":{\"matches\":1}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{},\"channels\":{}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":[]}",
	        /* keys near the known ones: a prefix, a suffix, the same length and
	         * initial, too long to be any, an escape */
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"interval\":60}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"interval_sx\":60}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"host_cpx\":60}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"agent_cpu_mean_of_all\":60}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"host\\u005fcpu\":60}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"1\":{\"eval\":1}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"1\":{\"evalx\":1}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"1\":{\"evals\"}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"1\":{\"evals",
	        /* channel ids: zero, past 2^32 - 1, eleven digits, not digits, not a
	         * string, no colon, unterminated */
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"0\":{}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"4294967296\":{}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"12345678901\":{}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"12a\":{}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"\":{}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"1\\u0030\":{}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{12:{}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"12\" {}}}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"health\":"
	        "{\"channels\":{\"12",
	};
	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
		if (parses(others[i], &o))
			fail_msg("case %zu was recognised: %s", i, others[i]);
	/* the largest channel id, and whitespace wherever JSON allows it */
	assert_true(parses("{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},"
	                   "\"health\": { \"channels\" : { \"4294967295\" : { \"blocks\" : 2 ,"
	                   "\n\"evals\"\t:\r9 } } , \"interval_s\" : 60 } }",
	                   &o));
	assert_int_equal(o.health.nch, 1);
	assert_int_equal(o.health.ch[0].channel, 4294967295u);
	assert_int_equal(o.health.ch[0].blocks, 2);
	assert_int_equal(o.health.ch[0].evals, 9);
	assert_int_equal(o.health.ch[0].errors, -1);
	assert_int_equal(o.health.interval_s, 60);
}

static void test_left_to_jansson(void **state)
{
	(void)state;
	static struct hbbody o;
	const char *others[] = {
	        "",
	        "{}",
	        "[]",
	        "{\"agent_id\":1}",
	        /* escapes, non-ASCII, control characters */
	        "{\"agent_id\":1,\"boot_id\":\"b\\n\",\"uptime_s\":0,\"active\":{}}",
	        "{\"agent_id\":1,\"boot_id\":\"\xc3\xbc\",\"uptime_s\":0,\"active\":{}}",
	        "{\"agent_id\":1,\"boot_id\":\"a\tb\",\"uptime_s\":0,\"active\":{}}",
	        /* numbers: sign, fraction, exponent, leading zero, too long, zero id */
	        "{\"agent_id\":-1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{}}",
	        "{\"agent_id\":1.0,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{}}",
	        "{\"agent_id\":1e2,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{}}",
	        "{\"agent_id\":01,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{}}",
	        "{\"agent_id\":1234567890123456789,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{}}",
	        "{\"agent_id\":0,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{}}",
	        /* wrong types, sizes, keys */
	        "{\"agent_id\":\"1\",\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{}}",
	        "{\"agent_id\":1,\"boot_id\":\"\",\"uptime_s\":0,\"active\":{}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"extra\":1}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{\"1\":2}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":[]}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"agent_version\":"
	        "null}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"capabilities\":"
	        "[{\"id\":1}]}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"capabilities\":"
	        "[{\"id\":1,\"version\":65536}]}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"capabilities\":"
	        "[{\"id\":4294967296,\"version\":1}]}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"capabilities\":"
	        "[{\"id\":1,\"version\":1,\"x\":1}]}",
	        /* duplicates, at every level */
	        "{\"agent_id\":1,\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{\"1\":\"a\",\"1\":"
	        "\"b\"}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},\"capabilities\":"
	        "[{\"id\":1,\"id\":1}]}",
	        /* trailing commas, garbage, truncation */
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{\"1\":\"a\",}}",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{}} x",
	        "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{}",
	        "{\"agent_id\":1,\"boot_id\":\"b,\"uptime_s\":0,\"active\":{}}",
	};
	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
		if (parses(others[i], &o))
			fail_msg("case %zu was recognised: %s", i, others[i]);
	/* 256 channels and capabilities, not 257 */
	char big[40000];
	for (int lim = 256; lim <= 257; lim++) {
		int n = snprintf(big, sizeof big,
		                 "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{");
		for (int i = 0; i < lim; i++)
			n += snprintf(big + n, sizeof big - (size_t)n, "%s\"%d\":\"x\"",
			              i ? "," : "", i);
		n += snprintf(big + n, sizeof big - (size_t)n, "}}");
		assert_int_equal(parses(big, &o), lim == 256);
		n = snprintf(big, sizeof big,
		             "{\"agent_id\":1,\"boot_id\":\"b\",\"uptime_s\":0,\"active\":{},"
		             "\"capabilities\":[");
		for (int i = 0; i < lim; i++)
			n += snprintf(big + n, sizeof big - (size_t)n,
			              "%s{\"id\":%d,\"version\":1}", i ? "," : "", i);
		n += snprintf(big + n, sizeof big - (size_t)n, "]}");
		assert_int_equal(parses(big, &o), lim == 256);
	}
}

/* What jansson makes of an accepted body must be what we read. */
static void same_as_jansson(const char *s, size_t n, const struct hbbody *o)
{
	json_error_t je;
	json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		fail_msg("recognised, but jansson refuses (%s): %.*s", je.text, (int)n, s);
	assert_true(json_is_object(j));
	assert_int_equal(json_object_size(j), 4 + o->has_version + o->has_caps + o->has_health);
	json_t *v = json_object_get(j, "health");
	if (o->has_health) {
		static struct sig_health h;
		char f[96], w[96];
		(void)sig_health_from_json(v, &h, f, sizeof f, w, sizeof w); /* ranges aside */
		assert_int_equal(h.interval_s, o->health.interval_s);
		assert_int_equal(h.agent_cpu_p95, o->health.agent_cpu_p95);
		assert_int_equal(h.agent_cpu_mean, o->health.agent_cpu_mean);
		assert_int_equal(h.host_cpu, o->health.host_cpu);
		assert_int_equal(h.agent_rss_kb, o->health.agent_rss_kb);
		assert_int_equal(h.nch, o->health.nch);
		for (size_t i = 0; i < h.nch; i++) {
			const struct sig_channel *a = &h.ch[i], *b = &o->health.ch[i];
			assert_int_equal(a->channel, b->channel);
			assert_int_equal(a->evals, b->evals);
			assert_int_equal(a->errors, b->errors);
			assert_int_equal(a->timeouts, b->timeouts);
			assert_int_equal(a->detections, b->detections);
			assert_int_equal(a->blocks, b->blocks);
		}
	} else {
		assert_null(v);
	}
	v = json_object_get(j, "agent_id");
	assert_true(json_is_integer(v) && json_integer_value(v) == o->agent_id);
	v = json_object_get(j, "uptime_s");
	assert_true(json_is_integer(v) && json_integer_value(v) == o->uptime_s);
	v = json_object_get(j, "boot_id");
	assert_true(json_is_string(v) && json_string_length(v) == o->boot_id.n &&
	            memcmp(json_string_value(v), o->boot_id.p, o->boot_id.n) == 0);
	v = json_object_get(j, "agent_version");
	if (o->has_version)
		assert_true(json_is_string(v) && json_string_length(v) == o->version.n &&
		            memcmp(json_string_value(v), o->version.p, o->version.n) == 0);
	else
		assert_null(v);
	v = json_object_get(j, "active");
	assert_true(json_is_object(v));
	assert_int_equal(json_object_size(v), o->nactive);
	for (size_t i = 0; i < o->nactive; i++) {
		char key[8192];
		snprintf(key, sizeof key, "%.*s", (int)o->active_key[i].n, o->active_key[i].p);
		json_t *e = json_object_get(v, key);
		assert_true(json_is_string(e) && json_string_length(e) == o->active_val[i].n &&
		            memcmp(json_string_value(e), o->active_val[i].p, o->active_val[i].n) ==
		                    0);
	}
	v = json_object_get(j, "capabilities");
	if (o->has_caps) {
		assert_true(json_is_array(v));
		assert_int_equal(json_array_size(v), o->ncaps);
		for (size_t i = 0; i < o->ncaps; i++) {
			json_t *e = json_array_get(v, i);
			assert_int_equal(json_object_size(e), 2);
			assert_true(json_integer_value(json_object_get(e, "id")) == o->cap_id[i]);
			assert_true(json_integer_value(json_object_get(e, "version")) ==
			            o->cap_version[i]);
		}
	} else {
		assert_null(v);
	}
	json_decref(j);
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

/* Mutated agent bodies: every body we recognise, jansson reads the same. */
static void test_differential(void **state)
{
	(void)state;
	static const char interesting[] = "{}[]:,\"\\ \t\n0123456789-.eE+aux\x01\xc3\xff";
	static struct hbbody o;
	const char *seeds[] = {
	        BODY,
	        "{\"boot_id\":\"b\",\"active\":{},\"agent_id\":9,\"uptime_s\":0}",
	        "{ \"agent_id\" : 7 , \"boot_id\" : \"x y\" , \"uptime_s\" : 10 , \"active\" : { "
	        "\"1\" : \"z\" } , \"capabilities\" : [ { \"version\" : 3 , \"id\" : 2 } ] }",
	        HEALTH_BODY,
	};
	char buf[1024];
	long recognised = 0, total = 0;
	for (int round = 0; round < 300000; round++) {
		const char *seed = seeds[next() % 4];
		size_t n = strlen(seed);
		memcpy(buf, seed, n);
		int edits = 1 + (int)(next() % 3);
		for (int e = 0; e < edits && n > 1; e++) {
			size_t at = next() % n;
			char ch = interesting[next() % (sizeof interesting - 1)];
			switch (next() % 3) {
			case 0: buf[at] = ch; break;
			case 1:
				memmove(buf + at, buf + at + 1, n - at - 1);
				n--;
				break;
			default:
				if (n + 1 < sizeof buf) {
					memmove(buf + at + 1, buf + at, n - at);
					buf[at] = ch;
					n++;
				}
			}
		}
		total++;
		if (hbbody_parse(buf, n, &o)) {
			recognised++;
			same_as_jansson(buf, n, &o);
		}
	}
	/* the mutations keep a fair share recognisable, so the check has teeth */
	assert_true(recognised > total / 50);
	for (size_t i = 0; i < 4; i++) {
		assert_true(parses(seeds[i], &o));
		same_as_jansson(seeds[i], strlen(seeds[i]), &o);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_agent_body),
	        cmocka_unit_test(test_health_body),
	        cmocka_unit_test(test_left_to_jansson),
	        cmocka_unit_test(test_differential),
	};
	return cmocka_run_group_tests_name("hbbody", tests, NULL, NULL);
}
