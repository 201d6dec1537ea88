#!/usr/bin/env bash
# Rollout rehearsal "good" (see tests/e2e/rehearsals.sh and scenarios/good.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_good "${FBE_AGENTS:-}"
fbe_summary_line
