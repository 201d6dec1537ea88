/* Unit tests of the promotion gate: known inputs -> known bounds and
 * decisions, every edge case and override refusal, and fixed-seed simulations
 * that measure the default policy's false-halt and detection rates. */
#include "gate.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define EPS    1e-9
#define CANARY 0
#define EARLY  1
#define BROAD  2
#define GA     3

/* Reference values below were computed independently with python3:
 *   from statistics import NormalDist; import math
 *   z = NormalDist().inv_cdf(conf)
 *   c = (k + z*z/2) / (n + z*z); h = z*math.sqrt(k*(n-k)/n + z*z/4) / (n + z*z)
 *   lower, upper = c - h, c + h            (0 when k == 0, 1 when k == n)
 * and the SPRT statistic as k*log(p1/p0) + (n-k)*(log(1-p1) - log(1-p0)). */

static struct gate_policy pol(int ring)
{
	struct gate_policy p;
	gate_policy_default(ring, 4, &p);
	return p;
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("expected \"%s\" in \"%s\"", needle, hay);
}

static void assert_near(double got, double want, double eps)
{
	if (!(fabs(got - want) <= eps))
		fail_msg("got %.17g, want %.17g (eps %g)", got, want, eps);
}

/* A ring where k of n agents crashed and the rest are healthy, every one
 * on the file for the whole bake (the crashed ones half of it), the control
 * watched for as long; every healthy agent has its exposure. */
static struct gate_inputs ring_in(int64_t k, int64_t n, int64_t control, int64_t cfail,
                                  int64_t bake)
{
	struct gate_inputs in = {
	        .treated = n,
	        .healthy = n - k,
	        .seasoned = n - k,
	        .crashed = k,
	        .control = control,
	        .control_failed = cfail,
	        .bake_elapsed_s = bake,
	        .silence_counted = 1,
	        .exposure_s = (double)(n - k) * (double)bake + (double)k * (double)bake / 2.0,
	        .control_exposure_s = (double)control * (double)bake,
	};
	return in;
}

/* ---- names, bounds, statistic ------------------------------------------- */

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(gate_decision_name(GATE_PROMOTE), "PROMOTE");
	assert_string_equal(gate_decision_name(GATE_WAIT), "WAIT");
	assert_string_equal(gate_decision_name(GATE_HALT), "HALT");
}

struct wilson_case {
	int64_t k, n;
	double conf, lower, upper;
};

static void test_wilson_known(void **state)
{
	(void)state;
	static const struct wilson_case cases[] = {
	        {2, 100, 0.95, 0.006640643595012138, 0.05864836835683519},
	        {0, 25, 0.95, 0.0, 0.0976535060060509},
	        {5, 1000, 0.99, 0.0018439320684250507, 0.013485003780076794},
	        {1, 1, 0.95, 0.2698659487840544, 1.0},
	        {3, 3, 0.95, 0.5258044258424874, 1.0},
	        {0, 1, 0.95, 0.0, 0.7301340512159457},
	        {7, 50, 0.8, 0.1037114974816303, 0.1863459225474058},
	        {20, 1000, 0.95, 0.013908479659154253, 0.028681833851015845},
	        {1, 20, 0.95, 0.011234816850851662, 0.19600723677401627},
	        {3, 200, 0.999, 0.003016610170442399, 0.07118797183299},
	        {0, 1000, 0.975, 0.0, 0.0038267584855551217},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct wilson_case *c = &cases[i];
		struct gate_policy p = pol(GA);
		p.confidence = c->conf;
		p.hard_cap = 0;
		struct gate_inputs in = ring_in(c->k, c->n, 0, 0, 0);
		struct gate_result r;
		gate_decide(&p, &in, &r);
		assert_near(r.treated_lower, c->lower, EPS);
		assert_near(r.treated_upper, c->upper, EPS);
		assert_near(r.treated_rate, (double)c->k / (double)c->n, EPS);
		assert_int_equal(r.failures, c->k);
		assert_int_equal(r.outcomes, c->n);
	}
}

/* Early ring, control 10 of 10000: p0 = 0.0016720246730647266 + 0.0025,
 * p1 = the limit 0.015, threshold log(1/0.05). */
/* The relative test, one look and then a second: reference values from
 * python3 with the formulas of GATE.md (pi = rho a / (rho a + b), a mixture
 * of rho = 1.5 x {4, 10, 40} with equal weights). */
static void test_relative_known(void **state)
{
	(void)state;
	struct gate_policy p = pol(EARLY);
	p.hard_cap = 0; /* the statistics, not the cap, are tested here */
	struct gate_inputs in = ring_in(12, 400, 10000, 10, 7200);
	struct gate_result r;
	gate_decide(&p, &in, &r);
	assert_near(in.exposure_s, 2836800.0, EPS);
	assert_near(r.rel.statistic, 18.359401119630782, 1e-7);
	assert_near(r.seq.llr[0], 13.230274644455257, 1e-7);
	assert_near(r.seq.llr[2], 18.8409059220165, 1e-7);
	assert_near(r.rel.treated_rate * 1000.0, 15.228426395939087, 1e-7);
	assert_near(r.rel.control_rate * 1000.0, 0.5, 1e-9);
	assert_near(r.rel.excess, 0.029015, 1e-9);
	assert_near(r.rel.threshold, 2.995732273553991, EPS);
	assert_near(r.threshold, 6.907755278982137, EPS); /* the guard's */
	assert_int_equal(r.decision, GATE_HALT);
	assert_contains(r.reason, "HALT: treated 15.23 per 1000 host-hours (12 of 400 hosts)");
	assert_contains(r.reason, "vs control 0.50 per 1000 host-hours (10 of 10000 hosts): "
	                          "30.5 times the control's rate, confidently above 1.5 times "
	                          "(relative log-LR 18.36 >= 3.00 at 95%)");
	assert_contains(r.reason, "2.90 points more hosts failed");

	/* The next look adds only what happened since: 8 more treated and 1
	 * more control failure over 400 x 600 and 10000 x 600 host-seconds. */
	in.has_prev = 1;
	in.prev = r.seq;
	in.crashed = 20;
	in.healthy = 380;
	in.seasoned = 380;
	in.control_failed = 11;
	in.exposure_s += 400.0 * 600.0;
	in.control_exposure_s += 10000.0 * 600.0;
	gate_decide(&p, &in, &r);
	assert_near(r.seq.llr[0], 22.909047289977654, 1e-7);
	assert_near(r.rel.statistic, 36.7751639745061, 1e-7);

	/* 4 of 400 (1 %) against 10 of 10,000 (0.1 %): ten times the control,
	 * just across the boundary, 0.9 points of excess. */
	in = ring_in(4, 400, 10000, 10, 7200);
	gate_decide(&p, &in, &r);
	assert_near(r.rel.statistic, 3.013302889451607, 1e-7);
	assert_int_equal(r.decision, GATE_HALT);
	/* ... but not when min_excess asks for a whole point. */
	p.min_excess = 0.01;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_false(r.rel.halt);
	assert_contains(r.reason, "WAIT for: healthy agents (396 of 500)");
	assert_contains(r.reason, "relative log-LR 3.01 of 3.00 to halt");

	/* No control exposure: the relative test learns nothing. */
	in = ring_in(12, 400, 0, 0, 7200);
	gate_decide(&p, &in, &r);
	assert_near(r.rel.statistic, 0.0, EPS);
	assert_false(r.rel.halt);
}

/* Segments: the threshold grows with the number judged (Bonferroni). */
static void test_segment_threshold(void **state)
{
	(void)state;
	struct gate_policy p = pol(EARLY);
	assert_near(gate_segment_threshold(&p, 0), log(20.0), 1e-12);
	assert_near(gate_segment_threshold(&p, 1), log(20.0), 1e-12);
	assert_near(gate_segment_threshold(&p, 8), log(160.0), 1e-12);
	/* 9 of 40 on one build against 0 of 35 in its control, same exposure. */
	struct gate_group g = {40, 9, 40.0 * 3600, 350, 0, 350.0 * 3600};
	struct gate_seq next;
	struct gate_rel rel;
	gate_relative(&p, NULL, &g, gate_segment_threshold(&p, 8), &next, &rel);
	assert_true(rel.halt);
	assert_near(rel.excess, 9.0 / 40.0, 1e-12);
}

/* The holdout: a share with a floor, none for rings too small to spare it. */
static void test_holdout_share(void **state)
{
	(void)state;
	struct gate_policy p = pol(GA);
	assert_near(gate_holdout_share(&p, 10000), 0.02, EPS);
	assert_near(gate_holdout_share(&p, 100), 0.10, EPS); /* the floor: 10 agents */
	assert_near(gate_holdout_share(&p, 50), 0.20, EPS);
	assert_near(gate_holdout_share(&p, 49), 0.0, EPS); /* would be more than 20 % */
	assert_near(gate_holdout_share(&p, 0), 0.0, EPS);
	p.holdout = 0; /* none: the floor only raises a share that was asked for */
	assert_near(gate_holdout_share(&p, 100), 0.0, EPS);
	assert_near(gate_holdout_share(&p, 10000), 0.0, EPS);
	p.holdout_min = 0;
	assert_near(gate_holdout_share(&p, 10000), 0.0, EPS);
	/* the per-host exposure never exceeds the bake */
	p.min_exposure_s = 1800;
	p.min_bake_s = 60;
	assert_int_equal(gate_exposure_needed(&p), 60);
}

/* ---- the hard rules and edge cases ---------------------------------------- */

/* One crash is never a relative halt, however small its exposure. */
static void test_one_crash(void **state)
{
	(void)state;
	struct gate_policy p = pol(GA);
	struct gate_inputs in = ring_in(1, 1, 20000, 20, 10);
	struct gate_result r;
	gate_decide(&p, &in, &r);
	assert_false(r.rel.halt);
	assert_int_equal(r.decision, GATE_WAIT);
	in = ring_in(2, 2, 20000, 20, 10);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
}

static void test_zero_treated(void **state)
{
	(void)state;
	for (int ring = 0; ring < 4; ring++) {
		struct gate_policy p = pol(ring);
		p.min_healthy = 1;
		struct gate_inputs in = ring_in(0, 0, 1000, 0, 1000000);
		struct gate_result r;
		gate_decide(&p, &in, &r);
		assert_int_equal(r.decision, GATE_WAIT);
		assert_contains(r.reason, "no treated agent has applied the new content yet");
		assert_near(r.treated_upper, 1.0, EPS);
	}
}

