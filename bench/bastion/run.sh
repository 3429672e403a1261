#!/usr/bin/env bash
# Gatehouse against what a user would pick instead — OpenSSH's ProxyJump through a stock sshd,
# and a direct connection (with ControlMaster for warm commands) — on this machine in one run.
# Everything binds 127.0.0.1; everything started is stopped by its pid; every wait has a deadline.
# Writes a markdown section to stdout (and to $OUT if set; raw samples to $OUT.json).
#
#   bench/bastion/run.sh [path-to-release-gatehouse]
#
# Parts (PARTS, default all, in this order):
#   connect  fresh `ssh … -- true`: direct, ProxyJump, Gatehouse (RUNS each, interleaved)
#   warm     `true` on a reused connection: OpenSSH ControlMaster (direct, ProxyJump, Gatehouse;
#            WARM_RUNS each, interleaved) and asyncssh (one connection, WARM_RUNS × conn.run)
#   bulk     BULK_MIB of output, recorded (BULK_RUNS each, interleaved), all processes unpinned
#   pinned   the same with Gatehouse (and the jump sshd) on core 1, client and target on core 0
#   idle     IDLE_CONNS connections × IDLE_PER idle sessions (`cat` on a silent stdin, asyncssh; unlike `sleep`, it ends when its channel closes): RSS per session
#   burst    BURSTS bursts of BURST simultaneous connections running `true` (asyncssh):
#            RSS at idle baseline, peak, and after each burst once every connection is gone
# idle and burst each run against a fresh gatehouse process of the same build and configuration.
# Also: BURST_PROCS (client processes per burst, default 4), PENALTIES=default (keep per-source
# penalties for loopback; exempt by default), GATEHOUSE_ENV (environment for gatehouse serve
# only), KEEP=1 (keep the work directory: configs, audit logs, server logs). Results are
# described in docs/benchmarks.md, "The rebuilt front, side by side".
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$(pwd)
GATEHOUSE=${1:-$(swift build -c release --show-bin-path)/gatehouse}
PARTS=${PARTS:-connect warm bulk pinned idle burst}
RUNS=${RUNS:-20}
WARM_RUNS=${WARM_RUNS:-50}
BULK_MIB=${BULK_MIB:-256}
BULK_RUNS=${BULK_RUNS:-5}
IDLE_CONNS=${IDLE_CONNS:-100}
IDLE_PER=${IDLE_PER:-10}
BURST=${BURST:-500}
BURSTS=${BURSTS:-3}
BURST_PROCS=${BURST_PROCS:-4}   # client processes the burst is spread over (1: one asyncio loop)
export BULK_MIB
[ "$(nproc)" -ge 2 ] || { echo "the pinned layout needs 2 cores" >&2; exit 1; }
work=$(mktemp -d /tmp/gatehouse-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # sshd listeners were told to stop above; their per-connection children end with their clients.
  [ -z "${KEEP:-}" ] && rm -rf "$work"
  return 0
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
me=$(id -un)
clients=(python3 "$here/bench/bastion/clients.py")
load() { cut -d' ' -f1-3 /proc/loadavg; }
stop() { # pid: TERM, then wait up to 10 s for it to go
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  echo "pid $1 did not stop within 10 s" >&2
}

"$GATEHOUSE" ca init --state "$work/state" >/dev/null
"$GATEHOUSE" ca export target --state "$work/state" -o "$work/target_ca.pub"
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
mkdir -p /run/sshd
start_sshd() { # name port cpus(or "") extra-config -> pid in $sshd_pid
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
# Debian's bash sources ~/.bashrc when started by sshd (SSH_CLIENT set, SHLVL < 2); this
# machine's root .bashrc runs pyenv init (a rehash under a lock), ~0.2 s per session, serialised.
# That is the target account's start-up, not the path being measured: SHLVL=1 skips it for every
# path alike.
SetEnv SHLVL=1
$4
CFG
  if [ -n "$3" ]; then taskset -c "$3" /usr/sbin/sshd -f "$work/$1.conf" -E "$work/$1.log"
  else /usr/sbin/sshd -f "$work/$1.conf" -E "$work/$1.log"; fi
  for _ in $(seq 100); do [ -s "$work/$1.pid" ] && break; sleep 0.05; done
  [ -s "$work/$1.pid" ] || { echo "sshd $1 did not start" >&2; cat "$work/$1.log" >&2; exit 1; }
  sshd_pid=$(cat "$work/$1.pid"); pids+=("$sshd_pid")
}

# One client host stands in for hundreds of agents here, so by default loopback is exempt from
# the per-source penalties: otherwise one burst whose handshakes outlast login_grace (a loaded
# machine) penalises 127.0.0.1 and the next bursts are refused at accept. PENALTIES=default keeps them.
penalty_exempt=", penalties: {exempt: [127.0.0.0/8]}"
[ "${PENALTIES:-exempt}" = default ] && penalty_exempt=""
start_gatehouse() { # name target-port cpus(or "") -> $gh_pid $gh_port $gh_dir
  gh_dir="$work/$1"; gh_port=$(free_port)
  mkdir -p "$gh_dir"
  cp -r "$work/state" "$gh_dir/state"   # same CA keys for every instance, its own audit log
  cat > "$gh_dir/gatehouse.yaml" <<CFG
listen: ["127.0.0.1:$gh_port"]
state: $gh_dir/state
host_keys: $work/hostkeys
recordings: $gh_dir/recordings
limits: {max_sessions: 10, max_unauthenticated: 1000, max_unauthenticated_per_source: 1000$penalty_exempt}
log: {level: warning}
targets:
  web-01: {address: 127.0.0.1, port: $2, login: $me, host_key: "$(cut -d' ' -f1,2 "$work/host_key.pub")"}
scopes:
  bench:
    targets: [web-01]
    rights: [exec]
    commands: ["true", "cat", "head -c {n: 1..100000000000} /dev/zero", "sleep {n: 1..3600}"]
CFG
  # GATEHOUSE_ENV: extra environment for gatehouse serve only (e.g. LD_PRELOAD=… of
  # bench/bastion/nodelay-preload.c, or GLIBC_TUNABLES=glibc.pthread.stack_cache_size=0).
  if [ -n "$3" ]; then env ${GATEHOUSE_ENV:-} taskset -c "$3" "$GATEHOUSE" serve --config "$gh_dir/gatehouse.yaml" > "$gh_dir/serve.out" 2> "$gh_dir/serve.err" &
  else env ${GATEHOUSE_ENV:-} "$GATEHOUSE" serve --config "$gh_dir/gatehouse.yaml" > "$gh_dir/serve.out" 2> "$gh_dir/serve.err" & fi
  gh_pid=$!; pids+=("$gh_pid")
  for _ in $(seq 300); do grep -q "listening on" "$gh_dir/serve.out" 2>/dev/null && break; sleep 0.05; done
  grep -q "listening on" "$gh_dir/serve.out" || { echo "gatehouse $1 did not start" >&2; cat "$gh_dir/serve.err" >&2; exit 1; }
}

ssh-keygen -q -t ed25519 -N '' -f "$work/agent"
"$GATEHOUSE" cert issue --state "$work/state" --ca user --public-key "$work/agent.pub" --key-id bench --principal bench --ttl 4h --scopes bench >/dev/null
cp "$work/agent.pub" "$work/direct.pub"; cp "$work/agent" "$work/direct"
"$GATEHOUSE" cert issue --state "$work/state" --ca target --public-key "$work/direct.pub" --key-id bench-direct --principal "$me" --ttl 4h --extension permit-port-forwarding -o "$work/direct-cert.pub" >/dev/null

target_port=$(free_port); jump_port=$(free_port)
start_sshd target "$target_port" "" ""; target_pid=$sshd_pid
start_sshd jump "$jump_port" "" "AllowTcpForwarding yes"; jump_pid=$sshd_pid

common="-F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes"
# Command lines as strings, for the timing harness (bash -c). ProxyJump is spelled out as the
# ProxyCommand it runs (ssh -W through the jump sshd), so the jump leg uses the same identity.
direct_ssh() { echo "ssh $common -i $work/direct -p $1 $me@127.0.0.1"; }                    # target-port
jump_ssh() { echo "ssh $common -i $work/direct -o 'ProxyCommand=ssh $common -i $work/direct -W %h:%p -p $2 $me@127.0.0.1' -p $1 $me@127.0.0.1"; }  # target-port jump-port
gatehouse_ssh() { echo "ssh $common -i $work/agent -p $1 web-01@127.0.0.1"; }            # bastion-port

json="$work/results.json"; echo '{}' > "$json"
save() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d[sys.argv[2]]=json.loads(sys.stdin.read()); json.dump(d,open(sys.argv[1],"w"),indent=1)' "$json" "$1"; }
fmt() { python3 "$here/bench/bastion/report.py" "$json" "$@"; }

out=$(mktemp)
exec 3>&1 > >(tee "$out"); tee_pid=$!
echo "### One run: connect, warm command, bulk, idle sessions, bursts (\`bench/bastion/run.sh\`)"
echo
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); OpenSSH $(ssh -V 2>&1 | cut -d, -f1); libssh $(dpkg-query -W -f='${Version}' libssh-4 2>/dev/null || echo '?'); asyncssh $(python3 -c 'import asyncssh; print(asyncssh.__version__)'). Date: $(date -u '+%F %H:%M') UTC."
echo "Parameters: GATEHOUSE_ENV=\"${GATEHOUSE_ENV:-}\" PENALTIES=${PENALTIES:-exempt} PARTS=\"$PARTS\" RUNS=$RUNS WARM_RUNS=$WARM_RUNS BULK_MIB=$BULK_MIB BULK_RUNS=$BULK_RUNS IDLE_CONNS=$IDLE_CONNS IDLE_PER=$IDLE_PER BURST=$BURST BURSTS=$BURSTS BURST_PROCS=$BURST_PROCS."
echo "Load average at start: $(load)."
echo

