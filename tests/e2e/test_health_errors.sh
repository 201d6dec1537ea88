#!/usr/bin/env bash
# Rollout rehearsal "health_errors" (health signals; see tests/e2e/rehearsals.sh and scenarios/health_errors.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_health_bad health_errors "evaluation errors" "${FBE_AGENTS:-}"
fbe_summary_line
