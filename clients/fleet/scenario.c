/* fb-fleet scenarios: parsing, scaling to a fleet size and time scale, and
 * checking expectations against a run's summary. No I/O beyond reading the
 * file. */
#include "scenario.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int known_key(const char *k, const char *const *allowed)
{
	for (size_t i = 0; allowed[i]; i++)
		if (strcmp(k, allowed[i]) == 0)
			return 1;
	return 0;
}

/* Refuse keys of obj not in allowed, naming where. */
static enum fb_rc only_keys(const json_t *obj, const char *const *allowed, const char *where,
                            struct fb_err *err)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v)
	{
		if (!known_key(k, allowed)) {
			fb_err_set(err, "%s: unknown field '%s'", where, k);
			return FB_EINVAL;
		}
	}
	return FB_OK;
}

/* Optional number in [lo, hi]; *out unchanged when absent. */
static enum fb_rc get_num(const json_t *obj, const char *key, double lo, double hi, double *out,
                          const char *where, struct fb_err *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return FB_OK;
	if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi) {
		fb_err_set(err, "%s.%s must be a number in [%g, %g]", where, key, lo, hi);
		return FB_EINVAL;
	}
	*out = json_number_value(v);
	return FB_OK;
}

static enum fb_rc get_str(const json_t *obj, const char *key, int required, char *out, size_t cap,
                          const char *where, struct fb_err *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v && !required)
		return FB_OK;
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= cap) {
		fb_err_set(err, "%s.%s must be a string of 1..%zu bytes", where, key, cap - 1);
		return FB_EINVAL;
	}
	snprintf(out, cap, "%s", json_string_value(v));
	return FB_OK;
}

/* A copy of a policy-override object with its times (min_bake_s,
 * silence_timeout_s, max_wait_s) multiplied by scale (rounded up). Other
 * keys are left for the server to check. *out: new reference. */
static enum fb_rc scale_policy(const json_t *p, double scale, json_t **out, const char *where,
                               struct fb_err *err)
{
	*out = NULL;
	if (!json_is_object(p)) {
		fb_err_set(err, "%s must be an object", where);
		return FB_EINVAL;
	}
	json_t *c = json_deep_copy(p);
	if (!c)
		return FB_ENOMEM;
	static const char *const timed[] = {"min_bake_s", "silence_timeout_s", "max_wait_s"};
	for (size_t i = 0; i < sizeof timed / sizeof timed[0]; i++) {
		json_t *v = json_object_get(c, timed[i]);
		if (v && json_is_number(v))
			json_object_set_new(
			        c, timed[i],
			        json_integer((json_int_t)ceil(json_number_value(v) * scale)));
	}
	*out = c;
	return FB_OK;
}

static int content_index(const struct scenario *s, const char *name)
{
	for (int i = 0; i < s->n_contents; i++)
		if (strcmp(s->contents[i].name, name) == 0)
			return i;
	return -1;
}

int scn_ring_index(const struct scenario *s, const char *name)
{
	for (int i = 0; i < s->n_rings; i++)
		if (strcmp(s->rings[i].name, name) == 0)
			return i;
	return -1;
}

static enum fb_rc parse_rings(const json_t *rings, int64_t agents, struct scenario *s,
                              struct fb_err *err)
{
	static const char *const allowed[] = {"name", "agents", NULL};
	if (!json_is_array(rings) || json_array_size(rings) < 1 ||
	    json_array_size(rings) > SCN_MAX_RINGS) {
		fb_err_set(err, "rings must be an array of 1..%d rings", SCN_MAX_RINGS);
		return FB_EINVAL;
	}
	int64_t total = 0;
	size_t i;
	json_t *r;
	json_array_foreach(rings, i, r)
	{
		char where[32];
		snprintf(where, sizeof where, "rings[%zu]", i);
		enum fb_rc rc;
		if (!json_is_object(r)) {
			fb_err_set(err, "%s must be an object", where);
			return FB_EINVAL;
		}
		if ((rc = only_keys(r, allowed, where, err)) ||
		    (rc = get_str(r, "name", 1, s->rings[i].name, SCN_MAX_NAME, where, err)))
			return rc;
		json_t *n = json_object_get(r, "agents");
		if (!json_is_integer(n) || json_integer_value(n) < 1 ||
		    json_integer_value(n) > 10000000) {
			fb_err_set(err, "%s.agents must be an integer in [1, 10000000]", where);
			return FB_EINVAL;
		}
		s->rings[i].agents = json_integer_value(n);
		total += s->rings[i].agents;
		s->n_rings = (int)i; /* the rings before this one */
		if (scn_ring_index(s, s->rings[i].name) >= 0) {
			fb_err_set(err, "%s: ring name '%s' is used twice", where,
			           s->rings[i].name);
			return FB_EINVAL;
		}
		s->n_rings = (int)i + 1;
	}
	s->agents = total;
	if (agents > 0 && agents != total) {
		/* Keep each ring's share; the last ring takes the rounding. */
		int64_t given = 0;
		for (int k = 0; k < s->n_rings - 1; k++) {
			int64_t n = (int64_t)llround((double)s->rings[k].agents * (double)agents /
			                             (double)total);
			s->rings[k].agents = n < 1 ? 1 : n;
			given += s->rings[k].agents;
		}
		if (agents - given < 1) {
			fb_err_set(err, "%lld agents are too few for %d rings", (long long)agents,
			           s->n_rings);
			return FB_EINVAL;
		}
		s->rings[s->n_rings - 1].agents = agents - given;
		s->agents = agents;
	}
	return FB_OK;
}

static enum fb_rc parse_contents(const json_t *cs, const char *base_dir, struct scenario *s,
                                 struct fb_err *err)
{
	static const char *const allowed[] = {"upload",      "crash_probability", "crash_delay_s",
	                                      "after_crash", "boot_loop",         NULL};
	if (!json_is_object(cs) || json_object_size(cs) < 1 ||
	    json_object_size(cs) > SCN_MAX_CONTENTS) {
		fb_err_set(err, "contents must be an object of 1..%d named contents",
		           SCN_MAX_CONTENTS);
		return FB_EINVAL;
	}
	const char *name;
	json_t *c;
	json_object_foreach((json_t *)cs, name, c)
	{
		struct scn_content *k = &s->contents[s->n_contents];
		char where[96];
		snprintf(where, sizeof where, "contents.%.64s", name);
		enum fb_rc rc;
		if (strlen(name) == 0 || strlen(name) >= SCN_MAX_NAME) {
			fb_err_set(err, "%s: a content name has 1..%d bytes", where,
			           SCN_MAX_NAME - 1);
			return FB_EINVAL;
		}
		if (!json_is_object(c)) {
			fb_err_set(err, "%s must be an object", where);
			return FB_EINVAL;
		}
		snprintf(k->name, sizeof k->name, "%s", name);
		char up[900];
		k->crash_delay_s = 1;
		if ((rc = only_keys(c, allowed, where, err)) ||
		    (rc = get_str(c, "upload", 1, up, sizeof up, where, err)) ||
		    (rc = get_num(c, "crash_probability", 0, 1, &k->crash_probability, where,
		                  err)) ||
		    (rc = get_num(c, "crash_delay_s", 0, 3600, &k->crash_delay_s, where, err)))
			return rc;
		if (up[0] == '/' || !base_dir)
			snprintf(k->upload, sizeof k->upload, "%s", up);
		else
			snprintf(k->upload, sizeof k->upload, "%s/%s", base_dir, up);
		json_t *ac = json_object_get(c, "after_crash");
		if (ac && !(json_is_string(ac) && (strcmp(json_string_value(ac), "reboot") == 0 ||
		                                   strcmp(json_string_value(ac), "silent") == 0))) {
			fb_err_set(err, "%s.after_crash must be \"reboot\" or \"silent\"", where);
			return FB_EINVAL;
		}
		k->after_crash = ac && strcmp(json_string_value(ac), "silent") == 0 ? SCN_SILENT
		                                                                    : SCN_REBOOT;
		json_t *bl = json_object_get(c, "boot_loop");
		if (bl && !json_is_boolean(bl)) {
			fb_err_set(err, "%s.boot_loop must be a boolean", where);
			return FB_EINVAL;
		}
		k->boot_loop = json_is_true(bl);
		s->n_contents++;
	}
	return FB_OK;
}

