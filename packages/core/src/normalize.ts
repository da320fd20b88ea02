/** How a column's values are compared across engines. */
export type CompareKind = 'value' | 'json' | 'timestamp' | 'boolean' | 'fixed-char';

/**
 * Brings a value read from either engine to one comparable form: PostgreSQL and MariaDB
 * disagree on decimals ("1.50" vs "1.5"), big integers (string vs number), booleans
 * (true vs 1), JSON (object vs text, any key order) and fixed-width text (padded or not).
 */
export function normalizeValue(value: unknown, kind: CompareKind = 'value'): unknown {
  if (value === null || value === undefined) return null;
  switch (kind) {
    case 'json':
      return canonicalJson(typeof value === 'string' ? tryParse(value) : value);
    case 'timestamp':
      return toMillis(value);
    case 'boolean':
      if (typeof value === 'boolean') return value ? '1' : '0';
      return String(Number(value) ? 1 : 0);
    case 'fixed-char':
      return typeof value === 'string' ? value.replace(/ +$/, '') : normalizeValue(value);
    default:
      break;
  }
  if (value instanceof Date) return toMillis(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'boolean') return value ? '1' : '0';
  if (typeof value === 'number') return numeric(String(value));
  if (typeof value === 'string') return /^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(value) ? numeric(value) : value;
  if (Buffer.isBuffer(value)) return `\\x${value.toString('hex')}`;
  if (typeof value === 'object') return canonicalJson(value);
  return value;
}

/** Whether two normalised values are the same, allowing one side to have dropped sub-second digits. */
export function sameValue(a: unknown, b: unknown, kind: CompareKind = 'value'): boolean {
  const x = normalizeValue(a, kind);
  const y = normalizeValue(b, kind);
  if (x === y) return true;
  if (typeof x === 'number' && typeof y === 'number') {
    // A column without fractional seconds truncates (MariaDB) or rounds (PostgreSQL) them.
    if (x % 1000 === 0 && Math.abs(y - x) < 1000) return true;
    if (y % 1000 === 0 && Math.abs(x - y) < 1000) return true;
  }
  return false;
}

function numeric(s: string): string {
  if (!/^-?\d+(\.\d+)?$/.test(s)) {
    const n = Number(s);
    return Number.isFinite(n) ? numeric(n.toFixed(20).replace(/0+$/, '')) : s;
  }
  let out = s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
  out = out.replace(/^(-?)0+(?=\d)/, '$1');
  return out === '-0' ? '0' : out;
}

function toMillis(v: unknown): unknown {
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'string') {
    const t = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v : `${v.replace(' ', 'T')}Z`);
    return Number.isNaN(t) ? v : t;
  }
  return v;
}

function tryParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

/** JSON with object keys sorted, so `{"a":1,"b":2}` equals `{"b":2,"a":1}`. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object' && !(v instanceof Date) && !Buffer.isBuffer(v)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  if (typeof v === 'bigint') return v.toString();
  return v;
}

/** Names of the columns whose values differ (an empty list means the rows are equal). */
export function diffRows(
  a: Record<string, unknown>,
  b: Record<string, unknown>,
  columns: Iterable<string>,
  kinds: ReadonlyMap<string, CompareKind> = new Map(),
): string[] {
  const out: string[] = [];
  for (const c of columns) if (!sameValue(a[c], b[c], kinds.get(c))) out.push(c);
  return out;
}
