#!/usr/bin/env bash
# A real single-node Slurm on 127.0.0.1 for tests, benchmarks and .ci/run: munged + slurmctld +
# slurmd from Debian's slurm-wlm, everything (config, key, sockets, state, logs) under DIR, with
# proctrack/linuxproc and task/none so it runs in a container without cgroups or systemd.
#
#   scripts/services/slurm.sh start DIR   # prints the SLURM_CONF path once the node is idle
#   scripts/services/slurm.sh stop DIR    # stops the three daemons (no-op when not running)
#
# Clients find this cluster through SLURM_CONF=DIR/slurm.conf.
set -euo pipefail
cmd=${1:?usage: slurm.sh start DIR | stop DIR}
dir=${2:?the state folder}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

free_port() {
  python3 - <<'PY' 2>/dev/null || node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

stop_pidfile() {
  local file=$1
  [ -f "$file" ] || return 0
  local pid
  pid=$(cat "$file" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

case "$cmd" in
start)
  for bin in munged slurmctld slurmd sbatch; do
    command -v "$bin" >/dev/null || [ -x "/usr/sbin/$bin" ] || { echo "slurm.sh: $bin is not installed (bash scripts/setup.sh installs slurm-wlm and munge)" >&2; exit 3; }
  done
  PATH="/usr/sbin:$PATH"
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
  chmod 700 "$dir/munge"
  [ -f "$dir/munge/munge.key" ] || { dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none; chmod 400 "$dir/munge/munge.key"; }
  munged --force --socket="$dir/munge/munge.sock" --key-file="$dir/munge/munge.key" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"
  ctld_port=$(free_port)
  slurmd_port=$(free_port)
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ { print int($2 / 1024 / 2) }' /proc/meminfo)
  user=$(id -un)
  cat > "$dir/slurm.conf" <<CONF
ClusterName=lorabuild
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
MessageTimeout=10
NodeName=lbnode NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=lbnode Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF" -N lbnode
  for _ in $(seq 1 200); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
    case "$state" in idle*|mixed*|allocated*) echo "$SLURM_CONF"; exit 0 ;; esac
    sleep 0.1
  done
  echo "slurm.sh: the node did not become idle (state: ${state:-none}); logs in $dir/log" >&2
  tail -n 20 "$dir/log/"*.log >&2 || true
  exit 1
  ;;
stop)
  if [ -f "$dir/slurm.conf" ]; then
    SLURM_CONF="$dir/slurm.conf" scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
  fi
  stop_pidfile "$dir/slurmd.pid"
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munge/munged.pid"
  ;;
*)
  echo "usage: slurm.sh start DIR | stop DIR" >&2
  exit 2
  ;;
esac
