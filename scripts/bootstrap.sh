#!/usr/bin/env bash
# Runs before `npm run demo`, `npm test` and `npm run bench`: makes a fresh clone usable with one
# command by installing etcd (when missing) and the npm dependencies (when missing or stale).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-etcd.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "txloop: installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi
