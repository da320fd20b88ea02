import { silentLogger } from '@midflight/core';
import { describe, expect, it } from 'vitest';
import { formatReport, runDemo } from '../src/demo.js';

describe('typeorm-app demo', () => {
  it('migrates PostgreSQL → MariaDB under traffic with no failed request and no difference', async () => {
    const report = await runDemo({
      seedRows: 600,
      users: 6,
      warmupMs: 1_000,
      afterMs: 1_500,
      chunkSize: 100,
      out: null,
      logger: silentLogger,
    });
    expect(report.failures).toEqual({});
    expect(report.failed).toBe(0);
    expect(report.served).toBeGreaterThan(50);
    // Every route was exercised, the `$transaction` ones included.
    expect(Object.keys(report.byRoute).sort()).toEqual([
      'DELETE /items/:id',
      'GET /items/:id',
      'GET /metrics',
      'PATCH /items/:id',
      'POST /items',
      'POST /restock',
    ]);
    expect(report.tables.map((t) => t.table).sort()).toEqual(['item_tags', 'items']);
    for (const t of report.tables) {
      expect({ table: t.table, missing: t.missing, extra: t.extra, different: t.different }).toEqual({
        table: t.table,
        missing: 0,
        extra: 0,
        different: 0,
      });
      expect(t.targetRows).toBe(t.sourceRows);
      expect(t.sourceRows).toBeGreaterThan(0);
    }
    expect(report.differences).toBe(0);
    expect(report.deadLetters).toBe(0);
    expect(report.uncaptured).toBe(0);
    expect(report.ok).toBe(true);
    // The report is counts, routes and table names only: no seeded or generated row value.
    expect(formatReport(report)).not.toMatch(/stock item|restocked|anvil|bolt|seeded|legacy/);
  }, 30_000);
});