if [[ " $PARTS " == *" connect "* || " $PARTS " == *" warm "* || " $PARTS " == *" bulk "* ]]; then
  start_gatehouse main "$target_port" ""; main_pid=$gh_pid; main_port=$gh_port
fi

if [[ " $PARTS " == *" connect "* ]]; then
  echo "#### Connect + \`true\` (fresh connection each time; $RUNS runs each, interleaved; load at start $(load))"
  echo
  "${clients[@]}" time "$RUNS" "direct ssh=$(direct_ssh "$target_port") -- true" \
      "ProxyJump (ssh -W via stock sshd)=$(jump_ssh "$target_port" "$jump_port") -- true" \
      "Gatehouse=$(gatehouse_ssh "$main_port") -- true" | save connect
  fmt table connect "direct ssh"
  echo
fi

if [[ " $PARTS " == *" warm "* ]]; then
  echo "#### Warm command: \`true\` on a reused connection ($WARM_RUNS runs each; load at start $(load))"
  echo
  echo "OpenSSH ControlMaster: a master \`ssh -M -S ctl … -- cat\` in the background (its stdin held open), then"
  echo "\`ssh -S ctl -o ControlMaster=no … -- true\` timed, the three paths interleaved:"
  echo
  masters=()
  # The master's own session is `cat` on a stdin that never ends (a FIFO held open read-write):
  # it lasts as long as the master and, unlike `sleep`, ends on the target when the master goes.
  mkfifo "$work/hold"; exec 4<>"$work/hold"
  start_master() { # name "ssh command line"
    bash -c "${2/ssh /ssh -M -S $work/ctl-$1 -o ControlPersist=no } -- cat" <&4 >/dev/null 2>"$work/master-$1.err" &
    masters+=("$!"); pids+=("$!")
    for _ in $(seq 200); do ssh -S "$work/ctl-$1" -O check x 2>/dev/null && return 0; sleep 0.05; done
    echo "master $1 did not come up: $(cat "$work/master-$1.err")" >&2; exit 1
  }
  start_master direct "$(direct_ssh "$target_port")"
  start_master jump "$(jump_ssh "$target_port" "$jump_port")"
  start_master gatehouse "$(gatehouse_ssh "$main_port")"
  # The mux client's stdin is the held FIFO too (open, silent), as at a terminal: with stdin at
  # EOF (`</dev/null`, `ssh -n`) Gatehouse loses the exit status now and then (counted below).
  mux() { echo "${2/ssh /ssh -S $work/ctl-$1 -o ControlMaster=no } -- true <>$work/hold"; }
  "${clients[@]}" time "$WARM_RUNS" "direct ssh, ControlMaster=$(mux direct "$(direct_ssh "$target_port")")" \
      "ProxyJump, ControlMaster=$(mux jump "$(jump_ssh "$target_port" "$jump_port")")" \
      "Gatehouse, ControlMaster=$(mux gatehouse "$(gatehouse_ssh "$main_port")")" | save warm
  fmt table warm "direct ssh, ControlMaster"
  eof_check() { # name "ssh command line": how many of 30 mux `true`s with stdin at EOF exit non-zero
    local failed=0
    for _ in $(seq 30); do bash -c "${2/ssh /ssh -S $work/ctl-$1 -o ControlMaster=no } -- true" </dev/null >/dev/null 2>&1 || failed=$((failed + 1)); done
    echo "$failed"
  }
  echo
  echo "The same mux client with stdin at EOF (\`</dev/null\`), 30 runs each: exit status other than 0 in"
  echo "$(eof_check direct "$(direct_ssh "$target_port")")/30 direct, $(eof_check gatehouse "$(gatehouse_ssh "$main_port")")/30 through Gatehouse"
  echo "(Gatehouse sends the agent EOF before the exit status; a mux client that has sent its own EOF then closes the channel, and ssh exits 255)."
  for name in direct jump gatehouse; do ssh -S "$work/ctl-$name" -O exit x 2>/dev/null || true; done
  for p in "${masters[@]}"; do stop "$p"; done
  exec 4>&-
  echo
  echo "asyncssh: one connection, a first \`conn.run(\"true\")\` (which also opens Gatehouse's target leg), then $WARM_RUNS sequential \`conn.run(\"true\")\` timed:"
  echo
  "${clients[@]}" asyncssh-warm "$WARM_RUNS" "$target_port" "$me" "$work/direct" "$work/direct-cert.pub" | save asyncssh-direct
  "${clients[@]}" asyncssh-warm "$WARM_RUNS" "$main_port" web-01 "$work/agent" "$work/agent-cert.pub" | save asyncssh-gatehouse
  fmt table-of "direct sshd=asyncssh-direct" "Gatehouse=asyncssh-gatehouse"
  echo
  target_connections=$(grep -c '"session.start"' "$work/main/state/audit.log" || true)
  echo "(Gatehouse audit so far: $target_connections sessions started.)"
  echo
