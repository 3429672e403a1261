#!/usr/bin/env bash
# The main job on embedded defaults, as far as it is built: a CA is made, an agent key is
# certified with scopes and context, the certificate is inspected against the CA and a KRL,
# and a real sshd on 127.0.0.1 (its own config in a temporary directory) accepts it.
set -euo pipefail
GATEHOUSE=${1:?usage: demo.sh PATH-TO-gatehouse}
work=$(mktemp -d /tmp/gatehouse-demo.XXXXXX)
sshd_pid=""
cleanup() { [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "A user CA and an agent key"
ssh-keygen -q -t ed25519 -N '' -C gatehouse-user-ca -f "$work/user_ca"
ssh-keygen -q -t ed25519 -N '' -C agent -f "$work/agent"
ssh-keygen -lf "$work/user_ca.pub"

step "gatehouse cert issue: a 10-minute certificate with scopes and a context"
"$GATEHOUSE" cert issue --ca-key "$work/user_ca" --public-key "$work/agent.pub" --key-id "agent:demo" \
  --principal "$(id -un)" --ttl 10m --scopes ops-read --context "task=demo-1"

step "gatehouse cert inspect: the certificate and the verdict against the trusted CA"
"$GATEHOUSE" cert inspect "$work/agent-cert.pub" --trusted-ca "$work/user_ca.pub"

step "A throwaway sshd on 127.0.0.1 that trusts the CA"
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/sshd_config" <<CFG
ListenAddress 127.0.0.1:$port
HostKey $work/host_key
PidFile $work/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile none
TrustedUserCAKeys $work/user_ca.pub
CFG
mkdir -p /run/sshd
/usr/sbin/sshd -f "$work/sshd_config" -E "$work/sshd.log"
for _ in $(seq 100); do [ -s "$work/sshd.pid" ] && break; sleep 0.05; done
sshd_pid=$(cat "$work/sshd.pid")

step "ssh with the Gatehouse-issued certificate"
ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
  -o IdentitiesOnly=yes -i "$work/agent" -o CertificateFile="$work/agent-cert.pub" -p "$port" "$(id -un)@127.0.0.1" \
  -- 'echo "hello from $(hostname) as $(id -un)"'
grep -m1 "Accepted publickey" "$work/sshd.log" || true
step "Done"
