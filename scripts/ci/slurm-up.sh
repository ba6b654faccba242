#!/usr/bin/env bash
# Starts a single-node Slurm cluster (munge + slurmctld + slurmd) on this machine, as root, for CI and for trying the
# Slurm worker pool by hand. Installs Debian's slurm-wlm, munge and OpenMPI first when they are missing (OpenMPI before
# slurmd starts, so that `srun --mpi=pmix` works). State, logs and pid files go to $SLURM_CI_DIR (default
# /var/lib/slurm-ci). Stop everything with scripts/ci/slurm-down.sh. Exits non-zero, saying why, when it cannot.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
D=${SLURM_CI_DIR:-/var/lib/slurm-ci}
[ "$(id -u)" -eq 0 ] || { echo "slurm-up: needs root (munged, slurmd and /etc/slurm)" >&2; exit 1; }
APT="apt-get -o DPkg::Lock::Timeout=900"
need=()
for p in slurm-wlm munge openmpi-bin libopenmpi-dev; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "slurm-up: installing ${need[*]}" >&2
  # The lock timeout does not cover `apt-get update` (the lists lock): retry it, and skip it when lists exist.
  if [ -z "$(ls /var/lib/apt/lists/*_Packages* 2>/dev/null)" ]; then
    for _ in $(seq 1 60); do $APT update -qq && break; sleep 5; done
  fi
  $APT install -y -q --no-install-recommends "${need[@]}" >/dev/null || {
    for _ in $(seq 1 10); do $APT update -qq && break; sleep 5; done
    $APT install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=128 count=1 status=none
chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
munge -n | unmunge >/dev/null
HN=$(hostname -s)
MEM=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) - 512 ))
# More slots than cores (config_overrides), so that a learner and several worker tasks fit on a 2-core machine.
SLOTS=${SLURM_CI_CPUS:-$(( $(nproc) < 8 ? 8 : $(nproc) ))}
install -d -o slurm -g slurm "$D" "$D/state" "$D/log"
install -d "$D/spool"
mkdir -p /etc/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=ci
SlurmctldHost=${HN}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
KillWait=5
InactiveLimit=0
MinJobAge=30
NodeName=${HN} NodeAddr=127.0.0.1 CPUs=${SLOTS} RealMemory=${MEM} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=1024
CONF
[ -s "$D/slurmctld.pid" ] && kill -0 "$(cat "$D/slurmctld.pid")" 2>/dev/null || /usr/sbin/slurmctld -c
[ -s "$D/slurmd.pid" ] && kill -0 "$(cat "$D/slurmd.pid")" 2>/dev/null || /usr/sbin/slurmd
for _ in $(seq 1 120); do sinfo -h -o %T 2>/dev/null | grep -qx idle && break; sleep 0.5; done
sinfo -h -o %T | grep -qx idle || { echo "slurm-up: the node did not turn idle; see $D/log" >&2; sinfo >&2 || true; exit 1; }
srun -N1 -n1 true
echo "slurm-up: single-node Slurm is up ($SLOTS slots on $HN; logs in $D/log)" >&2
