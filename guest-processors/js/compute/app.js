// `compute`: adds columns computed from the others, each by a JavaScript expression, to every
// row it writes.
//
// Options:
// - `columns` (required): an object from the name of a computed column to its expression, e.g.
//   `{"total": "price * quantity", "label": "`${first} ${last}`"}`. An expression sees the
//   columns the record writes by name (integers as BigInt, doubles as numbers, binary as
//   Uint8Array) and JavaScript's standard library (Math, JSON, String, ...).
//
// Computed columns are added in name order. One is written when its expression's value is a BigInt (an integer column), a
// number (a double), a boolean or a string; `undefined` or `null` writes nothing, and so does an
// expression reading a column the record does not write: an update of other columns leaves
// the computed column as it was. Its version timestamp is the latest among the record's puts,
// so a replayed record writes the very same version. Deletes are kept as they are. An
// expression that throws, or gives another type, fails its record with `skip`: the record goes
// to the dead-letter sink, naming the column and the error.

import { ALL, Column, exportProcessor, Failure, KEEP, OptionsError, replace } from '../sdk/ots-processor.js';

class Compute {
  constructor(options) {
    options.only('columns');
    const columns = options.stringMap('columns');
    if (Object.keys(columns).length === 0) {
      throw new OptionsError('option `columns` must compute at least one column');
    }
    this.readsKey = true;
    this.readsColumns = ALL;
    this.computed = Object.entries(columns).map(([name, expression]) => {
      try {
        return { name, evaluate: compile(expression) };
      } catch (e) {
        throw new OptionsError(`computed column \`${name}\`: ${e.message}`);
      }
    });
  }

  process(batch) {
    return batch.records.map((record, index) => {
      if (record.kind === 'delete') return KEEP;
      const row = {};
      let timestamp;
      for (const c of record.columns) {
        if (c.op !== 'put') continue;
        row[c.name] = c.value;
        if (c.timestamp !== undefined && (timestamp === undefined || c.timestamp > timestamp)) {
          timestamp = c.timestamp;
        }
      }
      const extra = [];
      for (const { name, evaluate } of this.computed) {
        let value;
        try {
          value = evaluate(row);
        } catch (e) {
          throw new Failure(`computed column \`${name}\`: ${e}`, { record: index, action: 'skip' });
        }
        if (value === undefined || value === null) continue;
        if (!['bigint', 'number', 'boolean', 'string'].includes(typeof value)) {
          throw new Failure(`computed column \`${name}\`: the expression gave a ${typeof value}, not a BigInt, number, boolean or string`,
            { record: index, action: 'skip' });
        }
        extra.push(new Column(name, value, timestamp));
      }
      if (extra.length === 0) return KEEP;
      const kept = record.columns.filter((c) => !this.computed.some((k) => k.name === c.name));
      const change = record.change(extra);
      change.columns = [...kept, ...extra];
      return replace(change);
    });
  }
}

// An expression over a row: a name the row has is its column, a global's name (Math, JSON,
// ...) is the global, and any other name is a column the record does not write. Reading one of
// those makes the result `undefined`: an update that does not write an input leaves the
// computed column alone, instead of writing NaN or failing.
function compile(expression) {
  const body = new Function('row', `with (row) { return (${expression}\n); }`);
  return (values) => {
    let complete = true;
    const row = new Proxy(values, {
      has: (target, key) => Object.hasOwn(target, key) || !(key in globalThis),
      get: (target, key) => {
        if (typeof key === 'symbol') return undefined;
        if (!Object.hasOwn(target, key)) complete = false;
        return target[key];
      },
    });
    try {
      const value = body(row);
      return complete ? value : undefined;
    } catch (e) {
      if (complete) throw e;
      return undefined;
    }
  };
}

export const { init, process } = exportProcessor(Compute);
