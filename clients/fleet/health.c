/* fb-fleet's health signals: the noise model and the contents' health
 * behaviours turned into one heartbeat's `health` object. No state: every
 * draw is a pure function of (seed, agent, what), so the fleet keeps only a
 * heartbeat number and the start of the interval per agent. */
#include "health.h"

#include <math.h>
#include <string.h>

#define FH_MAX_COUNT 1000000000ULL   /* per channel counter (PROTOCOL.md) */
#define FH_MAX_RSS   1099511627776.0 /* KiB, 2^40 */
#define FH_MAX_CPU   100000.0        /* per cent of one CPU */
#define FH_MAX_IVAL  86400

/* What a draw is for: the tag in the top byte of its key. */
enum { TAG_AGENT = 1, TAG_MEMBER = 2, TAG_BEAT = 3 };
/* Signals of the per-agent levels and the per-heartbeat draws; channel
 * signals add the channel index. */
enum {
	SG_CPU = 0,
	SG_CPU_P95,
	SG_BURST,
	SG_HOST,
	SG_RSS,
	SG_SPIKE = 8, /* + channel, like the ones below */
	SG_EVALS = 16,
	SG_ERRORS = 24,
	SG_TIMEOUTS = 32,
	SG_DETECTIONS = 40,
	SG_BLOCKS = 48,
	SG_DET_BURST = 56,
	SG_SECOND = 100, /* + any of the above: a second draw of the same thing */
};

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Uniform in (0, 1) for (seed, agent, key). */
static double unif(uint64_t seed, int64_t agent, uint64_t key)
{
	uint64_t h = mix64(seed ^ mix64(mix64((uint64_t)agent) + key));
	return ((double)(h >> 11) + 0.5) / 9007199254740992.0;
}

static uint64_t key(int tag, uint64_t hi, uint64_t lo)
{
	return (uint64_t)tag << 56 | (hi & 0xffffffffffULL) << 16 | (lo & 0xffff);
}

/* Standard normal (Box-Muller) for (seed, agent, key): the uniforms of k and
 * of k with bit 15 set (signal ids stay below it). */
