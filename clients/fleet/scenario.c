/* fb-fleet scenarios: parsing (expectations included), scaling to a fleet
 * size and time scale, platforms and tenants spread over the rings (the
 * checks of the expectations: outcome.c). No I/O beyond reading the file. */
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

const char *const scn_fact_names[SCN_N_FACTS] = {"os", "os_build", "arch", "agent_version"};

/* Policy keys that are durations (scaled) and keys of the gate v2. */
static const char *const timed_keys[] = {"min_bake_s", "silence_timeout_s", "max_wait_s",
                                         "min_exposure_s", "watch_s"};
static const char *const v2_keys[] = {"holdout",
                                      "holdout_min",
                                      "max_ratio",
                                      "min_excess",
                                      "min_segment_agents",
                                      "min_segment_canaries",
                                      "min_exposure_s",
                                      "watch_s"};

static int uses_v2_keys(const json_t *p)
{
	for (size_t i = 0; p && i < sizeof v2_keys / sizeof v2_keys[0]; i++)
		if (json_object_get(p, v2_keys[i]))
			return 1;
	return 0;
}

/* A copy of a policy-override object with its durations (timed_keys)
 * multiplied by scale (rounded up). Other keys, agent counts included, are
 * left for the server to check. *out: new reference. */
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
	for (size_t i = 0; i < sizeof timed_keys / sizeof timed_keys[0]; i++) {
		json_t *v = json_object_get(c, timed_keys[i]);
		if (v && json_is_number(v))
			json_object_set_new(
			        c, timed_keys[i],
			        json_integer((json_int_t)ceil(json_number_value(v) * scale)));
	}
	*out = c;
	return FB_OK;
}

/* Index of the content of channel k named name, or -1. */
static int content_index(const struct scenario *s, int k, const char *name)
{
	for (int i = 0; i < s->n_contents; i++)
		if (s->contents[i].channel == k && strcmp(s->contents[i].name, name) == 0)
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

/* A platform fact: 1..31 bytes of [A-Za-z0-9._+-] (sent as JSON without
 * escaping). */
static int fact_ok(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n >= SCN_MAX_FACT)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = v[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '+' || c == '-'))
			return 0;
	}
	return 1;
}

static enum fb_rc get_fact(const json_t *obj, const char *key, int required, char *out,
                           const char *where, struct fb_err *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v && !required)
		return FB_OK;
	if (!json_is_string(v) || !fact_ok(json_string_value(v))) {
		fb_err_set(err, "%s.%s must be a string of 1..%d characters [A-Za-z0-9._+-]", where,
		           key, SCN_MAX_FACT - 1);
		return FB_EINVAL;
	}
	snprintf(out, SCN_MAX_FACT, "%s", json_string_value(v));
	return FB_OK;
}

static enum fb_rc parse_platforms(const json_t *ps, struct scenario *s, struct fb_err *err)
{
	static const char *const allowed[] = {"share",         "os",    "os_build", "arch",
	                                      "agent_version", "extra", NULL};
	if (!ps)
		return FB_OK;
	if (!json_is_array(ps) || json_array_size(ps) < 1 ||
	    json_array_size(ps) > SCN_MAX_PLATFORMS) {
		fb_err_set(err, "platforms must be an array of 1..%d platforms", SCN_MAX_PLATFORMS);
		return FB_EINVAL;
	}
	double sum = 0;
	size_t i;
	json_t *p;
	json_array_foreach(ps, i, p)
	{
		char where[32];
		snprintf(where, sizeof where, "platforms[%zu]", i);
		struct scn_platform *q = &s->platforms[i];
		enum fb_rc rc;
		if (!json_is_object(p)) {
			fb_err_set(err, "%s must be an object", where);
			return FB_EINVAL;
		}
		q->share = -1;
		if ((rc = only_keys(p, allowed, where, err)) ||
		    (rc = get_num(p, "share", 0, 1, &q->share, where, err)))
			return rc;
		if (q->share <= 0) {
			fb_err_set(err, "%s.share must be a number in (0, 1]", where);
			return FB_EINVAL;
		}
		for (int f = 0; f < SCN_N_FACTS; f++)
			if ((rc = get_fact(p, scn_fact_names[f], f != SCN_AGENT_VERSION, q->fact[f],
			                   where, err)))
				return rc;
		json_t *x = json_object_get(p, "extra");
		if (x && (!json_is_object(x) || json_object_size(x) > SCN_MAX_EXTRA)) {
			fb_err_set(err, "%s.extra must be an object of at most %d facts", where,
			           SCN_MAX_EXTRA);
			return FB_EINVAL;
		}
		const char *k;
		json_t *v;
		json_object_foreach(x, k, v)
		{
			char xw[96];
			snprintf(xw, sizeof xw, "%s.extra", where);
			if (!fact_ok(k)) {
				fb_err_set(err,
				           "%s: key '%.40s' must have 1..%d characters "
				           "[A-Za-z0-9._+-]",
				           xw, k, SCN_MAX_FACT - 1);
				return FB_EINVAL;
			}
			snprintf(q->extra_key[q->n_extra], SCN_MAX_FACT, "%s", k);
			if ((rc = get_fact(x, k, 1, q->extra_val[q->n_extra], xw, err)))
				return rc;
			q->n_extra++;
		}
		/* two platforms with the same facts would be one segment */
		for (size_t o = 0; o < i; o++) {
			int same = 1;
			for (int f = 0; f < SCN_N_FACTS; f++)
				same &= strcmp(s->platforms[o].fact[f], q->fact[f]) == 0;
			if (same && s->platforms[o].n_extra == 0 && q->n_extra == 0) {
				fb_err_set(err, "%s has the same facts as platforms[%zu]", where,
				           o);
				return FB_EINVAL;
			}
		}
		sum += q->share;
		s->n_platforms = (int)i + 1;
	}
	if (fabs(sum - 1.0) > 0.001) {
		fb_err_set(err, "platforms: the shares add up to %g, not 1", sum);
		return FB_EINVAL;
	}
	for (int q = 0; q < s->n_platforms; q++) /* exactly 1, so no ring overflows */
		s->platforms[q].share /= sum;
	return FB_OK;
}