static enum fb_rc parse_blips(const json_t *bs, struct scenario *s, struct fb_err *err)
{
	static const char *const allowed[] = {"ring", "fraction", "after_s", "duration_s", NULL};
	if (!bs)
		return FB_OK;
	if (!json_is_array(bs) || json_array_size(bs) > SCN_MAX_BLIPS) {
		fb_err_set(err, "blips must be an array of at most %d blips", SCN_MAX_BLIPS);
		return FB_EINVAL;
	}
	size_t i;
	json_t *b;
	json_array_foreach(bs, i, b)
	{
		char where[32], ring[SCN_MAX_NAME];
		snprintf(where, sizeof where, "blips[%zu]", i);
		struct scn_blip *p = &s->blips[i];
		enum fb_rc rc;
		if (!json_is_object(b)) {
			fb_err_set(err, "%s must be an object", where);
			return FB_EINVAL;
		}
		p->fraction = 0.2;
		p->duration_s = 3;
		if ((rc = only_keys(b, allowed, where, err)) ||
		    (rc = get_str(b, "ring", 1, ring, sizeof ring, where, err)) ||
		    (rc = get_num(b, "fraction", 0, 1, &p->fraction, where, err)) ||
		    (rc = get_num(b, "after_s", 0, 86400, &p->after_s, where, err)) ||
		    (rc = get_num(b, "duration_s", 0, 86400, &p->duration_s, where, err)))
			return rc;
		p->ring = scn_ring_index(s, ring);
		if (p->ring < 0) {
			fb_err_set(err, "%s.ring: no ring '%s'", where, ring);
			return FB_EINVAL;
		}
		s->n_blips = (int)i + 1;
	}
	return FB_OK;
}

static enum fb_rc parse_expect(const json_t *e, struct scenario *s, struct fb_err *err)
{
	static const char *const allowed[] = {"state",
	                                      "max_ring",
	                                      "max_exposure",
	                                      "on_bad_content",
	                                      "exposed_on_last_known_good",
	                                      "false_halts",
	                                      "upload_rejected",
	                                      "halted_by_silence",
	                                      NULL};
	struct scn_expect *x = &s->expect;
	x->max_ring = -1;
	x->max_exposure = -1;
	x->max_on_bad = -1;
	x->max_false_halts = -1;
	if (!e)
		return FB_OK;
	enum fb_rc rc;
	if (!json_is_object(e)) {
		fb_err_set(err, "expect must be an object");
		return FB_EINVAL;
	}
	if ((rc = only_keys(e, allowed, "expect", err)))
		return rc;
	json_t *st = json_object_get(e, "state");
	json_t *one = json_is_string(st) ? json_pack("[O]", st) : json_incref(st);
	size_t i;
	json_t *v;
	if (st && (!json_is_array(one) || json_array_size(one) > 8)) {
		json_decref(one);
		fb_err_set(err, "expect.state must be a state or an array of at most 8");
		return FB_EINVAL;
	}
	json_array_foreach(one, i, v)
	{
		if (!json_is_string(v) || json_string_length(v) >= sizeof x->states[0]) {
			json_decref(one);
			fb_err_set(err, "expect.state[%zu] must be a state name", i);
			return FB_EINVAL;
		}
		snprintf(x->states[i], sizeof x->states[i], "%s", json_string_value(v));
		x->n_states = (int)i + 1;
	}
	json_decref(one);
	json_t *mr = json_object_get(e, "max_ring");
	if (mr) {
		x->max_ring = json_is_string(mr) ? scn_ring_index(s, json_string_value(mr)) : -1;
		if (x->max_ring < 0) {
			fb_err_set(err, "expect.max_ring must name a ring");
			return FB_EINVAL;
		}
	}
	json_t *me = json_object_get(e, "max_exposure");
	if (me) {
		if (json_is_string(me) && strcmp(json_string_value(me), "ring0") == 0)
			x->max_exposure = -2;
		else if (json_is_integer(me) && json_integer_value(me) >= 0)
			x->max_exposure = json_integer_value(me);
		else {
			fb_err_set(err, "expect.max_exposure must be \"ring0\" or an integer >= 0");
			return FB_EINVAL;
		}
	}
	static const char *const counts[] = {"on_bad_content", "false_halts"};
	int64_t *dst[] = {&x->max_on_bad, &x->max_false_halts};
	for (size_t k = 0; k < 2; k++) {
		json_t *c = json_object_get(e, counts[k]);
		if (!c)
			continue;
		if (!json_is_integer(c) || json_integer_value(c) < 0) {
			fb_err_set(err, "expect.%s must be an integer >= 0 (the most allowed)",
			           counts[k]);
			return FB_EINVAL;
		}
		*dst[k] = json_integer_value(c);
	}
	static const char *const flags[] = {"exposed_on_last_known_good", "upload_rejected",
	                                    "halted_by_silence"};
	int *fdst[] = {&x->exposed_on_lkg, &x->upload_rejected, &x->halted_by_silence};
	for (size_t k = 0; k < 3; k++) {
		json_t *c = json_object_get(e, flags[k]);
		if (c && !json_is_boolean(c)) {
			fb_err_set(err, "expect.%s must be a boolean", flags[k]);
			return FB_EINVAL;
		}
		*fdst[k] = json_is_true(c);
	}
	return FB_OK;
}

