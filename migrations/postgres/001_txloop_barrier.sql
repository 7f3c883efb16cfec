-- txloop branch barrier, schema 1: one row per branch, written in the same transaction as the
-- participant's own statements (see "The branch barrier" in txloop's README).
CREATE TABLE IF NOT EXISTS txloop_barrier (
  xid            text        NOT NULL,
  branch_id      text        NOT NULL,
  -- the first phase (TCC try, saga action): applied, or blocked by a rollback that came first
  phase1         text        CHECK (phase1 IN ('try', 'action')),
  phase1_state   text        CHECK (phase1_state IN ('applied', 'blocked')),
  -- the second-phase op applied; empty_rollback: it had nothing to undo
  phase2         text        CHECK (phase2 IN ('confirm', 'cancel', 'compensate')),
  empty_rollback boolean     NOT NULL DEFAULT false,
  -- the highest (fencing token, attempt) that wrote this row: older attempts are refused
  fencing_token  bigint      NOT NULL DEFAULT 0,
  attempt        integer     NOT NULL DEFAULT 0,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (xid, branch_id)
);
CREATE INDEX IF NOT EXISTS txloop_barrier_updated_at ON txloop_barrier (updated_at);
COMMENT ON TABLE txloop_barrier IS 'txloop branch barrier, schema 1';