/* Split n agents by share[0..np-1] (summing to at most 1): floor(share x
 * n) each, the remaining agents to the largest remainders (the lower index
 * first on a tie), then every part with share x n >= 0.5 that got none
 * takes one from the part with the most. */
static void split(int64_t n, const double *share, int np, int64_t *counts)
{
	int64_t given = 0;
	double rem[SCN_MAX_PLATFORMS + SCN_MAX_TENANTS + 1];
	for (int p = 0; p < np; p++) {
		double want = share[p] * (double)n;
		counts[p] = (int64_t)floor(want);
		rem[p] = want - (double)counts[p];
		given += counts[p];
	}
	while (given < n) { /* largest remainder first, the lower index on a tie */
		int best = 0;
		for (int p = 1; p < np; p++)
			if (rem[p] > rem[best])
				best = p;
		counts[best]++;
		rem[best] = -1;
		given++;
		if (given < n) {
			int left = 0;
			for (int p = 0; p < np; p++)
				left += rem[p] >= 0;
			if (!left) /* more agents than remainders (shares short of 1) */
				for (int p = 0; p < np; p++)
					rem[p] = 0;
		}
	}
	for (int p = 0; p < np; p++) {
		if (counts[p] > 0 || share[p] * (double)n < 0.5)
			continue;
		int big = 0;
		for (int q = 1; q < np; q++)
			if (counts[q] > counts[big])
				big = q;
		if (counts[big] > 1) {
			counts[big]--;
			counts[p]++;
		}
	}
}

void scn_ring_platforms(const struct scenario *s, int r, int64_t *counts)
{
	double share[SCN_MAX_PLATFORMS];
	if (s->n_platforms == 0)
		return;
	for (int p = 0; p < s->n_platforms; p++)
		share[p] = s->platforms[p].share;
	split(s->rings[r].agents, share, s->n_platforms, counts);
}

void scn_ring_tenants(const struct scenario *s, int r, int64_t *counts)
{
	double share[SCN_MAX_TENANTS + 1], sum = 0;
	if (s->n_tenants == 0)
		return;
	for (int t = 0; t < s->n_tenants; t++) {
		share[t] = s->tenants[t].share;
		sum += share[t];
	}
	share[s->n_tenants] = sum < 1 - 1e-9 ? 1 - sum : 0; /* the default tenant */
	split(s->rings[r].agents, share, s->n_tenants + 1, counts);
}

int scn_tenant_index(const struct scenario *s, const char *name)
{
	for (int t = 0; t < s->n_tenants; t++)
		if (strcmp(s->tenants[t].name, name) == 0)
			return t;
	return -1;
}

int64_t scn_max_delay_s(const struct scenario *s)
{
	int64_t d = 0;
	for (int t = 0; t < s->n_tenants; t++)
		if (s->tenants[t].mode == SCN_DELAYED && s->tenants[t].delay_s > d)
			d = s->tenants[t].delay_s;
	return d;
}

const char *const scn_mode_names[SCN_N_MODES] = {"early", "ga", "delayed", "paused"};

/* A tenant name as the server takes it: ^[a-z0-9][a-z0-9_-]{0,63}$. */
static int tenant_name_ok(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n >= SCN_MAX_NAME)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = v[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      (i > 0 && (c == '_' || c == '-'))))
			return 0;
	}
	return 1;
}

/* The optional tenants list: [{name, share, mode, delay_s}]. delay_s (mode
 * delayed only, required there) is scaled by the time scale and rounded up
 * to whole seconds; both it and the scaled value must lie in [1,
 * SCN_MAX_DELAY_S]. The shares add up to at most 1; the rest of every ring
 * stays the server's default tenant's. */
