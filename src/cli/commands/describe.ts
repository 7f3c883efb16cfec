/**
 * `txloop describe gtx XID` / `describe branch XID/BRANCHID`: kubectl describe layout: fields, every
 * branch with attempts, errors, next retry and resolution, then Events (the merged timeline).
 */
import { Command } from 'commander';
import { BranchNotFound } from '../../errors.js';
import type { TimelineEvent } from '../../store/index.js';
import { op } from '../../etcd/index.js';
import { UsageError } from '../errors.js';
import { GlobalStatus, Mode, isTerminal } from '../../states.js';
import { renderRows } from '../../table.js';
import { NONE, age, relative, timestamp, truncateToWidth } from '../format.js';
import { Model, type BranchItem, type GlobalItem } from '../model.js';
import { missingTransaction, ownerOf } from '../lookup.js';
import { parseBranchArg, parseRef, parseXidArg } from '../refs.js';
import { action, eachTarget, type Io } from '../runtime.js';

export function describeCommand(name: string): Command {
  return new Command('describe')
    .description('Show one transaction (or branch) in detail, with its timeline of events')
    .argument('<resource>', 'gtx (globals) or branch (br); or a TYPE/NAME as -o name prints it (gtx/XID, branch/XID/BRANCHID)')
    .argument('[names...]', 'XIDs for gtx, XID/BRANCHID for branch')
    .addHelpText(
      'after',
      `\nExamples:\n  ${name} describe gtx orders.m3x9k2a7f1c0q8wz\n  ${name} describe branch orders.m3x9k2a7f1c0q8wz/k3j4h5g6f7d8\n  ${name} describe $(${name} get gtx --status parked -o name)`,
    )
    .action(
      action(async (io, args) => {
        const first = args[0] as string;
        const names = (args[1] as string[] | undefined) ?? [];
        let refs: ({ xid: string } | { xid: string; branchId: string })[];
        if (first.includes('/')) {
          // kubectl's `describe TYPE/NAME…`: gtx/XID and branch/XID/BRANCHID, as -o name prints them.
          refs = [first, ...names].map((n) => {
            const r = parseRef(n);
            return r.kind === 'gtx' ? { xid: r.xid } : { xid: r.xid, branchId: r.branchId };
          });
        } else {
          const resource = first.toLowerCase();
          const isGtx = ['gtx', 'gtxs', 'global', 'globals', 'transaction', 'transactions', 'tx'].includes(resource);
          const isBranch = ['branch', 'branches', 'br'].includes(resource);
          if (!isGtx && !isBranch) throw new UsageError(`cannot describe ${JSON.stringify(first)}: use gtx or branch, or TYPE/NAME (gtx/XID, branch/XID/BRANCHID)`);
          if (names.length === 0) throw new UsageError(`missing required argument 'names': ${isGtx ? 'one or more XIDs' : 'one or more XID/BRANCHID'} after ${first}`);
          refs = names.map((n) => (isGtx ? { xid: parseXidArg(n) } : parseBranchArg(n)));
        }
        // Each one as soon as it is read, a blank line between; one not found does not hide the others.
        let printed = 0;
        await eachTarget(io, refs, async (ref) => {
          const text = 'branchId' in ref ? await describeBranch(io, ref.xid, ref.branchId) : await describeGlobal(io, ref.xid);
          io.out(printed++ > 0 ? `\n${text}` : text);
        });
      }),
    );
}

/** Reads the global, its members, and every branch and order they point to into a Model. */
async function readTransactionModel(io: Io, xid: string): Promise<Model> {
  const { store } = await io.connect();
  const keys = store.keys;
  const first = await store.txn([], [op.get(keys.global(xid)), ...keys.members(xid).map((prefix) => op.getPrefix(prefix))]);
  const model = new Model(io.config.namespace);
  const memberKvs = first.responses.slice(1).flatMap((r) => r.response_range.kvs);
  for (const r of first.responses) for (const kv of r.response_range.kvs) model.set(kv.key.toString(), kv.value);
  const gets = memberKvs.flatMap((kv) => {
    const p = keys.parse(kv.key.toString());
    return p?.kind === 'member' ? [op.get(keys.branch(p.owner, xid, p.branchId)), op.get(keys.order(p.owner, xid, p.branchId))] : [];
  });
  for (let i = 0; i < gets.length; i += 100) {
    const res = await store.txn([], gets.slice(i, i + 100));
    for (const r of res.responses) for (const kv of r.response_range.kvs) model.set(kv.key.toString(), kv.value);
  }
  return model;
}

