#!/usr/bin/env bash
# Gatehouse against the anchor a user would pick instead: OpenSSH's ProxyJump (ssh -J) through a
# stock sshd, and a direct connection, on this machine in the same run. Everything on 127.0.0.1;
# everything started is stopped by pid. Writes a markdown section to stdout (and to $OUT if set).
#   bench/bastion/run.sh [path-to-release-gatehouse]
set -euo pipefail
cd "$(dirname "$0")/../.."
GATEHOUSE=${1:-$(swift build -c release --show-bin-path)/gatehouse}
RUNS=${RUNS:-20}
BULK_MIB=${BULK_MIB:-256}
IDLE=${IDLE:-200}
work=$(mktemp -d /tmp/gatehouse-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; pkill -f "gatehouse-bench-idle" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
me=$(id -un)

"$GATEHOUSE" ca init --state "$work/state" >/dev/null
"$GATEHOUSE" ca export target --state "$work/state" -o "$work/target_ca.pub"
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
start_sshd() { # name port extra-config
  cat > "$work/$1.conf" <<CFG
ListenAddress 127.0.0.1:$2
HostKey $work/host_key
PidFile $work/$1.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile none
TrustedUserCAKeys $work/target_ca.pub
MaxStartups 1000:30:1000
MaxSessions 1000
$3
CFG
  /usr/sbin/sshd -f "$work/$1.conf" -E "$work/$1.log"
  for _ in $(seq 100); do [ -s "$work/$1.pid" ] && break; sleep 0.05; done
  pids+=("$(cat "$work/$1.pid")")
}
target_port=$(free_port); jump_port=$(free_port); bastion_port=$(free_port)
mkdir -p /run/sshd
start_sshd target "$target_port" ""
start_sshd jump "$jump_port" "AllowTcpForwarding yes"

cat > "$work/gatehouse.yaml" <<CFG
listen: ["127.0.0.1:$bastion_port"]
state: $work/state
host_keys: $work/hostkeys
limits: {max_unauthenticated: 1000}
log: {level: warning}
targets:
  web-01: {address: 127.0.0.1, port: $target_port, login: $me, host_key: "$(cut -d' ' -f1,2 "$work/host_key.pub")"}
scopes:
  bench:
    targets: [web-01]
    rights: [exec]
    commands: ["true", "head -c {n: 1..100000000000} /dev/zero", "sleep {n: 1..3600}"]
CFG
"$GATEHOUSE" serve --config "$work/gatehouse.yaml" > "$work/serve.out" 2> "$work/serve.err" &
gh_pid=$!; pids+=("$gh_pid")
for _ in $(seq 200); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.05; done

ssh-keygen -q -t ed25519 -N '' -f "$work/agent"
"$GATEHOUSE" cert issue --state "$work/state" --ca user --public-key "$work/agent.pub" --key-id bench --principal bench --ttl 2h --scopes bench >/dev/null
cp "$work/agent.pub" "$work/direct.pub"; cp "$work/agent" "$work/direct"
"$GATEHOUSE" cert issue --state "$work/state" --ca target --public-key "$work/direct.pub" --key-id bench-direct --principal "$me" --ttl 2h --extension permit-port-forwarding -o "$work/direct-cert.pub" >/dev/null

common=(-F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes)
direct() { ssh "${common[@]}" -i "$work/direct" -p "$target_port" "$me@127.0.0.1" -- "$@"; }
# ProxyJump spelled out as the ProxyCommand it runs (ssh -W through the jump sshd), so the jump
# leg uses the same identity and options; OpenSSH's -J would not pass -i down.
jump() { ssh "${common[@]}" -i "$work/direct" -o "ProxyCommand=ssh ${common[*]} -i $work/direct -W %h:%p -p $jump_port $me@127.0.0.1" -p "$target_port" "$me@127.0.0.1" -- "$@"; }
gatehouse() { ssh "${common[@]}" -i "$work/agent" -p "$bastion_port" web-01@127.0.0.1 -- "$@"; }

timeit() { python3 - "$@" <<'PY'
import subprocess, sys, time, statistics
runs = int(sys.argv[1]); cmd = sys.argv[2:]
samples = []
for _ in range(runs):
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples.append(time.perf_counter() - t)
    if r.returncode != 0:
        sys.exit(f"{cmd} failed: {r.stderr.decode()}")
print(f"{statistics.median(samples):.3f} {min(samples):.3f} {max(samples):.3f}")
PY
}
export -f direct jump gatehouse
export work target_port jump_port bastion_port me
declare -p common > "$work/common.sh"

row() { # label runs command...
  local label=$1; shift
  read -r med lo hi < <(timeit "$@")
  printf '| %s | %s s | %s s | %s s |\n' "$label" "$med" "$lo" "$hi"
}
b() { echo "source $work/common.sh; $(declare -f direct jump gatehouse); $*"; }

out=$(mktemp)
{
echo "### Gatehouse vs ProxyJump vs direct (\`bench/bastion/run.sh\`)"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); OpenSSH $(ssh -V 2>&1 | cut -d, -f1); libssh $(dpkg-query -W -f='${Version}' libssh-4). Date: $(date -u +%F)."
echo
echo "Connect + \`true\` ($RUNS runs each; median, min, max):"
echo
echo "| path | median | min | max |"
echo "|---|---|---|---|"
row "direct ssh" "$RUNS" bash -c "$(b direct true)"
row "ProxyJump (ssh -J via stock sshd)" "$RUNS" bash -c "$(b jump true)"
row "Gatehouse" "$RUNS" bash -c "$(b gatehouse true)"
echo
bytes=$((BULK_MIB * 1048576))
echo "$BULK_MIB MiB of output (\`head -c $bytes /dev/zero\` on the target, read by the client; 3 runs):"
echo
echo "| path | median | min | max |"
echo "|---|---|---|---|"
row "direct ssh" 3 bash -c "$(b direct head -c $bytes /dev/zero)"
row "ProxyJump (ssh -J via stock sshd)" 3 bash -c "$(b jump head -c $bytes /dev/zero)"
row "Gatehouse" 3 bash -c "$(b gatehouse head -c $bytes /dev/zero)"
echo
rss() { awk '/VmRSS/ {print $2}' "/proc/$gh_pid/status"; }
before=$(rss)
for i in $(seq "$IDLE"); do
  ssh "${common[@]}" -i "$work/agent" -p "$bastion_port" web-01@127.0.0.1 -- sleep 600 </dev/null >/dev/null 2>&1 &
  idle_pids+=($!)
done
for _ in $(seq 600); do
  n=$(python3 -c "import json,sys; print(sum(1 for l in open('$work/state/audit.log') if json.loads(l)['action']=='session.start'))")
  [ "$n" -ge $((IDLE + RUNS + 3)) ] && break; sleep 0.2
done
sleep 2
after=$(rss)
echo "Memory: gatehouse RSS $((before / 1024)) MiB before, $((after / 1024)) MiB with $IDLE idle proxied sessions open: $(( (after - before) / IDLE )) KiB per idle session."
for p in "${idle_pids[@]}"; do kill "$p" 2>/dev/null || true; done
} | tee "$out"
[ -n "${OUT:-}" ] && cp "$out" "$OUT"
rm -f "$out"