static enum fb_rc parse_tenants(const json_t *ts, struct scenario *s, struct fb_err *err)
{
	static const char *const allowed[] = {"name", "share", "mode", "delay_s", NULL};
	if (!ts)
		return FB_OK;
	if (!json_is_array(ts) || json_array_size(ts) < 1 ||
	    json_array_size(ts) > SCN_MAX_TENANTS) {
		fb_err_set(err, "tenants must be an array of 1..%d tenants", SCN_MAX_TENANTS);
		return FB_EINVAL;
	}
	double sum = 0;
	size_t i;
	json_t *t;
	json_array_foreach(ts, i, t)
	{
		char where[32], mode[16] = "";
		snprintf(where, sizeof where, "tenants[%zu]", i);
		struct scn_tenant *q = &s->tenants[i];
		enum fb_rc rc;
		if (!json_is_object(t)) {
			fb_err_set(err, "%s must be an object {name, share, mode, delay_s?}",
			           where);
			return FB_EINVAL;
		}
		q->share = -1;
		if ((rc = only_keys(t, allowed, where, err)) ||
		    (rc = get_str(t, "name", 1, q->name, sizeof q->name, where, err)) ||
		    (rc = get_num(t, "share", 0, 1, &q->share, where, err)) ||
		    (rc = get_str(t, "mode", 1, mode, sizeof mode, where, err)))
			return rc;
		if (!tenant_name_ok(q->name)) {
			fb_err_set(err, "%s.name '%s' must match ^[a-z0-9][a-z0-9_-]{0,63}$", where,
			           q->name);
			return FB_EINVAL;
		}
		if (strcmp(q->name, "default") == 0) {
			fb_err_set(err,
			           "%s.name: 'default' is the server's own tenant, which keeps the "
			           "agents outside every share; name the tenant otherwise",
			           where);
			return FB_EINVAL;
		}
		s->n_tenants = (int)i; /* the tenants before this one */
		if (scn_tenant_index(s, q->name) >= 0) {
			fb_err_set(err, "%s: tenant name '%s' is used twice", where, q->name);
			return FB_EINVAL;
		}
		if (q->share <= 0) {
			fb_err_set(err, "%s.share must be a number in (0, 1]", where);
			return FB_EINVAL;
		}
		int m = -1;
		for (int k = 0; k < SCN_N_MODES; k++)
			if (strcmp(mode, scn_mode_names[k]) == 0)
				m = k;
		if (m < 0) {
			fb_err_set(err, "%s.mode: unknown mode '%s' (early, ga, delayed or paused)",
			           where, mode);
			return FB_EINVAL;
		}
		q->mode = (enum scn_mode)m;
		json_t *d = json_object_get(t, "delay_s");
		if (q->mode != SCN_DELAYED && d) {
			fb_err_set(err, "%s.delay_s belongs to mode delayed only (mode is %s)",
			           where, mode);
			return FB_EINVAL;
		}
		if (q->mode == SCN_DELAYED) {
			double v = json_is_number(d) ? json_number_value(d) : -1;
			double scaled = ceil(v * s->time_scale);
			if (!(v >= 1 && v <= SCN_MAX_DELAY_S)) {
				fb_err_set(
				        err,
				        "%s.delay_s must be a number of seconds in [1, %d] (mode "
				        "delayed)",
				        where, SCN_MAX_DELAY_S);
				return FB_EINVAL;
			}
			if (scaled > SCN_MAX_DELAY_S) {
				fb_err_set(
				        err,
				        "%s.delay_s %g at time scale %g is %.0f s, more than the "
				        "server's %d",
				        where, v, s->time_scale, scaled, SCN_MAX_DELAY_S);
				return FB_EINVAL;
			}
			q->delay_s = (int64_t)scaled;
		}
		sum += q->share;
		s->n_tenants = (int)i + 1;
	}
	if (sum > 1.0 + 1e-9) {
		fb_err_set(err,
		           "tenants: the shares add up to %g, more than 1 (the rest of the fleet "
		           "stays the default tenant's)",
		           sum);
		return FB_EINVAL;
	}
	/* ring 0 draws only from hosts allowed early content: the early
	 * tenants' and the default tenant's (default_mode early) */
	int64_t counts[SCN_MAX_TENANTS + 1], early;
	scn_ring_tenants(s, 0, counts);
	early = counts[s->n_tenants];
	for (int u = 0; u < s->n_tenants; u++)
		early += s->tenants[u].mode == SCN_EARLY ? counts[u] : 0;
	if (early == 0) {
		fb_err_set(err,
		           "tenants: ring 0 (%s, %lld agents) would hold no agent of an early "
		           "tenant or of the default tenant, so no rollout could start",
		           s->rings[0].name, (long long)s->rings[0].agents);
		return FB_EINVAL;
	}
	return FB_OK;
}

/* contents.X.segments (or a behaviour's): {"os_build": ["19045"], ...} ->
 * *mask, the platforms whose facts match every listed key; every platform
 * when seg is NULL. */
static enum fb_rc parse_segments(const json_t *seg, const struct scenario *s, uint32_t *mask,
                                 const char *where, struct fb_err *err)
{
	*mask = 0xffffffffu;
	if (!seg)
		return FB_OK;
	if (s->n_platforms == 0) {
		fb_err_set(err, "%s.segments needs the scenario's platforms", where);
		return FB_EINVAL;
	}
	if (!json_is_object(seg) || json_object_size(seg) < 1) {
		fb_err_set(err, "%s.segments must be an object fact -> [values]", where);
		return FB_EINVAL;
	}
	const char *key;
	json_t *vals;
	json_object_foreach((json_t *)seg, key, vals)
	{
		int f = -1;
		for (int q = 0; q < SCN_N_FACTS; q++)
			if (strcmp(key, scn_fact_names[q]) == 0)
				f = q;
		if (f < 0) {
			fb_err_set(err,
			           "%s.segments: unknown fact '%.40s' (os, os_build, arch, "
			           "agent_version)",
			           where, key);
			return FB_EINVAL;
		}
		if (!json_is_array(vals) || json_array_size(vals) < 1 ||
		    json_array_size(vals) > SCN_MAX_SEG_VALUES) {
			fb_err_set(err, "%s.segments.%s must be an array of 1..%d values", where,
			           key, SCN_MAX_SEG_VALUES);
			return FB_EINVAL;
		}
		uint32_t m = 0;
		size_t i;
		json_t *v;
		json_array_foreach(vals, i, v)
		{
			if (!json_is_string(v) || !fact_ok(json_string_value(v))) {
				fb_err_set(err, "%s.segments.%s[%zu] must be a platform fact",
				           where, key, i);
				return FB_EINVAL;
			}
			for (int p = 0; p < s->n_platforms; p++)
				if (strcmp(s->platforms[p].fact[f], json_string_value(v)) == 0)
					m |= 1u << p;
		}
		*mask &= m;
	}
	if (!(*mask & ((1u << s->n_platforms) - 1))) {
		fb_err_set(err, "%s.segments matches none of the platforms", where);
		return FB_EINVAL;
	}
	return FB_OK;
}

/* The noise model's defaults (README.md, "Health signals"): an endpoint
 * agent on a 4-CPU office host. */
