#!/usr/bin/env bash
# Rollout rehearsal "invalid" (see tests/e2e/rehearsals.sh and scenarios/invalid.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_invalid "${FBE_AGENTS:-}"
fbe_summary_line
