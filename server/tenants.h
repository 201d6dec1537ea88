/* Tenants, host groups and customer content policies: the API handlers
 * (server/README.md, "Tenants and customer content policies"). */
#ifndef FB_TENANTS_H
#define FB_TENANTS_H

#include "http.h"

void tenants_list(struct http_req *req);          /* GET /v1/tenants */
void tenants_create(struct http_req *req);        /* POST /v1/tenants */
void tenants_show(struct http_req *req);          /* GET /v1/tenants/{tenant} */
void tenants_group_create(struct http_req *req);  /* POST /v1/tenants/{tenant}/groups */
void tenants_policies(struct http_req *req);      /* GET /v1/tenants/{tenant}/policies */
void tenants_policy_put(struct http_req *req);    /* PUT /v1/tenants/{tenant}/policies */
void tenants_policy_delete(struct http_req *req); /* DELETE .../policies/{id} */
void tenants_rollouts(struct http_req *req);      /* GET /v1/tenants/{tenant}/rollouts */

#endif
