#!/usr/bin/env bash
# Makes sure an etcd server binary is available. Tests and the demo start their own etcd from it.
# Order: $TXLOOP_ETCD_BIN, etcd on PATH, /usr/bin/etcd; otherwise install Debian's etcd-server when root.
set -euo pipefail
if [ -n "${TXLOOP_ETCD_BIN:-}" ] && [ -x "${TXLOOP_ETCD_BIN}" ]; then exit 0; fi
if command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "txloop: etcd not found; installing Debian's etcd-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq etcd-server >/dev/null
  exit 0
fi
cat >&2 <<'MSG'
txloop: no etcd server binary found.
Install one, then run the command again:
  Debian/Ubuntu:  sudo apt-get install etcd-server
  other systems:  put an etcd 3.4+ binary on PATH, or set TXLOOP_ETCD_BIN=/path/to/etcd
MSG
exit 1
