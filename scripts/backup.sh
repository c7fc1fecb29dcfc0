#!/usr/bin/env bash
# Backs up roster's database to one file, consistently, while roster runs.
#
#   scripts/backup.sh DATABASE OUT
#
# DATABASE is what the config's `database` says: a SQLite file (a path, or
# sqlite://PATH) or a PostgreSQL URL (postgres://...). The default SQLite
# database is <data_dir>/roster.db.
#
# * SQLite: the online backup API (`sqlite3 .backup`, or Python's sqlite3
#   module when the CLI is missing), which copies a consistent snapshot
#   even while roster writes (WAL included), then `PRAGMA integrity_check`
#   on the copy.
# * PostgreSQL: `pg_dump --format=custom` (one consistent snapshot taken in
#   a repeatable-read transaction; other roster processes keep running),
#   without owners or grants so it restores under any role.
#
# The master key is NOT in the backup, on purpose: stored vendor secrets are
# sealed with it, so a backup alone reveals none of them. Back up
# <data_dir>/master.key (or ROSTER_MASTER_KEY) separately, somewhere else,
# and again after every `roster secret rotate`.
#
# Restore with scripts/restore.sh; README "Backup and restore" has the
# procedure and what to check after.
set -euo pipefail

usage() { echo "usage: $0 DATABASE OUT   (DATABASE: a SQLite path or sqlite://PATH, or postgres://URL)" >&2; exit 2; }
[ $# -eq 2 ] || usage
db="$1"; out="$2"
[ -e "$out" ] && { echo "backup: $out exists; refusing to overwrite it" >&2; exit 1; }
tmp="$out.partial.$$"
trap 'rm -f "$tmp"' EXIT

case "$db" in
  postgres://*|postgresql://*)
    command -v pg_dump >/dev/null || { echo "backup: pg_dump not found (apt-get install postgresql-client)" >&2; exit 1; }
    pg_dump --format=custom --no-owner --no-privileges --file="$tmp" "$db"
    ;;
  *)
    path="${db#sqlite://}"; path="${path#sqlite:}"; path="${path%%\?*}"
    [ -f "$path" ] || { echo "backup: no SQLite database at $path" >&2; exit 1; }
    if command -v sqlite3 >/dev/null; then
      sqlite3 "$path" ".timeout 10000" ".backup '$tmp'"
      check="$(sqlite3 "$tmp" 'PRAGMA integrity_check;')"
    else
      python3 - "$path" "$tmp" <<'PY'
import sqlite3, sys
src = sqlite3.connect(sys.argv[1], timeout=10)
dst = sqlite3.connect(sys.argv[2])
src.backup(dst)
dst.close(); src.close()
PY
      check="$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' "$tmp")"
    fi
    [ "$check" = "ok" ] || { echo "backup: the copy failed its integrity check: $check" >&2; exit 1; }
    ;;
esac
sync "$tmp" 2>/dev/null || true
mv "$tmp" "$out"
trap - EXIT
echo "backup: wrote $out ($(wc -c <"$out") bytes). The master key is not in it: back it up separately." >&2
