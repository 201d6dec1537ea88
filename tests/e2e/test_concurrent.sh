#!/usr/bin/env bash
# Rollout rehearsal "concurrent" (gate v2; see tests/e2e/rehearsals.sh and scenarios/concurrent.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_concurrent "${FBE_AGENTS:-}"
fbe_summary_line
