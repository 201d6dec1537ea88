/* Agents: enrollment tokens, enrollment (the agent's token comes from
 * auth_agent_token), the agent list, revocation. */
#ifndef FB_AGENTS_H
#define FB_AGENTS_H

#include <libpq-fe.h>
#include <stdint.h>

#include "fb.h"
#include "http.h"

void agents_enroll(struct http_req *req);                  /* POST /v1/enroll */
void agents_enrollment_token_create(struct http_req *req); /* POST /v1/enrollment-tokens */
void agents_list(struct http_req *req);                    /* GET /v1/agents */
void agents_show(struct http_req *req);                    /* GET /v1/agents/{id} */
void agents_revoke(struct http_req *req);                  /* POST /v1/agents/{id}/revoke */

#endif
