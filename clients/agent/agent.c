/* fb-agent's protocol cycle: enroll, poll, verify (libfbsign), validate
 * (libfbschema), stage and switch A/B slots, heartbeat and event reports,
 * exactly as server/PROTOCOL.md describes. */
#include "agent.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static int g_log_min = 1; /* index into levels[]: info */
static const char *const levels[] = {"debug", "info", "warn", "error"};

static int level_index(const char *level)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(level, levels[i]) == 0)
			return i;
	return -1;
}

enum fb_rc ag_log_set_level(const char *level)
{
	int i = level_index(level);
	if (i < 0)
		return FB_EINVAL;
	g_log_min = i;
	return FB_OK;
}

void ag_log(const char *level, const char *fmt, ...)
{
	if (level_index(level) < g_log_min)
		return;
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s fb-agent[%ld] %s: %s\n", ts, (long)getpid(), level, msg);
}

static int64_t now_s(void)
{
	return fb_now_ms() / 1000;
}

enum fb_rc ag_parse_channels(const char *s, uint32_t *ids, size_t max, size_t *n,
                             struct fb_err *err)
{
	*n = 0;
	if (!s)
		return FB_OK;
	const char *p = s;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (!*p)
			break;
		char num[16];
		size_t k = 0;
		while (p[k] && p[k] != ',' && p[k] != ' ' && k < sizeof num - 1) {
			num[k] = p[k];
			k++;
		}
		num[k] = '\0';
		int64_t v = 0;
		if ((p[k] && p[k] != ',' && p[k] != ' ') || fb_parse_i64(num, 1, UINT32_MAX, &v)) {
			fb_err_set(err, "channels: \"%s\" is not a channel id (1..4294967295)",
			           num);
			return FB_EINVAL;
		}
		if (*n >= max) {
			fb_err_set(err, "channels: more than %zu listed", max);
			return FB_ETOOBIG;
		}
		ids[(*n)++] = (uint32_t)v;
		p += k;
	}
	return FB_OK;
}

/* ---- the test-only crash hook -------------------------------------------- */

static void parse_crash_on(struct ag *a)
{
	const char *env = getenv("FB_AGENT_TEST_CRASH_ON");
	a->n_crash_on = 0;
	if (!env || !*env)
		return;
	const char *p = env;
	while (*p && a->n_crash_on < AG_MAX_CRASH_ON) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == FB_SHA256_HEX_LEN) {
			memcpy(a->crash_on[a->n_crash_on], p, l);
			a->crash_on[a->n_crash_on][l] = '\0';
			if (fb_is_sha256_hex(a->crash_on[a->n_crash_on]))
				a->n_crash_on++;
		}
		p = e ? e + 1 : p + l;
	}
	if (a->n_crash_on)
		ag_log("warn", "TEST ONLY: FB_AGENT_TEST_CRASH_ON names %zu content digest(s)",
		       a->n_crash_on);
}

/* TEST ONLY: "crash" (exit AG_CRASH_STATUS without the clean-stop mark) when
 * sha256 is one of FB_AGENT_TEST_CRASH_ON. */
static void crash_hook(struct ag *a, uint32_t ch, const char *sha256, const char *when)
{
	for (size_t i = 0; i < a->n_crash_on; i++) {
		if (strcmp(a->crash_on[i], sha256) != 0)
			continue;
		ag_log("error", "TEST ONLY: crash hook: channel %u content %s %s; exiting %d", ch,
		       sha256, when, AG_CRASH_STATUS);
		ag_boot_note_crash(a->st, a->boot.boot_id, "test-hook");
		/* the hook stands for the interpreter crashing on this content:
		 * its breadcrumb names the channel, as a real one would */
		ag_breadcrumb(a->st, ch);
		fflush(NULL);
		_exit(AG_CRASH_STATUS);
	}
}

/* ---- open / close --------------------------------------------------------- */

static enum fb_rc load_root(struct ag *a, struct fb_err *err)
{
	enum fb_rc rc;
	unsigned char *pinned = NULL, *saved = NULL;
	size_t plen = 0, slen = 0;
	struct fbsig_root *r1 = NULL, *r2 = NULL;
	char path[PATH_MAX];
	int64_t now = now_s();
	if ((rc = fb_file_read(a->cfg->root, FBSIG_MAX_DOC, &pinned, &plen))) {
		fb_err_set(err, "root %s: %s", a->cfg->root, fb_rc_str(rc));
		goto out;
	}
	if ((rc = fbsig_root_load_trusted(pinned, plen, now, FBSIG_ALLOW_EXPIRED, &r1, err))) {
		fb_err_prefix(err, "pinned root %s", a->cfg->root);
		goto out;
	}
	/* A root accepted later through fbsig_root_update, when newer. */
	snprintf(path, sizeof path, "%s/root.json", a->cfg->state_dir);
	if (fb_file_read(path, FBSIG_MAX_DOC, &saved, &slen) == FB_OK) {
		struct fb_err e2 = {""};
		if (fbsig_root_load_trusted(saved, slen, now, FBSIG_ALLOW_EXPIRED, &r2, &e2))
			ag_log("warn", "ignoring %s: %s", path, e2.msg);
		else if (fbsig_root_version(r2) > fbsig_root_version(r1)) {
			struct fbsig_root *t = r1;
			r1 = r2;
			r2 = t;
		}
	}
	a->root = r1;
	r1 = NULL;
out:
	fbsig_root_free(r1);
	fbsig_root_free(r2);
	free(pinned);
	free(saved);
	return rc;
}

