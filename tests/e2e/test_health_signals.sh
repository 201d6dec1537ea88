#!/usr/bin/env bash
# Rollout rehearsal "health_signals" (health signals; see tests/e2e/rehearsals.sh and scenarios/health_signals.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_health_signals "${FBE_AGENTS:-}"
fbe_summary_line
