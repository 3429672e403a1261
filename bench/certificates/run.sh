#!/usr/bin/env bash
# Certificate verification and signing per CA key type (one core), and the parser fuzz run.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product GatehouseBench --product GatehouseFuzz >/dev/null
.build/release/GatehouseBench "${1:-2}"
echo
echo "openssl speed baseline on this machine (Ed25519 verify/s):"
openssl speed -seconds 2 ed25519 2>/dev/null | tail -1