enum fb_rc ag_open(struct ag *a, const struct ag_config *cfg, struct fb_err *err)
{
	enum fb_rc rc;
	memset(a, 0, sizeof *a);
	a->cfg = cfg;
	a->started_mono_ms = fb_mono_ms();
	ag_health_init(&a->health, a->started_mono_ms);
	if ((rc = fbsig_init())) {
		fb_err_set(err, "libsodium did not start");
		return rc;
	}
	if ((rc = ag_parse_channels(cfg->channels, a->channels, AG_MAX_CHANNELS, &a->n_channels,
	                            err)))
		return rc;
	if ((rc = cf_registry_load_dir(cfg->templates, &a->reg, err))) {
		fb_err_prefix(err, "templates %s", cfg->templates);
		return rc;
	}
	a->caps = cf_registry_capabilities(a->reg);
	if (!a->caps)
		return FB_ENOMEM;
	if ((rc = ag_state_open(cfg->state_dir, &a->st, err)))
		return rc;
	if ((rc = load_root(a, err)))
		return rc;
	int found = 0;
	if ((rc = ag_identity_load(cfg->state_dir, &a->id, &found, err)))
		return rc;
	struct fbc_opts o = {.base_url = cfg->server,
	                     .ca_bundle = cfg->ca_bundle,
	                     .connect_timeout_ms = 5000,
	                     .timeout_ms = cfg->timeout_s * 1000,
	                     .user_agent = "fb-agent/" AG_VERSION};
	if ((rc = fbc_new(&o, &a->http, err)))
		return rc;
	if (a->id.agent_id > 0 && (rc = fbc_set_token(a->http, a->id.token))) {
		fb_err_set(err, "identity.json: agent_token unusable");
		return rc;
	}
	parse_crash_on(a);

	int64_t now = now_s();
	if ((rc = ag_boot_begin(a->st, now, &a->boot, err)))
		return rc;
	ag_log("info", "boot %s started (root version %lld, %zu template types, state %s)",
	       a->boot.boot_id, (long long)fbsig_root_version(a->root), cf_registry_count(a->reg),
	       cfg->state_dir);
	if (a->boot.prev_unclean)
		ag_log("warn", "previous boot %s did not stop cleanly: crash reported",
		       a->boot.prev_boot_id);
	struct ag_guard g = {cfg->boot_loop_starts, cfg->boot_loop_minutes};
	size_t reverted = 0;
	if ((rc = ag_bootloop_check(a->st, &g, a->boot.boot_id, now, &reverted, err)))
		return rc;
	if (reverted) {
		size_t n = json_array_size(a->st->events);
		for (size_t i = 0; i < n; i++) {
			json_t *ev = json_array_get(a->st->events, i);
			const char *k = json_string_value(json_object_get(ev, "kind"));
			const char *id = json_string_value(json_object_get(ev, "id"));
			char want[80];
			snprintf(want, sizeof want, "bootloop-%s-", a->boot.boot_id);
			if (k && strcmp(k, "boot_loop") == 0 && id &&
			    strncmp(id, want, strlen(want)) == 0)
				ag_log("warn",
				       "boot loop: channel %lld reverted from %s to %s after %lld "
				       "unclean starts; that content is refused until a newer "
				       "assignment names other content",
				       (long long)json_integer_value(
				               json_object_get(ev, "channel")),
				       json_string_value(json_object_get(ev, "reverted_from")),
				       json_string_value(json_object_get(ev, "reverted_to"))[0]
				               ? json_string_value(
				                         json_object_get(ev, "reverted_to"))
				               : "(nothing)",
				       (long long)json_integer_value(
				               json_object_get(ev, "unclean_starts")));
		}
	}
	for (size_t i = 0; i < a->st->n_channels; i++) {
		const char *sha = ag_state_active(a->st, a->st->ch[i].id);
		if (sha)
			crash_hook(a, a->st->ch[i].id, sha, "is active at start-up");
	}
	return FB_OK;
}

