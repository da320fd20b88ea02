import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { RetryJob } from '@midflight/core';

/**
 * A bounded, fsync'd local file of retry jobs that could not reach Redis. Holds keys only (the
 * job payload), one JSON line each. Past the bound nothing more is written and the migration is
 * marked as needing a reconcile — in a marker file, so a restart still knows.
 */
export class Spool {
  private readonly marker: string;

  constructor(
    readonly path: string,
    readonly maxEntries: number,
  ) {
    mkdirSync(dirname(path), { recursive: true });
    this.marker = `${path}.needs-reconcile`;
  }

  /** Appends a job durably; returns false (and marks reconcile) when the spool is full. */
  append(job: RetryJob): boolean {
    if (this.size() >= this.maxEntries) {
      this.markReconcile();
      return false;
    }
    const fd = openSync(this.path, 'a');
    try {
      writeSync(fd, `${JSON.stringify(job)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return true;
  }

  read(): RetryJob[] {
    if (!existsSync(this.path)) return [];
    return readFileSync(this.path, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as RetryJob];
        } catch {
          // A torn last line from a crash mid-write: the key is lost from the spool, so reconcile.
          this.markReconcile();
          return [];
        }
      });
  }

  size(): number {
    return this.read().length;
  }

  /** Empties the spool after its jobs reached Redis. */
  clear(): void {
    const fd = openSync(this.path, 'w');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  get needsReconcile(): boolean {
    return existsSync(this.marker);
  }

  markReconcile(): void {
    if (this.needsReconcile) return;
    const fd = openSync(this.marker, 'w');
    try {
      writeSync(fd, `${new Date().toISOString()}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}
