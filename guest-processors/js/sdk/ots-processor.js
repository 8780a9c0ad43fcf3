// The JavaScript guest SDK: write a Tablestore record processor in JavaScript, built into a
// WebAssembly component with componentize-js (see docs/guests.md).
//
// It wraps the component model's JavaScript bindings of `wit/` so a guest works with plain
// values: options as an object, column names instead of name ids, values as BigInt (integers),
// number (doubles), boolean, string and Uint8Array (binary), and actions as KEEP, DROP,
// replace(...) and keepIn(...):
//
//   import { exportProcessor, KEEP, DROP } from '../sdk/ots-processor.js';
//
//   class DropDeletes {
//     process(batch) {
//       return batch.records.map((r) => (r.kind === 'delete' ? DROP : KEEP));
//     }
//   }
//
//   export const { init, process } = exportProcessor(DropDeletes);
//
// A processor class takes the options in its constructor (throw an OptionsError to refuse them:
// the load fails with its message) and may set `readsKey`, `readsColumns` (undefined, ALL or a
// list of names) and `targetTable` there. Whatever it does not read is still replicated in full
// when a record is kept.

import hostLog from 'log';

/** `readsColumns` value: every column. */
export const ALL = 'all';
/** `process` may return this (or undefined): every record kept, nothing renamed. */
export const ALL_KEPT = undefined;

/** Thrown by a constructor for options it refuses. */
export class OptionsError extends Error {}

/** Thrown by `process` to fail the batch: `action` is 'retry' (transient), 'skip' (set record
 * `record` aside in the dead-letter sink and go on) or 'stop'. */
export class Failure extends Error {
  constructor(message, { record, action = 'stop' } = {}) {
    super(message);
    if (!['retry', 'skip', 'stop'].includes(action)) {
      throw new Error(`unknown failure action ${action} (retry, skip or stop)`);
    }
    this.record = record;
    this.action = action;
  }
}

/** The options of the replication config, with checked accessors whose errors name the option. */
export class Options {
  constructor(values) {
    this.values = values;
  }
  has(key) {
    return Object.hasOwn(this.values, key);
  }
  only(...allowed) {
    const unknown = Object.keys(this.values).filter((k) => !allowed.includes(k)).sort();
    if (unknown.length > 0) {
      const known = allowed.map((k) => `\`${k}\``).join(', ') || 'none';
      throw new OptionsError(`unknown option \`${unknown[0]}\` (known options: ${known})`);
    }
  }
  typed(key, check, what, fallback) {
    if (!this.has(key)) return fallback;
    const value = this.values[key];
    if (!check(value)) throw new OptionsError(`option \`${key}\` must be ${what}`);
    return value;
  }
  string(key, fallback) {
    return this.typed(key, (v) => typeof v === 'string', 'a string', fallback);
  }
  bool(key, fallback = false) {
    return this.typed(key, (v) => typeof v === 'boolean', 'a boolean', fallback);
  }
  strings(key, fallback = []) {
    return this.typed(key, (v) => Array.isArray(v) && v.every((s) => typeof s === 'string'),
      'a list of strings', fallback);
  }
  stringMap(key, fallback = {}) {
    return this.typed(key, (v) => v !== null && typeof v === 'object' && !Array.isArray(v)
      && Object.values(v).every((s) => typeof s === 'string'), 'an object of strings', fallback);
  }
}

/** One attribute column of a record or change. `op` is 'put', 'delete-one-version',
 * 'delete-all-versions' or 'increment'; `value` is the put value or the increment (a BigInt). */
export class Column {
  constructor(name, value, timestamp, op = 'put') {
    this.name = name;
    this.op = op;
    this.value = value;
    this.timestamp = timestamp;
  }
}

/** A row change: `kind` is 'put', 'update' or 'delete'; `key` is a Map from the source table's
 * key columns, in schema order, to their values; `columns` are Columns. */
export class Change {
  constructor(kind, key, columns = []) {
    this.kind = kind;
    this.key = key;
    this.columns = columns;
  }
}

/** One record of a batch: `kind`, `key` (a Map, empty unless the processor reads keys),
 * `columns` (the ones it reads) and `sequence` ({epoch, timestamp (µs, BigInt), rowIndex} for
 * stream records, undefined for full-data rows). */
export class Record {
  constructor(raw, names) {
    this.kind = raw.kind;
    this.key = new Map((raw.primaryKey ?? []).map((k) => [names[k.name], plain(k.value)]));
    this.columns = (raw.columns ?? []).map((c) => new Column(
      names[c.name], c.op.tag === 'put' ? plain(c.op.val) : c.op.val, c.timestamp, c.op.tag));
    this.sequence = raw.sequence;
  }

  /** The value the record writes to column `name` (its last put), or undefined. */
  written(name) {
    for (let i = this.columns.length - 1; i >= 0; i--) {
      const c = this.columns[i];
      if (c.name === name && c.op === 'put') return c.value;
    }
    return undefined;
  }

  /** The record's own change plus `extra` columns: what `replace` takes. It holds what the
   * processor reads, so a processor rewriting records reads the key and every column. */
  change(extra = []) {
    return new Change(this.kind, new Map(this.key), [...this.columns, ...extra]);
  }
}

/** A WIT value as a plain one; binary arrives as an array of bytes and becomes a Uint8Array. */
function plain(v) {
  return v.tag === 'binary' && !(v.val instanceof Uint8Array) ? Uint8Array.from(v.val) : v.val;
}