void ag_close(struct ag *a, int clean)
{
	if (clean && a->st && a->boot.boot_id[0]) {
		struct fb_err err = {""};
		if (ag_boot_end(a->st, a->boot.boot_id, &err))
			ag_log("error", "clean-stop mark not written: %s", err.msg);
		else
			ag_log("info", "boot %s stopped cleanly", a->boot.boot_id);
	}
	fbc_free(a->http);
	json_decref(a->caps);
	ag_scanner_cleanup(&a->scanner); /* before the registry its files borrow */
	cf_registry_free(a->reg);
	fbsig_root_free(a->root);
	ag_state_free(a->st);
	ag_identity_wipe(&a->id);
	memset(a, 0, sizeof *a);
}

/* ---- HTTP helpers --------------------------------------------------------- */

/* "status 403 forbidden: message" for an unexpected answer. */
static void unexpected(struct fb_err *err, const char *what, const struct fbc_resp *r)
{
	fb_err_set(err, "%s: HTTP %ld%s%s%s%s", what, r->status, r->err_code[0] ? " " : "",
	           r->err_code, r->err_msg[0] ? ": " : "", r->err_msg);
}

static enum fb_rc post_json(struct ag *a, const char *path, json_t *body, int auth,
                            struct fbc_resp *resp, struct fb_err *err)
{
	char *text = json_dumps(body, JSON_COMPACT);
	if (!text)
		return FB_ENOMEM;
	size_t len = strlen(text);
	struct fbc_req req = {.method = "POST",
	                      .path = path,
	                      .body = text,
	                      .body_len = len,
	                      .auth = auth,
	                      .max_body = AG_MAX_SMALL_RESP};
	enum fb_rc rc = fbc_do(a->http, &req, resp, err);
	sodium_memzero(text, len);
	free(text);
	return rc;
}

/* The host's platform facts from uname(2), in the protocol's charset: os
 * (the kernel's name, lower case), os_build (its release), arch (the
 * machine). A new reference; NULL when uname fails. */
static json_t *ag_platform(void)
{
	struct utsname u;
	if (uname(&u) != 0)
		return NULL;
	char *f[3] = {u.sysname, u.release, u.machine};
	size_t max[3] = {32, 32, 16};
	for (int k = 0; k < 3; k++) {
		size_t n = 0;
		for (char *c = f[k]; *c && n < max[k]; c++) {
			char ch = *c;
			if (k == 0 && ch >= 'A' && ch <= 'Z')
				ch = (char)(ch - 'A' + 'a');
			if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-')
				f[k][n++] = ch;
		}
		f[k][n] = '\0';
		if (n == 0)
			snprintf(f[k], 2, "x");
	}
	return json_pack("{s:s, s:s, s:s}", "os", u.sysname, "os_build", u.release, "arch",
	                 u.machine);
}

/* ---- enroll --------------------------------------------------------------- */

enum fb_rc ag_enroll(struct ag *a, struct fb_err *err)
{
	if (a->id.agent_id > 0)
		return FB_OK;
	enum fb_rc rc = FB_OK;
	struct fbc_resp r;
	fbc_resp_init(&r);
	json_t *body = NULL, *ans = NULL;
	if (!a->cfg->enroll_token || !a->cfg->enroll_token[0]) {
		fb_err_set(err, "not enrolled yet and no enrollment token configured "
		                "(--enroll-token or enroll_token = ...)");
		return FB_EINVAL;
	}
	/* Keep the key from an earlier attempt: re-enrolling it is idempotent. */
	int found = 0;
	struct fb_err lerr = {""};
	if (ag_identity_load(a->cfg->state_dir, &a->id, &found, &lerr) || !found ||
	    sodium_is_zero(a->id.pk, sizeof a->id.pk)) {
		ag_identity_generate(&a->id);
		if ((rc = ag_identity_save(a->cfg->state_dir, &a->id, err)))
			goto out;
	}
	char pk[64], host[256] = "";
	sodium_bin2base64(pk, sizeof pk, a->id.pk, sizeof a->id.pk, sodium_base64_VARIANT_ORIGINAL);
	if (a->cfg->hostname && a->cfg->hostname[0])
		snprintf(host, sizeof host, "%s", a->cfg->hostname);
	else if (gethostname(host, sizeof host - 1))
		snprintf(host, sizeof host, "unknown");
	host[sizeof host - 1] = '\0';
	body = json_pack("{s:s, s:s, s:s, s:s, s:O}", "enrollment_token", a->cfg->enroll_token,
	                 "public_key", pk, "hostname", host, "agent_version", AG_VERSION,
	                 "capabilities", a->caps);
	json_t *plat = ag_platform();
	if (body && plat)
		json_object_set(body, "platform", plat);
	json_decref(plat);
	if (!body) {
		rc = FB_ENOMEM;
		goto out;
	}
	if ((rc = post_json(a, "/v1/enroll", body, 0, &r, err)))
		goto out;
	if (r.status != 200 && r.status != 201) {
		unexpected(err, "enroll", &r);
		rc = r.status == 401 || r.status == 403 ? FB_EPERM : FB_EIO;
		goto out;
	}
	ans = json_loadb(r.body.data, r.body.len, 0, NULL);
	json_t *jid = json_object_get(ans, "agent_id");
	const char *tok = json_string_value(json_object_get(ans, "agent_token"));
	if (!json_is_integer(jid) || json_integer_value(jid) <= 0 || !tok ||
	    strlen(tok) > AG_MAX_TOKEN || !tok[0]) {
		fb_err_set(err, "enroll: answer lacks a positive agent_id or an agent_token");
		rc = FB_EINVAL;
		goto out;
	}
	a->id.agent_id = json_integer_value(jid);
	snprintf(a->id.token, sizeof a->id.token, "%s", tok);
	if ((rc = fbc_set_token(a->http, a->id.token))) {
		fb_err_set(err, "enroll: agent_token has invalid characters");
		goto out;
	}
	if ((rc = ag_identity_save(a->cfg->state_dir, &a->id, err)))
		goto out;
	ag_log("info", "enrolled as agent %lld (%s)", (long long)a->id.agent_id,
	       r.status == 201 ? "new" : "already known");
out:
	if (rc)
		a->id.agent_id = 0;
	if (r.body.data)
		sodium_memzero(r.body.data, r.body.len);
	if (body) {
		json_t *v = json_object_get(body, "enrollment_token");
		sodium_memzero((char *)json_string_value(v), json_string_length(v));
	}
	if (ans) {
		json_t *v = json_object_get(ans, "agent_token");
		if (json_is_string(v))
			sodium_memzero((char *)json_string_value(v), json_string_length(v));
	}
	json_decref(body);
	json_decref(ans);
	fbc_resp_cleanup(&r);
	return rc;
}

