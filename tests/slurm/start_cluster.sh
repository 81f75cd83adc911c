#!/usr/bin/env bash
# Brings up a private THREE-NODE Slurm on one machine, for the multi-node tests:
#
#   head namespace  <TAG>-head  10.250.0.1   slurmctld, the bridge br0; clients (sbatch, scontrol)
#   node namespaces <TAG>-mn1..3 10.250.0.11..13  one slurmd each, in its own network namespace
#                   AND its own UTS namespace (hostname mn1..mn3), so Open MPI and Slurm see
#                   three hosts; each joined to the head's bridge by a veth pair.
#
# Only the addresses above exist, and only inside the namespaces this script creates (plus
# each namespace's loopback); the host's own network namespace gets no link, address or route.
# munged (private key, socket in DIR) and the shared directory DIR (config, state, logs, the
# store and run directories the tests put there) are shared by all nodes through the file system.
#
#   eval "$(tests/slurm/start_cluster.sh DIR)"   # exports SLURM_CONF, UNET_MN_HEAD, UNET_MN_NODES,
#                                                #   UNET_MN_NS (node namespaces), UNET_MN_SUBNET
#   tests/slurm/stop_cluster.sh DIR              # always: stops by recorded pids, deletes the namespaces
#
# Exit status: 0 up, 3 not root or a tool missing (callers skip), 1 did not come up (logs on stderr).
# A fresh state every time: an earlier cluster in DIR is stopped and its state removed first.
set -euo pipefail

DIR=${1:?usage: start_cluster.sh DIR}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NODES=${UNET_MN_NODES_COUNT:-3}
SUBNET=10.250.0
HEAD_IP=$SUBNET.1
CTLD_PORT=6817 # private: inside the head namespace, so a site's slurmctld is untouched
SLURMD_PORT=6818

PATH=$PATH:/usr/sbin:/sbin
for prog in ip unshare nsenter munged slurmctld slurmd sinfo sbatch scontrol srun; do
  if ! command -v "$prog" >/dev/null 2>&1; then
    echo "start_cluster: '$prog' not found (iproute2, util-linux, slurmctld slurmd slurm-client munge)" >&2
    exit 3
  fi
done
if [[ $(id -u) -ne 0 ]]; then
  echo "start_cluster: must run as root (network namespaces, SlurmUser=root)" >&2
  exit 3
fi

# Can this machine make namespaces at all (a container without CAP_SYS_ADMIN cannot)? If not,
# the multi-node tests are skipped, not failed.
probe=unetprobe$$
if ! ip netns add "$probe" 2>/dev/null; then
  echo "start_cluster: cannot create network namespaces here (ip netns add: not permitted)" >&2
  exit 3
fi
if ! nsenter --net="/run/netns/$probe" unshare --uts -- true 2>/dev/null; then
  ip netns del "$probe" 2>/dev/null || true
  echo "start_cluster: cannot enter a network namespace or create a UTS namespace here (nsenter/unshare)" >&2
  exit 3
fi
ip netns del "$probe"

# A fresh state: stop whatever an earlier run left in DIR (by its recorded pids and namespaces).
bash "$HERE/stop_cluster.sh" "$DIR" >/dev/null 2>&1 || true
rm -rf "$DIR"/{etc,munge,spool,log,run,state,tmp}
mkdir -p "$DIR"/{etc,munge,spool,log,run,state,tmp}
chmod 711 "$DIR/munge"

# Namespace names carry a per-cluster tag so that two clusters (two CI jobs) never collide.
TAG=${UNET_MN_TAG:-unet$(printf '%04x' $((RANDOM)))}
HEAD=$TAG-head
echo "$TAG" >"$DIR/state/tag"
: >"$DIR/state/netns" # every namespace made, one a line: stop_cluster.sh deletes exactly these

