/* Halt webhooks: a halt, and the revert that follows it, are POSTed as JSON
 * to webhook_url, a failed delivery is retried with backoff, and the
 * notification records the outcome. The receiving end is a small HTTP
 * listener in this test process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fbt.h"
#include "fbt_world.h"

struct hook {
	int fd, port;
	pthread_mutex_t mu;
	int hits;
	char bodies[8][4096];
	pthread_t t;
};

/* Answer the first request 500, the rest 200; keep the bodies. */
static void *serve(void *arg)
{
	struct hook *h = arg;
	for (;;) {
		int c = accept(h->fd, NULL, NULL);
		if (c < 0)
			return NULL;
		char req[8192];
		size_t got = 0;
		ssize_t n;
		char *body = NULL;
		long clen = -1;
		while (got < sizeof req - 1 && (n = read(c, req + got, sizeof req - 1 - got)) > 0) {
			got += (size_t)n;
			req[got] = 0;
			char *end = strstr(req, "\r\n\r\n");
			if (end && clen < 0) {
				char *cl = strcasestr(req, "Content-Length:");
				clen = cl ? strtol(cl + 15, NULL, 10) : 0;
				body = end + 4;
			}
			if (body && (long)(got - (size_t)(body - req)) >= clen)
				break;
		}
		pthread_mutex_lock(&h->mu);
		int k = h->hits++;
		if (k < 8 && body)
			snprintf(h->bodies[k], sizeof h->bodies[k], "%s", body);
		pthread_mutex_unlock(&h->mu);
		const char *resp = k == 0 ? "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: "
		                            "close\r\n\r\n"
		                          : "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
		if (write(c, resp, strlen(resp)) < 0)
			perror("write");
		close(c);
	}
}

static void test_halt_webhook_retried_until_delivered(void **state)
{
	(void)state;
	struct hook h = {0};
	pthread_mutex_init(&h.mu, NULL);
	h.fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	assert_int_equal(bind(h.fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(h.fd, 8), 0);
	getsockname(h.fd, (struct sockaddr *)&sa, &sl);
	h.port = ntohs(sa.sin_port);
	pthread_create(&h.t, NULL, serve, &h);

	char *db = fbt_db_new();
	char *admin = fbt_token(db, "admin", "ada"), *release = fbt_token(db, "release", "rel"),
	     *soc = fbt_token(db, "soc", "sam");
	char hookarg[128];
	snprintf(hookarg, sizeof hookarg, "--webhook_url=http://127.0.0.1:%d/firebreak", h.port);
	const char *extra[] = {hookarg, "--controller_interval_ms=200", "--snapshot_check_ms=200",
	                       NULL};
	struct fbt_server s;
	assert_int_equal(fbt_server_start(&s, db, extra), 0);
	struct fbt_resp r;
	for (int i = 0; i < 100; i++) {
		fbt_http(&s, "GET", "/readyz", NULL, NULL, 0, NULL, &r);
		long st = r.status;
		fbt_resp_free(&r);
		if (st == 200)
			break;
		usleep(100000);
	}
	const char *ch = "{\"id\":5,\"name\":\"five\"}";
	fbt_http(&s, "POST", "/v1/channels", admin, ch, strlen(ch), NULL, &r);
	assert_int_equal(r.status, 201);
	fbt_resp_free(&r);
	char sha[65];
	char *up = fbt_world_content(fbt_world_default(), 5, 1, sha);
	fbt_http(&s, "POST", "/v1/content", release, up, strlen(up), NULL, &r);
	assert_int_equal(r.status, 201);
	fbt_resp_free(&r);
	free(up);
	char body[256];
	snprintf(body, sizeof body,
	         "{\"channel\":5,\"content\":\"%s\",\"policy\":{\"min_bake_s\":600}}", sha);
	fbt_http(&s, "POST", "/v1/rollouts", release, body, strlen(body), NULL, &r);
	assert_int_equal(r.status, 201);
	json_t *ro = fbt_resp_json(&r);
	json_int_t id = json_integer_value(json_object_get(ro, "id"));
	json_decref(ro);
	fbt_resp_free(&r);
	char path[64];
	snprintf(path, sizeof path, "/v1/rollouts/%lld/halt", (long long)id);
	const char *why = "{\"reason\":\"canaries look wrong\"}";
	fbt_http(&s, "POST", path, soc, why, strlen(why), NULL, &r);
	assert_int_equal(r.status, 200);
	fbt_resp_free(&r);

	/* The halt's first attempt is refused (500), retried after the backoff
	 * and delivered; no agent ran the file, so the controller marks the
	 * rollout reverted at once and that goes to the webhook too. */
	long delivered = -1;
	for (int i = 0; i < 150 && delivered != 1; i++) {
		delivered = fbt_db_long(
		        db, "SELECT count(*) FROM notifications WHERE type = 'rollout.halted' "
		            "AND delivered_at IS NOT NULL AND webhook_attempts = 2 "
		            "AND last_error LIKE '%HTTP 500%'");
		usleep(100000);
	}
	assert_int_equal(delivered, 1);
	for (int i = 0; i < 50 && fbt_db_long(db, "SELECT count(*) FROM notifications WHERE "
	                                          "type = 'rollout.reverted' AND delivered_at IS "
	                                          "NOT NULL") != 1;
	     i++)
		usleep(100000);
	pthread_mutex_lock(&h.mu);
	int hits = h.hits < 8 ? h.hits : 8;
	pthread_mutex_unlock(&h.mu);
	assert_true(hits >= 3); /* halt refused, halt, reverted */
	int halts = 0, reverts = 0;
	for (int i = 0; i < hits; i++) {
		json_t *j = json_loads(h.bodies[i], 0, NULL);
		if (!j)
			fail_msg("webhook body %d is not JSON: %s", i, h.bodies[i]);
		const char *type = json_string_value(json_object_get(j, "type"));
		const char *st =
		        json_string_value(json_object_get(json_object_get(j, "data"), "state"));
		assert_int_equal(json_integer_value(json_object_get(j, "rollout_id")), id);
		if (strcmp(type, "rollout.halted") == 0) {
			assert_string_equal(st, "halted");
			halts++;
		} else if (strcmp(type, "rollout.reverted") == 0) {
			assert_string_equal(st, "reverted");
			reverts++;
		} else {
			fail_msg("unexpected webhook %s", h.bodies[i]);
		}
		json_decref(j);
	}
	assert_int_equal(halts, 2);
	assert_int_equal(reverts, 1);
	/* only halts, reverts and stalls go to the webhook */
	assert_int_equal(fbt_db_long(db, "SELECT count(*) FROM notifications WHERE webhook AND "
	                                 "type NOT IN ('rollout.halted', 'rollout.reverted', "
	                                 "'rollout.stalled')"),
	                 0);
	assert_true(fbt_db_long(db, "SELECT count(*) FROM notifications WHERE NOT webhook") > 0);
	assert_int_equal(fbt_server_stop(&s, SIGTERM), 0);
	shutdown(h.fd, SHUT_RDWR);
	close(h.fd);
	pthread_join(h.t, NULL);
	free(db);
	free(admin);
	free(release);
	free(soc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_halt_webhook_retried_until_delivered),
	};
	return cmocka_run_group_tests_name("webhook", tests, NULL, NULL);
}
