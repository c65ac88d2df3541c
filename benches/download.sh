#!/usr/bin/env bash
# Download benchmark: mediadl against curl and wget2 on the same local nginx.
#
#   bash benches/download.sh            # 3 runs of each, medians
#   RUNS=5 BENCH_DIR=/dev/shm/mdl bash benches/download.sh
#   MEDIADL=target/release/mediadl bash benches/download.sh   # no rebuild
#   PLATFORM=auto bash benches/download.sh   # with URL recognition (below)
#
# (a) 2,000 files of 200 KiB: wget2 with 16 threads vs `mediadl download -j 16`
# (b) 4 files of 256 MiB: sequential curl vs `mediadl download -j 4`
# (c) peak RSS with 16 concurrent large transfers (the 4 files, 4 URLs each)
# Needs nginx, wget2, curl and GNU time (Debian: nginx-light wget2 curl time).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-3}"
PORT="${PORT:-18089}"
BENCH_DIR="${BENCH_DIR:-$PWD/target/bench-download}"
SMALL_COUNT="${SMALL_COUNT:-2000}"
LARGE_COUNT="${LARGE_COUNT:-4}"
# `direct` measures the transfer and storage path alone, as curl and wget2
# are; `auto` (what `mediadl download` does unless told) first recognises
# each URL, which reads the installed yt-dlp's and gallery-dl's extractors.
PLATFORM="${PLATFORM:-direct}"

for tool in nginx wget2 curl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nginx-light wget2 curl time)" >&2; exit 1; }
done

# MEDIADL=path/to/mediadl skips the build (measure a binary built earlier).
if [ -z "${MEDIADL:-}" ]; then
  cargo build --release --quiet --bin mediadl
  MEDIADL="$PWD/target/release/mediadl"
fi

mkdir -p "$BENCH_DIR/www/small" "$BENCH_DIR/www/large" "$BENCH_DIR/nginx"
if [ "$(ls "$BENCH_DIR/www/small" | wc -l)" -ne "$SMALL_COUNT" ]; then
  echo "generating $SMALL_COUNT files of 200 KiB"
  rm -rf "$BENCH_DIR/www/small"; mkdir -p "$BENCH_DIR/www/small"
  head -c $((SMALL_COUNT * 204800)) /dev/urandom | split -b 204800 -d -a 5 - "$BENCH_DIR/www/small/f"
fi
if [ "$(ls "$BENCH_DIR/www/large" | wc -l)" -ne "$LARGE_COUNT" ]; then
  echo "generating $LARGE_COUNT files of 256 MiB"
  rm -rf "$BENCH_DIR/www/large"; mkdir -p "$BENCH_DIR/www/large"
  for i in $(seq 1 "$LARGE_COUNT"); do head -c $((256 << 20)) /dev/urandom > "$BENCH_DIR/www/large/big$i.bin"; done
fi

cat > "$BENCH_DIR/nginx/nginx.conf" <<CONF
worker_processes 1;
error_log $BENCH_DIR/nginx/error.log warn;
pid $BENCH_DIR/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  default_type application/octet-stream;
  client_body_temp_path $BENCH_DIR/nginx/tmp;
  proxy_temp_path $BENCH_DIR/nginx/tmp;
  fastcgi_temp_path $BENCH_DIR/nginx/tmp;
  uwsgi_temp_path $BENCH_DIR/nginx/tmp;
  scgi_temp_path $BENCH_DIR/nginx/tmp;
  server { listen 127.0.0.1:$PORT; root $BENCH_DIR/www; }
}
CONF
mkdir -p "$BENCH_DIR/nginx/tmp"
nginx -c "$BENCH_DIR/nginx/nginx.conf" -p "$BENCH_DIR/nginx" -g 'daemon off;' &
NGINX_PID=$!
trap 'kill $NGINX_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/small/f00000" -o /dev/null && break; sleep 0.1; done

BASE="http://127.0.0.1:$PORT"
ls "$BENCH_DIR/www/small" | sed "s|^|$BASE/small/|" > "$BENCH_DIR/small.txt"
ls "$BENCH_DIR/www/large" | sed "s|^|$BASE/large/|" > "$BENCH_DIR/large.txt"
: > "$BENCH_DIR/large16.txt"
for copy in 1 2 3 4; do sed "s|\$|?copy=$copy|" "$BENCH_DIR/large.txt" >> "$BENCH_DIR/large16.txt"; done
SMALL_BYTES=$(du -sb "$BENCH_DIR/www/small" | cut -f1)
LARGE_BYTES=$(du -sb "$BENCH_DIR/www/large" | cut -f1)
OUT="$BENCH_DIR/out"

