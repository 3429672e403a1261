#!/usr/bin/env bash
# Masking throughput on ordinary output, one core: the negative corpus (ordinary command output,
# no secrets) repeated to SIZE MiB, fed through `gatehouse mask` in the pump's 32 KiB reads.
# Reports the masker's own rate (time inside feed/flush) and the whole command's CPU time.
#   bench/masking/run.sh [SIZE_MIB]   (default 256)
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:-256}
swift build -c release --product gatehouse >/dev/null
bin=.build/release/gatehouse
work=$(mktemp -d /tmp/gatehouse-mask-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
corpus=Tests/MaskingTests/corpus
cat "$corpus"/negative/*.txt > "$work/once"
while [ "$(stat -c %s "$work/input" 2>/dev/null || echo 0)" -lt $((size * 1048576)) ]; do cat "$work/once" >> "$work/input"; done
bytes=$(stat -c %s "$work/input")
echo "input: $((bytes / 1048576)) MiB of ordinary output ($(ls "$corpus"/negative | tr '\n' ' '))"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for run in 1 2 3; do
  for mode in marker same-width; do
    /usr/bin/time -f "%U %S" -o "$work/time" taskset -c 1 "$bin" mask --mode "$mode" "$work/input" >/dev/null 2>"$work/err"
    read -r user sys <"$work/time"
    echo "run $run $mode: $(tail -1 "$work/err" | sed 's/.*masking //') inside the masker; whole command $(python3 -c "print(f'{$bytes / ($user + $sys) / 1e6:.0f}')") MB/s of CPU time (user $user s, sys $sys s)"
  done
done
echo
echo "labelled corpus (positive cases), per-rule counts:"
cat "$corpus"/positive/*.txt | "$bin" mask >/dev/null
