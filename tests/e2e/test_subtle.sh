#!/usr/bin/env bash
# Rollout rehearsal "subtle" (see tests/e2e/rehearsals.sh and scenarios/subtle.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_subtle "${FBE_AGENTS:-}"
fbe_summary_line