/* ---- events --------------------------------------------------------------- */

static int follows(const struct ag *a, uint32_t ch)
{
	if (a->n_channels == 0)
		return 1;
	for (size_t i = 0; i < a->n_channels; i++)
		if (a->channels[i] == ch)
			return 1;
	return 0;
}

/* A stable id: prefix + the first 24 hex digits of sha256(parts). */
static void stable_id(char *out, size_t n, const char *prefix, const char *parts)
{
	char h[FB_SHA256_HEX_LEN + 1];
	fb_sha256_hex(parts, strlen(parts), h);
	snprintf(out, n, "%s-%.24s", prefix, h);
}

/* Log a refusal and queue its "rejected" event. The protocol's event needs a
 * channel and a content digest; without them (a document that names none)
 * the refusal is only logged. The reason is cut to the protocol's 512 bytes
 * on a UTF-8 character boundary. */
static void report_rejected(struct ag *a, uint32_t ch, const char *sha256, const char *reason)
{
	if (ch)
		ag_log("warn", "rejected channel %u content %s: %s", ch,
		       sha256 && sha256[0] ? sha256 : "(none)", reason);
	else
		ag_log("warn", "rejected: %s", reason);
	if (!ch || !sha256 || !fb_is_sha256_hex(sha256))
		return;
	char cut[AG_EVENT_MAX_REASON + 1];
	size_t n = strlen(reason);
	if (n > AG_EVENT_MAX_REASON) {
		n = AG_EVENT_MAX_REASON;
		while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(cut, reason, n);
	cut[n] = '\0';
	char parts[1024], id[64];
	snprintf(parts, sizeof parts, "%u|%s|%s", ch, sha256, cut);
	stable_id(id, sizeof id, "rejected", parts);
	json_t *ev = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s}", "id", id, "kind", "rejected", "at",
	                       (json_int_t)now_s(), "channel", (json_int_t)ch, "content", sha256,
	                       "reason", cut);
	if (!ev || ag_event_add(a->st, ev))
		ag_log("error", "cannot queue the rejected event (out of memory or not UTF-8)");
}