static double normal(uint64_t seed, int64_t agent, uint64_t k)
{
	double u1 = unif(seed, agent, k), u2 = unif(seed, agent, k ^ 0x8000);
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* Poisson with mean lambda from one uniform u (inversion below 30, a
 * rounded normal from z above). */
static uint64_t poisson(double lambda, double u, double z)
{
	if (!(lambda > 0))
		return 0;
	if (lambda >= 30) {
		double x = floor(lambda + sqrt(lambda) * z + 0.5);
		return x < 0 ? 0 : x > (double)FH_MAX_COUNT ? FH_MAX_COUNT : (uint64_t)x;
	}
	double p = exp(-lambda), F = p;
	uint64_t k = 0;
	while (u > F && k < 1000) {
		k++;
		p *= lambda / (double)k;
		F += p;
	}
	return k;
}

/* x rounded down or up, up with probability its fraction (unbiased). */
static double sround(double x, double u)
{
	return floor(x + u);
}

static double clamp(double x, double lo, double hi)
{
	return x < lo ? lo : x > hi ? hi : x;
}

int fhealth_member(const struct scenario *s, uint64_t seed, int64_t index, int plat, int c, int b)
{
	if (c < 0 || c >= s->n_contents || b < 0 || b >= SCN_N_BEHAVIOURS)
		return 0;
	const struct scn_behaviour *h = &s->contents[c].health[b];
	if (!h->on || (plat >= 0 && !(h->platform_mask & (1u << plat))))
		return 0;
	return unif(seed, index, key(TAG_MEMBER, (uint64_t)c, (uint64_t)b)) < h->share;
}

/* 1 when heartbeat n of an agent falls in a burst: one starts at each
 * heartbeat with probability p (draw sig) and lasts 1..beats heartbeats
 * (uniform, draw sig + SG_SECOND), so n is in one when a burst started j
 * heartbeats earlier and lasts more than j. Stateless, at most 2 x beats
 * draws. */
static int in_burst(uint64_t seed, int64_t id, uint64_t n, int sig, double p, int beats)
{
	for (uint64_t j = 0; p > 0 && j < (uint64_t)beats && j <= n; j++)
		if (unif(seed, id, key(TAG_BEAT, n - j, (uint64_t)sig)) < p &&
		    floor(unif(seed, id, key(TAG_BEAT, n - j, (uint64_t)sig + SG_SECOND)) *
		          beats) >= (double)j)
			return 1;
	return 0;
}

/* The share of agent a's interval during which behaviour b of channel k's
 * content was on (0: not on at all), or -1 when it does not apply. */
static double on_share(const struct scenario *s, uint64_t seed, const struct fhealth_agent *a,
                       int k, int b)
{
	int c = a->content[k];
	if (!a->armed || !(a->channels & (1u << k)) || c < 0 || c == s->ch[k].baseline ||
	    !fhealth_member(s, seed, a->index, a->plat, c, b))
		return -1;
	double on = a->applied_s[k] - s->contents[c].health[b].after_s;
	if (on <= 0)
		return 0;
	return a->interval_s > 0 && on < a->interval_s ? on / a->interval_s : 1;
}

/* An agent's own level of a signal: its median times exp(spread x N(0,1)),
 * once per agent (and channel). */
static double level(const struct scn_signal *g, uint64_t seed, int64_t agent, int sig)
{
	return g->base * exp(g->spread * normal(seed, agent, key(TAG_AGENT, 0, (uint64_t)sig)));
}

void fhealth_sample(const struct scenario *s, uint64_t seed, const struct fhealth_agent *a,
                    struct fhealth *out)
{
	const struct scn_health *h = &s->health;
	int64_t id = a->index;
	uint64_t n = a->hb_no;
	double cap_cpu = fmin(100.0 * h->cpus, FH_MAX_CPU);
	memset(out, 0, sizeof *out);
	out->interval_s = (uint32_t)clamp(floor(a->interval_s + 0.5), 1, FH_MAX_IVAL);
	double per = a->interval_s > 0 ? a->interval_s / 60.0 : 0; /* minutes covered */

	/* agent CPU: one per-agent level for mean and p95, a jitter each */
	double cpu_lvl = exp(h->agent_cpu.spread * normal(seed, id, key(TAG_AGENT, 0, SG_CPU)));
	double mean = h->agent_cpu.base * cpu_lvl *
	              exp(h->agent_cpu.jitter * normal(seed, id, key(TAG_BEAT, n, SG_CPU)));
	double p95 = h->agent_cpu_p95 * cpu_lvl *
	             exp(h->agent_cpu.jitter * normal(seed, id, key(TAG_BEAT, n, SG_CPU_P95)));
	if (in_burst(seed, id, n, SG_BURST, h->burst_probability, h->burst_beats))
		p95 = fmax(p95,
		           h->burst_p95 * exp(h->agent_cpu.jitter *
		                              normal(seed, id, key(TAG_BEAT, n, SG_BURST + 200))));
	double quiet_mean = mean;
	for (int k = 0; k < s->n_channels; k++) {
		double on = on_share(s, seed, a, k, SCN_CPU_SPIKE);
		if (on <= 0)
			continue;
		double lvl = s->contents[a->content[k]].health[SCN_CPU_SPIKE].value *
		             exp(0.05 * normal(seed, id, key(TAG_BEAT, n, SG_SPIKE + k)));
		if (lvl > mean)
			mean += (lvl - mean) * on;
		if (on >= 0.05) /* busy for more than 5 % of the interval */
			p95 = fmax(p95, lvl);
		out->behaviours |= 1u << SCN_CPU_SPIKE;
	}
	mean = clamp(mean, 0, cap_cpu);
	p95 = clamp(fmax(p95, mean), 0, cap_cpu);
	double u_mean = unif(seed, id, key(TAG_BEAT, n, SG_CPU + SG_SECOND));
	out->agent_cpu_mean = (uint32_t)clamp(sround(mean, u_mean), 0, cap_cpu);
	out->agent_cpu_p95 = (uint32_t)clamp(floor(p95 + 0.5), out->agent_cpu_mean, cap_cpu);

	/* host CPU: its own level and jitter plus what the agent took extra */
	double host =
	        level(&h->host_cpu, seed, id, SG_HOST) *
	                exp(h->host_cpu.jitter * normal(seed, id, key(TAG_BEAT, n, SG_HOST))) +
	        (mean - quiet_mean) / h->cpus;
	out->host_cpu = (uint32_t)clamp(floor(host + 0.5), 0, 100);

	/* resident memory: level x jitter, plus every leak since the later of
	 * its start and the agent's own */
	double rss = level(&h->rss_kb, seed, id, SG_RSS) *
	             exp(h->rss_kb.jitter * normal(seed, id, key(TAG_BEAT, n, SG_RSS)));
	for (int k = 0; k < s->n_channels; k++) {
		if (on_share(s, seed, a, k, SCN_MEMORY_LEAK) <= 0)
			continue;
		const struct scn_behaviour *b = &s->contents[a->content[k]].health[SCN_MEMORY_LEAK];
		double t = fmin(a->applied_s[k] - b->after_s, a->up_s);
		rss += b->value * fmax(t, 0) / 60.0;
		out->behaviours |= 1u << SCN_MEMORY_LEAK;
	}
	out->agent_rss_kb = (uint64_t)clamp(floor(rss + 0.5), 0, FH_MAX_RSS);

	/* per channel with content: evaluations, failures, detections */
	for (int k = 0; k < s->n_channels; k++) {
		if (!(a->channels & (1u << k)))
			continue;
		struct fhealth_channel *c = &out->ch[k];
		out->channels |= 1u << k;
		double ev = level(&h->evals, seed, id, SG_EVALS + k) * per *
		            exp(h->evals.jitter * normal(seed, id, key(TAG_BEAT, n, SG_EVALS + k)));
		c->evals = (uint64_t)clamp(
		        sround(ev, unif(seed, id, key(TAG_BEAT, n, SG_EVALS + k + SG_SECOND))), 0,
		        (double)FH_MAX_COUNT);
		/* a host's (channel's) own error level: a few flaky hosts */
		double flaky = exp(h->error_spread *
		                   normal(seed, id, key(TAG_AGENT, 0, (uint64_t)SG_ERRORS + k)));
		double err = h->error_rate * flaky, on = on_share(s, seed, a, k, SCN_EVAL_ERRORS);
		if (on > 0) {
			err += s->contents[a->content[k]].health[SCN_EVAL_ERRORS].value * on;
			out->behaviours |= 1u << SCN_EVAL_ERRORS;
		}
		err = fmin(err, 1.0);
		c->errors = poisson((double)c->evals * err,
		                    unif(seed, id, key(TAG_BEAT, n, SG_ERRORS + k)),
		                    normal(seed, id, key(TAG_BEAT, n, SG_ERRORS + k + SG_SECOND)));
		c->errors = c->errors > c->evals ? c->evals : c->errors;
		c->timeouts =
		        poisson((double)c->evals * fmin(h->timeout_rate * flaky, 1.0),
		                unif(seed, id, key(TAG_BEAT, n, SG_TIMEOUTS + k)),
		                normal(seed, id, key(TAG_BEAT, n, SG_TIMEOUTS + k + SG_SECOND)));
		if (c->timeouts > c->evals - c->errors)
			c->timeouts = c->evals - c->errors;
		double mult = in_burst(seed, id, n, SG_DET_BURST + k, h->det_burst_probability,
		                       h->det_burst_beats)
		                      ? h->det_burst_factor
		                      : 1;
		on = on_share(s, seed, a, k, SCN_FP_STORM);
		if (on > 0) {
			mult *= 1 +
			        (s->contents[a->content[k]].health[SCN_FP_STORM].value - 1) * on;
			out->behaviours |= 1u << SCN_FP_STORM;
		}
		c->detections =
		        poisson(level(&h->detections, seed, id, SG_DETECTIONS + k) * per * mult,
		                unif(seed, id, key(TAG_BEAT, n, SG_DETECTIONS + k)),
		                normal(seed, id, key(TAG_BEAT, n, SG_DETECTIONS + k + SG_SECOND)));
		c->blocks = poisson(level(&h->blocks, seed, id, SG_BLOCKS + k) * per * mult,
		                    unif(seed, id, key(TAG_BEAT, n, SG_BLOCKS + k)),
		                    normal(seed, id, key(TAG_BEAT, n, SG_BLOCKS + k + SG_SECOND)));
	}
}

enum fb_rc fhealth_json(const struct scenario *s, const struct fhealth *h, struct fb_buf *b)
{
	enum fb_rc rc =
	        fb_buf_printf(b,
	                      "{\"interval_s\":%u,\"agent_cpu_p95\":%u,\"agent_cpu_mean\":%u,"
	                      "\"host_cpu\":%u,\"agent_rss_kb\":%llu",
	                      h->interval_s, h->agent_cpu_p95, h->agent_cpu_mean, h->host_cpu,
	                      (unsigned long long)h->agent_rss_kb);
	for (int k = 0, n = 0; !rc && k < s->n_channels; k++) {
		const struct fhealth_channel *c = &h->ch[k];
		if (!(h->channels & (1u << k)))
			continue;
		rc = fb_buf_printf(
		        b,
		        "%s\"%u\":{\"evals\":%llu,\"errors\":%llu,\"timeouts\":%llu,"
		        "\"detections\":%llu,\"blocks\":%llu}",
		        n++ ? "," : ",\"channels\":{", s->ch[k].id, (unsigned long long)c->evals,
		        (unsigned long long)c->errors, (unsigned long long)c->timeouts,
		        (unsigned long long)c->detections, (unsigned long long)c->blocks);
	}
	if (!rc && h->channels)
		rc = fb_buf_addstr(b, "}");
	return rc ? rc : fb_buf_addstr(b, "}");
}
