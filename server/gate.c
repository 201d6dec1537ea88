/* The promotion gate: hard rules, Wilson score bounds and a one-sided Wald
 * SPRT on binomial failure counts (valid under continuous monitoring), turned
 * into PROMOTE / WAIT / HALT with the reason in words. Pure code; see GATE.md. */
#include "gate.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Counts above this are treated as this (no overflow in sums). */
#define GATE_COUNT_MAX 1000000000000LL

/* ---- numerics ------------------------------------------------------------ */

/* Inverse of the standard normal CDF for p in (0, 1): Acklam's rational
 * approximation (relative error < 1.2e-9) refined by one Halley step on
 * erfc, which brings it to double precision. */
static double gate_norm_quantile(double p)
{
	static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
	                           -2.759285104469687e+02, 1.383577518672690e+02,
	                           -3.066479806614716e+01, 2.506628277459239e+00};
	static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
	                           -1.556989798598866e+02, 6.680131188771972e+01,
	                           -1.328068155288572e+01};
	static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
	                           -2.400758277161838e+00, -2.549732539343734e+00,
	                           4.374664141464968e+00,  2.938163982698783e+00};
	static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
	                           2.445134137142996e+00, 3.754408661907416e+00};
	const double plow = 0.02425;
	double x, q, r;

	if (p <= 0.0)
		return -INFINITY;
	if (p >= 1.0)
		return INFINITY;
	if (p < plow) {
		q = sqrt(-2.0 * log(p));
		x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
		    ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
	} else if (p <= 1.0 - plow) {
		q = p - 0.5;
		r = q * q;
		x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
		    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
	} else {
		q = sqrt(-2.0 * log1p(-p));
		x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
		    ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
	}
	double e = 0.5 * erfc(-x / sqrt(2.0)) - p;
	double u = e * sqrt(2.0 * M_PI) * exp(x * x / 2.0);
	return x - u / (1.0 + x * u / 2.0);
}

/* Wilson score bounds on k successes of n at normal quantile z (each bound
 * one-sided at the confidence z stands for). n == 0 gives [0, 1]. */
static void gate_wilson(int64_t k, int64_t n, double z, double *lo, double *hi)
{
	if (n <= 0) {
		*lo = 0.0;
		*hi = 1.0;
		return;
	}
	double nn = (double)n, kk = (double)k, z2 = z * z;
	double centre = (kk + z2 / 2.0) / (nn + z2);
	double half = z * sqrt(kk * (nn - kk) / nn + z2 / 4.0) / (nn + z2);
	*lo = k == 0 ? 0.0 : fmax(0.0, centre - half);
	*hi = k == n ? 1.0 : fmin(1.0, centre + half);
}

/* Log-likelihood ratio of k failures in n under rate p1 against rate p0
 * (0 < p0 < p1 < 1). */
static double gate_llr(int64_t k, int64_t n, double p0, double p1)
{
	double kk = (double)k, rest = (double)(n - k);
	return kk * log(p1 / p0) + rest * (log1p(-p1) - log1p(-p0));
}

static int64_t gate_count(int64_t v)
{
	if (v < 0)
		return 0;
	return v > GATE_COUNT_MAX ? GATE_COUNT_MAX : v;
}

static double gate_clamp(double v, double lo, double hi, double dflt)
{
	if (!isfinite(v))
		return dflt;
	return v < lo ? lo : v > hi ? hi : v;
}

/* ---- the reason text ------------------------------------------------------- */

struct gate_text {
	char *buf;
	size_t cap, len;
};

