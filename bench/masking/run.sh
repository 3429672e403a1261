#!/usr/bin/env bash
# Masking throughput on ordinary output, one core. Compiles Sources/Masking with the bench's
# main.swift as one optimized module (swiftc -O -wmo: what a release build does, without building
# the whole package), then feeds SIZE MiB in the pump's 32 KiB reads, pinned to one core.
#   bench/masking/run.sh [SIZE_MIB]   (default 256)
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:-256}
work=$(mktemp -d /tmp/gatehouse-mask-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
# MaskingConfiguration.swift (the YAML reader) is left out: it needs Yams, and the bench does not parse rules.
sources=$(ls Sources/Masking/*.swift | grep -v MaskingConfiguration.swift)
flock /tmp/swift-build.lock swiftc -O -wmo -module-name MaskingBench $sources bench/masking/main.swift -o "$work/masking-bench"
corpus=Tests/MaskingTests/corpus
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ordinary output (negative corpus: $(ls "$corpus"/negative | tr '\n' ' '))"
taskset -c 1 "$work/masking-bench" "$size" "$corpus"/negative/*.txt
echo "output full of secrets (positive corpus)"
taskset -c 1 "$work/masking-bench" 64 "$corpus"/positive/*.txt
