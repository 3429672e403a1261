#!/usr/bin/env bash
# Gatehouse's main job, end to end, on loopback: a throwaway target sshd (own config in a
# temporary directory) trusting Gatehouse's target CA, `gatehouse serve` in front of it, an
# agent certificate minted with `gatehouse cert issue`, and a few commands through the bastion
# with the stock ssh client: allowed, denied, unknown target, plain key. Then the agent's own
# path: an OIDC token from a throwaway identity provider (Debian's glewlwyd on loopback) traded
# for a certificate with `gatehouse login`. Everything started is stopped by pid.
set -euo pipefail
GATEHOUSE=${1:?usage: demo.sh PATH-TO-gatehouse}
work=$(mktemp -d /tmp/gatehouse-demo.XXXXXX)
state="$work/state"
sshd_pid=""; serve_pid=""; idp_started=""
here=$(cd "$(dirname "$0")" && pwd)
cleanup() {
  [ -n "$idp_started" ] && python3 "$here/oidc/glewlwyd_provider.py" stop --dir "$work/idp" >/dev/null 2>&1
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

step "CA store (user, target, host, recording) and the target CA for the target's sshd"
"$GATEHOUSE" ca init --state "$state"
"$GATEHOUSE" ca export target --state "$state" -o "$work/target_ca.pub"

step "A throwaway target: sshd on 127.0.0.1 trusting only the target CA"
ssh-keygen -q -t ed25519 -N '' -f "$work/target_host_key"
target_port=$(free_port)
cat > "$work/sshd_config" <<CFG
ListenAddress 127.0.0.1:$target_port
HostKey $work/target_host_key
PidFile $work/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile none
TrustedUserCAKeys $work/target_ca.pub
LogLevel VERBOSE
CFG
mkdir -p /run/sshd
/usr/sbin/sshd -f "$work/sshd_config" -E "$work/sshd.log"
for _ in $(seq 100); do [ -s "$work/sshd.pid" ] && break; sleep 0.05; done
sshd_pid=$(cat "$work/sshd.pid")
echo "  target sshd pid $sshd_pid on 127.0.0.1:$target_port"

step "A throwaway OIDC provider: Debian's glewlwyd on 127.0.0.1, user alice in group ops"
mkdir -p "$work/idp"
idp_started=yes
python3 "$here/oidc/glewlwyd_provider.py" start --dir "$work/idp" --user alice=ops > "$work/idp.json"
issuer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["issuer"])' "$work/idp.json")
client_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_id"])' "$work/idp.json")
echo "  issuer $issuer, client $client_id"

step "gatehouse serve: one target, one scope, OIDC issuance, everything else on embedded defaults"
bastion_port=$(free_port)
issuance_port=$(free_port)
cat > "$work/gatehouse.yaml" <<CFG
listen: ["127.0.0.1:$bastion_port"]
state: $state
host_keys: $work/hostkeys
recordings: $work/recordings
targets:
  web-01:
    address: 127.0.0.1
    port: $target_port
    login: $(id -un)
    host_key: "$(cut -d' ' -f1,2 "$work/target_host_key.pub")"
scopes:
  ops-read:
    targets: [web-01]
    rights: [exec]
    commands: ["uname -sr", "id -un", "echo {words...}", "uptime", "cat {file: path under $work/files}"]
issuance:
  listen: 127.0.0.1:$issuance_port
  max_ttl: 15m
  mapping:
    key_id: "oidc:{preferred_username}"
    principals: ["{preferred_username}"]
    groups_claim: groups
    group_scopes:
      ops: [ops-read]
  issuers:
    - issuer: $issuer
      audiences: [$client_id]
      token_type: id_token
      algorithms: [RS256]
CFG
sed 's/^/  /' "$work/gatehouse.yaml"
"$GATEHOUSE" serve --config "$work/gatehouse.yaml" > "$work/serve.out" 2> "$work/serve.err" &
serve_pid=$!
for _ in $(seq 200); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.05; done
sed 's/^/  /' "$work/serve.out"

step "An agent key and a 10-minute certificate with scope ops-read"
ssh-keygen -q -t ed25519 -N '' -C agent -f "$work/agent"
"$GATEHOUSE" cert issue --state "$state" --ca user --public-key "$work/agent.pub" --key-id "agent:demo" --principal agent \
  --ttl 10m --scopes ops-read --context "task=demo-1" | sed 's/^/  /'
grep "known_hosts:" "$work/serve.out" | sed 's/^known_hosts: //' > "$work/known_hosts"

gh_ssh() {
  ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$work/known_hosts" -o LogLevel=ERROR \
    -o IdentitiesOnly=yes -i "${IDENTITY:-$work/agent}" -p "$bastion_port" "$@"
}
run() { printf '\n  $ ssh %s\n' "$*"; set +e; gh_ssh "$@" 2>&1 | sed 's/^/    /'; status=${PIPESTATUS[0]}; set -e; echo "    (exit status $status)"; }