enum fb_rc ag_flush_events(struct ag *a, struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	struct fbc_resp r;
	fbc_resp_init(&r);
	json_t *body = NULL;
	size_t expired = ag_events_expire(a->st, now_s());
	if (expired)
		ag_log("warn", "dropped %zu pending events older than 7 days", expired);
	size_t batch = AG_EVENTS_PER_POST;
	while (json_array_size(a->st->events) > 0) {
		if (a->id.agent_id <= 0) {
			fb_err_set(err, "events: not enrolled");
			rc = FB_EINVAL;
			goto out;
		}
		size_t n = json_array_size(a->st->events);
		if (n > batch)
			n = batch;
		json_t *evs = json_array();
		for (size_t i = 0; evs && i < n; i++)
			json_array_append(evs, json_array_get(a->st->events, i));
		json_decref(body);
		body = json_pack("{s:I, s:o}", "agent_id", (json_int_t)a->id.agent_id, "events",
		                 evs);
		if (!body) {
			rc = FB_ENOMEM;
			goto out;
		}
		if ((rc = post_json(a, "/v1/events", body, 1, &r, err)))
			goto out;
		if (r.status == 200) {
			json_t *ans = json_loadb(r.body.data, r.body.len, 0, NULL);
			ag_log("info", "reported %zu event(s): %lld accepted, %lld duplicates", n,
			       (long long)json_integer_value(json_object_get(ans, "accepted")),
			       (long long)json_integer_value(json_object_get(ans, "duplicates")));
			json_decref(ans);
			ag_events_remove_first(a->st, n);
			batch = AG_EVENTS_PER_POST;
		} else if (r.status == 400 && n > 1) {
			batch = 1; /* find the one the server refuses */
			continue;
		} else if (r.status == 400 || r.status == 422) {
			const char *id = json_string_value(
			        json_object_get(json_array_get(a->st->events, 0), "id"));
			ag_log("error", "server refused event %s (dropped): %s %s", id ? id : "?",
			       r.err_code, r.err_msg);
			ag_events_remove_first(a->st, 1);
		} else {
			unexpected(err, "events", &r);
			rc = FB_EIO;
			goto out;
		}
		if ((rc = ag_state_save(a->st, err)))
			goto out;
	}
out:
	json_decref(body);
	fbc_resp_cleanup(&r);
	return rc;
}

/* ---- evaluation and heartbeat --------------------------------------------- */

void ag_evaluate(struct ag *a)
{
	struct ag_scan_opts o = {.input = a->cfg->scan_input,
	                         .max_events = (size_t)a->cfg->scan_max_events,
	                         .budget = 0, /* CF_DEFAULT_BUDGET, as the preflight */
	                         .max_ms = a->cfg->scan_max_ms,
	                         .log = ag_log};
	struct ag_scan_result res;
	struct fb_err err = {""};
	if (ag_scan_pass(&a->scanner, a->st, a->reg, &o, &a->health, &res, &err)) {
		ag_log("warn", "evaluation pass: %s", err.msg);
		return;
	}
	if (res.channels)
		ag_log("debug",
		       "evaluated %zu event(s) against %zu channel(s): %llu evaluations, %llu "
		       "detection(s) in %lld ms",
		       res.events, res.channels, (unsigned long long)res.evals,
		       (unsigned long long)res.matches, (long long)res.ms);
}

enum fb_rc ag_heartbeat(struct ag *a, struct fb_err *err)
{
	enum fb_rc rc;
	struct fbc_resp r;
	fbc_resp_init(&r);
	json_t *active = ag_state_active_json(a->st);
	json_t *body = NULL, *health = NULL;
	char *htext = NULL;
	struct ag_cpu_times host_now;
	int host_ok = 0;
	int64_t now = fb_mono_ms();
	if (!active) {
		rc = FB_ENOMEM;
		goto out;
	}
	/* The health object is measured whether or not it is sent, so that the
	 * next interval starts here either way. */
	ag_health_sample(&a->health, now, 1);
	health = ag_health_json(&a->health, now, active, &host_now, &host_ok);
	if (!health) {
		rc = FB_ENOMEM;
		goto out;
	}
	int send_health = a->cfg->health && (!a->health_refused_ms ||
	                                     now - a->health_refused_ms >= AG_HEALTH_RETRY_MS);
	body = json_pack("{s:I, s:s, s:I, s:s, s:o, s:O}", "agent_id", (json_int_t)a->id.agent_id,
	                 "boot_id", a->boot.boot_id, "uptime_s",
	                 (json_int_t)((now - a->started_mono_ms) / 1000), "agent_version",
	                 AG_VERSION, "active", active, "capabilities", a->caps);
	active = NULL;
	if (!body || (send_health && json_object_set(body, "health", health))) {
		rc = FB_ENOMEM;
		goto out;
	}
	/* The platform facts go with the first heartbeat after each start. */
	json_t *plat = a->platform_sent ? NULL : ag_platform();
	if (plat)
		json_object_set_new(body, "platform", plat);
	if ((rc = post_json(a, "/v1/heartbeat", body, 1, &r, err)))
		goto out;
	if (r.status == 400 && send_health && strstr(r.err_msg, "health")) {
		/* A server that does not take (this) health object must still see
		 * the host alive: resend without it, and try it again later. */
		ag_log("warn",
		       "server refused the heartbeat's health object (%s); sent without it, "
		       "health is tried again in %d minutes",
		       r.err_msg, AG_HEALTH_RETRY_MS / 60000);
		a->health_refused_ms = now;
		send_health = 0;
		json_object_del(body, "health");
		if ((rc = post_json(a, "/v1/heartbeat", body, 1, &r, err)))
			goto out;
	}
	if (r.status != 202 && r.status != 200) {
		unexpected(err, "heartbeat", &r);
		rc = FB_EIO;
		goto out;
	}
	if (send_health) {
		a->health_refused_ms = 0;
		htext = json_dumps(health, JSON_COMPACT);
	}
	ag_log("debug", "heartbeat sent%s%s", htext ? " with health " : "", htext ? htext : "");
	a->platform_sent = 1;
	ag_health_reset(&a->health, now, &host_now, host_ok);
out:
	free(htext);
	json_decref(active);
	json_decref(health);
	json_decref(body);
	fbc_resp_cleanup(&r);
	return rc;
}

