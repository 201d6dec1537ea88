/* Agents: the per-agent table in memory, enrollment tokens, enrollment,
 * the agent list, revocation. */
#include "agents.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "audit.h"
#include "auth.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "validate.h"

/* ---- the agent table ----------------------------------------------------- */

_Static_assert(sizeof(struct agent_slot) == 8, "an agent slot is 8 bytes");

static pthread_rwlock_t g_agents_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct agent_slot *g_agents;
static size_t g_agents_cap;
static int64_t g_agents_max;

/* Set once by the wiring before the server starts, read by any thread. */
static const struct agents_snapshot *g_snap;

void agents_set_snapshot(const struct agents_snapshot *ops)
{
	g_snap = ops;
}

/* Caller holds g_agents_lock for writing. */
static enum fb_rc reserve_locked(int64_t id)
{
	if ((size_t)id < g_agents_cap)
		return FB_OK;
	/* An eighth of headroom in 64 Ki-entry steps (512 KiB): large tables are
	 * mmap()ed, so growing one is a mremap, not a copy, and doubling would
	 * leave up to half of the table unused. */
	size_t ncap = ((size_t)id + (size_t)id / 8 + 65536) & ~(size_t)65535;
	struct agent_slot *n = realloc(g_agents, ncap * sizeof *n);
	if (!n)
		return FB_ENOMEM;
	memset(n + g_agents_cap, 0, (ncap - g_agents_cap) * sizeof *n);
	g_agents = n;
	g_agents_cap = ncap;
	return FB_OK;
}

enum fb_rc agents_reserve(int64_t top)
{
	pthread_rwlock_wrlock(&g_agents_lock);
	enum fb_rc rc = reserve_locked(top);
	pthread_rwlock_unlock(&g_agents_lock);
	return rc;
}

int64_t agents_max_id(void)
{
	pthread_rwlock_rdlock(&g_agents_lock);
	int64_t max = g_agents_max;
	pthread_rwlock_unlock(&g_agents_lock);
	return max;
}

enum fb_rc agents_store(int64_t id, const struct agent_slot *a, int keep_cls)
{
	if (id <= 0 || id > AGENTS_ID_MAX)
		return FB_EINVAL;
	struct agent_slot n = *a;
	n.flags = AGENT_KNOWN | (a->flags & AGENT_REVOKED);
	pthread_rwlock_wrlock(&g_agents_lock);
	enum fb_rc rc = reserve_locked(id);
	if (!rc) {
		if (keep_cls && (g_agents[id].flags & AGENT_KNOWN))
			n.cls = g_agents[id].cls;
		g_agents[id] = n;
		if (id > g_agents_max)
			g_agents_max = id;
	}
	pthread_rwlock_unlock(&g_agents_lock);
	return rc;
}

int agents_set_class(int64_t id, uint16_t cls)
{
	/* Nearly always unchanged: look under the read lock, write only when not. */
	int known = 0, changed = 0;
	pthread_rwlock_rdlock(&g_agents_lock);
	if (id > 0 && (size_t)id < g_agents_cap && (g_agents[id].flags & AGENT_KNOWN))
		known = 1, changed = g_agents[id].cls != cls;
	pthread_rwlock_unlock(&g_agents_lock);
	if (!known || !changed)
		return 0;
	changed = 0;
	pthread_rwlock_wrlock(&g_agents_lock);
	if (id > 0 && (size_t)id < g_agents_cap && (g_agents[id].flags & AGENT_KNOWN)) {
		changed = g_agents[id].cls != cls;
		g_agents[id].cls = cls;
	}
	pthread_rwlock_unlock(&g_agents_lock);
	return changed;
}

int agents_get(int64_t id, struct agent_slot *out)
{
	int ok = 0;
	pthread_rwlock_rdlock(&g_agents_lock);
	if (id > 0 && (size_t)id < g_agents_cap && (g_agents[id].flags & AGENT_KNOWN)) {
		*out = g_agents[id];
		ok = 1;
	}
	pthread_rwlock_unlock(&g_agents_lock);
	return ok;
}

/* Place an agent through the snapshot (agents_snapshot.place). */
static enum fb_rc place(int64_t id, const json_t *tags, const json_t *caps, int group_id,
                        int revoked)
{
	return g_snap ? g_snap->place(id, tags, caps, group_id, revoked) : FB_EINTERNAL;
}

