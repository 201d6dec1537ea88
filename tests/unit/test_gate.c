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

/* A ring where k of n agents crashed and the rest are healthy. */
static struct gate_inputs ring_in(int64_t k, int64_t n, int64_t control, int64_t cfail,
                                  int64_t bake)
{
	struct gate_inputs in = {
	        .treated = n,
	        .healthy = n - k,
	        .crashed = k,
	        .control = control,
	        .control_failed = cfail,
	        .bake_elapsed_s = bake,
	        .silence_counted = 1,
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
static void test_sprt_known(void **state)
{
	(void)state;
	struct gate_policy p = pol(EARLY);
	p.hard_cap = 0; /* the statistics, not the cap, are tested here */
	struct gate_inputs in = ring_in(12, 400, 10000, 10, 7200);
	struct gate_result r;
	gate_decide(&p, &in, &r);
	assert_near(r.control_rate, 0.001, EPS);
	assert_near(r.control_upper, 0.0016720246730647266, EPS);
	assert_near(r.baseline_rate, 0.004172024673064727, EPS);
	assert_near(r.alt_rate, 0.015, EPS);
	assert_near(r.statistic, 11.113825247606014, 1e-7);
	assert_near(r.threshold, 2.995732273553991, EPS);
	assert_int_equal(r.decision, GATE_HALT);
	assert_contains(r.reason, "HALT: treated failure rate 3.00% (12 of 400");
	assert_contains(r.reason, "acceptable 0.42% = control upper 0.17% + tolerance 0.25%");
	assert_contains(r.reason, "log-LR 11.11 >= 3.00");

	/* 4 of 400 (1 %): below the halt boundary; not enough healthy yet. */
	in = ring_in(4, 400, 10000, 10, 7200);
	gate_decide(&p, &in, &r);
	assert_near(r.statistic, 0.7891721597998451, 1e-7);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_contains(r.reason, "WAIT for: healthy agents (396 of 500)");
	assert_contains(r.reason, "SPRT log-LR 0.79 of 3.00 to halt");
}

/* ---- the hard rules and edge cases ---------------------------------------- */

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
	assert_contains(r.reason, "SPRT");
	/* One of one is not evidence yet on GA (alternative = the 1 % limit);
	 * four of four are. */
	in = ring_in(1, 1, 20000, 20, 10);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_WAIT);
	in = ring_in(4, 4, 20000, 20, 10);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
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
	/* ... and once silence counts, 5 silent of 40 on a canary halt. */
	in.silence_counted = 1;
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
	assert_int_equal(r.failures, 5);
	/* Without silent agents the same ring promotes. */
	in.silent = 0;
	in.treated = 35;
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
	assert_near(r.baseline_rate, 0.0005408160505539929 + 0.0025, EPS);
	assert_int_equal(r.decision, GATE_PROMOTE);
	assert_contains(r.reason, "PROMOTE: baked 3600s (min 3600s), 1200 healthy (min 1000)");
	assert_contains(r.reason, "control 0.00% (0 of 5000, upper 0.05%)");
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
	/* No control: the null is the limit itself, the alternative twice it. */
	assert_near(r.baseline_rate, 0.02, EPS);
	assert_near(r.alt_rate, 0.04, EPS);
	assert_near(r.control_upper, 1.0, EPS);
	assert_near(r.statistic, 2.2206700863025155, 1e-7);
	assert_int_equal(r.decision, GATE_WAIT);
	assert_contains(r.reason, "no control agents");
	in = ring_in(5, 100, 0, 0, 3600);
	gate_decide(&p, &in, &r);
	assert_near(r.statistic, 1.506903618539835, 1e-7);
	/* 12 of 100 is confidently above 2 %. */
	in = ring_in(12, 100, 0, 0, 3600);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_HALT);
	assert_contains(r.reason, "acceptable 2.00% = the limit (no control agents)");
	/* And a clean ring without control promotes on the absolute limit. */
	in = ring_in(0, 600, 0, 0, 3600);
	gate_decide(&p, &in, &r);
	assert_int_equal(r.decision, GATE_PROMOTE);

	/* A bad control does not raise the acceptable rate above the limit. */
	in = ring_in(12, 100, 1000, 100, 3600);
	gate_decide(&p, &in, &r);
	assert_near(r.baseline_rate, 0.02, EPS);
	assert_int_equal(r.decision, GATE_HALT);
	assert_contains(r.reason,
	                "acceptable 2.00% = the limit (control upper + tolerance is above it)");
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
	assert_contains(r.reason, "Also: 3 of 100 with an outcome failed (3.00%)");
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
	assert_contains(r.reason, ". Now: 1 of 10 with an outcome failed (10.00%");
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
	in.crashed = 10;
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
	                          .tolerance = INFINITY,
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
	gate_policy_default(0, 4, &p);
	assert_int_equal(p.hard_cap, 3);
	assert_int_equal(p.min_healthy, 25);
	assert_int_equal(p.min_bake_s, 1800);
	assert_near(p.max_failure_rate, 0.10, EPS);
	assert_near(p.confidence, 0.95, EPS);
	assert_near(p.tolerance, 0.0025, EPS);
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
	json_t *o = json_loads("{\"min_bake_s\": 5, \"min_healthy\": 10, \"max_failure_rate\": "
	                       "0.25, \"tolerance\": 0, \"confidence\": 0.99, \"hard_cap\": 0, "
	                       "\"silence_timeout_s\": 2, \"max_wait_s\": 0}",
	                       0, &jerr);
	assert_non_null(o);
	assert_int_equal(gate_policy_apply_json(&p, o, &err), FB_OK);
	assert_int_equal(p.min_bake_s, 5);
	assert_int_equal(p.min_healthy, 10);
	assert_near(p.max_failure_rate, 0.25, EPS);
	assert_near(p.tolerance, 0.0, EPS);
	assert_near(p.confidence, 0.99, EPS);
	assert_int_equal(p.hard_cap, 0);
	assert_int_equal(p.silence_timeout_s, 2);
	assert_int_equal(p.max_wait_s, 0);
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
	assert_int_equal(json_object_size(j), 16);
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
	assert_int_equal(json_object_size(j), 11);
	json_decref(j);

	j = gate_policy_to_json(&p);
	assert_non_null(j);
	assert_int_equal(json_object_size(j), 8);
	assert_int_equal(json_integer_value(json_object_get(j, "hard_cap")), 10);
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