static void gate_text_add(struct gate_text *t, const char *fmt, ...) FB_PRINTF(2, 3);
static void gate_text_add(struct gate_text *t, const char *fmt, ...)
{
	if (t->len + 1 >= t->cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	if (w < 0)
		return;
	t->len += (size_t)w;
	if (t->len >= t->cap)
		t->len = t->cap - 1; /* truncated; the buffer stays terminated */
}

/* ---- the decision --------------------------------------------------------- */

const char *gate_decision_name(enum gate_decision d)
{
	switch (d) {
	case GATE_WAIT: return "WAIT";
	case GATE_PROMOTE: return "PROMOTE";
	case GATE_HALT: return "HALT";
	}
	return "UNKNOWN";
}

void gate_decide(const struct gate_policy *p, const struct gate_inputs *in, struct gate_result *out)
{
	struct gate_text t;
	memset(out, 0, sizeof *out);
	t.buf = out->reason;
	t.cap = sizeof out->reason;
	t.len = 0;

	/* The policy is validated on the way in; still never divide by or log
	 * something meaningless here. */
	double conf = gate_clamp(p->confidence, 0.5, 0.999999, 0.95);
	double limit = gate_clamp(p->max_failure_rate, 1e-6, 0.999, 0.01);
	double tol = gate_clamp(p->tolerance, 0.0, 0.999, 0.0);
	int64_t min_healthy = p->min_healthy < 1 ? 1 : p->min_healthy;
	int64_t min_bake = p->min_bake_s < 0 ? 0 : p->min_bake_s;

	int64_t healthy = gate_count(in->healthy), crashed = gate_count(in->crashed);
	int64_t looped = gate_count(in->boot_looped), silent = gate_count(in->silent);
	int64_t control = gate_count(in->control), cfailed = gate_count(in->control_failed);
	int64_t treated = gate_count(in->treated), bake = in->bake_elapsed_s;
	bool counted = in->silence_counted != 0;
	bool inconsistent = false;

	if (cfailed > control) {
		cfailed = control;
		inconsistent = true;
	}
	int64_t reported = crashed + looped;
	int64_t failures = reported + (counted ? silent : 0);
	/* Every agent counted anywhere has applied the file: if the parts add
	 * up to more than the whole, believe the parts (fail safe). */
	if (healthy + reported + silent > treated) {
		treated = healthy + reported + silent;
		inconsistent = true;
	}
	int64_t n = healthy + failures;

	/* Figures: bounds, control, the sequential test. */
	double z = gate_norm_quantile(conf);
	double alpha = 1.0 - conf;
	out->failures = failures;
	out->outcomes = n;
	out->treated_rate = n > 0 ? (double)failures / (double)n : 0.0;
	gate_wilson(failures, n, z, &out->treated_lower, &out->treated_upper);
	double clo = 0.0;
	out->control_rate = control > 0 ? (double)cfailed / (double)control : 0.0;
	gate_wilson(cfailed, control, z, &clo, &out->control_upper);
	double p0 = limit;
	if (control > 0 && out->control_upper + tol < limit)
		p0 = out->control_upper + tol;
	if (p0 < 1e-6)
		p0 = 1e-6;
	double p1 = p0 < limit ? fmax(limit, 2.0 * p0) : 2.0 * p0;
	p1 = fmin(p1, (1.0 + p0) / 2.0);
	out->baseline_rate = p0;
	out->alt_rate = p1;
	out->statistic = gate_llr(failures, n, p0, p1);
	out->threshold = log(1.0 / alpha);

	double pct = 100.0 * conf;
	char ctl[160];
	if (control > 0)
		snprintf(ctl, sizeof ctl, "control %.2f%% (%lld of %lld, upper %.2f%%)",
		         100.0 * out->control_rate, (long long)cfailed, (long long)control,
		         100.0 * out->control_upper);
	else
		snprintf(ctl, sizeof ctl, "no control agents");
	char base[200];
	if (p0 < limit)
		snprintf(base, sizeof base,
		         "acceptable %.2f%% = control upper %.2f%% + tolerance %.2f%%", 100.0 * p0,
		         100.0 * out->control_upper, 100.0 * tol);
	else
		snprintf(base, sizeof base, "acceptable %.2f%% = the limit (%s)", 100.0 * p0,
		         control > 0 ? "control upper + tolerance is above it"
		                     : "no control agents");

	/* The reports background noise explains: at the rate the control shows
	 * (never above the limit) the treated agents expect lambda reports;
	 * allow z standard deviations for their own Poisson scatter and for the
	 * uncertainty of the control's rate. A control that shows no failures
	 * explains nothing (an upper bound would be ignorance, not evidence:
	 * on a small control it would switch the cap off), nor does no control:
	 * then the cap is absolute. */
	double bg_rate = control > 0 ? fmin(out->control_rate, limit) : 0.0;
	double nt = (double)treated;
	double lambda = bg_rate * nt;
	double var = lambda +
	             (control > 0 ? nt * nt * bg_rate * (1.0 - bg_rate) / (double)control : 0.0);
	out->background = (int64_t)floor(lambda + z * sqrt(var));
	out->excess = reported > out->background ? reported - out->background : 0;

	/* 1. Hard cap: reports of crashes and boot loops beyond the background,
	 * whatever the rate. */
	if (p->hard_cap > 0 && out->excess >= p->hard_cap) {
		out->decision = GATE_HALT;
		gate_text_add(&t,
		              "HALT: %lld treated agents crashed or boot-looped on the new content "
		              "(%lld crashed, %lld boot-looped), %lld more than the %lld that "
		              "background noise explains (%.1f expected of %lld treated at the "
		              "control's rate %.3f%%, plus scatter) - hard cap %lld reached, "
		              "whatever the rate. Also: %lld of %lld with an outcome failed "
		              "(%.2f%%), SPRT log-LR %.2f (halts at %.2f)",
		              (long long)reported, (long long)crashed, (long long)looped,
		              (long long)out->excess, (long long)out->background, lambda,
		              (long long)treated, 100.0 * bg_rate, (long long)p->hard_cap,
		              (long long)failures, (long long)n, 100.0 * out->treated_rate,
		              out->statistic, out->threshold);
		goto out;
	}
	/* 2. Nobody has the file yet: nothing to judge. */
	if (treated == 0) {
		out->decision = GATE_WAIT;
		gate_text_add(&t,
		              "WAIT: no treated agent has applied the new content yet (bake %llds "
		              "of %llds)",
		              (long long)bake, (long long)min_bake);
		goto out;
	}
	/* 3. Telemetry loss is failure: nobody alive and reporting. */
	if (counted && silent > 0 && healthy == 0 && failures >= treated) {
		out->decision = GATE_HALT;
		gate_text_add(&t,
		              "HALT: no treated agent is alive and reporting - all %lld treated "
		              "failed or fell silent (%lld silent for more than %llds after "
		              "applying, %lld crashed, %lld boot-looped); loss of telemetry counts "
		              "as failure",
		              (long long)treated, (long long)silent,
		              (long long)p->silence_timeout_s, (long long)crashed,
		              (long long)looped);
		goto out;
	}
	/* 4. The sequential test. */
	if (failures > 0 && out->statistic >= out->threshold) {
		out->decision = GATE_HALT;
		gate_text_add(
		        &t,
		        "HALT: treated failure rate %.2f%% (%lld of %lld with an outcome: %lld "
		        "crashed, %lld boot-looped, %lld silent%s) is above the %s, at %.0f%% "
		        "confidence (SPRT %.2f%% vs %.2f%%: log-LR %.2f >= %.2f); %s",
		        100.0 * out->treated_rate, (long long)failures, (long long)n,
		        (long long)crashed, (long long)looped, (long long)silent,
		        counted ? "" : " not counted", base, pct, 100.0 * p0, 100.0 * p1,
		        out->statistic, out->threshold, ctl);
		goto out;
	}
	/* 5. Promotion needs everything at once; otherwise say what is missing. */
	int missing = 0;
	gate_text_add(&t, "WAIT for: ");
	if (bake < min_bake) {
		gate_text_add(&t, "%sbake time (%llds of %llds)", missing++ ? "; " : "",
		              (long long)bake, (long long)min_bake);
	}
	if (healthy < min_healthy) {
		gate_text_add(&t, "%shealthy agents (%lld of %lld)", missing++ ? "; " : "",
		              (long long)healthy, (long long)min_healthy);
	}
	if (!counted && silent > 0) {
		gate_text_add(&t,
		              "%send of the restart grace (%lld silent agents count as neither "
		              "failed nor healthy until then)",
		              missing++ ? "; " : "", (long long)silent);
	}
	if (n == 0) {
		gate_text_add(&t, "%sfirst outcomes (%lld treated, none reported since applying)",
		              missing++ ? "; " : "", (long long)treated);
	} else if (out->treated_upper >= limit) {
		gate_text_add(&t,
		              "%sfailure upper bound %.2f%% (%lld of %lld) to fall below the limit "
		              "%.2f%%",
		              missing++ ? "; " : "", 100.0 * out->treated_upper,
		              (long long)failures, (long long)n, 100.0 * limit);
	}
	if (missing) {
		out->decision = GATE_WAIT;
		gate_text_add(
		        &t,
		        ". Now: %lld of %lld with an outcome failed (%.2f%%, bounds %.2f-%.2f%% "
		        "at %.0f%%), %s, SPRT log-LR %.2f of %.2f to halt",
		        (long long)failures, (long long)n, 100.0 * out->treated_rate,
		        100.0 * out->treated_lower, 100.0 * out->treated_upper, pct, ctl,
		        out->statistic, out->threshold);
		if (p->hard_cap > 0 && out->background > 0)
			gate_text_add(&t,
			              ", hard cap %lld of %lld (%lld reports, %lld explained by "
			              "background)",
			              (long long)out->excess, (long long)p->hard_cap,
			              (long long)reported, (long long)out->background);
		else if (p->hard_cap > 0)
			gate_text_add(&t, ", hard cap %lld of %lld", (long long)out->excess,
			              (long long)p->hard_cap);
		goto out;
	}
	t.len = 0;
	out->decision = GATE_PROMOTE;
	gate_text_add(&t,
	              "PROMOTE: baked %llds (min %llds), %lld healthy (min %lld), %lld of %lld "
	              "failed (%.2f%%), upper bound %.2f%% < limit %.2f%% at %.0f%%; %s; SPRT "
	              "log-LR %.2f < %.2f",
	              (long long)bake, (long long)min_bake, (long long)healthy,
	              (long long)min_healthy, (long long)failures, (long long)n,
	              100.0 * out->treated_rate, 100.0 * out->treated_upper, 100.0 * limit, pct,
	              ctl, out->statistic, out->threshold);
out:
	if (out->decision == GATE_WAIT && p->max_wait_s > 0 && bake >= min_bake + p->max_wait_s &&
	    in->wait_elapsed_s >= p->max_wait_s) {
		out->stalled = 1;
		gate_text_add(&t,
		              ". STALLED: still waiting %llds after the minimum bake (max_wait_s "
		              "%lld); the rollout is paused for an operator",
		              (long long)(bake - min_bake), (long long)p->max_wait_s);
	}
	if (inconsistent)
		gate_text_add(&t,
		              " [note: inconsistent counts, parts exceed totals; used the parts]");
}

/* ---- policies ---------------------------------------------------------------- */

void gate_policy_default(int ring_index, int nrings, struct gate_policy *out)
{
	if (nrings < 1)
		nrings = 1;
	if (ring_index < 0)
		ring_index = 0;
	if (ring_index >= nrings)
		ring_index = nrings - 1;

	/* Shared by every ring: 95 %, tolerance 0.25 points, silence = five
	 * heartbeat intervals of 60 s. */
	out->confidence = 0.95;
	out->tolerance = 0.0025;
	out->silence_timeout_s = 300;
	out->max_wait_s = 86400;
	if (ring_index == 0) { /* canary */
		out->min_bake_s = 1800;
		out->min_healthy = 25;
		out->max_failure_rate = 0.10;
		out->hard_cap = 3;
	} else if (ring_index == 1 && nrings > 2) { /* early */
		out->min_bake_s = 3600;
		out->min_healthy = 500;
		out->max_failure_rate = 0.015;
		out->hard_cap = 10;
	} else { /* broad, GA: statistics only */
		out->min_bake_s = 3600;
		out->min_healthy = 1000;
		out->max_failure_rate = 0.01;
		out->hard_cap = 0;
	}
}

enum gate_key_type { GATE_KEY_INT, GATE_KEY_RATE };

static const struct gate_key {
	const char *name;
	enum gate_key_type type;
	size_t off;
	double min, max;
	bool min_open;     /* the lower bound itself is refused */
	const char *bound; /* the bound in words, for the error */
} gate_keys[] = {
        {"min_bake_s", GATE_KEY_INT, offsetof(struct gate_policy, min_bake_s), 0, 2592000, false,
         "[0, 2592000] seconds"},
        {"min_healthy", GATE_KEY_INT, offsetof(struct gate_policy, min_healthy), 1, 100000000,
         false, "[1, 100000000]"},
        {"max_failure_rate", GATE_KEY_RATE, offsetof(struct gate_policy, max_failure_rate), 0, 0.5,
         true, "(0, 0.5]"},
        {"tolerance", GATE_KEY_RATE, offsetof(struct gate_policy, tolerance), 0, 0.5, false,
         "[0, 0.5]"},
        {"confidence", GATE_KEY_RATE, offsetof(struct gate_policy, confidence), 0.8, 0.999, false,
         "[0.8, 0.999]"},
        {"hard_cap", GATE_KEY_INT, offsetof(struct gate_policy, hard_cap), 0, 1000000, false,
         "[0, 1000000] (0 = off)"},
        {"silence_timeout_s", GATE_KEY_INT, offsetof(struct gate_policy, silence_timeout_s), 1,
         86400, false, "[1, 86400] seconds"},
        {"max_wait_s", GATE_KEY_INT, offsetof(struct gate_policy, max_wait_s), 0, 2592000, false,
         "[0, 2592000] seconds (0 = wait forever)"},
};

enum fb_rc gate_policy_apply_json(struct gate_policy *p, const json_t *overrides,
                                  struct fb_err *err)
{
	enum fb_rc rc = FB_EINVAL;
	struct gate_policy next;
	const char *key;
	json_t *val;

	if (!p) {
		fb_err_set(err, "gate policy: no policy to apply overrides to");
		goto out;
	}
	if (!overrides) {
		rc = FB_OK;
		goto out;
	}
	if (!json_is_object(overrides)) {
		fb_err_set(err, "gate policy: overrides must be a JSON object");
		goto out;
	}
	next = *p;
	json_object_foreach((json_t *)overrides, key, val)
	{
		const struct gate_key *k = NULL;
		for (size_t i = 0; i < sizeof gate_keys / sizeof gate_keys[0]; i++)
			if (strcmp(gate_keys[i].name, key) == 0)
				k = &gate_keys[i];
		if (!k) {
			fb_err_set(
			        err,
			        "gate policy: unknown key \"%s\" (known: min_bake_s, min_healthy, "
			        "max_failure_rate, tolerance, confidence, hard_cap, "
			        "silence_timeout_s, max_wait_s)",
			        key);
			goto out;
		}
		if (k->type == GATE_KEY_INT) {
			if (!json_is_integer(val)) {
				fb_err_set(err, "gate policy: \"%s\" must be an integer in %s", key,
				           k->bound);
				goto out;
			}
			json_int_t v = json_integer_value(val);
			if ((double)v < k->min || (double)v > k->max) {
				fb_err_set(err, "gate policy: \"%s\" = %lld is outside %s", key,
				           (long long)v, k->bound);
				goto out;
			}
			*(int64_t *)((char *)&next + k->off) = (int64_t)v;
		} else {
			if (!json_is_number(val)) {
				fb_err_set(err, "gate policy: \"%s\" must be a number in %s", key,
				           k->bound);
				goto out;
			}
			double v = json_number_value(val);
			if (!isfinite(v) || v < k->min || (k->min_open && v <= k->min) ||
			    v > k->max) {
				fb_err_set(err, "gate policy: \"%s\" = %g is outside %s", key, v,
				           k->bound);
				goto out;
			}
			*(double *)((char *)&next + k->off) = v;
		}
	}
	*p = next;
	rc = FB_OK;
out:
	return rc;
}

/* ---- JSON --------------------------------------------------------------------- */

json_t *gate_policy_to_json(const struct gate_policy *p)
{
	return json_pack("{s:I, s:I, s:f, s:f, s:f, s:I, s:I, s:I}", "min_bake_s",
	                 (json_int_t)p->min_bake_s, "min_healthy", (json_int_t)p->min_healthy,
	                 "max_failure_rate", p->max_failure_rate, "tolerance", p->tolerance,
	                 "confidence", p->confidence, "hard_cap", (json_int_t)p->hard_cap,
	                 "silence_timeout_s", (json_int_t)p->silence_timeout_s, "max_wait_s",
	                 (json_int_t)p->max_wait_s);
}

json_t *gate_inputs_to_json(const struct gate_inputs *in)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:i}", "treated",
	                 (json_int_t)in->treated, "healthy", (json_int_t)in->healthy, "crashed",
	                 (json_int_t)in->crashed, "boot_looped", (json_int_t)in->boot_looped,
	                 "silent", (json_int_t)in->silent, "control", (json_int_t)in->control,
	                 "control_failed", (json_int_t)in->control_failed, "bake_elapsed_s",
	                 (json_int_t)in->bake_elapsed_s, "wait_elapsed_s",
	                 (json_int_t)in->wait_elapsed_s, "silence_counted",
	                 in->silence_counted != 0, "looks", in->looks);
}

/* Non-finite reals cannot be JSON; they never come out of gate_decide, but
 * a hand-made result must still serialise. */
static double gate_finite(double v)
{
	return isfinite(v) ? v : 0.0;
}

json_t *gate_result_to_json(const struct gate_result *r)
{
	return json_pack(
	        "{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
	        "decision", gate_decision_name(r->decision), "reason", r->reason, "stalled",
	        r->stalled != 0, "failures", (json_int_t)r->failures, "outcomes",
	        (json_int_t)r->outcomes, "background", (json_int_t)r->background, "excess",
	        (json_int_t)r->excess, "treated_rate", gate_finite(r->treated_rate),
	        "treated_lower", gate_finite(r->treated_lower), "treated_upper",
	        gate_finite(r->treated_upper), "control_rate", gate_finite(r->control_rate),
	        "control_upper", gate_finite(r->control_upper), "baseline_rate",
	        gate_finite(r->baseline_rate), "alt_rate", gate_finite(r->alt_rate), "statistic",
	        gate_finite(r->statistic), "threshold", gate_finite(r->threshold));
}
