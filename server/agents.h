/* Agents: enrollment tokens, enrollment, agent tokens (keyed BLAKE2b of the
 * agent id, so checking one needs neither the database nor memory). */
#ifndef FB_AGENTS_H
#define FB_AGENTS_H

#include <libpq-fe.h>
#include <stdint.h>

#include "fb.h"
#include "http.h"

/* Load (or create once) the agent-token key shared by all replicas. */
enum fb_rc agents_init(PGconn *c, struct fb_err *err) FB_MUSTCHECK;
void agents_cleanup(void);

/* Check an "fa_<id>_<mac>" token: 1 with *agent_id set, 0 if forged. */
int agents_token_verify(const char *token, int64_t *agent_id);

void agents_enroll(struct http_req *req);                  /* POST /v1/enroll */
void agents_enrollment_token_create(struct http_req *req); /* POST /v1/enrollment-tokens */
void agents_list(struct http_req *req);                    /* GET /v1/agents */
void agents_show(struct http_req *req);                    /* GET /v1/agents/{id} */
void agents_revoke(struct http_req *req);                  /* POST /v1/agents/{id}/revoke */

#endif
