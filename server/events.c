/* Operator events: the outbox table, NOTIFY, and webhook delivery. */
#include "events.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "log.h"

/* What the SOC must hear about: a halt, its revert reaching the fleet, a
 * rollout the controller paused because it stalled, and a controller that
 * stopped running. */
static int wants_webhook(const char *type)
{
	return strcmp(type, "rollout.halted") == 0 || strcmp(type, "rollout.reverted") == 0 ||
	       strcmp(type, "rollout.stalled") == 0 || strcmp(type, "controller.lost") == 0;
}

enum fb_rc events_emit(PGconn *c, const char *type, int64_t rollout_id, const json_t *data,
                       struct fb_err *err)
{
	char rid[24];
	snprintf(rid, sizeof rid, "%lld", (long long)rollout_id);
	char *d = data ? json_dumps(data, JSON_COMPACT) : NULL;
	int hook = wants_webhook(type) && *cfg.webhook_url;
	const char *p[] = {type, rollout_id ? rid : NULL, d ? d : "{}", hook ? "t" : "f"};
	PGresult *r = db_exec(
	        c, err,
	        "INSERT INTO notifications (type, rollout_id, data, webhook, webhook_next_at) "
	        "VALUES ($1, $2, $3::jsonb, $4, CASE WHEN $4 THEN now() END) RETURNING id",
	        4, p);
	free(d);
	if (!r)
		return FB_EDB;
	char payload[32];
	snprintf(payload, sizeof payload, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	const char *p2[] = {payload};
	r = db_exec(c, err, "SELECT pg_notify('firebreak_events', $1)", 1, p2);
	if (!r)
		return FB_EDB;
	PQclear(r);
	return FB_OK;
}

static size_t discard(char *p, size_t s, size_t n, void *u)
{
	(void)p;
	(void)u;
	return s * n;
}

/* Run the fence in a transaction of its own; 0 when it let us through. */
static int fence_passes(PGconn *c, events_fence_fn fence, struct fb_err *err)
{
	if (!fence)
		return 1;
	if (db_cmd(c, err, "BEGIN") || fence(c, err) || db_cmd(c, err, "COMMIT")) {
		PQclear(PQexec(c, "ROLLBACK"));
		return 0;
	}
	return 1;
}

void events_deliver_webhooks(PGconn *c, events_fence_fn fence, const char *only_type)
{
	if (!*cfg.webhook_url)
		return;
	struct fb_err err;
	const char *p0[] = {only_type};
	PGresult *r = db_exec(
	        c, &err,
	        "SELECT id, json_build_object('id', id, 'type', type, 'rollout_id', rollout_id, "
	        "'data', data, 'at', extract(epoch FROM created_at)::bigint)::text "
	        "FROM notifications WHERE webhook AND delivered_at IS NULL "
	        "AND webhook_next_at <= now() AND webhook_attempts < 10 "
	        "AND ($1::text IS NULL OR type = $1) ORDER BY id LIMIT 20",
	        1, p0);
	if (!r) {
		log_warn("webhooks: %s", err.msg);
		return;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		const char *id = PQgetvalue(r, i, 0), *body = PQgetvalue(r, i, 1);
		/* no new delivery once the lease is gone */
		if (!fence_passes(c, fence, &err)) {
			log_info("webhooks: stopped: %s", err.msg);
			break;
		}
		CURL *h = curl_easy_init();
		long status = 0;
		CURLcode cc = CURLE_FAILED_INIT;
		struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
		if (h) {
			curl_easy_setopt(h, CURLOPT_URL, cfg.webhook_url);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
			curl_easy_setopt(h, CURLOPT_TIMEOUT, 5L);
			curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
			curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
			cc = curl_easy_perform(h);
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
			curl_easy_cleanup(h);
		}
		curl_slist_free_all(hdr);
		int ok = cc == CURLE_OK && status >= 200 && status < 300;
		char msg[256];
		snprintf(msg, sizeof msg, "%s (HTTP %ld)", curl_easy_strerror(cc), status);
		const char *p[] = {id, ok ? NULL : msg};
		if (fence && (db_cmd(c, &err, "BEGIN") || fence(c, &err))) {
			/* a stale leader records nothing: the new one delivers again */
			PQclear(PQexec(c, "ROLLBACK"));
			log_info("webhooks: result of notification %s not recorded: %s", id,
			         err.msg);
			break;
		}
		PGresult *u = db_exec(
		        c, &err,
		        ok ? "UPDATE notifications SET delivered_at = now(), "
		             "webhook_attempts = webhook_attempts + 1 WHERE id = $1 AND $2::text "
		             "IS NULL"
		           : "UPDATE notifications SET webhook_attempts = webhook_attempts + 1, "
		             "last_error = $2, webhook_next_at = now() + "
		             "make_interval(secs => least(300, 2 ^ webhook_attempts)) WHERE id = "
		             "$1",
		        2, p);
		if (u && fence && db_cmd(c, &err, "COMMIT")) {
			PQclear(u);
			u = NULL;
		}
		if (!u && fence)
			PQclear(PQexec(c, "ROLLBACK"));
		PQclear(u);
		if (ok)
			log_info("webhook: delivered notification %s", id);
		else
			log_warn("webhook: notification %s not delivered: %s; will retry", id, msg);
	}
	PQclear(r);
}
