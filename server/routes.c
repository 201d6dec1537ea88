/* The one route table: method + path pattern -> roles admitted -> handler. */
#include "agents.h"
#include "content.h"
#include "health.h"
#include "http.h"
#include "lease.h"
#include "policy.h"
#include "reads.h"
#include "rollouts.h"
#include "snapshot.h"
#include "stream.h"
#include "telemetry.h"
#include "tenants.h"
#include "tokens.h"
#include "users.h"
#include "www.h"

const struct route routes[] = {
        {HTTP_GET, "/", 0, 0, www_index},
        {HTTP_GET, "/ui/{file}", 0, 0, www_file},
        {HTTP_GET, "/healthz", 0, 0, health_live},
        {HTTP_GET, "/readyz", 0, 0, health_ready},
        {HTTP_GET, "/metrics", 0, 0, health_metrics},
        {HTTP_GET, "/v1/whoami", ROLE_AGENT | ROLES_OPERATOR | ROUTE_TENANT, 0, tokens_whoami},
        {HTTP_GET, "/v1/tokens", ROLE_ADMIN, 0, tokens_list},
        {HTTP_POST, "/v1/tokens", ROLE_ADMIN, 4096, tokens_create},
        {HTTP_DELETE, "/v1/tokens/{id}", ROLE_ADMIN, 0, tokens_revoke},
        {HTTP_GET, "/v1/users", ROLE_ADMIN, 0, users_list},
        {HTTP_POST, "/v1/users", ROLE_ADMIN, 4096, users_create},
        {HTTP_GET, "/v1/users/{user}", ROLE_ADMIN, 0, users_show},
        {HTTP_PATCH, "/v1/users/{user}", ROLE_ADMIN, 4096, users_update},
        {HTTP_POST, "/v1/users/{user}/disable", ROLE_ADMIN, 4096, users_disable},
        {HTTP_POST, "/v1/users/{user}/enable", ROLE_ADMIN, 4096, users_enable},

        /* the agent protocol (server/PROTOCOL.md) */
        {HTTP_POST, "/v1/enroll", 0, 16384, agents_enroll},
        {HTTP_GET, "/v1/poll", ROLE_AGENT, 0, snapshot_poll},
        {HTTP_GET, "/v1/root", 0, 0, snapshot_root_current},
        {HTTP_GET, "/v1/roots/{version}", 0, 0, snapshot_root_version},
        {HTTP_GET, "/v1/blobs/{sha256}", 0, 0, content_blob},
        {HTTP_POST, "/v1/heartbeat", ROLE_AGENT, 65536, telemetry_heartbeat},
        {HTTP_POST, "/v1/events", ROLE_AGENT, 262144, telemetry_events},

        /* agents and enrollment */
        {HTTP_POST, "/v1/enrollment-tokens", ROLE_ADMIN | ROUTE_TENANT, 16384,
         agents_enrollment_token_create},
        {HTTP_GET, "/v1/agents", ROLES_OPERATOR | ROUTE_TENANT, 0, agents_list},
        {HTTP_GET, "/v1/agents/{id}", ROLES_OPERATOR | ROUTE_TENANT, 0, agents_show},
        {HTTP_POST, "/v1/agents/{id}/revoke", ROLE_ADMIN, 4096, agents_revoke},

        /* tenants, host groups, customer content policies */
        {HTTP_GET, "/v1/tenants", ROLES_OPERATOR, 0, tenants_list},
        {HTTP_POST, "/v1/tenants", ROLE_ADMIN, 16384, tenants_create},
        {HTTP_GET, "/v1/tenants/{tenant}", ROLES_OPERATOR | ROUTE_TENANT, 0, tenants_show},
        {HTTP_POST, "/v1/tenants/{tenant}/groups", ROLE_ADMIN | ROUTE_TENANT, 4096,
         tenants_group_create},
        {HTTP_GET, "/v1/tenants/{tenant}/policies", ROLES_OPERATOR | ROUTE_TENANT, 0,
         tenants_policies},
        {HTTP_PUT, "/v1/tenants/{tenant}/policies", ROLE_RELEASE | ROLE_ADMIN | ROUTE_TENANT, 4096,
         tenants_policy_put},
        {HTTP_DELETE, "/v1/tenants/{tenant}/policies/{id}",
         ROLE_RELEASE | ROLE_ADMIN | ROUTE_TENANT, 0, tenants_policy_delete},
        {HTTP_GET, "/v1/tenants/{tenant}/rollouts", ROLES_OPERATOR | ROUTE_TENANT, 0,
         tenants_rollouts},

        /* channels and content */
        {HTTP_POST, "/v1/channels", ROLE_ADMIN, 16384, content_channel_create},
        {HTTP_GET, "/v1/channels", ROLES_OPERATOR | ROUTE_TENANT, 0, content_channel_list},
        {HTTP_POST, "/v1/content", ROLE_RELEASE | ROLE_ADMIN, ROUTE_UPLOAD, content_upload},
        {HTTP_GET, "/v1/content", ROLES_OPERATOR, 0, content_list},
        {HTTP_GET, "/v1/content/{sha256}", ROLES_OPERATOR, 0, content_show},
        {HTTP_POST, "/v1/content/{sha256}/clear-bad", ROLE_RELEASE | ROLE_ADMIN, 4096,
         rollouts_clear_bad},

        /* rollouts */
        {HTTP_POST, "/v1/rollouts", ROLE_RELEASE | ROLE_ADMIN, 65536, rollouts_create},
        {HTTP_GET, "/v1/rollouts", ROLES_OPERATOR, 0, rollouts_list},
        {HTTP_GET, "/v1/rollouts/{id}", ROLES_OPERATOR, 0, rollouts_show},
        {HTTP_GET, "/v1/rollouts/{id}/series", ROLES_OPERATOR, 0, reads_rollout_series},
        {HTTP_GET, "/v1/rollouts/{id}/exposure", ROLES_OPERATOR, 0, reads_rollout_exposure},
        {HTTP_POST, "/v1/rollouts/{id}/halt", ROLES_OPERATOR, 4096, rollouts_halt},
        {HTTP_POST, "/v1/rollouts/{id}/pause", ROLE_RELEASE | ROLE_ADMIN, 4096, rollouts_pause},
        {HTTP_POST, "/v1/rollouts/{id}/resume", ROLE_RELEASE | ROLE_ADMIN, 4096, rollouts_resume},
        {HTTP_POST, "/v1/rollouts/{id}/promote", ROLE_RELEASE | ROLE_ADMIN, 4096, rollouts_promote},
        {HTTP_POST, "/v1/rollouts/{id}/revert", ROLES_OPERATOR, 4096, rollouts_revert},
        {HTTP_POST, "/v1/rollouts/{id}/approve", ROLE_RELEASE | ROLE_ADMIN, 4096, rollouts_approve},

        /* operators: the event stream and the audit log */
        {HTTP_GET, "/v1/events", ROLES_OPERATOR, 0, stream_events},
        {HTTP_GET, "/v1/audit", ROLES_OPERATOR, 0, reads_audit},
        {HTTP_GET, "/v1/controller", ROLES_OPERATOR, 0, lease_http_get},
        {HTTP_GET, "/v1/events/recent", ROLES_OPERATOR, 0, reads_events_recent},
        {HTTP_GET, "/v1/liveness", ROLES_OPERATOR, 0, reads_fleet_liveness},
        {HTTP_GET, "/v1/rollouts/{id}/statistics", ROLES_OPERATOR, 0, reads_rollout_statistics},
        {HTTP_GET, "/v1/rollouts/{id}/signals", ROLES_OPERATOR, 0, reads_rollout_signals},

        /* rings and pins */
        {HTTP_GET, "/v1/rings", ROLES_OPERATOR, 0, rings_get},
        {HTTP_PUT, "/v1/rings", ROLE_ADMIN, 1 << 20, rings_put},
        {HTTP_GET, "/v1/pins", ROLES_OPERATOR, 0, pins_list},
        {HTTP_POST, "/v1/pins", ROLE_ADMIN, 4096, pins_create},
        {HTTP_DELETE, "/v1/pins/{id}", ROLE_ADMIN, 0, pins_delete},

        /* admin bounds on rollout gate policies (server/GATE.md) */
        {HTTP_GET, "/v1/policy-bounds", ROLES_OPERATOR, 0, policy_bounds_get},
        {HTTP_PUT, "/v1/policy-bounds", ROLE_ADMIN, 65536, policy_bounds_put},
};
const size_t routes_count = sizeof routes / sizeof routes[0];
