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
#include "scenario.h"

#define MAX_UPLOAD (20 * 1024 * 1024) /* bytes of one upload body file */
#define MAX_ANSWER (4 * 1024 * 1024)  /* bytes of an admin API answer */

struct opts {
	const char *server, *token, *token_file, *root, *templates, *scenario, *status_file,
	        *content_dir, *agent_server, *cacert;
	int64_t agents, channel;
	double time_scale;
	uint64_t seed;
	int json, verbose, inflight;
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
	        "  --channel ID       use this channel id instead of the scenario's\n"
	        "  --content-dir DIR  resolve the scenario's upload files in DIR (default: its "
	        "folder)\n"
	        "  --seed S           random seed (default 1): same seed, same victims\n"
	        "  --inflight N       concurrent requests (default 64)\n"
	        "  --status-file F    rewrite F with the rollout's id, state and ring as it moves\n"
	        "  --agent-server URL the agents' endpoint, when it is not --server (a load "
	        "balancer\n"
	        "                     that keeps the agent API apart from the operator API)\n"
	        "  --cacert FILE      trust the CA certificates in FILE for https\n"
	        "  --json             print one JSON summary object on stdout\n"
	        "  --verbose          progress on stderr\n\n"
	        "exit status: 0 expectations held, 1 an expectation failed, 2 usage or set-up "
	        "error\n");
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {{"server", 1, 0, 's'},
	                                   {"token", 1, 0, 't'},
	                                   {"token-file", 1, 0, 'T'},
	                                   {"root", 1, 0, 'r'},
	                                   {"templates", 1, 0, 'p'},
	                                   {"scenario", 1, 0, 'f'},
	                                   {"agents", 1, 0, 'n'},
	                                   {"time-scale", 1, 0, 'x'},
	                                   {"channel", 1, 0, 'c'},
	                                   {"seed", 1, 0, 'S'},
	                                   {"inflight", 1, 0, 'i'},
	                                   {"status-file", 1, 0, 'F'},
	                                   {"content-dir", 1, 0, 'D'},
	                                   {"agent-server", 1, 0, 'A'},
	                                   {"cacert", 1, 0, 'C'},
	                                   {"json", 0, 0, 'j'},
	                                   {"verbose", 0, 0, 'v'},
	                                   {"help", 0, 0, 'h'},
	                                   {0, 0, 0, 0}};
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
		case 'v': o->verbose = 1; break;
		case 'n':
			if (fb_parse_i64(optarg, 1, 1000000, &o->agents))
				die("--agents must be 1..1000000");
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

struct app {
	struct opts o;
	struct scenario s;
	struct fbc *admin;
	struct fleet *fleet;
	json_t *uploads;
	char sha[SCN_MAX_CONTENTS][FB_SHA256_HEX_LEN + 1];
	int64_t rollout_id;
	json_t *rollout; /* last GET /v1/rollouts/{id} */
	int ring_seen;
	int64_t last_check_ms, terminal_ms, started_ms;
	int waiting_baseline;
	int64_t api_errors;
};

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

