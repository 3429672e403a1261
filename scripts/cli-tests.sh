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

echo
echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