fi

bytes=$((BULK_MIB * 1048576))
bulk() { # key cpus-client "layout words"
  local pre=""; [ -n "$2" ] && pre="taskset -c $2 "
  "${clients[@]}" time "$BULK_RUNS" "direct ssh=$pre$(direct_ssh "$bulk_target") -- head -c $bytes /dev/zero" \
      "ProxyJump (ssh -W via stock sshd)=$pre$(jump_ssh "$bulk_target" "$bulk_jump") -- head -c $bytes /dev/zero" \
      "Gatehouse=$pre$(gatehouse_ssh "$bulk_gh") -- head -c $bytes /dev/zero" | save "$1"
  # Every Gatehouse transfer moved every byte, by its own session.end record.
  local complete
  complete=$(python3 -c 'import json,sys
n=0
for l in open(sys.argv[1]):
    e=json.loads(l)
    if e["action"]=="session.end" and e.get("details",{}).get("bytes_stdout")==sys.argv[2]: n+=1
print(n)' "$bulk_dir/state/audit.log" "$bytes")
  fmt table "$1" "direct ssh"
  echo
  echo "Gatehouse sessions that delivered all $bytes bytes (audit \`session.end\`): $complete of $BULK_RUNS."
  fmt cost "$1"
  rm -rf "$bulk_dir/recordings"/*   # the recordings were checked by their end records; free the disk
}
if [[ " $PARTS " == *" bulk "* ]]; then
  echo "#### $BULK_MIB MiB of output, recorded, unpinned ($BULK_RUNS runs each, interleaved; load at start $(load))"
  echo
  echo "\`head -c $bytes /dev/zero\` on the target, read by \`ssh\` into /dev/null; all processes free to use both cores."
  echo
  bulk_target=$target_port bulk_jump=$jump_port bulk_gh=$main_port bulk_dir=$work/main
  bulk bulk ""
  echo
fi
if [ -n "${main_pid:-}" ]; then stop "$main_pid"; fi

if [[ " $PARTS " == *" pinned "* ]]; then
  echo "#### $BULK_MIB MiB of output, recorded, pinned ($BULK_RUNS runs each, interleaved; load at start $(load))"
  echo
  echo "Gatehouse \`serve\` and the jump sshd under \`taskset -c 1\`; the client \`ssh\` (and ProxyJump's \`ssh -W\`,"
  echo "its child) and the target sshd under \`taskset -c 0\`: the bastion has a core of its own, as on a bastion host."
  echo
  ptarget_port=$(free_port); pjump_port=$(free_port)
  start_sshd ptarget "$ptarget_port" 0 ""; ptarget_pid=$sshd_pid
  start_sshd pjump "$pjump_port" 1 "AllowTcpForwarding yes"; pjump_pid=$sshd_pid
  start_gatehouse pinned "$ptarget_port" 1; pinned_pid=$gh_pid
  echo "Affinity: gatehouse $(taskset -p "$pinned_pid" | awk '{print $NF}'), target sshd $(taskset -p "$ptarget_pid" | awk '{print $NF}'), jump sshd $(taskset -p "$pjump_pid" | awk '{print $NF}') (hex masks: 1 = core 0, 2 = core 1)."
  echo
  bulk_target=$ptarget_port bulk_jump=$pjump_port bulk_gh=$gh_port bulk_dir=$gh_dir
  bulk pinned 0
  stop "$pinned_pid"; stop "$ptarget_pid"; stop "$pjump_pid"
  echo
fi

if [[ " $PARTS " == *" idle "* ]]; then
  echo "#### $((IDLE_CONNS * IDLE_PER)) idle sessions: $IDLE_CONNS connections × $IDLE_PER sessions (load at start $(load))"
  echo
  start_gatehouse idle "$target_port" ""
  "${clients[@]}" idle "$gh_pid" "$gh_port" web-01 "$work/agent" "$work/agent-cert.pub" "$IDLE_CONNS" "$IDLE_PER" | save idle
  starts=$(grep -c '"session.start"' "$gh_dir/state/audit.log" || true)
  fmt idle
  fmt audit "$gh_dir/state/audit.log"
  echo "Sessions started in this process's audit log: $starts (the warm-up included)."
  issued=$(( $(grep -c '"cert.issue"' "$gh_dir/state/audit.log" || true) - $(grep -c '"cert.issue"' "$work/state/audit.log" || true) ))
  echo "Target connections: $issued per-connection target certificates issued by this process (one per agent connection that ran a session)."
  stop "$gh_pid"
  echo
fi

if [[ " $PARTS " == *" burst "* ]]; then
  echo "#### Bursts: $BURSTS × $BURST simultaneous connections running \`true\`, from $BURST_PROCS asyncssh client processes (load at start $(load))"
  echo
  start_gatehouse burst "$target_port" ""
  "${clients[@]}" burst "$gh_pid" "$gh_port" web-01 "$work/agent" "$work/agent-cert.pub" "$BURST" "$BURSTS" "$BURST_PROCS" | save burst
  fmt burst
  fmt audit "$gh_dir/state/audit.log"
  echo "Audit: $(grep -c '"session.start"' "$gh_dir/state/audit.log" || true) session.start, $(grep -c '"session.end"' "$gh_dir/state/audit.log" || true) session.end, $(grep -c '"ssh.admission"' "$gh_dir/state/audit.log" || true) ssh.admission summaries."
  stop "$gh_pid"
  echo
fi
echo "Load average at end: $(load)."
exec >&3 3>&-
wait "$tee_pid" 2>/dev/null || true
if [ -n "${OUT:-}" ]; then cp "$out" "$OUT"; cp "$json" "$OUT.json"; fi
rm -f "$out"