static void setup(struct app *A)
{
	const struct scenario *s = &A->s;
	json_decref(api_must(
	        A, "POST", "/v1/channels",
	        json_pack("{s:I,s:s}", "id", (json_int_t)s->channel_id, "name", s->channel_name),
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
	for (int i = 0; i < s->n_rings; i++) {
		char name[128];
		snprintf(name, sizeof name, "fleet-%s-%s", s->name, s->rings[i].name);
		json_t *t = api_must(A, "POST", "/v1/enrollment-tokens",
		                     json_pack("{s:s,s:{s:s},s:I}", "name", name, "tags", "ring",
		                               s->rings[i].name, "max_uses",
		                               (json_int_t)s->rings[i].agents),
		                     0);
		const char *tok = json_string_value(json_object_get(t, "token"));
		if (!tok || fleet_set_ring_token(A->fleet, i, tok))
			die("enrollment token for ring %s: unexpected answer", s->rings[i].name);
		json_decref(t);
	}
	A->uploads = json_object();
	for (int i = 0; i < s->n_contents; i++) {
		const struct scn_content *c = &s->contents[i];
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
			json_object_set_new(A->uploads, c->name,
			                    json_pack("{s:b,s:I,s:s}", "accepted", 1, "status",
			                              (json_int_t)st, "sha256", sha));
		} else {
			json_object_set_new(A->uploads, c->name,
			                    json_pack("{s:b,s:I,s:s,s:s}", "accepted", 0, "status",
			                              (json_int_t)st, "error", r.err_code,
			                              "message", r.err_msg));
			if (i == s->baseline)
				die("baseline %s refused at upload: %ld %s", c->name, st,
				    r.err_msg);
		}
		json_decref(ans);
		fbc_resp_cleanup(&r);
	}
}

static void write_status(struct app *A, const char *phase)
{
	if (!A->o.status_file)
		return;
	json_t *st =
	        json_pack("{s:s,s:I,s:O}", "phase", phase, "rollout", (json_int_t)A->rollout_id,
	                  "state", A->rollout ? json_object_get(A->rollout, "state") : json_null());
	json_object_set(st, "ring_index",
	                A->rollout ? json_object_get(A->rollout, "ring_index") : json_null());
	char *txt = json_dumps(st, JSON_COMPACT);
	json_decref(st);
	if (txt && fb_file_write_atomic(A->o.status_file, txt, strlen(txt), 0644))
		fprintf(stderr, "fb-fleet: cannot write %s\n", A->o.status_file);
	free(txt);
}

/* Refresh A->rollout (kept when the server does not answer: it may be restarting). */
static void refresh(struct app *A)
{
	char path[64];
	snprintf(path, sizeof path, "/v1/rollouts/%lld", (long long)A->rollout_id);
	struct fbc_resp r;
	json_t *ans;
	api(A, "GET", path, NULL, 0, &ans, &r);
	fbc_resp_cleanup(&r);
	if (ans) {
		json_decref(A->rollout);
		A->rollout = ans;
	}
}

static const char *rollout_state(const struct app *A)
{
	const char *s = json_string_value(json_object_get(A->rollout, "state"));
	return s ? s : "";
}

static int terminal(const char *st)
{
	return !strcmp(st, "completed") || !strcmp(st, "halted") || !strcmp(st, "reverted") ||
	       !strcmp(st, "superseded");
}

static int tick_enrolled(void *ctx, struct fleet *f)
{
	struct app *A = ctx;
	return fleet_enrolled(f) == A->s.agents;
}

/* Baseline: the rollout completed (or it was GA already) and every agent runs it. */
static int tick_baseline(void *ctx, struct fleet *f)
{
	struct app *A = ctx;
	int64_t now = fb_mono_ms();
	if (now - A->last_check_ms < 500)
		return 0;
	A->last_check_ms = now;
	if (A->rollout_id)
		refresh(A);
	const char *st = A->rollout_id ? rollout_state(A) : "completed";
	if (A->rollout_id && terminal(st) && strcmp(st, "completed"))
		die("the baseline rollout ended %s: %s", st,
		    json_string_value(json_object_get(A->rollout, "state_reason")));
	return !strcmp(st, "completed") && fleet_running(f, A->s.baseline, 1) == A->s.agents;
}

/* The rollout under test: follow its rings, then let the fleet settle. */
static int tick_test(void *ctx, struct fleet *f)
{
	struct app *A = ctx;
	int64_t now = fb_mono_ms();
	if (now - A->last_check_ms < 500)
		return 0;
	A->last_check_ms = now;
	refresh(A);
	write_status(A, "test");
	int ri = (int)json_integer_value(json_object_get(A->rollout, "ring_index"));
	while (A->ring_seen < ri && A->ring_seen + 1 < A->s.n_rings)
		fleet_ring_entered(f, ++A->ring_seen);
	const char *st = rollout_state(A);
	if (!terminal(st))
		return 0;
	if (!A->terminal_ms)
		A->terminal_ms = now;
	int64_t settled = now - A->terminal_ms;
	int64_t settle = (int64_t)(A->s.settle_s * 1000);
	if (settled < settle)
		return 0;
	int64_t want = !strcmp(st, "completed") ? fleet_running(f, A->s.rollout, 1)
	                                        : fleet_running(f, A->s.baseline, 1);
	int64_t alive = A->s.agents -
	                (fleet_running(f, A->s.rollout, 0) - fleet_running(f, A->s.rollout, 1));
	return want >= alive || settled > 4 * settle + 10000;
}

static json_t *halt_inputs(const struct app *A)
{
	json_t *ev = json_object_get(A->rollout, "evaluations");
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

static json_t *summary(struct app *A)
{
	const struct scenario *s = &A->s;
	const char *st = A->rollout_id ? rollout_state(A) : "rejected";
	const struct scn_content *t = &s->contents[s->rollout];
	int bad = t->crash_probability > 0;
	int halted = !strcmp(st, "halted") || !strcmp(st, "reverted");
	json_t *exposure = json_object();
	for (int i = 0; i < s->n_contents; i++)
		json_object_set_new(exposure, s->contents[i].name,
		                    json_integer(fleet_exposure(A->fleet, i)));
	json_t *ro = json_pack("{s:I,s:s,s:s,s:O?,s:O?,s:O?}", "id", (json_int_t)A->rollout_id,
	                       "content", t->name, "state", st, "ring",
	                       json_object_get(A->rollout, "ring"), "ring_index",
	                       json_object_get(A->rollout, "ring_index"), "state_reason",
	                       json_object_get(A->rollout, "state_reason"));
	json_t *to_halt = json_null();
	int64_t first = fleet_first_apply_ms(A->fleet, s->rollout);
	json_t *fin = json_object_get(A->rollout, "finished");
	if (halted && first && json_is_integer(fin))
		to_halt = json_real(((double)json_integer_value(fin) * 1000.0 - (double)first) /
		                    1000.0);
	json_t *rings = json_array();
	for (int i = 0; i < s->n_rings; i++)
		json_array_append_new(rings, json_pack("{s:s,s:I}", "name", s->rings[i].name,
		                                       "agents", (json_int_t)s->rings[i].agents));
	json_error_t jerr;
	json_t *uploads = A->uploads; /* stolen by the summary */
	A->uploads = NULL;
	json_t *j = json_pack_ex(
	        &jerr, 0, "{s:s,s:I,s:f,s:o,s:o,s:o,s:o,s:I,s:o,s:I,s:o,s:I,s:o,s:o,s:f}",
	        "scenario", s->name, "agents", (json_int_t)s->agents, "time_scale", s->time_scale,
	        "rings", rings, "rollout", ro, "uploads", uploads, "exposure", exposure,
	        "exposure_under_test", (json_int_t)fleet_exposure(A->fleet, s->rollout),
	        "first_apply_to_halt_s", to_halt, "on_bad_content",
	        (json_int_t)(bad ? fleet_running(A->fleet, s->rollout, 0) : 0),
	        "exposed_not_on_last_known_good",
	        halted ? json_integer(fleet_exposed_not_on(A->fleet, s->rollout, s->baseline))
	               : json_null(),
	        "false_halts", (json_int_t)(halted && !bad), "halt_inputs", halt_inputs(A), "fleet",
	        fleet_stats_json(A->fleet), "duration_s",
	        (double)(fb_mono_ms() - A->started_ms) / 1000.0);
	if (!j)
		die("cannot build the summary: %s", jerr.text);
	json_object_set_new(
	        j, "crashed_agents",
	        json_incref(json_object_get(json_object_get(j, "fleet"), "crashed_agents")));
	return j;
}

static void print_human(const struct app *A, const json_t *j, int ok)
{
	const json_t *ro = json_object_get(j, "rollout");
	const json_t *fl = json_object_get(j, "fleet");
	FILE *o = A->o.json ? stderr : stdout;
	const char *k;
	json_t *v;
	fprintf(o, "== rehearsal %s: %lld agents (", A->s.name, (long long)A->s.agents);
	for (int i = 0; i < A->s.n_rings; i++)
		fprintf(o, "%s%s %lld", i ? ", " : "", A->s.rings[i].name,
		        (long long)A->s.rings[i].agents);
	fprintf(o, "), time scale %.2f\n", A->s.time_scale);
	fprintf(o, "   rollout of %s: %s in ring %s",
	        json_string_value(json_object_get(ro, "content")),
	        json_string_value(json_object_get(ro, "state")),
	        json_string_value(json_object_get(ro, "ring"))
	                ? json_string_value(json_object_get(ro, "ring"))
	                : "-");
	if (json_is_real(json_object_get(j, "first_apply_to_halt_s")))
		fprintf(o, ", halted %.1fs after the first apply",
		        json_real_value(json_object_get(j, "first_apply_to_halt_s")));
	fputc('\n', o);
	if (json_is_string(json_object_get(ro, "state_reason")))
		fprintf(o, "   reason: %.300s\n",
		        json_string_value(json_object_get(ro, "state_reason")));
	json_object_foreach((json_t *)json_object_get(j, "uploads"), k, v)
	{
		if (json_is_false(json_object_get(v, "accepted")))
			fprintf(o, "   upload of %s refused: %lld %s: %.300s\n", k,
			        (long long)json_integer_value(json_object_get(v, "status")),
			        json_string_value(json_object_get(v, "error")),
			        json_string_value(json_object_get(v, "message")));
	}
	fprintf(o, "   exposure (agents that ever applied):");
	json_object_foreach((json_t *)json_object_get(j, "exposure"), k, v)
	        fprintf(o, " %s %lld", k, (long long)json_integer_value(v));
	fprintf(o,
	        "\n   on bad content at the end: %lld; exposed but not back on last known good: "
	        "%lld\n",
	        (long long)json_integer_value(json_object_get(j, "on_bad_content")),
	        (long long)json_integer_value(
	                json_object_get(j, "exposed_not_on_last_known_good")));
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
	fprintf(o, "   false halts: %lld; took %.1fs\n",
	        (long long)json_integer_value(json_object_get(j, "false_halts")),
	        json_real_value(json_object_get(j, "duration_s")));
	size_t i;
	json_array_foreach(json_object_get(j, "expectations"), i, v) fprintf(
	        o, "   %s %s: %s\n", json_is_true(json_object_get(v, "ok")) ? "ok  " : "FAIL",
	        json_string_value(json_object_get(v, "name")),
	        json_string_value(json_object_get(v, "detail")));
	fprintf(o, "   expectations %s\n", ok ? "held" : "FAILED");
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
	if (A.o.channel) {
		/* a channel of its own: the name gets the id so both are new */
		char name[SCN_MAX_NAME];
		snprintf(name, sizeof name, "%.40s-%lld", A.s.channel_name, (long long)A.o.channel);
		snprintf(A.s.channel_name, sizeof A.s.channel_name, "%s", name);
		A.s.channel_id = (uint32_t)A.o.channel;
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
	                        .verbose = A.o.verbose};
	if (fleet_new(&fo, &A.fleet, &err))
		die("%s", err.msg);
	A.started_ms = fb_mono_ms();
	int64_t limit = (int64_t)(A.s.timeout_s * 1000);

	setup(&A);
	if (A.o.verbose)
		fprintf(stderr, "fb-fleet: set up; enrolling %lld agents\n", (long long)A.s.agents);
	if (fleet_run(A.fleet, limit, tick_enrolled, &A, &err))
		die("enrollment: %s", err.msg);

	/* the baseline to GA, with a permissive policy: it is not under test */
	struct fbc_resp r;
	json_t *ans;
	long st =
	        api_json(&A, "POST", "/v1/rollouts",
	                 json_pack("{s:I,s:s,s:{s:i,s:i,s:f,s:i,s:i}}", "channel",
	                           (json_int_t)A.s.channel_id, "content", A.sha[A.s.baseline],
	                           "policy", "min_bake_s", 0, "min_healthy", 1, "max_failure_rate",
	                           0.5, "hard_cap", 0, "silence_timeout_s", 3600),
	                 &ans, &r);
	if (ans)
		A.rollout_id = json_integer_value(json_object_get(ans, "id"));
	else if (!(st == 409 &&
	           (!strcmp(r.err_code, "conflict") || !strcmp(r.err_code, "downgrade"))))
		die("baseline rollout: %ld %s: %s", st, r.err_code, r.err_msg);
	json_decref(ans);
	fbc_resp_cleanup(&r);
	if (A.o.verbose)
		fprintf(stderr, "fb-fleet: baseline rollout %lld\n", (long long)A.rollout_id);
	if (fleet_run(A.fleet, limit, tick_baseline, &A, &err))
		die("baseline: %s", err.msg);
	json_decref(A.rollout);
	A.rollout = NULL;
	A.rollout_id = 0;

	/* the rollout under test */
	int uploaded = A.sha[A.s.rollout][0] != 0;
	if (uploaded) {
		fleet_test_start(A.fleet);
		json_t *body = json_pack("{s:I,s:s}", "channel", (json_int_t)A.s.channel_id,
		                         "content", A.sha[A.s.rollout]);
		if (A.s.policy)
			json_object_set(body, "policy", A.s.policy);
		if (A.s.ring_policies)
			json_object_set(body, "ring_policies", A.s.ring_policies);
		json_t *ro = api_must(&A, "POST", "/v1/rollouts", body, 0);
		A.rollout_id = json_integer_value(json_object_get(ro, "id"));
		A.rollout = ro;
		write_status(&A, "test");
		fleet_ring_entered(A.fleet, 0);
		if (A.o.verbose)
			fprintf(stderr, "fb-fleet: rollout %lld under test\n",
			        (long long)A.rollout_id);
		if (fleet_run(A.fleet, limit, tick_test, &A, &err))
			fprintf(stderr, "fb-fleet: rollout under test: %s\n", err.msg);
		refresh(&A);
	} else {
		/* refused at upload: let the fleet run a few intervals to show no agent gets it */
		fleet_test_start(A.fleet);
		A.terminal_ms = fb_mono_ms();
		int64_t until = fb_mono_ms() + (int64_t)(A.s.settle_s * 1000);
		while (fb_mono_ms() < until)
			if (fleet_run(A.fleet, until - fb_mono_ms() + 1, NULL, NULL, &err) ==
			    FB_ETIMEOUT)
				break;
	}
	write_status(&A, "done");
	json_t *j = summary(&A);
	json_t *results = json_array();
	int ok = scn_check(&A.s, j, results);
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
	json_decref(A.rollout);
	fleet_free(A.fleet);
	fbc_free(A.admin);
	scn_cleanup(&A.s);
	fbsig_root_free(root);
	cf_registry_free(reg);
	fbc_global_cleanup();
	return ok ? 0 : 1;
}
