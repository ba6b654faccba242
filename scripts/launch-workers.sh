#!/usr/bin/env bash
# Starts a pool of ClusterEnv workers that dial a learner's hub, and waits for them.
#
#   scripts/launch-workers.sh (--hub http://10.0.0.5:5555 | --hub-url-file FILE) --count 4 --env CartPole-v1 \
#                             --envs-per-worker 64 [--token-file token.txt] [--prefix ID] [--worker path/to/ClusterEnv.Worker.dll]
#
# Worker ids are PREFIX-000, PREFIX-001, ... (sub-envs are ordered by worker id). PREFIX defaults to the host name, and
# under Slurm (srun) to HOST-pPROCID, so that the tasks of one step never collide. --hub-url-file waits (up to 120 s)
# for the file a learner writes with ClusterOptions.HubUrlFile / examples/Train --hub-url-file. The learner side is a
# ClusterVecEnv with LocalWorkers = false and NumWorkers = the total count. Ctrl-C (or SIGTERM) stops every worker; the
# script exits 0 when all workers exited 0 (the learner closed the vector env), else with the first failure's code.
set -euo pipefail

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

hub="" hub_url_file="" count=1 env="" per=1 token_file="" prefix="" worker="${CLUSTERENV_WORKER:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --hub) hub="$2"; shift 2 ;;
    --hub-url-file) hub_url_file="$2"; shift 2 ;;
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
if [ -z "$hub" ] && [ -n "$hub_url_file" ]; then
  for _ in $(seq 1200); do [ -s "$hub_url_file" ] && break; sleep 0.1; done
  [ -s "$hub_url_file" ] || { echo "launch-workers: no hub URL in '$hub_url_file' after 120 s; is the learner running with --hub-url-file?" >&2; exit 2; }
  hub="$(head -n1 "$hub_url_file")"
fi
[ -n "$hub" ] || { echo "launch-workers: --hub or --hub-url-file is required (e.g. --hub http://127.0.0.1:5555)" >&2; exit 2; }
if [ -z "$prefix" ]; then
  prefix="$(hostname)"
  [ -n "${SLURM_PROCID:-}" ] && prefix="$prefix-p$SLURM_PROCID"
fi
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
for p in "${pids[@]}"; do
  wait "$p" || { rc=$?; [ "$status" -eq 0 ] && status=$rc; }
done
exit "$status"
