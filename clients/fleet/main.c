/* fb-fleet: rehearse a rollout against a real firebreakd with N simulated
 * agents. Sets the server up through its API (rings, enrollment tokens,
 * channel, uploads, the baseline rollout to GA), runs the rollout under test,
 * and prints a summary; the exit status says whether the scenario's
 * expectations held. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fbclient.h"
#include "fleet.h"
#include "outcome.h"
#include "scenario.h"

#define MAX_UPLOAD (20 * 1024 * 1024) /* bytes of one upload body file */
#define MAX_ANSWER (4 * 1024 * 1024)  /* bytes of an admin API answer */

struct opts {
	const char *server, *token, *token_file, *root, *templates, *scenario, *status_file,
	        *content_dir, *agent_server, *cacert;
	int64_t agents, channel, steady_s;
	double time_scale;
	uint64_t seed;
	int json, verbose, inflight, protocol_v1;
};

static void die(const char *fmt, ...) FB_PRINTF(1, 2) __attribute__((noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("fb-fleet: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: fb-fleet --server URL --token TOKEN|--token-file FILE --root ROOT.json\n"
	        "                --templates DIR --scenario FILE [options]\n\n"
	        "Rehearse a rollout: N simulated agents (one process, libcurl multi) against a "
	        "real\n"
	        "firebreakd. Sets up rings, enrollment tokens, the channel and uploads through the "
	        "API\n"
	        "with an admin token, rolls the scenario's baseline out to GA, then runs the "
	        "rollout\n"
	        "under test and reports (scenario format: clients/fleet/README.md).\n\n"
	        "  --agents N         fleet size (default: the scenario's ring sizes; rings keep "
	        "their shares)\n"
	        "  --time-scale X     stretch every scenario duration by X (default max(1, "
	        "agents/1250))\n"
	        "  --channel ID       use channel ids ID, ID+1, ... instead of the scenario's\n"
	        "  --content-dir DIR  resolve the scenario's upload files in DIR (default: its "
	        "folder)\n"
	        "  --seed S           random seed (default 1): same seed, same victims\n"
	        "  --inflight N       concurrent requests (default 64)\n"
	        "  --status-file F    rewrite F with the phase and the rollout's id, state and "
	        "ring\n"
	        "  --steady-s S       after the baselines, S seconds (not scaled) of steady state "
	        "with\n"
	        "                     no rollout, measured (\"steady\" in the summary), before the "
	        "test\n"
	        "  --agent-server URL the agents' endpoint, when it is not --server (a load "
	        "balancer\n"
	        "                     that keeps the agent API apart from the operator API)\n"
	        "  --cacert FILE      trust the CA certificates in FILE for https\n"
	        "  --json             print one JSON summary object on stdout\n"
	        "  --protocol-v1      never send the gate v2 fields (platform, faulting_channel,\n"
	        "                     the baselines' holdout/watch keys) nor the heartbeat's "
	        "health\n"
	        "                     to a server without them\n"
	        "  --verbose          progress on stderr\n\n"
	        "exit status: 0 expectations held, 1 an expectation failed, 2 usage or set-up "
	        "error\n");
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
	        {"server", 1, 0, 's'},      {"token", 1, 0, 't'},        {"token-file", 1, 0, 'T'},
	        {"root", 1, 0, 'r'},        {"templates", 1, 0, 'p'},    {"scenario", 1, 0, 'f'},
	        {"agents", 1, 0, 'n'},      {"time-scale", 1, 0, 'x'},   {"channel", 1, 0, 'c'},
	        {"seed", 1, 0, 'S'},        {"inflight", 1, 0, 'i'},     {"status-file", 1, 0, 'F'},
	        {"content-dir", 1, 0, 'D'}, {"agent-server", 1, 0, 'A'}, {"cacert", 1, 0, 'C'},
	        {"json", 0, 0, 'j'},        {"protocol-v1", 0, 0, '1'},  {"verbose", 0, 0, 'v'},
	        {"steady-s", 1, 0, 'W'},    {"help", 0, 0, 'h'},         {0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	o->seed = 1;
	int ch;
	int64_t v;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 's': o->server = optarg; break;
		case 't': o->token = optarg; break;
		case 'T': o->token_file = optarg; break;
		case 'r': o->root = optarg; break;
		case 'p': o->templates = optarg; break;
		case 'f': o->scenario = optarg; break;
		case 'F': o->status_file = optarg; break;
		case 'D': o->content_dir = optarg; break;
		case 'A': o->agent_server = optarg; break;
		case 'C': o->cacert = optarg; break;
		case 'j': o->json = 1; break;
		case '1': o->protocol_v1 = 1; break;
		case 'v': o->verbose = 1; break;
		case 'n':
			if (fb_parse_i64(optarg, 1, 1000000, &o->agents))
				die("--agents must be 1..1000000");
			break;
		case 'W':
			if (fb_parse_i64(optarg, 0, 86400, &o->steady_s))
				die("--steady-s must be 0..86400");
			break;
		case 'c':
			if (fb_parse_i64(optarg, 1, 0xffffffffLL, &o->channel))
				die("--channel must be 1..4294967295");
			break;
		case 'S':
			if (fb_parse_i64(optarg, 0, INT64_MAX, &v))
				die("--seed must be an integer >= 0");
			o->seed = (uint64_t)v;
			break;
		case 'i':
			if (fb_parse_i64(optarg, 1, 4096, &v))
				die("--inflight must be 1..4096");
			o->inflight = (int)v;
			break;
		case 'x': {
			char *end;
			o->time_scale = strtod(optarg, &end);
			if (*end || !(o->time_scale > 0 && o->time_scale <= 1000))
				die("--time-scale must be a number in (0, 1000]");
			break;
		}
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc || !o->server || (!o->token && !o->token_file) || !o->root ||
	    !o->templates || !o->scenario) {
		usage(stderr);
		exit(2);
	}
}

/* ---- the admin API (blocking; the fleet pauses for a few ms) ------------- */

/* One channel's rollout under test, as followed through the admin API. */
struct ro {
	int64_t id;          /* 0: none (refused at upload) */
	json_t *rollout;     /* last GET /v1/rollouts/{id} */
	json_t *states_seen; /* the states it was seen in, in order */
	int64_t terminal_ms; /* when it was first seen ended, 0: not yet */
};

struct app {
	struct opts o;
	struct scenario s;
	struct fbc *admin;
	struct fleet *fleet;
	json_t *uploads[SCN_MAX_CHANNELS]; /* per channel: content name -> upload result */
	char sha[SCN_MAX_CONTENTS][FB_SHA256_HEX_LEN + 1];
	struct ro ro[SCN_MAX_CHANNELS];
	int ring_seen;
	int64_t last_check_ms, started_ms;
	int64_t api_errors;
	int64_t steady_until;  /* monotonic ms the steady window ends */
	json_t *phases;        /* phase name -> seconds it took */
	int64_t phase_started; /* monotonic ms the current phase began */
};

/* The current phase ended: record how long it took under name, start the next. */
static void phase_done(struct app *A, const char *name)
{
	int64_t now = fb_mono_ms();
	json_object_set_new(A->phases, name, json_real((double)(now - A->phase_started) / 1000.0));
	A->phase_started = now;
}

/* Send a JSON request; *answer (new reference) on a 2xx; otherwise the status
 * and the error are in resp. Returns the HTTP status, 0 on transport failure. */
static long api(struct app *A, const char *method, const char *path, const char *body, size_t len,
                json_t **answer, struct fbc_resp *resp)
{
	struct fb_err err;
	*answer = NULL;
	struct fbc_req rq = {.method = method,
	                     .path = path,
	                     .body = body,
	                     .body_len = body ? len : 0,
	                     .auth = 1,
	                     .max_body = MAX_ANSWER};
	fbc_resp_init(resp);
	if (fbc_do(A->admin, &rq, resp, &err)) {
		snprintf(resp->err_msg, sizeof resp->err_msg, "%s", err.msg);
		A->api_errors++;
		return 0;
	}
	if (resp->status >= 200 && resp->status < 300)
		*answer = json_loadb(resp->body.data, resp->body.len, 0, NULL);
	return resp->status;
}

static long api_json(struct app *A, const char *method, const char *path, json_t *body,
                     json_t **answer, struct fbc_resp *resp)
{
	char *s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!s)
		die("out of memory");
	long st = api(A, method, path, s, strlen(s), answer, resp);
	free(s);
	return st;
}