static void test_all_crashed(void **state)
{
	(void)state;
	struct gate_result r;
	/* GA has no hard cap: the statistics halt 5 of 5 at once. */
	struct gate_policy p = pol(GA);
	assert_int_equal(p.hard_cap, 0);
	struct gate_inputs in = ring_in(5, 5, 20000, 20, 10);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
	assert_near(r.treated_rate, 1.0, EPS);
	assert_near(r.treated_upper, 1.0, EPS);
	assert_contains(r.reason, "relative log-LR");
	/* Without a control the absolute guard halts on its own: 9 of 9 are
	 * not yet enough above GA's 1 % at the guard's alpha (9 ln 2 < ln
	 * 1000), 10 of 10 are. */
	in = ring_in(9, 9, 0, 0, 10);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_WAIT);
	in = ring_in(10, 10, 0, 0, 10);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
	assert_contains(r.reason, "above the ring's limit 1.00%");
	/* Boot loops count like crashes. */
	in = ring_in(0, 4, 20000, 20, 10);
	in.healthy = 0;
	in.boot_looped = 4;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
	assert_int_equal(r.failures, 4);
}

static void test_all_silent(void **state)
{
	(void)state;
	struct gate_result r;
	struct gate_policy p = pol(BROAD);
	struct gate_inputs in = {
	        .treated = 10,
	        .silent = 10,
	        .control = 5000,
	        .bake_elapsed_s = 100000,
	        .silence_counted = 1,
	};
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
	assert_contains(r.reason, "no treated agent is alive and reporting");
	assert_contains(r.reason, "10 silent for more than 300s");
	assert_int_equal(r.failures, 10);

	/* One treated agent that went silent: fail safe, even on a canary. */
	p = pol(CANARY);
	in.treated = 1;
	in.silent = 1;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);

	/* Silent and crashed together, nobody healthy: also telemetry loss. */
	in.treated = 4;
	in.silent = 2;
	in.crashed = 2;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
	assert_contains(r.reason, "alive and reporting");

	/* Restart grace: silence is not failure, and not health either. */
	in = (struct gate_inputs){.treated = 10,
	                          .silent = 10,
	                          .control = 5000,
	                          .bake_elapsed_s = 100000,
	                          .silence_counted = 0};
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_int_equal(r.failures, 0);
	assert_int_equal(r.outcomes, 0);
	assert_contains(r.reason, "end of the restart grace (10 silent agents");
	assert_contains(r.reason, "healthy agents (0 of 25)");

	/* Grace with enough healthy agents still does not promote on them ... */
	in = (struct gate_inputs){.treated = 40,
	                          .healthy = 35,
	                          .silent = 5,
	                          .control = 5000,
	                          .bake_elapsed_s = 100000,
	                          .silence_counted = 0};
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_int_equal(r.outcomes, 35);
	assert_contains(r.reason, "restart grace");
	/* ... and once silence counts, 5 silent of 40 on a canary (against
	 * no failure in 5,000 over the same time) halt. */
	in.silence_counted = 1;
	in.exposure_s = 40.0 * 1800;
	in.control_exposure_s = 5000.0 * 1800;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
	assert_int_equal(r.failures, 5);
	/* Without silent agents the same ring promotes (once its healthy
	 * agents have their exposure). */
	in.silent = 0;
	in.treated = 35;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_contains(r.reason, "healthy agents with 900s on the file (0 of 25; 35 healthy");
	in.seasoned = 35;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_PROMOTE);
}

static void test_control_zero_failures(void **state)
{
	(void)state;
	struct gate_policy p = pol(BROAD);
	struct gate_inputs in = ring_in(0, 1200, 5000, 0, 3600);
	struct gate_result r;
	gate_decide(&p, &in, &r);
	/* z^2 / (n + z^2) with z = 1.6448536269514715, n = 5000 */
	assert_near(r.control_upper, 0.0005408160505539929, EPS);
	assert_near(r.control_rate, 0.0, EPS);
	assert_near(r.baseline_rate, 0.01, EPS); /* the guard: the ring's limit */
	assert_int_equal(r.decision, GATE_PROMOTE);
	assert_contains(r.reason, "PROMOTE: baked 3600s (min 3600s), 1200 healthy (min 1000)");
	assert_contains(r.reason, "control 0.00 per 1000 host-hours (0 of 5000 hosts)");
}

/* Late in the last ring the hosts still on the previous content are few
 * (the holdout), but the control's failures over host-time include those of
 * hosts that failed before they applied the file: more failures than hosts
 * on it now. The relative test must count them all (clamping them to the
 * hosts would understate the control's rate and halt a good file). */
static void test_control_failures_outnumber_hosts(void **state)
{
	(void)state;
	struct gate_policy p = pol(GA);
	struct gate_inputs in = ring_in(30, 1960, 40, 100, 3600);
	in.control_exposure_s = 10000.0 * 3600.0; /* 100 failures in 10,000 host-hours */
	struct gate_result r;
	gate_decide(&p, &in, &r);
	assert_near(r.rel.control_rate * 1000.0, 10.0, 1e-9);
	assert_true(r.rel.ratio < 1.6);
	assert_int_not_equal(r.decision, GATE_HALT);
	assert_contains(r.reason,
	                "control 10.00 per 1000 host-hours (100 failed, 40 hosts on it now)");
	assert_null(strstr(r.reason, "inconsistent"));
}

static void test_no_control(void **state)
{
	(void)state;
	struct gate_policy p = pol(EARLY);
	p.max_failure_rate = 0.02;
	p.hard_cap = 0;
	struct gate_inputs in = ring_in(6, 100, 0, 0, 3600);
	struct gate_result r;
	gate_decide(&p, &in, &r);
	/* No control: the guard's null is the limit itself, the alternative
	 * twice it, at alpha / 50 (ln 1000 = 6.91). */
	assert_near(r.baseline_rate, 0.02, EPS);
	assert_near(r.alt_rate, 0.04, EPS);
	assert_near(r.control_upper, 1.0, EPS);
	assert_near(r.statistic, 2.2206700863025155, 1e-7);
	assert_near(r.threshold, 6.907755278982137, EPS);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_contains(r.reason, "no control agents");
	/* 12 of 100 (log-LR 6.50) not yet; 15 of 100 (8.64) is. */
	in = ring_in(12, 100, 0, 0, 3600);
	gate_decide(&p, &in, &r);
	assert_near(r.statistic, 6.503268892878603, 1e-7);
	assert_int_equal(r.decision, GATE_WAIT);
	in = ring_in(15, 100, 0, 0, 3600);
	gate_decide(&p, &in, &r);
	assert_near(r.statistic, 8.644568296166646, 1e-7);
	assert_int_equal(r.decision, GATE_HALT);
	assert_contains(r.reason, "is above the ring's limit 2.00% at 95% confidence");
	/* And a clean ring without control promotes on the absolute limit. */
	in = ring_in(0, 600, 0, 0, 3600);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_PROMOTE);

	/* A sick control: the guard's null is what its rate predicts for the
	 * treated hosts' exposure (10 % + min_excess), so the fleet's own noise
	 * does not halt a file as bad as the fleet... */
	in = ring_in(12, 100, 1000, 100, 3600);
	gate_decide(&p, &in, &r);
	assert_true(r.baseline_rate > 0.09);
	assert_int_equal(r.decision, GATE_WAIT);
	/* ... and a file much worse than that control is halted relatively. */
	in = ring_in(40, 100, 1000, 100, 3600);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
	assert_contains(r.reason, "times the control's rate, confidently above 1.5 times");
}

static void test_hard_cap(void **state)
{
	(void)state;
	struct gate_policy p = pol(CANARY);
	assert_int_equal(p.hard_cap, 3);
	struct gate_result r;
	/* A 100-agent canary against a control at 0.1 % (20 of 20,000): the
	 * background explains floor(0.1 + 1.645 * 0.32) = 0 reports, so exactly
	 * the cap halts, however many are healthy. */
	struct gate_inputs in = ring_in(2, 100, 20000, 20, 0);
	in.boot_looped = 1;
	in.healthy -= 1;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
	assert_int_equal(r.background, 0);
	assert_int_equal(r.excess, 3);
	assert_contains(r.reason, "3 treated agents crashed or boot-looped");
	assert_contains(r.reason, "(2 crashed, 1 boot-looped), 3 more than the 0 that background");
	assert_contains(r.reason, "hard cap 3 reached");
	assert_contains(r.reason, "Also: treated 0.00 per 1000 host-hours (3 of 100 hosts)");
	/* One below the cap. */
	in = ring_in(2, 100, 20000, 20, 0);
	gate_decide(&p, &in, &r);
	assert_int_not_equal(r.decision, GATE_HALT);
	assert_contains(r.reason, "hard cap 2 of 3");
	/* Silent agents do not count toward the cap (they count in the rate). */
	in = ring_in(2, 100, 20000, 20, 0);
	in.silent = 1;
	in.healthy -= 1;
	gate_decide(&p, &in, &r);
	assert_int_not_equal(r.decision, GATE_HALT);
	assert_int_equal(r.failures, 3);
	assert_int_equal(r.excess, 2);

	/* A large ring: 5,000 treated at the control's 0.1 % noise expect
	 * lambda = 5 reports; with the scatter (variance 5 for the treated's
	 * Poisson count + 1.25 for the control's estimate: 5 + 1.645 * 2.5 =
	 * 9.1) the background explains 9, and the cap counts beyond them: 11
	 * reports do not halt, 12 do. */
	in = ring_in(11, 5000, 20000, 20, 0);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.background, 9);
	assert_int_equal(r.excess, 2);
	assert_int_not_equal(r.decision, GATE_HALT);
	assert_true(r.statistic < r.threshold);
	assert_contains(r.reason, "hard cap 2 of 3 (11 reports, 9 explained by background)");
	in = ring_in(12, 5000, 20000, 20, 0);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
	assert_int_equal(r.excess, 3);
	assert_contains(r.reason, "12 treated agents crashed or boot-looped");
	assert_contains(r.reason, "3 more than the 9 that background noise explains (5.0 "
	                          "expected of 5000 treated at the control's rate 0.100%, "
	                          "plus scatter) - hard cap 3 reached");
	/* A control that shows no failure explains nothing, however small it
	 * is (its upper bound would be ignorance, and on 2 agents would switch
	 * the cap off): 3 reports of a 3-agent canary halt. */
	in = ring_in(2, 3, 2, 0, 0);
	in.boot_looped = 1;
	in.healthy = 0;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.background, 0);
	assert_int_equal(r.decision, GATE_HALT);
	assert_contains(r.reason, "hard cap 3 reached");
	/* The 100,000-agent rehearsal that an absolute cap halted: 10 reports
	 * of 50,000 treated against a control at 0.07 % (early ring, cap 10). */
	struct gate_policy e = pol(EARLY);
	in = ring_in(10, 50000, 50000, 38, 0);
	gate_decide(&e, &in, &r);
	assert_int_not_equal(r.decision, GATE_HALT);
	assert_true(r.background >= 38);
	assert_int_equal(r.excess, 0);

	/* No control: nothing is explained, the cap is absolute. */
	in = ring_in(3, 5000, 0, 0, 0);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.background, 0);
	assert_int_equal(r.decision, GATE_HALT);
	assert_contains(r.reason, "hard cap 3 reached");
	/* A failing control cannot explain more than the ring's limit: with
	 * half the control down, the canary's 10 % limit caps the rate, so 100
	 * treated expect 10 and the background explains 10 + 1.645 sqrt(10). */
	in = ring_in(18, 100, 1000, 500, 0);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.background, 15);
	assert_int_equal(r.excess, 3);
	assert_int_equal(r.decision, GATE_HALT);
	/* hard_cap 0 is off. */
	p.hard_cap = 0;
	in = ring_in(3, 5000, 0, 0, 0);
	p.max_failure_rate = 0.5; /* keep the statistics quiet too */
	gate_decide(&p, &in, &r);
	assert_int_not_equal(r.decision, GATE_HALT);
}

