#!/usr/bin/env bash
# Memory only: 1000 idle sessions (RSS per session) and three bursts of 500 sessions (RSS before,
# at peak and after). The same parts as in bench/bastion/run.sh, run alone:
#   bench/bastion/memory.sh [path-to-release-gatehouse]
exec env PARTS="${PARTS:-idle burst}" "$(dirname "$0")/run.sh" "$@"