enum fb_rc scn_parse(const char *text, size_t len, const char *base_dir, int64_t agents,
                     double time_scale, struct scenario *out, struct fb_err *err)
{
	static const char *const allowed[] = {"name",
	                                      "description",
	                                      "channel",
	                                      "rings",
	                                      "contents",
	                                      "baseline",
	                                      "rollout",
	                                      "timing",
	                                      "background_crash_rate",
	                                      "background_window_s",
	                                      "blips",
	                                      "settle_s",
	                                      "timeout_s",
	                                      "expect",
	                                      NULL};
	static const char *const timing_keys[] = {"heartbeat_s", "poll_s", "reboot_s",
	                                          "boot_loop_starts", NULL};
	static const char *const rollout_keys[] = {"content", "policy", "ring_policies", NULL};
	enum fb_rc rc = FB_OK;
	json_error_t jerr;
	memset(out, 0, sizeof *out);
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j || !json_is_object(j)) {
		fb_err_set(err, "not a JSON object (line %d: %s)", jerr.line,
		           j ? "top level" : jerr.text);
		rc = FB_EINVAL;
		goto out;
	}
	struct scenario *s = out;
	s->heartbeat_s = 1;
	s->poll_s = 1;
	s->reboot_s = 1;
	s->boot_loop_starts = 3;
	s->background_window_s = 30;
	s->settle_s = 5;
	s->timeout_s = 300;
	snprintf(s->name, sizeof s->name, "scenario");
	if ((rc = only_keys(j, allowed, "scenario", err)) ||
	    (rc = get_str(j, "name", 0, s->name, sizeof s->name, "scenario", err)) ||
	    (rc = parse_rings(json_object_get(j, "rings"), agents, s, err)) ||
	    (rc = parse_contents(json_object_get(j, "contents"), base_dir, s, err)) ||
	    (rc = parse_blips(json_object_get(j, "blips"), s, err)) ||
	    (rc = parse_expect(json_object_get(j, "expect"), s, err)) ||
	    (rc = get_num(j, "background_crash_rate", 0, 1, &s->background_crash_rate, "scenario",
	                  err)) ||
	    (rc = get_num(j, "background_window_s", 0, 86400, &s->background_window_s, "scenario",
	                  err)) ||
	    (rc = get_num(j, "settle_s", 0, 86400, &s->settle_s, "scenario", err)) ||
	    (rc = get_num(j, "timeout_s", 1, 86400, &s->timeout_s, "scenario", err)))
		goto out;
	json_t *ch = json_object_get(j, "channel");
	json_t *cid = json_object_get(ch, "id");
	if (!json_is_object(ch) || !json_is_integer(cid) || json_integer_value(cid) < 1 ||
	    json_integer_value(cid) > 0xffffffffLL) {
		fb_err_set(err, "channel must be {\"id\": 1..4294967295, \"name\": \"...\"}");
		rc = FB_EINVAL;
		goto out;
	}
	s->channel_id = (uint32_t)json_integer_value(cid);
	snprintf(s->channel_name, sizeof s->channel_name, "channel-%u", s->channel_id);
	if ((rc = get_str(ch, "name", 0, s->channel_name, sizeof s->channel_name, "channel", err)))
		goto out;
	json_t *t = json_object_get(j, "timing");
	if (t) {
		double bls = s->boot_loop_starts;
		if (!json_is_object(t)) {
			fb_err_set(err, "timing must be an object");
			rc = FB_EINVAL;
			goto out;
		}
		if ((rc = only_keys(t, timing_keys, "timing", err)) ||
		    (rc = get_num(t, "heartbeat_s", 0.05, 3600, &s->heartbeat_s, "timing", err)) ||
		    (rc = get_num(t, "poll_s", 0.05, 3600, &s->poll_s, "timing", err)) ||
		    (rc = get_num(t, "reboot_s", 0, 3600, &s->reboot_s, "timing", err)) ||
		    (rc = get_num(t, "boot_loop_starts", 1, 100, &bls, "timing", err)))
			goto out;
		s->boot_loop_starts = (int)bls;
	}
	json_t *b = json_object_get(j, "baseline");
	s->baseline = json_is_string(b) ? content_index(s, json_string_value(b)) : -1;
	if (s->baseline < 0) {
		fb_err_set(err,
		           "baseline must name one of contents (rolled out to GA before the test)");
		rc = FB_EINVAL;
		goto out;
	}
	json_t *r = json_object_get(j, "rollout");
	if (!json_is_object(r)) {
		fb_err_set(
		        err,
		        "rollout must be an object {\"content\", \"policy\"?, \"ring_policies\"?}");
		rc = FB_EINVAL;
		goto out;
	}
	if ((rc = only_keys(r, rollout_keys, "rollout", err)))
		goto out;
	json_t *rc_name = json_object_get(r, "content");
	s->rollout = json_is_string(rc_name) ? content_index(s, json_string_value(rc_name)) : -1;
	if (s->rollout < 0 || s->rollout == s->baseline) {
		fb_err_set(err,
		           "rollout.content must name one of contents other than the baseline");
		rc = FB_EINVAL;
		goto out;
	}
	if (time_scale <= 0)
		time_scale = s->agents > 1250 ? (double)s->agents / 1250.0 : 1.0;
	s->time_scale = time_scale;
	json_t *pol = json_object_get(r, "policy");
	if (pol && (rc = scale_policy(pol, time_scale, &s->policy, "rollout.policy", err)))
		goto out;
	json_t *rp = json_object_get(r, "ring_policies");
	if (rp) {
		const char *k;
		json_t *v;
		if (!json_is_object(rp)) {
			fb_err_set(err,
			           "rollout.ring_policies must be an object ring -> overrides");
			rc = FB_EINVAL;
			goto out;
		}
		s->ring_policies = json_object();
		json_object_foreach(rp, k, v)
		{
			json_t *sc;
			char where[96];
			snprintf(where, sizeof where, "rollout.ring_policies.%.64s", k);
			if ((rc = scale_policy(v, time_scale, &sc, where, err)))
				goto out;
			json_object_set_new(s->ring_policies, k, sc);
		}
	}
	s->heartbeat_s *= time_scale;
	s->poll_s *= time_scale;
	s->reboot_s *= time_scale;
	s->background_window_s *= time_scale;
	s->settle_s *= time_scale;
	s->timeout_s *= time_scale;
	for (int i = 0; i < s->n_contents; i++)
		s->contents[i].crash_delay_s *= time_scale;
	for (int i = 0; i < s->n_blips; i++) {
		s->blips[i].after_s *= time_scale;
		s->blips[i].duration_s *= time_scale;
	}
