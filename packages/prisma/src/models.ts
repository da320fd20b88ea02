import { ConfigError, type Engine, type TablePlan } from '@midflight/core';

/** The part of Prisma's run-time datamodel (`client._runtimeDataModel`) this package reads. */
export interface RuntimeDataModel {
  readonly models: Readonly<Record<string, { readonly dbName: string | null; readonly fields: readonly Field[] }>>;
}
interface Field {
  readonly name: string;
  readonly kind: string;
  readonly type: string;
  readonly dbName?: string | null;
}

/** A Prisma model as the extension needs it: its table, its key fields, its relations. */
export interface ModelInfo {
  readonly name: string;
  readonly table: string;
  /** The migration's plan when the table is migrated. */
  readonly plan: TablePlan | undefined;
  /** Key fields (Prisma names) of the source table, and of the same model on the target client. */
  readonly sourceKey: readonly string[];
  readonly targetKey: readonly string[];
  /** Scalar field → column. */
  readonly columns: ReadonlyMap<string, string>;
  /** Relation field → related model. */
  readonly relations: ReadonlyMap<string, string>;
}

/** Prisma exposes no public reflection API (prisma/prisma#19392); every reflective extension reads this. */
export function datamodelOf(client: unknown, which: string): RuntimeDataModel {
  const dm = (client as { _runtimeDataModel?: RuntimeDataModel } | undefined)?._runtimeDataModel;
  if (!dm?.models) {
    throw new ConfigError('INVALID_OPTION', `${which} is not a Prisma 7 client (no run-time datamodel found)`);
  }
  return dm;
}

/**
 * Maps every Prisma model to its table and checks the migration against the schema: each
 * migrated table needs a model, and each column the migration names (keys, renamed columns,
 * version column) needs a field. Throws `ConfigError` naming the table and column.
 */
export function readModels(engine: Engine, source: RuntimeDataModel, target: RuntimeDataModel | undefined) {
  const byName = new Map<string, ModelInfo>();
  const byTable = new Map<string, ModelInfo>();
  for (const [name, model] of Object.entries(source.models)) {
    const table = model.dbName ?? name;
    const plan = engine.plan(table);
    const columns = columnsOf(model.fields);
    const relations = new Map(model.fields.filter((f) => f.kind === 'object').map((f) => [f.name, f.type]));
    let sourceKey: string[] = [];
    let targetKey: string[] = [];
    if (plan) {
      const named = [...plan.sourceKey, ...Object.keys(plan.config.columns ?? {}), plan.config.versionColumn];
      const fieldOf = new Map([...columns].map(([f, c]) => [c, f]));
      for (const column of named) {
        if (column === undefined || fieldOf.has(column) || plan.config.columns?.[column] === false) continue;
        throw new ConfigError(
          'SOURCE_COLUMN_MISSING',
          `migration "${engine.migration.name}" names column "${table}.${column}", but Prisma model ${name} has no field mapped to it`,
          { table, column },
        );
      }
      sourceKey = plan.sourceKey.map((c) => fieldOf.get(c) as string);
      targetKey = targetKeyOf(engine, plan, name, target) ?? sourceKey;
    }
    const info = { name, table, plan, sourceKey, targetKey, columns, relations };
    byName.set(name, info);
    byTable.set(table, info);
  }
  for (const table of engine.plans.keys()) {
    if (!byTable.has(table)) {
      throw new ConfigError(
        'SOURCE_TABLE_MISSING',
        `migration "${engine.migration.name}" names table "${table}", but no Prisma model maps to it (model name or @@map)`,
        { table },
      );
    }
  }
  return byName;
}

/** The key fields of the model on the target client, which writes use once the target is authoritative. */
function targetKeyOf(engine: Engine, plan: TablePlan, name: string, target: RuntimeDataModel | undefined) {
  const model = target?.models[name];
  if (!target) return undefined;
  if (!model || (model.dbName ?? name) !== plan.target) {
    throw new ConfigError(
      'TARGET_TABLE_MISSING',
      `the target Prisma client has no model ${name} mapped to target table "${plan.target}" (migration "${engine.migration.name}")`,
      { table: plan.source },
    );
  }
  const fieldOf = new Map([...columnsOf(model.fields)].map(([f, c]) => [c, f]));
  return plan.targetKey.map((c) => {
    const f = fieldOf.get(c);
    if (f !== undefined) return f;
    throw new ConfigError(
      'TARGET_KEY_COLUMN_MISSING',
      `target Prisma model ${name} has no field for key column "${plan.target}.${c}"`,
      { table: plan.source, column: c },
    );
  });
}

function columnsOf(fields: readonly Field[]): Map<string, string> {
  return new Map(fields.filter((f) => f.kind !== 'object').map((f) => [f.name, f.dbName ?? f.name]));
}

/** `ItemTag` → `itemTag`: the client property of a model. */
export function delegateName(model: string): string {
  return model.charAt(0).toLowerCase() + model.slice(1);
}
