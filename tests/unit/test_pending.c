/* Unit tests of the pending-heartbeat store: the latest heartbeat per agent
 * wins, values are interned per kind, boot ids are kept once, bad input is
 * refused without change, and sorting walks the records in agent-id order. */
#include "pending.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define ACTIVE_A "{\"291\":\"aa\"}"
#define ACTIVE_B "{\"291\":\"bb\"}"
#define CAPS     "[{\"id\":1,\"version\":1}]"

static struct pending_hb hb(int64_t id, const char *boot, const char *active)
{
	return (struct pending_hb){.agent_id = id,
	                           .seen_ms = 1000 * id,
	                           .uptime_s = id,
	                           .boot_id = boot,
	                           .version = "1.0.0",
	                           .active = active,
	                           .caps = CAPS};
}

/* The record of agent id after pending_sort(), by binary search. */
static int find(const struct pending *p, int64_t id, struct pending_rec *out)
{
	size_t lo = 0, hi = pending_count(p);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		pending_get(p, mid, out);
		if (out->agent_id == id)
			return 1;
		if (out->agent_id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static void test_latest_wins_and_values_are_shared(void **state)
{
	(void)state;
	struct pending *p = pending_new();
	assert_non_null(p);
	struct pending_hb h = hb(7, "boot-1", ACTIVE_A);
	assert_int_equal(pending_put(p, &h), FB_OK);
	h = hb(8, "boot-8", ACTIVE_A);
	assert_int_equal(pending_put(p, &h), FB_OK);
	assert_int_equal(pending_count(p), 2);
	assert_true(pending_has(p, 7));
	assert_true(pending_has(p, 8));
	assert_false(pending_has(p, 9));
	/* one active map, one capability set, one version for both agents */
	assert_int_equal(pending_nvalues(p, PENDING_JSON), 2);
	assert_int_equal(pending_nvalues(p, PENDING_TEXT), 1);
	/* agent 7 again, later, with other content and no capabilities */
	h = hb(7, "boot-1", ACTIVE_B);
	h.seen_ms = 99000;
	h.uptime_s = 99;
	h.caps = NULL;
	h.version = NULL;
	assert_int_equal(pending_put(p, &h), FB_OK);
	assert_int_equal(pending_count(p), 2);
	assert_int_equal(pending_nvalues(p, PENDING_JSON), 3);
	assert_int_equal(pending_sort(p), FB_OK);
	struct pending_rec r;
	pending_get(p, 0, &r);
	assert_int_equal(r.agent_id, 7);
	assert_int_equal(r.seen_ms, 99000);
	assert_int_equal(r.uptime_s, 99);
	assert_string_equal(r.boot_id, "boot-1");
	assert_int_equal(r.version, 0);
	assert_int_equal(r.caps, 0);
	size_t len;
	assert_string_equal(pending_value(p, PENDING_JSON, r.active, &len), ACTIVE_B);
	assert_int_equal(len, strlen(ACTIVE_B));
	pending_get(p, 1, &r);
	assert_int_equal(r.agent_id, 8);
	assert_string_equal(r.boot_id, "boot-8");
	assert_string_equal(pending_value(p, PENDING_JSON, r.active, NULL), ACTIVE_A);
	assert_string_equal(pending_value(p, PENDING_JSON, r.caps, NULL), CAPS);
	assert_string_equal(pending_value(p, PENDING_TEXT, r.version, NULL), "1.0.0");
	assert_null(pending_value(p, PENDING_JSON, 0, NULL));
	assert_null(pending_value(p, PENDING_JSON, 4, NULL));
	pending_free(p);
}

static void test_kinds_are_separate(void **state)
{
	(void)state;
	struct pending *p = pending_new();
	/* a version that reads like JSON is still a text value */
	struct pending_hb h = hb(1, "b", "{}");
	h.version = "{}";
	h.caps = "{}";
	assert_int_equal(pending_put(p, &h), FB_OK);
	assert_int_equal(pending_nvalues(p, PENDING_TEXT), 1);
	assert_int_equal(pending_nvalues(p, PENDING_JSON), 1);
	assert_int_equal(pending_sort(p), FB_OK);
	struct pending_rec r;
	pending_get(p, 0, &r);
	assert_int_equal(r.active, r.caps);
	assert_int_equal(r.version, 1);
	pending_free(p);
}

static void test_boot_id_changes_and_limits(void **state)
{
	(void)state;
	struct pending *p = pending_new();
	char longest[PENDING_MAX_BOOT_ID + 2];
	memset(longest, 'x', sizeof longest - 1);
	longest[sizeof longest - 1] = '\0';
	struct pending_hb h = hb(3, longest, ACTIVE_A);
	assert_int_equal(pending_put(p, &h), FB_EINVAL); /* one byte too long */
	longest[PENDING_MAX_BOOT_ID] = '\0';
	assert_int_equal(pending_put(p, &h), FB_OK);
	size_t bytes = pending_bytes(p);
	/* the same boot again stores nothing new; a reboot stores the new id */
	assert_int_equal(pending_put(p, &h), FB_OK);
	assert_int_equal(pending_bytes(p), bytes);
	h.boot_id = "after-reboot";
	assert_int_equal(pending_put(p, &h), FB_OK);
	assert_int_equal(pending_count(p), 1);
	assert_int_equal(pending_sort(p), FB_OK);
	struct pending_rec r;
	pending_get(p, 0, &r);
	assert_string_equal(r.boot_id, "after-reboot");
	pending_free(p);
}

static void test_bad_input_changes_nothing(void **state)
{
	(void)state;
	struct pending *p = pending_new();
	struct pending_hb ok = hb(5, "b", ACTIVE_A);
	assert_int_equal(pending_put(p, &ok), FB_OK);
	struct pending_hb bad[6];
	for (int i = 0; i < 6; i++)
		bad[i] = hb(5, "other", ACTIVE_B);
	bad[0].agent_id = 0;
	bad[1].agent_id = (int64_t)UINT32_MAX + 1;
	bad[2].uptime_s = -1;
	bad[3].uptime_s = (int64_t)UINT32_MAX + 1;
	bad[4].boot_id = NULL;
	bad[5].active = NULL;
	for (int i = 0; i < 6; i++)
		assert_int_equal(pending_put(p, &bad[i]), FB_EINVAL);
	assert_int_equal(pending_count(p), 1);
	assert_false(pending_has(p, 0));
	assert_false(pending_has(p, -1));
	assert_int_equal(pending_sort(p), FB_OK);
	struct pending_rec r;
	pending_get(p, 0, &r);
	assert_string_equal(r.boot_id, "b");
	assert_string_equal(pending_value(p, PENDING_JSON, r.active, NULL), ACTIVE_A);
	/* sorted: no more puts */
	assert_int_equal(pending_put(p, &ok), FB_EINVAL);
	pending_free(p);
	pending_free(NULL);
}

/* Many agents, out of order, each twice: every record found once, in order,
 * with its latest values; a few values shared by all; compact. */
static void test_many_agents(void **state)
{
	(void)state;
	enum { N = 300000 };
	struct pending *p = pending_new();
	const char *actives[] = {ACTIVE_A, ACTIVE_B, "{\"291\":\"cc\",\"292\":\"dd\"}"};
	char boot[32];
	for (int pass = 0; pass < 2; pass++) {
		for (int64_t k = 0; k < N; k++) {
			int64_t id = (k * 7919) % N + 1; /* a permutation of 1..N */
			snprintf(boot, sizeof boot, "boot-%lld-%d", (long long)id,
			         pass && id % 2 ? 1 : 0);
			struct pending_hb h = hb(id, boot, actives[(id + pass) % 3]);
			h.seen_ms = id * 10 + pass;
			assert_int_equal(pending_put(p, &h), FB_OK);
		}
	}
	assert_int_equal(pending_count(p), N);
	assert_int_equal(pending_nvalues(p, PENDING_JSON), 4);
	assert_int_equal(pending_nvalues(p, PENDING_TEXT), 1);
	/* records, index and boot ids (half of them twice): well under 100 B */
	assert_true(pending_bytes(p) < (size_t)N * 100);
	assert_true(pending_has(p, N));
	assert_false(pending_has(p, N + 1));
	assert_int_equal(pending_sort(p), FB_OK);
	int64_t prev = 0;
	for (size_t i = 0; i < pending_count(p); i++) {
		struct pending_rec r;
		pending_get(p, i, &r);
		assert_int_equal(r.agent_id, prev + 1);
		prev = r.agent_id;
		assert_int_equal(r.seen_ms, r.agent_id * 10 + 1);
		snprintf(boot, sizeof boot, "boot-%lld-%d", (long long)r.agent_id,
		         r.agent_id % 2 ? 1 : 0);
		assert_string_equal(r.boot_id, boot);
		assert_string_equal(pending_value(p, PENDING_JSON, r.active, NULL),
		                    actives[(r.agent_id + 1) % 3]);
	}
	struct pending_rec r;
	assert_true(find(p, 4242, &r));
	assert_int_equal(r.uptime_s, 4242);
	pending_free(p);
}

static void test_empty(void **state)
{
	(void)state;
	struct pending *p = pending_new();
	assert_int_equal(pending_count(p), 0);
	assert_int_equal(pending_nvalues(p, PENDING_JSON), 0);
	assert_int_equal(pending_sort(p), FB_OK);
	assert_int_equal(pending_count(p), 0);
	pending_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_latest_wins_and_values_are_shared),
	        cmocka_unit_test(test_kinds_are_separate),
	        cmocka_unit_test(test_boot_id_changes_and_limits),
	        cmocka_unit_test(test_bad_input_changes_nothing),
	        cmocka_unit_test(test_many_agents),
	        cmocka_unit_test(test_empty),
	};
	return cmocka_run_group_tests_name("pending", tests, NULL, NULL);
}
