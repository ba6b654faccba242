#!/usr/bin/env bash
# Builds the API reference from the XML doc comments (docfx, a local dotnet tool: .config/dotnet-tools.json) into
# artifacts/api-site/, and lists the public members that have no doc comment (the compiler's CS1591, which normal
# builds silence) as warnings: one line each in artifacts/api-site/undocumented.txt, and a JSON summary line.
# Exits non-zero only when docfx fails or reports an error (a broken cref or link).
set -euo pipefail
cd "$(dirname "$0")/.."
out=artifacts/api-site
dotnet tool restore >/dev/null
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! dotnet docfx docs/api/docfx.json >"$log" 2>&1; then cat "$log"; echo "docfx FAILED"; exit 1; fi
grep -E "warning|error" "$log" | grep -vE "^\s+[0-9]+ (warning|error)\(s\)" || true
mkdir -p "$out"
undocumented="$out/undocumented.txt"
: >"$undocumented"
for p in ClusterEnv.Core ClusterEnv.Learners; do
  # A build of its own (the documentation switch changes the compilation): CS1591 as warnings, not errors.
  dotnet build "$p/$p.csproj" -c Release -p:DocWarnings=true --no-incremental -o "$(mktemp -d)" 2>/dev/null \
    | grep -oE "warning CS1591: [^[]*" | sed "s/^warning CS1591: /$p: /" | sort -u >>"$undocumented" || true
done
n=$(wc -l <"$undocumented")
while read -r line; do echo "warning: no doc comment: $line"; done < <(head -n 20 "$undocumented")
[ "$n" -gt 20 ] && echo "... and $((n - 20)) more in $undocumented"
pages=$(find "$out/api" -name '*.html' | wc -l)
echo "{\"api_pages\": $pages, \"public_members_without_docs\": $n, \"site\": \"$out/index.html\"}"