/* Crashes whose report named this channel (faulting_channel): two beyond
 * what the background explains halt, whatever the rates. */
static void test_attributed_cap(void **state)
{
	(void)state;
	struct gate_policy p = pol(EARLY);
	struct gate_result r;
	/* An early ring of 1,000 half an hour in, against 2,000 control hosts
	 * with 2 failures, none of which named the channel: the floor is a fifth
	 * of those (0.4 over 1,000 host-hours: 0.2 expected for the treated
	 * hosts' 500, variance 0.2 + 0.1), so the background explains
	 * floor(0.2 + 3.09 * 0.55) = 1 attributed crash; 3 halt, 2 do not. */
	struct gate_inputs in = ring_in(3, 1000, 2000, 2, 1800);
	in.attributed = 3;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
	assert_int_equal(r.attributed_background, 1);
	assert_int_equal(r.attributed_excess, 2);
	assert_contains(r.reason, "HALT: 3 treated agents crashed while interpreting the new "
	                          "content (their crash reports name this channel), 2 more than "
	                          "the 1 that background explains");
	assert_contains(r.reason, "attributed cap 2 reached");
	in.attributed = 2;
	gate_decide(&p, &in, &r);
	assert_int_not_equal(r.decision, GATE_HALT);
	assert_int_equal(r.attributed_excess, 1);
	assert_contains(r.reason, "attributed cap 1 of 2 (2 named this channel)");
	/* Off: the same three do not halt by it. */
	in.attributed = 3;
	p.attributed_cap = 0;
	gate_decide(&p, &in, &r);
	assert_int_not_equal(r.decision, GATE_HALT);
	/* A control whose own crashes name the channel as often explains them:
	 * 40 of its 2,000 hosts (on the previous content) over twice the
	 * host-time: 19.8 expected, variance 19.8 + 9.8, floor(19.8 + 3.09 *
	 * 5.44) = 36 explained. */
	p = pol(EARLY);
	in = ring_in(20, 1000, 2000, 40, 3600);
	in.attributed = 20;
	in.control_attributed = 40;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.attributed_background, 36);
	assert_false(strstr(r.reason, "attributed cap 2 reached"));
	/* More attributed than crashed: counted as crashed (fail safe is not
	 * more: they are a subset). */
	in = ring_in(2, 1000, 2000, 2, 3600);
	in.attributed = 50;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.attributed_excess, 1);
	/* A quiet control (no failure at all) is not a proof that the
	 * background is nil: one failure's share is assumed, and on a canary
	 * of 100 ten minutes in, two attributed crashes halt. */
	p = pol(CANARY);
	in = ring_in(2, 100, 2000, 0, 600);
	in.attributed = 2;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
	assert_int_equal(r.attributed_background, 0);
	assert_contains(r.reason, "attributed cap 2 reached");
}

static void test_bake_not_met(void **state)
{
	(void)state;
	struct gate_policy p = pol(CANARY);
	struct gate_inputs in = ring_in(0, 100, 20000, 20, 1799);
	struct gate_result r;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_contains(r.reason, "WAIT for: bake time (1799s of 1800s)");
	in.bake_elapsed_s = 1800;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_PROMOTE);
}

static void test_min_healthy_not_met(void **state)
{
	(void)state;
	struct gate_policy p = pol(CANARY);
	p.max_failure_rate = 0.5; /* the bound is not what is tested here */
	struct gate_inputs in = ring_in(0, 24, 20000, 20, 1800);
	struct gate_result r;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_contains(r.reason, "WAIT for: healthy agents (24 of 25)");
	in = ring_in(0, 25, 20000, 20, 1800);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_PROMOTE);
	/* Applied, nobody reported yet: wait for the first outcomes. */
	in = ring_in(0, 0, 20000, 20, 1800);
	in.treated = 30;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_int_equal(r.outcomes, 0);
	assert_contains(r.reason, "healthy agents (0 of 25); first outcomes (30 treated, none "
	                          "reported since applying)");
	in = ring_in(0, 25, 20000, 20, 1800);
	/* Treated agents with no outcome yet are not healthy. */
	in.treated = 40;
	in.healthy = 24;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_int_equal(r.outcomes, 24);
}

static void test_upper_bound_blocks(void **state)
{
	(void)state;
	struct gate_policy p = pol(CANARY);
	/* 0 of 25: upper 9.77 % < 10 % -> promote; 1 of 26 is not enough. */
	struct gate_inputs in = ring_in(0, 25, 20000, 20, 1800);
	struct gate_result r;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_PROMOTE);
	assert_near(r.treated_upper, 0.0976535060060509, EPS);
	in = ring_in(1, 26, 20000, 20, 1800);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_contains(r.reason, "to fall below the limit 10.00%");
	/* All reasons at once, in a stable order. */
	in = ring_in(1, 10, 20000, 20, 5);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_contains(r.reason, "WAIT for: bake time (5s of 1800s); healthy agents (9 of 25); "
	                          "failure upper bound");
	assert_contains(r.reason, ". Now: treated ");
	assert_contains(r.reason, "(1 of 10 hosts) (10.00%, bounds 2.26-34.77% at 95%)");
}

static void test_bad_inputs(void **state)
{
	(void)state;
	struct gate_policy p = pol(GA);
	struct gate_result r;
	/* Negative counts are zero. */
	struct gate_inputs in = {.treated = -5, .healthy = -1, .crashed = -3, .control = -9};
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_int_equal(r.failures, 0);
	/* Parts above the whole: believed (fail safe), and said. */
	in = ring_in(0, 10, 100, 500, 0);
	in.treated = 0;
	in.crashed = 20;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
	assert_contains(r.reason, "[note: inconsistent counts");
	assert_near(r.control_rate, 1.0, EPS);
	/* Huge counts neither overflow nor overrun the reason. */
	in = ring_in(INT64_MAX / 4, INT64_MAX / 2, INT64_MAX, INT64_MAX, INT64_MAX);
	gate_decide(&p, &in, &r);
	assert_true(strlen(r.reason) < sizeof r.reason);
	assert_true(isfinite(r.statistic));
	/* A nonsense policy is clamped, never divides by zero. */
	struct gate_policy bad = {.confidence = NAN,
	                          .max_failure_rate = -1,
	                          .min_excess = INFINITY,
	                          .min_healthy = -4};
	in = ring_in(0, 10, 100, 1, 0);
	gate_decide(&bad, &in, &r);
	assert_true(isfinite(r.statistic) && isfinite(r.threshold));
	json_t *j = gate_result_to_json(&r);
	assert_non_null(j);
	json_decref(j);
}

/* ---- policies --------------------------------------------------------------- */

/* A WAIT that outlives max_wait_s past the bake (and since the last resume)
 * is marked stalled; nothing else changes the decision. */
static void test_stalled(void **state)
{
	(void)state;
	struct gate_policy p = pol(CANARY);
	p.max_wait_s = 600;
	struct gate_result r;
	/* 10 healthy of the 25 needed, bake 1800 + 600 reached, 600 s rolling. */
	struct gate_inputs in = ring_in(0, 10, 20000, 20, 2400);
	in.wait_elapsed_s = 600;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_true(r.stalled);
	assert_contains(r.reason, "healthy agents (10 of 25)");
	assert_contains(r.reason, "STALLED: still waiting 600s after the minimum bake "
	                          "(max_wait_s 600); the rollout is paused for an operator");
	/* A second short of either clock: not yet. */
	in.bake_elapsed_s = 2399;
	gate_decide(&p, &in, &r);
	assert_false(r.stalled);
	assert_null(strstr(r.reason, "STALLED"));
	in.bake_elapsed_s = 100000;
	in.wait_elapsed_s = 599; /* resumed 599 s ago: a fresh max_wait_s */
	gate_decide(&p, &in, &r);
	assert_false(r.stalled);
	/* An empty ring stalls too. */
	in = ring_in(0, 0, 20000, 20, 2400);
	in.wait_elapsed_s = 2400;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_true(r.stalled);
	/* 0 = wait forever. */
	p.max_wait_s = 0;
	gate_decide(&p, &in, &r);
	assert_false(r.stalled);
	/* Never a PROMOTE or HALT marked stalled. */
	p.max_wait_s = 1;
	in = ring_in(0, 100, 20000, 20, 100000);
	in.wait_elapsed_s = 100000;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_PROMOTE);
	assert_false(r.stalled);
	in = ring_in(3, 100, 20000, 20, 100000);
	in.wait_elapsed_s = 100000;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
	assert_false(r.stalled);
}

