#!/usr/bin/env bash
# Rollout rehearsal "segment" (gate v2; see tests/e2e/rehearsals.sh and scenarios/segment.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_segment "${FBE_AGENTS:-}"
fbe_summary_line
