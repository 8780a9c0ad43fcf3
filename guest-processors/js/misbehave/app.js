// `misbehave` in JavaScript: breaks the rules on purpose, for the sandbox's containment tests.
//
// Option `mode` picks the misbehaviour; it only happens on batches holding a record whose
// integer key column equals option `key` (other batches are kept as they are). Modes: `loop`
// (never returns), `allocate` (grows memory without bound), `throw` (an uncaught exception),
// `log` (logs 100,000 lines with console.log).

import { ALL_KEPT, exportProcessor } from '../sdk/ots-processor.js';

class Misbehave {
  constructor(options) {
    options.only('mode', 'key');
    this.mode = options.string('mode');
    this.key = BigInt(options.typed('key', Number.isInteger, 'an integer', 0));
    this.readsKey = true;
  }

  process(batch) {
    if (!batch.records.some((r) => [...r.key.values()].includes(this.key))) return ALL_KEPT;
    switch (this.mode) {
      case 'loop':
        for (;;) { /* spin */ }
      case 'allocate': {
        const hoard = [];
        for (;;) hoard.push(new Uint8Array(1 << 20).fill(1));
      }
      case 'throw':
        throw new Error('misbehave: throwing on purpose');
      case 'log':
        for (let n = 0; n < 100000; n++) console.log(`misbehave: line ${n}`);
        return ALL_KEPT;
      default:
        throw new Error(`unknown mode ${this.mode}`);
    }
  }
}

export const { init, process } = exportProcessor(Misbehave);
