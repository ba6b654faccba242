#!/usr/bin/env bash
# Stops what scripts/ci/slurm-up.sh started: cancels this project's jobs (named clusterenv-* or ce-test-*), then slurmd, slurmctld and munged (in that order),
# each by its pid file: SIGTERM, up to 10 s, then SIGKILL. Never kills by name.
set -uo pipefail
D=${SLURM_CI_DIR:-/var/lib/slurm-ci}
# Only this project's jobs (the names its scripts, pools and tests give), never the user's other jobs.
if command -v squeue >/dev/null && command -v scancel >/dev/null; then
  squeue -h -u "$(id -un)" -o '%i %j' 2>/dev/null | awk '$2 ~ /^(clusterenv-|ce-test-)/ {print $1}' | xargs -r scancel 2>/dev/null
fi
stop() {
  local f=$1; [ -s "$f" ] || return 0
  local p; p=$(cat "$f"); kill -0 "$p" 2>/dev/null || return 0
  kill "$p" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$p" 2>/dev/null; return 0
}
stop "$D/slurmd.pid"; stop "$D/slurmctld.pid"; stop /run/munge/munged.pid
echo "slurm-down: stopped" >&2
