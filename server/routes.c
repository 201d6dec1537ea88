/* The one route table: method + path pattern -> roles admitted -> handler. */
#include "health.h"
#include "http.h"
#include "tokens.h"

const struct route routes[] = {
	{HTTP_GET, "/healthz", 0, 0, health_live},
	{HTTP_GET, "/readyz", 0, 0, health_ready},
	{HTTP_GET, "/metrics", 0, 0, health_metrics},
	{HTTP_GET, "/v1/whoami", ROLE_AGENT | ROLES_OPERATOR, 0, tokens_whoami},
	{HTTP_GET, "/v1/tokens", ROLE_ADMIN, 0, tokens_list},
	{HTTP_POST, "/v1/tokens", ROLE_ADMIN, 4096, tokens_create},
	{HTTP_DELETE, "/v1/tokens/{id}", ROLE_ADMIN, 0, tokens_revoke},
};
const size_t routes_count = sizeof routes / sizeof routes[0];
