#!/usr/bin/env bash
# Restores a backup made by scripts/backup.sh into a FRESH database.
#
#   scripts/restore.sh BACKUP DATABASE
#
# DATABASE: a SQLite path (or sqlite://PATH) that does not exist yet, or a
# PostgreSQL URL naming an existing, empty database (createdb it first).
# It refuses to write over anything that already holds tables: restoring
# onto a live roster would mix two histories.
#
# Stop every roster process first and point them at the restored database
# only after the checks in README "Backup and restore":
#   roster audit verify   (the hash chain is whole; a witness that saw
#                          events after the backup reports the cut — those
#                          events are lost and the report says so)
#   roster plan           (what changed in the apps since the backup)
# The master key the backup's secrets were sealed with must be in place
# (<data_dir>/master.key or ROSTER_MASTER_KEY).
set -euo pipefail

usage() { echo "usage: $0 BACKUP DATABASE" >&2; exit 2; }
[ $# -eq 2 ] || usage
backup="$1"; db="$2"
[ -f "$backup" ] || { echo "restore: no backup file at $backup" >&2; exit 1; }

case "$db" in
  postgres://*|postgresql://*)
    command -v pg_restore >/dev/null || { echo "restore: pg_restore not found (apt-get install postgresql-client)" >&2; exit 1; }
    tables="$(psql "$db" -qAtX -c "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog','information_schema')")"
    [ "$tables" = "0" ] || { echo "restore: $db already holds $tables table(s); restore into a fresh, empty database" >&2; exit 1; }
    pg_restore --no-owner --no-privileges --exit-on-error --single-transaction --dbname="$db" "$backup"
    ;;
  *)
    path="${db#sqlite://}"; path="${path#sqlite:}"; path="${path%%\?*}"
    [ -e "$path" ] && { echo "restore: $path exists; restore into a path that does not" >&2; exit 1; }
    mkdir -p "$(dirname "$path")"
    tmp="$path.partial.$$"
    trap 'rm -f "$tmp"' EXIT
    cp "$backup" "$tmp"
    if command -v sqlite3 >/dev/null; then
      check="$(sqlite3 "$tmp" 'PRAGMA integrity_check;')"
    else
      check="$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' "$tmp")"
    fi
    [ "$check" = "ok" ] || { echo "restore: $backup is not a sound SQLite database: $check" >&2; exit 1; }
    chmod 600 "$tmp"
    mv "$tmp" "$path"
    trap - EXIT
    ;;
esac
echo "restore: restored $backup into $db. Now run: roster audit verify, then roster plan." >&2
