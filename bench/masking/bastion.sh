#!/usr/bin/env bash
# Masking through the live bastion, side by side in one run: a direct OpenSSH connection to the
# target sshd, Gatehouse with masking off (a scope with `masking: {enabled: false}`) and Gatehouse
# with masking on (the default), all on 127.0.0.1, everything stopped by its pid.
#
#   bench/masking/bastion.sh [path-to-release-gatehouse]
#
# bulk: BULK_MIB (default 256) of ordinary text (the masking corpus's negative files, repeated)
#       via `cat`, BULK_RUNS (default 5) of each path interleaved: wall time, and Gatehouse's own
#       CPU time per run (utime+stime of the serve process from /proc).
# echo: ECHO_KEYS (default 300) keystrokes into `cat` on a pty (asyncssh): the time from
#       writing one byte to reading its echo, per path.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$(pwd)
GATEHOUSE=${1:-$(swift build -c release --show-bin-path)/gatehouse}
BULK_MIB=${BULK_MIB:-256}
BULK_RUNS=${BULK_RUNS:-5}
ECHO_KEYS=${ECHO_KEYS:-300}
work=$(mktemp -d /tmp/gatehouse-mask-bastion.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
me=$(id -un)

"$GATEHOUSE" ca init --state "$work/state" >/dev/null
"$GATEHOUSE" ca export target --state "$work/state" -o "$work/target_ca.pub"
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
mkdir -p /run/sshd
target_port=$(free_port); bastion_port=$(free_port)
cat > "$work/sshd.conf" <<CFG
ListenAddress 127.0.0.1:$target_port
HostKey $work/host_key
PidFile $work/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile none
TrustedUserCAKeys $work/target_ca.pub
SetEnv SHLVL=1
CFG
/usr/sbin/sshd -D -f "$work/sshd.conf" -E "$work/sshd.log" & pids+=($!)

# The bulk input: ordinary output, no secrets (what most sessions print).
python3 - "$work/bulk.txt" "$BULK_MIB" Tests/MaskingTests/corpus/negative/*.txt <<'PY'
import sys
out, mib, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
data = b"".join(open(f, "rb").read() for f in files)
target = mib << 20
with open(out, "wb") as f:
    written = 0
    while written < target:
        piece = data[: target - written]
        f.write(piece)
        written += len(piece)
PY

cat > "$work/gatehouse.yaml" <<CFG
listen: ["127.0.0.1:$bastion_port"]
state: $work/state
host_keys: $work/hostkeys
recordings: $work/recordings
limits: {idle_connection: 1h}
targets:
  web-01:
    address: 127.0.0.1
    port: $target_port
    login: $me
    host_key: "$(cut -d' ' -f1,2 "$work/host_key.pub")"
scopes:
  masked:
    targets: [web-01]
    rights: [exec, pty, shell]
    commands: ["cat {file: path under $work}", "cat"]
  plain:
    targets: [web-01]
    rights: [exec, pty, shell]
    commands: ["cat {file: path under $work}", "cat"]
    masking: {enabled: false}
CFG
"$GATEHOUSE" serve --config "$work/gatehouse.yaml" > "$work/serve.out" 2> "$work/serve.err" & serve_pid=$!; pids+=($serve_pid)
for _ in $(seq 300); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.05; done
grep -q "listening on" "$work/serve.out" || { cat "$work/serve.err" >&2; exit 1; }

ssh-keygen -q -t ed25519 -N '' -f "$work/agent"
for scope in masked plain; do
  cp "$work/agent" "$work/$scope"; cp "$work/agent.pub" "$work/$scope.pub"
  "$GATEHOUSE" cert issue --state "$work/state" --ca user --public-key "$work/$scope.pub" --key-id "bench-$scope" --principal bench \
    --ttl 4h --scopes "$scope" -o "$work/$scope-cert.pub" >/dev/null
done
cp "$work/agent" "$work/direct"; cp "$work/agent.pub" "$work/direct.pub"
"$GATEHOUSE" cert issue --state "$work/state" --ca target --public-key "$work/direct.pub" --key-id bench-direct --principal "$me" \
  --ttl 4h -o "$work/direct-cert.pub" >/dev/null

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load before $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$here/bench/masking/bastion_clients.py" "$work" "$me" "$target_port" "$bastion_port" "$serve_pid" "$BULK_RUNS" "$ECHO_KEYS"
echo "load after $(cut -d' ' -f1-3 /proc/loadavg)"