fail() {
  echo "start_cluster: $*" >&2
  for f in "$DIR"/log/*.log; do
    [[ -f $f ]] || continue
    echo "---- $f (tail)" >&2
    tail -n 25 "$f" >&2 || true
  done
  exit 1
}

mkns() {
  ip netns add "$1" || fail "ip netns add $1 failed"
  echo "$1" >>"$DIR/state/netns"
  ip -n "$1" link set lo up
}
# Runs a command in namespace $1 (network only: `ip netns exec` would also remount /sys, which
# hides /sys/fs/cgroup from slurmd) with its own UTS namespace and hostname $2.
in_node() {
  local ns=$1 host=$2
  shift 2
  nsenter --net="/run/netns/$ns" unshare --uts -- sh -c 'hostname "$0" && exec "$@"' "$host" "$@"
}

mkns "$HEAD"
ip -n "$HEAD" link add br0 type bridge
ip -n "$HEAD" addr add "$HEAD_IP/24" dev br0
ip -n "$HEAD" link set br0 up
NODE_NS=()
for i in $(seq 1 "$NODES"); do
  ns=$TAG-mn$i
  mkns "$ns"
  NODE_NS+=("$ns")
  # the pair is created inside the head namespace, its far end moved straight into the node's:
  # no interface ever appears in the host's namespace
  ip -n "$HEAD" link add "veth$i" type veth peer name eth0 netns "$ns"
  ip -n "$HEAD" link set "veth$i" master br0 up
  ip -n "$ns" addr add "$SUBNET.$((10 + i))/24" dev eth0
  ip -n "$ns" link set eth0 up
done

# munge: a private key and socket (a Unix socket in the file system: reachable from every
# network namespace).
dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1 count=1024 status=none
chmod 400 "$DIR/munge/munge.key"
munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
  --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" ||
  fail "munged did not start"

CONF=$DIR/etc/slurm.conf
{
  cat <<EOF
# Written by tests/slurm/start_cluster.sh: a $NODES-node test cluster in network namespaces.
ClusterName=unetmn
SlurmctldHost=mnhead($HEAD_IP)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/%n
# per node: the PMIx plugin makes its client directories here (one shared /tmp would collide)
TmpFS=$DIR/tmp/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
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
SchedulerParameters=batch_sched_delay=0
# Short timers: a lost node is declared DOWN (and its jobs requeued) within seconds.
MessageTimeout=5
KillWait=5
MinJobAge=600
InactiveLimit=0
SlurmdTimeout=8
SlurmctldTimeout=30
TCPTimeout=2
EOF
  for i in $(seq 1 "$NODES"); do
    echo "NodeName=mn$i NodeAddr=$SUBNET.$((10 + i)) NodeHostname=mn$i CPUs=2 RealMemory=2000 State=UNKNOWN"
  done
  echo "PartitionName=mn Nodes=mn[1-$NODES] Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
} >"$CONF"
export SLURM_CONF=$CONF

in_node "$HEAD" mnhead slurmctld -i -c -f "$CONF" || fail "slurmctld did not start"
for i in $(seq 1 "$NODES"); do
  mkdir -p "$DIR/spool/mn$i" "$DIR/tmp/mn$i"
  # its own UTS namespace: hostname mn$i for slurmd and everything it starts
  in_node "$TAG-mn$i" "mn$i" slurmd -f "$CONF" -N "mn$i" ||
    fail "slurmd mn$i did not start"
done

up() {
  local n
  n=$(nsenter --net="/run/netns/$HEAD" timeout 5 sinfo -h -N -o '%N %t' 2>/dev/null | grep -cE ' (idle|mix|alloc)$' || true)
  [[ $n -eq $NODES ]]
}
ok=0
for _ in $(seq 1 120); do
  if up; then ok=1; break; fi
  sleep 0.25
done
((ok)) || {
  nsenter --net="/run/netns/$HEAD" sinfo -N -l >&2 || true
  fail "the $NODES nodes did not become idle in 30 s"
}
echo "export SLURM_CONF=$CONF"
echo "export UNET_MN_HEAD=$HEAD"
echo "export UNET_MN_NS='${NODE_NS[*]}'"
echo "export UNET_MN_NODES=mn[1-$NODES]"
echo "export UNET_MN_SUBNET=$SUBNET.0/24"
