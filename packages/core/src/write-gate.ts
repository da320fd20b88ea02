/**
 * Holds new writes while a cutover flips write authority. Writes already running finish; new
 * ones wait (they never fail) until the freeze lifts. The cutover acknowledges the freeze only
 * once no write is in flight, so no write straddles the flip.
 */
export class WriteGate {
  private freezeId: string | undefined;
  private inflight = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly idle: Array<() => void> = [];
  /** Longest time a write waited at the gate, in ms (for the cutover report and metrics). */
  maxWaitMs = 0;

  get frozen(): boolean {
    return this.freezeId !== undefined;
  }

  get inFlight(): number {
    return this.inflight;
  }

  /** Enters the gate (waiting while frozen); call the returned function when the write is done. */
  async enter(): Promise<() => void> {
    if (this.freezeId !== undefined) {
      const started = performance.now();
      await new Promise<void>((resolve) => this.waiting.push(resolve));
      this.maxWaitMs = Math.max(this.maxWaitMs, performance.now() - started);
    }
    this.inflight++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inflight--;
      if (this.inflight === 0) for (const fn of this.idle.splice(0)) fn();
    };
  }

  freeze(id: string): void {
    this.freezeId = id;
  }

  /** Resolves when no write is in flight (new ones are held by the freeze). */
  quiesced(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  lift(id?: string): void {
    if (id !== undefined && this.freezeId !== id) return;
    this.freezeId = undefined;
    for (const fn of this.waiting.splice(0)) fn();
  }
}
