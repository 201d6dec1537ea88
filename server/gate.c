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

/* The guards run at alpha / GATE_GUARD_SHARE (GATE.md, "The guards"). */
#define GATE_GUARD_SHARE 50.0

/* The relative test never halts on fewer treated failures than this: one
 * crash right after an apply is a tiny exposure and a huge ratio. */
#define GATE_MIN_REL_FAILURES 2

/* At most this share of a fleet's background crashes is assumed to happen
 * while an agent interprets some channel's content and so to name that
 * channel (GATE.md, "The attributed cap"): its floor for the background of
 * attributed crashes, whatever few such crashes the control shows. */
#define GATE_ATTR_SHARE 0.2

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

/* ---- the relative test ------------------------------------------------------ */

/* The alternatives of the mixture, as multiples of max_ratio: the test is
 * most powerful near the alternative, and a file may be anything from a
 * little to catastrophically worse than its control. Equal weights. */
static const double gate_rho_mult[GATE_RHOS] = {4.0, 10.0, 40.0};

static double gate_nonneg(double v)
{
	return isfinite(v) && v > 0.0 ? v : 0.0;
}

void gate_relative(const struct gate_policy *p, const struct gate_seq *prev,
                   const struct gate_group *g, double threshold, struct gate_seq *next,
                   struct gate_rel *out)
{
	struct gate_seq base;
	memset(out, 0, sizeof *out);
	if (prev)
		base = *prev;
	else
		memset(&base, 0, sizeof base);
	double rho0 = gate_clamp(p->max_ratio, 1.0, 1000.0, 2.0);
	int64_t n = gate_count(g->treated), ft = gate_count(g->failed);
	int64_t fc = gate_count(g->control_failed);
	double et = gate_nonneg(g->exposure_s), ec = gate_nonneg(g->control_exposure_s);
	if (ft > n)
		ft = n;

	/* The failures since the last look, and the exposure they came from.
	 * Counts and exposures only grow (a silent agent that comes back is
	 * not taken off the evidence twice). */
	int64_t dxt = ft > base.failed ? ft - base.failed : 0;
	int64_t dxc = fc > base.control_failed ? fc - base.control_failed : 0;
	double a = et - base.exposure_s, b = ec - base.control_exposure_s;
	if (!(a > 0.0 && b > 0.0)) { /* no new exposure on one side: the whole window */
		a = et;
		b = ec;
	}
	*next = base;
	if (dxt + dxc > 0 && a > 0.0 && b > 0.0) {
		/* Given that a failure happened, it is a treated one with
		 * probability rho a / (rho a + b) when the treated rate is rho
		 * times the control's (Poisson processes over host-time). */
		double pi0 = rho0 * a / (rho0 * a + b);
		for (int j = 0; j < GATE_RHOS; j++) {
			double rho = rho0 * gate_rho_mult[j];
			double pi1 = rho * a / (rho * a + b);
			next->llr[j] += (double)dxt * log(pi1 / pi0) +
			                (double)dxc * (log1p(-pi1) - log1p(-pi0));
		}
	}
	if (ft > next->failed)
		next->failed = ft;
	if (fc > next->control_failed)
		next->control_failed = fc;
	if (et > next->exposure_s)
		next->exposure_s = et;
	if (ec > next->control_exposure_s)
		next->control_exposure_s = ec;

	double m = next->llr[0];
	for (int j = 1; j < GATE_RHOS; j++)
		m = fmax(m, next->llr[j]);
	double sum = 0.0;
	for (int j = 0; j < GATE_RHOS; j++)
		sum += exp(next->llr[j] - m);
	out->statistic = m + log(sum / GATE_RHOS);
	out->threshold = threshold;
	out->treated_rate = et > 0.0 ? 3600.0 * (double)ft / et : 0.0;
	out->control_rate = ec > 0.0 ? 3600.0 * (double)fc / ec : 0.0;
	out->ratio = out->control_rate > 0.0 ? out->treated_rate / out->control_rate : 0.0;
	double predicted = ec > 0.0 && n > 0 ? (double)fc / ec * et / (double)n : 0.0;
	out->excess = n > 0 ? (double)ft / (double)n - predicted : 0.0;
	double min_excess = gate_clamp(p->min_excess, 0.0, 1.0, 0.0);
	out->halt = ft >= GATE_MIN_REL_FAILURES && out->statistic >= threshold &&
	            out->excess >= min_excess;
}