out:
	json_decref(j);
	if (rc)
		scn_cleanup(out);
	return rc;
}

enum fb_rc scn_load(const char *path, const char *content_dir, int64_t agents, double time_scale,
                    struct scenario *out, struct fb_err *err)
{
	unsigned char *text = NULL;
	size_t len = 0;
	memset(out, 0, sizeof *out);
	enum fb_rc rc = fb_file_read(path, SCN_MAX_FILE, &text, &len);
	if (rc) {
		fb_err_set(err, "%s: cannot read (%s)", path, fb_rc_str(rc));
		return rc;
	}
	char dir[1024];
	snprintf(dir, sizeof dir, "%s", content_dir ? content_dir : path);
	char *slash = content_dir ? NULL : strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else if (!content_dir)
		snprintf(dir, sizeof dir, ".");
	rc = scn_parse((const char *)text, len, dir, agents, time_scale, out, err);
	if (rc)
		fb_err_prefix(err, "%s", path);
	free(text);
	return rc;
}

void scn_cleanup(struct scenario *s)
{
	if (!s)
		return;
	json_decref(s->policy);
	json_decref(s->ring_policies);
	s->policy = NULL;
	s->ring_policies = NULL;
}

static void result(json_t *results, const char *name, int ok, const char *detail)
{
	json_array_append_new(results,
	                      json_pack("{s:s,s:b,s:s}", "name", name, "ok", ok, "detail", detail));
}

