/* The audit log: every mutating request records who, what, when and the
 * object's state before and after, inside the caller's transaction. */
#ifndef FB_AUDIT_H
#define FB_AUDIT_H

#include <jansson.h>
#include <libpq-fe.h>

#include "fb.h"
#include "http.h"

/* Write one record on connection c (normally inside the transaction that
 * makes the change): the actor as "role:user", the user and the token (NULL
 * when the SSO proxy authenticated the request). before/after are borrowed
 * and may be NULL. */
enum fb_rc audit_write(PGconn *c, const struct auth *who, const char *request_id,
                       const char *action, const char *object, json_t *before, json_t *after,
                       const char *reason, struct fb_err *err) FB_MUSTCHECK;

#endif
