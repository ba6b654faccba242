#!/usr/bin/env bash
# Proves the packages work in a user's own project: packs ClusterEnv.Core and ClusterEnv.Learners into a folder
# feed, creates a console project outside the repository, adds the packages from that feed with `dotnet add package`
# (into a fresh package cache, so nothing from the repository's build is reused), and runs
# tests/packaged-consumer/Program.cs: the Gym.MakeVec -> ClusterVecEnv swap, the program's own IEnvRegistrar env on
# local workers, and PPO from ClusterEnv.Learners. Exits non-zero when any step fails.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
feed="$work/feed"
bash "$repo/scripts/pack.sh" "$feed" >"$work/pack.log" 2>&1 || { cat "$work/pack.log"; echo "packing FAILED"; exit 1; }
version=$(ls "$feed" | sed -n 's/^ClusterEnv\.Core\.\(.*\)\.nupkg$/\1/p' | head -1)
[ -n "$version" ] || { echo "no ClusterEnv.Core package in $feed"; ls "$feed"; exit 1; }
echo "== packed ClusterEnv.Core and ClusterEnv.Learners $version"

app="$work/Consumer"
mkdir -p "$app"
cp "$repo/tests/packaged-consumer/Program.cs" "$app/"
cat >"$app/Consumer.csproj" <<'XML'
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>enable</Nullable>
    <ImplicitUsings>enable</ImplicitUsings>
  </PropertyGroup>
</Project>
XML
# The user's NuGet sources plus the local feed.
cat >"$app/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="clusterenv-local" value="$feed" />
  </packageSources>
</configuration>
XML
export NUGET_PACKAGES="$work/packages"
cd "$app"
for p in ClusterEnv.Core ClusterEnv.Learners; do
  dotnet add package "$p" --version "$version" >"$work/add.log" 2>&1 || { cat "$work/add.log"; echo "dotnet add package $p FAILED"; exit 1; }
done
dotnet build -c Release -o "$app/out" >"$work/build.log" 2>&1 || { cat "$work/build.log"; echo "building the consumer FAILED"; exit 1; }
test -f "$app/out/clusterenv-worker/ClusterEnv.Worker.dll" || { echo "the package did not place the worker in clusterenv-worker/"; exit 1; }
dotnet "$app/out/Consumer.dll"
