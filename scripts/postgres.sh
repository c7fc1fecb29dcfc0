#!/usr/bin/env bash
# Makes sure the PostgreSQL the test suite uses answers: when
# $ROSTER_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test)
# points at this machine and nothing answers, starts the local cluster
# (Debian's pg_ctlcluster, or the service). Prints what it did; fails with
# the fix when no server answers in the end.
set -euo pipefail

url="${ROSTER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
hostport="${url#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"
[ "$port" = "$hostport" ] && port=5432

if ! command -v pg_isready >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL is not installed; installing Debian's postgresql" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    # Debian's cluster trusts local TCP connections only after this; the
    # suite connects as postgres without a password, like CI's server.
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      grep -q "roster-test" "$hba" || printf 'host all all 127.0.0.1/32 trust # roster-test\nhost all all ::1/128 trust # roster-test\n' | cat - "$hba" > "$hba.new" && mv "$hba.new" "$hba"
    done
  else
    echo "pg_isready not found: install PostgreSQL (apt-get install postgresql) or set ROSTER_REQUIRE_POSTGRES=0 to skip the PostgreSQL half" >&2
    exit 1
  fi
fi
# The database the URL names must exist too (a fresh cluster has only
# "postgres"); create it when we may.
# pg_trgm once in the database's public schema, where every test schema's
# migration finds it (migration 0023 builds people search's index with
# it). A test creating it in its own schema would take it away again when
# that schema is dropped. Without it search scans, so failing here is no error.
ensure_trigram() {
  psql "$url" -qAtc 'CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public' >/dev/null 2>&1 || true
}

ensure_database() {
  if psql "$url" -qAtc 'SELECT 1' >/dev/null 2>&1; then ensure_trigram; return 0; fi
  db="${url##*/}"; db="${db%%\?*}"
  if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
    su postgres -c "createdb -p $port '$db'" >/dev/null 2>&1 || true
  fi
  if psql "$url" -qAtc 'SELECT 1' >/dev/null 2>&1; then ensure_trigram; return 0; fi
  echo "PostgreSQL answers on $host:$port but $url does not connect; create the database or fix ROSTER_TEST_POSTGRES_URL" >&2
  return 1
}

if pg_isready -h "$host" -p "$port" -q; then
  ensure_database
  exit $?
fi
case "$host" in
  127.0.0.1|localhost|::1)
    echo "PostgreSQL is not answering on $host:$port; starting the local cluster" >&2
    version="$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)"
    ( [ -n "$version" ] && pg_ctlcluster "$version" main start ) >/dev/null 2>&1 \
      || service postgresql start >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do
      if pg_isready -h "$host" -p "$port" -q; then ensure_database; exit $?; fi
      sleep 1
    done
    ;;
esac
echo "PostgreSQL at $host:$port does not answer. Start it, point ROSTER_TEST_POSTGRES_URL at a server, or set ROSTER_REQUIRE_POSTGRES=0 to skip the PostgreSQL half on purpose." >&2
exit 1
