#!/usr/bin/env bash
# Starts a pool of ClusterEnv workers that dial a learner's hub, and waits for them.
#
#   scripts/launch-workers.sh --hub http://10.0.0.5:5555 --count 4 --env CartPole-v1 --envs-per-worker 64 \
#                             [--token-file token.txt] [--prefix $(hostname)] [--worker path/to/ClusterEnv.Worker.dll]
#
# Worker ids are PREFIX-000, PREFIX-001, ... (sub-envs are ordered by worker id). The learner side is a ClusterVecEnv
# with LocalWorkers = false, NumWorkers = the total count and the same port and token. Ctrl-C (or SIGTERM) stops
# every worker; the script exits 0 when all workers exited 0 (the learner closed the vector env).
set -euo pipefail

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

hub="" count=1 env="" per=1 token_file="" prefix="$(hostname)" worker="${CLUSTERENV_WORKER:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --hub) hub="$2"; shift 2 ;;
    --count) count="$2"; shift 2 ;;
    --env) env="$2"; shift 2 ;;
    --envs-per-worker) per="$2"; shift 2 ;;
    --token-file) token_file="$2"; shift 2 ;;
    --prefix) prefix="$2"; shift 2 ;;
    --worker) worker="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "launch-workers: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -n "$hub" ] || { echo "launch-workers: --hub is required (e.g. http://127.0.0.1:5555)" >&2; exit 2; }
[ -n "$env" ] || { echo "launch-workers: --env is required (e.g. CartPole-v1)" >&2; exit 2; }
[[ "$count" =~ ^[1-9][0-9]*$ ]] || { echo "launch-workers: --count '$count' must be a positive integer" >&2; exit 2; }
[[ "$per" =~ ^[1-9][0-9]*$ ]] || { echo "launch-workers: --envs-per-worker '$per' must be a positive integer" >&2; exit 2; }
[ -z "$token_file" ] || [ -f "$token_file" ] || { echo "launch-workers: --token-file '$token_file' does not exist" >&2; exit 2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "$worker" ]; then
  worker="$root/ClusterEnv.Worker/bin/Release/net10.0/ClusterEnv.Worker.dll"
  if [ ! -f "$worker" ]; then
    echo "launch-workers: building ClusterEnv.Worker ..." >&2
    dotnet build "$root/ClusterEnv.Worker" -c Release -v quiet -nologo >&2
  fi
fi
[ -f "$worker" ] || { echo "launch-workers: worker '$worker' not found; pass --worker or set CLUSTERENV_WORKER" >&2; exit 2; }
run=(); [[ "$worker" == *.dll ]] && run=(dotnet)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap 'cleanup; exit 130' INT TERM

for ((i = 0; i < count; i++)); do
  id=$(printf '%s-%03d' "$prefix" "$i")
  args=(--hub "$hub" --env "$env" --num-envs "$per" --worker-id "$id")
  [ -n "$token_file" ] && args+=(--token-file "$token_file")
  DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 "${run[@]}" "$worker" "${args[@]}" &
  pids+=($!)
done
echo "launch-workers: started $count workers ($prefix-000 ... ) with $per x $env each, dialling $hub" >&2

status=0
for p in "${pids[@]}"; do wait "$p" || status=$?; done
exit "$status"
