#!/usr/bin/env bash
# A scripted tour of Gatehouse's certificate authorities on embedded defaults: create the CA
# store, certify an agent key with scopes and a context, let a throwaway sshd on 127.0.0.1
# (own config in a temporary directory) trust the exported CA, log in with the stock ssh
# client, revoke the certificate through the exported KRL and watch sshd refuse it, rotate
# the CA, and verify the audit log. Everything started is stopped by pid.
set -euo pipefail
GATEHOUSE=${1:?usage: demo.sh PATH-TO-gatehouse}
work=$(mktemp -d /tmp/gatehouse-demo.XXXXXX)
state="$work/state"
sshd_pid=""
cleanup() { [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
gh() { echo "\$ gatehouse $*"; "$GATEHOUSE" "$@" --state "$state"; }

step "Create the CA store (user, target, host, recording)"
gh ca init

step "An agent key, certified for 10 minutes with scopes and a request context"
ssh-keygen -q -t ed25519 -N '' -C agent -f "$work/agent"
gh cert issue --ca user --public-key "$work/agent.pub" --key-id "agent:demo" --principal "$(id -un)" \
  --ttl 10m --scopes ops-read --context "task=demo-1"
gh cert inspect "$work/agent-cert.pub"

step "A throwaway sshd on 127.0.0.1 trusting the exported user CA and the Gatehouse KRL"
gh ca export user -o "$work/trusted_user_ca"
gh ca export krl -o "$work/revoked.krl"
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
TrustedUserCAKeys $work/trusted_user_ca
RevokedKeys $work/revoked.krl
CFG
mkdir -p /run/sshd
/usr/sbin/sshd -f "$work/sshd_config" -E "$work/sshd.log"
for _ in $(seq 100); do [ -s "$work/sshd.pid" ] && break; sleep 0.05; done
sshd_pid=$(cat "$work/sshd.pid")
login() {
  ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
    -o IdentitiesOnly=yes -i "$work/agent" -o CertificateFile="$work/agent-cert.pub" -p "$port" "$(id -un)@127.0.0.1" \
    -- 'echo "  hello from $(hostname) as $(id -un)"'
}

step "ssh with the Gatehouse-issued certificate"
login
grep -m1 "Accepted publickey" "$work/sshd.log" | sed 's/^/  sshd: /'

step "Revoke it; the exported KRL makes sshd refuse it"
serial=$(ssh-keygen -L -f "$work/agent-cert.pub" | awk '/Serial:/ {print $2}')
gh cert revoke --serial "$serial" --ca user
gh ca export krl -o "$work/revoked.krl"
if login 2>/dev/null; then echo "  UNEXPECTED: revoked certificate accepted"; exit 1; else echo "  refused by sshd, as it should be"; fi

step "Rotate the user CA: init, then update (both keys trusted), then status"
gh ca rotate user >/dev/null
gh ca rotate user >/dev/null
gh ca status

step "The audit log holds every step, hash-chained"
gh audit verify
