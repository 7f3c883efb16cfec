/**
 * What the SDK logged during the measured run, counted rather than printed: a pino destination that
 * counts warnings and errors by message (and error text, ids stripped) so the report can say what
 * the SDK complained about without flooding the terminal; `echo` also passes every line through to
 * stderr.
 */
export class LogTally {
  readonly counts = new Map<string, number>();
  constructor(private readonly echo: boolean) {}

  write(line: string): void {
    if (this.echo) process.stderr.write(line);
    try {
      const rec = JSON.parse(line) as { level?: number; msg?: string; err?: unknown };
      if ((rec.level ?? 0) < 40) return;
      const err = typeof rec.err === 'string' ? rec.err : '';
      const key = `${rec.level === 40 ? 'WARN' : 'ERROR'} ${rec.msg ?? ''}${err ? `: ${err.replace(/txloop\/[^\s;]+/g, '<key>')}` : ''}`;
      this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    } catch {
      // not JSON: ignore
    }
  }

  reset(): void {
    this.counts.clear();
  }

  entries(): [string, number][] {
    return [...this.counts.entries()].sort((a, b) => b[1] - a[1]);
  }
}