static void test_policy_default(void **state)
{
	(void)state;
	struct gate_policy p;
	for (int i = 0; i < 4; i++) { /* the attributed cap: every ring */
		gate_policy_default(i, 4, &p);
		assert_int_equal(p.attributed_cap, 2);
	}
	gate_policy_default(0, 4, &p);
	assert_int_equal(p.hard_cap, 3);
	assert_int_equal(p.min_healthy, 25);
	assert_int_equal(p.min_bake_s, 1800);
	assert_near(p.max_failure_rate, 0.10, EPS);
	assert_near(p.confidence, 0.95, EPS);
	assert_near(p.min_excess, 0.0025, EPS);
	assert_int_equal(p.silence_timeout_s, 300);
	assert_int_equal(p.max_wait_s, 86400);
	gate_policy_default(1, 4, &p);
	assert_int_equal(p.hard_cap, 10);
	assert_int_equal(p.min_healthy, 500);
	assert_near(p.max_failure_rate, 0.015, EPS);
	for (int i = 2; i < 4; i++) {
		gate_policy_default(i, 4, &p);
		assert_int_equal(p.hard_cap, 0);
		assert_int_equal(p.min_healthy, 1000);
		assert_near(p.max_failure_rate, 0.01, EPS);
	}
	/* Two rings: canary and GA; one ring: the canary's rules; out of range
	 * indices are clamped. */
	gate_policy_default(1, 2, &p);
	assert_int_equal(p.min_healthy, 1000);
	gate_policy_default(0, 1, &p);
	assert_int_equal(p.hard_cap, 3);
	gate_policy_default(-1, 0, &p);
	assert_int_equal(p.hard_cap, 3);
	gate_policy_default(9, 4, &p);
	assert_int_equal(p.hard_cap, 0);
	/* Every default passes its own admin bounds. */
	for (int i = 0; i < 4; i++) {
		struct gate_policy d, q;
		gate_policy_default(i, 4, &d);
		json_t *j = gate_policy_to_json(&d);
		assert_non_null(j);
		memset(&q, 0, sizeof q);
		struct fb_err err = {""};
		assert_int_equal(gate_policy_apply_json(&q, j, &err), FB_OK);
		assert_memory_equal(&q, &d, sizeof d);
		json_decref(j);
	}
}

static void test_overrides_ok(void **state)
{
	(void)state;
	struct gate_policy p = pol(CANARY);
	struct fb_err err = {""};
	json_error_t jerr;
	json_t *o =
	        json_loads("{\"min_bake_s\": 5, \"min_healthy\": 10, \"max_failure_rate\": "
	                   "0.25, \"tolerance\": 0, \"confidence\": 0.99, \"hard_cap\": 0, "
	                   "\"silence_timeout_s\": 2, \"max_wait_s\": 0, \"attributed_cap\": 5}",
	                   0, &jerr);
	assert_non_null(o);
	assert_int_equal(gate_policy_apply_json(&p, o, &err), FB_OK);
	assert_int_equal(p.min_bake_s, 5);
	assert_int_equal(p.min_healthy, 10);
	assert_near(p.max_failure_rate, 0.25, EPS);
	assert_near(p.min_excess, 0.0, EPS);
	assert_near(p.confidence, 0.99, EPS);
	assert_int_equal(p.hard_cap, 0);
	assert_int_equal(p.silence_timeout_s, 2);
	assert_int_equal(p.max_wait_s, 0);
	assert_int_equal(p.attributed_cap, 5);
	json_decref(o);
	/* Bounds are inclusive where documented so. */
	o = json_loads("{\"max_failure_rate\": 0.5, \"confidence\": 0.8, \"min_bake_s\": 0}", 0,
	               &jerr);
	assert_int_equal(gate_policy_apply_json(&p, o, &err), FB_OK);
	assert_near(p.max_failure_rate, 0.5, EPS);
	json_decref(o);
	/* Nothing to apply: unchanged. */
	struct gate_policy before = p;
	assert_int_equal(gate_policy_apply_json(&p, NULL, &err), FB_OK);
	o = json_object();
	assert_int_equal(gate_policy_apply_json(&p, o, &err), FB_OK);
	json_decref(o);
	assert_memory_equal(&p, &before, sizeof p);
}

struct refusal {
	const char *json;
	const char *words[2]; /* expected in the error */
};

static void test_overrides_refused(void **state)
{
	(void)state;
	static const struct refusal cases[] = {
	        {"{\"bake\": 5}", {"unknown key \"bake\"", "known: min_bake_s"}},
	        {"{\"min_bake_s\": \"5\"}", {"\"min_bake_s\" must be an integer", "[0, 2592000]"}},
	        {"{\"min_bake_s\": 5.5}", {"\"min_bake_s\" must be an integer", "[0, 2592000]"}},
	        {"{\"min_bake_s\": -1}", {"\"min_bake_s\" = -1 is outside", "[0, 2592000]"}},
	        {"{\"min_bake_s\": 2592001}", {"\"min_bake_s\" = 2592001", "[0, 2592000]"}},
	        {"{\"min_healthy\": 0}", {"\"min_healthy\" = 0 is outside", "[1, 100000000]"}},
	        {"{\"attributed_cap\": -1}", {"\"attributed_cap\" = -1 is outside", "(0 = off)"}},
	        {"{\"attributed_cap\": 1.5}", {"\"attributed_cap\" must be an integer", "[0, "}},
	        {"{\"min_healthy\": true}",
	         {"\"min_healthy\" must be an integer", "[1, 100000000]"}},
	        {"{\"min_healthy\": 100000001}", {"\"min_healthy\"", "[1, 100000000]"}},
	        {"{\"max_failure_rate\": 0}", {"\"max_failure_rate\" = 0 is outside", "(0, 0.5]"}},
	        {"{\"max_failure_rate\": 0.51}", {"\"max_failure_rate\" = 0.51", "(0, 0.5]"}},
	        {"{\"max_failure_rate\": \"1%\"}",
	         {"\"max_failure_rate\" must be a number", "(0, 0.5]"}},
	        {"{\"max_failure_rate\": null}",
	         {"\"max_failure_rate\" must be a number", "(0, 0.5]"}},
	        {"{\"tolerance\": -0.001}", {"\"tolerance\" = -0.001 is outside", "[0, 0.5]"}},
	        {"{\"tolerance\": 0.6}", {"\"tolerance\" = 0.6 is outside", "[0, 0.5]"}},
	        {"{\"tolerance\": [0.1]}", {"\"tolerance\" must be a number", "[0, 0.5]"}},
	        {"{\"confidence\": 0.79}", {"\"confidence\" = 0.79 is outside", "[0.8, 0.999]"}},
	        {"{\"confidence\": 1}", {"\"confidence\" = 1 is outside", "[0.8, 0.999]"}},
	        {"{\"confidence\": false}", {"\"confidence\" must be a number", "[0.8, 0.999]"}},
	        {"{\"hard_cap\": -1}", {"\"hard_cap\" = -1 is outside", "[0, 1000000]"}},
	        {"{\"hard_cap\": 1000001}", {"\"hard_cap\" = 1000001", "[0, 1000000]"}},
	        {"{\"hard_cap\": 3.0}", {"\"hard_cap\" must be an integer", "[0, 1000000]"}},
	        {"{\"max_wait_s\": -1}", {"\"max_wait_s\" = -1 is outside", "0 = wait forever"}},
	        {"{\"max_wait_s\": 1.5}",
	         {"\"max_wait_s\" must be an integer", "0 = wait forever"}},
	        {"{\"silence_timeout_s\": 0}",
	         {"\"silence_timeout_s\" = 0 is outside", "[1, 86400]"}},
	        {"{\"silence_timeout_s\": 86401}", {"\"silence_timeout_s\" = 86401", "[1, 86400]"}},
	        {"{\"silence_timeout_s\": {}}",
	         {"\"silence_timeout_s\" must be an integer", "[1, 86400]"}},
	        /* all or nothing: the valid key before the bad one is not applied */
	        {"{\"min_bake_s\": 1, \"confidence\": 2}", {"\"confidence\" = 2", "[0.8, 0.999]"}},
	        {"[1, 2]", {"overrides must be a JSON object", "object"}},
	        {"null", {"overrides must be a JSON object", "object"}},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct gate_policy p = pol(CANARY), before = p;
		struct fb_err err = {""};
		json_error_t jerr;
		json_t *o = json_loads(cases[i].json, JSON_DECODE_ANY, &jerr);
		if (!o)
			fail_msg("bad test JSON %s: %s", cases[i].json, jerr.text);
		assert_int_equal(gate_policy_apply_json(&p, o, &err), FB_EINVAL);
		assert_contains(err.msg, cases[i].words[0]);
		assert_contains(err.msg, cases[i].words[1]);
		assert_memory_equal(&p, &before, sizeof p);
		/* NULL err is accepted. */
		assert_int_equal(gate_policy_apply_json(&p, o, NULL), FB_EINVAL);
		json_decref(o);
	}
	struct fb_err err = {""};
	json_t *o = json_object();
	assert_int_equal(gate_policy_apply_json(NULL, o, &err), FB_EINVAL);
	json_decref(o);
}

/* ---- JSON --------------------------------------------------------------------- */