/* Must succeed (2xx, or one of the extra accepted statuses). */
static json_t *api_must(struct app *A, const char *method, const char *path, json_t *body,
                        long also)
{
	struct fbc_resp r;
	json_t *ans;
	long st = api_json(A, method, path, body, &ans, &r);
	if (!ans && st != also)
		die("%s %s: %ld %s: %s", method, path, st, r.err_code, r.err_msg);
	fbc_resp_cleanup(&r);
	return ans;
}

/* The scenario's tenants: POST /v1/tenants with default_mode early (an
 * early tenant) or ga (the others). One that exists already (409) must
 * have that default_mode. */
static void setup_tenants(struct app *A)
{
	const struct scenario *s = &A->s;
	for (int t = 0; t < s->n_tenants; t++) {
		const struct scn_tenant *q = &s->tenants[t];
		const char *want = q->mode == SCN_EARLY ? "early" : "ga";
		char reason[160], path[128];
		snprintf(reason, sizeof reason, "fb-fleet rehearsal %s", s->name);
		json_t *ans = api_must(A, "POST", "/v1/tenants",
		                       json_pack("{s:s,s:s,s:s}", "name", q->name, "default_mode",
		                                 want, "reason", reason),
		                       409);
		if (!ans) { /* exists: it must behave as the scenario says */
			struct fbc_resp r;
			snprintf(path, sizeof path, "/v1/tenants/%s", q->name);
			if (!api(A, "GET", path, NULL, 0, &ans, &r) || !ans)
				die("tenant %s exists but GET %s: %ld %s: %s", q->name, path,
				    r.status, r.err_code, r.err_msg);
			fbc_resp_cleanup(&r);
			const char *have = json_string_value(json_object_get(ans, "default_mode"));
			if (!have || strcmp(have, want) != 0)
				die("tenant %s exists with default_mode %s; the scenario needs %s",
				    q->name, have ? have : "(none)", want);
		}
		json_decref(ans);
	}
}

/* PUT the policy of every tenant of mode m (delayed or paused) on each
 * channel of the scenario. */
static void put_policies(struct app *A, enum scn_mode m)
{
	const struct scenario *s = &A->s;
	for (int t = 0; t < s->n_tenants; t++) {
		const struct scn_tenant *q = &s->tenants[t];
		if (q->mode != m)
			continue;
		for (int k = 0; k < s->n_channels; k++) {
			char reason[160], path[128];
			snprintf(reason, sizeof reason, "fb-fleet rehearsal %s", s->name);
			snprintf(path, sizeof path, "/v1/tenants/%s/policies", q->name);
			json_t *body =
			        json_pack("{s:I,s:s,s:s}", "channel", (json_int_t)s->ch[k].id,
			                  "mode", scn_mode_names[m], "reason", reason);
			if (m == SCN_DELAYED)
				json_object_set_new(body, "delay_s", json_integer(q->delay_s));
			json_decref(api_must(A, "PUT", path, body, 0));
			if (A->o.verbose)
				fprintf(stderr, "fb-fleet: tenant %s %s on channel %u\n", q->name,
				        scn_mode_names[m], s->ch[k].id);
		}
	}
}

