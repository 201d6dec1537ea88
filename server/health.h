/* Liveness, readiness and metrics endpoints. */
#ifndef FB_HEALTH_H
#define FB_HEALTH_H

#include "http.h"

void health_live(struct http_req *req);    /* GET /healthz */
void health_ready(struct http_req *req);   /* GET /readyz */
void health_metrics(struct http_req *req); /* GET /metrics */

#endif
