/* Operator events: recorded in the transaction of the change they describe
 * (so they are never lost nor invented), NOTIFYed for the event stream, and
 * delivered to the configured webhook with retries. */
#ifndef FB_EVENTS_H
#define FB_EVENTS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "fb.h"

/* Record an event of type (e.g. "rollout.halted") about rollout_id (0 =
 * none) with data (borrowed). Halts and reverts are queued for the webhook. */
enum fb_rc events_emit(PGconn *c, const char *type, int64_t rollout_id, const json_t *data,
                       struct fb_err *err) FB_MUSTCHECK;

/* Deliver due webhook notifications (POST JSON, 5 s timeout); failures are
 * retried with exponential backoff up to 10 attempts. Called by the
 * controller leader. */
void events_deliver_webhooks(PGconn *c);

#endif