static void setup(struct app *A)
{
	const struct scenario *s = &A->s;
	for (int k = 0; k < s->n_channels; k++)
		json_decref(api_must(A, "POST", "/v1/channels",
		                     json_pack("{s:I,s:s}", "id", (json_int_t)s->ch[k].id, "name",
		                               s->ch[k].name),
		                     409));
	json_t *rings = json_array();
	for (int i = 0; i < s->n_rings; i++) {
		char tag[SCN_MAX_NAME + 8];
		snprintf(tag, sizeof tag, "ring=%s", s->rings[i].name);
		json_t *sel = i == s->n_rings - 1 ? json_pack("{s:b}", "rest", 1)
		                                  : json_pack("{s:s}", "tag", tag);
		json_array_append_new(
		        rings, json_pack("{s:s,s:o}", "name", s->rings[i].name, "selector", sel));
	}
	json_decref(api_must(A, "PUT", "/v1/rings", json_pack("{s:o}", "rings", rings), 0));
	setup_tenants(A);
	/* one enrollment token per tenant and ring (the tenant's agents of that ring) */
	for (int t = 0; t <= s->n_tenants; t++) {
		const char *tn = t < s->n_tenants ? s->tenants[t].name : NULL;
		for (int i = 0; i < s->n_rings; i++) {
			int64_t counts[SCN_MAX_TENANTS + 1] = {s->rings[i].agents};
			char name[256];
			scn_ring_tenants(s, i, counts);
			if (counts[t] == 0)
				continue;
			snprintf(name, sizeof name, "fleet-%s-%s%s%s", s->name, tn ? tn : "",
			         tn ? "-" : "", s->rings[i].name);
			json_t *body =
			        json_pack("{s:s,s:{s:s},s:I}", "name", name, "tags", "ring",
			                  s->rings[i].name, "max_uses", (json_int_t)counts[t]);
			if (tn)
				json_object_set_new(body, "tenant", json_string(tn));
			json_t *tk = api_must(A, "POST", "/v1/enrollment-tokens", body, 0);
			const char *tok = json_string_value(json_object_get(tk, "token"));
			if (!tok || fleet_set_ring_token(A->fleet, t, i, tok))
				die("enrollment token for ring %s%s%s: unexpected answer",
				    s->rings[i].name, tn ? " of tenant " : "", tn ? tn : "");
			json_decref(tk);
		}
	}
	for (int k = 0; k < s->n_channels; k++)
		A->uploads[k] = json_object();
	for (int i = 0; i < s->n_contents; i++) {
		const struct scn_content *c = &s->contents[i];
		json_t *up = A->uploads[c->channel];
		unsigned char *body = NULL;
		size_t len = 0;
		if (fb_file_read(c->upload, MAX_UPLOAD, &body, &len))
			die("content %s: cannot read %s", c->name, c->upload);
		struct fbc_resp r;
		json_t *ans;
		long st = api(A, "POST", "/v1/content", (const char *)body, len, &ans, &r);
		free(body);
		const char *sha = json_string_value(json_object_get(ans, "sha256"));
		if (sha && fb_is_sha256_hex(sha)) {
			snprintf(A->sha[i], sizeof A->sha[i], "%s", sha);
			fleet_set_content(A->fleet, i, sha);
			json_object_set_new(up, c->name,
			                    json_pack("{s:b,s:I,s:s}", "accepted", 1, "status",
			                              (json_int_t)st, "sha256", sha));
		} else {
			json_object_set_new(up, c->name,
			                    json_pack("{s:b,s:I,s:s,s:s}", "accepted", 0, "status",
			                              (json_int_t)st, "error", r.err_code,
			                              "message", r.err_msg));
			if (i == s->ch[c->channel].baseline)
				die("baseline %s refused at upload: %ld %s", c->name, st,
				    r.err_msg);
		}
		json_decref(ans);
		fbc_resp_cleanup(&r);
	}
}

/* The status file follows the first channel's rollout. */
static void write_status(struct app *A, const char *phase)
{
	if (!A->o.status_file)
		return;
	const struct ro *ro = &A->ro[0];
	json_t *st =
	        json_pack("{s:s,s:I,s:O}", "phase", phase, "rollout", (json_int_t)ro->id, "state",
	                  ro->rollout ? json_object_get(ro->rollout, "state") : json_null());
	json_object_set(st, "ring_index",
	                ro->rollout ? json_object_get(ro->rollout, "ring_index") : json_null());
	char *txt = json_dumps(st, JSON_COMPACT);
	json_decref(st);
	if (txt && fb_file_write_atomic(A->o.status_file, txt, strlen(txt), 0644))
		fprintf(stderr, "fb-fleet: cannot write %s\n", A->o.status_file);
	free(txt);
}

static const char *state_of(const struct ro *ro)
{
	const char *s = json_string_value(json_object_get(ro->rollout, "state"));
	return s ? s : "";
}

/* Refresh ro->rollout (kept when the server does not answer: it may be
 * restarting) and note a state not seen before. */
static void refresh(struct app *A, struct ro *ro)
{
	char path[64];
	snprintf(path, sizeof path, "/v1/rollouts/%lld", (long long)ro->id);
	struct fbc_resp r;
	json_t *ans;
	api(A, "GET", path, NULL, 0, &ans, &r);
	fbc_resp_cleanup(&r);
	if (ans) {
		json_decref(ro->rollout);
		ro->rollout = ans;
	}
	const char *st = state_of(ro);
	json_t *last = json_array_get(ro->states_seen, json_array_size(ro->states_seen) - 1);
	if (st[0] && ro->states_seen && (!last || strcmp(json_string_value(last), st) != 0) &&
	    json_array_size(ro->states_seen) < 64)
		json_array_append_new(ro->states_seen, json_string(st));
}

