#!/usr/bin/env bash
# Rehearsal 2: a Channel-File-291-shaped file (crashes every host, boot-loops)
# is halted in ring 0, exposure stays within ring 0, and every exposed agent is
# back on the last known good file.
source "$(dirname "$0")/rehearsals.sh"
rehearse_cf291 "${FBE_AGENTS:-}"
fbe_summary_line
