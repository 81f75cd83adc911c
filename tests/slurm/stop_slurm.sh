#!/usr/bin/env bash
# Stops the test cluster tests/slurm/start_slurm.sh started in DIR (default /tmp/unet2022-slurm):
# slurmd, slurmctld, then munged, each by the pid in its own pid file. With --purge the
# directory is removed too.
set -uo pipefail
DIR=${UNET_SLURM_DIR:-/tmp/unet2022-slurm}
PURGE=0
for a in "$@"; do
  case $a in
    --purge) PURGE=1 ;;
    *) DIR=$a ;;
  esac
done

stop_pidfile() {
  local f=$1 pid
  [[ -s $f ]] || return 0
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

if [[ -f $DIR/etc/slurm.conf ]]; then
  # jobs first, so no step outlives its slurmd
  SLURM_CONF=$DIR/etc/slurm.conf timeout 5 scancel --full --quiet --user=root 2>/dev/null || true
fi
stop_pidfile "$DIR/run/slurmd.pid"
stop_pidfile "$DIR/run/slurmctld.pid"
stop_pidfile "$DIR/munge/munged.pid"
if ((PURGE)); then rm -rf "$DIR"; fi
exit 0