step "Commands through the bastion (the host key is pinned from serve's output)"
run web-01@127.0.0.1 -- uname -sr
run web-01@127.0.0.1 -- id -un
run web-01@127.0.0.1 -- echo "'hello; from the agent'"
step "Rotate the recording key through every phase, sessions before and after: history stays verifiable"
"$GATEHOUSE" ca rotate recording --state "$state" > /dev/null
"$GATEHOUSE" ca rotate recording --state "$state" > /dev/null
run web-01@127.0.0.1 -- uptime
"$GATEHOUSE" ca rotate recording --state "$state" | grep -E 'phase|verify-only' | sed 's/^/  /'

step "Refused before anything reaches the target"
run web-01@127.0.0.1 -- 'rm -rf /tmp/x'
run web-99@127.0.0.1 -- uptime
ssh-keygen -q -t ed25519 -N '' -C plain -f "$work/plain"
IDENTITY="$work/plain" run web-01@127.0.0.1 -- uptime

step "Secrets the target prints are masked before the agent reads them; the recording keeps both views"
mkdir -p "$work/files"
python3 - "$work/files/app.env" <<'PY'
import secrets, string, sys
alphabet = string.ascii_letters + string.digits
token = "ghp_" + "".join(secrets.choice(alphabet) for _ in range(36))
open(sys.argv[1], "w").write(f"APP=billing\nGITHUB_TOKEN={token}\nDB_PASSWORD={secrets.token_urlsafe(18)}\nLOG_LEVEL=info\n")
PY
run web-01@127.0.0.1 -- cat "$work/files/app.env"
masked_id=$("$GATEHOUSE" sessions list --json --recordings "$work/recordings" | python3 -c 'import json, sys; print([json.loads(l) for l in sys.stdin][-1]["recording_id"])')
echo "  gatehouse export $masked_id --format raw   (what the agent saw, the default view):"
"$GATEHOUSE" export "$masked_id" --format raw --recordings "$work/recordings" 2>/dev/null | sed 's/^/    /'
echo "  --unmasked without --state is refused (the read must be audited):"
"$GATEHOUSE" export "$masked_id" --format raw --unmasked --recordings "$work/recordings" 2>&1 | sed 's/^/    /' || true
"$GATEHOUSE" export "$masked_id" --format raw --unmasked --state "$state" --recordings "$work/recordings" 2>/dev/null > "$work/unmasked.out"
cmp -s "$work/unmasked.out" "$work/files/app.env" && grep -q "recording.unmasked" "$state/audit.log" && echo "  --unmasked --state: the target's bytes, identical to the file (and audited as recording.unmasked)"

step "The agent's own path: an OIDC ID token for alice, traded for a 5-minute certificate"
ALICE_TOKEN=$(python3 "$here/oidc/glewlwyd_provider.py" token --dir "$work/idp" --user alice --kind id)
export ALICE_TOKEN
"$GATEHOUSE" login --server "http://127.0.0.1:$issuance_port" --token-env ALICE_TOKEN --key "$work/alice" --ttl 5m \
  --task-id demo-2 --reason "show the kernel" | sed 's/^/  /'
IDENTITY="$work/alice" run web-01@127.0.0.1 -- uname -sr
IDENTITY="$work/alice" run web-01@127.0.0.1 -- cat /etc/shadow

step "The target's sshd log names the Gatehouse session and the agent"
grep -m1 'Accepted certificate ID "gatehouse session=' "$work/sshd.log" | sed 's/^.*Accepted certificate ID/  Accepted certificate ID/'

step "The audit log: every decision, hash-chained"
python3 - "$state/audit.log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["action"].startswith(("ssh.", "policy.", "session.", "cert.")):
        d = e["details"]
        print(f'  {e["seq"]:>3} {e["action"]:<16} {e["outcome"]:<8} {d.get("request") or d.get("reason") or e["object"]}')
PY
"$GATEHOUSE" audit verify --state "$state" | sed 's/^/  /'

step "Every session was recorded: the index, and the recordings verified"
"$GATEHOUSE" sessions list --recordings "$work/recordings" | sed 's/^/  /'
"$GATEHOUSE" verify --all --recordings "$work/recordings" --state "$state" | sed 's/^/  /'
step "And on another machine: the exported recording keys (current and verify-only), no state directory"
"$GATEHOUSE" ca export recording --history --state "$state" -o "$work/recording-keys.pub"
sed 's/^/  /' "$work/recording-keys.pub"
"$GATEHOUSE" verify --all --recordings "$work/recordings" --trusted-keys "$work/recording-keys.pub" | sed 's/^/  /'
# sed reads to the end (head would close the pipe early, and pipefail would see SIGPIPE).
first=$("$GATEHOUSE" sessions list --json --recordings "$work/recordings" | sed -n 1p)
echo "  $first"
first_id=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["recording_id"])' "$first")
echo "  The first session, recorded under the retired key, exported after checking its key:"
"$GATEHOUSE" export "$first_id" --format asciicast-v3 --recordings "$work/recordings" --trusted-keys "$work/recording-keys.pub" 2>&1 | sed -n '1,2s/^/    /p'
echo "  Checked against the current key alone, it is refused:"
"$GATEHOUSE" ca export recording --state "$state" -o "$work/current-key.pub"
"$GATEHOUSE" export "$first_id" --format text --recordings "$work/recordings" --trusted-keys "$work/current-key.pub" 2>&1 | sed 's/^/    /' || true