#define P_BG       0.001 /* background crash noise per agent over a ring's bake */
#define REHEARSALS 1000
#define LOOK_S     60 /* seconds between two looks */

/* The fleet of a rehearsal: ring sizes and how many agents get an outcome
 * per look (each ring fills in 20 looks, faster than any default bake). */
struct sim_fleet {
	const char *name;
	int64_t size[4];
	int64_t batch[4];
};

static const struct sim_fleet fleet_small = {
        "100/1000/5000/20000", {100, 1000, 5000, 20000}, {5, 50, 250, 1000}};
/* 100,000 agents with large rings: an absolute cap of 10 in early would
 * trip on background noise alone. */
static const struct sim_fleet fleet_large = {
        "1000/10000/40000/49000", {1000, 10000, 40000, 49000}, {50, 500, 2000, 2450}};

struct rollout_tally {
	int halted[4]; /* halted while in ring i */
	int hard_cap;  /* of those, by the hard cap */
	int completed; /* promoted out of GA */
	int stuck;     /* still waiting long after the last ring filled */
	int abs_cap;   /* rehearsals where the raw reports reached a ring's cap */
	int64_t treated_at_halt_max;
};

/* One rehearsal of a whole rollout over 4 rings with the default policy: a
 * treated agent fails when its background flag is set or the file crashes it
 * (probability p_file); control = this ring's untreated + all later rings,
 * each failing with the background rate. Treated counts are cumulative over
 * the rings exposed so far, as the controller's are. */
