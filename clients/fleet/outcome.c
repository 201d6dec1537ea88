/* fb-fleet's outcome: a run's summary checked against the scenario's
 * expect sections (per channel, and per tenant). Pure code, no I/O. */
#include "outcome.h"

#include <stdio.h>
#include <string.h>

static void result(json_t *results, const char *prefix, const char *name, int ok,
                   const char *detail)
{
	char n[192];
	snprintf(n, sizeof n, "%s%s", prefix, name);
	json_array_append_new(results,
	                      json_pack("{s:s,s:b,s:s}", "name", n, "ok", ok, "detail", detail));
}

/* The per-tenant expectations of channel k against r.tenants (README.md,
 * "Tenants"). */
static int check_tenants(const struct scenario *s, int k, const json_t *r, const char *prefix,
                         json_t *results)
{
	const struct scn_expect *x = &s->ch[k].expect;
	const char *content = s->contents[s->ch[k].rollout].name;
	int all = 1, ok;
	char d[512], name[SCN_MAX_NAME + 48];
	for (int i = 0; i < x->n_tenants; i++) {
		const struct scn_tenant_expect *q = &x->tenants[i];
		const char *tn = q->tenant < s->n_tenants ? s->tenants[q->tenant].name : "default";
		const json_t *t = json_object_get(json_object_get(r, "tenants"), tn);
		json_int_t applied =
		        json_integer_value(json_object_get(json_object_get(t, "applied"), content));
		if (q->max_exposure >= 0) {
			ok = t && applied <= q->max_exposure;
			snprintf(d, sizeof d,
			         "%lld of %s's agents applied %s, at most %lld allowed",
			         (long long)applied, tn, content, (long long)q->max_exposure);
			snprintf(name, sizeof name, "tenant %s: max_exposure", tn);
			result(results, prefix, name, ok, d);
			all &= ok;
		}
		if (q->max_ring >= 0) {
			const json_t *byring = json_object_get(t, "applied_by_ring");
			json_int_t beyond = 0;
			for (int rg = q->max_ring + 1; rg < s->n_rings; rg++)
				beyond += json_integer_value(
				        json_object_get(byring, s->rings[rg].name));
			ok = t && beyond == 0;
			snprintf(d, sizeof d,
			         "%lld of %s's agents beyond ring %s applied %s, none allowed",
			         (long long)beyond, tn, s->rings[q->max_ring].name, content);
			snprintf(name, sizeof name, "tenant %s: max_ring", tn);
			result(results, prefix, name, ok, d);
			all &= ok;
		}
		if (q->reached >= 0) {
			json_int_t live = json_integer_value(json_object_get(t, "live"));
			json_int_t running = json_integer_value(
			        json_object_get(json_object_get(t, "running"), content));
			if (q->reached) {
				ok = t && live > 0 && running == live;
				snprintf(d, sizeof d,
				         "%lld of %s's %lld live agents run %s at the end",
				         (long long)running, tn, (long long)live, content);
			} else {
				ok = t && applied == 0;
				snprintf(d, sizeof d, "%lld of %s's agents ever applied %s",
				         (long long)applied, tn, content);
			}
			snprintf(name, sizeof name, "tenant %s: reached", tn);
			result(results, prefix, name, ok, d);
			all &= ok;
		}
		if (q->after_delay) {
			const json_t *a = json_object_get(t, "first_apply_after_end_s");
			double delay = (double)s->tenants[q->tenant].delay_s;
			/* the server's completion time has whole seconds */
			ok = json_is_number(a) && json_number_value(a) >= delay - 1.0;
			if (json_is_number(a))
				snprintf(d, sizeof d,
				         "%s's first apply of %s came %.1f s after the rollout "
				         "completed, its delay is %.0f s",
				         tn, content, json_number_value(a), delay);
			else
				snprintf(d, sizeof d,
				         "%s never applied %s after the rollout completed (delay "
				         "%.0f "
				         "s)",
				         tn, content, delay);
			snprintf(name, sizeof name, "tenant %s: after_delay", tn);
			result(results, prefix, name, ok, d);
			all &= ok;
		}
	}
	return all;
}

/* The expectations of channel k against its rollout object r (the summary
 * itself in the single-channel form). */
