#!/usr/bin/env bash
# Rehearsals 17 and 18 (issue 18): tenants with customer content policies.
# A Channel-File-291 file halted in canary reached only the early tenant's
# canary hosts; a good file reached the delayed tenant only its delay after
# it completed, and the paused tenant never.
source "$(dirname "$0")/rehearsals.sh"
rehearse_tenants_cf291 "${FBE_AGENTS:-}"
rehearse_tenants_good "${FBE_AGENTS:-}"
fbe_summary_line