static const struct scn_health health_defaults = {
        .on = 1,
        .cpus = 4,
        .agent_cpu = {2, 0.5, 0.25},
        .agent_cpu_p95 = 8,
        .burst_probability = 0.01,
        .burst_p95 = 40,
        .burst_beats = 3,
        .host_cpu = {20, 0.5, 0.3},
        .rss_kb = {51200, 0.3, 0.02},
        .evals = {6000, 0.5, 0.1},
        .error_rate = 1e-6,
        .timeout_rate = 1e-6,
        .error_spread = 2,
        .detections = {0.5, 1, 0},
        .blocks = {0.002, 1, 0},
        .det_burst_probability = 0.005,
        .det_burst_factor = 10,
        .det_burst_beats = 2,
};

/* An optional integer in [lo, hi] (*out unchanged when absent). */
static enum fb_rc get_int(const json_t *obj, const char *key, int lo, int hi, int *out,
                          const char *where, struct fb_err *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return FB_OK;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		fb_err_set(err, "%s.%s must be an integer in [%d, %d]", where, key, lo, hi);
		return FB_EINVAL;
	}
	*out = (int)json_integer_value(v);
	return FB_OK;
}

/* health.<key>: an object of allowed keys whose first is the signal's level
 * (in [0, hi]); spread and jitter (when allowed) in [0, 3]. Absent keys keep
 * their defaults. */
static enum fb_rc parse_signal(const json_t *h, const char *key, const char *const *allowed,
                               double hi, struct scn_signal *g, struct fb_err *err)
{
	const json_t *o = json_object_get(h, key);
	char w[64];
	enum fb_rc rc;
	snprintf(w, sizeof w, "health.%s", key);
	if (!o)
		return FB_OK;
	if (!json_is_object(o)) {
		fb_err_set(err, "%s must be an object", w);
		return FB_EINVAL;
	}
	if ((rc = only_keys(o, allowed, w, err)) ||
	    (rc = get_num(o, allowed[0], 0, hi, &g->base, w, err)) ||
	    (rc = get_num(o, "spread", 0, 3, &g->spread, w, err)) ||
	    (rc = get_num(o, "jitter", 0, 3, &g->jitter, w, err)))
		return rc;
	return FB_OK;
}

/* The optional health section: the noise of every agent's health signals. */
static enum fb_rc parse_health(const json_t *h, struct scenario *s, struct fb_err *err)
{
	static const char *const allowed[] = {"cpus",
	                                      "agent_cpu",
	                                      "host_cpu",
	                                      "agent_rss_kb",
	                                      "evals",
	                                      "eval_error_rate",
	                                      "eval_timeout_rate",
	                                      "eval_error_spread",
	                                      "detections",
	                                      "blocks",
	                                      NULL};
	static const char *const cpu_keys[] = {
	        "mean",      "p95",         "spread", "jitter", "burst_probability",
	        "burst_p95", "burst_beats", NULL};
	static const char *const host_keys[] = {"mean", "spread", "jitter", NULL};
	static const char *const rss_keys[] = {"base", "spread", "jitter", NULL};
	static const char *const evals_keys[] = {"per_min", "spread", "jitter", NULL};
	static const char *const count_keys[] = {"per_min", "spread", NULL};
	static const char *const det_keys[] = {"per_min",      "spread",      "burst_probability",
	                                       "burst_factor", "burst_beats", NULL};
	struct scn_health *q = &s->health;
	enum fb_rc rc;
	if (!h)
		return FB_OK;
	if (!json_is_object(h)) {
		fb_err_set(err, "health must be an object (the noise model; {} for the defaults)");
		return FB_EINVAL;
	}
	*q = health_defaults;
	const json_t *cpu = json_object_get(h, "agent_cpu");
	const json_t *det = json_object_get(h, "detections");
	if ((rc = only_keys(h, allowed, "health", err)) ||
	    (rc = get_int(h, "cpus", 1, 1000, &q->cpus, "health", err)) ||
	    (rc = parse_signal(h, "agent_cpu", cpu_keys, 100000, &q->agent_cpu, err)) ||
	    (rc = get_num(cpu, "p95", 0, 100000, &q->agent_cpu_p95, "health.agent_cpu", err)) ||
	    (rc = get_num(cpu, "burst_probability", 0, 1, &q->burst_probability, "health.agent_cpu",
	                  err)) ||
	    (rc = get_num(cpu, "burst_p95", 0, 100000, &q->burst_p95, "health.agent_cpu", err)) ||
	    (rc = get_int(cpu, "burst_beats", 1, 100, &q->burst_beats, "health.agent_cpu", err)) ||
	    (rc = parse_signal(h, "host_cpu", host_keys, 100, &q->host_cpu, err)) ||
	    (rc = parse_signal(h, "agent_rss_kb", rss_keys, 1099511627776.0, &q->rss_kb, err)) ||
	    (rc = parse_signal(h, "evals", evals_keys, 1e8, &q->evals, err)) ||
	    (rc = get_num(h, "eval_error_rate", 0, 1, &q->error_rate, "health", err)) ||
	    (rc = get_num(h, "eval_timeout_rate", 0, 1, &q->timeout_rate, "health", err)) ||
	    (rc = get_num(h, "eval_error_spread", 0, 3, &q->error_spread, "health", err)) ||
	    (rc = parse_signal(h, "detections", det_keys, 1e8, &q->detections, err)) ||
	    (rc = get_num(det, "burst_probability", 0, 1, &q->det_burst_probability,
	                  "health.detections", err)) ||
	    (rc = get_num(det, "burst_factor", 1, 1e6, &q->det_burst_factor, "health.detections",
	                  err)) ||
	    (rc = get_int(det, "burst_beats", 1, 100, &q->det_burst_beats, "health.detections",
	                  err)) ||
	    (rc = parse_signal(h, "blocks", count_keys, 1e8, &q->blocks, err)))
		return rc;
	if (q->agent_cpu_p95 < q->agent_cpu.base) {
		fb_err_set(err, "health.agent_cpu.p95 (%g) must be at least its mean (%g)",
		           q->agent_cpu_p95, q->agent_cpu.base);
		return FB_EINVAL;
	}
	if (q->agent_cpu_p95 > 100.0 * q->cpus || q->burst_p95 > 100.0 * q->cpus) {
		fb_err_set(err,
		           "health.agent_cpu: p95 and burst_p95 must be at most 100 x health.cpus "
		           "(%d)",
		           100 * q->cpus);
		return FB_EINVAL;
	}
	if (q->error_rate + q->timeout_rate > 1) {
		fb_err_set(err, "health: eval_error_rate + eval_timeout_rate must be at most 1");
		return FB_EINVAL;
	}
	return FB_OK;
}

