/* The operator event stream: GET /v1/events as server-sent events, fed from
 * the notifications table (LISTEN firebreak_events), resumable with
 * Last-Event-ID. Connections wait suspended, so a quiet stream costs no
 * worker thread. */
#ifndef FB_STREAM_H
#define FB_STREAM_H

#include "fb.h"
#include "http.h"

enum fb_rc stream_start(struct fb_err *err) FB_MUSTCHECK;
/* End every open stream (before the HTTP server stops) and the pump. */
void stream_stop(void);
void stream_events(struct http_req *req); /* GET /v1/events */

#endif
