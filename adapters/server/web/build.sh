#!/bin/sh
# Rebuilds web/dist from web/src: no Node, no bundler. The dashboard is plain
# ES modules; this only
#   1. names the asset directory after a hash of the sources, so browsers may
#      cache /assets/<hash>/… forever and a new build is a new URL;
#   2. writes index.html with that directory filled in;
#   3. precompresses every file with gzip and brotli, so the server sends
#      compressed bytes without compressing at run time.
# The server embeds web/dist at compile time; commit it after running this.
# The hash is checked by a unit test in src/web.rs (dist_matches_sources).
# Needs: sh, sha256sum, gzip, brotli (Debian package `brotli`).
set -eu
cd "$(dirname "$0")"
command -v brotli >/dev/null || { echo "build.sh: install brotli (apt-get install -y brotli)" >&2; exit 1; }

# Hash: sha256 over the `sha256sum` lines of every source file, sorted by path.
version=$(cd src && find . -type f | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12)

rm -rf dist
mkdir -p "dist/assets/$version"
(cd src && find . -type f ! -name index.html | sed 's|^\./||' | while read -r f; do
  mkdir -p "../dist/assets/$version/$(dirname "$f")"
  cp "$f" "../dist/assets/$version/$f"
done)
sed "s|__ASSET_VERSION__|$version|g" src/index.html > dist/index.html

find dist -type f ! -name '*.gz' ! -name '*.br' | while read -r f; do
  gzip -9 -n -k "$f"
  brotli -q 11 -k "$f"
done
echo "web/dist rebuilt: assets/$version"
