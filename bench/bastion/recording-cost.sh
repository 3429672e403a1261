#!/usr/bin/env bash
# What recording costs a real session: the same bulk transfer through two Gatehouse servers
# built from this tree — one as shipped (every byte recorded), one built with
# bench/bastion/unrecorded-relay.patch applied (the relay skips the recorder's append; the
# session still opens and closes its recording) — runs interleaved, medians reported.
#
# The patch is applied to the working tree only for the length of one build and reverted on
# any exit: no binary with it is ever installed, and the source tree never carries the bypass.
#
#   bench/bastion/recording-cost.sh        # RUNS (default 9) transfers of BULK_MIB (default 256) each
#
# Needs sshd and ssh (make deps); binds 127.0.0.1 only; everything started is stopped by pid.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-9}
BULK_MIB=${BULK_MIB:-256}
# The same flags as bench/recording/run.sh, so the two share one release build.
BUILD=(nice -n 15 swift build -c release --product gatehouse -Xswiftc -enable-testing)
work=$(mktemp -d /tmp/gatehouse-recording-cost.XXXXXX)
pids=()
patched=""
cleanup() {
  [ -n "$patched" ] && git apply -R bench/bastion/unrecorded-relay.patch
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

git diff --quiet -- Sources/Bastion/Proxy/Relay.swift || { echo "Relay.swift has local changes; commit or stash them first" >&2; exit 1; }
BIN=$(swift build -c release --show-bin-path)
git apply bench/bastion/unrecorded-relay.patch; patched=1
"${BUILD[@]}" >/dev/null
cp "$BIN/gatehouse" "$work/gatehouse-unrecorded"
git apply -R bench/bastion/unrecorded-relay.patch; patched=""
"${BUILD[@]}" >/dev/null
cp "$BIN/gatehouse" "$work/gatehouse-recorded"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
me=$(id -un)
G="$work/gatehouse-recorded"
"$G" ca init --state "$work/state" >/dev/null
"$G" ca export target --state "$work/state" -o "$work/target_ca.pub"
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
target_port=$(free_port)
mkdir -p /run/sshd
cat > "$work/target.conf" <<CFG
ListenAddress 127.0.0.1:$target_port
HostKey $work/host_key
PidFile $work/target.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile none
TrustedUserCAKeys $work/target_ca.pub
CFG
/usr/sbin/sshd -f "$work/target.conf" -E "$work/target.log"
for _ in $(seq 100); do [ -s "$work/target.pid" ] && break; sleep 0.05; done
pids+=("$(cat "$work/target.pid")")

start_gatehouse() { # name binary -> port
  local port; port=$(free_port)
  mkdir -p "$work/$1"
  # Same CA keys for both (one agent certificate, one target trust), separate audit logs.
  cp -r "$work/state" "$work/$1/state"
  cat > "$work/$1/gatehouse.yaml" <<CFG
listen: ["127.0.0.1:$port"]
state: $work/$1/state
host_keys: $work/$1/hostkeys
recordings: $work/$1/recordings
log: {level: warning}
targets:
  web-01: {address: 127.0.0.1, port: $target_port, login: $me, host_key: "$(cut -d' ' -f1,2 "$work/host_key.pub")"}
scopes:
  bench:
    targets: [web-01]
    rights: [exec]
    commands: ["head -c {n: 1..100000000000} /dev/zero"]
CFG
  "$2" serve --config "$work/$1/gatehouse.yaml" > "$work/$1/serve.out" 2> "$work/$1/serve.err" &
  pids+=("$!")
  for _ in $(seq 200); do grep -q "listening on" "$work/$1/serve.out" 2>/dev/null && break; sleep 0.05; done
  echo "$port"
}
ssh-keygen -q -t ed25519 -N '' -f "$work/agent"
"$G" cert issue --state "$work/state" --ca user --public-key "$work/agent.pub" --key-id bench --principal bench --ttl 2h --scopes bench >/dev/null
recorded_port=$(start_gatehouse recorded "$work/gatehouse-recorded")
unrecorded_port=$(start_gatehouse unrecorded "$work/gatehouse-unrecorded")
bytes=$((BULK_MIB * 1048576))

python3 - "$RUNS" "$bytes" "$work" "$recorded_port" "$unrecorded_port" <<'PY'
import statistics, subprocess, sys, time
runs, nbytes, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ports = {"recorded": sys.argv[4], "unrecorded": sys.argv[5]}
common = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
          "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-i", f"{work}/agent"]
samples = {name: [] for name in ports}
for i in range(runs):
    order = list(ports) if i % 2 == 0 else list(reversed(list(ports)))  # alternate who goes first
    for name in order:
        t = time.perf_counter()
        # Output to /dev/null as in run.sh (collecting it here would time Python, not the relay);
        # the byte count is checked from the recording's totals by the session end audit instead.
        r = subprocess.run(common + ["-p", ports[name], "web-01@127.0.0.1", "--", "head", "-c", str(nbytes), "/dev/zero"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - t
        if r.returncode != 0:
            sys.exit(f"{name}: exit {r.returncode}: {r.stderr.decode()}")
        samples[name].append(elapsed)
import json
for name in ports:
    # Every transfer moved every byte: the session end events say so (the last one may be
    # written just after its client exits, so poll briefly).
    deadline = time.time() + 30
    while True:
        with open(f"{work}/{name}/state/audit.log") as log:
            ends = [json.loads(line) for line in log if '"session.end"' in line]
        complete = [e for e in ends if e.get("details", {}).get("bytes_stdout") == str(nbytes)]
        if len(complete) == runs:
            break
        if time.time() > deadline:
            sys.exit(f"{name}: {len(complete)} of {runs} sessions delivered all {nbytes} bytes")
        time.sleep(0.1)
med = {name: statistics.median(v) for name, v in samples.items()}
mib = nbytes / 1048576
print(f"{mib:.0f} MiB of output through Gatehouse (`head -c {nbytes} /dev/zero` on the target), {runs} runs each, interleaved:")
print()
print("| build | median | min | max | throughput |")
print("|---|---|---|---|---|")
for name in ["unrecorded", "recorded"]:
    v = samples[name]
    print(f"| {name} | {med[name]:.3f} s | {min(v):.3f} s | {max(v):.3f} s | {mib / med[name]:.0f} MiB/s |")
print()
cost = (med["recorded"] - med["unrecorded"]) / med["unrecorded"] * 100
print(f"Recording costs **{cost:.1f}%** of the unrecorded time (target: within 5%).")
print()
print("Samples (s): " + "; ".join(f"{n} " + " ".join(f"{x:.3f}" for x in samples[n]) for n in ["unrecorded", "recorded"]))
PY
echo
echo "Machine: $(nproc) cores, $(uname -r), load average before the run: $(cut -d' ' -f1-3 /proc/loadavg). Date: $(date -u +%F)."
echo "Command: \`bench/bastion/recording-cost.sh\` (RUNS=$RUNS BULK_MIB=$BULK_MIB)."
