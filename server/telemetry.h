/* Agent telemetry: heartbeats aggregated in memory and written in batches
 * by a flusher thread (COPY), events written durably before the reply. */
#ifndef FB_TELEMETRY_H
#define FB_TELEMETRY_H

#include "fb.h"
#include "http.h"

enum fb_rc telemetry_start(struct fb_err *err) FB_MUSTCHECK;
/* Stops the flusher after a last flush. */
void telemetry_stop(void);

/* Its gauges and counters for /metrics: heartbeats and verdicts lost to a
 * full queue or a failed write, and the memory the per-host health
 * baselines take (signals.h). */
enum fb_rc telemetry_metrics(struct fb_buf *b) FB_MUSTCHECK;

void telemetry_heartbeat(struct http_req *req); /* POST /v1/heartbeat */
void telemetry_events(struct http_req *req);    /* POST /v1/events */

#endif
