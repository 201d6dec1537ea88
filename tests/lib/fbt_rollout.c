/* Content and rollouts for integration tests, driven by simulated agents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the three above, which it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fb.h"
#include "fbt_rollout.h"
#include "fbt_world.h"

void fbt_rollout_upload(struct fbt_env *e, int64_t version, char sha[65])
{
	char *body = fbt_world_content(fbt_world_default(), FBT_CH, version, sha);
	assert_non_null(body);
	fbt_env_expect(e, 201, "POST", "/v1/content", e->rel1, body);
	free(body);
}

int64_t fbt_rollout_start(struct fbt_env *e, const char *sha, const char *extra)
{
	char body[4096];
	snprintf(body, sizeof body, "{\"channel\":%d,\"content\":\"%s\",\"reason\":\"test\"%s}",
	         FBT_CH, sha, extra);
	json_t *j = fbt_env_want(e, 201, "POST", "/v1/rollouts", e->rel1, body);
	int64_t id = json_integer_value(json_object_get(j, "id"));
	assert_true(id > 0);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "rolling");
	assert_int_equal(json_integer_value(json_object_get(j, "ring_index")), 0);
	json_decref(j);
	return id;
}

json_t *fbt_rollout_get(struct fbt_env *e, int64_t id)
{
	char path[64];
	snprintf(path, sizeof path, "/v1/rollouts/%lld", (long long)id);
	return fbt_env_want(e, 200, "GET", path, e->soc, NULL);
}

int fbt_rollout_state_in(const char *state, const char *list)
{
	size_t n = strlen(state);
	for (const char *p = list; p && *p;) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && strncmp(p, state, n) == 0)
			return 1;
		p = bar ? bar + 1 : NULL;
	}
	return 0;
}

void fbt_rollout_expect(struct fbt_env *e, int64_t id, const char *states, int ring)
{
	json_t *r = fbt_rollout_get(e, id);
	if (!fbt_rollout_state_in(fbt_jstr(r, "state"), states) ||
	    (ring >= 0 && json_integer_value(json_object_get(r, "ring_index")) != ring))
		fail_msg("rollout %lld: expected %s ring %d: %s", (long long)id, states, ring,
		         fbt_env_raw(r));
	json_decref(r);
}

json_t *fbt_rollout_action(struct fbt_env *e, long want, int64_t id, const char *act,
                           const char *token, const char *body)
{
	char path[96];
	snprintf(path, sizeof path, "/v1/rollouts/%lld/%s", (long long)id, act);
	return fbt_env_want(e, want, "POST", path, token, body);
}

void fbt_rollout_force_complete(struct fbt_env *e, int64_t id)
{
	static const char *force = "{\"reason\":\"push it through\",\"force\":true}";
	for (int i = 0; i < 12; i++) {
		json_t *r = fbt_rollout_get(e, id);
		int done = strcmp(fbt_jstr(r, "state"), "completed") == 0;
		json_decref(r);
		if (done)
			return;
		char path[96];
		snprintf(path, sizeof path, "/v1/rollouts/%lld/promote", (long long)id);
		long st;
		json_t *j = fbt_env_call(e, "POST", path, e->rel1, force, &st);
		if (st == 202)
			json_decref(fbt_env_want(e, 200, "POST", path, e->rel2, force));
		else if (st != 200)
			fail_msg("forced promotion of %lld: %ld %s", (long long)id, st,
			         fbt_env_raw(j));
		json_decref(j);
	}
	fail_msg("rollout %lld did not complete", (long long)id);
}

int64_t fbt_rollout_make_ga(struct fbt_env *e, const char *sha)
{
	int64_t id =
	        fbt_rollout_start(e, sha, ",\"rings\":[\"canary\"],\"policy\":{\"watch_s\":0}");
	fbt_rollout_force_complete(e, id);
	return id;
}

void fbt_rollout_drive(struct fbt_env *e, int64_t id, struct fbt_agent *ags, int n,
                       const char *states, int ring)
{
	int64_t end = fb_mono_ms() + FBT_DEADLINE * 1000;
	while (fb_mono_ms() < end) {
		for (int i = 0; i < n; i++)
			fbt_agent_step(e, &ags[i]);
		json_t *r = fbt_rollout_get(e, id);
		const char *st = fbt_jstr(r, "state");
		int at = (int)json_integer_value(json_object_get(r, "ring_index"));
		for (int i = 0; e->watch && i < n; i++)
			if (strcmp(ags[i].assigned, e->watch) == 0 && strcmp(st, "completed") &&
			    ags[i].ring > at)
				fail_msg("agent %lld of ring %d got the content while the rollout "
				         "is at ring %d: %s",
				         (long long)ags[i].id, ags[i].ring, at, fbt_env_raw(r));
		int done = fbt_rollout_state_in(st, states) && (ring < 0 || at == ring);
		json_decref(r);
		if (done)
			return;
		usleep(150000);
	}
	json_t *r = fbt_rollout_get(e, id);
	fail_msg("rollout %lld did not reach %s (ring %d) within %ds: %s", (long long)id, states,
	         ring, FBT_DEADLINE, fbt_env_raw(r));
}
