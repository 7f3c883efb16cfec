#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries (initdb, postgres) are available: txloop/testing's
# startPostgres() starts throwaway servers from them for the SQL branch barrier's tests.
# Order: $TXLOOP_PG_BIN_DIR, Debian's /usr/lib/postgresql/15/bin, any /usr/lib/postgresql/*/bin;
# otherwise, as root with apt-get, install Debian's postgresql-15 (or the release's postgresql).
set -euo pipefail
have_server() { [ -x "$1/initdb" ] && [ -x "$1/postgres" ]; }
found() {
  if [ -n "${TXLOOP_PG_BIN_DIR:-}" ] && have_server "${TXLOOP_PG_BIN_DIR}"; then return 0; fi
  for dir in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if have_server "$dir"; then return 0; fi
  done
  return 1
}
if found; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "txloop: PostgreSQL not found; installing Debian's postgresql-15" >&2
  export DEBIAN_FRONTEND=noninteractive
  # txloop starts its own throwaway servers: the package need not create and start a system cluster.
  if [ ! -e /etc/postgresql-common/createcluster.d/txloop.conf ]; then
    mkdir -p /etc/postgresql-common/createcluster.d
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/txloop.conf
  fi
  # postgresql-15 where the release has it (Debian 12); otherwise the release's own version. The
  # package lists are updated once, and only when installing from them as they are fails (on a
  # fresh machine ensure-etcd.sh has usually just updated them).
  install() { apt-get install -y -qq postgresql-15 >/dev/null 2>&1 || apt-get install -y -qq postgresql >/dev/null 2>&1; }
  if ! install; then
    apt-get update -qq
    apt-get install -y -qq postgresql-15 >/dev/null 2>&1 || apt-get install -y -qq postgresql >/dev/null
  fi
  if found; then exit 0; fi
  echo "txloop: PostgreSQL was installed, but no initdb was found under /usr/lib/postgresql/*/bin" >&2
  exit 1
fi
cat >&2 <<'MSG'
txloop: no PostgreSQL server binaries found (initdb, postgres).
Install them, then run the command again:
  Debian/Ubuntu:  sudo apt-get install postgresql-15   (or: sudo apt-get install postgresql)
  other systems:  install PostgreSQL 12+ and set TXLOOP_PG_BIN_DIR to the directory holding initdb
MSG
exit 1
