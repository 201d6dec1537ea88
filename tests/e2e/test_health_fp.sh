#!/usr/bin/env bash
# Rollout rehearsal "health_fp" (health signals; see tests/e2e/rehearsals.sh and scenarios/health_fp.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_health_bad health_fp "detections" "${FBE_AGENTS:-}"
fbe_summary_line
