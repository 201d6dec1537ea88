/* The controller lease with fencing: which replica may run the controller,
 * renewed in every controller transaction, taken over when the holder stops
 * making progress, and visible (metrics, readiness, GET /v1/controller). */
#ifndef FB_LEASE_H
#define FB_LEASE_H

#include <libpq-fe.h>
#include <stdint.h>

#include "fb.h"
#include "http.h"

/* The lease row as one replica last read it. */
struct lease_status {
	char holder[96];      /* host:pid of the holder of a valid lease; "" when none */
	int64_t epoch;        /* the fencing token of the last acquisition */
	double expires_in_s;  /* seconds until the lease expires (negative: expired) */
	int has_cycle;        /* a controller cycle has ever completed */
	double cycle_age_s;   /* seconds since the last completed cycle (has_cycle) */
	char cycle_at[40];    /* its time, ISO 8601 UTC ("" when none) */
	int64_t interval_ms;  /* the holder's controller interval */
	int64_t lease_ms;     /* the holder's lease length */
	int lost;             /* controller.lost was emitted and no cycle since */
	int64_t read_mono_ms; /* when it was read (fb_mono_ms), 0 = never */
};

/* Name this replica (host:pid, copied). Call once before the controller runs. */
void lease_init(const char *whoami);
/* This replica's name (borrowed, static). */
const char *lease_whoami(void);
/* The lease length in ms: controller_lease_ms, or twice the controller
 * interval when that is 0. */
int64_t lease_length_ms(void);

/* Prepare the controller's own connection: idle_in_transaction_session_timeout
 * and lock_timeout of one lease length, so that a holder that hangs inside a
 * transaction loses its session (and the row lock) and a waiting replica
 * gives up instead of hanging too. */
enum fb_rc lease_session_setup(PGconn *c, struct fb_err *err) FB_MUSTCHECK;

/* Outside a transaction: renew the lease when this replica holds it, or take
 * it (a new epoch, recorded in controller_epochs) when it has expired. *held
 * says whether this replica holds it afterwards. The session's
 * firebreak.controller_epoch follows. FB_EDB on database errors. */
enum fb_rc lease_acquire(PGconn *c, int *held, struct fb_err *err) FB_MUSTCHECK;

/* The fence: call right after BEGIN in every controller write transaction.
 * Locks the lease row until the transaction ends, checks that this replica
 * holds it with its epoch and that it has not expired, and extends it.
 * FB_ECONFLICT when it does not hold it (the caller rolls back and writes
 * nothing); FB_EDB on database errors. */
enum fb_rc lease_hold_tx(PGconn *c, struct fb_err *err) FB_MUSTCHECK;

/* Outside a transaction: record a completed controller cycle (clears a
 * controller.lost condition) and extend the lease; FB_ECONFLICT when the
 * lease was lost meanwhile. */
enum fb_rc lease_cycle_done(PGconn *c, struct fb_err *err) FB_MUSTCHECK;

/* Give the lease up at a graceful stop so another replica takes it at once. */
void lease_release(PGconn *c);

/* Read the lease row into *st (fresh) and remember it for the metrics and
 * /readyz. */
enum fb_rc lease_read(PGconn *c, struct lease_status *st, struct fb_err *err) FB_MUSTCHECK;

/* When no controller cycle has completed for three controller intervals,
 * emit one controller.lost event (webhook too) per outage: the first replica
 * to notice does, in one transaction with marking the row; the next completed
 * cycle clears the mark. *emitted is set to 1 when this call emitted it. */
enum fb_rc lease_check_lost(PGconn *c, int *emitted, struct fb_err *err) FB_MUSTCHECK;

/* 1 while this replica holds the lease by its own monotonic clock (it renewed
 * it less than one lease length ago and has not lost it since). */
int lease_is_held(void);
/* Number of times this replica acquired the lease (new epochs). */
uint64_t lease_takeovers(void);
/* The last lease row this replica read, with the cycle age advanced by the
 * time since the read. Returns 0 when it has read none yet. */
int lease_last_status(struct lease_status *st);

/* 1 when a controller cycle completed within the last three of the
 * holder's controller intervals. */
int lease_status_healthy(const struct lease_status *st);

/* GET /v1/controller: the lease row, fresh from the database. */
void lease_http_get(struct http_req *req);

#endif
