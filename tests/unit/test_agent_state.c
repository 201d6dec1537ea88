/* Unit tests of fb-agent's local state in a temporary directory: A/B slots and
 * the active pointer, persistence, boot markers and crash reports, the
 * boot-loop guard and refusals, pending events, the identity file; and
 * libfbclient's config reader. */
#include "../../clients/agent/state.h" /* the agent has no -I of its own */
#include "fbclient.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define T0 1790000000LL

static const struct ag_guard GUARD = {3, 10};

/* A fresh directory per test; removed with rm -rf at teardown. */
static int setup_dir(void **state)
{
	char *d = strdup("/tmp/test_agent_state.XXXXXX");
	assert_non_null(mkdtemp(d));
	*state = d;
	return 0;
}

static int teardown_dir(void **state)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", (char *)*state);
	assert_int_equal(system(cmd), 0);
	free(*state);
	return 0;
}

static struct ag_state *open_state(const char *dir)
{
	struct ag_state *s = NULL;
	struct fb_err err = {""};
	enum fb_rc rc = ag_state_open(dir, &s, &err);
	if (rc)
		fail_msg("ag_state_open: %s", err.msg);
	return s;
}

/* Content bytes and their digest. */
struct content {
	char bytes[64];
	char sha[FB_SHA256_HEX_LEN + 1];
};

static void make_content(struct content *c, const char *text)
{
	snprintf(c->bytes, sizeof c->bytes, "%s", text);
	fb_sha256_hex(c->bytes, strlen(c->bytes), c->sha);
}

static void apply(struct ag_state *s, uint32_t ch, const struct content *c, int64_t version,
                  int64_t now)
{
	struct fb_err err = {""};
	enum fb_rc rc =
	        ag_slot_apply(s, ch, c->sha, version, c->bytes, strlen(c->bytes), now, &err);
	if (rc)
		fail_msg("ag_slot_apply: %s", err.msg);
}

/* The slot the "active" symlink names: 'A', 'B' or 0 when absent. */
static char pointer(const struct ag_state *s, uint32_t ch)
{
	char p[4096], target[16];
	assert_int_equal(ag_slot_path(s, ch, AG_SLOT_NONE, p, sizeof p), FB_OK);
	ssize_t n = readlink(p, target, sizeof target - 1);
	if (n < 0)
		return 0;
	target[n] = '\0';
	assert_int_equal(n, 1);
	return target[0];
}

/* The bytes reachable through the active pointer equal want. */
static void assert_active_bytes(const struct ag_state *s, uint32_t ch, const char *want)
{
	char p[4096];
	assert_int_equal(ag_slot_path(s, ch, AG_SLOT_NONE, p, sizeof p), FB_OK);
	unsigned char *data = NULL;
	size_t len = 0;
	assert_int_equal(fb_file_read(p, 4096, &data, &len), FB_OK);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(data, want, len);
	free(data);
}

static json_t *find_event(struct ag_state *s, const char *kind, size_t nth)
{
	size_t i, seen = 0;
	json_t *v;
	json_array_foreach(s->events, i, v)
	{
		if (strcmp(json_string_value(json_object_get(v, "kind")), kind) == 0 &&
		    seen++ == nth)
			return v;
	}
	return NULL;
}

static size_t count_events(struct ag_state *s, const char *kind)
{
	size_t n = 0;
	while (find_event(s, kind, n))
		n++;
	return n;
}

/* ---- slots ---------------------------------------------------------------- */

