#!/usr/bin/env bash
# Rollout rehearsal "health_noise" (health signals; see tests/e2e/rehearsals.sh and scenarios/health_noise.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_health_noise "${FBE_AGENTS:-}"
fbe_summary_line
