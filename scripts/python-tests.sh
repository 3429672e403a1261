#!/usr/bin/env bash
# The Python client's tests (clients/python): unit tests, and end-to-end tests through a live
# `gatehouse serve` and a real sshd on 127.0.0.1, driven by AutoGen agents.
#
#   scripts/python-tests.sh PATH-TO-gatehouse [pytest args…]
#
# Installs the client (editable) and its test dependencies into whatever python3 is first on
# PATH, then runs pytest. The OIDC issuance tests (token from glewlwyd -> POST /v1/certificates
# -> agent run) need Debian's glewlwyd (`make deps` installs it).
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

# The issuance tests need the OIDC issuance service (it comes with `gatehouse login`); a
# binary without it is an error here, never a reason to leave tests out.
if ! "$GATEHOUSE_BIN" --help 2>/dev/null | grep -Eq '^[[:space:]]+login[[:space:]]'; then
  echo "python-tests.sh: $GATEHOUSE_BIN has no OIDC issuance service (no \`gatehouse login\`)" >&2
  exit 2
fi

cd "$here/clients/python"
python3 -m pytest -p no:cacheprovider -rA "$@"