int scn_check(const struct scenario *s, const json_t *summary, json_t *results)
{
	const struct scn_expect *x = &s->expect;
	int all = 1, ok;
	char d[256];
	const json_t *ro = json_object_get(summary, "rollout");
	const char *state = json_string_value(json_object_get(ro, "state"));
	state = state ? state : "";
	if (x->n_states) {
		ok = 0;
		for (int i = 0; i < x->n_states; i++)
			ok |= strcmp(state, x->states[i]) == 0;
		snprintf(d, sizeof d, "final state %s", state);
		result(results, "state", ok, d);
		all &= ok;
	}
	if (x->max_ring >= 0) {
		json_int_t ri = json_integer_value(json_object_get(ro, "ring_index"));
		ok = ri <= x->max_ring;
		snprintf(d, sizeof d, "reached ring %lld (%s), at most %d (%s) allowed",
		         (long long)ri,
		         json_string_value(json_object_get(ro, "ring"))
		                 ? json_string_value(json_object_get(ro, "ring"))
		                 : "-",
		         x->max_ring, s->rings[x->max_ring].name);
		result(results, "max_ring", ok, d);
		all &= ok;
	}
	json_int_t exposure = json_integer_value(json_object_get(summary, "exposure_under_test"));
	if (x->max_exposure != -1) {
		int64_t lim = x->max_exposure == -2 ? s->rings[0].agents : x->max_exposure;
		ok = exposure <= lim;
		snprintf(d, sizeof d,
		         "%lld agents applied the content under test, at most %lld allowed",
		         (long long)exposure, (long long)lim);
		result(results, "max_exposure", ok, d);
		all &= ok;
	}
	if (x->max_on_bad >= 0) {
		json_int_t n = json_integer_value(json_object_get(summary, "on_bad_content"));
		ok = n <= x->max_on_bad;
		snprintf(d, sizeof d,
		         "%lld agents still run the content under test, at most %lld allowed",
		         (long long)n, (long long)x->max_on_bad);
		result(results, "on_bad_content", ok, d);
		all &= ok;
	}
	if (x->exposed_on_lkg) {
		json_int_t n = json_integer_value(
		        json_object_get(summary, "exposed_not_on_last_known_good"));
		ok = n == 0;
		snprintf(d, sizeof d,
		         "%lld exposed live agents are not back on the last known good",
		         (long long)n);
		result(results, "exposed_on_last_known_good", ok, d);
		all &= ok;
	}
	if (x->max_false_halts >= 0) {
		json_int_t n = json_integer_value(json_object_get(summary, "false_halts"));
		ok = n <= x->max_false_halts;
		snprintf(d, sizeof d, "%lld false halts, at most %lld allowed", (long long)n,
		         (long long)x->max_false_halts);
		result(results, "false_halts", ok, d);
		all &= ok;
	}
	if (x->upload_rejected) {
		const json_t *u = json_object_get(json_object_get(summary, "uploads"),
		                                  s->contents[s->rollout].name);
		ok = json_is_false(json_object_get(u, "accepted"));
		snprintf(d, sizeof d, "upload of %s: %s", s->contents[s->rollout].name,
		         ok ? "refused" : "accepted");
		result(results, "upload_rejected", ok, d);
		all &= ok;
	}
	if (x->halted_by_silence) {
		const json_t *h = json_object_get(summary, "halt_inputs");
		json_int_t silent = json_integer_value(json_object_get(h, "silent"));
		json_int_t reports = json_integer_value(json_object_get(h, "crashed")) +
		                     json_integer_value(json_object_get(h, "boot_looped"));
		ok = h && silent > 0 && reports == 0;
		snprintf(d, sizeof d,
		         "halting evaluation: %lld silent, %lld crash/boot-loop reports",
		         (long long)silent, (long long)reports);
		result(results, "halted_by_silence", ok, d);
		all &= ok;
	}
	return all;
}