static void test_json(void **state)
{
	(void)state;
	struct gate_policy p = pol(EARLY);
	struct gate_inputs in = ring_in(12, 400, 10000, 10, 7200);
	in.looks = 7;
	struct gate_result r;
	gate_decide(&p, &in, &r);

	json_t *j = gate_result_to_json(&r);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "decision")), "HALT");
	assert_string_equal(json_string_value(json_object_get(j, "reason")), r.reason);
	assert_int_equal(json_integer_value(json_object_get(j, "failures")), 12);
	assert_int_equal(json_integer_value(json_object_get(j, "outcomes")), 400);
	static const char *reals[] = {"treated_rate", "treated_lower", "treated_upper",
	                              "control_rate", "control_upper", "baseline_rate",
	                              "alt_rate",     "statistic",     "threshold"};
	for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++)
		assert_true(json_is_real(json_object_get(j, reals[i])));
	assert_near(json_real_value(json_object_get(j, "statistic")), r.statistic, EPS);
	assert_int_equal(json_integer_value(json_object_get(j, "background")), r.background);
	assert_int_equal(json_integer_value(json_object_get(j, "excess")), r.excess);
	assert_false(json_is_true(json_object_get(j, "stalled")));
	assert_int_equal(json_integer_value(json_object_get(j, "attributed_background")),
	                 r.attributed_background);
	assert_int_equal(json_integer_value(json_object_get(j, "attributed_excess")),
	                 r.attributed_excess);
	assert_int_equal(json_object_size(j), 21);
	assert_near(json_real_value(json_object_get(json_object_get(j, "relative"), "statistic")),
	            r.rel.statistic, EPS);
	struct gate_seq back;
	assert_true(gate_seq_from_json(json_object_get(j, "seq"), &back));
	assert_memory_equal(&back, &r.seq, sizeof back);
	json_decref(j);

	j = gate_inputs_to_json(&in);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "treated")), 400);
	assert_int_equal(json_integer_value(json_object_get(j, "crashed")), 12);
	assert_int_equal(json_integer_value(json_object_get(j, "control_failed")), 10);
	assert_int_equal(json_integer_value(json_object_get(j, "bake_elapsed_s")), 7200);
	assert_int_equal(json_integer_value(json_object_get(j, "looks")), 7);
	assert_true(json_is_true(json_object_get(j, "silence_counted")));
	assert_int_equal(json_integer_value(json_object_get(j, "wait_elapsed_s")), 0);
	assert_int_equal(json_integer_value(json_object_get(j, "attributed")), in.attributed);
	assert_int_equal(json_integer_value(json_object_get(j, "control_attributed")),
	                 in.control_attributed);
	assert_int_equal(json_object_size(j), 16);
	assert_near(json_real_value(json_object_get(j, "exposure_s")), in.exposure_s, EPS);
	json_decref(j);

	j = gate_policy_to_json(&p);
	assert_non_null(j);
	assert_int_equal(json_object_size(j), 17);
	assert_int_equal(json_integer_value(json_object_get(j, "hard_cap")), 10);
	assert_int_equal(json_integer_value(json_object_get(j, "attributed_cap")), 2);
	assert_int_equal(json_integer_value(json_object_get(j, "max_wait_s")), 86400);
	assert_near(json_real_value(json_object_get(j, "max_failure_rate")), 0.015, EPS);
	json_decref(j);
}

/* Pure: the same inputs give the same result, whatever the number of looks
 * before (the SPRT needs no alpha-spending schedule). */
static void test_pure(void **state)
{
	(void)state;
	struct gate_policy p = pol(EARLY);
	struct gate_inputs in = ring_in(3, 700, 20000, 25, 4000);
	struct gate_result a, b;
	memset(&b, 0xa5, sizeof b);
	gate_decide(&p, &in, &a);
	in.looks = 100000;
	gate_decide(&p, &in, &b);
	assert_memory_equal(&a, &b, sizeof a);
	assert_int_equal(a.decision, GATE_PROMOTE);
}

/* ---- simulations (fixed seed, own PRNG) -------------------------------------- */

/* splitmix64 (Steele, Lea, Flood 2014). */
struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int rng_bernoulli(struct rng *r, double p)
{
	return (double)(rng_next(r) >> 11) * 0x1.0p-53 < p;
}

/* ---- the host-time rollout simulation ------------------------------------- */

/* SIM_DEBUG=1 prints every halt's and every stuck rollout's reason;
 * SIM_RATIO, SIM_CONF and SIM_ATTR_CAP override max_ratio, confidence and
 * attributed_cap, SIM_BAKE_SCALE multiplies min_bake_s and min_exposure_s,
 * SIM_ATTR_Q sets how often a background crash names the channel, and
 * SIM_SEED_XOR changes every seed, to measure the trade-offs that GATE.md
 * tabulates (GATE_TEST=name runs one test). */

/* One rehearsal of a whole rollout, in time: looks every LOOK_S seconds; a
 * ring that is entered fills over FILL_S (its agents apply at uniform
 * times); each ring keeps gate_holdout_share of its agents on the previous
 * content; every host fails with background hazard bg_per_h per host-hour
 * (the first failure counts); a victim of the file fails a delay after it
 * applied (exponential, mean delay_s, plus latent_s). Treated and control
 * counts and host-seconds are cumulative since the rollout started, as the
 * controller's are; a host that failed on the previous content is a control
 * failure even if it applies the file later. Segment 1 is a platform that
 * makes up seg_share of every ring; the gate also judges each segment. */
#define SIM_SIGS 4              /* agent_cpu, memory, eval_errors, detections */
#define NPROC    (1 + SIM_SIGS) /* process 0: crashes */
#define LOOK_S   60
#define FILL_S   600
#define MAX_HOST 30000
#define MAX_LOOK 4096

struct sim_cfg {
	const char *name;
	int nrings;
	int64_t size[4];
	double bg_per_h;  /* background failures per host-hour */
	double p_file;    /* share of treated hosts the file crashes (segment 0) */
	double p_seg;     /* share of segment-1 treated hosts the file crashes */
	double seg_share; /* share of every ring in segment 1 */
	double delay_s;   /* mean delay from apply to the crash */
	double latent_s;  /* crashes start this long after apply */
	int64_t watch_s;  /* the last ring's watch (0: complete at its promotion) */
	int no_holdout;   /* holdout 0 (the control is the later rings only) */
	/* Attribution (GATE.md, "The attributed cap"): the file's crashes name
	 * the channel (faulting_channel) unless no_attribution (old agents, or a
	 * crash outside the interpreter); a background crash names it with
	 * probability attr_q (it struck during an evaluation; 0: 2 %). */
	int no_attribution;
	double attr_q;
	/* Health signals (GATE.md, "Health signals"), judged beside crashes
	 * when sig_on: per signal the background hazard of a degraded verdict
	 * per host-hour (what the noise makes of the per-host rule), the share
	 * of treated hosts the file degrades, on segment 1 only when sig_seg,
	 * after a mean delay. */
	int sig_on;
	double sig_bg[SIM_SIGS];
	double sig_p[SIM_SIGS];
	double sig_delay_s;
	int sig_seg;
};

struct sim_tally {
	int halted[5];           /* in ring i; [nrings] = while watching */
	int by_segment;          /* halts by a segment's test */
	int by_signal[SIM_SIGS]; /* halts by a health signal's test */
	int completed, stuck;
	int64_t exposed_at_halt_max;
	int reached;        /* promoted out of the last ring (then watching) */
	double fleet_s_sum; /* time to the last ring's promotion */
	double fleet_s_max;
};

enum { EV_APPLY = 1, EV_TFAIL, EV_CFAIL };
struct sim_ev {
	double t;
	int32_t host, next;
	uint8_t type, proc;
};
/* Per host and process (crash, then each signal): its background failure
 * time, its delay after the apply when the file hits it, and bit flags. */
struct sim_host {
	double bg[NPROC], delay[NPROC];
	uint8_t ring, seg, held, applied;
	uint8_t victim, cfailed, tfailed, cancelled; /* bit p: process p */
	uint8_t attr_t, attr_c; /* its crash named the channel: on the file, before it */
	double apply;
};
struct sim {
	struct sim_host h[MAX_HOST];
	struct sim_ev ev[(1 + 2 * NPROC) * MAX_HOST];
	int32_t head[MAX_LOOK], tail[MAX_LOOK];
	int nev;
	double applies[MAX_HOST]; /* sorted apply times, for seasoned counts */
	int napplies;
};

static double rng_unit(struct rng *r)
{
	return ((double)(rng_next(r) >> 11) + 0.5) * 0x1.0p-53;
}

