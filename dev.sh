#!/usr/bin/env bash
# crmkit's one entry point for a fresh machine.
#   bash dev.sh app    set up .venv, build the demo database if missing, start the manager app
#   bash dev.sh test   set up .venv with test tools, start PostgreSQL, run lint and the whole test suite,
#                      then scripts/smoke_install.py (the built wheel in a fresh environment; also
#                      after a partial run `bash dev.sh test ARGS` when CRMKIT_SMOKE=1)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
PG_URL_DEFAULT="postgresql+psycopg://crm:crm@127.0.0.1:5432/crm"

log() { printf '\033[1m[crmkit]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1; fi
}

setup_venv() {  # $1: pip extras, e.g. "test"
  local extras=${1:-}
  if [ ! -x "$PY" ]; then
    log "creating virtual environment in .venv"
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.crmkit-installed-${extras:-base}"
  local want
  want=$(sha256sum pyproject.toml | cut -c1-16)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing crmkit${extras:+[$extras]} and its dependencies (first run takes a few minutes)"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q -e ".${extras:+[$extras]}"
    "$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (crmkit)" >/dev/null
    echo "$want" > "$stamp"
  fi
}

apt_install() {  # install Debian packages that are missing
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "${missing[@]}" >/dev/null
  fi
}

start_postgres() {
  apt_install postgresql
  local ver
  ver=$(pg_lsclusters -h | awk 'NR==1{print $1}')
  if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
    log "starting PostgreSQL $ver"
    as_root pg_ctlcluster "$ver" main start
    STARTED_PG="$ver"
  fi
  as_root su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='crm'\"" | grep -q 1 \
    || as_root su postgres -c "psql -qc \"CREATE USER crm PASSWORD 'crm' SUPERUSER\""
  as_root su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='crm'\"" | grep -q 1 \
    || as_root su postgres -c "createdb -O crm crm"
}

stop_postgres() {
  if [ -n "${STARTED_PG:-}" ]; then
    log "stopping PostgreSQL $STARTED_PG"
    as_root pg_ctlcluster "$STARTED_PG" main stop || true
  fi
}

cmd_app() {
  setup_venv ""
  "$VENV/bin/crmkit" demo --if-missing
  log "making the first forecast snapshot if there is none (about a minute)"
  "$VENV/bin/crmkit" forecast --if-missing --horizon 6 --draws 1000 >/dev/null
  "$VENV/bin/crmkit" summary
  exec "$VENV/bin/crmkit" app "$@"
}

cmd_test() {
  setup_venv test
  apt_install chromium
  STARTED_PG=""
  start_postgres
  trap stop_postgres EXIT
  export CRMKIT_TEST_PG_URL="${CRMKIT_TEST_PG_URL:-$PG_URL_DEFAULT}"
  export CRMKIT_CHROMIUM="${CRMKIT_CHROMIUM:-/usr/bin/chromium}"
  log "lint: ruff"
  "$VENV/bin/ruff" check crmkit tests benchmarks scripts
  "$VENV/bin/ruff" format --check crmkit tests benchmarks scripts
  log "tests: pytest"
  "$VENV/bin/python" -m pytest -n 2 --dist loadgroup "$@"
  if [ $# -eq 0 ] || [ "${CRMKIT_SMOKE:-}" = 1 ]; then  # the whole suite (CI), or asked for
    log "smoke test: the wheel in a fresh environment, run from a temporary folder"
    "$PY" scripts/smoke_install.py
  fi
}

case "${1:-}" in
  app) shift; cmd_app "$@" ;;
  test) shift; cmd_test "$@" ;;
  *) echo "usage: bash dev.sh app|test [args]" >&2; exit 2 ;;
esac