/* Ended: watching is not (the gate still judges the file and may revert). */
static int terminal(const char *st)
{
	return !strcmp(st, "completed") || !strcmp(st, "halted") || !strcmp(st, "reverted") ||
	       !strcmp(st, "superseded");
}

static int tick_steady(void *ctx, struct fleet *f)
{
	struct app *A = ctx;
	(void)f;
	return fb_mono_ms() >= A->steady_until;
}

static int tick_enrolled(void *ctx, struct fleet *f)
{
	struct app *A = ctx;
	return fleet_enrolled(f) == A->s.agents;
}

/* Baselines: every channel's rollout completed (or it was GA already) and
 * every agent runs it. */
static int tick_baseline(void *ctx, struct fleet *f)
{
	struct app *A = ctx;
	int64_t now = fb_mono_ms();
	if (now - A->last_check_ms < 500)
		return 0;
	A->last_check_ms = now;
	int done = 1;
	for (int k = 0; k < A->s.n_channels; k++) {
		struct ro *ro = &A->ro[k];
		if (ro->id)
			refresh(A, ro);
		const char *st = ro->id ? state_of(ro) : "completed";
		if (ro->id && terminal(st) && strcmp(st, "completed"))
			die("the baseline rollout of channel %u ended %s: %s", A->s.ch[k].id, st,
			    json_string_value(json_object_get(ro->rollout, "state_reason")));
		done &= !strcmp(st, "completed") &&
		        fleet_running(f, A->s.ch[k].baseline, 1) == A->s.agents;
	}
	return done;
}

/* The rollouts under test: follow their rings, then let the fleet settle
 * for settle_s after the last one ended. */
static int tick_test(void *ctx, struct fleet *f)
{
	struct app *A = ctx;
	const struct scenario *s = &A->s;
	int64_t now = fb_mono_ms();
	if (now - A->last_check_ms < 500)
		return 0;
	A->last_check_ms = now;
	int64_t last_end = 0;
	int ended = 1;
	for (int k = 0; k < s->n_channels; k++) {
		struct ro *ro = &A->ro[k];
		if (!ro->id)
			continue;
		refresh(A, ro);
		if (!ro->terminal_ms && terminal(state_of(ro))) {
			ro->terminal_ms = now;
			fleet_rollout_active(f, k, 0);
		}
		ended &= ro->terminal_ms != 0;
		last_end = ro->terminal_ms > last_end ? ro->terminal_ms : last_end;
	}
	write_status(A, "test");
	int ri = (int)json_integer_value(json_object_get(A->ro[0].rollout, "ring_index"));
	while (A->ring_seen < ri && A->ring_seen + 1 < s->n_rings)
		fleet_ring_entered(f, ++A->ring_seen);
	if (!ended)
		return 0;
	/* a completed file reaches the delayed tenants their delay later */
	int completed = 0;
	for (int k = 0; k < s->n_channels; k++)
		completed |= A->ro[k].id && !strcmp(state_of(&A->ro[k]), "completed");
	int64_t settled = now - last_end - (completed ? scn_max_delay_s(s) * 1000 : 0);
	int64_t settle = (int64_t)(s->settle_s * 1000);
	if (settled < settle)
		return 0;
	int64_t alive = s->agents - fleet_dead(f);
	int64_t paused = fleet_live_in_mode(f, SCN_PAUSED); /* they stay on the baseline */
	int all = 1;
	for (int k = 0; k < s->n_channels; k++) {
		const struct ro *ro = &A->ro[k];
		const struct scn_channel *ch = &s->ch[k];
		if (!ro->id)
			continue;
		int64_t want = !strcmp(state_of(ro), "completed")
		                       ? fleet_running(f, ch->rollout, 1) + paused
		                       : fleet_running(f, ch->baseline, 1);
		all &= want >= alive;
	}
	return all || settled > 4 * settle + 10000;
}

static json_t *halt_inputs(const struct ro *ro)
{
	json_t *ev = json_object_get(ro->rollout, "evaluations");
	size_t i;
	json_t *e;
	json_array_foreach(ev, i, e)
	{
		if (json_is_string(json_object_get(e, "decision")) &&
		    !strcmp(json_string_value(json_object_get(e, "decision")), "HALT"))
			return json_incref(json_object_get(json_object_get(e, "inputs"), "inputs"));
	}
	return json_null();
}

/* The summary of channel k's rollout: the fields the expectations read
 * (scn_check) and the simulated agents' view (holdout, segments). */
