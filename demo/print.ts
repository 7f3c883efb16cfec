/**
 * The demo's output: timestamped notes, tables of transactions, branches and balances. Everything
 * the demo prints goes through here.
 */
import { renderRows, type Cell } from '../src/table.js';
import type { BranchView, TransactionView } from '../src/index.js';
import { OPENING_BALANCES, available, type Account, type AccountStore } from './accounts.js';

const started = Date.now();

// `npm run demo | tee log` and Ctrl-C: the same SIGINT ends tee, and our next write to its pipe fails
// with EPIPE, which Node raises as an 'error' event on the stream; unhandled, that is a crash that
// skips the cleanup (services, etcd and its data dir left behind). Whoever read the output is gone,
// so the demo stops writing to that stream and carries on stopping what it started.
const gone = new Set<NodeJS.WriteStream>();
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => gone.add(stream));
const write = (stream: NodeJS.WriteStream, text: string): void => {
  if (!gone.has(stream) && !stream.destroyed) stream.write(text);
};

/** A line on stderr (printed even after `mute()`). */
export const warn = (line: string): void => write(process.stderr, `${line}\n`);

/** Set by Ctrl-C / SIGTERM (demo/lifecycle.ts): the demo stops everything and prints nothing more. */
let muted = false;
export function mute(): void {
  muted = true;
}

export const say = (line = ''): void => {
  if (!muted) write(process.stdout, `${line}\n`);
};
export const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)}s`;
export const note = (line: string): void => say(`  [${elapsed().padStart(5)}] ${line}`);

/** Prints rows as columns two spaces apart; columns listed in `right` are right-aligned (numbers). */
export function table(rows: Cell[][], indent = '    ', right: number[] = []): void {
  for (const line of renderRows(rows, { gap: 2, alignRight: right })) say(indent + line);
}

/** Shell commands, each followed by its `# comment` (if any), the comments lined up three spaces after the longest command. */
export function showCommands(cmds: [command: string, comment: string][]): void {
  for (const line of renderRows(cmds.map(([c, why]) => (why ? [c, `# ${why}`] : [c])))) say(`    ${line}`);
}

/** Human description of each branch, keyed by branch id, filled in as the Try calls return. */
const legNames = new Map<string, string>();
export function nameLeg(branchId: string, label: string): void {
  legNames.set(branchId, label);
}

function phase2Text(v: TransactionView, b: BranchView): string {
  if (!b.action) {
    // The decision wrote this branch's order; its service has not recorded an attempt yet.
    if (v.status === 'COMMITTING') return `confirm ordered, not yet recorded by ${b.owner}'s leader`;
    if (v.status === 'ROLLING_BACK') return `cancel ordered, not yet recorded by ${b.owner}'s leader`;
    return b.tryState === 'SUCCEEDED' ? 'prepared, waiting for the decision' : '-';
  }
  const tries = `${b.attempts} attempt${b.attempts === 1 ? '' : 's'}`;
  const empty = b.action === 'cancel' && b.tryState !== 'SUCCEEDED' ? ' (empty rollback)' : '';
  const err = b.lastError ? `; last error: ${b.lastError}` : '';
  return `${b.action} ${b.state ?? 'ordered'} after ${tries}${empty}${err}`;
}

export function showTransaction(v: TransactionView): void {
  const decision = v.decision ? `decided ${v.decision.outcome} by ${v.decision.by}${v.decision.reason ? ` (${v.decision.reason})` : ''}` : 'undecided';
  say(`    ${v.xid}  "${v.name}"  status ${v.status}  ${decision}`);
  const rows = [['BRANCH', 'OWNER', 'RESOURCE', 'LEG', 'TRY', 'PHASE 2']];
  for (const b of v.branches) rows.push([b.branchId, b.owner, b.resource, legNames.get(b.branchId) ?? '?', b.tryState, phase2Text(v, b)]);
  table(rows, '      ');
}

/** Where the demo reads an account: etcd (AccountStore), or etcd and the Go bank (`demo -- go`). */
export type AccountReader = Pick<AccountStore, 'read'>;

/** Reads every account (from etcd) and prints them with their totals; returns them by name. */
export async function showBalances(store: AccountReader, title: string): Promise<Record<string, Account>> {
  const all: Record<string, Account> = {};
  for (const name of Object.keys(OPENING_BALANCES)) {
    const a = await store.read(name);
    if (!a) throw new Error(`account ${name} vanished`);
    all[name] = a;
  }
  const accts = Object.values(all);
  const sum = (f: (a: Account) => number): number => accts.reduce((s, a) => s + f(a), 0);
  say(`    ${title}`);
  const rows = [['ACCOUNT', 'BALANCE', 'FROZEN', 'INCOMING', 'AVAILABLE']];
  for (const a of accts) rows.push([a.name, String(a.balance), String(a.frozen), String(a.incoming), String(available(a))]);
  rows.push(['total', String(sum((a) => a.balance)), String(sum((a) => a.frozen)), String(sum((a) => a.incoming)), String(sum(available))]);
  table(rows, '      ', [1, 2, 3, 4]);
  return all;
}
