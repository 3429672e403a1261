#!/usr/bin/env bash
# Recording benchmarks (issue 5): relay throughput with recording on and off over 256 MiB of bulk
# output, recording size overhead, seek time in a 1 GiB recording, listing 10,000 sessions.
# Writes the markdown section to bench/recording/results.md (and prints it).
#
#   bench/recording/run.sh            # needs ~1.5 GiB free under $TMPDIR (default /tmp)
set -euo pipefail
cd "$(dirname "$0")/../.."
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-recording-bench.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
OUT=bench/recording/results.md

# The benchmark lives in the test target (it needs the module's internals and Package.swift gives
# no bench executable a Recording dependency), built in release mode with testing enabled.
nice -n 15 swift build -c release --build-tests -Xswiftc -enable-testing
BIN=$(swift build -c release --show-bin-path)
GATEHOUSE_RECORDING_BENCH="$SCRATCH" GATEHOUSE_RECORDING_BENCH_OUT="$OUT" \
  "$BIN/GatehousePackageTests.xctest" RecordingTests.RecordingBenchmarks/testRecordingBenchmarks > "$SCRATCH/xctest.log" 2>&1 \
  || { cat "$SCRATCH/xctest.log"; exit 1; }

# The CLI's own time to list 10,000 sessions (process start, index load, table output).
best=""
for _ in 1 2 3; do
  start=$(date +%s%N)
  "$BIN/gatehouse" sessions list --recordings "$SCRATCH/index-10k" > "$SCRATCH/list.txt"
  elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
  if [ -z "$best" ] || [ "$elapsed" -lt "$best" ]; then best=$elapsed; fi
done
rows=$(($(wc -l < "$SCRATCH/list.txt") - 1))
start=$(date +%s%N)
"$BIN/gatehouse" sessions list --recordings "$SCRATCH/index-10k" --subject user7@example.com --command unit-7 --json > /dev/null
filtered=$(( ($(date +%s%N) - start) / 1000000 ))
{
  echo "\`gatehouse sessions list\` over 10,000 sessions: **${best} ms** for the full table (${rows} rows, best of 3);"
  echo "with \`--subject … --command … --json\`: ${filtered} ms (target < 1 s)."
  echo
  echo "Command: \`bench/recording/run.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) — other work on the machine slows every figure)."
} >> "$OUT"
cat "$OUT"
