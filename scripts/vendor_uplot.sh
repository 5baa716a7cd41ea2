#!/usr/bin/env bash
# Vendor the uPlot chart library into dashboards/web/static/vendor/uplot/ from the npm registry (`npm pack`),
# with its licence. The result is committed: the dashboard runs offline and never loads from a CDN.
# Usage: bash scripts/vendor_uplot.sh [VERSION]   (default 1.6.32)
set -euo pipefail
version="${1:-1.6.32}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/dashboards/web/static/vendor/uplot"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$version" >/dev/null && tar -xzf "uplot-$version.tgz")
mkdir -p "$dest"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$work/package/LICENSE" "$dest/"
echo "uPlot $version" > "$dest/VERSION"
(cd "$dest" && sha256sum uPlot.iife.min.js uPlot.min.css LICENSE > SHA256SUMS)
echo "vendored uPlot $version into $dest"
