#!/usr/bin/env bash
# Run here (where .NET is): a self-contained build of the benchmarks for the GPU machine, which has no .NET.
# Writes publish/device-check.tgz (about 50 MB), which `run` carries: carry ["publish/device-check.tgz"].
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf publish/device-check
dotnet publish benchmarks/ClusterEnv.Benchmarks -c Release -r linux-x64 --self-contained -o publish/device-check >/dev/null
tar -C publish -czf publish/device-check.tgz device-check
rm -rf publish/device-check
ls -la publish/device-check.tgz