static json_t *rollout_summary(struct app *A, int k)
{
	const struct scenario *s = &A->s;
	const struct scn_channel *ch = &s->ch[k];
	struct ro *r = &A->ro[k];
	const char *st = r->id ? state_of(r) : "rejected";
	const struct scn_content *t = &s->contents[ch->rollout];
	int bad = scn_content_bad(s, ch->rollout);
	int halted = !strcmp(st, "halted") || !strcmp(st, "reverted");
	json_t *exposure = json_object();
	for (int i = 0; i < s->n_contents; i++)
		if (s->contents[i].channel == k)
			json_object_set_new(exposure, s->contents[i].name,
			                    json_integer(fleet_exposure(A->fleet, i)));
	json_t *ro = json_pack("{s:I,s:I,s:s,s:s,s:s,s:O?,s:O?,s:O?,s:O?}", "id", (json_int_t)r->id,
	                       "channel", (json_int_t)ch->id, "channel_name", ch->name, "content",
	                       t->name, "state", st, "ring", json_object_get(r->rollout, "ring"),
	                       "ring_index", json_object_get(r->rollout, "ring_index"),
	                       "state_reason", json_object_get(r->rollout, "state_reason"),
	                       "states_seen", r->states_seen);
	json_t *to_halt = json_null();
	int64_t first = fleet_first_apply_ms(A->fleet, ch->rollout);
	json_t *fin = json_object_get(r->rollout, "finished");
	if (halted && first && json_is_integer(fin))
		to_halt = json_real(((double)json_integer_value(fin) * 1000.0 - (double)first) /
		                    1000.0);
	json_t *ri = json_object_get(r->rollout, "ring_index");
	int max_ring = !r->id ? -1 : json_is_integer(ri) ? (int)json_integer_value(ri) : 0;
	json_t *view = fleet_rollout_json(A->fleet, k, max_ring);
	json_error_t jerr;
	json_t *uploads = A->uploads[k]; /* stolen by the summary */
	A->uploads[k] = NULL;
	json_t *j = json_pack_ex(
	        &jerr, 0, "{s:o,s:o,s:o,s:I,s:o,s:I,s:o,s:I,s:o}", "rollout", ro, "uploads",
	        uploads ? uploads : json_object(), "exposure", exposure, "exposure_under_test",
	        (json_int_t)fleet_exposure(A->fleet, ch->rollout), "first_apply_to_halt_s", to_halt,
	        "on_bad_content", (json_int_t)(bad ? fleet_running(A->fleet, ch->rollout, 0) : 0),
	        "exposed_not_on_last_known_good",
	        halted ? json_integer(fleet_exposed_not_on(A->fleet, ch->rollout, ch->baseline))
	               : json_null(),
	        "false_halts", (json_int_t)(halted && !bad), "halt_inputs", halt_inputs(r));
	if (!j || !view)
		die("cannot build the summary: %s", j ? "out of memory" : jerr.text);
	json_object_update(j, view);
	json_decref(view);
	if (s->n_tenants) {
		/* the server's completion time (whole seconds): ga_history's "since" */
		int64_t end_ms = !strcmp(st, "completed") && json_is_integer(fin)
		                         ? json_integer_value(fin) * 1000
		                         : 0;
		json_object_set_new(j, "tenants", fleet_tenants_json(A->fleet, k, end_ms));
	}
	return j;
}

static json_t *platforms_json(const struct scenario *s)
{
	json_t *a = json_array();
	for (int p = 0; p < s->n_platforms; p++) {
		const struct scn_platform *q = &s->platforms[p];
		json_t *o = json_pack("{s:f}", "share", q->share);
		for (int f = 0; f < SCN_N_FACTS; f++)
			if (q->fact[f][0])
				json_object_set_new(o, scn_fact_names[f], json_string(q->fact[f]));
		json_array_append_new(a, o);
	}
	return a;
}

/* The whole summary: the fleet, every rollout in "rollouts", and the first
 * rollout's fields repeated at the top level (the single-channel form's
 * shape). */
static json_t *summary(struct app *A)
{
	const struct scenario *s = &A->s;
	json_t *rings = json_array();
	for (int i = 0; i < s->n_rings; i++)
		json_array_append_new(rings, json_pack("{s:s,s:I}", "name", s->rings[i].name,
		                                       "agents", (json_int_t)s->rings[i].agents));
	json_t *rollouts = json_array();
	for (int k = 0; k < s->n_channels; k++)
		json_array_append_new(rollouts, rollout_summary(A, k));
	json_t *j = json_pack("{s:s,s:I,s:f,s:o}", "scenario", s->name, "agents",
	                      (json_int_t)s->agents, "time_scale", s->time_scale, "rings", rings);
	if (!j)
		die("cannot build the summary: out of memory");
	if (s->n_platforms)
		json_object_set_new(j, "platforms", platforms_json(s));
	json_object_update(j, json_array_get(rollouts, 0));
	json_object_set_new(j, "rollouts", rollouts);
	json_t *fl = fleet_stats_json(A->fleet);
	json_object_set_new(j, "fleet", fl);
	json_object_set_new(j, "duration_s",
	                    json_real((double)(fb_mono_ms() - A->started_ms) / 1000.0));
	json_object_set(j, "crashed_agents", json_object_get(fl, "crashed_agents"));
	return j;
}

