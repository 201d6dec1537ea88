#!/usr/bin/env bash
# Rollout rehearsal "latent" (gate v2; see tests/e2e/rehearsals.sh and scenarios/latent.json).
source "$(dirname "$0")/rehearsals.sh"
rehearse_latent "${FBE_AGENTS:-}"
fbe_summary_line
