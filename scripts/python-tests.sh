#!/usr/bin/env bash
# The Python client's tests (clients/python): unit tests, and end-to-end tests through a live
# `gatehouse serve` and a real sshd on 127.0.0.1, driven by AutoGen agents.
#
#   scripts/python-tests.sh PATH-TO-gatehouse [pytest args…]
#
# Installs the client (editable) and its test dependencies into whatever python3 is first on
# PATH, then runs pytest. The OIDC issuance tests (token from glewlwyd -> POST /v1/certificates
# -> agent run) need a gatehouse built with the issuance service and Debian's glewlwyd; when
# the binary has no issuance service they are NOT RUN and this script says so in its last line
# (set GATEHOUSE_REQUIRE_ISSUANCE=1 to make that a failure instead).
set -euo pipefail
GATEHOUSE=${1:?usage: python-tests.sh PATH-TO-gatehouse [pytest args…]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
GATEHOUSE_BIN=$(cd "$(dirname "$GATEHOUSE")" && pwd)/$(basename "$GATEHOUSE")
[ -x "$GATEHOUSE_BIN" ] || { echo "python-tests.sh: $GATEHOUSE_BIN is not an executable" >&2; exit 2; }
export GATEHOUSE_BIN

pip_install() {
  python3 -m pip install -q --disable-pip-version-check "$@" 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check --break-system-packages "$@"
}
if ! python3 -c 'import gatehouse_client, autogen_agentchat, autogen_ext.models.replay, asyncssh, pytest, pytest_asyncio' 2>/dev/null; then
  pip_install -e "$here/clients/python[test]"
fi
mkdir -p /run/sshd

# Does this binary have the issuance service? It comes with the `login` subcommand (branch
# oidc); a binary without it ignores an `issuance:` section, so `serve --check` cannot tell.
markers=()
if "$GATEHOUSE_BIN" --help 2>/dev/null | grep -Eq '^[[:space:]]+login[[:space:]]'; then
  issuance_note="issuance tests: run"
elif [ "${GATEHOUSE_REQUIRE_ISSUANCE:-0}" = 1 ]; then
  issuance_note="issuance tests: run (GATEHOUSE_REQUIRE_ISSUANCE=1), although $GATEHOUSE_BIN lists no login subcommand"
else
  markers=(-m "not issuance")
  issuance_note="issuance tests: NOT RUN — $GATEHOUSE_BIN has no OIDC issuance service (no \`gatehouse login\`; it comes with branch oidc)"
fi

cd "$here/clients/python"
set +e
python3 -m pytest -p no:cacheprovider -rA "${markers[@]}" "$@"
status=$?
set -e
echo "python-tests.sh: $issuance_note"
exit $status