# measure NAME COMMAND...: runs it RUNS times in a fresh output dir and
# prints "NAME median_seconds max_rss_kib" (RSS: the largest of the runs).
measure() {
  local name=$1; shift
  local times=() rss=0
  for _ in $(seq 1 "$RUNS"); do
    rm -rf "$OUT"; mkdir -p "$OUT"; sync
    /usr/bin/time -o "$BENCH_DIR/time.txt" -f "%e %M" "$@" >/dev/null 2>"$BENCH_DIR/stderr.txt" \
      || { echo "$name failed:" >&2; tail -n 5 "$BENCH_DIR/stderr.txt" >&2; exit 1; }
    local line
    line=$(tail -n1 "$BENCH_DIR/time.txt")
    times+=("${line% *}")
    local kib=${line#* }
    [ "$kib" -gt "$rss" ] && rss=$kib
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$name $median $rss"
}

curl_sequential() { cd "$OUT" && while read -r url; do curl -sf -o "$(basename "$url")" "$url"; done < "$1"; }
export -f curl_sequential
export OUT

echo "runs: $RUNS (medians), mediadl -p $PLATFORM"
echo "small: $SMALL_COUNT x 200 KiB, large: $LARGE_COUNT x 256 MiB, files in $BENCH_DIR"
small_wget=$(measure wget2 wget2 -q --max-threads=16 -P "$OUT" -i "$BENCH_DIR/small.txt")
small_mdl=$(measure mediadl "$MEDIADL" download -q -p "$PLATFORM" -j 16 -o "$OUT" -i "$BENCH_DIR/small.txt")
large_curl=$(measure curl bash -c "curl_sequential $BENCH_DIR/large.txt")
large_mdl=$(measure mediadl "$MEDIADL" download -q -p "$PLATFORM" -j 4 -o "$OUT" -i "$BENCH_DIR/large.txt")
rss_mdl=$(measure mediadl16 "$MEDIADL" download -q -p "$PLATFORM" -j 16 -o "$OUT" -i "$BENCH_DIR/large16.txt")

# Check that mediadl really wrote every file.
rm -rf "$OUT"; mkdir -p "$OUT"
"$MEDIADL" download -q -p "$PLATFORM" -j 16 -o "$OUT" -i "$BENCH_DIR/small.txt" 2>/dev/null
written=$(find "$OUT" -type f ! -name '.mediadl-*' | wc -l)
[ "$written" -eq "$SMALL_COUNT" ] || { echo "mediadl wrote $written of $SMALL_COUNT files" >&2; exit 1; }

report() {
  python3 - "$@" <<'PY'
import sys
(small_count, small_bytes, large_count, large_bytes, sw, sm, lc, lm, r16) = sys.argv[1:10]
def parse(s):
    name, secs, rss = s.split(); return name, float(secs), int(rss)
small_count, large_count = int(small_count), int(large_count)
small_bytes, large_bytes = int(small_bytes), int(large_bytes)
mib = 1024 * 1024
rows = []
for label, s, count, size in [("small", sw, small_count, small_bytes), ("small", sm, small_count, small_bytes),
                              ("large", lc, large_count, large_bytes), ("large", lm, large_count, large_bytes),
                              ("large x16", r16, large_count * 4, large_bytes * 4)]:
    name, secs, rss = parse(s)
    rows.append((label, name, secs, size / mib / secs, count / secs, rss / 1024))
print(f"{'set':<10} {'tool':<9} {'wall s':>8} {'MiB/s':>9} {'files/s':>9} {'peak RSS MiB':>13}")
for label, name, secs, mibs, fps, rss in rows:
    print(f"{label:<10} {name:<9} {secs:>8.2f} {mibs:>9.1f} {fps:>9.1f} {rss:>13.1f}")
print()
print(f"small files: mediadl/wget2 files/s = {rows[1][4] / rows[0][4]:.2f} (target >= 1.0)")
print(f"large files: mediadl/curl MiB/s    = {rows[3][3] / rows[2][3]:.2f} (target >= 1.0)")
print(f"16 large transfers: mediadl peak RSS = {rows[4][5]:.1f} MiB (target <= 50)")
PY
}
report "$SMALL_COUNT" "$SMALL_BYTES" "$LARGE_COUNT" "$LARGE_BYTES" "$small_wget" "$small_mdl" "$large_curl" "$large_mdl" "$rss_mdl"
