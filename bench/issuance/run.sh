#!/usr/bin/env bash
# Issuance throughput: certificates issued per second over real HTTP on loopback, each request a
# full token verification (ES256 against the JWKS), certificate signing (Ed25519 user CA) and a
# durable audit record. Load from wrk (Debian package `wrk`), 2 threads (WRK_THREADS=1 for one), 32 connections.
#   bench/issuance/run.sh [DURATION_SECONDS]     (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-15}
threads=${WRK_THREADS:-2}   # wrk threads (WRK_THREADS=1 leaves more of the 2 cores to the server)
swift build -c release --product gatehouse >/dev/null
bin="$(swift build -c release --show-bin-path)/gatehouse"
work=$(mktemp -d /tmp/gatehouse-bench-issuance.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pport=$(free_port); iport=$(free_port); sport=$(free_port)
issuer="http://127.0.0.1:$pport"
token=$(python3 bench/issuance/provider.py "$work/www" "$issuer" 3600)
(cd "$work/www" && exec python3 -m http.server "$pport" --bind 127.0.0.1 >/dev/null 2>&1) & pids+=($!)
cat > "$work/gatehouse.yaml" <<YAML
listen: ["127.0.0.1:$sport"]
state: $work/state
host_keys: $work/hostkeys
recordings: $work/recordings
log: {level: error}
scopes:
  ops: {targets: ["*"], rights: [exec], commands: ["true"]}
issuance:
  listen: 127.0.0.1:$iport
  rate_limit: {per_minute: 1000000, burst: 1000000}
  mapping: {group_scopes: {ops: [ops]}}
  issuers:
    - issuer: $issuer
      audiences: [gatehouse]
      algorithms: [ES256]
YAML
"$bin" serve --config "$work/gatehouse.yaml" > "$work/serve.out" 2>&1 & spid=$!; pids+=($spid)
for _ in $(seq 1 200); do grep -q "gatehouse: listening" "$work/serve.out" && break; sleep 0.1; done
grep -q "gatehouse: listening" "$work/serve.out" || { cat "$work/serve.out"; exit 1; }
ssh-keygen -q -t ed25519 -N '' -f "$work/agent"
export TOKEN="$token" KEY="$(cut -d' ' -f1,2 "$work/agent.pub")"
# One request first: fails loudly if the setup is wrong instead of benchmarking 401s.
curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"public_key\": \"$KEY\"}" "http://127.0.0.1:$iport/v1/certificates" >/dev/null
cpu() { awk '{print $14 + $15}' "/proc/$spid/stat"; }
issued_now() { curl -s "http://127.0.0.1:$iport/metrics" | awk '/^gatehouse_certificates_issued_total/ {print $2}'; }
cpu0=$(cpu); n0=$(issued_now)
echo "== wrk -t$threads -c32 -d${duration}s (POST /v1/certificates) on $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
wrk -t"$threads" -c32 -d"${duration}s" --latency -s bench/issuance/post.lua "http://127.0.0.1:$iport/v1/certificates"
cpu1=$(cpu); n1=$(issued_now)
# CPU time the server spent per certificate: independent of what else the machine is running.
awk -v c="$((cpu1 - cpu0))" -v n="$((n1 - n0))" -v hz="$(getconf CLK_TCK)" \
  'BEGIN { printf "server CPU per certificate: %.3f ms (%d certificates, %.2f CPU-s); one free core would issue %.0f/s\n", 1000*c/hz/n, n, c/hz, n/(c/hz) }'
issued=$(issued_now)
lines=$(wc -l < "$work/state/audit.log")
echo "certificates issued (metrics): $issued; audit log lines: $lines"
"$bin" audit verify --state "$work/state" | tail -1
