#!/usr/bin/env bash
# Rollout rehearsal "health_cpu" (health signals; see tests/e2e/rehearsals.sh and scenarios/health_cpu.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_health_bad health_cpu "agent CPU" "${FBE_AGENTS:-}"
fbe_summary_line
