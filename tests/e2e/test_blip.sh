#!/usr/bin/env bash
# Rollout rehearsal "blip" (see tests/e2e/rehearsals.sh and scenarios/blip.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_blip "${FBE_AGENTS:-}"
fbe_summary_line