static void test_apply_alternates_slots_and_keeps_lkg(void **state)
{
	const char *dir = *state;
	struct ag_state *s = open_state(dir);
	struct content c1, c2, c3;
	make_content(&c1, "content one");
	make_content(&c2, "content two");
	make_content(&c3, "content three");

	assert_null(ag_state_active(s, 291));
	assert_int_equal(pointer(s, 291), 0);
	apply(s, 291, &c1, 1, T0);
	assert_string_equal(ag_state_active(s, 291), c1.sha);
	assert_int_equal(pointer(s, 291), 'A');
	assert_active_bytes(s, 291, c1.bytes);
	assert_string_equal(ag_state_channel(s, 291)->lkg, "");

	apply(s, 291, &c2, 2, T0 + 5);
	assert_int_equal(pointer(s, 291), 'B');
	assert_active_bytes(s, 291, c2.bytes);
	assert_string_equal(ag_state_channel(s, 291)->lkg, c1.sha);
	assert_int_equal(ag_state_channel(s, 291)->changed_at, T0 + 5);

	/* The third goes into A (the inactive slot), B's content becomes LKG. */
	apply(s, 291, &c3, 3, T0 + 9);
	assert_int_equal(pointer(s, 291), 'A');
	assert_active_bytes(s, 291, c3.bytes);
	assert_string_equal(ag_state_channel(s, 291)->lkg, c2.sha);
	ag_state_free(s);

	/* Everything survives a restart. */
	s = open_state(dir);
	struct ag_channel *c = ag_state_channel(s, 291);
	assert_non_null(c);
	assert_int_equal(c->active, AG_SLOT_A);
	assert_string_equal(c->slot_sha[AG_SLOT_A], c3.sha);
	assert_string_equal(c->slot_sha[AG_SLOT_B], c2.sha);
	assert_int_equal(c->slot_version[AG_SLOT_A], 3);
	assert_string_equal(c->lkg, c2.sha);
	json_t *act = ag_state_active_json(s);
	assert_string_equal(json_string_value(json_object_get(act, "291")), c3.sha);
	json_decref(act);
	ag_state_free(s);
}

static void test_deactivate(void **state)
{
	struct ag_state *s = open_state(*state);
	struct content c1;
	make_content(&c1, "only content");
	apply(s, 7, &c1, 1, T0);
	struct fb_err err = {""};
	assert_int_equal(ag_slot_deactivate(s, 7, T0 + 1, &err), FB_OK);
	assert_null(ag_state_active(s, 7));
	assert_int_equal(pointer(s, 7), 0);
	assert_string_equal(ag_state_channel(s, 7)->lkg, c1.sha);
	/* Deactivating an unknown channel is a no-op. */
	assert_int_equal(ag_slot_deactivate(s, 8, T0 + 1, &err), FB_OK);
	/* New content goes to the slot not holding the LKG. */
	struct content c2;
	make_content(&c2, "next content");
	apply(s, 7, &c2, 2, T0 + 2);
	assert_int_equal(pointer(s, 7), 'B');
	assert_string_equal(ag_state_channel(s, 7)->lkg, c1.sha);
	ag_state_free(s);
}

static void test_apply_refuses_bad_digest(void **state)
{
	struct ag_state *s = open_state(*state);
	struct fb_err err = {""};
	assert_int_equal(ag_slot_apply(s, 1, "not-a-digest", 1, "x", 1, T0, &err), FB_EINVAL);
	assert_null(ag_state_active(s, 1));
	ag_state_free(s);
}

/* ---- persistence ------------------------------------------------------------ */

static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	assert_int_equal(fb_file_write_atomic(p, text, strlen(text), mode), FB_OK);
}

static void test_malformed_state_is_refused(void **state)
{
	const char *dir = *state;
	static const char *const bad[] = {
	        "[]",
	        "{\"sequence\":-1}",
	        "{\"format\":1,\"sequence\":1,\"doc_sha256\":\"\",\"etag\":\"\",\"channels\":[{"
	        "\"id\":"
	        "1,\"slots\":[\"\",\"\"],\"slot_versions\":[0,0],\"active\":\"A\",\"lkg\":\"\","
	        "\"changed_at\":0}],\"refused\":[],\"unclean_starts\":[],\"events\":[]}",
	        "{\"format\":1,\"sequence\":1,\"doc_sha256\":\"zz\",\"etag\":\"\",\"channels\":[],"
	        "\"refused\":[],\"unclean_starts\":[],\"events\":[]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_file(dir, "state.json", bad[i], 0600);
		struct ag_state *s = NULL;
		struct fb_err err = {""};
		enum fb_rc rc = ag_state_open(dir, &s, &err);
		assert_int_equal(rc, FB_EFORMAT);
		assert_null(s);
		assert_non_null(strstr(err.msg, "state.json"));
	}
}

/* ---- boots and crash reports ---------------------------------------------- */

