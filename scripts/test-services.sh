# Installs and starts what the tests need, on a new machine or an old one:
# PostgreSQL on 127.0.0.1:5432 (trust auth) with pg_dump/pg_restore, Chromium with ChromeDriver for
# the dashboard tests, yt-dlp and gallery-dl for the external-program tests,
# moto's S3 server (`moto_server`) for the object-storage tests.
# Sourced by scripts/test and .ci/run; it fails (never skips) when a piece
# cannot be had, and exports MEDIADL_TEST_DATABASE_URL.

step() { printf '\n==> %s\n' "$*"; }

apt_install() { # PACKAGE…
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${MEDIADL_APT_UPDATED:-}" ]; then
    apt-get update -qq
    MEDIADL_APT_UPDATED=1
  fi
  apt-get install -y -qq "$@" >/dev/null
}

step "PostgreSQL on 127.0.0.1:5432"
export MEDIADL_TEST_DATABASE_URL="${MEDIADL_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null; then
    apt_install postgresql
    # A fresh cluster asks for passwords over TCP; the tests connect as
    # `postgres` from loopback only.
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n1)
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }

step "pg_dump and pg_restore for the backup tests"
# A server started by the machine may come without the client programs.
if ! command -v pg_dump >/dev/null || ! command -v pg_restore >/dev/null; then
  apt_install postgresql-client
fi
pg_dump --version

step "Chromium and ChromeDriver for the dashboard tests"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt_install chromium chromium-driver
fi
chromium --version
chromedriver --version

step "yt-dlp and gallery-dl for the external engine tests"
# No ffmpeg: the tests use yt-dlp's native HLS downloader and formats
# that need no merging (the general platforms' tests check this).
# gallery-dl 1.28 or newer (its listing reads `_archive_key` at prepare-after).
if ! command -v yt-dlp >/dev/null || ! command -v gallery-dl >/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check yt-dlp gallery-dl
fi
yt-dlp --version
gallery-dl --version

step "moto's S3 server for the object-storage tests"
# The tests start `moto_server` on a free loopback port themselves (and
# fail, never skip, when it is missing).
if ! command -v moto_server >/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]'
fi
command -v moto_server