/** Records of one channel, in log order, with names resolved. */
export class Batch {
  constructor(raw) {
    this.table = raw.table;
    this.names = raw.names;
    this.keyNames = raw.keyNames.map((i) => raw.names[i]);
    this.records = raw.records.map((r) => new Record(r, raw.names));
  }
}

/** Write the record's own change to where it was going. */
export const KEEP = Object.freeze({ tag: 'keep' });
/** Write nothing for the record. */
export const DROP = Object.freeze({ tag: 'drop' });

/** Write these changes instead of the record (possibly none). Each is a Change for where the
 * record was going, or a [table, Change] pair naming a table the config lists. */
export function replace(...changes) {
  return { tag: 'replace', changes };
}

/** Write the record's own change to each of these tables (undefined: where it was going). */
export function keepIn(...tables) {
  return Object.freeze({ tag: 'keep-in', val: tables });
}

/** What `process` returns when it renames columns: `actions` (ALL_KEPT or one per record) and
 * `renames`, an object from a column name to its new name, or to null to remove the column. */
export class Output {
  constructor(actions = ALL_KEPT, renames = {}) {
    this.actions = actions;
    this.renames = renames;
  }
}

/** Logs through the host (rate-limited there): level 'debug', 'info', 'warn' or 'error'.
 * console.log and console.error work too: stdout is logged at info, stderr at warn. */
export function log(level, message) {
  hostLog(level, message);
}

/** The component's `init` and `process` exports, running `ProcessorClass`. An exception other
 * than OptionsError or Failure is uncaught: the guest traps and the host replaces its instance. */
export function exportProcessor(ProcessorClass) {
  let processor;
  function init(options) {
    let parsed;
    try {
      parsed = options ? JSON.parse(options) : {};
    } catch (e) {
      throw `the options are not JSON: ${e.message}`;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw 'the options must be a JSON object';
    }
    try {
      processor = new ProcessorClass(new Options(parsed));
    } catch (e) {
      if (e instanceof OptionsError) throw e.message;
      trap(e);
    }
    return info(processor);
  }
  function process(batch) {
    if (processor === undefined) {
      throw { record: undefined, action: 'stop', message: 'process called before init' };
    }
    try {
      return output(batch.names, processor.process(new Batch(batch)));
    } catch (e) {
      if (e instanceof Failure) throw { record: e.record, action: e.action, message: e.message };
      trap(e);
    }
  }
  return { init, process };
}

/** Ends the call with a trap: the component model's JavaScript bindings turn any value thrown
 * from an export into its `err`, so a bug would otherwise pass for a failure the guest chose.
 * An `err` that is not the declared type fails to lower, and that traps. */
function trap(error) {
  console.error(`uncaught exception: ${error}\n${error?.stack ?? ''}`);
  throw Symbol('trap');
}

function info(processor) {
  const columns = processor.readsColumns;
  let interest;
  if (columns === undefined) interest = { tag: 'none' };
  else if (columns === ALL) interest = { tag: 'all' };
  else if (Array.isArray(columns) && columns.every((c) => typeof c === 'string')) {
    interest = { tag: 'named', val: [...columns] };
  } else throw 'readsColumns must be undefined, ALL or a list of column names';
  return {
    interest: { primaryKey: Boolean(processor.readsKey), columns: interest },
    targetTable: processor.targetTable,
  };
}

function output(batchNames, result) {
  if (!(result instanceof Output)) result = new Output(result);
  const names = new Names(batchNames);
  const outcome = result.actions === ALL_KEPT
    ? { tag: 'all-kept' }
    : { tag: 'actions', val: result.actions.map((a) => action(a, names)) };
  const nameChanges = [];
  for (const [old, renamed] of Object.entries(result.renames)) {
    const name = names.known.get(old);
    if (name !== undefined) nameChanges.push({ name, newName: renamed ?? undefined });
  }
  return { outcome, nameChanges, addedNames: names.added };
}

function action(a, names) {
  if (a === KEEP || a === DROP || a?.tag === 'keep-in') return a;
  if (a?.tag === 'replace') {
    return {
      tag: 'replace',
      val: a.changes.map((c) => {
        const [table, change] = Array.isArray(c) ? c : [undefined, c];
        return { table, change: rowChange(change, names) };
      }),
    };
  }
  throw new TypeError(`an action must be KEEP, DROP, replace(...) or keepIn(...), not ${a}`);
}

function rowChange(change, names) {
  return {
    kind: change.kind,
    primaryKey: [...change.key].map(([n, v]) => ({ name: names.id(n), value: value(v) })),
    columns: change.columns.map((c) => ({
      name: names.id(c.name),
      op: c.op === 'put' ? { tag: 'put', val: value(c.value) }
        : c.op === 'increment' ? { tag: 'increment', val: BigInt(c.value) }
          : { tag: c.op },
      timestamp: c.timestamp,
    })),
  };
}

function value(v) {
  switch (typeof v) {
    case 'bigint': return { tag: 'integer', val: v };
    case 'number': return { tag: 'double', val: v };
    case 'boolean': return { tag: 'boolean', val: v };
    case 'string': return { tag: 'string', val: v };
    default:
      if (v instanceof Uint8Array) return { tag: 'binary', val: [...v] };
      throw new TypeError(`a column value must be a BigInt, number, boolean, string or Uint8Array, not ${v}`);
  }
}

/** The batch's name table and the names replacements add past its end. */
class Names {
  constructor(names) {
    this.known = new Map(names.map((n, i) => [n, i]));
    this.added = [];
  }
  id(name) {
    let id = this.known.get(name);
    if (id === undefined) {
      id = this.known.size;
      this.known.set(name, id);
      this.added.push(name);
    }
    return id;
  }
}
