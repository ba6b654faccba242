#!/usr/bin/env bash
# The GPU checks, on the machine with the GPU; builds nothing there. Needs publish/device-check.tgz from
# scripts/device-publish.sh. Writes JSON lines to $OUT/device-check.jsonl (default ./device-out) and exits 0 when every
# check passed. Under 8 minutes on an H200:
#   - every kernel, an MLP forward/backward and a PPO minibatch step on the GPU against the CPU engine;
#   - NCCL all-reduce of 10M floats (a world of 1: one GPU) and a PPO step whose gradients go through NCCL;
#   - learner throughput (forward + backward + Adam) of the GPU and of the CPU engine, 2×1024 at batch 65,536 and
#     CleanRL's 64-wide network at batch 512.
# DEVICE=cpu runs the same checks on ILGPU's CPU accelerator (no GPU needed); QUICK=1 shortens the throughput runs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-./device-out}
mkdir -p "$OUT"
bundle=publish/device-check.tgz
if [ ! -f "$bundle" ]; then
  echo "device-check: $bundle is missing; make it with scripts/device-publish.sh where .NET is installed, and carry it." >&2
  exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$bundle" -C "$work"
# NVIDIA's libraries from Python's nvidia-* wheels (cuBLAS, NCCL), when they are not on the loader's path.
if command -v python3 >/dev/null; then
  wheels=$(python3 - <<'PY' 2>/dev/null
import glob, os
try:
    import nvidia
    print(":".join(sorted({d for p in nvidia.__path__ for d in glob.glob(os.path.join(p, "*", "lib"))})))
except Exception:
    pass
PY
)
  if [ -n "$wheels" ]; then export CLUSTERENV_CUDA_LIBS="${CLUSTERENV_CUDA_LIBS:+$CLUSTERENV_CUDA_LIBS:}$wheels"; fi
fi
(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/nvidia-smi.txt") 2>/dev/null || true
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_gcServer=0
timeout 450 "$work/device-check/ClusterEnv.Benchmarks" device-check --device "${DEVICE:-cuda}" --out "$OUT" ${QUICK:+--quick}
rc=$?
[ $rc -eq 124 ] && echo "device-check: ran past 450 s" >&2
exit $rc
