/* Simulated agents: real keys, verified assignments, events and heartbeats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the three above, which it needs */

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fb.h"
#include "fbt_agent.h"

void fbt_agent_new(struct fbt_env *e, struct fbt_agent *a, int ring, enum fbt_behaviour how,
                   const char *tags, const char *caps, const char *platform)
{
	fbt_agent_new_in(e, a, ring, how, tags, caps, platform, NULL, NULL);
}

void fbt_agent_new_in(struct fbt_env *e, struct fbt_agent *a, int ring, enum fbt_behaviour how,
                      const char *tags, const char *caps, const char *platform, const char *tenant,
                      const char *group)
{
	memset(a, 0, sizeof *a);
	a->ring = ring;
	a->how = how;
	char body[4096];
	int n = snprintf(body, sizeof body, "{\"name\":\"batch\",\"tags\":%s", tags ? tags : "{}");
	if (tenant)
		n += snprintf(body + n, sizeof body - (size_t)n, ",\"tenant\":\"%s\"", tenant);
	if (group)
		n += snprintf(body + n, sizeof body - (size_t)n, ",\"group\":\"%s\"", group);
	snprintf(body + n, sizeof body - (size_t)n, "}");
	json_t *j = fbt_env_want(e, 201, "POST", "/v1/enrollment-tokens", e->admin, body);
	char *et = strdup(fbt_jstr(j, "token"));
	json_decref(j);
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	crypto_sign_keypair(pk, sk);
	sodium_memzero(sk, sizeof sk);
	char pk64[64];
	sodium_bin2base64(pk64, sizeof pk64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
	snprintf(a->caps, sizeof a->caps, "%s", caps ? caps : e->caps);
	snprintf(body, sizeof body,
	         "{\"enrollment_token\":\"%s\",\"public_key\":\"%s\",\"hostname\":\"h\","
	         "\"agent_version\":\"test\",\"capabilities\":%s%s%s}",
	         et, pk64, a->caps, platform ? ",\"platform\":" : "", platform ? platform : "");
	free(et);
	j = fbt_env_want(e, 201, "POST", "/v1/enroll", NULL, body);
	a->id = json_integer_value(json_object_get(j, "agent_id"));
	a->token = strdup(fbt_jstr(j, "agent_token"));
	json_decref(j);
	a->boot = 1;
}

void fbt_agent_free(struct fbt_agent *ags, int n)
{
	for (int i = 0; i < n; i++)
		free(ags[i].token);
}

int fbt_agent_poll(struct fbt_env *e, struct fbt_agent *a)
{
	char inm[200];
	snprintf(inm, sizeof inm, "If-None-Match: %s", a->etag);
	const char *h[] = {inm, NULL};
	struct fbt_resp r;
	if (fbt_http(e->cur, "GET", "/v1/poll", a->token, NULL, 0, a->etag[0] ? h : NULL, &r))
		fail_msg("poll: transport error");
	if (r.status == 304) {
		fbt_resp_free(&r);
		return 0;
	}
	if (r.status != 200)
		fail_msg("agent %lld: poll: %ld %s", (long long)a->id, r.status,
		         r.body ? r.body : "");
	struct fbsig_assignment *as;
	struct fb_err err;
	enum fb_rc rc = fbsig_assignment_verify(e->root, r.body, r.len, fb_now_ms() / 1000, a->seq,
	                                        &as, &err);
	if (rc == FB_EROLLBACK && a->replays_expected) {
		fbt_resp_free(&r); /* refused, as an agent does; it keeps what it runs */
		a->replays++;
		return 0;
	}
	if (rc)
		fail_msg("agent %lld: the assignment does not verify (last sequence %lld): %s",
		         (long long)a->id, (long long)a->seq, err.msg);
	fbt_header(&r, "ETag", a->etag, sizeof a->etag);
	fbt_resp_free(&r);
	a->seq = as->sequence;
	snprintf(a->audience, sizeof a->audience, "%s", as->audience);
	a->assigned[0] = '\0';
	a->assigned_version = 0;
	for (size_t i = 0; i < as->n_channels; i++)
		if (as->channels[i].channel == FBT_CH) {
			snprintf(a->assigned, sizeof a->assigned, "%s", as->channels[i].sha256);
			a->assigned_version = as->channels[i].version;
		}
	fbsig_assignment_free(as);
	return 1;
}

void fbt_agent_heartbeat(struct fbt_env *e, struct fbt_agent *a)
{
	char body[2048], active[128] = "{}";
	if (a->active[0])
		snprintf(active, sizeof active, "{\"%d\":\"%s\"}", FBT_CH, a->active);
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"boot_id\":\"boot-%lld-%d\",\"uptime_s\":10,"
	         "\"agent_version\":\"test\",\"active\":%s,\"capabilities\":%s}",
	         (long long)a->id, (long long)a->id, a->boot, active, a->caps);
	fbt_env_expect(e, 202, "POST", "/v1/heartbeat", a->token, body);
}

