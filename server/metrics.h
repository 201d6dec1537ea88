/* Prometheus metrics: requests by route and status, a latency histogram per
 * route, and the database pool state. Lock-free counters on the hot path. */
#ifndef FB_METRICS_H
#define FB_METRICS_H

#include <stdint.h>

#include "fb.h"

/* Counters for nroutes routes, labelled labels[i] ("GET /v1/poll"; copied;
 * labels may be NULL). */
enum fb_rc metrics_init(const char *const *labels, size_t nroutes) FB_MUSTCHECK;
void metrics_cleanup(void);
/* route_idx -1 = no route matched; status 0 = no reply was sent. */
void metrics_observe_request(int route_idx, unsigned status, int64_t micros);
/* Append the text exposition format to b. */
enum fb_rc metrics_render(struct fb_buf *b) FB_MUSTCHECK;

#endif