async function describeGlobal(io: Io, xid: string): Promise<string> {
  const model = await readTransactionModel(io, xid);
  const g = model.global(xid);
  if (!g) throw await missingTransaction((await io.connect()).store, xid);
  io.malformed(model.problems());
  return renderGlobal(g);
}

async function describeBranch(io: Io, xid: string, branchId: string): Promise<string> {
  const { store } = await io.connect();
  const keys = store.keys;
  const owner = await ownerOf(store, { xid, branchId });
  // The branch with its order, and its transaction's global and member, whichever of them exist.
  const res = await store.txn(
    [],
    [op.get(keys.global(xid)), ...keys.memberKeys(xid, owner, branchId).map((k) => op.get(k)), op.get(keys.branch(owner, xid, branchId)), op.get(keys.order(owner, xid, branchId))],
  );
  const model = new Model(io.config.namespace);
  for (const r of res.responses) for (const kv of r.response_range.kvs) model.set(kv.key.toString(), kv.value);
  const b = model.branch(keys.branch(owner, xid, branchId));
  if (!b) throw new BranchNotFound(xid, branchId);
  io.malformed(model.problems());
  const g = model.global(xid);
  const lines = fields([
    ['Name', `${xid}/${branchId}`],
    ['Transaction', `${xid} (${g ? g.status : 'no global record'}${b.member ? '' : ', no member record of this branch'})`],
  ]);
  lines.push(...branchLines(b, '', false));
  lines.push(...eventLines(b.entry.record?.events.map((e) => ({ ...e, from: `${b.owner}/${b.branchId}` })) ?? []));
  return lines.join('\n');
}

function renderGlobal(g: GlobalItem): string {
  const r = g.entry.record;
  const lines: string[] = [];
  if (!r) {
    lines.push(...fields([
      ['Name', g.xid],
      ['Status', `MALFORMED`],
      ['Problem', g.entry.problem ?? NONE],
      ['Key', g.key],
    ]));
  } else {
    const d = r.decision;
    // A message's timeout and deadline are its check-back delay and when its check-back is asked.
    const message = r.mode === Mode.MESSAGE;
    lines.push(...fields([
      ['Name', r.xid],
      ['App', r.app],
      ['Description', r.name || NONE],
      ['Mode', r.mode.toUpperCase()],
      ['Status', r.status + (r.heuristic ? ' (heuristic)' : '')],
      ['Created', timestamp(r.createdAt)],
      [message ? 'Check After' : 'Timeout', `${r.timeoutMs}ms`],
      // Once submitted or discarded, a message's check-back is never asked.
      [message ? 'Check-back At' : 'Deadline', message && r.status !== GlobalStatus.PREPARED ? NONE : timestamp(r.deadline)],
      ['Decision', d ? `${d.outcome} by ${d.by} at ${timestamp(d.at)}` : NONE],
      ['Reason', d?.reason ?? NONE],
      ['Completed', timestamp(r.completedAt)],
      ['Heuristic', String(r.heuristic ?? false)],
    ]));
  }
  lines.push(...fields([['Branches', `${g.done}/${g.total} done${g.parked > 0 ? `, ${g.parked} parked` : ''}`]]));
  if (g.total === 0 && !r?.consumers?.length) lines.push(`  ${NONE}`);
  // Before its submit a message's consumers are in its global; each becomes a branch when it is submitted.
  for (const c of r?.consumers ?? []) {
    lines.push(`  ${c.branchId}:`, ...fields([['Owner', c.service], ['Resource', c.resource], ['Status', r!.status === GlobalStatus.PREPARED ? 'not submitted yet' : 'discarded: never delivered'], ['Payload', truncateToWidth(JSON.stringify(c.payload) ?? 'null', 200)]], '    '));
  }
  for (const b of g.branches) lines.push(...branchLines(b, '  '));
  // A member whose branch record is gone (collected, or never written by its owner).
  const seen = new Set(g.branches.map((b) => b.branchId));
  for (const m of g.members) if (m.record && !seen.has(m.record.branchId)) lines.push(`  ${m.record.branchId}:`, `    Owner:         ${m.record.owner}`, `    Status:        branch record missing (member record says ${m.record.state ?? m.record.tryState})`);
  // A saga's steps whose group was never ordered: they have no branch yet (or never will, once it finished).
  const waiting = (r?.steps ?? []).filter((s) => !seen.has(s.branchId) && !g.members.some((m) => m.record?.branchId === s.branchId));
  if (waiting.length > 0) {
    lines.push(...fields([['Not Started', `${waiting.length} step(s)${r && isTerminal(r.status) ? ', never ran' : ', waiting for the groups before them'}`]]));
    for (const s of waiting) lines.push(`  ${s.branchId}:`, ...fields([['Owner', s.owner], ['Resource', s.resource], ['Group', String(s.group)], ['Status', r && isTerminal(r.status) ? 'NOT_RUN' : 'WAITING']], '    '));
  }
  const events = [
    ...(r?.events.map((e) => ({ ...e, from: r.app })) ?? []),
    ...g.branches.flatMap((b) => b.entry.record?.events.map((e) => ({ ...e, from: `${b.owner}/${b.branchId}` })) ?? []),
  ];
  lines.push(...eventLines(events));
  return lines.join('\n');
}

