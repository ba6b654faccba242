#!/usr/bin/env bash
# Packs ClusterEnv.Core (with the worker inside) and ClusterEnv.Learners into a folder feed.
# Usage: scripts/pack.sh [OUT_DIR]   (default: artifacts/packages)
# The worker travels inside ClusterEnv.Core's package, taken from its build output, so the solution is built first
# and packed without rebuilding.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-artifacts/packages}"
mkdir -p "$out"
dotnet build ClusterEnv.sln -c Release
dotnet pack ClusterEnv.sln -c Release --no-build -o "$out"
ls -1 "$out"