/* "2.1 per 1,000 host-hours (9 of 1100 hosts)" */
static void gate_rate_text(char *buf, size_t n, double rate, int64_t k, int64_t hosts)
{
	snprintf(buf, n, "%.2f per 1000 host-hours (%lld of %lld hosts)", 1000.0 * rate,
	         (long long)k, (long long)hosts);
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
	double max_excess = gate_clamp(p->max_excess, 1e-6, 1.0, 0.01);
	int64_t min_healthy = p->min_healthy < 1 ? 1 : p->min_healthy;
	int64_t min_bake = p->min_bake_s < 0 ? 0 : p->min_bake_s;

	int64_t healthy = gate_count(in->healthy), crashed = gate_count(in->crashed);
	int64_t looped = gate_count(in->boot_looped), silent = gate_count(in->silent);
	int64_t control = gate_count(in->control), cfailed = gate_count(in->control_failed);
	int64_t treated = gate_count(in->treated), bake = in->bake_elapsed_s;
	int64_t seasoned = gate_count(in->seasoned);
	bool counted = in->silence_counted != 0;
	bool inconsistent = false;

	/* Over host-time the control's failures are those on the previous
	 * content in the window, also of hosts that applied the file since:
	 * they may outnumber the hosts still on it. Only the per-host share
	 * needs them clamped. */
	int64_t cfailed_t = cfailed;
	double ec_in = in->control_exposure_s;
	bool by_time = isfinite(ec_in) && ec_in > 0.0;
	if (cfailed > control) {
		cfailed = control;
		inconsistent = !by_time;
	}
	int64_t reported = crashed + looped;
	int64_t failures = reported + (counted ? silent : 0);
	/* Every agent counted anywhere has applied the file: if the parts add
	 * up to more than the whole, believe the parts (fail safe). */
	if (healthy + reported + silent > treated) {
		treated = healthy + reported + silent;
		inconsistent = true;
	}
	if (seasoned > healthy)
		seasoned = healthy;
	/* Without min_exposure_s every healthy host is seasoned. */
	if (p->min_exposure_s <= 0)
		seasoned = healthy;
	int64_t n = healthy + failures;

	/* Figures: bounds, control, the tests. */
	double z = gate_norm_quantile(conf);
	double alpha = 1.0 - conf;
	out->failures = failures;
	out->outcomes = n;
	out->treated_rate = n > 0 ? (double)failures / (double)n : 0.0;
	gate_wilson(failures, n, z, &out->treated_lower, &out->treated_upper);
	double clo = 0.0;
	out->control_rate = control > 0 ? (double)cfailed / (double)control : 0.0;
	gate_wilson(cfailed, control, z, &clo, &out->control_upper);
	/* The absolute guard is for what is plainly wrong; it is checked at
	 * every look like the relative test, but at alpha / GATE_GUARD_SHARE,
	 * so that in a noisy fleet it is not what halts a good file. */
	out->threshold = log(GATE_GUARD_SHARE / alpha);

	/* The relative test: treated against the control over host-time. */
	struct gate_group grp = {.treated = n,
	                         .failed = failures,
	                         .exposure_s = in->exposure_s,
	                         .control = control,
	                         .control_failed = by_time ? cfailed_t : cfailed,
	                         .control_exposure_s = in->control_exposure_s};
	gate_relative(p, in->has_prev ? &in->prev : NULL, &grp, log(1.0 / alpha), &out->seq,
	              &out->rel);
	double predicted = out->rel.treated_rate > 0.0 || out->rel.control_rate > 0.0
	                           ? out->treated_rate - out->rel.excess
	                           : 0.0;
	if (n == 0)
		predicted = 0.0;
	out->excess_upper = out->treated_upper - predicted;

	/* The absolute guard: a one-sided SPRT of the treated failed share
	 * against the ring's limit - or, when the control's rate predicts more
	 * failed hosts than that for the same exposure (a noisy fleet over a
	 * long bake), against that prediction plus min_excess: a file is not
	 * halted for the fleet's own noise; the relative test judges it. */
	double abs_limit =
	        fmin(0.999, fmax(limit, predicted + gate_clamp(p->min_excess, 0.0, 1.0, 0.0)));
	double p0 = abs_limit, p1 = fmin(2.0 * p0, (1.0 + p0) / 2.0);
	out->baseline_rate = p0;
	out->alt_rate = p1;
	out->statistic = gate_llr(failures, n, p0, p1);

	double pct = 100.0 * conf;
	char ctl[200], trt[160], ctr[160];
	gate_rate_text(trt, sizeof trt, out->rel.treated_rate, failures, n);
	if (cfailed_t > control && by_time) /* failures of hosts that have the file now */
		snprintf(ctr, sizeof ctr,
		         "%.2f per 1000 host-hours (%lld failed, %lld hosts on it now)",
		         1000.0 * out->rel.control_rate, (long long)cfailed_t, (long long)control);
	else
		gate_rate_text(ctr, sizeof ctr, out->rel.control_rate, cfailed, control);
	if (control > 0)
		snprintf(ctl, sizeof ctl, "control %s", ctr);
	else
		snprintf(ctl, sizeof ctl, "no control agents");

	/* The reports background noise explains: at the rate the control shows
	 * (never above the limit) the treated agents expect lambda reports;
	 * allow z standard deviations for their own Poisson scatter and for the
	 * uncertainty of the control's rate. A control that shows no failures
	 * explains nothing (an upper bound would be ignorance, not evidence:
	 * on a small control it would switch the cap off), nor does no control:
	 * then the cap is absolute. */
	double bg_rate = control > 0 ? fmin(out->control_rate, limit) : 0.0;
	double nt = (double)treated, zc = z;
	double lambda = bg_rate * nt;
	double var = lambda +
	             (control > 0 ? nt * nt * bg_rate * (1.0 - bg_rate) / (double)control : 0.0);
	double et = in->exposure_s, ec = in->control_exposure_s;
	if (isfinite(et) && isfinite(ec) && et > 0.0 && ec > 0.0) {
		/* Over host-time: the control's rate times the treated hosts'
		 * exposure, the control's Poisson uncertainty scaled up. */
		double rate = (double)cfailed_t / ec;
		lambda = rate * et;
		var = lambda + et * et * (double)cfailed_t / (ec * ec);
		bg_rate = nt > 0.0 ? lambda / nt : 0.0;
		/* checked at every look for as long as a ring waits: a guard's
		 * quantile (a crash-everything canary still trips it at its
		 * 3rd report: a few minutes of exposure explain nothing) */
		zc = gate_norm_quantile(1.0 - alpha / GATE_GUARD_SHARE);
	}
	out->background = (int64_t)floor(lambda + zc * sqrt(var));
	out->excess = reported > out->background ? reported - out->background : 0;

	/* Crashes whose report named this channel as the one being interpreted
	 * (faulting_channel): the file's own crashes do; of the background only
	 * those that struck during an evaluation. Their background: the
	 * control's such crashes, but at least GATE_ATTR_SHARE of all its
	 * failures (of one when it had none: a quiet control is not a proof
	 * that the background is nil), at its rate, plus the same scatter as
	 * above. */
	int64_t attributed = gate_count(in->attributed);
	if (attributed > crashed)
		attributed = crashed;
	int64_t cf_all = by_time ? cfailed_t : cfailed;
	double ca = fmax((double)gate_count(in->control_attributed),
	                 GATE_ATTR_SHARE * (double)(cf_all > 0 ? cf_all : 1));
	double lambda_a = 0.0, var_a = 0.0;
	if (isfinite(et) && isfinite(ec) && et > 0.0 && ec > 0.0) {
		lambda_a = ca / ec * et;
		var_a = lambda_a + et * et * ca / (ec * ec);
	} else if (control > 0) {
		lambda_a = ca / (double)control * nt;
		var_a = lambda_a + nt * nt * ca / ((double)control * (double)control);
	}
	out->attributed_background = (int64_t)floor(lambda_a + zc * sqrt(var_a));
	out->attributed_excess = attributed > out->attributed_background
	                                 ? attributed - out->attributed_background
	                                 : 0;

	/* 1. Hard cap: reports of crashes and boot loops beyond the background,
	 * whatever the rate. */
	if (p->hard_cap > 0 && out->excess >= p->hard_cap) {
		out->decision = GATE_HALT;
		gate_text_add(&t,
		              "HALT: %lld treated agents crashed or boot-looped on the new content "
		              "(%lld crashed, %lld boot-looped), %lld more than the %lld that "
		              "background noise explains (%.1f expected of %lld treated at the "
		              "control's rate %.3f%%, plus scatter) - hard cap %lld reached, "
		              "whatever the rate. Also: treated %s, %s, relative log-LR %.2f "
		              "(halts at %.2f)",
		              (long long)reported, (long long)crashed, (long long)looped,
		              (long long)out->excess, (long long)out->background, lambda,
		              (long long)treated, 100.0 * bg_rate, (long long)p->hard_cap, trt, ctl,
		              out->rel.statistic, out->rel.threshold);
		goto out;
	}
	/* 1b. Attributed cap: agents that crashed while interpreting the new
	 * content, beyond what the background explains. */
	if (p->attributed_cap > 0 && out->attributed_excess >= p->attributed_cap) {
		out->decision = GATE_HALT;
		gate_text_add(
		        &t,
		        "HALT: %lld treated agents crashed while interpreting the new content "
		        "(their crash reports name this channel), %lld more than the %lld "
		        "that background explains (%.2f expected from the control's crashes) "
		        "- attributed cap %lld reached. Also: treated %s, %s, relative "
		        "log-LR %.2f (halts at %.2f)",
		        (long long)attributed, (long long)out->attributed_excess,
		        (long long)out->attributed_background, lambda_a,
		        (long long)p->attributed_cap, trt, ctl, out->rel.statistic,
		        out->rel.threshold);
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
	/* 4. The relative test: worse than the hosts that did not get it. */
	if (out->rel.halt) {
		char times[48];
		if (out->rel.control_rate > 0.0)
			snprintf(times, sizeof times, "%.1f times the control's rate",
			         out->rel.ratio);
		else
			snprintf(times, sizeof times, "the control had no failure");
		out->decision = GATE_HALT;
		gate_text_add(&t,
		              "HALT: treated %s (%lld crashed, %lld boot-looped, %lld silent%s) vs "
		              "%s: %s, confidently above %.1f times "
		              "(relative log-LR %.2f >= %.2f at %.0f%%), %.2f points more hosts "
		              "failed than the control's rate predicts (min %.2f)",
		              trt, (long long)crashed, (long long)looped, (long long)silent,
		              counted ? "" : " not counted", ctl, times,
		              gate_clamp(p->max_ratio, 1.0, 1000.0, 2.0), out->rel.statistic,
		              out->rel.threshold, pct, 100.0 * out->rel.excess,
		              100.0 * gate_clamp(p->min_excess, 0.0, 1.0, 0.0));
		goto out;
	}
	/* 5. The absolute guard. */
	if (failures > 0 && out->statistic >= out->threshold) {
		out->decision = GATE_HALT;
		gate_text_add(
		        &t,
		        "HALT: treated failure rate %.2f%% (%lld of %lld with an outcome: %lld "
		        "crashed, %lld boot-looped, %lld silent%s) is above the ring's limit "
		        "%.2f%% at %.0f%% confidence (SPRT %.2f%% vs "
		        "%.2f%%: log-LR %.2f >= %.2f); %s",
		        100.0 * out->treated_rate, (long long)failures, (long long)n,
		        (long long)crashed, (long long)looped, (long long)silent,
		        counted ? "" : " not counted", 100.0 * abs_limit, pct, 100.0 * p0,
		        100.0 * p1, out->statistic, out->threshold, ctl);
		goto out;
	}
	/* 6. Promotion needs everything at once; otherwise say what is missing. */
	int missing = 0;
	gate_text_add(&t, "WAIT for: ");
	if (bake < min_bake) {
		gate_text_add(&t, "%sbake time (%llds of %llds)", missing++ ? "; " : "",
		              (long long)bake, (long long)min_bake);
	}
	if (seasoned < min_healthy) {
		if (seasoned < healthy)
			gate_text_add(&t,
			              "%shealthy agents with %llds on the file (%lld of %lld; %lld "
			              "healthy in all)",
			              missing++ ? "; " : "", (long long)gate_exposure_needed(p),
			              (long long)seasoned, (long long)min_healthy,
			              (long long)healthy);
		else
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
	} else {
		if (out->treated_upper >= abs_limit)
			gate_text_add(&t,
			              "%sfailure upper bound %.2f%% (%lld of %lld) to fall below "
			              "the limit %.2f%%",
			              missing++ ? "; " : "", 100.0 * out->treated_upper,
			              (long long)failures, (long long)n, 100.0 * abs_limit);
		if (out->excess_upper >= max_excess)
			gate_text_add(
			        &t,
			        "%sexcess over the control's rate: upper bound %.2f points to "
			        "fall below %.2f",
			        missing++ ? "; " : "", 100.0 * out->excess_upper,
			        100.0 * max_excess);
	}
	if (missing) {
		out->decision = GATE_WAIT;
		gate_text_add(&t,
		              ". Now: treated %s (%.2f%%, bounds %.2f-%.2f%% at %.0f%%), %s, "
		              "relative log-LR %.2f of %.2f to halt, absolute %.2f of %.2f",
		              trt, 100.0 * out->treated_rate, 100.0 * out->treated_lower,
		              100.0 * out->treated_upper, pct, ctl, out->rel.statistic,
		              out->rel.threshold, out->statistic, out->threshold);
		if (p->hard_cap > 0 && out->background > 0)
			gate_text_add(&t,
			              ", hard cap %lld of %lld (%lld reports, %lld explained by "
			              "background)",
			              (long long)out->excess, (long long)p->hard_cap,
			              (long long)reported, (long long)out->background);
		else if (p->hard_cap > 0)
			gate_text_add(&t, ", hard cap %lld of %lld", (long long)out->excess,
			              (long long)p->hard_cap);
		if (p->attributed_cap > 0 && attributed > 0)
			gate_text_add(&t, ", attributed cap %lld of %lld (%lld named this channel)",
			              (long long)out->attributed_excess,
			              (long long)p->attributed_cap, (long long)attributed);
		goto out;
	}
	t.len = 0;
	out->decision = GATE_PROMOTE;
	gate_text_add(&t,
	              "PROMOTE: baked %llds (min %llds), %lld healthy (min %lld), treated %s, "
	              "upper bound %.2f%% < limit %.2f%%, excess upper %.2f < %.2f points at "
	              "%.0f%%; %s; relative log-LR %.2f < %.2f",
	              (long long)bake, (long long)min_bake, (long long)seasoned,
	              (long long)min_healthy, trt, 100.0 * out->treated_upper, 100.0 * limit,
	              100.0 * out->excess_upper, 100.0 * max_excess, pct, ctl, out->rel.statistic,
	              out->rel.threshold);
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

double gate_segment_threshold(const struct gate_policy *p, int judged)
{
	double conf = gate_clamp(p->confidence, 0.5, 0.999999, 0.95);
	return log((judged > 1 ? (double)judged : 1.0) / (1.0 - conf));
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

	/* Shared by every ring: 95 %, silence = five heartbeat intervals of
	 * 60 s, the relative test's ratio and excess, the holdout. */
	out->confidence = 0.95;
	out->min_excess = 0.0025;
	out->silence_timeout_s = 300;
	out->max_wait_s = 86400;
	out->max_ratio = 1.5;
	out->holdout = 0.02;
	out->holdout_min = 10;
	out->min_segment_agents = 20;
	out->min_segment_canaries = 0;
	out->watch_s = 0;
	out->attributed_cap = 2;
	if (ring_index == 0) { /* canary */
		out->min_bake_s = 1800;
		out->min_exposure_s = 900;
		out->min_healthy = 25;
		out->max_failure_rate = 0.10;
		out->max_excess = 0.10;
		out->hard_cap = 3;
		out->min_segment_canaries = 5;
	} else if (ring_index == 1 && nrings > 2) { /* early */
		out->min_bake_s = 3600;
		out->min_exposure_s = 1800;
		out->min_healthy = 500;
		out->max_failure_rate = 0.015;
		out->max_excess = 0.01;
		out->hard_cap = 10;
	} else { /* broad, GA: statistics only */
		out->min_bake_s = 3600;
		out->min_exposure_s = 1800;
		out->min_healthy = 1000;
		out->max_failure_rate = 0.01;
		out->max_excess = 0.0075;
		out->hard_cap = 0;
	}
	if (ring_index == nrings - 1) /* after the last promotion: watch a day */
		out->watch_s = 86400;
}

double gate_holdout_share(const struct gate_policy *p, int64_t ring_size)
{
	double share = gate_clamp(p->holdout, 0.0, 0.2, 0.0);
	if (ring_size <= 0 || share <= 0.0) /* holdout 0: none, whatever the floor */
		return 0.0;
	double held =
	        fmax(share * (double)ring_size, (double)(p->holdout_min > 0 ? p->holdout_min : 0));
	if (held > 0.2 * (double)ring_size)
		return 0.0; /* too small to spare a holdout: the control is the later rings */
	return held / (double)ring_size;
}

int64_t gate_exposure_needed(const struct gate_policy *p)
{
	int64_t e = p->min_exposure_s < p->min_bake_s ? p->min_exposure_s : p->min_bake_s;
	return e < 0 ? 0 : e;
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
        {"min_excess", GATE_KEY_RATE, offsetof(struct gate_policy, min_excess), 0, 0.5, false,
         "[0, 0.5]"},
        {"tolerance", GATE_KEY_RATE, offsetof(struct gate_policy, min_excess), 0, 0.5, false,
         "[0, 0.5] (the old name of min_excess)"},
        {"confidence", GATE_KEY_RATE, offsetof(struct gate_policy, confidence), 0.8, 0.999, false,
         "[0.8, 0.999]"},
        {"hard_cap", GATE_KEY_INT, offsetof(struct gate_policy, hard_cap), 0, 1000000, false,
         "[0, 1000000] (0 = off)"},
        {"attributed_cap", GATE_KEY_INT, offsetof(struct gate_policy, attributed_cap), 0, 1000000,
         false, "[0, 1000000] (0 = off)"},
        {"silence_timeout_s", GATE_KEY_INT, offsetof(struct gate_policy, silence_timeout_s), 1,
         86400, false, "[1, 86400] seconds"},
        {"max_wait_s", GATE_KEY_INT, offsetof(struct gate_policy, max_wait_s), 0, 2592000, false,
         "[0, 2592000] seconds (0 = wait forever)"},
        {"max_ratio", GATE_KEY_RATE, offsetof(struct gate_policy, max_ratio), 1, 100, false,
         "[1, 100]"},
        {"max_excess", GATE_KEY_RATE, offsetof(struct gate_policy, max_excess), 0, 1, true,
         "(0, 1]"},
        {"min_exposure_s", GATE_KEY_INT, offsetof(struct gate_policy, min_exposure_s), 0, 2592000,
         false, "[0, 2592000] seconds"},
        {"holdout", GATE_KEY_RATE, offsetof(struct gate_policy, holdout), 0, 0.2, false,
         "[0, 0.2]"},
        {"holdout_min", GATE_KEY_INT, offsetof(struct gate_policy, holdout_min), 0, 100000, false,
         "[0, 100000]"},
        {"min_segment_agents", GATE_KEY_INT, offsetof(struct gate_policy, min_segment_agents), 1,
         1000000, false, "[1, 1000000]"},
        {"min_segment_canaries", GATE_KEY_INT, offsetof(struct gate_policy, min_segment_canaries),
         0, 1000000, false, "[0, 1000000] (0 = no coverage check)"},
        {"watch_s", GATE_KEY_INT, offsetof(struct gate_policy, watch_s), 0, 2592000, false,
         "[0, 2592000] seconds"},
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
			        "max_failure_rate, min_excess, confidence, hard_cap, "
			        "attributed_cap, "
			        "silence_timeout_s, max_wait_s, max_ratio, max_excess, "
			        "min_exposure_s, holdout, holdout_min, min_segment_agents, "
			        "min_segment_canaries, watch_s)",
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

/* Non-finite reals cannot be JSON; they never come out of gate_decide, but
 * a hand-made result must still serialise. */
static double gate_finite(double v)
{
	return isfinite(v) ? v : 0.0;
}

json_t *gate_policy_to_json(const struct gate_policy *p)
{
	return json_pack("{s:I, s:I, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:f, s:I, "
	                 "s:I, s:I, s:I}",
	                 "min_bake_s", (json_int_t)p->min_bake_s, "min_healthy",
	                 (json_int_t)p->min_healthy, "max_failure_rate", p->max_failure_rate,
	                 "min_excess", p->min_excess, "confidence", p->confidence, "hard_cap",
	                 (json_int_t)p->hard_cap, "attributed_cap", (json_int_t)p->attributed_cap,
	                 "silence_timeout_s", (json_int_t)p->silence_timeout_s, "max_wait_s",
	                 (json_int_t)p->max_wait_s, "max_ratio", p->max_ratio, "max_excess",
	                 p->max_excess, "min_exposure_s", (json_int_t)p->min_exposure_s, "holdout",
	                 p->holdout, "holdout_min", (json_int_t)p->holdout_min,
	                 "min_segment_agents", (json_int_t)p->min_segment_agents,
	                 "min_segment_canaries", (json_int_t)p->min_segment_canaries, "watch_s",
	                 (json_int_t)p->watch_s);
}

json_t *gate_seq_to_json(const struct gate_seq *q)
{
	json_t *llr = json_array();
	for (int j = 0; j < GATE_RHOS; j++)
		json_array_append_new(llr, json_real(isfinite(q->llr[j]) ? q->llr[j] : 0.0));
	return json_pack("{s:I, s:I, s:f, s:f, s:o}", "failed", (json_int_t)q->failed,
	                 "control_failed", (json_int_t)q->control_failed, "exposure_s",
	                 isfinite(q->exposure_s) ? q->exposure_s : 0.0, "control_exposure_s",
	                 isfinite(q->control_exposure_s) ? q->control_exposure_s : 0.0, "llr", llr);
}

int gate_seq_from_json(const json_t *j, struct gate_seq *q)
{
	memset(q, 0, sizeof *q);
	json_t *llr = json_object_get(j, "llr");
	if (!json_is_object(j) || !json_is_array(llr) || json_array_size(llr) != GATE_RHOS)
		return 0;
	q->failed = json_integer_value(json_object_get(j, "failed"));
	q->control_failed = json_integer_value(json_object_get(j, "control_failed"));
	q->exposure_s = json_number_value(json_object_get(j, "exposure_s"));
	q->control_exposure_s = json_number_value(json_object_get(j, "control_exposure_s"));
	for (int k = 0; k < GATE_RHOS; k++)
		q->llr[k] = json_number_value(json_array_get(llr, (size_t)k));
	return 1;
}

json_t *gate_rel_to_json(const struct gate_rel *r)
{
	return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:b}", "treated_rate",
	                 gate_finite(r->treated_rate), "control_rate", gate_finite(r->control_rate),
	                 "ratio", gate_finite(r->ratio), "excess", gate_finite(r->excess),
	                 "statistic", gate_finite(r->statistic), "threshold",
	                 gate_finite(r->threshold), "halt", r->halt != 0);
}

json_t *gate_inputs_to_json(const struct gate_inputs *in)
{
	json_t *j = json_pack(
	        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:i, s:I, s:f, s:f}", "treated",
	        (json_int_t)in->treated, "healthy", (json_int_t)in->healthy, "crashed",
	        (json_int_t)in->crashed, "boot_looped", (json_int_t)in->boot_looped, "silent",
	        (json_int_t)in->silent, "control", (json_int_t)in->control, "control_failed",
	        (json_int_t)in->control_failed, "bake_elapsed_s", (json_int_t)in->bake_elapsed_s,
	        "wait_elapsed_s", (json_int_t)in->wait_elapsed_s, "silence_counted",
	        in->silence_counted != 0, "looks", in->looks, "seasoned", (json_int_t)in->seasoned,
	        "exposure_s", gate_finite(in->exposure_s), "control_exposure_s",
	        gate_finite(in->control_exposure_s));
	if (j) {
		json_object_set_new(j, "attributed", json_integer((json_int_t)in->attributed));
		json_object_set_new(j, "control_attributed",
		                    json_integer((json_int_t)in->control_attributed));
	}
	if (j && in->has_prev)
		json_object_set_new(j, "prev", gate_seq_to_json(&in->prev));
	return j;
}