int scn_content_bad(const struct scenario *s, int i)
{
	const struct scn_content *c = &s->contents[i];
	int bad = c->crash_probability > 0;
	for (int b = 0; b < SCN_N_BEHAVIOURS; b++)
		bad |= c->health[b].on && c->health[b].share > 0;
	return bad;
}

const char *const scn_behaviour_names[SCN_N_BEHAVIOURS] = {"cpu_spike", "memory_leak", "fp_storm",
                                                           "eval_errors"};

/* The key of each behaviour's magnitude, its default and its range. */
static const struct {
	const char *key;
	double def, lo, hi;
} behaviour_value[SCN_N_BEHAVIOURS] = {
        {"level", 100, 1, 100000},    /* per cent of one CPU */
        {"kb_per_min", 1024, 1, 1e9}, /* KiB per minute */
        {"factor", 10, 1, 1e6},       /* detections and blocks x factor */
        {"rate", 0.01, 1e-9, 1},      /* share of the evaluations */
};

/* contents.X.cpu_spike, memory_leak, fp_storm, eval_errors: {share (1),
 * after_s (0), <magnitude>, segments (the content's)}. Needs the health
 * section (without it no heartbeat carries the signals). */
static enum fb_rc parse_behaviours(const json_t *c, const struct scenario *s, struct scn_content *k,
                                   const char *where, struct fb_err *err)
{
	for (int b = 0; b < SCN_N_BEHAVIOURS; b++) {
		const json_t *o = json_object_get(c, scn_behaviour_names[b]);
		struct scn_behaviour *h = &k->health[b];
		char w[192];
		enum fb_rc rc;
		if (!o)
			continue;
		snprintf(w, sizeof w, "%s.%s", where, scn_behaviour_names[b]);
		if (!s->health.on) {
			fb_err_set(err,
			           "%s needs the scenario's health section (\"health\": {} for the "
			           "default noise)",
			           w);
			return FB_EINVAL;
		}
		if (!json_is_object(o)) {
			fb_err_set(err, "%s must be an object {share, after_s, %s, segments}", w,
			           behaviour_value[b].key);
			return FB_EINVAL;
		}
		const char *const allowed[] = {"share", "after_s", behaviour_value[b].key,
		                               "segments", NULL};
		h->on = 1;
		h->share = 1;
		h->value = behaviour_value[b].def;
		if ((rc = only_keys(o, allowed, w, err)) ||
		    (rc = get_num(o, "share", 0, 1, &h->share, w, err)) ||
		    (rc = get_num(o, "after_s", 0, 86400, &h->after_s, w, err)) ||
		    (rc = get_num(o, behaviour_value[b].key, behaviour_value[b].lo,
		                  behaviour_value[b].hi, &h->value, w, err)))
			return rc;
		h->platform_mask = k->platform_mask;
		const json_t *seg = json_object_get(o, "segments");
		if (seg && (rc = parse_segments(seg, s, &h->platform_mask, w, err)))
			return rc;
		if (b == SCN_CPU_SPIKE && h->value > 100.0 * s->health.cpus) {
			fb_err_set(err, "%s.level must be at most 100 x health.cpus (%d)", w,
			           100 * s->health.cpus);
			return FB_EINVAL;
		}
	}
	return FB_OK;
}

