#!/usr/bin/env bash
# Rollout rehearsal "one_percent" (gate v2; see tests/e2e/rehearsals.sh and scenarios/one_percent.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_one_percent "${FBE_AGENTS:-}"
fbe_summary_line
