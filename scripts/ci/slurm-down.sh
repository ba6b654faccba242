#!/usr/bin/env bash
# Stops what scripts/ci/slurm-up.sh started: cancels every job, then slurmd, slurmctld and munged (in that order),
# each by its pid file: SIGTERM, up to 10 s, then SIGKILL. Never kills by name.
set -uo pipefail
D=${SLURM_CI_DIR:-/var/lib/slurm-ci}
command -v scancel >/dev/null && scancel --user="$(id -un)" 2>/dev/null
stop() {
  local f=$1; [ -s "$f" ] || return 0
  local p; p=$(cat "$f"); kill -0 "$p" 2>/dev/null || return 0
  kill "$p" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$p" 2>/dev/null; return 0
}
stop "$D/slurmd.pid"; stop "$D/slurmctld.pid"; stop /run/munge/munged.pid
echo "slurm-down: stopped" >&2
