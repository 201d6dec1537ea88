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

/* A check run right after BEGIN; non-zero (FB_ECONFLICT, ...) refuses. */
typedef enum fb_rc (*events_fence_fn)(PGconn *c, struct fb_err *err);

/* Deliver due webhook notifications (POST JSON, 5 s timeout); failures are
 * retried with exponential backoff up to 10 attempts. Delivery is at least
 * once (receivers deduplicate by "id"). fence (may be NULL) is passed in a
 * transaction of its own before each POST and in the transaction that
 * records its result: the controller passes its lease fence, so a leader
 * that lost the lease starts no delivery and records none. only_type (may
 * be NULL = all) restricts deliveries to one event type. */
void events_deliver_webhooks(PGconn *c, events_fence_fn fence, const char *only_type);

#endif