/* ---- poll and apply ------------------------------------------------------- */

/* Fetch the next root versions until the assignment's root_version is met.
 * Each is accepted with fbsig_root_update and persisted in state/root.json. */
static enum fb_rc update_root(struct ag *a, struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	struct fbc_resp r;
	fbc_resp_init(&r);
	for (int step = 0; step < AG_MAX_ROOT_STEPS; step++) {
		int64_t next = fbsig_root_version(a->root) + 1;
		char path[64];
		snprintf(path, sizeof path, "/v1/roots/%lld", (long long)next);
		struct fbc_req req = {
		        .method = "GET", .path = path, .auth = 0, .max_body = FBSIG_MAX_DOC};
		if ((rc = fbc_do(a->http, &req, &r, err)))
			goto out;
		if (r.status == 404 && step == 0) {
			struct fbc_req cur = {.method = "GET",
			                      .path = "/v1/root",
			                      .auth = 0,
			                      .max_body = FBSIG_MAX_DOC};
			if ((rc = fbc_do(a->http, &cur, &r, err)))
				goto out;
		}
		if (r.status != 200) {
			unexpected(err, "root update", &r);
			rc = FB_EIO;
			goto out;
		}
		struct fbsig_root *nr = NULL;
		if ((rc = fbsig_root_update(a->root, r.body.data, r.body.len, now_s(), &nr, err))) {
			fb_err_prefix(err, "root version %lld", (long long)next);
			goto out;
		}
		size_t blen = 0;
		const char *bytes = fbsig_root_bytes(nr, &blen);
		char file[PATH_MAX];
		snprintf(file, sizeof file, "%s/root.json", a->cfg->state_dir);
		if ((rc = fb_file_write_atomic(file, bytes, blen, 0644))) {
			fb_err_set(err, "write %s: %s", file, fb_rc_str(rc));
			fbsig_root_free(nr);
			goto out;
		}
		fbsig_root_free(a->root);
		a->root = nr;
		ag_log("info", "root updated to version %lld", (long long)next);
		goto out; /* one version; the caller verifies again and may come back */
	}
out:
	fbc_resp_cleanup(&r);
	return rc;
}

/* Report every followed channel the refused document names (unverified: only
 * used to say what was refused). */
static void reject_assignment(struct ag *a, const char *bytes, size_t len, const char *why)
{
	json_t *doc = json_loadb(bytes, len, 0, NULL);
	json_t *sig = json_object_get(doc, "signed");
	json_t *chs = json_object_get(sig, "channels");
	json_t *seq = json_object_get(sig, "sequence");
	char reason[1024];
	if (strncmp(why, "assignment sequence", 19) == 0)
		snprintf(reason, sizeof reason, "%s", why);
	else if (json_is_integer(seq))
		snprintf(reason, sizeof reason, "assignment sequence %lld: %s",
		         (long long)json_integer_value(seq), why);
	else
		snprintf(reason, sizeof reason, "assignment: %s", why);
	size_t reported = 0;
	const char *key;
	json_t *v;
	json_object_foreach(chs, key, v)
	{
		int64_t ch = 0;
		if (fb_parse_i64(key, 1, UINT32_MAX, &ch) || !follows(a, (uint32_t)ch))
			continue;
		if (reported >= 16)
			break;
		report_rejected(a, (uint32_t)ch, json_string_value(json_object_get(v, "sha256")),
		                reason);
		reported++;
	}
	if (!reported)
		report_rejected(a, 0, NULL, reason);
	json_decref(doc);
}

/* Outcome of one channel's apply. */
enum apply_result { APPLY_DONE, APPLY_REJECTED, APPLY_RETRY };

