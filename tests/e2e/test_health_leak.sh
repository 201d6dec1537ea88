#!/usr/bin/env bash
# Rollout rehearsal "health_leak" (health signals; see tests/e2e/rehearsals.sh and scenarios/health_leak.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_health_bad health_leak "memory" "${FBE_AGENTS:-}"
fbe_summary_line
