/* API token administration: the token subcommands of firebreakd and the
 * admin HTTP endpoints. */
#ifndef FB_TOKENS_H
#define FB_TOKENS_H

#include "http.h"

/* firebreakd token create|list|revoke ...; returns the process exit code. */
int tokens_cli(int argc, char **argv);

void tokens_create(struct http_req *req); /* POST /v1/tokens */
void tokens_list(struct http_req *req);   /* GET /v1/tokens */
void tokens_revoke(struct http_req *req); /* DELETE /v1/tokens/{id} */
void tokens_whoami(struct http_req *req); /* GET /v1/whoami */

#endif