static void rehearse(const struct sim_fleet *f, struct rng *g, double p_file,
                     struct rollout_tally *t)
{
	static unsigned char bg[100000];
	int64_t off[4], total = 0;
	for (int i = 0; i < 4; i++) {
		off[i] = total;
		total += f->size[i];
	}
	assert_true(total <= (int64_t)sizeof bg);
	for (int64_t a = 0; a < total; a++)
		bg[a] = (unsigned char)rng_bernoulli(g, P_BG);
	/* suffix counts of background failures, for the control */
	int64_t later_bg[5] = {0};
	for (int i = 3; i >= 0; i--) {
		later_bg[i] = later_bg[i + 1];
		for (int64_t a = off[i]; a < off[i] + f->size[i]; a++)
			later_bg[i] += bg[a];
	}
	struct gate_inputs in = {.silence_counted = 1};
	int abs_cap = 0;
	for (int ring = 0; ring < 4; ring++) {
		struct gate_policy p;
		gate_policy_default(ring, 4, &p);
		int64_t untreated_bg = later_bg[ring] - later_bg[ring + 1];
		int64_t max_looks = p.min_bake_s / LOOK_S + 60, in_ring = 0;
		enum gate_decision d = GATE_WAIT;
		for (int64_t look = 1; look <= max_looks; look++) {
			int64_t add = f->batch[ring];
			if (in_ring + add > f->size[ring])
				add = f->size[ring] - in_ring;
			for (int64_t a = 0; a < add; a++) {
				int64_t idx = off[ring] + in_ring + a;
				untreated_bg -= bg[idx];
				if (bg[idx] || rng_bernoulli(g, p_file))
					in.crashed++;
				else
					in.healthy++;
			}
			in_ring += add;
			in.treated += add;
			in.control = total - in.treated;
			in.control_failed = untreated_bg + later_bg[ring + 1];
			in.bake_elapsed_s = look * LOOK_S;
			in.looks = (int)(look - 1);
			if (p.hard_cap > 0 && in.crashed >= p.hard_cap)
				abs_cap = 1;
			struct gate_result r;
			gate_decide(&p, &in, &r);
			d = r.decision;
			if (d == GATE_HALT) {
				t->halted[ring]++;
				if (strstr(r.reason, "hard cap"))
					t->hard_cap++;
				if (in.treated > t->treated_at_halt_max)
					t->treated_at_halt_max = in.treated;
				t->abs_cap += abs_cap;
				return;
			}
			if (d == GATE_PROMOTE)
				break;
		}
		if (d != GATE_PROMOTE) {
			t->stuck++;
			t->abs_cap += abs_cap;
			return;
		}
	}
	t->completed++;
	t->abs_cap += abs_cap;
}

static void run_fleet(const struct sim_fleet *f, double p_file, int reps, uint64_t seed,
                      struct rollout_tally *t)
{
	struct rng g = {seed};
	memset(t, 0, sizeof *t);
	for (int i = 0; i < reps; i++)
		rehearse(f, &g, p_file, t);
	printf("# rollout sim, file crash rate %.4f + background %.3f, %d rehearsals, rings "
	       "%s:\n#   halted in canary %d, early %d, broad %d, GA %d "
	       "(hard cap %d); completed %d; stuck %d\n",
	       p_file, P_BG, reps, f->name, t->halted[0], t->halted[1], t->halted[2], t->halted[3],
	       t->hard_cap, t->completed, t->stuck);
}

static void run_rollouts(double p_file, int reps, uint64_t seed, struct rollout_tally *t)
{
	run_fleet(&fleet_small, p_file, reps, seed, t);
}

static void test_sim_good_file(void **state)
{
	(void)state;
	struct rollout_tally t;
	run_rollouts(0.0, REHEARSALS, 0x5eed0001, &t);
	int halted = t.halted[0] + t.halted[1] + t.halted[2] + t.halted[3];
	printf("#   => false halts %.1f%% (must be <= 5%%), completed %.1f%%\n",
	       100.0 * halted / REHEARSALS, 100.0 * t.completed / REHEARSALS);
	assert_true(halted <= REHEARSALS * 5 / 100);
	assert_true(t.completed >= REHEARSALS * 95 / 100);
	assert_int_equal(t.stuck, REHEARSALS - halted - t.completed);
}