void fbt_agent_event(struct fbt_env *e, struct fbt_agent *a, const char *kind, const char *content)
{
	char body[2048], ev[1024];
	int64_t now = fb_now_ms() / 1000;
	a->nev++;
	if (strcmp(kind, "crash") == 0)
		snprintf(ev, sizeof ev,
		         "\"content\":\"%s\",\"boot_id\":\"boot-%lld-%d\",\"code\":\"0xC0000005\","
		         "\"module\":\"csagent.sys\"",
		         content, (long long)a->id, a->boot - 1);
	else if (strcmp(kind, "boot_loop") == 0)
		snprintf(ev, sizeof ev,
		         "\"reverted_from\":\"%s\",\"reverted_to\":\"%s\","
		         "\"boot_id\":\"boot-%lld-%d\",\"unclean_starts\":3",
		         content, a->previous, (long long)a->id, a->boot);
	else
		snprintf(ev, sizeof ev, "\"content\":\"%s\",\"boot_id\":\"boot-%lld-%d\"", content,
		         (long long)a->id, a->boot);
	snprintf(body, sizeof body,
	         "{\"agent_id\":%lld,\"events\":[{\"id\":\"ev-%d\",\"kind\":\"%s\",\"at\":%lld,"
	         "\"channel\":%d,%s}]}",
	         (long long)a->id, a->nev, kind, (long long)now, FBT_CH, ev);
	json_t *j = fbt_env_want(e, 200, "POST", "/v1/events", a->token, body);
	assert_int_equal(json_integer_value(json_object_get(j, "accepted")), 1);
	json_decref(j);
}

void fbt_agent_step(struct fbt_env *e, struct fbt_agent *a)
{
	if (a->dead)
		return;
	fbt_agent_poll(e, a);
	if (strcmp(a->assigned, a->active) &&
	    !(a->looped && e->bad && strcmp(a->assigned, e->bad) == 0)) {
		snprintf(a->previous, sizeof a->previous, "%s", a->active);
		snprintf(a->active, sizeof a->active, "%s", a->assigned);
		if (a->active[0])
			fbt_agent_event(e, a, "applied", a->active);
		if (e->bad && strcmp(a->active, e->bad) == 0) {
			a->bad_seq = a->seq;
			if (a->how == FBT_CRASHER) {
				a->boot++; /* crashed; the next boot reports it */
				a->crashed = 1;
				fbt_agent_event(e, a, "crash", a->active);
			} else if (a->how == FBT_LOOPER) {
				a->boot += 3; /* three unclean starts, then the guard */
				fbt_agent_event(e, a, "boot_loop", a->active);
				snprintf(a->active, sizeof a->active, "%s", a->previous);
				a->looped = 1;
			} else if (a->how == FBT_SILENT) {
				fbt_agent_heartbeat(e, a);
				a->dead = 1;
				return;
			}
		}
	}
	fbt_agent_heartbeat(e, a);
}

void fbt_agent_settle(struct fbt_env *e, struct fbt_agent *ags, int n, const char *want)
{
	int64_t end = fb_mono_ms() + FBT_DEADLINE * 1000;
	for (;;) {
		int all = 1;
		for (int i = 0; i < n; i++) {
			fbt_agent_step(e, &ags[i]);
			all = all && (ags[i].dead || strcmp(ags[i].active, want) == 0);
		}
		if (all)
			return;
		if (fb_mono_ms() > end)
			fail_msg("agents did not all settle on %s", want);
		usleep(150000);
	}
}

void fbt_agent_rings(struct fbt_env *e, const struct fbt_agent *ags, int n)
{
	static const char *names[] = {"canary", "early", "broad"};
	char body[4096] = "{\"rings\":[";
	size_t len = strlen(body), room = sizeof body - 128; /* 128: what follows a list */
	for (int k = 0; k < 3 && len < room; k++) {
		len += (size_t)snprintf(body + len, sizeof body - len,
		                        "{\"name\":\"%s\",\"selector\":{\"agents\":[", names[k]);
		int first = 1;
		for (int i = 0; i < n && len < room; i++)
			if (ags[i].ring == k) {
				len += (size_t)snprintf(body + len, sizeof body - len, "%s%lld",
				                        first ? "" : ",", (long long)ags[i].id);
				first = 0;
			}
		len += (size_t)snprintf(body + len, sizeof body - len, "]}},");
	}
	if (len >= room)
		fail_msg("fbt_agent_rings: the lists of %d agents do not fit in %zu bytes", n,
		         sizeof body);
	snprintf(body + len, sizeof body - len,
	         "{\"name\":\"ga\",\"selector\":{\"rest\":true}}],\"reason\":\"test rings\"}");
	fbt_env_expect(e, 200, "PUT", "/v1/rings", e->admin, body);
}