static void test_clean_stop_reports_nothing(void **state)
{
	struct ag_state *s = open_state(*state);
	struct ag_boot b1, b2;
	struct fb_err err = {""};
	assert_int_equal(ag_boot_begin(s, T0, &b1, &err), FB_OK);
	assert_int_equal(b1.prev_unclean, 0);
	assert_string_equal(b1.prev_boot_id, "");
	assert_int_equal(strlen(b1.boot_id), AG_BOOT_ID_LEN);
	assert_int_equal(ag_boot_end(s, b1.boot_id, &err), FB_OK);
	assert_int_equal(ag_boot_begin(s, T0 + 60, &b2, &err), FB_OK);
	assert_int_equal(b2.prev_unclean, 0);
	assert_string_equal(b2.prev_boot_id, b1.boot_id);
	assert_string_not_equal(b2.boot_id, b1.boot_id);
	assert_int_equal(json_array_size(s->events), 0);
	assert_int_equal(s->n_unclean, 0);
	ag_state_free(s);
}

static void test_unclean_stop_reports_crash(void **state)
{
	const char *dir = *state;
	struct ag_state *s = open_state(dir);
	struct content c1;
	make_content(&c1, "crashy");
	struct ag_boot b1, b2;
	struct fb_err err = {""};
	assert_int_equal(ag_boot_begin(s, T0, &b1, &err), FB_OK);
	apply(s, 291, &c1, 4, T0 + 1);
	ag_boot_note_crash(s, b1.boot_id, "test-hook");
	ag_state_free(s); /* "crash": no ag_boot_end */

	s = open_state(dir);
	assert_int_equal(ag_boot_begin(s, T0 + 30, &b2, &err), FB_OK);
	assert_int_equal(b2.prev_unclean, 1);
	assert_string_equal(b2.prev_boot_id, b1.boot_id);
	json_t *ev = find_event(s, "crash", 0);
	assert_non_null(ev);
	assert_string_equal(json_string_value(json_object_get(ev, "boot_id")), b1.boot_id);
	assert_string_equal(json_string_value(json_object_get(ev, "content")), c1.sha);
	assert_int_equal(json_integer_value(json_object_get(ev, "channel")), 291);
	assert_int_equal(json_integer_value(json_object_get(ev, "at")), T0 + 30);
	assert_string_equal(json_string_value(json_object_get(ev, "code")), "test-hook");
	char want[80];
	snprintf(want, sizeof want, "crash-%s-291", b1.boot_id);
	assert_string_equal(json_string_value(json_object_get(ev, "id")), want);
	assert_int_equal(s->n_unclean, 1);
	ag_state_free(s);

	/* The crash event and the unclean start were saved with the new boot. */
	s = open_state(dir);
	assert_int_equal(count_events(s, "crash"), 1);
	assert_int_equal(s->n_unclean, 1);
	ag_state_free(s);
}

/* The breadcrumb: a crash while channel 291's content was being interpreted
 * names 291 as the faulting channel; one outside any evaluation names none,
 * and a clean stop or a garbled breadcrumb names none either. */
static void test_crash_names_the_interpreted_channel(void **state)
{
	const char *dir = *state;
	struct ag_state *s = open_state(dir);
	struct content c1;
	make_content(&c1, "crashy");
	struct ag_boot b;
	struct fb_err err = {""};
	assert_int_equal(ag_boot_begin(s, T0, &b, &err), FB_OK);
	assert_int_equal(b.prev_interpreting, 0);
	apply(s, 291, &c1, 4, T0 + 1);
	ag_breadcrumb(s, 291);
	ag_state_free(s); /* crashed inside the evaluation */

	s = open_state(dir);
	assert_int_equal(ag_boot_begin(s, T0 + 30, &b, &err), FB_OK);
	assert_int_equal(b.prev_unclean, 1);
	assert_int_equal(b.prev_interpreting, 291);
	json_t *ev = find_event(s, "crash", 0);
	assert_non_null(ev);
	assert_int_equal(json_integer_value(json_object_get(ev, "faulting_channel")), 291);
	ag_state_free(s); /* crashed again, outside any evaluation */

	s = open_state(dir);
	assert_int_equal(ag_boot_begin(s, T0 + 60, &b, &err), FB_OK);
	assert_int_equal(b.prev_unclean, 1);
	assert_int_equal(b.prev_interpreting, 0); /* the last boot cleared it */
	assert_null(json_object_get(find_event(s, "crash", 1), "faulting_channel"));
	/* interpreting, then done: a clean stop reports nothing at all */
	ag_breadcrumb(s, 291);
	ag_breadcrumb(s, 0);
	assert_int_equal(ag_boot_end(s, b.boot_id, &err), FB_OK);
	ag_state_free(s);
	s = open_state(dir);
	assert_int_equal(ag_boot_begin(s, T0 + 90, &b, &err), FB_OK);
	assert_int_equal(b.prev_unclean, 0);
	assert_int_equal(b.prev_interpreting, 0);
	ag_state_free(s);

	/* a breadcrumb that is not a channel (torn, or written by someone
	 * else) names none */
	static const char *const garbled[] = {"", "291", "0\n", "4294967296\n", "x\n", "29 1\n"};
	for (size_t i = 0; i < sizeof garbled / sizeof garbled[0]; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/interpreting", dir);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(garbled[i], f);
		fclose(f);
		s = open_state(dir);
		assert_int_equal(ag_boot_begin(s, T0 + 120 + (int64_t)i, &b, &err), FB_OK);
		assert_int_equal(b.prev_interpreting, 0);
		ag_state_free(s);
	}
}

