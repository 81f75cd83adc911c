#!/usr/bin/env bash
# Brings up a private single-node Slurm for the tests: munged, slurmctld and slurmd started
# directly (no systemd), all state, sockets, logs and the config in one directory, daemons on
# 127.0.0.1 on their own ports, and no cgroups (proctrack/linuxproc, task/none), which is
# what works on CI machines and containers. Idempotent: when the cluster in DIR already
# answers, it only prints the environment again.
#
#   eval "$(tests/slurm/start_slurm.sh [DIR])"     # exports SLURM_CONF for sinfo/sbatch/...
#   tests/slurm/stop_slurm.sh [DIR]
#
# DIR defaults to /tmp/unet2022-slurm. Needs root and Debian's slurmctld, slurmd,
# slurm-client and munge (scripts/install-deps.sh). Exit status: 0 up (prints
# `export SLURM_CONF=...` on stdout), 3 a needed program is missing (the caller may skip),
# 1 the daemons did not come up (their logs are printed to stderr).
set -euo pipefail

DIR=${1:-${UNET_SLURM_DIR:-/tmp/unet2022-slurm}}
NODE=localhost
# Ports well away from a site's 6817/6818 so a real installation on the same host is untouched.
CTLD_PORT=${UNET_SLURM_CTLD_PORT:-16817}
SLURMD_PORT=${UNET_SLURM_SLURMD_PORT:-16818}
CONF=$DIR/etc/slurm.conf

for prog in munged slurmctld slurmd sinfo sbatch scontrol; do
  command -v "$prog" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin
  if ! command -v "$prog" >/dev/null 2>&1; then
    echo "start_slurm: '$prog' not found (install slurmctld slurmd slurm-client munge: scripts/install-deps.sh)" >&2
    exit 3
  fi
done
if [[ $(id -u) -ne 0 ]]; then
  echo "start_slurm: must run as root (SlurmUser=root, munged with a private key)" >&2
  exit 3
fi

up() { SLURM_CONF=$CONF timeout 5 sinfo -h -n "$NODE" -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }

if [[ -f $CONF ]] && up; then
  echo "export SLURM_CONF=$CONF"
  exit 0
fi

mkdir -p "$DIR"/{etc,munge,spool/ctld,spool/d,log,run}
chmod 711 "$DIR/munge"   # the socket must be reachable; the key itself is 0400

# munge: a private key and socket, so a host munged (if any) is neither needed nor disturbed.
if [[ ! -s $DIR/munge/munge.key ]]; then
  dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1 count=1024 status=none
  chmod 400 "$DIR/munge/munge.key"
fi
if ! [[ -S $DIR/munge/munge.socket ]] || ! pgrep -F "$DIR/munge/munged.pid" >/dev/null 2>&1; then
  rm -f "$DIR/munge/munge.socket"*
  # --force: munged refuses root-owned keys and sockets in non-standard places otherwise.
  munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
         --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" \
         --seed-file="$DIR/munge/munged.seed"
fi

cat >"$CONF" <<EOF
# Written by tests/slurm/start_slurm.sh: a one-node test cluster.
ClusterName=unettest
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# Short timers: a test cluster should react in seconds.
SchedulerParameters=batch_sched_delay=0
MessageTimeout=10
KillWait=10
MinJobAge=600
InactiveLimit=0
SlurmdTimeout=60
SlurmctldTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=2 RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
export SLURM_CONF=$CONF
if ! pgrep -F "$DIR/run/slurmctld.pid" >/dev/null 2>&1; then
  slurmctld -i -c -f "$CONF"   # -c: a fresh state every start; -i: ignore stale state errors
fi
if ! pgrep -F "$DIR/run/slurmd.pid" >/dev/null 2>&1; then
  slurmd -f "$CONF" -N "$NODE"
fi

for _ in $(seq 1 60); do
  if up; then
    echo "export SLURM_CONF=$CONF"
    exit 0
  fi
  sleep 0.5
done
echo "start_slurm: the node did not become idle in 30 s; sinfo says:" >&2
sinfo -N -l >&2 || true
for f in munged slurmctld slurmd; do
  echo "---- $DIR/log/$f.log (tail)" >&2
  tail -n 30 "$DIR/log/$f.log" >&2 2>/dev/null || true
done
exit 1