static void test_sim_two_percent_file(void **state)
{
	(void)state;
	struct rollout_tally t;
	run_rollouts(0.02, REHEARSALS, 0x5eed0002, &t);
	int before_broad = t.halted[0] + t.halted[1];
	printf("#   => halted before leaving early %.1f%% (must be >= 95%%)\n",
	       100.0 * before_broad / REHEARSALS);
	assert_true(before_broad >= REHEARSALS * 95 / 100);
}

static void test_sim_crash_everything(void **state)
{
	(void)state;
	struct rollout_tally t;
	run_rollouts(1.0, REHEARSALS, 0x5eed0003, &t);
	printf("#   => halted in canary %d of %d, at most %lld treated at the halt\n", t.halted[0],
	       REHEARSALS, (long long)t.treated_at_halt_max);
	assert_int_equal(t.halted[0], REHEARSALS);
	/* the first look already has 5 crashed canaries */
	assert_true(t.treated_at_halt_max <= 5);

	/* One canary at a time: halted within the first three agents; with
	 * the statistics switched off the hard cap alone stops it at 3. */
	for (int stats = 1; stats >= 0; stats--) {
		int64_t worst = 0;
		int by_cap = 0;
		struct rng g = {0x5eed0004};
		for (int i = 0; i < REHEARSALS; i++) {
			struct gate_policy p = pol(CANARY);
			if (!stats)
				p.confidence = 0.999, p.max_failure_rate = 0.5, p.tolerance = 0.5;
			struct gate_inputs in = {.control = 26000, .silence_counted = 1};
			for (int n = 0; n < 100; n++) {
				in.treated++;
				in.crashed++;
				in.control_failed = rng_bernoulli(&g, 0.5) ? 26 : 25;
				struct gate_result r;
				gate_decide(&p, &in, &r);
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

/* How the halt probability grows with the file's own crash rate: the
 * tolerance (0.25 points) absorbs a treated population a little noisier than
 * its control; a few times the background is caught, mostly in early. */
static void test_sim_operating_characteristic(void **state)
{
	(void)state;
	static const double rates[] = {0.0025, 0.005, 0.01, 0.05};
	double halted[4], stopped[4];
	for (int i = 0; i < 4; i++) {
		struct rollout_tally t;
		run_rollouts(rates[i], REHEARSALS / 2, 0x5eed0010 + (uint64_t)i, &t);
		halted[i] = (double)(t.halted[0] + t.halted[1] + t.halted[2] + t.halted[3]) /
		            (REHEARSALS / 2);
		stopped[i] = 1.0 - (double)t.completed / (REHEARSALS / 2);
		printf("#   => file crash rate %.2f%%: halted %.1f%% (before leaving early "
		       "%.1f%%)\n",
		       100 * rates[i], 100 * halted[i],
		       100.0 * (t.halted[0] + t.halted[1]) / (REHEARSALS / 2));
	}
	/* Within the tolerance: a noisier treated ring is not halted for it. */
	assert_true(halted[0] <= 0.05);
	for (int i = 1; i < 4; i++)
		assert_true(halted[i] >= halted[i - 1]);
	/* A 1 % file sits at the broad/GA limit: it is halted, or held in
	 * broad unable to prove itself below the limit, never completed. */
	assert_true(halted[2] >= 0.90);
	assert_true(stopped[2] >= 0.99);
}

/* The early ring alone, worst case for promotion: bake already met at every
 * look, so any lucky look could promote. 25 outcomes per look. */
static void test_sim_early_ring_detection(void **state)
{
	(void)state;
	struct rng g = {0x5eed0005};
	int by500 = 0, by1000 = 0, promoted = 0, false_halts = 0;
	for (int i = 0; i < 2 * REHEARSALS; i++) {
		int bad = i < REHEARSALS;
		struct gate_policy p = pol(EARLY);
		struct gate_inputs in = {.control = 25000, .silence_counted = 1};
		for (int a = 0; a < 25000; a++)
			in.control_failed += rng_bernoulli(&g, P_BG);
		in.bake_elapsed_s = p.min_bake_s;
		while (in.treated < 1000) {
			for (int a = 0; a < 25; a++) {
				if (rng_bernoulli(&g, P_BG) || (bad && rng_bernoulli(&g, 0.02)))
					in.crashed++;
				else
					in.healthy++;
			}
			in.treated += 25;
			struct gate_result r;
			gate_decide(&p, &in, &r);
			if (r.decision == GATE_HALT) {
				if (!bad) {
					false_halts++;
				} else {
					by500 += in.treated <= 500;
					by1000++;
				}
				break;
			}
			if (r.decision == GATE_PROMOTE) {
				promoted += bad;
				break;
			}
		}
	}
	printf("# early ring alone (default policy, control 25000 at %.1f%%, 25 per look, "
	       "%d rehearsals each):\n#   2%% file halted by 500 treated %.1f%%, by 1000 "
	       "%.1f%%, promoted %.1f%%; good file falsely halted %.1f%%\n",
	       100 * P_BG, REHEARSALS, 100.0 * by500 / REHEARSALS, 100.0 * by1000 / REHEARSALS,
	       100.0 * promoted / REHEARSALS, 100.0 * false_halts / REHEARSALS);
	assert_true(by1000 >= REHEARSALS * 95 / 100);
	assert_true(promoted <= REHEARSALS * 5 / 100);
	assert_true(false_halts <= REHEARSALS * 5 / 100);
}

/* 100,000 agents in rings of 1,000 / 10,000 / 40,000 / 49,000, treated
 * counts cumulative: background noise alone reaches early's cap of 10 raw
 * reports in most rehearsals, so an absolute cap would halt good files; the
 * cap counts only reports beyond what the control explains. */
static void test_sim_large_fleet(void **state)
{
	(void)state;
	enum { REPS = 200 };
	struct rollout_tally t;
	run_fleet(&fleet_large, 0.0, REPS, 0x5eed0020, &t);
	int halted = t.halted[0] + t.halted[1] + t.halted[2] + t.halted[3];
	printf("#   => false halts %.1f%% (must be <= 5%%); raw reports reached a ring's hard "
	       "cap in %.1f%% of rehearsals\n",
	       100.0 * halted / REPS, 100.0 * t.abs_cap / REPS);
	assert_true(halted <= REPS * 5 / 100);
	assert_true(t.completed >= REPS * 95 / 100);
	/* The setting is sensitive: an absolute cap would have tripped. */
	assert_true(t.abs_cap >= REPS / 2);

	run_fleet(&fleet_large, 0.02, REPS, 0x5eed0021, &t);
	printf("#   => 2%% file halted before leaving early %.1f%% (must be >= 95%%)\n",
	       100.0 * (t.halted[0] + t.halted[1]) / REPS);
	assert_true(t.halted[0] + t.halted[1] >= REPS * 95 / 100);

	run_fleet(&fleet_large, 1.0, REPS, 0x5eed0022, &t);
	printf("#   => crash-everything file halted in canary %d of %d, at most %lld treated\n",
	       t.halted[0], REPS, (long long)t.treated_at_halt_max);
	assert_int_equal(t.halted[0], REPS);
	assert_true(t.treated_at_halt_max <= 50); /* the first look's batch */
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
	        cmocka_unit_test(test_sprt_known),
	        cmocka_unit_test(test_zero_treated),
	        cmocka_unit_test(test_all_crashed),
	        cmocka_unit_test(test_all_silent),
	        cmocka_unit_test(test_control_zero_failures),
	        cmocka_unit_test(test_no_control),
	        cmocka_unit_test(test_hard_cap),
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
	        cmocka_unit_test(test_sim_two_percent_file),
	        cmocka_unit_test(test_sim_crash_everything),
	        cmocka_unit_test(test_sim_operating_characteristic),
	        cmocka_unit_test(test_sim_early_ring_detection),
	        cmocka_unit_test(test_sim_large_fleet),
	        cmocka_unit_test(test_sim_repeated_looks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
