#!/usr/bin/env bash
# Rollout rehearsal "restart" (see tests/e2e/rehearsals.sh and scenarios/restart.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_restart "${FBE_AGENTS:-}"
fbe_summary_line