static int check_channel(const struct scenario *s, int k, const json_t *r, const char *prefix,
                         json_t *results)
{
	const struct scn_channel *ch = &s->ch[k];
	const struct scn_expect *x = &ch->expect;
	int all = 1, ok;
	char d[512];
	const json_t *ro = json_object_get(r, "rollout");
	const char *state = json_string_value(json_object_get(ro, "state"));
	state = state ? state : "";
	json_int_t ri = json_integer_value(json_object_get(ro, "ring_index"));
	const char *ring = json_string_value(json_object_get(ro, "ring"));
	if (x->n_states) {
		ok = 0;
		for (int i = 0; i < x->n_states; i++)
			ok |= strcmp(state, x->states[i]) == 0;
		snprintf(d, sizeof d, "final state %s", state);
		result(results, prefix, "state", ok, d);
		all &= ok;
	}
	if (x->max_ring >= 0) {
		ok = ri <= x->max_ring;
		snprintf(d, sizeof d, "reached ring %lld (%s), at most %d (%s) allowed",
		         (long long)ri, ring ? ring : "-", x->max_ring, s->rings[x->max_ring].name);
		result(results, prefix, "max_ring", ok, d);
		all &= ok;
	}
	if (x->min_ring >= 0) {
		ok = json_is_integer(json_object_get(ro, "ring_index")) && ri >= x->min_ring;
		snprintf(d, sizeof d, "reached ring %lld (%s), at least %d (%s) wanted",
		         (long long)ri, ring ? ring : "-", x->min_ring, s->rings[x->min_ring].name);
		result(results, prefix, "min_ring", ok, d);
		all &= ok;
	}
	json_int_t exposure = json_integer_value(json_object_get(r, "exposure_under_test"));
	if (x->max_exposure != -1 || x->max_exposure_ring >= 0) {
		int64_t lim = x->max_exposure == -2 ? s->rings[0].agents : x->max_exposure;
		if (x->max_exposure_ring >= 0) {
			lim = 0;
			for (int i = 0; i <= x->max_exposure_ring; i++)
				lim += s->rings[i].agents;
		}
		ok = exposure <= lim;
		snprintf(d, sizeof d,
		         "%lld agents applied the content under test, at most %lld allowed",
		         (long long)exposure, (long long)lim);
		result(results, prefix, "max_exposure", ok, d);
		all &= ok;
	}
	if (x->max_on_bad >= 0) {
		json_int_t n = json_integer_value(json_object_get(r, "on_bad_content"));
		ok = n <= x->max_on_bad;
		snprintf(d, sizeof d,
		         "%lld agents still run the content under test, at most %lld allowed",
		         (long long)n, (long long)x->max_on_bad);
		result(results, prefix, "on_bad_content", ok, d);
		all &= ok;
	}
	if (x->exposed_on_lkg) {
		json_int_t n =
		        json_integer_value(json_object_get(r, "exposed_not_on_last_known_good"));
		ok = n == 0;
		snprintf(d, sizeof d,
		         "%lld exposed live agents are not back on the last known good",
		         (long long)n);
		result(results, prefix, "exposed_on_last_known_good", ok, d);
		all &= ok;
	}
	if (x->max_false_halts >= 0) {
		json_int_t n = json_integer_value(json_object_get(r, "false_halts"));
		ok = n <= x->max_false_halts;
		snprintf(d, sizeof d, "%lld false halts, at most %lld allowed", (long long)n,
		         (long long)x->max_false_halts);
		result(results, prefix, "false_halts", ok, d);
		all &= ok;
	}
	if (x->upload_rejected) {
		const char *name = s->contents[ch->rollout].name;
		const json_t *u = json_object_get(json_object_get(r, "uploads"), name);
		ok = json_is_false(json_object_get(u, "accepted"));
		snprintf(d, sizeof d, "upload of %s: %s", name, ok ? "refused" : "accepted");
		result(results, prefix, "upload_rejected", ok, d);
		all &= ok;
	}
	if (x->halted_by_silence) {
		const json_t *h = json_object_get(r, "halt_inputs");
		json_int_t silent = json_integer_value(json_object_get(h, "silent"));
		json_int_t reports = json_integer_value(json_object_get(h, "crashed")) +
		                     json_integer_value(json_object_get(h, "boot_looped"));
		ok = h && silent > 0 && reports == 0;
		snprintf(d, sizeof d,
		         "halting evaluation: %lld silent, %lld crash/boot-loop reports",
		         (long long)silent, (long long)reports);
		result(results, prefix, "halted_by_silence", ok, d);
		all &= ok;
	}
	if (x->seen_state[0]) {
		ok = 0;
		size_t i;
		json_t *v;
		json_array_foreach(json_object_get(ro, "states_seen"), i, v) ok |=
		        json_is_string(v) && strcmp(json_string_value(v), x->seen_state) == 0;
		snprintf(d, sizeof d, "%s %s seen before the final state %s", x->seen_state,
		         ok ? "was" : "was not", state);
		result(results, prefix, "seen_state", ok, d);
		all &= ok;
	}
	if (x->reason_contains[0]) {
		const char *why = json_string_value(json_object_get(ro, "state_reason"));
		ok = why && strstr(why, x->reason_contains) != NULL;
		snprintf(d, sizeof d, "state_reason %s '%s': %.300s", ok ? "names" : "lacks",
		         x->reason_contains, why ? why : "(none)");
		result(results, prefix, "reason_contains", ok, d);
		all &= ok;
	}
	return all & check_tenants(s, k, r, prefix, results);
}

int outcome_check(const struct scenario *s, const json_t *summary, json_t *results)
{
	const json_t *rs = json_object_get(summary, "rollouts");
	int all = 1;
	for (int k = 0; k < s->n_channels; k++) {
		const json_t *r = json_array_get(rs, (size_t)k);
		char prefix[SCN_MAX_NAME + 4] = "";
		if (s->n_channels > 1)
			snprintf(prefix, sizeof prefix, "%s: ", s->ch[k].name);
		if (!r && k == 0)
			r = summary;
		all &= check_channel(s, k, r, prefix, results);
	}
	return all;
}