static void print_rollout(const struct app *A, FILE *o, const json_t *r)
{
	const json_t *ro = json_object_get(r, "rollout");
	const char *k;
	json_t *v;
	fprintf(o, "   rollout of %s", json_string_value(json_object_get(ro, "content")));
	if (A->s.n_channels > 1)
		fprintf(o, " on channel %s (%lld)",
		        json_string_value(json_object_get(ro, "channel_name")),
		        (long long)json_integer_value(json_object_get(ro, "channel")));
	fprintf(o, ": %s in ring %s", json_string_value(json_object_get(ro, "state")),
	        json_string_value(json_object_get(ro, "ring"))
	                ? json_string_value(json_object_get(ro, "ring"))
	                : "-");
	if (json_is_real(json_object_get(r, "first_apply_to_halt_s")))
		fprintf(o, ", halted %.1fs after the first apply",
		        json_real_value(json_object_get(r, "first_apply_to_halt_s")));
	fputc('\n', o);
	if (json_is_string(json_object_get(ro, "state_reason")))
		fprintf(o, "   reason: %.300s\n",
		        json_string_value(json_object_get(ro, "state_reason")));
	json_object_foreach((json_t *)json_object_get(r, "uploads"), k, v)
	{
		if (json_is_false(json_object_get(v, "accepted")))
			fprintf(o, "   upload of %s refused: %lld %s: %.300s\n", k,
			        (long long)json_integer_value(json_object_get(v, "status")),
			        json_string_value(json_object_get(v, "error")),
			        json_string_value(json_object_get(v, "message")));
	}
	fprintf(o, "   exposure (agents that ever applied):");
	json_object_foreach((json_t *)json_object_get(r, "exposure"), k, v)
	        fprintf(o, " %s %lld", k, (long long)json_integer_value(v));
	fprintf(o,
	        "\n   on bad content at the end: %lld; exposed but not back on last known good: "
	        "%lld\n",
	        (long long)json_integer_value(json_object_get(r, "on_bad_content")),
	        (long long)json_integer_value(
	                json_object_get(r, "exposed_not_on_last_known_good")));
	const json_t *h = json_object_get(r, "holdout");
	fprintf(o, "   holdout (never applied it while the rollout was active): %lld (",
	        (long long)json_integer_value(json_object_get(h, "agents")));
	size_t i;
	json_array_foreach(json_object_get(h, "rings"), i, v)
	        fprintf(o, "%s%s %lld of %lld", i ? ", " : "",
	                json_string_value(json_object_get(v, "ring")),
	                (long long)json_integer_value(json_object_get(v, "holdout")),
	                (long long)json_integer_value(json_object_get(v, "agents")));
	fprintf(o, ")\n");
	json_object_foreach((json_t *)json_object_get(r, "tenants"), k, v)
	{
		const char *c;
		json_t *n;
		const json_t *mode = json_object_get(v, "mode");
		fprintf(o, "   tenant %s (%s", k,
		        json_is_string(mode) ? json_string_value(mode) : "-");
		if (json_is_integer(json_object_get(v, "delay_s")))
			fprintf(o, " %llds",
			        (long long)json_integer_value(json_object_get(v, "delay_s")));
		fprintf(o, ", %lld agents): applied",
		        (long long)json_integer_value(json_object_get(v, "agents")));
		json_object_foreach(json_object_get(v, "applied"), c, n)
		        fprintf(o, " %s %lld", c, (long long)json_integer_value(n));
		fprintf(o, "; running");
		json_object_foreach(json_object_get(v, "running"), c, n)
		        fprintf(o, " %s %lld", c, (long long)json_integer_value(n));
		if (json_is_number(json_object_get(v, "first_apply_after_end_s")))
			fprintf(o, "; first apply %.1fs after completion",
			        json_number_value(json_object_get(v, "first_apply_after_end_s")));
		fputc('\n', o);
	}
	json_t *segs = json_object_get(r, "segments");
	json_object_foreach(segs, k, v)
	{
		const char *val;
		json_t *g;
		if (json_object_size(v) < 2)
			continue; /* one value: the whole fleet again */
		fprintf(o, "   by %s (agents/applied/crashed/caused):", k);
		json_object_foreach(v, val, g) fprintf(
		        o, " %s %lld/%lld/%lld/%lld", val,
		        (long long)json_integer_value(json_object_get(g, "agents")),
		        (long long)json_integer_value(json_object_get(g, "applied")),
		        (long long)json_integer_value(json_object_get(g, "crashed")),
		        (long long)json_integer_value(json_object_get(g, "content_crashed")));
		fputc('\n', o);
	}
}

static void print_human(const struct app *A, const json_t *j, int ok)
{
	const json_t *fl = json_object_get(j, "fleet");
	FILE *o = A->o.json ? stderr : stdout;
	json_t *v;
	size_t i;
	fprintf(o, "== rehearsal %s: %lld agents (", A->s.name, (long long)A->s.agents);
	for (int r = 0; r < A->s.n_rings; r++)
		fprintf(o, "%s%s %lld", r ? ", " : "", A->s.rings[r].name,
		        (long long)A->s.rings[r].agents);
	fprintf(o, "), time scale %.2f\n", A->s.time_scale);
	json_int_t false_halts = 0;
	json_array_foreach(json_object_get(j, "rollouts"), i, v)
	{
		print_rollout(A, o, v);
		false_halts += json_integer_value(json_object_get(v, "false_halts"));
	}
	fprintf(o,
	        "   crashed agents: %lld (content %lld, background %lld crashes), boot-loop "
	        "reverts %lld, dead %lld\n",
	        (long long)json_integer_value(json_object_get(fl, "crashed_agents")),
	        (long long)json_integer_value(json_object_get(fl, "content_crashes")),
	        (long long)json_integer_value(json_object_get(fl, "background_crashes")),
	        (long long)json_integer_value(json_object_get(fl, "boot_loop_reverts")),
	        (long long)json_integer_value(json_object_get(fl, "dead")));
	const json_t *rq = json_object_get(fl, "requests");
	fprintf(o, "   heartbeats: at most %.1fs late, %lld late by more than an interval%s\n",
	        json_real_value(json_object_get(rq, "heartbeat_lag_max_s")),
	        (long long)json_integer_value(
	                json_object_get(rq, "heartbeats_late_by_an_interval")),
	        json_real_value(json_object_get(rq, "heartbeat_lag_max_s")) > 2 * A->s.heartbeat_s
	                ? " - the simulator fell behind: raise --time-scale"
	                : "");
	const json_t *st = json_object_get(j, "steady");
	if (json_is_object(st)) {
		const json_t *rps = json_object_get(st, "rps"),
		             *lat = json_object_get(st, "latency_ms");
		fprintf(o,
		        "   steady state %.0fs: %.0f requests/s (heartbeat %.0f, poll %.0f), "
		        "errors %lld, heartbeats at most %.1fs late\n",
		        json_real_value(json_object_get(st, "seconds")),
		        json_real_value(json_object_get(rps, "all")),
		        json_real_value(json_object_get(rps, "heartbeat")),
		        json_real_value(json_object_get(rps, "poll")),
		        (long long)(json_integer_value(json_object_get(
		                            json_object_get(st, "request_errors"), "heartbeat")) +
		                    json_integer_value(json_object_get(
		                            json_object_get(st, "request_errors"), "poll"))),
		        json_real_value(json_object_get(st, "heartbeat_lag_max_s")));
		static const char *const kinds[] = {"poll", "heartbeat"};
		for (size_t k = 0; k < 2; k++) {
			const json_t *l = json_object_get(lat, kinds[k]);
			if (json_is_object(l))
				fprintf(o,
				        "   steady %s latency: p50 %.1f ms, p99 %.1f ms, max %.1f "
				        "ms\n",
				        kinds[k], json_real_value(json_object_get(l, "p50")),
				        json_real_value(json_object_get(l, "p99")),
				        json_real_value(json_object_get(l, "max")));
		}
	}
	fprintf(o, "   false halts: %lld; took %.1fs\n", (long long)false_halts,
	        json_real_value(json_object_get(j, "duration_s")));
	json_array_foreach(json_object_get(j, "expectations"), i, v) fprintf(
	        o, "   %s %s: %s\n", json_is_true(json_object_get(v, "ok")) ? "ok  " : "FAIL",
	        json_string_value(json_object_get(v, "name")),
	        json_string_value(json_object_get(v, "detail")));
	fprintf(o, "   expectations %s\n", ok ? "held" : "FAILED");
}