json_t *gate_result_to_json(const struct gate_result *r)
{
	json_t *j = json_pack(
	        "{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
	        "s:f, s:o, s:o}",
	        "decision", gate_decision_name(r->decision), "reason", r->reason, "stalled",
	        r->stalled != 0, "failures", (json_int_t)r->failures, "outcomes",
	        (json_int_t)r->outcomes, "background", (json_int_t)r->background, "excess",
	        (json_int_t)r->excess, "treated_rate", gate_finite(r->treated_rate),
	        "treated_lower", gate_finite(r->treated_lower), "treated_upper",
	        gate_finite(r->treated_upper), "control_rate", gate_finite(r->control_rate),
	        "control_upper", gate_finite(r->control_upper), "baseline_rate",
	        gate_finite(r->baseline_rate), "alt_rate", gate_finite(r->alt_rate), "statistic",
	        gate_finite(r->statistic), "threshold", gate_finite(r->threshold), "excess_upper",
	        gate_finite(r->excess_upper), "relative", gate_rel_to_json(&r->rel), "seq",
	        gate_seq_to_json(&r->seq));
	if (j) {
		json_object_set_new(j, "attributed_background",
		                    json_integer((json_int_t)r->attributed_background));
		json_object_set_new(j, "attributed_excess",
		                    json_integer((json_int_t)r->attributed_excess));
	}
	return j;
}
