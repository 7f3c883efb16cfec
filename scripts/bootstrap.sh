#!/usr/bin/env bash
# Runs before `npm run demo`, `npm test` and `npm run bench`: makes a fresh clone usable with one
# command by installing etcd and PostgreSQL (when missing) and the npm dependencies (when missing or stale).
# --build also builds dist/ when it is missing or older than its sources: the demo's --keep mode sends
# people to `npx txloop`, which runs dist/cli/main.js, and `npm ci` no longer builds (the package
# builds in prepack, so that consumers get no install script).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-etcd.sh
bash scripts/ensure-postgres.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "txloop: installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi
if [ "${1:-}" = "--build" ]; then
  # tsc rewrites every output, so main.js's mtime is the last build's.
  if [ ! -f dist/cli/main.js ] || [ -n "$(find src tsconfig.json tsconfig.build.json package.json -newer dist/cli/main.js -print -quit)" ]; then
    echo "txloop: building dist/ (npm run build)" >&2
    npm run build --silent >&2
  fi
fi
