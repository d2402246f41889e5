/** A binary min-heap: `before(a, b)` says a comes out first. */
export class MinHeap<T> {
  private items: T[] = [];

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const items = this.items;
    let i = items.push(item) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(item, items[parent]!)) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = item;
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0) {
      items[0] = last!;
      this.siftDown(0);
    }
    return top;
  }

  /** Keeps the items `keep` accepts, in O(n). */
  retain(keep: (item: T) => boolean): void {
    this.items = this.items.filter(keep);
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  private siftDown(start: number): void {
    const items = this.items;
    const item = items[start]!;
    let i = start;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= items.length) break;
      if (child + 1 < items.length && this.before(items[child + 1]!, items[child]!)) child++;
      if (!this.before(items[child]!, item)) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = item;
  }
}

/** What a `RecordHeap` holds: a record (by id and owner) at a key taken when the entry was made. */
export interface HeapEntry {
  readonly id: string;
  readonly ownerId: string;
}

/** Past this many stale entries more than live ones, a heap is rebuilt: it never holds much more than twice its live entries. */
const SLACK = 64;

/**
 * Records in one state (queued, or sending under a lease) ordered by a key, in one heap for everyone and one per
 * owner, so a claim with or without an owner reads only the top of one heap. Deletion is lazy: a record leaving
 * the state is forgotten in `live`, and its entries stay in the heaps until they reach the top (skipped there) or
 * a rebuild drops them. An entry counts only while it is its record's current one in `live`, so a record that
 * leaves the state and comes back (a retry) is never found twice.
 */
export class RecordHeap<E extends HeapEntry> {
  private readonly live = new Map<string, E>();
  private readonly all: MinHeap<E>;
  private readonly owners = new Map<string, { heap: MinHeap<E>; live: number }>();

  constructor(private readonly before: (a: E, b: E) => boolean) {
    this.all = new MinHeap(before);
  }

  /** The record's current entry, if it has one. */
  entry(id: string): E | undefined {
    return this.live.get(id);
  }

  /** Makes `entry` its record's one current entry, replacing any earlier one. */
  add(entry: E): void {
    this.remove(entry.id);
    this.live.set(entry.id, entry);
    let owner = this.owners.get(entry.ownerId);
    if (!owner) this.owners.set(entry.ownerId, (owner = { heap: new MinHeap(this.before), live: 0 }));
    owner.live += 1;
    owner.heap.push(entry);
    this.all.push(entry);
    this.compact(owner.heap, owner.live);
    this.compact(this.all, this.live.size);
  }

  remove(id: string): void {
    const entry = this.live.get(id);
    if (!entry) return;
    this.live.delete(id);
    const owner = this.owners.get(entry.ownerId)!;
    owner.live -= 1;
    // Every entry left in an owner's heap is stale once it has no live one: drop it whole.
    if (owner.live === 0) this.owners.delete(entry.ownerId);
    else this.compact(owner.heap, owner.live);
    this.compact(this.all, this.live.size);
  }

  /** The first live entry (of `ownerId`, or of anyone), stale entries above it dropped on the way. */
  first(ownerId?: string): E | undefined {
    const heap = ownerId === undefined ? this.all : this.owners.get(ownerId)?.heap;
    if (!heap) return undefined;
    for (let top = heap.peek(); top !== undefined; top = heap.peek()) {
      if (this.live.get(top.id) === top) return top;
      heap.pop();
    }
    return undefined;
  }

  private compact(heap: MinHeap<E>, live: number): void {
    if (heap.size > 2 * live + SLACK) heap.retain((e) => this.live.get(e.id) === e);
  }
}