static void sim_add(struct sim *s, double t, int32_t host, uint8_t type, uint8_t proc)
{
	int64_t k = (int64_t)ceil(t / LOOK_S);
	if (k < 1)
		k = 1;
	if (k >= MAX_LOOK)
		return;
	struct sim_ev *e = &s->ev[s->nev];
	*e = (struct sim_ev){t, host, -1, type, proc};
	if (s->tail[k] >= 0)
		s->ev[s->tail[k]].next = s->nev;
	else
		s->head[k] = s->nev;
	s->tail[k] = s->nev++;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Counters of one segment (or of the ring when summed). */
struct sim_grp {
	int64_t applied, tfail, cfail, risk_t, risk_c;
	double et, ec;
};

/* g draws everything but the attribution, which ga draws (so that the
 * other draws are the same with and without it). */
static void sim_rehearse(const struct sim_cfg *c, struct rng *g, struct rng *ga,
                         struct sim_tally *t)
{
	double attr_q = c->attr_q > 0.0 ? c->attr_q : 0.02;
	if (getenv("SIM_ATTR_Q"))
		attr_q = strtod(getenv("SIM_ATTR_Q"), NULL);
	int64_t tattr = 0, cattr = 0;
	static struct sim s;
	int64_t total = 0, off[5];
	for (int i = 0; i < c->nrings; i++) {
		off[i] = total;
		total += c->size[i];
	}
	assert_true(total <= MAX_HOST);
	memset(s.head, -1, sizeof s.head);
	memset(s.tail, -1, sizeof s.tail);
	s.nev = 0;
	s.napplies = 0;
	static struct sim_grp gall[NPROC][2];
	memset(gall, 0, sizeof gall);
	struct sim_grp *grp = gall[0]; /* crashes */
	double hazard = c->bg_per_h / 3600.0;
	int nproc = c->sig_on ? NPROC : 1;
	for (int i = 0; i < c->nrings; i++) {
		struct gate_policy p;
		gate_policy_default(i, c->nrings, &p);
		double share = c->no_holdout ? 0.0 : gate_holdout_share(&p, c->size[i]);
		int64_t nseg = (int64_t)llround(c->seg_share * (double)c->size[i]);
		for (int64_t a = off[i]; a < off[i] + c->size[i]; a++) {
			struct sim_host *h = &s.h[a];
			memset(h, 0, sizeof *h);
			h->ring = (uint8_t)i;
			h->seg = a - off[i] < nseg;
			h->held = rng_unit(g) < share;
			h->attr_c = rng_unit(ga) < attr_q;
			h->victim = rng_unit(g) < (h->seg ? c->p_seg : c->p_file);
			h->delay[0] = c->latent_s - c->delay_s * log(rng_unit(g));
			h->bg[0] = hazard > 0 ? -log(rng_unit(g)) / hazard : INFINITY;
			for (int q = 1; q < nproc; q++) {
				double hz = c->sig_bg[q - 1] / 3600.0, pv = c->sig_p[q - 1];
				if (c->sig_seg && !h->seg)
					pv = 0.0;
				h->victim |= (uint8_t)((rng_unit(g) < pv) << q);
				h->delay[q] = -c->sig_delay_s * log(rng_unit(g));
				h->bg[q] = hz > 0 ? -log(rng_unit(g)) / hz : INFINITY;
			}
			for (int q = 0; q < nproc; q++) {
				if (h->bg[q] < (double)MAX_LOOK * LOOK_S)
					sim_add(&s, h->bg[q], (int32_t)a, EV_CFAIL, (uint8_t)q);
				gall[q][h->seg].risk_c++;
			}
		}
	}
	struct gate_seq seq_ring = {0}, seq_seg[2] = {{0}}, seq_sig[SIM_SIGS] = {{0}};
	struct gate_seq seq_sigseg[SIM_SIGS][2];
	memset(seq_sigseg, 0, sizeof seq_sigseg);
	int has_prev = 0;
	int ring = 0, watching = 0;
	double ring_t0 = 0.0, watch_t0 = 0.0;
	int64_t exposed = 0;
	for (int64_t k = 1; k < MAX_LOOK; k++) {
		double now = (double)(k * LOOK_S);
		/* Entering a ring: its agents apply over FILL_S. */
		if (ring_t0 == now - LOOK_S && !watching) {
			int64_t before = s.napplies;
			for (int64_t a = off[ring]; a < off[ring] + c->size[ring]; a++) {
				struct sim_host *h = &s.h[a];
				if (h->held)
					continue;
				h->apply = ring_t0 + rng_unit(g) * FILL_S;
				s.applies[s.napplies++] = h->apply;
				sim_add(&s, h->apply, (int32_t)a, EV_APPLY, 0);
				for (int q = 0; q < nproc; q++) {
					double tf = h->victim >> q & 1 ? h->apply + h->delay[q]
					                               : INFINITY;
					if (q == 0) /* the file's crash names the channel */
						h->attr_t = tf < INFINITY && !c->no_attribution;
					if (h->bg[q] > h->apply) {
						/* a background failure on the file */
						h->cancelled |= (uint8_t)(1u << q);
						if (q == 0 && h->bg[q] < tf)
							h->attr_t = rng_unit(ga) < attr_q;
						tf = fmin(tf, h->bg[q]);
					}
					if (tf < (double)MAX_LOOK * LOOK_S)
						sim_add(&s, tf, (int32_t)a, EV_TFAIL, (uint8_t)q);
				}
			}
			qsort(s.applies + before, (size_t)(s.napplies - before), sizeof(double),
			      cmp_dbl);
		}
		for (int q = 0; q < nproc; q++)
			for (int sg = 0; sg < 2; sg++) {
				gall[q][sg].et += (double)gall[q][sg].risk_t * LOOK_S;
				gall[q][sg].ec += (double)gall[q][sg].risk_c * LOOK_S;
			}
		for (int32_t e = s.head[k]; e >= 0; e = s.ev[e].next) {
			struct sim_ev *ev = &s.ev[e];
			struct sim_host *h = &s.h[ev->host];
			double left = now - ev->t;
			uint8_t bit = (uint8_t)(1u << ev->proc);
			if (ev->type == EV_APPLY) {
				h->applied = 1;
				exposed++;
				for (int q = 0; q < nproc; q++) {
					struct sim_grp *gr = &gall[q][h->seg];
					gr->applied++;
					if (!(h->cfailed >> q & 1)) {
						gr->risk_c--;
						gr->ec -= left;
					}
					gr->risk_t++;
					gr->et += left;
				}
				continue;
			}
			struct sim_grp *gr = &gall[ev->proc][h->seg];
			if (ev->type == EV_TFAIL && !(h->tfailed & bit)) {
				h->tfailed |= bit;
				if (ev->proc == 0)
					tattr += h->attr_t;
				gr->tfail++;
				gr->risk_t--;
				gr->et -= left;
			} else if (ev->type == EV_CFAIL && !(h->cancelled & bit) && !h->applied) {
				h->cfailed |= bit;
				if (ev->proc == 0)
					cattr += h->attr_c;
				gr->cfail++;
				gr->risk_c--;
				gr->ec -= left;
			}
		}
		struct gate_policy p;
		gate_policy_default(ring, c->nrings, &p);
		if (c->no_holdout)
			p.holdout = 0;
		if (getenv("SIM_RATIO"))
			p.max_ratio = strtod(getenv("SIM_RATIO"), NULL);
		if (getenv("SIM_CONF"))
			p.confidence = strtod(getenv("SIM_CONF"), NULL);
		if (getenv("SIM_ATTR_CAP"))
			p.attributed_cap = strtol(getenv("SIM_ATTR_CAP"), NULL, 10);
		if (getenv("SIM_BAKE_SCALE")) {
			double f = strtod(getenv("SIM_BAKE_SCALE"), NULL);
			p.min_bake_s = (int64_t)((double)p.min_bake_s * f);
			p.min_exposure_s = (int64_t)((double)p.min_exposure_s * f);
		}
		/* seasoned: applied at least the needed exposure ago, not failed */
		double cut = now - (double)gate_exposure_needed(&p);
		int64_t lo = 0, hi = s.napplies;
		while (lo < hi) {
			int64_t mid = (lo + hi) / 2;
			if (s.applies[mid] <= cut)
				lo = mid + 1;
			else
				hi = mid;
		}
		struct gate_inputs in = {.silence_counted = 1};
		int64_t tf = grp[0].tfail + grp[1].tfail;
		in.treated = grp[0].applied + grp[1].applied;
		in.crashed = tf;
		in.attributed = tattr;
		in.control_attributed = cattr;
		in.healthy = in.treated - tf;
		in.seasoned = lo - tf > 0 ? lo - tf : 0;
		in.control = total - in.treated;
		in.control_failed = grp[0].cfail + grp[1].cfail;
		in.exposure_s = grp[0].et + grp[1].et;
		in.control_exposure_s = grp[0].ec + grp[1].ec;
		in.bake_elapsed_s = (int64_t)(now - ring_t0);
		in.wait_elapsed_s = in.bake_elapsed_s;
		in.has_prev = has_prev;
		in.prev = seq_ring;
		struct gate_result r;
		gate_decide(&p, &in, &r);
		seq_ring = r.seq;
		has_prev = 1;
		/* The segments, Bonferroni over those big enough to judge. */
		int judged = 0;
		for (int sg = 0; sg < 2; sg++)
			judged += grp[sg].applied >= p.min_segment_agents;
		int seg_halt = 0;
		for (int sg = 0; sg < 2; sg++) {
			struct gate_group gg = {grp[sg].applied, grp[sg].tfail, grp[sg].et, 0,
			                        grp[sg].cfail,   grp[sg].ec};
			struct gate_rel rel;
			struct gate_seq next;
			gate_relative(&p, &seq_seg[sg], &gg, gate_segment_threshold(&p, judged),
			              &next, &rel);
			seq_seg[sg] = next;
			if (grp[sg].applied >= p.min_segment_agents && rel.halt)
				seg_halt = 1;
		}
		/* The health signals, as the controller judges them (Bonferroni
		 * over the four). */
		int sig_halt = -1;
		double sig_best = 0.0;
		for (int q = 1; q < nproc; q++) {
			struct sim_grp *a0 = &gall[q][0], *a1 = &gall[q][1];
			struct gate_group gg = {a0->applied + a1->applied, a0->tfail + a1->tfail,
			                        a0->et + a1->et,           0,
			                        a0->cfail + a1->cfail,     a0->ec + a1->ec};
			struct gate_rel rel;
			struct gate_seq next;
			gate_relative(&p, &seq_sig[q - 1], &gg,
			              log((double)SIM_SIGS / (1.0 - p.confidence)), &next, &rel);
			seq_sig[q - 1] = next;
			if (rel.halt && (sig_halt < 0 || rel.statistic > sig_best)) {
				sig_halt = q - 1;
				sig_best = rel.statistic;
			}
			/* and each segment: over the signals and its judged ones */
			int judged_q = (a0->applied >= p.min_segment_agents) +
			               (a1->applied >= p.min_segment_agents);
			for (int sg = 0; sg < 2; sg++) {
				struct sim_grp *a = &gall[q][sg];
				struct gate_group sgg = {a->applied, a->tfail, a->et,
				                         0,          a->cfail, a->ec};
				struct gate_rel srel;
				gate_relative(&p, &seq_sigseg[q - 1][sg], &sgg,
				              log(2.0 * SIM_SIGS * (judged_q > 1 ? judged_q : 1) /
				                  (1.0 - p.confidence)),
				              &next, &srel);
				seq_sigseg[q - 1][sg] = next;
				if (a->applied >= p.min_segment_agents && srel.halt &&
				    (sig_halt < 0 || srel.statistic > sig_best)) {
					sig_halt = q - 1;
					sig_best = srel.statistic;
				}
			}
		}
		if (r.decision != GATE_HALT && !seg_halt && sig_halt >= 0) {
			t->by_signal[sig_halt]++;
			seg_halt = 1;
		}
		if ((r.decision == GATE_HALT || seg_halt) && getenv("SIM_DEBUG"))
			printf("# halt in ring %d%s at %.0f (cfail %lld ec %.0f tfail %lld et %.0f "
			       "nev %d): %s\n",
			       ring, seg_halt ? " (segment)" : "", now, (long long)grp[0].cfail,
			       grp[0].ec, (long long)grp[0].tfail, grp[0].et, s.nev, r.reason);
		if (r.decision == GATE_HALT || seg_halt) {
			t->halted[watching ? c->nrings : ring]++;
			t->by_segment += r.decision != GATE_HALT;
			if (exposed > t->exposed_at_halt_max)
				t->exposed_at_halt_max = exposed;
			return;
		}
		if (watching) {
			if (now - watch_t0 >= (double)c->watch_s) {
				t->completed++;
				return;
			}
			continue;
		}
		if (r.decision == GATE_PROMOTE) {
			if (ring == c->nrings - 1) {
				t->reached++;
				t->fleet_s_sum += now;
				t->fleet_s_max = fmax(t->fleet_s_max, now);
				if (c->watch_s <= 0) {
					t->completed++;
					return;
				}
				watching = 1;
				watch_t0 = now;
				continue;
			}
			ring++;
			ring_t0 = now;
			has_prev = 1;
			continue;
		}
		if (now - ring_t0 > (double)(p.min_bake_s + 4 * 3600)) {
			if (getenv("SIM_DEBUG"))
				printf("# stuck in ring %d: %s\n", ring, r.reason);
			t->stuck++;
			return;
		}
	}
	t->stuck++;
}

static void sim_run(const struct sim_cfg *c, int reps, uint64_t seed, struct sim_tally *t)
{
	if (getenv("SIM_SEED_XOR")) /* other seeds: how much a figure is the seed's */
		seed ^= strtoull(getenv("SIM_SEED_XOR"), NULL, 0);
	struct rng g = {seed}, ga = {seed ^ 0xa77b17edULL};
	memset(t, 0, sizeof *t);
	for (int i = 0; i < reps; i++)
		sim_rehearse(c, &g, &ga, t);
	printf("# sim %s: rings", c->name);
	for (int i = 0; i < c->nrings; i++)
		printf(" %lld", (long long)c->size[i]);
	printf(", background %.2f%%/host-hour, file %.2f%% (segment %.0f%% of the fleet: %.0f%%), "
	       "%d rehearsals:\n#   halted in ring 0..%d:",
	       100 * c->bg_per_h, 100 * c->p_file, 100 * c->seg_share, 100 * c->p_seg, reps,
	       c->nrings - 1);
	for (int i = 0; i < c->nrings; i++)
		printf(" %d", t->halted[i]);
	printf(", watching %d (by a segment %d); completed %d, stuck %d; max exposed at a "
	       "halt %lld",
	       t->halted[c->nrings], t->by_segment, t->completed, t->stuck,
	       (long long)t->exposed_at_halt_max);
	if (t->reached)
		printf("; to the whole fleet (but its holdouts) mean %.0f s, max %.0f s",
		       t->fleet_s_sum / t->reached, t->fleet_s_max);
	printf("\n");
}

#define REHEARSALS 1000

/* The fleet of the issue's rehearsal: 3,000 agents, an early ring of 1,000. */
static const struct sim_cfg sim_3k = {
        .name = "3k", .nrings = 3, .size = {100, 1000, 1900, 0}, .bg_per_h = 0.001, .delay_s = 600};
static const struct sim_cfg sim_26k = {.name = "26k",
                                       .nrings = 4,
                                       .size = {100, 1000, 5000, 20000},
                                       .bg_per_h = 0.001,
                                       .delay_s = 600};

static int sim_halted(const struct sim_tally *t, int upto)
{
	int n = 0;
	for (int i = 0; i <= upto; i++)
		n += t->halted[i];
	return n;
}

/* Good files under 0.1 % and 0.5 % background noise per host-hour: false
 * halts at most 1 %, and (nearly) all complete. */
static void test_sim_good_file(void **state)
{
	(void)state;
	static const double bgs[] = {0.001, 0.005};
	for (int f = 0; f < 2; f++) {
		for (int i = 0; i < 2; i++) {
			struct sim_cfg c = f ? sim_26k : sim_3k;
			c.bg_per_h = bgs[i];
			struct sim_tally t;
			sim_run(&c, f ? REHEARSALS / 4 : REHEARSALS,
			        0x5eed0101 + (uint64_t)(2 * f + i), &t);
			int reps = f ? REHEARSALS / 4 : REHEARSALS;
			int halted = sim_halted(&t, c.nrings);
			printf("#   => false halts %.1f%% (must be <= 1%%), completed %.1f%%\n",
			       100.0 * halted / reps, 100.0 * t.completed / reps);
			assert_true(halted * 100 <= reps);
			/* Under 0.5 %/host-hour the small GA holdout cannot prove a
			 * small excess; those wait (and stall for an operator). */
			assert_true(t.completed * 100 >= reps * (i == 0 ? 95 : 70));
		}
	}
}

/* A file that crashes 1 % (10x the background) or 0.5 % (5x) of the hosts
 * that apply it, with an early ring of 1,000: halted before it leaves early. */
/* A file that crashes p of the hosts that apply it, in the 3k fleet: the
 * share halted before it left early must be at least min_pct. */
static void sim_early(const char *what, double p, int attributed, uint64_t seed, int min_pct)
{
	struct sim_cfg c = sim_3k;
	struct sim_tally t;
	c.p_file = p;
	c.no_attribution = !attributed;
	sim_run(&c, REHEARSALS, seed, &t);
	printf("#   => %s%s: halted before leaving early %.1f%% (must be >= %d%%), completed "
	       "%.1f%%\n",
	       what, attributed ? "" : " without attribution",
	       100.0 * sim_halted(&t, 1) / REHEARSALS, min_pct, 100.0 * t.completed / REHEARSALS);
	assert_true(sim_halted(&t, 1) * 100 >= REHEARSALS * min_pct);
}

static void test_sim_subtle_files(void **state)
{
	(void)state;
	struct sim_tally t;
	sim_early("1% file", 0.01, 1, 0x5eed0111, 95);
	/* 0.5 %: about 5 crashes in an early ring of 1,000. They name the
	 * channel, and the attributed cap sees them where the relative test
	 * cannot (GATE.md, "The attributed cap"). */
	sim_early("0.5% file", 0.005, 1, 0x5eed0112, 90);
	/* Without attribution (agents that do not send faulting_channel, a
	 * crash outside the interpreter) only the relative test is left: about
	 * 5 excess crashes are below what it can promise to see. */
	sim_early("0.5% file", 0.005, 0, 0x5eed0112, 55);
	sim_early("1% file", 0.01, 0, 0x5eed0111, 95);
	struct sim_cfg big = {.name = "early 3000",
	                      .nrings = 3,
	                      .size = {100, 3000, 6900, 0},
	                      .bg_per_h = 0.001,
	                      .p_file = 0.005,
	                      .delay_s = 600,
	                      .no_attribution = 1};
	sim_run(&big, REHEARSALS / 2, 0x5eed0113, &t);
	printf("#   => 0.5%% file without attribution, early ring of 3,000: halted before "
	       "leaving early %.1f%% (must be >= 90%%)\n",
	       100.0 * sim_halted(&t, 1) / (REHEARSALS / 2));
	assert_true(sim_halted(&t, 1) * 100 >= (REHEARSALS / 2) * 90);
	/* the early ring a 0.5 % file needs in a fleet of 10,000 (GATE.md's
	 * table; not asserted) */
	static const int64_t earlies[] = {1000, 1500, 2000, 2500};
	for (int i = 0; i < 4; i++) {
		big.size[1] = earlies[i];
		big.size[2] = 10000 - 100 - earlies[i];
		sim_run(&big, REHEARSALS / 2, 0x5eed0114 + (uint64_t)i, &t);
		printf("#   => 0.5%% file without attribution, early ring of %lld: halted before "
		       "leaving early %.1f%%\n",
		       (long long)earlies[i], 100.0 * sim_halted(&t, 1) / (REHEARSALS / 2));
	}
}

/* Half of one platform (5 % of the fleet) crashes: halted before it leaves
 * early, mostly by that segment's own test. */
static void test_sim_segment(void **state)
{
	(void)state;
	struct sim_cfg c = sim_3k;
	c.seg_share = 0.05;
	c.p_seg = 0.5;
	struct sim_tally t;
	sim_run(&c, REHEARSALS, 0x5eed0121, &t);
	printf("#   => segment file halted before leaving early %.1f%% (must be >= 95%%), by "
	       "the segment's test %d (the rest mostly by the attributed cap)\n",
	       100.0 * sim_halted(&t, 1) / REHEARSALS, t.by_segment);
	assert_true(sim_halted(&t, 1) * 100 >= REHEARSALS * 95);
	/* Crashes that name no channel (old agents, a crash outside the
	 * interpreter): the segment's own test and the ring's find it. */
	c.no_attribution = 1;
	sim_run(&c, REHEARSALS, 0x5eed0121, &t);
	printf("#   => without attribution: halted before leaving early %.1f%% (must be >= "
	       "95%%), by the segment's test %d\n",
	       100.0 * sim_halted(&t, 1) / REHEARSALS, t.by_segment);
	assert_true(sim_halted(&t, 1) * 100 >= REHEARSALS * 95);
	assert_true(t.by_segment > 0);
}

/* Health signals (GATE.md, "Health signals"): each is a second failure
 * process per host (a degraded verdict), judged beside crashes at the
 * Bonferroni threshold over the four. Good files under background verdict
 * rates up to 2 % per host-hour on every signal at once: false halts at
 * most 1 %. A file that degrades a share of the hosts that apply it on one
 * signal: halted before it leaves early, by that signal. */
static void test_sim_signals(void **state)
{
	(void)state;
	static const char *const names[SIM_SIGS] = {"agent CPU", "memory", "evaluation errors",
	                                            "detections"};
	static const double noise[] = {0.005, 0.02};
	for (int i = 0; i < 2; i++) {
		struct sim_cfg c = sim_3k;
		c.sig_on = 1;
		c.sig_delay_s = 600;
		c.seg_share = 0.05; /* a platform of 5 %: its segment tests run too */
		for (int q = 0; q < SIM_SIGS; q++)
			c.sig_bg[q] = noise[i];
		struct sim_tally t;
		sim_run(&c, REHEARSALS, 0x5eed0151 + (uint64_t)i, &t);
		int halted = sim_halted(&t, c.nrings);
		printf("#   => good file, every signal's verdicts at %.1f%%/host-hour: false halts "
		       "%.1f%% (must be <= 1%%; by a signal %d), completed %.1f%%\n",
		       100 * noise[i], 100.0 * halted / REHEARSALS,
		       t.by_signal[0] + t.by_signal[1] + t.by_signal[2] + t.by_signal[3],
		       100.0 * t.completed / REHEARSALS);
		assert_true(halted * 100 <= REHEARSALS);
		assert_true(t.completed * 100 >= REHEARSALS * 95);
	}
	/* each behaviour on its own signal, on share of the hosts, under the
	 * 0.5 % noise on every signal */
	static const double shares[] = {0.05, 0.02};
	for (int q = 0; q < SIM_SIGS; q++)
		for (int j = 0; j < 2; j++) {
			struct sim_cfg c = sim_3k;
			c.sig_on = 1;
			c.sig_delay_s = 600;
			for (int k = 0; k < SIM_SIGS; k++)
				c.sig_bg[k] = 0.005;
			c.sig_p[q] = shares[j];
			struct sim_tally t;
			sim_run(&c, REHEARSALS / 2, 0x5eed0160 + (uint64_t)(2 * q + j), &t);
			int early = sim_halted(&t, 1);
			printf("#   => %s on %.0f%% of hosts: halted before leaving early %.1f%% "
			       "(by "
			       "that signal %d)\n",
			       names[q], 100 * shares[j], 100.0 * early / (REHEARSALS / 2),
			       t.by_signal[q]);
			if (j == 0)
				assert_true(early * 100 >= (REHEARSALS / 2) * 95);
		}
}

/* A CPU storm on half of one platform (5 % of the fleet) only: halted
 * before it leaves early, by the signal's segment test. */
static void test_sim_signal_segment(void **state)
{
	(void)state;
	struct sim_cfg c = sim_3k;
	c.sig_on = 1;
	c.sig_delay_s = 600;
	for (int k = 0; k < SIM_SIGS; k++)
		c.sig_bg[k] = 0.005;
	c.seg_share = 0.05;
	c.sig_seg = 1;
	c.sig_p[0] = 0.5;
	struct sim_tally t;
	sim_run(&c, REHEARSALS / 2, 0x5eed0170, &t);
	int early = sim_halted(&t, 1);
	printf("#   => agent CPU on half of a 5%% platform: halted before leaving early %.1f%% "
	       "(must be >= 95%%; by that signal %d)\n",
	       100.0 * early / (REHEARSALS / 2), t.by_signal[0]);
	assert_true(early * 100 >= (REHEARSALS / 2) * 95);
	assert_true(t.by_signal[0] * 100 >= (REHEARSALS / 2) * 95);
}

/* Crashes that start only after the last promotion: the watch catches them. */
static void test_sim_latent(void **state)
{
	(void)state;
	struct sim_cfg c = sim_3k;
	c.p_file = 0.05;
	c.latent_s = 4 * 3600;
	c.watch_s = 86400;
	struct sim_tally t;
	sim_run(&c, REHEARSALS / 4, 0x5eed0131, &t);
	printf("#   => latent file halted while watching %d of %d\n", t.halted[c.nrings],
	       REHEARSALS / 4);
	assert_true(t.halted[c.nrings] * 100 >= (REHEARSALS / 4) * 95);
	assert_int_equal(t.completed, 0);
	/* Without the watch it would have completed. */
	c.watch_s = 0;
	sim_run(&c, REHEARSALS / 4, 0x5eed0131, &t);
	assert_true(t.completed * 100 >= (REHEARSALS / 4) * 95);
}

static void test_sim_crash_everything(void **state)
{
	(void)state;
	struct sim_cfg c = sim_3k;
	c.p_file = 1.0;
	c.delay_s = 60;
	struct sim_tally t;
	sim_run(&c, REHEARSALS, 0x5eed0003, &t);
	printf("#   => halted in canary %d of %d, at most %lld exposed at the halt\n", t.halted[0],
	       REHEARSALS, (long long)t.exposed_at_halt_max);
	assert_int_equal(t.halted[0], REHEARSALS);
	assert_true(t.exposed_at_halt_max <= 100);

	/* One canary at a time: halted within the first three agents; with
	 * the statistics switched off the hard cap alone stops it at 3. */
	for (int stats = 1; stats >= 0; stats--) {
		int64_t worst = 0;
		int by_cap = 0;
		struct rng g = {0x5eed0004};
		for (int i = 0; i < REHEARSALS; i++) {
			struct gate_policy p = pol(CANARY);
			if (!stats)
				p.confidence = 0.999, p.max_failure_rate = 0.5, p.min_excess = 0.5,
				p.max_ratio = 100;
			struct gate_inputs in = {.control = 26000, .silence_counted = 1};
			for (int n = 0; n < 100; n++) {
				in.treated++;
				in.crashed++;
				in.control_failed = rng_bernoulli(&g, 0.5) ? 26 : 25;
				in.exposure_s += 60.0 * (double)(in.treated - in.crashed) + 30.0;
				in.control_exposure_s += 60.0 * 26000;
				struct gate_result r;
				gate_decide(&p, &in, &r);
				in.has_prev = 1;
				in.prev = r.seq;
				if (r.decision == GATE_HALT) {
					by_cap += strstr(r.reason, "hard cap") != NULL;
					break;
				}
			}
			if (in.treated > worst)
				worst = in.treated;
		}
		printf("# crash-everything canary, one agent per look, %s: halted within %lld "
		       "agents, by the hard cap in %d of %d\n",
		       stats ? "default policy" : "statistics blunted", (long long)worst, by_cap,
		       REHEARSALS);
		assert_true(worst <= 3);
		if (!stats)
			assert_int_equal(by_cap, REHEARSALS);
	}
}

/* How the halt probability grows with the file's own crash rate, and what
 * the holdout-only control (no later rings) can do in GA. */
static void test_sim_operating_characteristic(void **state)
{
	(void)state;
	static const double rates[] = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.05};
	double halted[6];
	for (int i = 0; i < 6; i++) {
		struct sim_cfg c = sim_3k;
		c.p_file = rates[i];
		struct sim_tally t;
		sim_run(&c, REHEARSALS / 2, 0x5eed0140 + (uint64_t)i, &t);
		halted[i] = (double)sim_halted(&t, c.nrings) / (REHEARSALS / 2);
		printf("#   => file crash rate %.2f%%: halted %.1f%% (before leaving early "
		       "%.1f%%), completed %.1f%%\n",
		       100 * rates[i], 100 * halted[i],
		       100.0 * sim_halted(&t, 1) / (REHEARSALS / 2),
		       100.0 * t.completed / (REHEARSALS / 2));
	}
	for (int i = 1; i < 6; i++)
		assert_true(halted[i] + 0.02 >= halted[i - 1]);
	assert_true(halted[5] >= 0.99);
}
/* Wilson lower bound, written again here for the naive comparison. */
static double naive_lower(int64_t k, int64_t n, double z)
{
	double c = (k + z * z / 2.0) / (n + z * z);
	double h = z * sqrt((double)k * (double)(n - k) / (double)n + z * z / 4.0) / (n + z * z);
	return k == 0 ? 0.0 : c - h;
}

