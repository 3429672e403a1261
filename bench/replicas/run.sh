#!/usr/bin/env bash
# Replicas (issue 16): issuances/s and sessions/s with 1 and 3 replicas, store local vs
# postgres, behind haproxy (TCP) on this machine; CPU per operation (from /proc), database round
# trips per operation (log_statement counting) and per-operation transactions (pg_stat_database
# xact_commit), sequential login latency local vs postgres, and OpenSSH's sshd side by side.
#
#   bench/replicas/run.sh [PATH-TO-gatehouse] [DURATION_SECONDS] [CONFIGS]
#
# Runs against whatever binary it is given (default: the release build, built first);
# CONFIGS defaults to local:1,postgres:1,local:3,postgres:3. Needs postgresql-15, haproxy,
# wrk, openssh-server and openssh-client from Debian (make deps) and asyncssh + cryptography.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -n "${1:-}" ]; then
  bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
else
  swift build -c release --product gatehouse >/dev/null
  bin="$(swift build -c release --show-bin-path)/gatehouse"
fi
duration=${2:-10}
configs=${3-local:1,postgres:1,local:3,postgres:3}
mkdir -p /run/sshd
echo "== machine: $(nproc) cores; $(free -g | awk '/^Mem:/ {print $2 " GiB total, " $7 " GiB available"}'); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== binary: $bin ($(stat -c %y "$bin" | cut -d. -f1))"
exec python3 bench/replicas/bench.py --gatehouse "$bin" --duration "$duration" --configs "$configs" --json "${BENCH_JSON:-/tmp/bench-replicas.json}"