function branchLines(b: BranchItem, indent: string, header = true): string[] {
  const r = b.entry.record;
  const lines = header ? [`${indent}${b.branchId}:`] : [];
  const i = header ? `${indent}  ` : indent;
  if (!r) {
    lines.push(...fields([['Owner', b.owner], ['Status', 'MALFORMED'], ['Problem', b.entry.problem ?? NONE], ['Key', b.key]], i));
    return lines;
  }
  const p = r.phase2;
  const res = p?.resolution;
  lines.push(
    ...fields(
      [
        ['Owner', r.owner],
        ['Resource', r.resource],
        ...(r.group !== undefined ? ([['Group', String(r.group)]] as [string, string][]) : []),
        ['Status', b.status],
        // A message consumer's branch has no first phase of its own (the producer's local transaction was it).
        ...(r.mode === Mode.MESSAGE ? [] : [[r.mode === Mode.SAGA ? 'Action State' : 'Try', r.tryState + (r.tryError ? `: ${r.tryError}` : '')] as [string, string]]),
        ['Action', p?.action ?? b.order?.record?.action ?? NONE],
        ['Ordered', b.order?.record ? `${b.order.record.action} by ${b.order.record.by} at ${timestamp(b.order.record.decidedAt)}` : NONE],
        ['Attempts', String(p?.attempts ?? 0)],
        ['Last Attempt', timestamp(p?.lastAttemptAt)],
        ['Next Retry', p?.state === 'ACTIVE' && p.nextRetryAt !== undefined ? relative(Math.max(p.nextRetryAt, Date.now())) : NONE],
        ['Last Error', p?.lastError ?? NONE],
        ['Done', timestamp(p?.doneAt)],
        ['Resolution', res ? `${res.as} by ${res.by} at ${timestamp(res.at)}: ${res.reason}` : NONE],
        ['Payload', truncateToWidth(JSON.stringify(r.payload) ?? 'null', 200)],
      ],
      i,
    ),
  );
  return lines;
}

// A message consumer's branch is created by its message's decision (Received, in the same Txn).
const PHASES = [['Began', 'Submitted'], ['Registered', 'Ordered'], ['TrySucceeded', 'TryFailed'], ['Decided', 'Compensating'], ['FannedOut', 'CompensationStarted', 'Received']];
function rank(type: string): number {
  if (type === 'Completed') return PHASES.length + 1;
  const i = PHASES.findIndex((p) => p.includes(type));
  return i >= 0 ? i : PHASES.length;
}

const WARNING_EVENTS = new Set(['AttemptFailed', 'Parked', 'TryFailed', 'LateTry', 'Resolved', 'ActionFailed', 'Compensating']);

function eventLines(events: (TimelineEvent & { from: string })[]): string[] {
  if (events.length === 0) return fields([['Events', NONE]]);
  // Records have millisecond clocks: events of the same millisecond are put in protocol order.
  const sorted = [...events].sort((a, b) => a.at - b.at || rank(a.type) - rank(b.type));
  const now = Date.now();
  const rows = [
    ['Type', 'Reason', 'Age', 'From', 'Message'],
    ['----', '------', '----', '----', '-------'],
    ...sorted.map((e) => [WARNING_EVENTS.has(e.type) || /deadline/.test(e.message) ? 'Warning' : 'Normal', e.type, age(e.at, now), e.from, e.message.replace(/\s+/g, ' ')]),
  ];
  return ['Events:', ...renderRows(rows).map((l) => `  ${l}`)];
}

function fields(pairs: [string, string][], indent = ''): string[] {
  const width = Math.max(15 - indent.length, ...pairs.map(([k]) => k.length + 2));
  return pairs.map(([k, v]) => `${indent}${`${k}:`.padEnd(width)}${v}`);
}
