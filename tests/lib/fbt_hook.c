/* A webhook receiver: one thread, one request per connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the three above, which it needs */

#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fb.h"
#include "fbt_hook.h"

/* Read one request from c into buf (NUL-terminated, cut at n - 1 bytes);
 * returns its body (pointing into buf), "" when it has none. */
static const char *read_request(int c, char *buf, size_t n)
{
	size_t len = 0;
	const char *body = "";
	buf[0] = '\0';
	for (;;) {
		ssize_t r = recv(c, buf + len, n - 1 - len, 0);
		if (r <= 0)
			break;
		len += (size_t)r;
		buf[len] = '\0';
		char *eoh = strstr(buf, "\r\n\r\n");
		if (eoh) {
			const char *cl = strcasestr(buf, "Content-Length:");
			long want = cl ? strtol(cl + 15, NULL, 10) : 0;
			body = eoh + 4;
			if ((long)strlen(body) >= want)
				break;
		}
		if (len == n - 1)
			break;
	}
	return body;
}

static void *hook_main(void *arg)
{
	struct fbt_hook *h = arg;
	while (!h->stop) {
		struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		int c = accept(h->fd, NULL, NULL);
		if (c < 0)
			continue;
		char buf[8192];
		const char *body = read_request(c, buf, sizeof buf);
		pthread_mutex_lock(&h->mu);
		int k = h->n++;
		if (k < FBT_HOOK_KEEP) {
			h->body[k] = strdup(body);
			h->at[k] = fb_mono_ms();
		}
		pthread_mutex_unlock(&h->mu);
		const char *resp =
		        k < h->fail_first ? "HTTP/1.1 500 Internal Server Error\r\nContent-Length: "
		                            "0\r\nConnection: close\r\n\r\n"
		                          : "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: "
		                            "close\r\n\r\n";
		(void)!send(c, resp, strlen(resp), MSG_NOSIGNAL);
		close(c);
	}
	return NULL;
}

void fbt_hook_start(struct fbt_hook *h, int fail_first)
{
	memset(h, 0, sizeof *h);
	h->fail_first = fail_first;
	pthread_mutex_init(&h->mu, NULL);
	h->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	assert_true(h->fd >= 0);
	assert_int_equal(bind(h->fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(h->fd, 16), 0);
	assert_int_equal(getsockname(h->fd, (struct sockaddr *)&sa, &sl), 0);
	h->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&h->thread, NULL, hook_main, h), 0);
}

int fbt_hook_count(struct fbt_hook *h, const char *needle)
{
	pthread_mutex_lock(&h->mu);
	int n = h->n, kept = n < FBT_HOOK_KEEP ? n : FBT_HOOK_KEEP, count = n;
	if (needle) {
		count = 0;
		for (int i = 0; i < kept; i++)
			count += h->body[i] && strstr(h->body[i], needle) != NULL;
	}
	pthread_mutex_unlock(&h->mu);
	if (needle && n > FBT_HOOK_KEEP)
		fail_msg("fbt_hook: %d requests, only the first %d were kept to look for %s", n,
		         FBT_HOOK_KEEP, needle);
	return count;
}

const char *fbt_hook_body(struct fbt_hook *h, int i, int64_t *at)
{
	const char *b = NULL;
	pthread_mutex_lock(&h->mu);
	if (i >= 0 && i < h->n && i < FBT_HOOK_KEEP) {
		b = h->body[i];
		if (at)
			*at = h->at[i];
	}
	pthread_mutex_unlock(&h->mu);
	return b;
}

void fbt_hook_stop(struct fbt_hook *h)
{
	h->stop = 1;
	pthread_join(h->thread, NULL);
	close(h->fd);
	pthread_mutex_destroy(&h->mu);
	for (int i = 0; i < FBT_HOOK_KEEP; i++)
		free(h->body[i]);
	memset(h->body, 0, sizeof h->body);
}
