#!/usr/bin/env bash
# Rollout rehearsal "silent" (see tests/e2e/rehearsals.sh and scenarios/silent.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_silent "${FBE_AGENTS:-}"
fbe_summary_line
