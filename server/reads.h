/* Read-only operator endpoints: a rollout's per-ring time series,
 * statistics, health signals and exposure, liveness, the latest events and
 * the audit log (filtered, paginated). */
#ifndef FB_READS_H
#define FB_READS_H

#include "http.h"

void reads_rollout_series(struct http_req *req);     /* GET /v1/rollouts/{id}/series */
void reads_rollout_exposure(struct http_req *req);   /* GET /v1/rollouts/{id}/exposure */
void reads_audit(struct http_req *req);              /* GET /v1/audit */
void reads_rollout_statistics(struct http_req *req); /* GET /v1/rollouts/{id}/statistics */
void reads_fleet_liveness(struct http_req *req);     /* GET /v1/liveness */
void reads_events_recent(struct http_req *req);      /* GET /v1/events/recent */
void reads_rollout_signals(struct http_req *req);    /* GET /v1/rollouts/{id}/signals */

#endif