/* ---- the boot-loop guard --------------------------------------------------- */

/* n unclean starts at now, now+step, ...; returns the last boot. */
static void crash_boots(const char *dir, int n, int64_t now, int64_t step, struct ag_boot *last)
{
	for (int i = 0; i < n; i++) {
		struct ag_state *s = open_state(dir);
		struct fb_err err = {""};
		assert_int_equal(ag_boot_begin(s, now + i * step, last, &err), FB_OK);
		ag_state_free(s);
	}
}

static void test_boot_loop_reverts_to_lkg(void **state)
{
	const char *dir = *state;
	struct ag_state *s = open_state(dir);
	struct content good, bad;
	make_content(&good, "known good");
	make_content(&bad, "channel file 291");
	struct ag_boot b;
	struct fb_err err = {""};
	assert_int_equal(ag_boot_begin(s, T0, &b, &err), FB_OK);
	apply(s, 291, &good, 1, T0 + 1);
	assert_int_equal(ag_boot_end(s, b.boot_id, &err), FB_OK);
	assert_int_equal(ag_boot_begin(s, T0 + 100, &b, &err), FB_OK);
	s->sequence = 41;
	apply(s, 291, &bad, 2, T0 + 101);
	ag_state_free(s); /* crash right after applying */

	/* Two unclean starts: not yet. */
	crash_boots(dir, 2, T0 + 110, 20, &b);
	s = open_state(dir);
	size_t reverted = 99;
	assert_int_equal(ag_bootloop_check(s, &GUARD, b.boot_id, T0 + 130, &reverted, &err), FB_OK);
	assert_int_equal(reverted, 0);
	assert_string_equal(ag_state_active(s, 291), bad.sha);
	ag_state_free(s);

	/* The third: back on the last known good content, by itself. */
	crash_boots(dir, 1, T0 + 150, 0, &b);
	s = open_state(dir);
	assert_int_equal(ag_bootloop_check(s, &GUARD, b.boot_id, T0 + 150, &reverted, &err), FB_OK);
	assert_int_equal(reverted, 1);
	assert_string_equal(ag_state_active(s, 291), good.sha);
	assert_int_equal(pointer(s, 291), 'A');
	assert_active_bytes(s, 291, good.bytes);
	const struct ag_refusal *r = ag_refused(s, 291, bad.sha);
	assert_non_null(r);
	assert_int_equal(r->sequence, 41);
	assert_non_null(strstr(r->reason, "3 unclean starts"));
	json_t *ev = find_event(s, "boot_loop", 0);
	assert_non_null(ev);
	assert_string_equal(json_string_value(json_object_get(ev, "reverted_from")), bad.sha);
	assert_string_equal(json_string_value(json_object_get(ev, "reverted_to")), good.sha);
	assert_int_equal(json_integer_value(json_object_get(ev, "unclean_starts")), 3);
	assert_string_equal(json_string_value(json_object_get(ev, "boot_id")), b.boot_id);
	/* Three crash reports, all naming the bad content. */
	assert_int_equal(count_events(s, "crash"), 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(
		        json_string_value(json_object_get(find_event(s, "crash", i), "content")),
		        bad.sha);
	assert_int_equal(s->n_unclean, 0);
	ag_state_free(s);

	/* Persisted: a restart keeps the revert and the refusal, and the guard
	 * does not fire again. */
	s = open_state(dir);
	assert_string_equal(ag_state_active(s, 291), good.sha);
	assert_non_null(ag_refused(s, 291, bad.sha));
	assert_int_equal(ag_bootloop_check(s, &GUARD, "x", T0 + 160, &reverted, &err), FB_OK);
	assert_int_equal(reverted, 0);
	/* The refusal holds for the same or an older sequence, and for a newer
	 * one naming the same content; it is lifted by a newer one naming other
	 * content. */
	assert_int_equal(ag_refusals_lift(s, 291, good.sha, 41), 0);
	assert_int_equal(ag_refusals_lift(s, 291, bad.sha, 42), 0);
	assert_int_equal(ag_refusals_lift(s, 292, good.sha, 42), 0);
	assert_non_null(ag_refused(s, 291, bad.sha));
	assert_int_equal(ag_refusals_lift(s, 291, good.sha, 42), 1);
	assert_null(ag_refused(s, 291, bad.sha));
	ag_state_free(s);
}

static void test_boot_loop_without_lkg_deactivates(void **state)
{
	const char *dir = *state;
	struct ag_state *s = open_state(dir);
	struct content first;
	make_content(&first, "first ever");
	struct ag_boot b0;
	struct fb_err e0 = {""};
	assert_int_equal(ag_boot_begin(s, T0, &b0, &e0), FB_OK);
	apply(s, 5, &first, 1, T0);
	ag_state_free(s);
	struct ag_boot b;
	crash_boots(dir, 3, T0 + 10, 10, &b);
	s = open_state(dir);
	size_t reverted = 0;
	struct fb_err err = {""};
	assert_int_equal(ag_bootloop_check(s, &GUARD, b.boot_id, T0 + 30, &reverted, &err), FB_OK);
	assert_int_equal(reverted, 1);
	assert_null(ag_state_active(s, 5));
	assert_int_equal(pointer(s, 5), 0);
	json_t *ev = find_event(s, "boot_loop", 0);
	assert_string_equal(json_string_value(json_object_get(ev, "reverted_from")), first.sha);
	assert_string_equal(json_string_value(json_object_get(ev, "reverted_to")), "");
	assert_non_null(ag_refused(s, 5, first.sha));
	ag_state_free(s);
}

static void test_boot_loop_window_and_change_time(void **state)
{
	const char *dir = *state;
	struct ag_state *s = open_state(dir);
	struct content a, b;
	make_content(&a, "a");
	make_content(&b, "b");
	struct ag_boot b0;
	struct fb_err e0 = {""};
	assert_int_equal(ag_boot_begin(s, T0, &b0, &e0), FB_OK);
	apply(s, 9, &a, 1, T0);
	ag_state_free(s);
	/* Unclean starts before the content change do not count. */
	struct ag_boot bt;
	crash_boots(dir, 2, T0 + 10, 10, &bt);
	s = open_state(dir);
	apply(s, 9, &b, 2, T0 + 100);
	ag_state_free(s);
	crash_boots(dir, 2, T0 + 110, 10, &bt);
	s = open_state(dir);
	size_t reverted = 0;
	struct fb_err err = {""};
	assert_int_equal(s->n_unclean, 4);
	assert_int_equal(ag_bootloop_check(s, &GUARD, bt.boot_id, T0 + 120, &reverted, &err),
	                 FB_OK);
	assert_int_equal(reverted, 0);
	ag_state_free(s);
	/* Starts spread over more than M minutes do not count either. */
	crash_boots(dir, 1, T0 + 110 + 11 * 60, 0, &bt);
	s = open_state(dir);
	assert_int_equal(
	        ag_bootloop_check(s, &GUARD, bt.boot_id, T0 + 110 + 11 * 60, &reverted, &err),
	        FB_OK);
	assert_int_equal(reverted, 0);
	assert_string_equal(ag_state_active(s, 9), b.sha);
	ag_state_free(s);
	/* Two more within the window: three in the last ten minutes. */
	crash_boots(dir, 2, T0 + 120 + 11 * 60, 5, &bt);
	s = open_state(dir);
	assert_int_equal(
	        ag_bootloop_check(s, &GUARD, bt.boot_id, T0 + 125 + 11 * 60, &reverted, &err),
	        FB_OK);
	assert_int_equal(reverted, 1);
	assert_string_equal(ag_state_active(s, 9), a.sha);
	ag_state_free(s);
}

/* Only the channel changed last is reverted; another stays. */
static void test_boot_loop_reverts_latest_change_only(void **state)
{
	const char *dir = *state;
	struct ag_state *s = open_state(dir);
	struct content a1, a2, b1, b2;
	make_content(&a1, "a1");
	make_content(&a2, "a2");
	make_content(&b1, "b1");
	make_content(&b2, "b2");
	struct ag_boot b0;
	struct fb_err e0 = {""};
	assert_int_equal(ag_boot_begin(s, T0, &b0, &e0), FB_OK);
	apply(s, 1, &a1, 1, T0);
	apply(s, 2, &b1, 1, T0);
	apply(s, 1, &a2, 2, T0 + 50);
	apply(s, 2, &b2, 2, T0 + 60);
	ag_state_free(s);
	struct ag_boot bt;
	crash_boots(dir, 3, T0 + 70, 5, &bt);
	s = open_state(dir);
	size_t reverted = 0;
	struct fb_err err = {""};
	assert_int_equal(ag_bootloop_check(s, &GUARD, bt.boot_id, T0 + 80, &reverted, &err), FB_OK);
	assert_int_equal(reverted, 1);
	assert_string_equal(ag_state_active(s, 1), a2.sha);
	assert_string_equal(ag_state_active(s, 2), b1.sha);
	ag_state_free(s);
}

/* ---- events ------------------------------------------------------------------ */

static json_t *ev(const char *id, int64_t at)
{
	return json_pack("{s:s, s:s, s:I}", "id", id, "kind", "applied", "at", (json_int_t)at);
}

static void test_events_dedupe_cap_expire(void **state)
{
	const char *dir = *state;
	struct ag_state *s = open_state(dir);
	assert_int_equal(ag_event_add(s, ev("e1", T0)), FB_OK);
	assert_int_equal(ag_event_add(s, ev("e1", T0 + 1)), FB_OK);
	assert_int_equal(json_array_size(s->events), 1);
	assert_int_equal(ag_event_add(s, json_pack("{s:s}", "kind", "applied")), FB_EINVAL);
	for (int i = 0; i < AG_MAX_EVENTS + 5; i++) {
		char id[32];
		snprintf(id, sizeof id, "n%d", i);
		assert_int_equal(ag_event_add(s, ev(id, T0 + 10)), FB_OK);
	}
	assert_int_equal(json_array_size(s->events), AG_MAX_EVENTS);
	/* The oldest went first. */
	assert_string_equal(json_string_value(json_object_get(json_array_get(s->events, 0), "id")),
	                    "n5");
	ag_events_remove_first(s, AG_MAX_EVENTS - 2);
	assert_int_equal(json_array_size(s->events), 2);
	struct fb_err err = {""};
	assert_int_equal(ag_state_save(s, &err), FB_OK);
	ag_state_free(s);
	s = open_state(dir);
	assert_int_equal(json_array_size(s->events), 2);
	assert_int_equal(ag_event_add(s, ev("old", T0 - AG_EVENT_MAX_AGE)), FB_OK);
	assert_int_equal(ag_events_expire(s, T0 + 10), 1);
	assert_int_equal(json_array_size(s->events), 2);
	ag_state_free(s);
}

/* ---- identity ---------------------------------------------------------------- */

static void test_identity(void **state)
{
	const char *dir = *state;
	struct ag_identity id, back;
	int found = 1;
	struct fb_err err = {""};
	assert_int_equal(ag_identity_load(dir, &back, &found, &err), FB_OK);
	assert_int_equal(found, 0);
	ag_identity_generate(&id);
	id.agent_id = 42;
	snprintf(id.token, sizeof id.token, "fa_42_%s", "00ff");
	assert_int_equal(ag_identity_save(dir, &id, &err), FB_OK);
	char p[4096];
	snprintf(p, sizeof p, "%s/identity.json", dir);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(ag_identity_load(dir, &back, &found, &err), FB_OK);
	assert_int_equal(found, 1);
	assert_int_equal(back.agent_id, 42);
	assert_string_equal(back.token, "fa_42_00ff");
	assert_memory_equal(back.pk, id.pk, sizeof id.pk);
	assert_memory_equal(back.seed, id.seed, sizeof id.seed);
	/* Readable by others: refused, with the fix in the message. */
	assert_int_equal(chmod(p, 0644), 0);
	assert_int_equal(ag_identity_load(dir, &back, &found, &err), FB_EPERM);
	assert_non_null(strstr(err.msg, "chmod 600"));
	assert_int_equal(found, 0);
	/* A seed that does not give the public key: refused. */
	write_file(dir, "identity.json",
	           "{\"agent_id\":1,\"agent_token\":\"t\",\"seed\":"
	           "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"public_key\":"
	           "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}",
	           0600);
	assert_int_equal(ag_identity_load(dir, &back, &found, &err), FB_EFORMAT);
	assert_non_null(strstr(err.msg, "does not match"));
	ag_identity_wipe(&id);
}

/* ---- libfbclient's config reader ------------------------------------------- */

struct kv {
	char keys[8][64], vals[8][256];
	int n;
};

static enum fb_rc collect(void *ctx, const char *key, const char *value, struct fb_err *err)
{
	struct kv *kv = ctx;
	if (strcmp(key, "refuse") == 0) {
		fb_err_set(err, "refused key");
		return FB_EINVAL;
	}
	assert_true(kv->n < 8);
	snprintf(kv->keys[kv->n], sizeof kv->keys[0], "%s", key);
	snprintf(kv->vals[kv->n], sizeof kv->vals[0], "%s", value);
	kv->n++;
	return FB_OK;
}

static void test_config_reader(void **state)
{
	const char *dir = *state;
	char p[4096];
	snprintf(p, sizeof p, "%s/agent.conf", dir);
	write_file(dir, "agent.conf",
	           "# fb-agent\n\nserver = https://fb.example:8443\n  state_dir=/var/lib/x  \n"
	           "enroll-token = \"fe_ a b \"\nchannels =\n",
	           0600);
	struct kv kv;
	memset(&kv, 0, sizeof kv);
	struct fb_err err = {""};
	assert_int_equal(fbc_conf_read(p, collect, &kv, &err), FB_OK);
	assert_int_equal(kv.n, 4);
	assert_string_equal(kv.keys[0], "server");
	assert_string_equal(kv.vals[0], "https://fb.example:8443");
	assert_string_equal(kv.keys[1], "state_dir");
	assert_string_equal(kv.vals[1], "/var/lib/x");
	assert_string_equal(kv.vals[2], "fe_ a b ");
	assert_string_equal(kv.keys[3], "channels");
	assert_string_equal(kv.vals[3], "");

	static const struct {
		const char *text, *msg;
	} bad[] = {
	        {"server https://x\n", "agent.conf:1: expected \"key = value\""},
	        {"a = 1\n = 2\n", "agent.conf:2: empty key"},
	        {"a = 1\nb c = 2\n", "agent.conf:2: bad character in key \"b c\""},
	        {"ok = 1\nrefuse = 1\n", "agent.conf:2: refused key"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_file(dir, "agent.conf", bad[i].text, 0600);
		memset(&kv, 0, sizeof kv);
		assert_int_not_equal(fbc_conf_read(p, collect, &kv, &err), FB_OK);
		assert_non_null(strstr(err.msg, bad[i].msg));
	}
	/* Over the line cap and over the file cap. */
	char *big = malloc(FBC_MAX_CONF + 2);
	assert_non_null(big);
	memset(big, 'a', FBC_MAX_CONF + 1);
	big[FBC_MAX_CONF + 1] = '\0';
	write_file(dir, "agent.conf", big + FBC_MAX_CONF - FBC_MAX_LINE - 8, 0600);
	assert_int_equal(fbc_conf_read(p, collect, &kv, &err), FB_EINVAL);
	assert_non_null(strstr(err.msg, "line longer than"));
	write_file(dir, "agent.conf", big, 0600);
	assert_int_equal(fbc_conf_read(p, collect, &kv, &err), FB_ETOOBIG);
	free(big);
	snprintf(p, sizeof p, "%s/missing.conf", dir);
	assert_int_equal(fbc_conf_read(p, collect, &kv, &err), FB_EIO);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_apply_alternates_slots_and_keeps_lkg),
	        T(test_deactivate),
	        T(test_apply_refuses_bad_digest),
	        T(test_malformed_state_is_refused),
	        T(test_clean_stop_reports_nothing),
	        T(test_unclean_stop_reports_crash),
	        T(test_crash_names_the_interpreted_channel),
	        T(test_boot_loop_reverts_to_lkg),
	        T(test_boot_loop_without_lkg_deactivates),
	        T(test_boot_loop_window_and_change_time),
	        T(test_boot_loop_reverts_latest_change_only),
	        T(test_events_dedupe_cap_expire),
	        T(test_identity),
	        T(test_config_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
