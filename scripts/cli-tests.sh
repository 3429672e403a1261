#!/usr/bin/env bash
# Tests of the gatehouse executable as an admin uses it: real files, real ssh-keygen.
# Prints one line per check and a closing "N passed, N failed" line; exits non-zero on failure.
set -uo pipefail
GATEHOUSE=${1:?usage: cli-tests.sh PATH-TO-gatehouse}
work=$(mktemp -d /tmp/gatehouse-cli.XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0; failed=0
check() { local name=$1; shift; if "$@"; then echo "ok   $name"; passed=$((passed+1)); else echo "FAIL $name"; failed=$((failed+1)); fi; }

ssh-keygen -q -t ed25519 -N '' -f "$work/ca"
ssh-keygen -q -t ecdsa -b 384 -N '' -f "$work/other_ca"
ssh-keygen -q -t rsa -b 2048 -N '' -f "$work/agent"

issue_and_list() {
  "$GATEHOUSE" cert issue --ca-key "$work/ca" --public-key "$work/agent.pub" --key-id ci-agent --principal agent \
    --ttl 5m --scopes ops-read,web --context task-42 --option source-address=127.0.0.1/32 >/dev/null &&
  ssh-keygen -L -f "$work/agent-cert.pub" > "$work/listing" &&
  grep -q 'Key ID: "ci-agent"' "$work/listing" && grep -q 'scopes@gatehouse' "$work/listing" &&
  grep -q 'source-address 127.0.0.1/32' "$work/listing"
}
check "cert issue writes a certificate ssh-keygen -L lists" issue_and_list

check "cert inspect accepts it against its CA" \
  bash -c "'$GATEHOUSE' cert inspect '$work/agent-cert.pub' --trusted-ca '$work/ca.pub' --peer 127.0.0.1 | grep -q 'Verdict: accepted'"

untrusted() { out=$("$GATEHOUSE" cert inspect "$work/agent-cert.pub" --trusted-ca "$work/other_ca.pub" --peer 127.0.0.1); rc=$?; [ $rc -eq 1 ] && grep -q 'refused (untrusted-ca)' <<<"$out"; }
check "cert inspect refuses a certificate from an untrusted CA, naming the rule" untrusted

wrong_peer() { out=$("$GATEHOUSE" cert inspect "$work/agent-cert.pub" --trusted-ca "$work/ca.pub" --peer 10.9.9.9); [ $? -eq 1 ] && grep -q 'source-address-mismatch' <<<"$out"; }
check "cert inspect refuses a peer outside source-address" wrong_peer

revoked() {
  echo "id: ci-agent" > "$work/spec" && ssh-keygen -q -k -f "$work/krl" -s "$work/ca.pub" "$work/spec" &&
  out=$("$GATEHOUSE" cert inspect "$work/agent-cert.pub" --trusted-ca "$work/ca.pub" --krl "$work/krl" --peer 127.0.0.1); [ $? -eq 1 ] && grep -q 'refused (revoked)' <<<"$out"
}
check "cert inspect refuses a certificate revoked by an ssh-keygen KRL" revoked

garbage() { echo "ssh-ed25519-cert-v01@openssh.com AAAA" > "$work/bad-cert.pub"; err=$("$GATEHOUSE" cert inspect "$work/bad-cert.pub" 2>&1 >/dev/null); rc=$?; [ $rc -ne 0 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && grep -q 'bad-cert.pub' <<<"$err"; }
check "a malformed certificate gets one clear error line naming the file" garbage

bad_ttl() { err=$("$GATEHOUSE" cert issue --ca-key "$work/ca" --public-key "$work/agent.pub" --key-id x --principal p --ttl 5x 2>&1); [ $? -ne 0 ] && grep -q -- '--ttl "5x"' <<<"$err"; }
check "a bad --ttl is refused with the option named" bad_ttl

unknown_option() { err=$("$GATEHOUSE" cert issue --ca-key "$work/ca" --public-key "$work/agent.pub" --key-id x --principal p --option no-such=1 2>&1); [ $? -ne 0 ] && grep -q 'unknown critical option "no-such"' <<<"$err"; }
check "an unknown critical option is refused at issue" unknown_option

bad_scope() { err=$("$GATEHOUSE" cert issue --ca-key "$work/ca" --public-key "$work/agent.pub" --key-id x --principal p --scopes 'a;b' 2>&1); [ $? -ne 0 ] && grep -q 'not a valid scope name' <<<"$err"; }
check "a malformed scope list is refused at issue" bad_scope

no_principal() { err=$("$GATEHOUSE" cert issue --ca-key "$work/ca" --public-key "$work/agent.pub" --key-id x 2>&1); [ $? -ne 0 ] && grep -q 'principal' <<<"$err"; }
check "a certificate without principals is refused at issue" no_principal

# ---- CA store, rotation, revocation, audit (issue: certificates and CAs) ----
S="$work/state"
gh() { "$GATEHOUSE" "$@" --state "$S"; }
check "ca init creates 0700 dirs and 0600 keys" bash -c "'$GATEHOUSE' ca init --state '$S' >/dev/null && [ \$(stat -c %a '$S') = 700 ] && [ -z \"\$(find '$S/ca' -name '*.key' ! -perm 600)\" ] && [ -n \"\$(find '$S/ca' -name '*.key')\" ]"
ssh-keygen -q -t ed25519 -N '' -f "$work/a1"
mint() { gh cert issue --ca user --public-key "$work/a1.pub" --key-id "$1" --principal agent --ttl 10m -o "$work/$1-cert.pub" >/dev/null; }
verdict() { gh cert inspect "$work/$1-cert.pub" | grep -q "Verdict: $2"; }
mint old
check "standby: a certificate from the active key is accepted" verdict old accepted
gh ca rotate user >/dev/null; mint during-init
check "init: old-key certificates still accepted" verdict old accepted
check "init: the old key still signs (new certificate accepted)" verdict during-init accepted
check "init: export lists both keys for TrustedUserCAKeys" bash -c "[ \$('$GATEHOUSE' ca export user --state '$S' | wc -l) = 2 ]"
gh ca rotate user >/dev/null; mint during-update
check "update: old and new key certificates accepted" bash -c "'$GATEHOUSE' cert inspect '$work/old-cert.pub' --state '$S' | grep -q 'Verdict: accepted' && '$GATEHOUSE' cert inspect '$work/during-update-cert.pub' --state '$S' | grep -q 'Verdict: accepted'"
early() { out=$(gh ca rotate user 2>&1); [ $? -ne 0 ] && grep -q 'grace period' <<<"$out"; }
check "retire before the grace period is refused" early
gh ca rotate user --rollback >/dev/null
check "rollback from update: the new key's certificate is refused (untrusted-ca)" bash -c "'$GATEHOUSE' cert inspect '$work/during-update-cert.pub' --state '$S' | grep -q 'refused (untrusted-ca)'"
check "rollback from update: the old key's certificate is accepted" verdict old accepted
gh ca rotate user >/dev/null; gh ca rotate user >/dev/null; mint new
gh ca rotate user --force >/dev/null
check "retire (forced): old-key certificates refused, new ones accepted" bash -c "'$GATEHOUSE' cert inspect '$work/old-cert.pub' --state '$S' | grep -q 'refused (untrusted-ca)' && '$GATEHOUSE' cert inspect '$work/new-cert.pub' --state '$S' | grep -q 'Verdict: accepted'"

kill9() {
  for i in $(seq 1 25); do
    ( while true; do "$GATEHOUSE" ca rotate target --state "$S" >/dev/null 2>&1 || "$GATEHOUSE" ca rotate target --rollback --state "$S" >/dev/null 2>&1; done ) &
    loop=$!
    sleep 0.0$((RANDOM % 9 + 1))
    pkill -9 -P $loop 2>/dev/null; kill -9 $loop 2>/dev/null; wait $loop 2>/dev/null
    "$GATEHOUSE" ca status --state "$S" >/dev/null || return 1
  done
}
check "kill -9 at random points of rotations leaves a store that loads (25 kills)" kill9

loose() { chmod 644 "$(find "$S/ca/user/keys" -name '*.key' | head -1)"; out=$(gh ca status 2>&1); rc=$?; chmod 600 "$S"/ca/user/keys/*.key; [ $rc -ne 0 ] && grep -q 'chmod 600' <<<"$out"; }
check "a private key readable by others makes the store refuse to load, naming the fix" loose

mint rev1; mint rev2
serial=$(ssh-keygen -L -f "$work/rev1-cert.pub" | awk '/Serial:/ {print $2}')
gh cert revoke --serial "$serial" --ca user >/dev/null
gh cert revoke --key-id revoked-id >/dev/null
mint revoked-id
gh ca export krl -o "$work/store.krl" >/dev/null
q() { ssh-keygen -Q -f "$work/store.krl" "$work/$1-cert.pub" >/dev/null 2>&1; }
check "revoked by serial: ssh-keygen -Q says revoked, inspect says revoked" bash -c "! ssh-keygen -Q -f '$work/store.krl' '$work/rev1-cert.pub' >/dev/null 2>&1 && '$GATEHOUSE' cert inspect '$work/rev1-cert.pub' --state '$S' | grep -q 'refused (revoked)'"
check "revoked by key id: ssh-keygen -Q agrees" bash -c "! ssh-keygen -Q -f '$work/store.krl' '$work/revoked-id-cert.pub' >/dev/null 2>&1"
check "not revoked: ssh-keygen -Q and inspect accept" bash -c "ssh-keygen -Q -f '$work/store.krl' '$work/rev2-cert.pub' >/dev/null 2>&1 && '$GATEHOUSE' cert inspect '$work/rev2-cert.pub' --state '$S' | grep -q 'Verdict: accepted'"

import_ca() {
  ssh-keygen -q -t ecdsa -b 256 -N '' -f "$work/legacy_ca" && gh ca import host --private-key "$work/legacy_ca" >/dev/null &&
  gh ca export host | grep -q "$(cut -d' ' -f2 "$work/legacy_ca.pub")" &&
  gh cert issue --ca host --type host --public-key "$work/a1.pub" --key-id h --principal gatehouse.example -o "$work/host-cert.pub" >/dev/null &&
  ssh-keygen -L -f "$work/host-cert.pub" | grep -q "Signing CA: ECDSA $(ssh-keygen -lf "$work/legacy_ca.pub" | awk '{print $2}')"
}
check "ca import adopts an ssh-keygen CA; certificates it signs name that CA" import_ca

# ---- key history: retired keys stay listed, verify-only ----
retired_listed() { out=$(gh ca status); grep -A20 '^user CA' <<<"$out" | grep -q '^  verify-only .*retired, active from'; }
check "ca status lists a retired user key as verify-only, with its interval" retired_listed
history_export() {
  gh ca rotate recording >/dev/null && gh ca rotate recording >/dev/null && gh ca rotate recording >/dev/null &&
  gh ca export recording --history -o "$work/recording-keys.pub" >/dev/null &&
  [ "$(wc -l < "$work/recording-keys.pub")" -eq 2 ] && grep -q '^active-from="[0-9T:.-]*Z",active-until="[0-9T:.-]*Z" ssh-ed25519 .* verify-only$' "$work/recording-keys.pub" &&
  [ "$(gh ca export recording | wc -l)" -eq 1 ]
}
check "ca export recording --history: current and verify-only keys with intervals; without it, the current key" history_export
history_errors() {
  out=$(gh ca export user --history 2>&1); [ $? -ne 0 ] && grep -q -- '--history applies to `ca export recording` only' <<<"$out" &&
  printf 'active-from="yesterday" %s\n' "$(cut -d' ' -f1,2 "$work/a1.pub")" > "$work/bad-keys.pub" &&
  mkdir -p "$work/no-recordings" &&
  out=$("$GATEHOUSE" verify --all --recordings "$work/no-recordings" --trusted-keys "$work/bad-keys.pub" 2>&1); [ $? -ne 0 ] && grep -q 'bad-keys.pub:1: active-from="yesterday" is not a UTC time' <<<"$out"
}
check "--history elsewhere and a bad --trusted-keys file are precise errors" history_errors

check "audit verify: the log of all these actions is intact" bash -c "'$GATEHOUSE' audit verify --state '$S' | grep -q intact"
check "audit log records issuance with serial, key id and scopes" bash -c "grep -q '\"action\":\"cert.issue\"' '$S/audit.log' && grep -q '\"action\":\"ca.rotate\"' '$S/audit.log' && grep -q '\"action\":\"cert.revoke\"' '$S/audit.log'"
tamper() { cp "$S/audit.log" "$work/a.bak"; sed -i '3s/"success"/"refused"/' "$S/audit.log"; out=$(gh audit verify); rc=$?; cp "$work/a.bak" "$S/audit.log"; [ $rc -eq 1 ] && grep -q 'line 4' <<<"$out"; }
check "audit verify: an edited line is detected at the next line" tamper
drop() { cp "$S/audit.log" "$work/a.bak"; sed -i '5d' "$S/audit.log"; out=$(gh audit verify); rc=$?; cp "$work/a.bak" "$S/audit.log"; [ $rc -eq 1 ] && grep -q 'line 5' <<<"$out"; }
check "audit verify: a dropped line is detected" drop
swap() { cp "$S/audit.log" "$work/a.bak"; awk 'NR==6 {held=$0; next} NR==7 {print; print held; next} {print}' "$work/a.bak" > "$S/audit.log"; out=$(gh audit verify); rc=$?; cp "$work/a.bak" "$S/audit.log"; [ $rc -eq 1 ] && grep -q 'line 6' <<<"$out"; }
check "audit verify: two swapped lines are detected" swap
torn() { cp "$S/audit.log" "$work/a.bak"; truncate -s -5 "$S/audit.log"; out=$(gh audit verify); rc=$?; cp "$work/a.bak" "$S/audit.log"; [ $rc -eq 1 ] && grep -q 'torn' <<<"$out"; }
check "audit verify: a torn last line is detected" torn

# ---- policy check ----
pc_allow() { out=$("$GATEHOUSE" policy check --allow 'journalctl -u {unit: nginx|postgres} -n {lines: 1..1000}' -- "journalctl -u 'nginx' -n 50"); [ $? -eq 0 ] && grep -q '^sent:     journalctl -u nginx -n 50$' <<<"$out"; }
check "policy check allows a matching command and shows what is sent" pc_allow
pc_deny() { out=$("$GATEHOUSE" policy check --allow 'uptime' -- 'uptime; touch /tmp/x'); [ $? -eq 1 ] && grep -q 'rule:     shell-operator' <<<"$out" && grep -q 'at byte 6' <<<"$out"; }
check "policy check denies a separator, naming the rule and byte" pc_deny
pc_nomatch() { out=$("$GATEHOUSE" policy check --allow 'uptime' -- 'uptime -p'); [ $? -eq 1 ] && grep -q 'no-matching-pattern' <<<"$out" && grep -q '^  uptime$' <<<"$out"; }
check "policy check lists the accepted patterns when none matches" pc_nomatch
pc_bad() { err=$("$GATEHOUSE" policy check --allow 'cat {f: 9..1}' -- cat 2>&1); [ $? -ne 0 ] && grep -q 'pattern 1' <<<"$err"; }
check "policy check names a bad pattern" pc_bad
cat > "$work/gatehouse.yaml" <<'YAML'
scopes:
  ops-read:
    targets: ["web-*"]
    login: deploy
    rights: [exec]
    commands: ["systemctl status {unit: /[a-z0-9@._-]+/}"]
  db-tunnel:
    targets: [db-01]
    rights: [forward-local]
    forwards: ["127.0.0.1:5432"]
YAML
pc_config() { out=$("$GATEHOUSE" policy check --config "$work/gatehouse.yaml" --scopes ops-read,ghost --target web-01 -- 'systemctl status nginx'); [ $? -eq 0 ] && grep -q '^login:    deploy$' <<<"$out" && grep -q '^sent:     systemctl status nginx$' <<<"$out"; }
check "policy check --config: the server's decision, login and command sent" pc_config
pc_config_deny() { out=$("$GATEHOUSE" policy check --config "$work/gatehouse.yaml" --scopes ops-read,ghost --target web-01 -- 'systemctl stop nginx'); [ $? -eq 1 ] && grep -q '^gatehouse-denial: {' <<<"$out" && grep -q 'Unknown scopes (grant nothing): ghost' <<<"$out"; }
check "policy check --config: a denial with unknown scopes reported and the JSON line" pc_config_deny
pc_config_bad() { printf 'scopes:\n  a:\n    targets: [x]\n    rights: [fly]\n' > "$work/bad.yaml"; err=$("$GATEHOUSE" policy check --config "$work/bad.yaml" --scopes a --target x -- id 2>&1); [ $? -ne 0 ] && grep -q "bad.yaml:4:.*scopes.a.rights: unknown right" <<<"$err"; }
check "policy check --config: a configuration mistake names file, line and key" pc_config_bad
pc_cert() { "$GATEHOUSE" cert issue --ca-key "$work/ca" --public-key "$work/agent.pub" --key-id pc-agent --principal agent --scopes ops-read -o "$work/pc-cert.pub" >/dev/null \
  && out=$("$GATEHOUSE" policy check --config "$work/gatehouse.yaml" --cert "$work/pc-cert.pub" --target web-01 -- 'systemctl status nginx'); [ $? -eq 0 ] \
  && grep -q '^scopes:   ops-read (from' <<<"$out" && grep -q '^decision: allow$' <<<"$out"; }
check "policy check --cert: scopes read from the certificate" pc_cert
pc_task() { "$GATEHOUSE" cert issue --ca-key "$work/ca" --public-key "$work/agent.pub" --key-id task-agent --principal agent --scopes ops-read \
    --target web-01 --command 'systemctl status nginx' --max-sessions 1 -o "$work/task-cert.pub" >/dev/null \
  && ssh-keygen -L -f "$work/task-cert.pub" | grep -q 'commands@gatehouse' \
  && out=$("$GATEHOUSE" policy check --config "$work/gatehouse.yaml" --cert "$work/task-cert.pub" --target web-01 -- 'systemctl status nginx'); [ $? -eq 0 ] \
  && out=$("$GATEHOUSE" policy check --config "$work/gatehouse.yaml" --cert "$work/task-cert.pub" --target web-01 -- 'systemctl status sshd'); [ $? -eq 1 ] \
  && grep -q '"rule":"task-commands"' <<<"$out" \
  && out=$("$GATEHOUSE" policy check --config "$work/gatehouse.yaml" --cert "$work/task-cert.pub" --target web-02 -- 'systemctl status nginx'); [ $? -eq 1 ] \
  && grep -q '"rule":"task-targets"' <<<"$out"; }
check "cert issue --target/--command: a task certificate, decided by policy check as the bastion decides" pc_task
task_bad() { err=$("$GATEHOUSE" cert issue --ca-key "$work/ca" --public-key "$work/agent.pub" --key-id x --principal p --scopes ops-read --command 'uptime; id' 2>&1); [ $? -ne 0 ] && grep -q -- '--command' <<<"$err" && grep -q 'shell-operator\|";"' <<<"$err"; }
check "cert issue --command: a command that could never match is refused before signing" task_bad
pc_forward() { out=$("$GATEHOUSE" policy check --config "$work/gatehouse.yaml" --scopes db-tunnel --target db-01 --forward 127.0.0.1:5432); [ $? -eq 0 ] && grep -q '^scope:    db-tunnel$' <<<"$out" \
  && out=$("$GATEHOUSE" policy check --config "$work/gatehouse.yaml" --scopes db-tunnel --target db-01 --forward 10.0.0.5:5432); [ $? -eq 1 ] && grep -q '"rule":"forwards"' <<<"$out" && grep -q 'Accepted here: `127.0.0.1:5432`' <<<"$out"; }
check "policy check --forward: a port forward decided as the server decides it" pc_forward

# ---- mask: what an output looks like to the agent ----
mask_env() {
  printf 'GITHUB_TOKEN=ghp_%s\nHOME=/root\n' "$(printf 'Zq8%.0s' $(seq 12))" > "$work/env.txt"
  out=$("$GATEHOUSE" mask "$work/env.txt" 2>"$work/mask.err"); [ $? -eq 0 ] && [ "$out" = $'GITHUB_TOKEN=[masked:github-token]\nHOME=/root' ] && grep -q '^github-token  *1$' "$work/mask.err"
}
check "mask shows the agent's view and counts masks per rule" mask_env
mask_same_width() { out=$("$GATEHOUSE" mask --mode same-width "$work/env.txt" 2>/dev/null); [ "$out" = "GITHUB_TOKEN=$(printf '*%.0s' $(seq 40))"$'\nHOME=/root' ]; }
check "mask --mode same-width keeps the width" mask_same_width
mask_bad_rules() {
  printf 'masking:\n  custom:\n    - name: x1\n      keywords: [ab]\n      regex: ab\n' > "$work/mask-rules.yaml"
  err=$("$GATEHOUSE" mask --rules "$work/mask-rules.yaml" /dev/null 2>&1); [ $? -ne 0 ] && grep -q 'mask-rules.yaml:4:18: masking.custom\[0\].keywords\[0\]' <<<"$err"
}
check "mask names the line, column and key of a bad custom rule" mask_bad_rules
mask_scope() {
  printf 'targets:\n  web: {address: 127.0.0.1, login: u, host_ca: true}\nscopes:\n  narrow: {targets: [web], rights: [shell], masking: {rules: [jwt]}}\n  open: {targets: [web], rights: [shell], masking: {enabled: false}}\n' > "$work/mask-scopes.yaml"
  out=$("$GATEHOUSE" mask --rules "$work/mask-scopes.yaml" --scope narrow "$work/env.txt" 2>/dev/null) && grep -q '^GITHUB_TOKEN=ghp_' <<<"$out" &&
  err=$("$GATEHOUSE" mask --rules "$work/mask-scopes.yaml" --scope open "$work/env.txt" 2>&1); [ $? -ne 0 ] && grep -q 'scope "open" are not masked' <<<"$err" &&
  err=$("$GATEHOUSE" mask --rules "$work/mask-scopes.yaml" --scope nope "$work/env.txt" 2>&1); [ $? -ne 0 ] && grep -q 'has no scope "nope" (scopes: narrow, open)' <<<"$err" &&
  err=$("$GATEHOUSE" mask --scope narrow "$work/env.txt" 2>&1); [ $? -ne 0 ] && grep -q -- '--scope needs --rules' <<<"$err"
}
check "mask --scope: a scope's own selection, a scope with masking off, an unknown scope, --scope without --rules" mask_scope
mask_binary() { head -c 3000000 /dev/urandom > "$work/blob"; "$GATEHOUSE" mask --mode same-width "$work/blob" 2>/dev/null | cmp -s - "$work/blob"; }
check "mask passes random binary through byte for byte" mask_binary

# ---- the demo, end to end: a real sshd trusts `ca export user`, refuses after `ca export krl` ----
ca_tour_runs() { out=$("$(dirname "$0")/ca-tour.sh" "$GATEHOUSE" 2>&1); [ $? -eq 0 ] && grep -q "hello from" <<<"$out" && grep -q "refused by sshd, as it should be" <<<"$out" && grep -q "audit log intact" <<<"$out"; }
check "ca tour: sshd accepts the exported CA's certificate and refuses it once revoked via the exported KRL" ca_tour_runs

# ---- make demo: the bastion in front of a real sshd, allowed and refused commands ----
demo_runs() { out=$("$(dirname "$0")/demo.sh" "$GATEHOUSE" 2>&1); [ $? -eq 0 ] && grep -q "hello; from the agent" <<<"$out" && grep -q "(exit status 77)" <<<"$out" \
  && grep -q 'no target named "web-99"' <<<"$out" && grep -q "Permission denied (publickey)" <<<"$out" && grep -q "audit log intact" <<<"$out" \
  && grep -q 'user certificate "oidc:alice"' <<<"$out" && grep -Eq 'alice +web-01 +0 +normal' <<<"$out" \
  && [ "$(grep -c "6 of 6 recordings verified" <<<"$out")" -eq 2 ] && grep -q "verify-only" <<<"$out" \
  && grep -q 'GITHUB_TOKEN=\[masked:github-token\]' <<<"$out" && ! grep -q 'GITHUB_TOKEN=ghp_' <<<"$out" && grep -q 'give --state DIR so the read is audited' <<<"$out" \
  && grep -q 'identical to the file (and audited as recording.unmasked)' <<<"$out" \
  && grep -q '{"certificate_key_id":"agent:demo",.*"recording_id":"gs-' <<<"$out" && grep -q '"term": {"cols": 80, "rows": 24' <<<"$out" \
  && grep -q 'untrusted-key\|not one of the 1 trusted recording keys' <<<"$out" \
  && port=$(grep -o 'gatehouse: listening on 127.0.0.1:[0-9]*' <<<"$out" | grep -o '[0-9]*$') && grep -q -- "-p $port TARGET@127.0.0.1" <<<"$out"; }
check "make demo: commands through gatehouse serve to a real sshd; denial 77, unknown target, plain key refused; secrets masked for the agent, --unmasked only with --state; OIDC token to certificate with the bastion's address; sessions recorded and verified across a recording key rotation, with and without the state directory" demo_runs

# The issuance section is validated by `serve --check` like the rest of the file.
cat > "$work/issuance-ok.yaml" <<'YAML'
scopes:
  ops: {targets: ["*"], rights: [exec], commands: ["true"]}
issuance:
  issuers:
    - issuer: https://idp.example.com/realms/agents
      audiences: [gatehouse]
  mapping: {group_scopes: {ops: [ops]}}
YAML
issuance_ok() { "$GATEHOUSE" serve --config "$work/issuance-ok.yaml" --check | grep -q 'issuance on 127.0.0.1:8022 for 1 issuer'; }
check "serve --check accepts an issuance section and names its listener" issuance_ok
issuance_none() {
  sed 's/audiences: \[gatehouse\]/audiences: [gatehouse]\n      algorithms: [none]/' "$work/issuance-ok.yaml" > "$work/issuance-none.yaml"
  out=$("$GATEHOUSE" serve --config "$work/issuance-none.yaml" --check 2>&1); [ $? -ne 0 ] && grep -q 'issuance-none.yaml:7:.*issuance.issuers\[0\].algorithms: "none" is never accepted' <<<"$out"
}
check "serve --check refuses alg none in an issuer with file:line and key" issuance_none
issuance_plain() {
  printf '  listen: 0.0.0.0:8022\n' >> "$work/issuance-ok.yaml"
  out=$("$GATEHOUSE" serve --config "$work/issuance-ok.yaml" --check 2>&1); [ $? -ne 0 ] && grep -q 'issuance.listen.*not a loopback address' <<<"$out"
}
check "serve --check refuses plain HTTP issuance off loopback" issuance_plain
# ---- reload: strict about scope targets, and the audit record says what changed ----
cat > "$work/reload.yaml" <<'YAML'
listen: ["127.0.0.1:PORT"]
targets:
  web-01: {address: 127.0.0.1, login: deploy, host_ca: true}
scopes:
  ops: {targets: [web-01], rights: [shell]}
YAML
sed -i "s/PORT/$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')/" "$work/reload.yaml"
typo_target() {
  sed 's/targets: \[web-01\]/targets: [web-01, wbe-01]/' "$work/reload.yaml" > "$work/typo.yaml"
  out=$("$GATEHOUSE" serve --config "$work/typo.yaml" --check 2>&1); [ $? -ne 0 ] && grep -q 'typo.yaml:5:27: scopes.ops.targets\[1\]: "wbe-01" is not a configured target' <<<"$out"
}
check "serve --check refuses a scope naming a target that does not exist, with file:line:column" typo_target
reload_diff() {
  local state="$work/reload-state" pid rc=1
  "$GATEHOUSE" serve --config "$work/reload.yaml" --state "$state" --host-keys "$work/reload-hostkeys" > "$work/reload.out" 2>&1 &
  pid=$!
  for _ in $(seq 200); do grep -q "listening on" "$work/reload.out" 2>/dev/null && break; sleep 0.05; done
  before=$(sha256sum "$work/reload.yaml" | cut -d' ' -f1)
  printf '  db-01: {address: 127.0.0.1, login: deploy, host_ca: true}\n' > "$work/db.txt"
  sed -i "/^  web-01/r $work/db.txt" "$work/reload.yaml"
  sed -i 's/rights: \[shell\]/rights: [shell, pty]/' "$work/reload.yaml"
  after=$(sha256sum "$work/reload.yaml" | cut -d' ' -f1)
  kill -HUP $pid
  for _ in $(seq 200); do grep -q '"server.reload"' "$state/audit.log" 2>/dev/null && break; sleep 0.05; done
  line=$(grep '"server.reload"' "$state/audit.log" | tail -1)
  # A subtly wrong file: the reload is refused and the previous configuration stays.
  sed -i 's/targets: \[web-01\]/targets: [db-02]/' "$work/reload.yaml"
  kill -HUP $pid
  for _ in $(seq 200); do [ "$(grep -c '"server.reload"' "$state/audit.log")" -ge 2 ] && break; sleep 0.05; done
  refused=$(grep '"server.reload"' "$state/audit.log" | tail -1)
  kill -TERM $pid; wait $pid 2>/dev/null
  python3 - "$line" "$before" "$after" "$refused" <<'PY' && rc=0
import json, sys
ok, before, after, refused = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
d = ok["details"]
assert ok["outcome"] == "success" and d["old_sha256"] == before and d["new_sha256"] == after, d
assert d["targets_added"] == "db-01" and d["scopes_changed"] == "ops" and "targets_removed" not in d, d
assert refused["outcome"] == "failure" and "reload.yaml:6:" in refused["details"]["reason"] and '"db-02" is not a configured target' in refused["details"]["reason"], refused
PY
  return $rc
}
check "SIGHUP: the server.reload audit record names the old and new file hashes and the targets and scopes changed; a scope naming no target is refused" reload_diff
login_refused() {
  out=$(GATEHOUSE_TOKEN=x "$GATEHOUSE" login --server http://127.0.0.1:1 --token-env GATEHOUSE_TOKEN --key "$work/login-key" 2>&1); [ $? -ne 0 ] && [ -f "$work/login-key" ] && grep -q 'POST http://127.0.0.1:1/v1/certificates' <<<"$out"
}
check "login generates its key, and a server that is not there is a clear error" login_refused

recordings_store_config() {
  # --config with a recordings_store mistake: refused at its file:line:column, the secret file's content never printed.
  printf 'recordings_store:\n  kind: s3\n  endpoint: http://127.0.0.1:1\n  bucket: recordings\n  credentials: {access_key_id: AKIAX, secret_access_key_file: %s/rs-secret}\n  queue_limit: 5\n' "$work" > "$work/rs-bad.yaml" &&
  echo 'cli-secret-never-shown' > "$work/rs-secret" &&
  out=$("$GATEHOUSE" sessions list --config "$work/rs-bad.yaml" --recordings "$work/no-recordings" 2>&1); [ $? -ne 0 ] || return 1
  grep -q 'rs-bad.yaml:6:3: recordings_store.queue_limit: unknown key' <<<"$out" && ! grep -q 'cli-secret-never-shown' <<<"$out" || return 1
  # kind: local (the default) keeps today's local behaviour.
  printf 'recordings_store: {kind: local}\n' > "$work/rs-local.yaml" &&
  out=$("$GATEHOUSE" sessions list --config "$work/rs-local.yaml" --recordings "$work/no-recordings" 2>&1) && grep -q '^ID ' <<<"$out" && ! grep -q 'WHERE' <<<"$out"
}
check "sessions list --config: a recordings_store mistake at file:line:column (secret never shown); kind: local lists locally as before" recordings_store_config

echo
echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
