/**
 * An index over the informer's cache: the member keys of each global, so completion and collection
 * look at one transaction's members without scanning the whole cache.
 */
export class MemberIndex {
  private readonly byXid = new Map<string, Set<string>>();

  /** A member key appeared (`present`) or vanished. */
  update(xid: string, key: string, present: boolean): void {
    let set = this.byXid.get(xid);
    if (present) {
      if (!set) this.byXid.set(xid, (set = new Set()));
      set.add(key);
    } else if (set) {
      set.delete(key);
      if (set.size === 0) this.byXid.delete(xid);
    }
  }

  keysOf(xid: string): Iterable<string> {
    return this.byXid.get(xid) ?? [];
  }
}