/* The true rate sits exactly on the null (control absent, rate = the 5 %
 * limit): a fixed-sample test repeated at every look halts more and more
 * often as looks are added; the gate's rate must stay below alpha. */
static void test_sim_repeated_looks(void **state)
{
	(void)state;
	enum { N = 400, NSCHED = 5 };
	static const int looks[NSCHED] = {1, 4, 20, 100, 400};
	int ours[NSCHED] = {0}, naive[NSCHED] = {0};
	struct rng g = {0x5eed0006};
	struct gate_policy p = pol(BROAD);
	p.max_failure_rate = 0.05;
	p.min_healthy = 100000; /* never promote: only halting is measured */
	const double z = 1.6448536269514715;
	for (int i = 0; i < REHEARSALS; i++) {
		unsigned char fail[N];
		for (int a = 0; a < N; a++)
			fail[a] = (unsigned char)rng_bernoulli(&g, 0.05);
		for (int s = 0; s < NSCHED; s++) {
			int step = N / looks[s], o_halt = 0, n_halt = 0;
			struct gate_inputs in = {.silence_counted = 1};
			for (int a = 0; a < N; a++) {
				in.treated++;
				if (fail[a])
					in.crashed++;
				else
					in.healthy++;
				if ((a + 1) % step)
					continue;
				if (!o_halt) {
					struct gate_result r;
					gate_decide(&p, &in, &r);
					o_halt = r.decision == GATE_HALT;
				}
				if (!n_halt)
					n_halt = naive_lower(in.crashed, in.treated, z) > 0.05;
			}
			ours[s] += o_halt;
			naive[s] += n_halt;
		}
	}
	printf("# repeated looks at the null (rate = limit 5%%, no control, %d agents, %d "
	       "rehearsals): false-halt rate by number of looks\n",
	       N, REHEARSALS);
	for (int s = 0; s < NSCHED; s++)
		printf("#   %3d looks: gate (SPRT) %.1f%%, naive fixed-sample Wilson test %.1f%%\n",
		       looks[s], 100.0 * ours[s] / REHEARSALS, 100.0 * naive[s] / REHEARSALS);
	for (int s = 0; s < NSCHED; s++)
		assert_true(ours[s] <= REHEARSALS * 5 / 100);
	/* The setting is sensitive: the naive test breaks alpha here. */
	assert_true(naive[NSCHED - 1] > REHEARSALS * 10 / 100);
	assert_true(naive[NSCHED - 1] > 2 * ours[NSCHED - 1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_names),
	        cmocka_unit_test(test_wilson_known),
	        cmocka_unit_test(test_relative_known),
	        cmocka_unit_test(test_segment_threshold),
	        cmocka_unit_test(test_one_crash),
	        cmocka_unit_test(test_holdout_share),
	        cmocka_unit_test(test_zero_treated),
	        cmocka_unit_test(test_all_crashed),
	        cmocka_unit_test(test_all_silent),
	        cmocka_unit_test(test_control_zero_failures),
	        cmocka_unit_test(test_no_control),
	        cmocka_unit_test(test_control_failures_outnumber_hosts),
	        cmocka_unit_test(test_hard_cap),
	        cmocka_unit_test(test_attributed_cap),
	        cmocka_unit_test(test_bake_not_met),
	        cmocka_unit_test(test_min_healthy_not_met),
	        cmocka_unit_test(test_upper_bound_blocks),
	        cmocka_unit_test(test_bad_inputs),
	        cmocka_unit_test(test_stalled),
	        cmocka_unit_test(test_policy_default),
	        cmocka_unit_test(test_overrides_ok),
	        cmocka_unit_test(test_overrides_refused),
	        cmocka_unit_test(test_json),
	        cmocka_unit_test(test_pure),
	        cmocka_unit_test(test_sim_good_file),
	        cmocka_unit_test(test_sim_subtle_files),
	        cmocka_unit_test(test_sim_segment),
	        cmocka_unit_test(test_sim_signals),
	        cmocka_unit_test(test_sim_signal_segment),
	        cmocka_unit_test(test_sim_latent),
	        cmocka_unit_test(test_sim_crash_everything),
	        cmocka_unit_test(test_sim_operating_characteristic),
	        cmocka_unit_test(test_sim_repeated_looks),
	};
	/* GATE_TEST=test_sim_subtle_files runs that test alone (cmocka's filter) */
	if (getenv("GATE_TEST"))
		cmocka_set_test_filter(getenv("GATE_TEST"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
