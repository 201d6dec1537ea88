/* Rollouts (release API), rings and pins (admin API). Fast to stop, slow to
 * restart: one operator halts; resuming a halted rollout, clearing a bad
 * mark, forcing a promotion or starting an emergency rollout needs two
 * distinct approvers. */
#ifndef FB_ROLLOUTS_H
#define FB_ROLLOUTS_H

#include "http.h"

void rollouts_create(struct http_req *req);    /* POST /v1/rollouts */
void rollouts_list(struct http_req *req);      /* GET /v1/rollouts */
void rollouts_show(struct http_req *req);      /* GET /v1/rollouts/{id} */
void rollouts_halt(struct http_req *req);      /* POST /v1/rollouts/{id}/halt */
void rollouts_pause(struct http_req *req);     /* POST /v1/rollouts/{id}/pause */
void rollouts_resume(struct http_req *req);    /* POST /v1/rollouts/{id}/resume */
void rollouts_promote(struct http_req *req);   /* POST /v1/rollouts/{id}/promote */
void rollouts_approve(struct http_req *req);   /* POST /v1/rollouts/{id}/approve */
void rollouts_revert(struct http_req *req);    /* POST /v1/rollouts/{id}/revert */
void rollouts_clear_bad(struct http_req *req); /* POST /v1/content/{sha256}/clear-bad */

void rings_get(struct http_req *req);   /* GET /v1/rings */
void rings_put(struct http_req *req);   /* PUT /v1/rings */
void pins_list(struct http_req *req);   /* GET /v1/pins */
void pins_create(struct http_req *req); /* POST /v1/pins */
void pins_delete(struct http_req *req); /* DELETE /v1/pins/{id} */

#endif
