/* A webhook receiver for integration tests: a thread that accepts HTTP
 * requests on 127.0.0.1 at a free port, answers 500 to the first fail_first
 * of them and 200 to the rest, and keeps the body and arrival time of the
 * first FBT_HOOK_KEEP. Start it before firebreakd and pass
 * --webhook_url=http://127.0.0.1:<port>/... */
#ifndef FBT_HOOK_H
#define FBT_HOOK_H

#include <pthread.h>
#include <stdint.h>

#define FBT_HOOK_KEEP 16

struct fbt_hook {
	int port; /* where it listens */
	/* the rest is the receiver's own */
	int fd, fail_first;
	pthread_t thread;
	pthread_mutex_t mu;
	int n;                     /* requests received */
	char *body[FBT_HOOK_KEEP]; /* of the first FBT_HOOK_KEEP, NUL-terminated */
	int64_t at[FBT_HOOK_KEEP]; /* fb_mono_ms() at their arrival */
	volatile int stop;
};

/* Listen and start the thread; fails the running cmocka test on an error.
 * Stop with fbt_hook_stop(). */
void fbt_hook_start(struct fbt_hook *h, int fail_first);

/* How many requests arrived so far; with a needle, how many of them had a
 * body containing it (failing the test when more than FBT_HOOK_KEEP arrived,
 * as the later ones were not kept). */
int fbt_hook_count(struct fbt_hook *h, const char *needle);

/* The body of request i (0-based, below fbt_hook_count() and
 * FBT_HOOK_KEEP), borrowed until fbt_hook_stop(); *at (may be NULL)
 * receives its arrival time (fb_mono_ms()). NULL when there is no such
 * request. */
const char *fbt_hook_body(struct fbt_hook *h, int i, int64_t *at);

/* Stop the thread, close the socket and free the bodies. */
void fbt_hook_stop(struct fbt_hook *h);

#endif