static enum apply_result apply_entry(struct ag *a, const struct fbsig_assignment *as,
                                     const struct fbsig_assignment_entry *e, struct fb_err *err)
{
	enum apply_result res = APPLY_REJECTED;
	struct fbc_resp r;
	fbc_resp_init(&r);
	struct cf_file *f = NULL;
	struct fb_err verr = {""};
	char path[128], reason[1024];
	snprintf(path, sizeof path, "/v1/blobs/%s", e->sha256);
	size_t cap = e->size > 0 ? (size_t)e->size : 1;
	if (e->size > (int64_t)CF_MAX_FILE) {
		snprintf(reason, sizeof reason, "manifest size %lld is over the %u-byte file cap",
		         (long long)e->size, CF_MAX_FILE);
		goto rejected;
	}
	struct fbc_req req = {.method = "GET", .path = path, .max_body = cap};
	enum fb_rc rc = fbc_do(a->http, &req, &r, &verr);
	if (rc == FB_ETOOBIG) {
		snprintf(reason, sizeof reason,
		         "content: blob larger than the manifest's %lld bytes", (long long)e->size);
		goto rejected;
	}
	if (rc) {
		fb_err_set(err, "channel %u: download: %s", e->channel, verr.msg);
		res = APPLY_RETRY;
		goto out;
	}
	if (r.status != 200) {
		unexpected(err, path, &r);
		res = APPLY_RETRY;
		goto out;
	}
	if (fbsig_manifest_check_blob(&e->manifest, r.body.data, r.body.len, e->channel, &verr)) {
		snprintf(reason, sizeof reason, "content: %s", verr.msg);
		goto rejected;
	}
	if (cf_parse(a->reg, r.body.data, r.body.len, &f, &verr)) {
		snprintf(reason, sizeof reason, "channel file does not validate: %s", verr.msg);
		goto rejected;
	}
	if (cf_file_channel(f) != e->channel) {
		snprintf(reason, sizeof reason, "channel file header names channel %u, not %u",
		         cf_file_channel(f), e->channel);
		goto rejected;
	}
	if (ag_slot_apply(a->st, e->channel, e->sha256, e->version, r.body.data, r.body.len,
	                  now_s(), &verr)) {
		fb_err_set(err, "channel %u: stage: %s", e->channel, verr.msg);
		res = APPLY_RETRY;
		goto out;
	}
	char parts[256], id[64];
	snprintf(parts, sizeof parts, "%u|%s|%lld", e->channel, e->sha256, (long long)as->sequence);
	stable_id(id, sizeof id, "applied", parts);
	json_t *ev = json_pack("{s:s, s:s, s:I, s:s, s:I, s:s}", "id", id, "kind", "applied", "at",
	                       (json_int_t)now_s(), "boot_id", a->boot.boot_id, "channel",
	                       (json_int_t)e->channel, "content", e->sha256);
	if (!ev || ag_event_add(a->st, ev) || ag_state_save(a->st, &verr))
		ag_log("error", "applied event not queued: %s", verr.msg);
	ag_log("info", "applied channel %u content %s (version %lld, assignment %lld)", e->channel,
	       e->sha256, (long long)e->version, (long long)as->sequence);
	res = APPLY_DONE;
	crash_hook(a, e->channel, e->sha256, "was just applied");
	goto out;
rejected:
	report_rejected(a, e->channel, e->sha256, reason);
out:
	cf_file_free(f);
	fbc_resp_cleanup(&r);
	return res;
}

static const struct fbsig_assignment_entry *find_entry(const struct fbsig_assignment *as,
                                                       uint32_t ch)
{
	for (size_t i = 0; i < as->n_channels; i++)
		if (as->channels[i].channel == ch)
			return &as->channels[i];
	return NULL;
}

/* Apply a verified assignment: every followed channel. FB_EIO when a
 * download must be retried (the sequence is then not recorded). */
static enum fb_rc apply_assignment(struct ag *a, const struct fbsig_assignment *as,
                                   struct fb_err *err)
{
	enum fb_rc rc = FB_OK;
	uint32_t pending_channels[2 * AG_MAX_CHANNELS];
	size_t n = 0;
	if (a->n_channels) {
		memcpy(pending_channels, a->channels, a->n_channels * sizeof pending_channels[0]);
		n = a->n_channels;
	} else {
		for (size_t i = 0; i < as->n_channels && n < AG_MAX_CHANNELS; i++)
			pending_channels[n++] = as->channels[i].channel;
		for (size_t i = 0; i < a->st->n_channels; i++)
			if (a->st->ch[i].active != AG_SLOT_NONE && !find_entry(as, a->st->ch[i].id))
				pending_channels[n++] = a->st->ch[i].id;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t ch = pending_channels[i];
		const struct fbsig_assignment_entry *e = find_entry(as, ch);
		size_t lifted = ag_refusals_lift(a->st, ch, e ? e->sha256 : "", as->sequence);
		if (lifted)
			ag_log("info",
			       "channel %u: assignment %lld names other content: %zu "
			       "refusal(s) lifted",
			       ch, (long long)as->sequence, lifted);
		if (!e) {
			const char *cur = ag_state_active(a->st, ch);
			if (!cur)
				continue;
			struct fb_err derr = {""};
			if (ag_slot_deactivate(a->st, ch, now_s(), &derr)) {
				fb_err_set(err, "channel %u: deactivate: %s", ch, derr.msg);
				rc = FB_EIO;
				continue;
			}
			ag_log("info", "channel %u absent from assignment %lld: deactivated", ch,
			       (long long)as->sequence);
			continue;
		}
		const char *cur = ag_state_active(a->st, ch);
		if (cur && strcmp(cur, e->sha256) == 0)
			continue;
		const struct ag_refusal *ref = ag_refused(a->st, ch, e->sha256);
		if (ref) {
			ag_log("warn", "channel %u content %s not applied: refused (%s)", ch,
			       e->sha256, ref->reason);
			continue;
		}
		if (apply_entry(a, as, e, err) == APPLY_RETRY)
			rc = FB_EIO;
	}
	return rc;
}

