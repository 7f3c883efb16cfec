/**
 * `npm run demo`: TCC transfers between accounts A, B and C in three services (first A and B pay C
 * 80 together) on a local etcd that the demo starts itself.
 *
 *   1. A pays C 30 and B pays C 50 in one transaction: Try freezes on A and B and announces the
 *      credits on C, Confirm moves the money → COMMITTED (scenarios/commit.ts).
 *   2. A pays C 40 and B pays C 60, but B has only 50 left: B's Try fails, the transaction rolls back
 *      and A's freeze is released → ROLLED_BACK (scenarios/rollback.ts).
 *   3. A pays C 25 while bank-c runs two replicas: the leader replica is killed with SIGKILL in the
 *      middle of its confirm, the standby takes over the lease and confirms → COMMITTED after
 *      failover (scenarios/failover.ts).
 *
 * Exits 0 only when every scenario ended as expected and money is conserved (checks.ts). Every
 * process it started (three account services, a standby replica, etcd: cluster.ts) is stopped on
 * exit, on errors and on Ctrl-C (lifecycle.ts).
 *
 * `npm run demo -- go` plays the same transfers with bank-b written in Go (demo/go-bank, on the Go
 * client beside two sidecars), the SIGKILL hitting its leader sidecar (scenarios/go.ts); it says so
 * in one line and exits 0 when Go is not installed. `-- saga` and `-- message` are the other
 * patterns (scenarios/saga.ts, scenarios/message.ts).
 *
 * `npm run demo -- --keep` then keeps etcd and the services running for the operator's CLI
 * (docs/cli.md): it locks ledger C for audit and makes one more transfer, whose credit confirm on
 * bank-c fails until the branch is parked (the services park after 5 attempts in this
 * mode), leaves another transfer TRYING with a 1 h timeout, prints the `txloop` commands to explore
 * and repair them (`curl -s -X POST …/audit/unlock` on bank-c lifts the lock), reports what happens to
 * those two transfers, and stops everything on Ctrl-C (scenarios/keep.ts). That Ctrl-C is its normal
 * end: the demo then exits 0 when every check passed (npm itself still reports 130 for a Ctrl-C).
 */
import { relative } from 'node:path';
import { parseArgs } from 'node:util';
import { finalCheck, problems } from './checks.js';
import { logDir, startCluster } from './cluster.js';
import { cleanup, exitCode, handleSignals, interruptedBy, startWatchdog, stopWatchdog } from './lifecycle.js';
import { say, showBalances } from './print.js';
import { commitScenario } from './scenarios/commit.js';
import { failoverScenario } from './scenarios/failover.js';
import { keepForOperators } from './scenarios/keep.js';
import { rollbackScenario } from './scenarios/rollback.js';
import { goScenario } from './scenarios/go.js';
import { messageScenario } from './scenarios/message.js';
import { sagaScenario } from './scenarios/saga.js';

const WATCHDOG_MS = 80_000;

const USAGE = 'usage: npm run demo [-- --keep | -- saga | -- message | -- go]\n  (none)  TCC transfers between three account services\n  --keep  after the checks, keep etcd and the services running with a parked and a TRYING transfer\n          for the txloop CLI (docs/cli.md); Ctrl-C stops everything\n  saga    a checkout saga across three services whose last step fails: compensated in reverse\n  message an "order paid" 2-phase message to two consumers, one down for a while; a killed producer\'s\n          prepares settled by the check-back from PostgreSQL\n  go      the TCC transfers with bank-b a Go program beside its sidecar (needs Go 1.19+); its leader\n          sidecar SIGKILLed in the middle of the Go confirm\n';
const DEMOS = ['saga', 'message', 'go'] as const;
let keep = false;
let which: 'tcc' | (typeof DEMOS)[number] = 'tcc';
try {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { keep: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const asked = DEMOS.find((d) => d === positionals[0]);
  if (positionals.length > 1 || (positionals[0] !== undefined && !asked)) throw new Error(`unknown demo ${JSON.stringify(positionals.join(' '))}: use saga, message or go, or nothing for TCC`);
  if (asked) which = asked;
  if (which !== 'tcc' && values.keep) throw new Error('--keep is for the TCC demo');
  keep = values.keep;
} catch (err) {
  process.stderr.write(`demo: ${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
handleSignals();

async function main(): Promise<number> {
  say('txloop demo: TCC account transfers across three services, no coordinator');
  say('  (etcd is the only shared component; each service confirms/cancels its own branches)');
  say();
  const cluster = await startCluster({ keep });
  if (!cluster) return 1;
  await showBalances(cluster.store, 'opening balances');

  const v1 = await commitScenario(cluster);
  const v2 = await rollbackScenario(cluster);
  const { view: v3, survivor } = await failoverScenario(cluster);

  const code = await finalCheck(cluster.store, `1: ${v1.status}, 2: ${v2.status}, 3: ${v3.status} after failover`);
  if (code !== 0 || !keep) return code;
  return keepForOperators({ ...cluster, bankC: survivor });
}

startWatchdog(WATCHDOG_MS);
let code = 1;
try {
  code = which === 'saga' ? await sagaScenario() : which === 'message' ? await messageScenario() : which === 'go' ? await goScenario() : await main();
} catch (err) {
  code = 1;
  // After Ctrl-C the steps fail because their processes are gone; that is not news.
  if (!interruptedBy()) {
    say();
    say(`FAILED: ${(err as Error).stack ?? String(err)}`);
    for (const p of problems) say(`  - ${p}`);
    say(`service logs: ${relative(process.cwd(), logDir) || logDir}/`);
  }
} finally {
  await cleanup();
  stopWatchdog();
}
process.exit(exitCode(code));