/* Load one agent from the database (it enrolled through another replica):
 * 1 loaded, 0 no such agent, -1 the database could not be asked. */
static int agent_load(int64_t id)
{
	const char *why;
	PGconn *c = db_acquire(app.db, (int)cfg.db_wait_ms, &why);
	if (!c)
		return -1;
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	const char *p[] = {ids};
	PGresult *r = db_exec(
	        c, NULL,
	        "SELECT tags::text, coalesce(capabilities, '[]')::text, revoked_at IS NOT NULL, "
	        "group_id FROM agents WHERE id = $1",
	        1, p);
	db_release(app.db, c);
	int ok = r ? 0 : -1;
	if (r && PQntuples(r) == 1) {
		json_t *tags = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
		json_t *caps = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
		ok = place(id, tags, caps, (int)strtol(PQgetvalue(r, 0, 3), NULL, 10),
		           strcmp(PQgetvalue(r, 0, 2), "t") == 0) == FB_OK;
		json_decref(tags);
		json_decref(caps);
	}
	PQclear(r);
	return ok;
}

int agents_find(int64_t id, struct agent_slot *out)
{
	if (agents_get(id, out))
		return 1;
	int loaded = agent_load(id);
	if (loaded < 0)
		return -1;
	return loaded && agents_get(id, out);
}

int agents_ok(int64_t id)
{
	struct agent_slot a;
	int found = agents_find(id, &a);
	return found < 0 ? -1 : found && !(a.flags & AGENT_REVOKED);
}

void agents_count_by_ring(int nr, int64_t *sizes, int64_t *held,
                          int (*is_held)(int64_t id, int ring, void *arg), void *arg)
{
	for (int i = 0; i < nr; i++) {
		sizes[i] = 0;
		if (held)
			held[i] = 0;
	}
	pthread_rwlock_rdlock(&g_agents_lock);
	for (int64_t id = 1; id <= g_agents_max && (size_t)id < g_agents_cap; id++) {
		const struct agent_slot *a = &g_agents[id];
		if (!(a->flags & AGENT_KNOWN) || (a->flags & AGENT_REVOKED) || a->ring >= nr)
			continue;
		sizes[a->ring]++;
		if (held)
			held[a->ring] += is_held(id, a->ring, arg);
	}
	pthread_rwlock_unlock(&g_agents_lock);
}

int64_t agents_count_if(int (*pred)(int64_t id, const struct agent_slot *a, void *arg), void *arg)
{
	int64_t n = 0;
	pthread_rwlock_rdlock(&g_agents_lock);
	for (int64_t id = 1; id <= g_agents_max && (size_t)id < g_agents_cap; id++) {
		const struct agent_slot *a = &g_agents[id];
		if ((a->flags & AGENT_KNOWN) && !(a->flags & AGENT_REVOKED) && pred(id, a, arg))
			n++;
	}
	pthread_rwlock_unlock(&g_agents_lock);
	return n;
}

void agents_cleanup(void)
{
	pthread_rwlock_wrlock(&g_agents_lock);
	free(g_agents);
	g_agents = NULL;
	g_agents_cap = 0;
	g_agents_max = 0;
	pthread_rwlock_unlock(&g_agents_lock);
}

/* The name of agent id's ring (agents_snapshot.ring), or NULL. */
static const char *ring_of(int64_t id, char *buf, size_t n)
{
	return g_snap ? g_snap->ring(id, buf, n) : NULL;
}

/* A new publication through the snapshot (agents_snapshot.publish). */
static enum fb_rc publish(PGconn *c, const char *reason, struct fb_err *err)
{
	if (!g_snap) {
		fb_err_set(err, "agents: no snapshot to publish through");
		return FB_EINTERNAL;
	}
	return g_snap->publish(c, reason, err);
}

/* ---- handlers ------------------------------------------------------------ */

void agents_enrollment_token_create(struct http_req *req)
{
	json_t *body = http_req_json_or_reply(req);
	if (!body)
		return;
	PGconn *c = NULL;
	static const char *const allowed[] = {"name",  "tags", "expires_in_s", "max_uses", "tenant",
	                                      "group", NULL};
	if (!val_fields_or_reply(req, body, allowed))
		goto out;
	const char *name = val_string_or_reply(req, body, "name", 1, 128, 1);
	if (!name)
		goto out;
	const struct auth *who = http_req_auth(req);
	const char *tenant = who->tenant_id ? who->tenant : "default", *group = "default";
	if ((json_object_get(body, "tenant") &&
	     !(tenant = val_string_or_reply(req, body, "tenant", 1, 64, 1))) ||
	    (json_object_get(body, "group") &&
	     !(group = val_string_or_reply(req, body, "group", 1, 64, 1))))
		goto out;
	json_t *tags = json_object_get(body, "tags");
	if (tags && !val_tags_or_reply(req, tags))
		goto out;
	int64_t expires_in = 0, max_uses = 0;
	if (!val_int_or_reply(req, body, "expires_in_s", 60, 31536000, 0, &expires_in) ||
	    !val_int_or_reply(req, body, "max_uses", 1, 100000000, 0, &max_uses))
		goto out;
	c = app_db_or_reply(req);
	if (!c)
		goto out;
	/* The host group its agents join: a tenant's credential names only its
	 * own tenant (another's is 404, as if it did not exist). */
	char gid[16];
	{
		struct fb_err gerr;
		char own[24];
		snprintf(own, sizeof own, "%lld", (long long)who->tenant_id);
		const char *pg[] = {tenant, group, who->tenant_id ? own : NULL};
		PGresult *gr = db_exec(c, &gerr,
		                       "SELECT (SELECT t.id FROM tenants t WHERE t.name = $1 AND "
		                       "($3::int IS NULL OR t.id = $3::int)), (SELECT g.id FROM "
		                       "host_groups g JOIN tenants t ON t.id = g.tenant_id WHERE "
		                       "t.name = $1 AND g.name = $2 AND ($3::int IS NULL OR t.id = "
		                       "$3::int))",
		                       3, pg);
		if (!gr) {
			http_unavailable(req, gerr.msg);
			goto out;
		}
		int no_tenant = PQgetisnull(gr, 0, 0), no_group = PQgetisnull(gr, 0, 1);
		snprintf(gid, sizeof gid, "%s", PQgetvalue(gr, 0, 1));
		PQclear(gr);
		if (no_tenant) {
			http_error(req, 404, "not_found", "no tenant %s", tenant);
			goto out;
		}
		if (no_group) {
			http_error(req, 400, "invalid",
			           "field 'group': tenant '%s' has no group '%s'", tenant, group);
			goto out;
		}
	}
	unsigned char rnd[32];
	randombytes_buf(rnd, sizeof rnd);
	char token[3 + 64 + 1] = "fe_";
	fb_hex_encode(rnd, sizeof rnd, token + 3);
	sodium_memzero(rnd, sizeof rnd);
	char hash[FB_SHA256_HEX_LEN + 1];
	fb_sha256_hex(token, strlen(token), hash);
	json_t *tags_obj = tags ? json_incref(tags) : json_object();
	char *tags_s = json_dumps(tags_obj, JSON_COMPACT);
	char exp[32], uses[32];
	snprintf(exp, sizeof exp, "%lld", (long long)expires_in);
	snprintf(uses, sizeof uses, "%lld", (long long)max_uses);
	const char *p[] = {name, hash, tags_s, expires_in ? exp : NULL, max_uses ? uses : NULL,
	                   gid};
	struct fb_err err;
	PGresult *r = NULL;
	if (db_cmd(c, &err, "BEGIN") ||
	    !(r = db_exec(c, &err,
	                  "INSERT INTO enrollment_tokens (name, token_hash, tags, expires_at, "
	                  "max_uses, group_id) VALUES ($1, decode($2, 'hex'), $3::jsonb, now() + "
	                  "make_interval(secs => $4::int), $5, $6) RETURNING id",
	                  6, p))) {
		free(tags_s);
		json_decref(tags_obj);
		http_unavailable(req, err.msg);
		goto out;
	}
	json_int_t id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	free(tags_s);
	char obj[48];
	snprintf(obj, sizeof obj, "enrollment_token/%lld", (long long)id);
	json_t *after = json_pack("{s:s,s:o,s:s,s:s}", "name", name, "tags", tags_obj, "tenant",
	                          tenant, "group", group);
	enum fb_rc rc = audit_write(c, http_req_auth(req), http_req_id(req),
	                            "enrollment_token.create", obj, NULL, after, NULL, &err);
	json_decref(after);
	if (rc || db_cmd(c, &err, "COMMIT")) {
		http_unavailable(req, err.msg);
		goto out;
	}
	http_reply_json(req, 201,
	                json_pack("{s:I,s:s,s:s,s:s,s:s}", "id", id, "name", name, "token", token,
	                          "tenant", tenant, "group", group));
	sodium_memzero(token, sizeof token);
out:
	if (c)
		db_release(app.db, c);
	json_decref(body);
}