enum fb_rc ag_poll(struct ag *a, struct fb_err *err)
{
	enum fb_rc rc;
	struct fbc_resp r;
	fbc_resp_init(&r);
	struct fbsig_assignment *as = NULL;
	struct fbc_req req = {.method = "GET",
	                      .path = "/v1/poll",
	                      .auth = 1,
	                      .if_none_match = a->st->etag,
	                      .max_body = FBSIG_MAX_DOC};
	if ((rc = fbc_do(a->http, &req, &r, err)))
		goto out;
	if (r.status == 304) {
		ag_log("debug", "poll: not modified (assignment %lld)", (long long)a->st->sequence);
		goto out;
	}
	if (r.status != 200) {
		unexpected(err, "poll", &r);
		rc = FB_EIO;
		goto out;
	}
	char doc_sha[FB_SHA256_HEX_LEN + 1];
	fb_sha256_hex(r.body.data, r.body.len, doc_sha);
	if (a->st->doc_sha[0] && strcmp(doc_sha, a->st->doc_sha) == 0) {
		/* The document already accepted (e.g. ETag lost): nothing new. */
		snprintf(a->st->etag, sizeof a->st->etag, "%s", r.etag);
		rc = ag_state_save(a->st, err);
		goto out;
	}
	struct fb_err verr = {""};
	int64_t now = now_s();
	rc = fbsig_assignment_verify(a->root, r.body.data, r.body.len, now, a->st->sequence, &as,
	                             &verr);
	for (int i = 0; rc == FB_ECONFLICT && i < AG_MAX_ROOT_STEPS; i++) {
		struct fb_err uerr = {""};
		if (update_root(a, &uerr)) {
			snprintf(verr.msg, sizeof verr.msg,
			         "needs a newer root; update failed: %.400s", uerr.msg);
			break;
		}
		verr.msg[0] = '\0';
		rc = fbsig_assignment_verify(a->root, r.body.data, r.body.len, now, a->st->sequence,
		                             &as, &verr);
	}
	if (rc) {
		reject_assignment(a, r.body.data, r.body.len, verr.msg);
		/* Remember its ETag so the same refused document is not fetched again;
		 * the accepted sequence stays. */
		snprintf(a->st->etag, sizeof a->st->etag, "%s", r.etag);
		rc = ag_state_save(a->st, err);
		goto out;
	}
	ag_log("info", "assignment %lld for %s verified (%zu channel(s), expires %lld)",
	       (long long)as->sequence, as->audience, as->n_channels, (long long)as->expires);
	if ((rc = apply_assignment(a, as, err))) {
		struct fb_err serr = {""};
		if (ag_state_save(a->st, &serr))
			ag_log("error", "state not saved: %s", serr.msg);
		goto out; /* retried on the next poll: sequence not recorded */
	}
	a->st->sequence = as->sequence;
	memcpy(a->st->doc_sha, doc_sha, sizeof doc_sha);
	snprintf(a->st->etag, sizeof a->st->etag, "%s", r.etag);
	rc = ag_state_save(a->st, err);
out:
	fbsig_assignment_free(as);
	fbc_resp_cleanup(&r);
	return rc;
}

enum fb_rc ag_cycle(struct ag *a, struct fb_err *err)
{
	enum fb_rc rc = ag_enroll(a, err);
	if (rc)
		return rc;
	struct fb_err e2 = {""};
	enum fb_rc prc = ag_poll(a, err);
	if (prc)
		ag_log("error", "poll: %s", err->msg);
	/* Evaluate what is active now (possibly just applied) before reporting. */
	ag_evaluate(a);
	/* Heartbeat and events even when the poll failed: telemetry matters most
	 * when content misbehaves. */
	enum fb_rc hrc = ag_heartbeat(a, &e2);
	if (hrc) {
		ag_log("error", "heartbeat: %s", e2.msg);
		if (!prc)
			*err = e2;
	}
	enum fb_rc erc = ag_flush_events(a, &e2);
	if (erc) {
		ag_log("error", "events: %s", e2.msg);
		if (!prc && !hrc)
			*err = e2;
	}
	return prc ? prc : hrc ? hrc : erc;
}
