import type { Change } from './change.js';
import type { Engine } from './engine.js';
import type { Side } from './stage.js';

/**
 * The changes of one open transaction (or savepoint), held until it ends: on commit they merge
 * into the enclosing transaction or, at the outermost level, go to the engine; on rollback
 * they are dropped. The outermost scope also holds the engine's write gate from its first
 * write to its end, so a cutover never flips authority in the middle of a transaction.
 * Adapters open one per ORM transaction and call `commit`/`rollback` when the ORM says so.
 *
 * @example
 * const scope = new ChangeScope(engine, parentScope)
 * await scope.enterGate(); scope.hold('source', changes)
 * await scope.commit() // or scope.rollback()
 */
export class ChangeScope {
  readonly changes: Record<Side, Change[]> = { source: [], target: [] };
  private gate: Promise<() => void> | undefined;
  private done = false;

  constructor(
    private readonly engine: Engine,
    readonly parent?: ChangeScope,
  ) {}

  get root(): ChangeScope {
    let s: ChangeScope = this;
    while (s.parent) s = s.parent;
    return s;
  }

  /** Waits at the engine's write gate once per outermost transaction. */
  async enterGate(): Promise<void> {
    const root = this.root;
    root.gate ??= this.engine.beginWrite();
    await root.gate;
  }

  hold(from: Side, changes: readonly Change[]): void {
    this.changes[from].push(...changes);
  }

  /**
   * The transaction committed. `only` releases one side's changes (the other side's
   * transaction failed after the authoritative one had committed).
   */
  async commit(only?: Side): Promise<void> {
    if (this.done) return;
    this.done = true;
    const sides: Side[] = only ? [only] : ['source', 'target'];
    if (this.parent) {
      for (const side of sides) this.parent.hold(side, this.changes[side]);
      return;
    }
    try {
      await Promise.all(sides.map((side) => this.engine.capture(this.changes[side], side)));
    } finally {
      this.leaveGate();
    }
  }

  rollback(): void {
    if (this.done) return;
    this.done = true;
    if (!this.parent) this.leaveGate();
  }

  private leaveGate(): void {
    void this.gate?.then((leave) => leave());
    this.gate = undefined;
  }
}