void agents_enroll(struct http_req *req)
{
	json_t *body = http_req_json_or_reply(req);
	if (!body)
		return;
	PGconn *c = NULL;
	PGresult *r = NULL;
	static const char *const allowed[] = {
	        "enrollment_token", "public_key", "hostname", "agent_version",
	        "capabilities",     "platform",   NULL};
	if (!val_fields_or_reply(req, body, allowed))
		goto out;
	const char *etok = val_string_or_reply(req, body, "enrollment_token", 67, 67, 1);
	const char *pk64 = etok ? val_string_or_reply(req, body, "public_key", 40, 48, 1) : NULL;
	if (!pk64)
		goto out;
	unsigned char pk[32];
	size_t pklen;
	if (sodium_base642bin(pk, sizeof pk, pk64, strlen(pk64), NULL, &pklen, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    pklen != sizeof pk) {
		http_error(req, 400, "invalid",
		           "field 'public_key' must be the base64 of a 32-byte Ed25519 key");
		goto out;
	}
	const char *hostname = val_string_or_reply(req, body, "hostname", 0, 255, 0);
	const char *version = val_string_or_reply(req, body, "agent_version", 0, 64, 0);
	json_t *caps = json_object_get(body, "capabilities");
	json_t *platform = json_object_get(body, "platform");
	if ((json_object_get(body, "hostname") && !hostname) ||
	    (json_object_get(body, "agent_version") && !version) ||
	    !val_capabilities_or_reply(req, caps, 1) || !val_platform_or_reply(req, platform))
		goto out;
	const char *os = json_string_value(json_object_get(platform, "os"));
	const char *os_build = json_string_value(json_object_get(platform, "os_build"));
	const char *arch = json_string_value(json_object_get(platform, "arch"));
	json_t *extra = json_object_get(platform, "extra");
	char hash[FB_SHA256_HEX_LEN + 1], pkhex[65];
	fb_sha256_hex(etok, strlen(etok), hash);
	fb_hex_encode(pk, sizeof pk, pkhex);
	c = app_db_or_reply(req);
	if (!c)
		goto out;
	struct fb_err err;
	if (db_cmd(c, &err, "BEGIN")) {
		http_unavailable(req, err.msg);
		goto out;
	}
	const char *p1[] = {hash};
	r = db_exec(c, &err,
	            "SELECT id, tags::text, (expires_at IS NOT NULL AND expires_at < now()), "
	            "(max_uses IS NOT NULL AND uses >= max_uses), revoked_at IS NOT NULL, "
	            "group_id FROM enrollment_tokens WHERE token_hash = decode($1, 'hex') FOR "
	            "UPDATE",
	            1, p1);
	if (!r) {
		http_unavailable(req, err.msg);
		goto out;
	}
	if (PQntuples(r) != 1) {
		http_error(req, 401, "unauthenticated", "unknown enrollment token");
		goto out;
	}
	char etid[24], tags_s[8192], grp[16];
	snprintf(etid, sizeof etid, "%s", PQgetvalue(r, 0, 0));
	snprintf(grp, sizeof grp, "%s", PQgetvalue(r, 0, 5));
	snprintf(tags_s, sizeof tags_s, "%s", PQgetvalue(r, 0, 1));
	int expired = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
	int used_up = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
	int revoked = strcmp(PQgetvalue(r, 0, 4), "t") == 0;
	PQclear(r);
	r = NULL;
	/* Re-enrolling the same key is idempotent and needs no further use. */
	const char *p2[] = {pkhex};
	r = db_exec(c, &err,
	            "SELECT id, tags::text, group_id FROM agents WHERE public_key = "
	            "decode($1, 'hex')",
	            1, p2);
	if (!r) {
		http_unavailable(req, err.msg);
		goto out;
	}
	int existing = PQntuples(r) == 1;
	int64_t id = existing ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	if (existing) { /* it stays in the group it enrolled into */
		snprintf(tags_s, sizeof tags_s, "%s", PQgetvalue(r, 0, 1));
		snprintf(grp, sizeof grp, "%s", PQgetvalue(r, 0, 2));
	}
	PQclear(r);
	r = NULL;
	if (!existing && (expired || used_up || revoked)) {
		http_error(req, 401, "unauthenticated", "enrollment token is %s",
		           revoked   ? "revoked"
		           : expired ? "expired"
		                     : "used up");
		goto out;
	}
	char *caps_s = json_dumps(caps, JSON_COMPACT);
	char *extra_s = extra ? json_dumps(extra, JSON_COMPACT) : NULL;
	if (!existing) {
		const char *p3[] = {pkhex, tags_s,   etid, hostname, version, caps_s,
		                    os,    os_build, arch, extra_s,  grp};
		r = db_exec(
		        c, &err,
		        "INSERT INTO agents (public_key, tags, enrolled_with, hostname, "
		        "agent_version, capabilities, os, os_build, arch, platform_extra, "
		        "group_id) VALUES (decode($1, 'hex'), $2::jsonb, $3, $4, $5, $6::jsonb, "
		        "$7, $8, $9, coalesce($10::jsonb, '{}'), $11) RETURNING id",
		        11, p3);
		if (r)
			id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		r = NULL;
		if (id &&
		    !(r = db_exec(c, &err,
		                  "UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = $1", 1,
		                  (const char *[]){etid})))
			id = 0;
		PQclear(r);
		r = NULL;
	} else {
		char ids[24];
		snprintf(ids, sizeof ids, "%lld", (long long)id);
		const char *p4[] = {ids, caps_s, platform ? "t" : "f", os, os_build, arch, extra_s};
		r = db_exec(
		        c, &err,
		        "UPDATE agents SET capabilities = $2::jsonb, os = CASE WHEN $3 THEN $4 "
		        "ELSE os END, os_build = CASE WHEN $3 THEN $5 ELSE os_build END, arch = "
		        "CASE WHEN $3 THEN $6 ELSE arch END, platform_extra = CASE WHEN $3 THEN "
		        "coalesce($7::jsonb, '{}') ELSE platform_extra END WHERE id = $1",
		        7, p4);
		if (!r)
			id = 0;
		PQclear(r);
		r = NULL;
	}
	free(caps_s);
	free(extra_s);
	if (!id || db_cmd(c, &err, "COMMIT")) {
		http_unavailable(req, err.msg);
		goto out;
	}
	json_t *tags = json_loads(tags_s, 0, NULL);
	if (place(id, tags, caps, (int)strtol(grp, NULL, 10), 0)) {
		json_decref(tags);
		http_error(req, 503, "unavailable", "cannot register agent %lld in memory",
		           (long long)id);
		goto out;
	}
	char tok[AUTH_AGENT_TOKEN_MAX];
	auth_agent_token(id, tok);
	char ring[64];
	const char *rn = ring_of(id, ring, sizeof ring);
	http_reply_json(req, existing ? 200 : 201,
	                json_pack("{s:I,s:s,s:o,s:s}", "agent_id", (json_int_t)id, "agent_token",
	                          tok, "tags", tags ? tags : json_object(), "ring", rn ? rn : ""));
	sodium_memzero(tok, sizeof tok);
out:
	PQclear(r);
	if (c)
		db_release(app.db, c);
	json_decref(body);
}

/* GET /v1/agents?ring=&tag=k=v&content=SHA&health=healthy|silent|never
 * &silent_s=&after=ID&limit=N: agents in id order, filtered; next_after
 * continues the listing. The ring filter is applied from the snapshot. */
void agents_list(struct http_req *req)
{
	const char *lim = http_req_query(req, "limit"), *after = http_req_query(req, "after");
	const char *tag = http_req_query(req, "tag"), *content = http_req_query(req, "content");
	const char *health = http_req_query(req, "health"), *ring = http_req_query(req, "ring");
	const char *silent = http_req_query(req, "silent_s");
	const char *tq = http_req_query(req, "tenant"), *gq = http_req_query(req, "group");
	const struct auth *who = http_req_auth(req);
	char own[24];
	snprintf(own, sizeof own, "%lld", (long long)who->tenant_id);
	int64_t limit = 100, after_id = 0, silent_s = 300;
	if ((lim && fb_parse_i64(lim, 1, 10000, &limit)) ||
	    (after && fb_parse_i64(after, 0, INT64_MAX, &after_id)) ||
	    (silent && fb_parse_i64(silent, 1, 86400 * 365, &silent_s))) {
		http_error(
		        req, 400, "invalid",
		        "limit must be 1..10000, after an agent id, silent_s a number of seconds");
		return;
	}
	const char *eq = tag ? strchr(tag, '=') : NULL;
	if (tag && (!eq || eq == tag || strlen(tag) > 200)) {
		http_error(req, 400, "invalid", "tag must be key=value");
		return;
	}
	if (content && !fb_is_sha256_hex(content)) {
		http_error(req, 400, "invalid", "content must be a sha256 (64 lower-case hex)");
		return;
	}
	if (health && strcmp(health, "healthy") && strcmp(health, "silent") &&
	    strcmp(health, "never")) {
		http_error(req, 400, "invalid", "health must be healthy, silent or never");
		return;
	}
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	char key[201] = "", val[201] = "", ss[24];
	if (eq) {
		snprintf(key, sizeof key, "%.*s", (int)(eq - tag), tag);
		snprintf(val, sizeof val, "%s", eq + 1);
	}
	snprintf(ss, sizeof ss, "%lld", (long long)silent_s);
	json_t *arr = json_array();
	struct fb_err err;
	int64_t cursor = after_id, last = 0;
	int more = 1;
	/* Scan in batches so a ring filter (applied here) still fills the page. */
	while (more && (int64_t)json_array_size(arr) < limit) {
		char cs[24];
		snprintf(cs, sizeof cs, "%lld", (long long)cursor);
		const char *p[] = {cs,
		                   eq ? key : NULL,
		                   eq ? val : NULL,
		                   content,
		                   health,
		                   ss,
		                   who->tenant_id ? own : NULL,
		                   tq,
		                   gq};
		PGresult *r = db_exec(
		        c, &err,
		        "SELECT id, json_build_object('id', id, 'hostname', hostname, 'tags', "
		        "tags, 'tenant', (SELECT t.name FROM host_groups g JOIN tenants t ON t.id "
		        "= "
		        "g.tenant_id WHERE g.id = agents.group_id), 'group', (SELECT g.name FROM "
		        "host_groups g WHERE g.id = agents.group_id), "
		        "'agent_version', agent_version, 'os', os, 'os_build', os_build, 'arch', "
		        "arch, 'active', active, 'last_seen', "
		        "extract(epoch FROM last_seen_at)::bigint, 'revoked', revoked_at IS NOT "
		        "NULL, "
		        "'health', CASE WHEN last_seen_at IS NULL THEN 'never' WHEN last_seen_at "
		        ">= "
		        "now() - make_interval(secs => $6::int) THEN 'healthy' ELSE 'silent' "
		        "END)::text "
		        "FROM agents WHERE id > $1 AND ($2::text IS NULL OR tags ->> $2 = $3) "
		        "AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM jsonb_each_text(active) a "
		        "WHERE a.value = $4)) AND ($5::text IS NULL OR $5 = CASE WHEN last_seen_at "
		        "IS NULL "
		        "THEN 'never' WHEN last_seen_at >= now() - make_interval(secs => $6::int) "
		        "THEN 'healthy' ELSE 'silent' END) AND ($7::int IS NULL OR group_id IN "
		        "(SELECT id FROM host_groups WHERE tenant_id = $7::int)) AND ($8::text IS "
		        "NULL OR group_id IN (SELECT g.id FROM host_groups g JOIN tenants t ON "
		        "t.id "
		        "= g.tenant_id WHERE t.name = $8)) AND ($9::text IS NULL OR group_id IN "
		        "(SELECT id FROM host_groups WHERE name = $9)) ORDER BY id LIMIT 1000",
		        9, p);
		if (!r) {
			db_release(app.db, c);
			json_decref(arr);
			http_unavailable(req, err.msg);
			return;
		}
		int n = PQntuples(r);
		more = n == 1000;
		for (int i = 0; i < n && (int64_t)json_array_size(arr) < limit; i++) {
			int64_t id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
			cursor = id;
			char rb[64];
			const char *rn = ring_of(id, rb, sizeof rb);
			if (ring && (!rn || strcmp(rn, ring) != 0))
				continue;
			json_t *a = json_loads(PQgetvalue(r, i, 1), 0, NULL);
			json_object_set_new(a, "ring", rn ? json_string(rn) : json_null());
			json_array_append_new(arr, a);
			last = id;
		}
		if (n > 0 && (int64_t)json_array_size(arr) >= limit && cursor != last)
			more = 1;
		PQclear(r);
	}
	db_release(app.db, c);
	json_t *out = json_pack("{s:o}", "agents", arr);
	if ((int64_t)json_array_size(arr) >= limit)
		json_object_set_new(out, "next_after", json_integer(last));
	http_reply_json(req, 200, out);
}

void agents_show(struct http_req *req)
{
	int64_t id;
	const char *ids = http_req_param(req, "id");
	if (!val_param_id_or_reply(req, "id", "agent id", INT64_MAX, &id))
		return;
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct fb_err err;
	const struct auth *who = http_req_auth(req);
	char own[24];
	snprintf(own, sizeof own, "%lld", (long long)who->tenant_id);
	const char *p[] = {ids, who->tenant_id ? own : NULL};
	PGresult *r = db_exec(
	        c, &err,
	        "SELECT json_build_object('id', id, 'hostname', hostname, 'tags', tags, "
	        "'tenant', (SELECT t.name FROM host_groups g JOIN tenants t ON t.id = "
	        "g.tenant_id WHERE g.id = agents.group_id), 'group', (SELECT g.name FROM "
	        "host_groups g WHERE g.id = agents.group_id), "
	        "'agent_version', agent_version, 'active', active, 'capabilities', capabilities, "
	        "'platform', json_build_object('os', os, 'os_build', os_build, 'arch', arch, "
	        "'extra', platform_extra), 'boot_id', boot_id, 'uptime_s', uptime_s, 'last_seen', "
	        "extract(epoch FROM last_seen_at)::bigint, 'revoked', revoked_at IS NOT "
	        "NULL)::text "
	        "FROM agents WHERE id = $1 AND ($2::int IS NULL OR group_id IN (SELECT id FROM "
	        "host_groups WHERE tenant_id = $2::int))",
	        2, p);
	db_release(app.db, c);
	if (!r) {
		http_unavailable(req, err.msg);
		return;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		http_error(req, 404, "not_found", "no agent %lld", (long long)id);
		return;
	}
	json_t *a = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	PQclear(r);
	char ring[64];
	const char *rn = ring_of(id, ring, sizeof ring);
	json_object_set_new(a, "ring", rn ? json_string(rn) : json_null());
	http_reply_json(req, 200, a);
}

void agents_revoke(struct http_req *req)
{
	int64_t id;
	const char *ids = http_req_param(req, "id");
	if (!val_param_id_or_reply(req, "id", "agent id", INT64_MAX, &id))
		return;
	PGconn *c = app_db_or_reply(req);
	if (!c)
		return;
	struct fb_err err;
	const char *p[] = {ids};
	PGresult *r = NULL;
	if (db_cmd(c, &err, "BEGIN") ||
	    !(r = db_exec(
	              c, &err,
	              "UPDATE agents SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 "
	              "RETURNING tags::text, group_id",
	              1, p))) {
		http_unavailable(req, err.msg);
		goto out;
	}
	if (PQntuples(r) != 1) {
		http_error(req, 404, "not_found", "no agent %lld", (long long)id);
		goto out;
	}
	char obj[40];
	snprintf(obj, sizeof obj, "agent/%lld", (long long)id);
	json_t *tags = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	int group_id = (int)strtol(PQgetvalue(r, 0, 1), NULL, 10);
	if (audit_write(c, http_req_auth(req), http_req_id(req), "agent.revoke", obj, NULL, NULL,
	                NULL, &err) ||
	    publish(c, "agent revoked", &err) || db_cmd(c, &err, "COMMIT")) {
		json_decref(tags);
		http_unavailable(req, err.msg);
		goto out;
	}
	/* Here at once; other replicas on the NOTIFY. */
	if (place(id, tags, NULL, group_id, 1))
		log_warn("agent %lld revoked but not updated in memory", (long long)id);
	json_decref(tags);
	http_reply_json(req, 200, json_pack("{s:I,s:b}", "id", (json_int_t)id, "revoked", 1));
out:
	PQclear(r);
	db_release(app.db, c);
}
