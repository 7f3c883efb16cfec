/** What the message demo's producer replicas share: the message for a paid order, and when its check-back runs. */
import type { PrepareMessageOptions } from '../../src/index.js';

/** How long after its prepare a message nobody submitted is asked about (short, for the demo). */
export const CHECK_AFTER_MS = 3_000;

/** "order N was paid": the ledger credits it, the mailer sends the receipt. */
export function orderPaid(order: number): PrepareMessageOptions {
  return {
    name: 'order paid',
    consumers: [
      { service: 'ledger', resource: 'credit', payload: { order, amount: 30 } },
      { service: 'mailer', resource: 'receipt', payload: { order, to: `customer-${order}@example.com` } },
    ],
  };
}