static enum fb_rc parse_contents(const json_t *cs, const char *base_dir, int ch, const char *prefix,
                                 struct scenario *s, struct fb_err *err)
{
	static const char *const allowed[] = {"upload",        "crash_probability", "crash_delay_s",
	                                      "crash_after_s", "after_crash",       "boot_loop",
	                                      "segments",      "cpu_spike",         "memory_leak",
	                                      "fp_storm",      "eval_errors",       NULL};
	if (!json_is_object(cs) || json_object_size(cs) < 1 ||
	    json_object_size(cs) + (size_t)s->n_contents > SCN_MAX_CONTENTS) {
		fb_err_set(err, "%scontents must be an object of 1..%d named contents (%d in all)",
		           prefix, SCN_MAX_CONTENTS - s->n_contents, SCN_MAX_CONTENTS);
		return FB_EINVAL;
	}
	const char *name;
	json_t *c;
	json_object_foreach((json_t *)cs, name, c)
	{
		struct scn_content *k = &s->contents[s->n_contents];
		char where[128];
		snprintf(where, sizeof where, "%scontents.%.64s", prefix, name);
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
		k->channel = ch;
		char up[900];
		k->crash_delay_s = 1;
		if ((rc = only_keys(c, allowed, where, err)) ||
		    (rc = get_str(c, "upload", 1, up, sizeof up, where, err)) ||
		    (rc = get_num(c, "crash_probability", 0, 1, &k->crash_probability, where,
		                  err)) ||
		    (rc = get_num(c, "crash_delay_s", 0, 86400, &k->crash_delay_s, where, err)) ||
		    (rc = get_num(c, "crash_after_s", 0, 86400, &k->crash_after_s, where, err)) ||
		    (rc = parse_segments(json_object_get(c, "segments"), s, &k->platform_mask,
		                         where, err)) ||
		    (rc = parse_behaviours(c, s, k, where, err)))
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

static int state_known(const char *st)
{
	static const char *const states[] = {"staged",    "rolling", "paused",   "watching",
	                                     "completed", "halted",  "reverted", "superseded",
	                                     "rejected",  NULL};
	return known_key(st, states);
}

/* expect.tenants: tenant name ("default": the agents outside every share)
 * -> {max_exposure, max_ring, reached, after_delay}. */
static enum fb_rc parse_tenant_expects(const json_t *te, const char *where,
                                       const struct scenario *s, struct scn_expect *x,
                                       struct fb_err *err)
{
	static const char *const allowed[] = {"max_exposure", "max_ring", "reached", "after_delay",
	                                      NULL};
	if (!te)
		return FB_OK;
	if (s->n_tenants == 0) {
		fb_err_set(err, "%s.tenants needs the scenario's tenants", where);
		return FB_EINVAL;
	}
	if (!json_is_object(te) || json_object_size(te) < 1) {
		fb_err_set(err, "%s.tenants must be an object tenant -> expectations", where);
		return FB_EINVAL;
	}
	const char *name;
	json_t *o;
	json_object_foreach((json_t *)te, name, o)
	{
		char w[160];
		snprintf(w, sizeof w, "%s.tenants.%.64s", where, name);
		struct scn_tenant_expect *q = &x->tenants[x->n_tenants];
		enum fb_rc rc;
		q->tenant = strcmp(name, "default") == 0 ? s->n_tenants : scn_tenant_index(s, name);
		if (q->tenant < 0) {
			fb_err_set(err, "%s: no tenant '%.64s' in the scenario's tenants", w, name);
			return FB_EINVAL;
		}
		if (!json_is_object(o)) {
			fb_err_set(err,
			           "%s must be an object {max_exposure, max_ring, reached, "
			           "after_delay}",
			           w);
			return FB_EINVAL;
		}
		if ((rc = only_keys(o, allowed, w, err)))
			return rc;
		q->max_exposure = -1;
		q->max_ring = -1;
		q->reached = -1;
		json_t *v = json_object_get(o, "max_exposure");
		if (v && !(json_is_integer(v) && json_integer_value(v) >= 0)) {
			fb_err_set(err,
			           "%s.max_exposure must be an integer >= 0 (the most allowed)", w);
			return FB_EINVAL;
		}
		if (v)
			q->max_exposure = json_integer_value(v);
		v = json_object_get(o, "max_ring");
		if (v) {
			q->max_ring =
			        json_is_string(v) ? scn_ring_index(s, json_string_value(v)) : -1;
			if (q->max_ring < 0) {
				fb_err_set(err, "%s.max_ring must name a ring", w);
				return FB_EINVAL;
			}
		}
		v = json_object_get(o, "reached");
		if (v && !json_is_boolean(v)) {
			fb_err_set(err, "%s.reached must be a boolean", w);
			return FB_EINVAL;
		}
		if (v)
			q->reached = json_is_true(v);
		v = json_object_get(o, "after_delay");
		if (v && !json_is_true(v)) {
			fb_err_set(err, "%s.after_delay must be true (or absent)", w);
			return FB_EINVAL;
		}
		if (v && (q->tenant == s->n_tenants || s->tenants[q->tenant].mode != SCN_DELAYED)) {
			fb_err_set(err, "%s.after_delay needs a tenant of mode delayed", w);
			return FB_EINVAL;
		}
		q->after_delay = v != NULL;
		x->n_tenants++;
	}
	return FB_OK;
}

static enum fb_rc parse_expect(const json_t *e, const char *prefix, struct scenario *s,
                               struct scn_expect *x, struct fb_err *err)
{
	static const char *const allowed[] = {"state",
	                                      "max_ring",
	                                      "min_ring",
	                                      "max_exposure",
	                                      "on_bad_content",
	                                      "exposed_on_last_known_good",
	                                      "false_halts",
	                                      "upload_rejected",
	                                      "halted_by_silence",
	                                      "seen_state",
	                                      "reason_contains",
	                                      "tenants",
	                                      NULL};
	x->max_ring = -1;
	x->min_ring = -1;
	x->max_exposure = -1;
	x->max_exposure_ring = -1;
	x->max_on_bad = -1;
	x->max_false_halts = -1;
	if (!e)
		return FB_OK;
	enum fb_rc rc;
	char where[64];
	snprintf(where, sizeof where, "%sexpect", prefix);
	if (!json_is_object(e)) {
		fb_err_set(err, "%s must be an object", where);
		return FB_EINVAL;
	}
	if ((rc = only_keys(e, allowed, where, err)))
		return rc;
	json_t *st = json_object_get(e, "state");
	json_t *one = json_is_string(st) ? json_pack("[O]", st) : json_incref(st);
	size_t i;
	json_t *v;
	if (st && (!json_is_array(one) || json_array_size(one) > 8)) {
		json_decref(one);
		fb_err_set(err, "%s.state must be a state or an array of at most 8", where);
		return FB_EINVAL;
	}
	json_array_foreach(one, i, v)
	{
		if (!json_is_string(v) || !state_known(json_string_value(v))) {
			json_decref(one);
			fb_err_set(err,
			           "%s.state[%zu] must be a state name (staged, rolling, paused, "
			           "watching, completed, halted, reverted, superseded, rejected)",
			           where, i);
			return FB_EINVAL;
		}
		snprintf(x->states[i], sizeof x->states[i], "%s", json_string_value(v));
		x->n_states = (int)i + 1;
	}
	json_decref(one);
	static const char *const rings[] = {"max_ring", "min_ring"};
	int *rdst[] = {&x->max_ring, &x->min_ring};
	for (size_t k = 0; k < 2; k++) {
		json_t *mr = json_object_get(e, rings[k]);
		if (!mr)
			continue;
		*rdst[k] = json_is_string(mr) ? scn_ring_index(s, json_string_value(mr)) : -1;
		if (*rdst[k] < 0) {
			fb_err_set(err, "%s.%s must name a ring", where, rings[k]);
			return FB_EINVAL;
		}
	}
	json_t *me = json_object_get(e, "max_exposure");
	if (me) {
		if (json_is_string(me) && strcmp(json_string_value(me), "ring0") == 0)
			x->max_exposure = -2;
		else if (json_is_string(me) && scn_ring_index(s, json_string_value(me)) >= 0)
			x->max_exposure_ring = scn_ring_index(s, json_string_value(me));
		else if (json_is_integer(me) && json_integer_value(me) >= 0)
			x->max_exposure = json_integer_value(me);
		else {
			fb_err_set(
			        err,
			        "%s.max_exposure must be \"ring0\", a ring name (the agents up to "
			        "that ring) or an integer >= 0",
			        where);
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
			fb_err_set(err, "%s.%s must be an integer >= 0 (the most allowed)", where,
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
			fb_err_set(err, "%s.%s must be a boolean", where, flags[k]);
			return FB_EINVAL;
		}
		*fdst[k] = json_is_true(c);
	}
	json_t *ss = json_object_get(e, "seen_state");
	if (ss && !(json_is_string(ss) && state_known(json_string_value(ss)))) {
		fb_err_set(err, "%s.seen_state must be a state name", where);
		return FB_EINVAL;
	}
	if (ss)
		snprintf(x->seen_state, sizeof x->seen_state, "%s", json_string_value(ss));
	if ((rc = get_str(e, "reason_contains", 0, x->reason_contains, sizeof x->reason_contains,
	                  where, err)))
		return rc;
	return parse_tenant_expects(json_object_get(e, "tenants"), where, s, x, err);
}

/* A policy and its ring overrides under rollout (where: "rollout" or
 * "channels[k].rollout"), scaled into ch. */
static enum fb_rc parse_policies(const json_t *r, const char *where, struct scenario *s,
                                 struct scn_channel *ch, struct fb_err *err)
{
	char w[96];
	enum fb_rc rc;
	json_t *pol = json_object_get(r, "policy");
	snprintf(w, sizeof w, "%s.policy", where);
	if (pol && (rc = scale_policy(pol, s->time_scale, &ch->policy, w, err)))
		return rc;
	s->gate_v2 |= uses_v2_keys(pol);
	json_t *rp = json_object_get(r, "ring_policies");
	if (!rp)
		return FB_OK;
	const char *k;
	json_t *v;
	if (!json_is_object(rp)) {
		fb_err_set(err, "%s.ring_policies must be an object ring -> overrides", where);
		return FB_EINVAL;
	}
	ch->ring_policies = json_object();
	if (!ch->ring_policies)
		return FB_ENOMEM;
	json_object_foreach(rp, k, v)
	{
		json_t *sc;
		snprintf(w, sizeof w, "%s.ring_policies.%.64s", where, k);
		if ((rc = scale_policy(v, s->time_scale, &sc, w, err)))
			return rc;
		s->gate_v2 |= uses_v2_keys(sc);
		json_object_set_new(ch->ring_policies, k, sc);
	}
	return FB_OK;
}

/* One channel: id and name from idobj, contents, baseline, rollout and
 * expect from holder (the same object in the channels[] form, the top level
 * in the single-channel form). prefix names where ("" or "channels[k]."). */
static enum fb_rc parse_channel(const json_t *idobj, const json_t *holder, int k,
                                const char *prefix, const char *base_dir, struct scenario *s,
                                struct fb_err *err)
{
	static const char *const rollout_keys[] = {"content", "policy", "ring_policies", NULL};
	struct scn_channel *ch = &s->ch[k];
	char where[96];
	enum fb_rc rc;
	json_t *cid = json_object_get(idobj, "id");
	if (!json_is_object(idobj) || !json_is_integer(cid) || json_integer_value(cid) < 1 ||
	    json_integer_value(cid) > 0xffffffffLL) {
		if (prefix[0])
			fb_err_set(err, "%sid must be an integer in [1, 4294967295]", prefix);
		else
			fb_err_set(err,
			           "channel must be {\"id\": 1..4294967295, \"name\": \"...\"}");
		return FB_EINVAL;
	}
	ch->id = (uint32_t)json_integer_value(cid);
	snprintf(ch->name, sizeof ch->name, "channel-%u", ch->id);
	snprintf(where, sizeof where, "%s", prefix[0] ? prefix : "channel.");
	where[strlen(where) - 1] = 0;
	if ((rc = get_str(idobj, "name", 0, ch->name, sizeof ch->name, where, err)))
		return rc;
	for (int o = 0; o < k; o++)
		if (s->ch[o].id == ch->id || strcmp(s->ch[o].name, ch->name) == 0) {
			fb_err_set(err, "%s: channel id %u or name '%s' is used twice", where,
			           ch->id, ch->name);
			return FB_EINVAL;
		}
	if ((rc = parse_contents(json_object_get(holder, "contents"), base_dir, k, prefix, s,
	                         err)) ||
	    (rc = parse_expect(json_object_get(holder, "expect"), prefix, s, &ch->expect, err)))
		return rc;
	json_t *b = json_object_get(holder, "baseline");
	ch->baseline = json_is_string(b) ? content_index(s, k, json_string_value(b)) : -1;
	if (ch->baseline < 0) {
		fb_err_set(err,
		           "%sbaseline must name one of %scontents (rolled out to GA before the "
		           "test)",
		           prefix, prefix);
		return FB_EINVAL;
	}
	json_t *r = json_object_get(holder, "rollout");
	snprintf(where, sizeof where, "%srollout", prefix);
	if (!json_is_object(r)) {
		fb_err_set(err,
		           "%s must be an object {\"content\", \"policy\"?, \"ring_policies\"?}",
		           where);
		return FB_EINVAL;
	}
	if ((rc = only_keys(r, rollout_keys, where, err)))
		return rc;
	json_t *rc_name = json_object_get(r, "content");
	ch->rollout =
	        json_is_string(rc_name) ? content_index(s, k, json_string_value(rc_name)) : -1;
	if (ch->rollout < 0 || ch->rollout == ch->baseline) {
		fb_err_set(err, "%s.content must name one of %scontents other than the baseline",
		           where, prefix);
		return FB_EINVAL;
	}
	return parse_policies(r, where, s, ch, err);
}

static enum fb_rc parse_channels(const json_t *j, const char *base_dir, struct scenario *s,
                                 struct fb_err *err)
{
	static const char *const allowed[] = {"id",      "name",   "contents", "baseline",
	                                      "rollout", "expect", NULL};
	static const char *const single[] = {"channel", "contents", "baseline", "rollout",
	                                     "expect"};
	json_t *chs = json_object_get(j, "channels");
	enum fb_rc rc;
	if (!chs) {
		s->n_channels = 1;
		return parse_channel(json_object_get(j, "channel"), j, 0, "", base_dir, s, err);
	}
	for (size_t i = 0; i < sizeof single / sizeof single[0]; i++)
		if (json_object_get(j, single[i])) {
			fb_err_set(
			        err,
			        "scenario: '%s' belongs inside each entry of channels (give "
			        "either channel, contents, baseline, rollout, expect or channels)",
			        single[i]);
			return FB_EINVAL;
		}
	if (!json_is_array(chs) || json_array_size(chs) < 1 ||
	    json_array_size(chs) > SCN_MAX_CHANNELS) {
		fb_err_set(err, "channels must be an array of 1..%d channels", SCN_MAX_CHANNELS);
		return FB_EINVAL;
	}
	size_t i;
	json_t *c;
	json_array_foreach(chs, i, c)
	{
		char prefix[32];
		snprintf(prefix, sizeof prefix, "channels[%zu].", i);
		if (!json_is_object(c)) {
			fb_err_set(err, "channels[%zu] must be an object", i);
			return FB_EINVAL;
		}
		char where[32];
		snprintf(where, sizeof where, "channels[%zu]", i);
		if ((rc = only_keys(c, allowed, where, err)))
			return rc;
		s->n_channels = (int)i + 1;
		if ((rc = parse_channel(c, c, (int)i, prefix, base_dir, s, err)))
			return rc;
	}
	if (s->n_channels > 1)
		s->gate_v2 = 1;
	return FB_OK;
}

enum fb_rc scn_parse(const char *text, size_t len, const char *base_dir, int64_t agents,
                     double time_scale, struct scenario *out, struct fb_err *err)
{
	static const char *const allowed[] = {"name",
	                                      "description",
	                                      "channel",
	                                      "channels",
	                                      "rings",
	                                      "platforms",
	                                      "contents",
	                                      "baseline",
	                                      "baseline_policy",
	                                      "rollout",
	                                      "timing",
	                                      "background_crash_rate",
	                                      "background_window_s",
	                                      "blips",
	                                      "settle_s",
	                                      "timeout_s",
	                                      "expect",
	                                      "health",
	                                      "tenants",
	                                      NULL};
	static const char *const timing_keys[] = {"heartbeat_s", "poll_s", "reboot_s",
	                                          "boot_loop_starts", NULL};
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
	    (rc = parse_rings(json_object_get(j, "rings"), agents, s, err)))
		goto out;
	if (time_scale <= 0)
		time_scale = s->agents > 1250 ? (double)s->agents / 1250.0 : 1.0;
	s->time_scale = time_scale;
	if ((rc = parse_platforms(json_object_get(j, "platforms"), s, err)) ||
	    (rc = parse_health(json_object_get(j, "health"), s, err)) ||
	    (rc = parse_tenants(json_object_get(j, "tenants"), s, err)) ||
	    (rc = parse_channels(j, base_dir, s, err)) ||
	    (rc = parse_blips(json_object_get(j, "blips"), s, err)) ||
	    (rc = get_num(j, "background_crash_rate", 0, 1, &s->background_crash_rate, "scenario",
	                  err)) ||
	    (rc = get_num(j, "background_window_s", 0, 86400, &s->background_window_s, "scenario",
	                  err)) ||
	    (rc = get_num(j, "settle_s", 0, 86400, &s->settle_s, "scenario", err)) ||
	    (rc = get_num(j, "timeout_s", 1, 86400, &s->timeout_s, "scenario", err)))
		goto out;
	json_t *bp = json_object_get(j, "baseline_policy");
	if (bp && (rc = scale_policy(bp, time_scale, &s->baseline_policy, "baseline_policy", err)))
		goto out;
	s->gate_v2 |= s->n_platforms > 0;
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
	s->heartbeat_s *= time_scale;
	s->poll_s *= time_scale;
	s->reboot_s *= time_scale;
	s->background_window_s *= time_scale;
	s->settle_s *= time_scale;
	s->timeout_s *= time_scale;
	for (int i = 0; i < s->n_contents; i++) {
		s->contents[i].crash_delay_s *= time_scale;
		s->contents[i].crash_after_s *= time_scale;
		for (int b = 0; b < SCN_N_BEHAVIOURS; b++)
			s->contents[i].health[b].after_s *= time_scale;
		/* a leak reaches the same size at the same point of the scaled run */
		s->contents[i].health[SCN_MEMORY_LEAK].value /= time_scale;
	}
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
	for (int k = 0; k < SCN_MAX_CHANNELS; k++) {
		json_decref(s->ch[k].policy);
		json_decref(s->ch[k].ring_policies);
		s->ch[k].policy = NULL;
		s->ch[k].ring_policies = NULL;
	}
	json_decref(s->baseline_policy);
	s->baseline_policy = NULL;
}