/* The policy of the baseline rollouts: permissive (the baseline is not under
 * test): no holdout, no watch, no exposure wait and no canary coverage check
 * (unless --protocol-v1, for a server before gate v2); then the scenario's
 * baseline_policy. New reference. */
static json_t *baseline_policy(const struct app *A)
{
	json_t *p = json_pack("{s:i,s:i,s:f,s:i,s:i}", "min_bake_s", 0, "min_healthy", 1,
	                      "max_failure_rate", 0.5, "hard_cap", 0, "silence_timeout_s", 3600);
	if (p && !A->o.protocol_v1) {
		static const char *const zero[] = {"holdout", "holdout_min", "watch_s",
		                                   "min_exposure_s", "min_segment_canaries"};
		for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++)
			json_object_set_new(p, zero[i], json_integer(0));
		json_object_set_new(p, "max_excess", json_real(1.0));
	}
	if (p && A->s.baseline_policy)
		json_object_update(p, A->s.baseline_policy);
	if (!p)
		die("out of memory");
	return p;
}

int main(int argc, char **argv)
{
	struct app A;
	memset(&A, 0, sizeof A);
	parse_args(argc, argv, &A.o);
	struct fb_err err = {{0}};
	if (fbsig_init() || fbc_global_init())
		die("cannot initialise libsodium or libcurl");
	if (scn_load(A.o.scenario, A.o.content_dir, A.o.agents, A.o.time_scale, &A.s, &err))
		die("%s", err.msg);
	for (int k = 0; A.o.channel && k < A.s.n_channels; k++) {
		/* channels of their own: the names get the ids so both are new */
		struct scn_channel *ch = &A.s.ch[k];
		char name[SCN_MAX_NAME];
		if (A.o.channel + k > 0xffffffffLL)
			die("--channel %lld leaves no room for %d channels", (long long)A.o.channel,
			    A.s.n_channels);
		snprintf(name, sizeof name, "%.40s-%lld", ch->name, (long long)A.o.channel + k);
		snprintf(ch->name, sizeof ch->name, "%s", name);
		ch->id = (uint32_t)(A.o.channel + k);
	}
	char tokbuf[FBC_MAX_TOKEN + 1] = "";
	if (A.o.token_file) {
		unsigned char *t = NULL;
		size_t n = 0;
		if (fb_file_read(A.o.token_file, FBC_MAX_TOKEN, &t, &n))
			die("cannot read %s", A.o.token_file);
		while (n && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' '))
			n--;
		memcpy(tokbuf, t, n);
		tokbuf[n] = 0;
		sodium_memzero(t, n);
		free(t);
	} else
		snprintf(tokbuf, sizeof tokbuf, "%s", A.o.token);
	unsigned char *rootb = NULL;
	size_t rootn = 0;
	struct fbsig_root *root = NULL;
	struct cf_registry *reg = NULL;
	if (fb_file_read(A.o.root, 1 << 20, &rootb, &rootn) ||
	    fbsig_root_load_trusted(rootb, rootn, fb_now_ms() / 1000, 0, &root, &err))
		die("root %s: %s", A.o.root, err.msg[0] ? err.msg : "cannot read");
	free(rootb);
	if (cf_registry_load_dir(A.o.templates, &reg, &err))
		die("templates %s: %s", A.o.templates, err.msg);
	struct fbc_opts co = {.base_url = A.o.server,
	                      .ca_bundle = A.o.cacert,
	                      .timeout_ms = 10000,
	                      .connect_timeout_ms = 2000,
	                      .user_agent = "fb-fleet-admin"};
	if (fbc_new(&co, &A.admin, &err) || fbc_set_token(A.admin, tokbuf))
		die("%s", err.msg);
	sodium_memzero(tokbuf, sizeof tokbuf);
	struct fleet_opts fo = {.base_url = A.o.agent_server ? A.o.agent_server : A.o.server,
	                        .ca_bundle = A.o.cacert,
	                        .scn = &A.s,
	                        .root = root,
	                        .reg = reg,
	                        .seed = A.o.seed,
	                        .max_inflight = A.o.inflight,
	                        .verbose = A.o.verbose,
	                        .protocol_v1 = A.o.protocol_v1};
	if (fleet_new(&fo, &A.fleet, &err))
		die("%s", err.msg);
	A.started_ms = A.phase_started = fb_mono_ms();
	A.phases = json_object();
	int64_t limit = (int64_t)(A.s.timeout_s * 1000);

	setup(&A);
	phase_done(&A, "setup");
	if (A.o.verbose)
		fprintf(stderr, "fb-fleet: set up; enrolling %lld agents\n", (long long)A.s.agents);
	write_status(&A, "enroll");
	if (fleet_run(A.fleet, limit, tick_enrolled, &A, &err))
		die("enrollment: %s", err.msg);
	phase_done(&A, "enroll");
	write_status(&A, "baseline");
	/* delayed tenants from the start (they get each baseline its delay after
	 * it completed), once the rings hold agents: the server refuses a policy
	 * that leaves ring 0 without early hosts */
	put_policies(&A, SCN_DELAYED);

	/* the baselines to GA, with a permissive policy: they are not under test */
	for (int k = 0; k < A.s.n_channels; k++) {
		const struct scn_channel *ch = &A.s.ch[k];
		struct fbc_resp r;
		json_t *ans;
		long st = api_json(&A, "POST", "/v1/rollouts",
		                   json_pack("{s:I,s:s,s:o}", "channel", (json_int_t)ch->id,
		                             "content", A.sha[ch->baseline], "policy",
		                             baseline_policy(&A)),
		                   &ans, &r);
		if (ans)
			A.ro[k].id = json_integer_value(json_object_get(ans, "id"));
		else if (!(st == 409 &&
		           (!strcmp(r.err_code, "conflict") || !strcmp(r.err_code, "downgrade"))))
			die("baseline rollout of channel %u: %ld %s: %s", ch->id, st, r.err_code,
			    r.err_msg);
		json_decref(ans);
		fbc_resp_cleanup(&r);
		if (A.o.verbose)
			fprintf(stderr, "fb-fleet: baseline rollout %lld on channel %u\n",
			        (long long)A.ro[k].id, ch->id);
	}
	if (fleet_run(A.fleet, limit, tick_baseline, &A, &err))
		die("baseline: %s", err.msg);
	/* paused tenants stay on the baselines */
	put_policies(&A, SCN_PAUSED);
	phase_done(&A, "baseline");
	for (int k = 0; k < A.s.n_channels; k++) {
		json_decref(A.ro[k].rollout);
		A.ro[k].rollout = NULL;
		A.ro[k].id = 0;
		A.ro[k].states_seen = json_array();
	}

	/* steady state: every agent on its baselines, nothing rolling out */
	json_t *steady = json_null();
	if (A.o.steady_s > 0) {
		if (A.o.verbose)
			fprintf(stderr, "fb-fleet: steady state for %llds\n",
			        (long long)A.o.steady_s);
		write_status(&A, "steady");
		fleet_window_start(A.fleet);
		A.steady_until = fb_mono_ms() + A.o.steady_s * 1000;
		if (fleet_run(A.fleet, A.o.steady_s * 1000 + 60000, tick_steady, &A, &err))
			die("steady state: %s", err.msg);
		json_decref(steady);
		steady = fleet_window_json(A.fleet);
		phase_done(&A, "steady");
	}

	/* the rollouts under test, one per channel, all at once */
	int created = 0;
	fleet_test_start(A.fleet);
	for (int k = 0; k < A.s.n_channels; k++) {
		const struct scn_channel *ch = &A.s.ch[k];
		struct ro *ro = &A.ro[k];
		if (!A.sha[ch->rollout][0])
			continue; /* refused at upload */
		json_t *body = json_pack("{s:I,s:s}", "channel", (json_int_t)ch->id, "content",
		                         A.sha[ch->rollout]);
		if (ch->policy)
			json_object_set(body, "policy", ch->policy);
		if (ch->ring_policies)
			json_object_set(body, "ring_policies", ch->ring_policies);
		fleet_rollout_active(A.fleet, k, 1);
		json_t *ans = api_must(&A, "POST", "/v1/rollouts", body, 0);
		ro->id = json_integer_value(json_object_get(ans, "id"));
		ro->rollout = ans;
		json_array_append(ro->states_seen, json_object_get(ans, "state"));
		created++;
		if (A.o.verbose)
			fprintf(stderr, "fb-fleet: rollout %lld under test on channel %u\n",
			        (long long)ro->id, ch->id);
	}
	write_status(&A, "test");
	if (created) {
		fleet_ring_entered(A.fleet, 0);
		if (fleet_run(A.fleet, limit, tick_test, &A, &err))
			fprintf(stderr, "fb-fleet: rollout under test: %s\n", err.msg);
		for (int k = 0; k < A.s.n_channels; k++)
			if (A.ro[k].id)
				refresh(&A, &A.ro[k]);
	} else {
		/* refused at upload: let the fleet run a few intervals to show no agent gets it */
		int64_t until = fb_mono_ms() + (int64_t)(A.s.settle_s * 1000);
		while (fb_mono_ms() < until)
			if (fleet_run(A.fleet, until - fb_mono_ms() + 1, NULL, NULL, &err) ==
			    FB_ETIMEOUT)
				break;
	}
	phase_done(&A, "test");
	write_status(&A, "done");
	json_t *j = summary(&A);
	json_object_set_new(j, "steady", steady);
	json_object_set_new(j, "phases_s", A.phases);
	json_t *results = json_array();
	int ok = outcome_check(&A.s, j, results);
	json_object_set_new(j, "expectations", results);
	json_object_set_new(j, "ok", json_boolean(ok));
	print_human(&A, j, ok);
	if (A.o.json) {
		char *txt = json_dumps(j, JSON_COMPACT);
		if (txt)
			printf("%s\n", txt);
		free(txt);
	}
	json_decref(j);
	for (int k = 0; k < A.s.n_channels; k++) {
		json_decref(A.ro[k].rollout);
		json_decref(A.ro[k].states_seen);
		json_decref(A.uploads[k]);
	}
	fleet_free(A.fleet);
	fbc_free(A.admin);
	scn_cleanup(&A.s);
	fbsig_root_free(root);
	cf_registry_free(reg);
	fbc_global_cleanup();
	return ok ? 0 : 1;
}
