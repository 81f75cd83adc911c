#!/usr/bin/env bash
# Stops the cluster tests/slurm/start_cluster.sh started in DIR and removes what it made:
# jobs are cancelled, slurmd/slurmctld/munged stopped by the pids in their pid files, then any
# process still inside one of the cluster's namespaces (ranks, step daemons: the namespaces
# hold only what the cluster started) is killed by its pid, and the namespaces listed in
# DIR/state/netns are deleted (their veth pairs and bridge go with them). With --purge, DIR is removed too. Always exits 0.
set -uo pipefail
PATH=$PATH:/usr/sbin:/sbin
DIR=""
PURGE=0
for a in "$@"; do
  case $a in
    --purge) PURGE=1 ;;
    *) DIR=$a ;;
  esac
done
[[ -n $DIR && -d $DIR ]] || exit 0

# stop_pid PID NAME: only when PID is still a NAME (a node the tests killed leaves its pid file
# behind, and the number may belong to another process by now)
stop_pid() {
  local pid=$1
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

tag=$(cat "$DIR/state/tag" 2>/dev/null || true)
if [[ -n $tag && -f $DIR/etc/slurm.conf ]] && ip netns list 2>/dev/null | grep -q "^$tag-head\b"; then
  SLURM_CONF=$DIR/etc/slurm.conf timeout 5 nsenter --net="/run/netns/$tag-head" scancel --full --quiet --user=root 2>/dev/null || true
fi
for f in "$DIR"/run/slurmd-*.pid; do [[ -s $f ]] && stop_pid "$(<"$f")" slurmd; done
[[ -s $DIR/run/slurmctld.pid ]] && stop_pid "$(<"$DIR/run/slurmctld.pid")" slurmctld
[[ -s $DIR/munge/munged.pid ]] && stop_pid "$(<"$DIR/munge/munged.pid")" munged
if [[ -f $DIR/state/netns ]]; then
  while read -r ns; do
    [[ -n $ns ]] || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  done <"$DIR/state/netns"
  sleep 0.2
  while read -r ns; do
    [[ -n $ns ]] || continue
    ip netns del "$ns" 2>/dev/null || true
  done <"$DIR/state/netns"
  rm -f "$DIR/state/netns"
fi
((PURGE)) && rm -rf "$DIR"
exit 0
