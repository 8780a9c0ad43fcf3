#!/usr/bin/env node
// Conformance suite: the official Tablestore Node SDK (npm `tablestore`, pinned in package.json),
// unmodified, against a Tablestore-compatible endpoint.
//
// Usage: node sdk_conformance.js ENDPOINT ACCESS_ID ACCESS_SECRET INSTANCE
// (run from this directory, or anywhere `require('tablestore')` resolves to ./node_modules).
//
// The checks say how the real Tablestore service behaves (error codes, HTTP statuses and messages,
// read and write semantics), so they can be pointed at the real service too. Every check prints
// `ok: <what>` or `FAILED: <what>: <detail>`; all checks run, and the exit status is 1 if any
// failed. Each section works on its own freshly created table.
//
// Node SDK specifics this suite relies on or works around:
// - Errors: err.code is the HTTP status (a number), and err.message is the raw protobuf Error body
//   followed by " requestId:..."; the OTS code is found with /OTS\w+/ (see otsError below).
// - maxRetries: 0 (the retry count is a process-wide static in the SDK).
// - Integers must be Long (a JS number is written as DOUBLE); INTEGER values come back as Int64LE.
// - The SDK over-allocates PlainBuffer output and sends trailing 0x00 bytes after the row checksum
//   for INF_MIN/INF_MAX keys, PK_AUTO_INCR, updates with timestamps and one-version deletes; the
//   service accepts such requests, and so must any compatible server.
// - getRow/getRange/batchGetRow always send max_versions (1 when not given), so a time range read
//   here always carries max_versions too. A specific_time read therefore cannot be expressed
//   without max_versions (which the service refuses as "Specific tiemstamp and max versions cannot
//   be given at the same time."); specific_time is covered by the Python suite only.
// - Not in the Node SDK: ComputeSplitPointsBySize (its `computeSplits` is the search-index API),
//   the regex filter, and reading streams. ColumnPaginationFilter, ReturnType AfterModify, stream
//   specifications and the table status are covered here only (the Python SDK lacks them).
'use strict';

const util = require('util');
const TableStore = require('tablestore');

const Long = TableStore.Long;

if (process.argv.length !== 6) {
  console.error('usage: node sdk_conformance.js ENDPOINT ACCESS_ID ACCESS_SECRET INSTANCE');
  process.exit(2);
}
const [ENDPOINT, ACCESS_ID, ACCESS_SECRET, INSTANCE] = process.argv.slice(2);

function newClient(accessKeyId, secretAccessKey) {
  return new TableStore.Client({
    endpoint: ENDPOINT, accessKeyId, secretAccessKey, instancename: INSTANCE,
    maxRetries: 0, httpOptions: { timeout: 20000 },
  });
}
const client = newClient(ACCESS_ID, ACCESS_SECRET);

const RE = TableStore.RowExistenceExpectation;
const IGNORE = new TableStore.Condition(RE.IGNORE, null);
const EXPECT_EXIST = new TableStore.Condition(RE.EXPECT_EXIST, null);
const EXPECT_NOT_EXIST = new TableStore.Condition(RE.EXPECT_NOT_EXIST, null);
const CT = TableStore.ComparatorType;
const LO = TableStore.LogicalOperator;
const RT = TableStore.ReturnType;
const FORWARD = TableStore.Direction.FORWARD;
const BACKWARD = TableStore.Direction.BACKWARD;
const INF_MIN = TableStore.INF_MIN;
const INF_MAX = TableStore.INF_MAX;
const MIB = 1024 * 1024;
const CONDITION_FAILED = 'Condition check failed.';
const RUN_ID = `${process.pid}_${Date.now() % 100000000}`;
const L = (n) => Long.fromNumber(n);

let passed = 0;
const failed = [];

class Mismatch extends Error {}

function oneLine(s, limit = 400) {
  const text = String(s).replace(/[^\x20-\x7e]+/g, ' ').replace(/\s+/g, ' ').trim();
  return text.length <= limit ? text : text.slice(0, limit) + '...';
}

function show(v) {
  return oneLine(util.inspect(v, { depth: 6, breakLength: Infinity, maxStringLength: 60, maxArrayLength: 30 }));
}

// The OTS error inside a Node SDK error: {status, code, message} or null when the body was not an
// OTS protobuf Error (e.g. a plain-text HTTP 413).
function otsError(err) {
  const text = String(err && err.message);
  const m = /(OTS\w+)\x12/.exec(text) || /(OTS\w+)/.exec(text);
  if (!m) return null;
  let rest = text.slice(m.index + m[1].length);
  let message = null;
  if (rest[0] === '\x12') {
    rest = rest.slice(1).replace(/^[\ufffd\x80-\xff]*/, '').slice(1); // varint length (1-2 bytes)
    const end = rest.lastIndexOf(' requestId:');
    message = end >= 0 ? rest.slice(0, end) : rest;
  }
  return { status: err.code, code: m[1], message };
}

function describeErr(err) {
  if (err instanceof Mismatch) return err.message;
  const ots = otsError(err);
  if (ots) return `HTTP ${ots.status} ${ots.code} ${JSON.stringify(ots.message)}`;
  return `${(err && err.name) || 'Error'} code=${err && err.code} ${oneLine(err && err.message, 200)}`;
}

async function check(what, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok: ${what}`);
  } catch (err) {
    failed.push(what);
    const where = err instanceof Mismatch ? '' : (/sdk_conformance\.js:(\d+)/.exec(String(err && err.stack)) || [])[1];
    console.log(`FAILED: ${what}: ${err instanceof Mismatch ? err.message : 'unexpected ' + describeErr(err)}`
      + (where ? ` (line ${where})` : ''));
  }
}

function eq(actual, expected, what = 'value') {
  if (!util.isDeepStrictEqual(actual, expected)) {
    throw new Mismatch(`${what}: expected ${show(expected)}, got ${show(actual)}`);
  }
}

function truthy(cond, detail) {
  if (!cond) throw new Mismatch(detail);
}

// The call must fail with an OTS error of this code and HTTP status (opts: message, prefix,
// codes, statuses).
async function expectError(fn, code, status, opts = {}) {
  let err = null;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  const want = `${opts.codes ? opts.codes.join('|') : code} (HTTP ${opts.statuses ? opts.statuses.join('|') : status})`;
  if (!err) throw new Mismatch(`expected ${want}, but the call succeeded`);
  if (err instanceof Mismatch) throw err;
  const ots = otsError(err);
  if (!ots) throw new Mismatch(`expected ${want}, got a non-OTS error: ${describeErr(err)}`);
  const problems = [];
  if (opts.codes ? !opts.codes.includes(ots.code) : ots.code !== code) problems.push(`code ${ots.code}`);
  if (opts.statuses ? !opts.statuses.includes(ots.status) : ots.status !== status) problems.push(`HTTP ${ots.status}`);
  if (opts.message !== undefined && ots.message !== opts.message) {
    problems.push(`message ${JSON.stringify(ots.message)}, expected ${JSON.stringify(opts.message)}`);
  }
  if (opts.prefix !== undefined && !(ots.message || '').startsWith(opts.prefix)) {
    problems.push(`message ${JSON.stringify(ots.message)}, expected it to start with ${JSON.stringify(opts.prefix)}`);
  }
  if (problems.length) throw new Mismatch(`expected ${want}: got ${problems.join('; ')} [${describeErr(err)}]`);
  return ots;
}

// ---- values and rows ----------------------------------------------------------------------------
// INTEGER values come back as Int64LE: compare them as BigInt, so 42n (INTEGER) differs from 42 (DOUBLE).
function norm(v) {
  if (v === null || v === undefined || Buffer.isBuffer(v)) return v;
  if (typeof v === 'object' && typeof v.toNumber === 'function') return BigInt(v.toString());
  return v;
}
const num = (v) => (v === null || v === undefined ? v : Number(v.toString()));
const present = (row) => (row && row.primaryKey ? row : null);
const keyOf = (row) => (present(row) ? row.primaryKey.map((c) => [c.name, norm(c.value)]) : null);
const cells = (row, column) => (present(row)
  ? (row.attributes || []).filter((a) => column === undefined || a.columnName === column)
    .map((a) => [a.columnName, norm(a.columnValue), num(a.timestamp)])
  : null);
function attrs(row) {
  if (!present(row)) return null;
  const out = {};
  for (const a of row.attributes || []) if (!(a.columnName in out)) out[a.columnName] = norm(a.columnValue);
  return out;
}
const names = (row) => (present(row) ? (row.attributes || []).map((a) => [a.columnName, norm(a.columnValue)]) : null);
const seqs = (rows) => rows.map((r) => Number(norm(r.primaryKey[1].value)));
// A key as the SDK takes it back, from [{name, value}] of a response.
const toKey = (pk) => pk.map((c) => ({ [c.name]: c.value }));

const tableName = (section) => `conf_${section}_${RUN_ID}`;
const now = () => Date.now();

async function createTable(section, name, primaryKey, tableOptions = {}, extra = {}) {
  await check(`${section}: createTable ${name}`, () => client.createTable({
    tableMeta: { tableName: name, primaryKey },
    reservedThroughput: { capacityUnit: { read: 0, write: 0 } },
    tableOptions: Object.assign({ timeToLive: -1, maxVersions: 1 }, tableOptions),
    ...extra,
  }));
}

async function dropTable(name) {
  try { await client.deleteTable({ tableName: name }); } catch (e) { /* cleanup only */ }
}

async function get(t, key, opts = {}) {
  const data = await client.getRow(Object.assign({ tableName: t, primaryKey: key, maxVersions: 1 }, opts));
  return present(data.row);
}

async function put(t, key, columns, condition = IGNORE, extra = {}) {
  return client.putRow(Object.assign({ tableName: t, primaryKey: key, attributeColumns: columns, condition }, extra));
}

async function update(t, key, ops, condition = IGNORE, extra = {}) {
  return client.updateRow(Object.assign({ tableName: t, primaryKey: key, updateOfAttributeColumns: ops, condition },
    extra));
}

async function scan(t, start, end, direction = FORWARD, opts = {}) {
  const r = await client.getRange(Object.assign({
    tableName: t, direction, inclusiveStartPrimaryKey: start, exclusiveEndPrimaryKey: end, maxVersions: 1,
  }, opts));
  return { rows: r.rows, next: r.nextStartPrimaryKey };
}
const nextKey = (next) => (next ? next.map((c) => [c.name, norm(c.value)]) : null);

function single(col, value, comparator, passIfMissing = false, latestVersionOnly = true) {
  return new TableStore.SingleColumnCondition(col, value, comparator, passIfMissing, latestVersionOnly);
}
function composite(op, ...subs) {
  const c = new TableStore.CompositeCondition(op);
  for (const s of subs) c.addSubCondition(s);
  return c;
}

// ================================================================================================
// Tables: create with options and a stream, describe (schema, options, status, stream), update
// options and stream, list, delete, and the errors of each.
// ================================================================================================
async function tables() {
  const s = 'tables';
  const t = tableName(s);
  const schema = [{ name: 'pk', type: 'STRING' }, { name: 'seq', type: 'INTEGER' }];
  await check('tables: createTable with TTL -1, max versions 3, deviation 172800 and a 24 h stream',
    () => client.createTable({
      tableMeta: { tableName: t, primaryKey: schema },
      reservedThroughput: { capacityUnit: { read: 0, write: 0 } },
      tableOptions: { timeToLive: -1, maxVersions: 3, maxTimeDeviation: 172800 },
      streamSpecification: { enableStream: true, expirationTime: 24 },
    }));
  await check('tables: listTable shows the new table',
    async () => truthy((await client.listTable({})).tableNames.includes(t), `${t} not listed`));
  await check('tables: describeTable returns the schema', async () => {
    const d = await client.describeTable({ tableName: t });
    eq(d.tableMeta.tableName, t, 'table name');
    eq(d.tableMeta.primaryKey.map((p) => [p.name, p.type]), [['pk', TableStore.PrimaryKeyType.STRING],
      ['seq', TableStore.PrimaryKeyType.INTEGER]], 'primary key (name, type)');
  });
  await check('tables: describeTable returns the options', async () => {
    const o = (await client.describeTable({ tableName: t })).tableOptions;
    eq([o.timeToLive, o.maxVersions, num(o.deviationCellVersionInSec)], [-1, 3, 172800],
      '[ttl, max versions, deviation]');
  });
  await check('tables: describeTable reports the table ACTIVE (tableStatus 1)',
    async () => eq((await client.describeTable({ tableName: t })).tableStatus, 1, 'tableStatus'));
  await check('tables: describeTable returns the reserved throughput', async () => {
    const cu = (await client.describeTable({ tableName: t })).reservedThroughputDetails.capacityUnit;
    eq([cu.read, cu.write], [0, 0], '[read, write]');
  });
  await check('tables: describeTable returns the stream created with the table', async () => {
    const sd = (await client.describeTable({ tableName: t })).streamDetails;
    truthy(sd, 'no streamDetails');
    eq([sd.enableStream, sd.expirationTime], [true, 24], '[enableStream, expirationTime]');
    truthy(typeof sd.streamId === 'string' && sd.streamId.length > 0, `streamId ${show(sd.streamId)}`);
    truthy(sd.lastEnableTime && num(sd.lastEnableTime) > 0, `lastEnableTime ${show(sd.lastEnableTime)}`);
  });
  await check('tables: updateTable changes max versions and keeps the other options', async () => {
    const u = await client.updateTable({ tableName: t, tableOptions: { maxVersions: 5 } });
    eq([u.tableOptions.maxVersions, u.tableOptions.timeToLive], [5, -1], 'UpdateTable response [max versions, ttl]');
    const o = (await client.describeTable({ tableName: t })).tableOptions;
    eq([o.timeToLive, o.maxVersions, num(o.deviationCellVersionInSec)], [-1, 5, 172800],
      '[ttl, max versions, deviation] after a partial update');
  });
  await check('tables: updateTable sets TTL 86400', async () => {
    await client.updateTable({ tableName: t, tableOptions: { timeToLive: 86400 } });
    eq((await client.describeTable({ tableName: t })).tableOptions.timeToLive, 86400, 'TTL');
  });
  await check('tables: updateTable with TTL 3600 is OTSParameterInvalid (400)',
    () => expectError(() => client.updateTable({ tableName: t, tableOptions: { timeToLive: 3600 } }),
      'OTSParameterInvalid', 400));
  await check('tables: updateTable disables the stream', async () => {
    const u = await client.updateTable({ tableName: t, tableOptions: {}, streamSpecification: { enableStream: false } });
    truthy(!u.streamDetails || u.streamDetails.enableStream === false, `UpdateTable streamDetails ${show(u.streamDetails)}`);
    const sd = (await client.describeTable({ tableName: t })).streamDetails;
    truthy(!sd || sd.enableStream === false, `streamDetails ${show(sd)}`);
  });
  await check('tables: updateTable enables the stream with a 12 h expiration', async () => {
    const u = await client.updateTable({ tableName: t, tableOptions: {},
      streamSpecification: { enableStream: true, expirationTime: 12 } });
    truthy(u.streamDetails && u.streamDetails.enableStream === true, `UpdateTable streamDetails ${show(u.streamDetails)}`);
    const sd = (await client.describeTable({ tableName: t })).streamDetails;
    eq(sd && [sd.enableStream, sd.expirationTime], [true, 12], '[enableStream, expirationTime]');
    truthy(sd.lastEnableTime && num(sd.lastEnableTime) > 0, `lastEnableTime ${show(sd.lastEnableTime)}`);
  });
  await check('tables: disabling the stream with an expiration time is OTSParameterInvalid (400)',
    () => expectError(() => client.updateTable({ tableName: t, tableOptions: {},
      streamSpecification: { enableStream: false, expirationTime: 24 } }), 'OTSParameterInvalid', 400,
    { message: 'Expiration time is invalid when enableStream is false' }));
  const createAgain = () => client.createTable({ tableMeta: { tableName: t, primaryKey: schema },
    reservedThroughput: { capacityUnit: { read: 0, write: 0 } }, tableOptions: { timeToLive: -1, maxVersions: 1 } });
  await check('tables: creating it again is OTSObjectAlreadyExist (409)',
    () => expectError(createAgain, 'OTSObjectAlreadyExist', 409));
  await check("tables: ... with the message 'Requested table already exists.'",
    () => expectError(createAgain, 'OTSObjectAlreadyExist', 409, { message: 'Requested table already exists.' }));
  await check('tables: describeTable of a missing table is OTSObjectNotExist (404)',
    () => expectError(() => client.describeTable({ tableName: tableName('missing') }), 'OTSObjectNotExist', 404));
  await check("tables: ... with the message 'Requested table does not exist.'",
    () => expectError(() => client.describeTable({ tableName: tableName('missing') }), 'OTSObjectNotExist', 404,
      { message: 'Requested table does not exist.' }));
  const shortTtl = tableName('ttl3600');
  await check('tables: createTable with TTL 3600 is OTSParameterInvalid (400)',
    () => expectError(() => client.createTable({ tableMeta: { tableName: shortTtl, primaryKey: schema },
      reservedThroughput: { capacityUnit: { read: 0, write: 0 } }, tableOptions: { timeToLive: 3600, maxVersions: 1 } }),
    'OTSParameterInvalid', 400));
  await check('tables: the refused table was not created',
    async () => truthy(!(await client.listTable({})).tableNames.includes(shortTtl), `${shortTtl} is listed`));
  await dropTable(shortTtl);
  for (const bad of ['0bad', 'bad-name']) {
    await check(`tables: createTable named '${bad}' is OTSParameterInvalid (400)`,
      () => expectError(() => client.createTable({ tableMeta: { tableName: bad, primaryKey: schema },
        reservedThroughput: { capacityUnit: { read: 0, write: 0 } }, tableOptions: { timeToLive: -1, maxVersions: 1 } }),
      'OTSParameterInvalid', 400, { message: `Invalid table name: '${bad}'.` }));
  }
  const plain = tableName('nostream');
  await check('tables: a table created without a stream reports no enabled stream', async () => {
    await client.createTable({ tableMeta: { tableName: plain, primaryKey: schema },
      reservedThroughput: { capacityUnit: { read: 0, write: 0 } }, tableOptions: { timeToLive: -1, maxVersions: 1 } });
    const sd = (await client.describeTable({ tableName: plain })).streamDetails;
    truthy(!sd || sd.enableStream === false, `streamDetails ${show(sd)}`);
  });
  await dropTable(plain);
  await check('tables: deleteTable removes it', async () => {
    await client.deleteTable({ tableName: t });
    truthy(!(await client.listTable({})).tableNames.includes(t), 'still listed');
  });
  await check('tables: deleteTable of a missing table is OTSObjectNotExist (404)',
    () => expectError(() => client.deleteTable({ tableName: t }), 'OTSObjectNotExist', 404));
  await dropTable(t);
}

// ================================================================================================
// Single rows.
// ================================================================================================
async function rows() {
  const s = 'rows';
  const t = tableName(s);
  await createTable(s, t, [{ name: 'pk', type: 'STRING' }, { name: 'seq', type: 'INTEGER' }], { maxVersions: 3 });
  const K = (p, n) => [{ pk: p }, { seq: L(n) }];
  const base = now() - 60000;
  const [T1, T2, T3] = [base, base + 1000, base + 2000];
  const pk = K('a', 1);

  await check('rows: getRow reads every value type back', async () => {
    await put(t, pk, [{ s: 'text' }, { i: L(42) }, { f: 1.5 }, { b: true }, { bin: Buffer.from([0, 1]) }]);
    const row = await get(t, pk);
    eq(keyOf(row), [['pk', 'a'], ['seq', 1n]], 'primary key');
    eq(attrs(row), { s: 'text', i: 42n, f: 1.5, b: true, bin: Buffer.from([0, 1]) }, 'values');
  });
  await check('rows: putRow EXPECT_NOT_EXIST on an existing row is OTSConditionCheckFail (403)',
    () => expectError(() => put(t, pk, [{ s: 'x' }], EXPECT_NOT_EXIST), 'OTSConditionCheckFail', 403,
      { message: CONDITION_FAILED }));
  await check('rows: columnsToGet returns only those columns',
    async () => eq(attrs(await get(t, pk, { columnsToGet: ['s', 'i'] })), { i: 42n, s: 'text' }, 'columns'));
  await check('rows: columnsToGet naming only absent columns returns no row',
    async () => eq(await get(t, pk, { columnsToGet: ['nope'] }), null, 'row'));
  await check('rows: getRow of a missing row returns no row',
    async () => eq(await get(t, K('missing', 1)), null, 'row'));
  await check('rows: putRow replaces the whole row', async () => {
    const p = K('replace', 1);
    await put(t, p, [{ a: L(1) }, { b: L(2) }]);
    await put(t, p, [{ c: L(3) }]);
    eq(attrs(await get(t, p)), { c: 3n }, 'row after the second put');
  });

  const vpk = K('versions', 1);
  await check('rows: explicit timestamps keep several versions, newest first (updates padded by the SDK)', async () => {
    await put(t, vpk, [{ v: 'a', timestamp: T1 }]);
    await update(t, vpk, [{ PUT: [{ v: 'b', timestamp: T2 }] }], EXPECT_EXIST);
    await update(t, vpk, [{ PUT: [{ v: 'c', timestamp: L(T3) }] }], EXPECT_EXIST);
    eq(cells(await get(t, vpk, { maxVersions: 3 })), [['v', 'c', T3], ['v', 'b', T2], ['v', 'a', T1]], 'cells');
  });
  await check('rows: maxVersions 2 returns the two newest versions',
    async () => eq(cells(await get(t, vpk, { maxVersions: 2 })), [['v', 'c', T3], ['v', 'b', T2]], 'cells'));
  await check('rows: maxVersions 1 returns the newest version',
    async () => eq(cells(await get(t, vpk)), [['v', 'c', T3]], 'cells'));
  await check('rows: updateRow deletes one version (padded by the SDK)', async () => {
    await update(t, vpk, [{ DELETE: [{ v: L(T2) }] }]);
    eq(cells(await get(t, vpk, { maxVersions: 3 })), [['v', 'c', T3], ['v', 'a', T1]], 'cells');
  });
  await check('rows: updateRow deletes all versions of a column', async () => {
    await update(t, vpk, [{ PUT: [{ w: 'x' }] }, { DELETE_ALL: ['v'] }], EXPECT_EXIST);
    eq(names(await get(t, vpk, { maxVersions: 3 })), [['w', 'x']], 'columns');
  });

  const cpk = K('counter', 1);
  await check('rows: updateRow INCREMENT counts from 0 and adds', async () => {
    await update(t, cpk, [{ INCREMENT: [{ cnt: L(1) }] }]);
    eq(attrs(await get(t, cpk)), { cnt: 1n }, 'after +1 on a missing column');
    await update(t, cpk, [{ INCREMENT: [{ cnt: L(5) }] }], EXPECT_EXIST);
    eq(attrs(await get(t, cpk)), { cnt: 6n }, 'after +5');
    await update(t, cpk, [{ INCREMENT: [{ cnt: L(-2) }] }], EXPECT_EXIST);
    eq(attrs(await get(t, cpk)), { cnt: 4n }, 'after -2');
  });
  await check('rows: updateRow AfterModify returns the incremented column', async () => {
    const r = await update(t, cpk, [{ INCREMENT: [{ cnt: L(10) }] }], EXPECT_EXIST,
      { returnContent: { returnType: RT.AfterModify, returnColumns: ['cnt'] } });
    eq(keyOf(r.row), [['pk', 'counter'], ['seq', 1n]], 'returned key');
    eq(names(r.row), [['cnt', 14n]], 'returned columns');
  });
  await check('rows: updateRow AfterModify returns only the listed incremented columns', async () => {
    const r = await update(t, cpk, [{ INCREMENT: [{ cnt: L(1) }, { k: L(3) }] }], EXPECT_EXIST,
      { returnContent: { returnType: RT.AfterModify, returnColumns: ['k'] } });
    eq(names(r.row), [['k', 3n]], 'returned columns');
    eq(attrs(await get(t, cpk)), { cnt: 15n, k: 3n }, 'row');
  });
  await check('rows: updateRow combines PUT, DELETE_ALL and INCREMENT', async () => {
    await update(t, cpk, [{ PUT: [{ p: 'x' }] }, { DELETE_ALL: ['cnt', 'k'] }, { INCREMENT: [{ n: L(3) }] }],
      EXPECT_EXIST);
    eq(attrs(await get(t, cpk)), { n: 3n, p: 'x' }, 'row');
  });

  const missing = K('absent', 1);
  await check('rows: updateRow EXPECT_EXIST on a missing row is OTSConditionCheckFail (403)',
    () => expectError(() => update(t, missing, [{ PUT: [{ x: L(1) }] }], EXPECT_EXIST), 'OTSConditionCheckFail',
      403, { message: CONDITION_FAILED }));
  await check('rows: putRow EXPECT_EXIST on a missing row is OTSConditionCheckFail (403)',
    () => expectError(() => put(t, missing, [{ x: L(1) }], EXPECT_EXIST), 'OTSConditionCheckFail', 403,
      { message: CONDITION_FAILED }));
  await check('rows: refused writes created no row', async () => eq(await get(t, missing), null, 'row'));
  await check('rows: updateRow that only deletes columns of a missing row creates no row', async () => {
    await update(t, missing, [{ DELETE_ALL: ['x'] }]);
    eq(await get(t, missing), null, 'row');
  });
  await check('rows: putRow EXPECT_NOT_EXIST on a missing row writes it', async () => {
    await put(t, K('fresh', 1), [{ x: L(1) }], EXPECT_NOT_EXIST);
    eq(attrs(await get(t, K('fresh', 1))), { x: 1n }, 'row');
  });
  await check('rows: putRow Primarykey return type returns the key (and nothing without it)', async () => {
    const r = await put(t, K('rtpk', 7), [{ x: L(1) }], IGNORE, { returnContent: { returnType: RT.Primarykey } });
    eq(keyOf(r.row), [['pk', 'rtpk'], ['seq', 7n]], 'returned key');
    const none = await put(t, K('rtpk', 7), [{ x: L(2) }]);
    eq(present(none.row), null, 'row returned without a return type');
  });
  await check('rows: updateRow Primarykey return type returns the key', async () => {
    const r = await update(t, K('rtpk', 7), [{ PUT: [{ y: L(1) }] }], IGNORE,
      { returnContent: { returnType: RT.Primarykey } });
    eq(keyOf(r.row), [['pk', 'rtpk'], ['seq', 7n]], 'returned key');
  });
  await check('rows: deleteRow removes the row', async () => {
    await client.deleteRow({ tableName: t, primaryKey: pk, condition: IGNORE });
    eq(await get(t, pk), null, 'row');
  });
  await check('rows: deleteRow EXPECT_EXIST on a missing row is OTSConditionCheckFail (403)',
    () => expectError(() => client.deleteRow({ tableName: t, primaryKey: pk, condition: EXPECT_EXIST }),
      'OTSConditionCheckFail', 403, { message: CONDITION_FAILED }));
  await check('rows: a key of the wrong type is OTSInvalidPK (400)',
    () => expectError(() => put(t, [{ pk: L(1) }, { seq: L(1) }], [{ v: L(1) }]), 'OTSInvalidPK', 400,
      { message: 'Validate PK type fail. Input: VT_INTEGER, Meta: VT_STRING.' }));
  await check('rows: a key missing a column is OTSInvalidPK (400)',
    () => expectError(() => get(t, [{ pk: 'a' }]), 'OTSInvalidPK', 400,
      { message: 'Validate PK size fail. Input: 1, Meta: 2.' }));
  await check('rows: getRow on a missing table is OTSObjectNotExist (404)',
    () => expectError(() => get(tableName('nosuch'), pk), 'OTSObjectNotExist', 404));
  await check("rows: ... with the message 'Requested table does not exist.'",
    () => expectError(() => get(tableName('nosuch'), pk), 'OTSObjectNotExist', 404,
      { message: 'Requested table does not exist.' }));
  await dropTable(t);
}

// ================================================================================================
// Auto-increment primary keys.
// ================================================================================================
async function autoIncrement() {
  const s = 'autoinc';
  const t = tableName(s);
  await createTable(s, t, [{ name: 'pk', type: 'STRING' }, { name: 'id', type: 'INTEGER', option: 'AUTO_INCREMENT' }]);
  const AUTO = (p) => [{ pk: p }, { id: TableStore.PK_AUTO_INCR }];
  const ids = [];
  await check('autoinc: putRow with PK_AUTO_INCR (padded by the SDK) and Primarykey returns the generated key',
    async () => {
      const r = await put(t, AUTO('x'), [{ c: 'v1' }], IGNORE, { returnContent: { returnType: RT.Primarykey } });
      const key = keyOf(r.row);
      truthy(key && key.length === 2 && key[0][0] === 'pk' && key[0][1] === 'x' && key[1][0] === 'id'
        && typeof key[1][1] === 'bigint' && key[1][1] > 0n, `returned key ${show(key)}`);
      ids.push(key[1][1]);
    });
  await check('autoinc: the generated key reads the row back', async () => {
    truthy(ids.length === 1, 'no generated id');
    eq(attrs(await get(t, [{ pk: 'x' }, { id: Long.fromString(ids[0].toString()) }])), { c: 'v1' }, 'row');
  });
  await check('autoinc: updateRow with PK_AUTO_INCR and Primarykey returns a new, greater key', async () => {
    const r = await update(t, AUTO('x'), [{ PUT: [{ c: 'v2' }] }], IGNORE,
      { returnContent: { returnType: RT.Primarykey } });
    const key = keyOf(r.row);
    truthy(key && typeof key[1][1] === 'bigint', `returned key ${show(key)}`);
    truthy(ids.every((i) => key[1][1] > i), `id ${key[1][1]} is not greater than ${ids}`);
    eq(attrs(await get(t, toKey(r.row.primaryKey))), { c: 'v2' }, 'row');
    ids.push(key[1][1]);
  });
  await check('autoinc: putRow without a return type writes a row with a new id', async () => {
    const lo = [{ pk: 'x' }, { id: L(0) }];
    const hi = [{ pk: 'x' }, { id: Long.fromString('9223372036854775807') }];
    const before = (await scan(t, lo, hi)).rows.length;
    const r = await put(t, AUTO('x'), [{ c: 'v3' }]);
    eq(present(r.row), null, 'returned row');
    const after = (await scan(t, lo, hi)).rows;
    eq(after.length, before + 1, 'number of rows');
    eq(attrs(after[after.length - 1]), { c: 'v3' }, 'row with the greatest id');
  });
  await check('autoinc: batchWriteRow PUT with PK_AUTO_INCR and Primarykey returns the generated key', async () => {
    const bw = await client.batchWriteRow({ tables: [{ tableName: t, rows: [
      { type: 'PUT', primaryKey: AUTO('y'), attributeColumns: [{ c: 'b1' }], condition: IGNORE,
        returnContent: { returnType: RT.Primarykey } }] }] });
    eq(bw.tables.map((r) => r.isOk), [true], 'isOk');
    const key = bw.tables[0].primaryKey;
    truthy(key && key[0].value === 'y' && typeof norm(key[1].value) === 'bigint', `returned key ${show(key)}`);
    eq(attrs(await get(t, toKey(key))), { c: 'b1' }, 'row');
  });
  await check('autoinc: batchWriteRow UPDATE with PK_AUTO_INCR and AfterModify returns the counter', async () => {
    const bw = await client.batchWriteRow({ tables: [{ tableName: t, rows: [
      { type: 'UPDATE', primaryKey: AUTO('z'), attributeColumns: [{ INCREMENT: [{ price: L(16) }] }], condition: IGNORE,
        returnContent: { returnType: RT.AfterModify, returnColumns: ['price'] } }] }] });
    eq(bw.tables.map((r) => r.isOk), [true], 'isOk');
    eq(bw.tables[0].attributes && bw.tables[0].attributes.map((a) => [a.columnName, norm(a.columnValue)]),
      [['price', 16n]], 'returned columns');
    truthy(bw.tables[0].primaryKey && bw.tables[0].primaryKey[0].value === 'z', `returned key ${show(bw.tables[0].primaryKey)}`);
  });
  await dropTable(t);
}

// ================================================================================================
// Column conditions on writes.
// ================================================================================================
async function columnConditions() {
  const s = 'colcond';
  const t = tableName(s);
  await createTable(s, t, [{ name: 'pk', type: 'STRING' }], { maxVersions: 3 });
  const pk = [{ pk: 'c' }];
  const base = now() - 60000;
  let marker = 0;
  // The newer version of mv is written without a timestamp (the server assigns now), so that this
  // section does not depend on the SDK's padded PlainBuffer (covered in the rows section).
  async function reset() {
    await put(t, pk, [{ i: L(42) }, { s: 'text' }, { mv: 'old', timestamp: base }]);
    await update(t, pk, [{ PUT: [{ mv: 'new' }] }]);
  }
  async function conditional(what, cond, applies, { existence = RE.IGNORE, op = 'update' } = {}) {
    await check(`colcond: ${what} ${applies ? 'succeeds' : 'is OTSConditionCheckFail (403)'}`, async () => {
      await reset();
      marker += 1;
      const m = L(marker);
      const condition = new TableStore.Condition(existence, cond);
      let write;
      if (op === 'update') write = () => update(t, pk, [{ PUT: [{ w: m }] }], condition);
      else if (op === 'put') write = () => put(t, pk, [{ i: L(42) }, { s: 'text' }, { w: m }], condition);
      else write = () => client.deleteRow({ tableName: t, primaryKey: pk, condition });
      if (applies) await write();
      else await expectError(write, 'OTSConditionCheckFail', 403, { message: CONDITION_FAILED });
      const row = await get(t, pk);
      if (op === 'delete') eq(row === null, applies, 'row deleted');
      else eq(row && attrs(row).w, applies ? BigInt(marker) : undefined, 'the write was applied');
    });
  }
  await conditional('updateRow with i == 42', single('i', L(42), CT.EQUAL), true);
  await conditional('updateRow with i == 43', single('i', L(43), CT.EQUAL), false);
  await conditional('putRow with i == 42', single('i', L(42), CT.EQUAL), true, { op: 'put' });
  await conditional('putRow with i != 42', single('i', L(42), CT.NOT_EQUAL), false, { op: 'put' });
  await conditional('updateRow with i > 40', single('i', L(40), CT.GREATER_THAN), true);
  await conditional("updateRow with s < 'text'", single('s', 'text', CT.LESS_THAN), false);
  await conditional("updateRow with EXPECT_EXIST and s == 'text'", single('s', 'text', CT.EQUAL), true,
    { existence: RE.EXPECT_EXIST });
  await conditional('updateRow with i == 42.0 (a double against an integer)', single('i', 42, CT.EQUAL), false);
  await conditional("updateRow with AND(i == 42, s == 'text')",
    composite(LO.AND, single('i', L(42), CT.EQUAL), single('s', 'text', CT.EQUAL)), true);
  await conditional("updateRow with AND(i == 42, s == 'other')",
    composite(LO.AND, single('i', L(42), CT.EQUAL), single('s', 'other', CT.EQUAL)), false);
  await conditional("updateRow with OR(i == 0, s == 'text')",
    composite(LO.OR, single('i', L(0), CT.EQUAL), single('s', 'text', CT.EQUAL)), true);
  await conditional("updateRow with OR(i == 0, s == 'other')",
    composite(LO.OR, single('i', L(0), CT.EQUAL), single('s', 'other', CT.EQUAL)), false);
  await conditional('updateRow with NOT(i == 43)', composite(LO.NOT, single('i', L(43), CT.EQUAL)), true);
  await conditional('updateRow with NOT(i == 42)', composite(LO.NOT, single('i', L(42), CT.EQUAL)), false);
  await conditional('updateRow on a missing column with passIfMissing=true', single('nope', L(1), CT.EQUAL, true), true);
  await conditional('updateRow on a missing column with passIfMissing=false', single('nope', L(1), CT.EQUAL, false), false);
  await conditional("updateRow with mv == 'old' on the newest version only", single('mv', 'old', CT.EQUAL, true, true),
    false);
  await conditional("updateRow with mv == 'old' on any version (latestVersionOnly=false)",
    single('mv', 'old', CT.EQUAL, true, false), true);
  await conditional('deleteRow with i == 43', single('i', L(43), CT.EQUAL), false, { op: 'delete' });
  await conditional('deleteRow with i == 42', single('i', L(42), CT.EQUAL), true, { op: 'delete' });
  await check('colcond: EXPECT_EXIST with a column condition on a missing row is OTSConditionCheckFail (403)', async () => {
    await expectError(() => update(t, [{ pk: 'absent' }], [{ PUT: [{ w: L(1) }] }],
      new TableStore.Condition(RE.EXPECT_EXIST, single('i', L(42), CT.EQUAL))), 'OTSConditionCheckFail', 403,
    { message: CONDITION_FAILED });
    eq(await get(t, [{ pk: 'absent' }]), null, 'row');
  });
  await dropTable(t);
}

// ================================================================================================
// BatchWriteRow / BatchGetRow.
// ================================================================================================
async function batch() {
  const s = 'batch';
  const t = tableName(s);
  await createTable(s, t, [{ name: 'pk', type: 'STRING' }, { name: 'seq', type: 'INTEGER' }]);
  const K = (p, n) => [{ pk: p }, { seq: L(n) }];
  const rows200 = [];
  for (let i = 0; i < 200; i++) {
    rows200.push({ type: 'PUT', primaryKey: K('batch', i), attributeColumns: [{ v: L(i) }, { w: `x${i}` }],
      condition: IGNORE });
  }
  await check('batch: batchWriteRow of 200 rows succeeds row by row', async () => {
    const bw = await client.batchWriteRow({ tables: [{ tableName: t, rows: rows200 }] });
    eq(bw.tables.length, 200, 'number of results');
    eq(bw.tables.filter((r) => !r.isOk).length, 0, 'failed rows');
  });
  await check('batch: 201 rows is OTSParameterInvalid (400) and writes nothing', async () => {
    const rows = rows200.concat([{ type: 'PUT', primaryKey: K('batch', 999), attributeColumns: [{ v: L(0) }],
      condition: IGNORE }]);
    await expectError(() => client.batchWriteRow({ tables: [{ tableName: t, rows }] }), 'OTSParameterInvalid', 400,
      { message: 'Rows count exceeds the upper limit: 200.' });
    eq(await get(t, K('batch', 999)), null, 'row 999');
  });
  await check('batch: forward getRange pages through 200 rows in order', async () => {
    const seen = [];
    let start = K('batch', 0);  // explicit bounds: INF_MIN/INF_MAX are covered by the range section
    const end = K('batch', 1000);
    for (let pages = 0; start && pages < 10; pages++) {
      const r = await scan(t, start, end, FORWARD, { limit: 64 });
      seen.push(...seqs(r.rows));
      start = r.next ? toKey(r.next) : null;
    }
    eq(seen, Array.from({ length: 200 }, (_, i) => i), 'sequence numbers');
  });
  await check('batch: backward getRange returns the last rows first', async () => {
    const r = await scan(t, K('batch', 1000), K('batch', -1), BACKWARD, { limit: 5 });
    eq(seqs(r.rows), [199, 198, 197, 196, 195], 'sequence numbers');
  });

  let mixed = null;
  await check('batch: batchWriteRow mixes PUT/UPDATE/DELETE with per-row results and one failing row', async () => {
    await put(t, K('m_update', 0), [{ v: L(1) }]);
    await put(t, K('m_delete', 0), [{ v: L(1) }]);
    const bw = mixed = await client.batchWriteRow({ tables: [{ tableName: t, rows: [
      { type: 'PUT', primaryKey: K('m_put', 0), attributeColumns: [{ v: L(10) }], condition: IGNORE,
        returnContent: { returnType: RT.Primarykey } },
      { type: 'UPDATE', primaryKey: K('m_update', 0), attributeColumns: [{ PUT: [{ v: L(20) }] },
        { INCREMENT: [{ n: L(2) }] }], condition: EXPECT_EXIST, returnContent: { returnType: RT.Primarykey } },
      { type: 'DELETE', primaryKey: K('m_delete', 0), condition: EXPECT_EXIST },
      { type: 'PUT', primaryKey: K('m_missing', 0), attributeColumns: [{ v: L(30) }], condition: EXPECT_EXIST },
    ] }] });
    eq(bw.tables.map((r) => r.isOk), [true, true, true, false], 'isOk per row');
    eq([bw.tables[3].errorCode, bw.tables[3].errorMessage], ['OTSConditionCheckFail', CONDITION_FAILED],
      'error of the failed row');
    eq(bw.tables.map((r) => r.tableName), [t, t, t, t], 'table names');
  });
  await check('batch: the ok rows were written and the failing row was not', async () => {
    eq(attrs(await get(t, K('m_put', 0))), { v: 10n }, 'm_put');
    eq(attrs(await get(t, K('m_update', 0))), { n: 2n, v: 20n }, 'm_update');
    eq(await get(t, K('m_delete', 0)), null, 'm_delete');
    eq(await get(t, K('m_missing', 0)), null, 'm_missing');
  });
  await check('batch: Primarykey rows of batchWriteRow return their keys', async () => {
    truthy(mixed, 'no batch result');
    const key = (r) => (r.primaryKey ? r.primaryKey.map((c) => [c.name, norm(c.value)]) : null);
    eq(key(mixed.tables[0]), [['pk', 'm_put'], ['seq', 0n]], 'key of the PUT');
    eq(key(mixed.tables[1]), [['pk', 'm_update'], ['seq', 0n]], 'key of the UPDATE');
    eq(key(mixed.tables[2]), null, 'key of the DELETE (no return type)');
  });
  await check('batch: batchWriteRow UPDATE with AfterModify returns the incremented column', async () => {
    await put(t, K('counter', 0), [{ cnt: L(5) }]);
    const bw = await client.batchWriteRow({ tables: [{ tableName: t, rows: [
      { type: 'UPDATE', primaryKey: K('counter', 0), attributeColumns: [{ INCREMENT: [{ cnt: L(2) }] }],
        condition: EXPECT_EXIST, returnContent: { returnType: RT.AfterModify, returnColumns: ['cnt'] } }] }] });
    eq(bw.tables.map((r) => r.isOk), [true], 'isOk');
    eq(bw.tables[0].attributes && bw.tables[0].attributes.map((a) => [a.columnName, norm(a.columnValue)]),
      [['cnt', 7n]], 'returned columns');
  });
  await check('batch: a column condition fails only its own row', async () => {
    await put(t, K('c_ok', 0), [{ v: L(1) }]);
    await put(t, K('c_fail', 0), [{ v: L(1) }]);
    const bw = await client.batchWriteRow({ tables: [{ tableName: t, rows: [
      { type: 'UPDATE', primaryKey: K('c_ok', 0), attributeColumns: [{ PUT: [{ v: L(2) }] }],
        condition: new TableStore.Condition(RE.IGNORE, single('v', L(1), CT.EQUAL)) },
      { type: 'UPDATE', primaryKey: K('c_fail', 0), attributeColumns: [{ PUT: [{ v: L(2) }] }],
        condition: new TableStore.Condition(RE.IGNORE, single('v', L(999), CT.EQUAL)) }] }] });
    eq(bw.tables.map((r) => r.isOk), [true, false], 'isOk per row');
    eq([bw.tables[1].errorCode, bw.tables[1].errorMessage], ['OTSConditionCheckFail', CONDITION_FAILED], 'error');
    eq([attrs(await get(t, K('c_ok', 0))), attrs(await get(t, K('c_fail', 0)))], [{ v: 2n }, { v: 1n }],
      '[c_ok, c_fail]');
  });
  await check('batch: batchGetRow returns rows in request order, an empty row when missing, only columnsToGet',
    async () => {
      const bg = await client.batchGetRow({ tables: [{ tableName: t, maxVersions: 1, columnsToGet: ['v'],
        primaryKey: [K('batch', 5), K('batch', 5000), K('batch', 7)] }] });
      eq(bg.tables.length, 1, 'number of tables');
      const r = bg.tables[0];
      eq(r.map((x) => x.isOk), [true, true, true], 'isOk');
      eq(r.map((x) => x.primaryKey && x.primaryKey.map((c) => norm(c.value))), [['batch', 5n], null, ['batch', 7n]],
        'keys');
      eq(r.map((x) => x.attributes && x.attributes.map((a) => [a.columnName, norm(a.columnValue)])),
        [[['v', 5n]], null, [['v', 7n]]], 'columns');
    });
  await check('batch: batchGetRow reports a wrong key type per row (OTSInvalidPK)', async () => {
    const bg = await client.batchGetRow({ tables: [{ tableName: t, maxVersions: 1,
      primaryKey: [K('batch', 1), [{ pk: 'batch' }, { seq: 'one' }]] }] });
    const r = bg.tables[0];
    eq(r.map((x) => x.isOk), [true, false], 'isOk');
    eq([r[1].errorCode, r[1].errorMessage], ['OTSInvalidPK', 'Validate PK type fail. Input: VT_STRING, Meta: VT_INTEGER.'],
      'error of the bad row');
  });
  await check('batch: batchGetRow over two tables', async () => {
    const other = tableName('batch2');
    await client.createTable({ tableMeta: { tableName: other, primaryKey: [{ name: 'k', type: 'INTEGER' }] },
      reservedThroughput: { capacityUnit: { read: 0, write: 0 } }, tableOptions: { timeToLive: -1, maxVersions: 1 } });
    try {
      await put(other, [{ k: L(1) }], [{ o: 'other' }]);
      const bg = await client.batchGetRow({ tables: [
        { tableName: t, maxVersions: 1, primaryKey: [K('batch', 1)] },
        { tableName: other, maxVersions: 1, primaryKey: [[{ k: L(1) }]] }] });
      eq(bg.tables.map((rowsOfTable) => rowsOfTable.map((x) => [x.tableName,
        x.attributes && Object.fromEntries(x.attributes.map((a) => [a.columnName, norm(a.columnValue)]))])),
      [[[t, { v: 1n, w: 'x1' }]], [[other, { o: 'other' }]]], 'rows per table');
    } finally {
      await dropTable(other);
    }
  });
  await dropTable(t);
}

// ================================================================================================
// GetRange.
// ================================================================================================
async function ranges() {
  const s = 'range';
  const t = tableName(s);
  await createTable(s, t, [{ name: 'pk', type: 'STRING' }, { name: 'seq', type: 'INTEGER' }]);
  const R = (i) => [{ pk: 'r' }, { seq: L(i) }];
  const lo = [{ pk: 'r' }, { seq: INF_MIN }];
  const hi = [{ pk: 'r' }, { seq: INF_MAX }];
  await check('range: load 12 rows', async () => {
    const rows = [];
    for (let i = 0; i < 10; i++) rows.push({ type: 'PUT', primaryKey: R(i), attributeColumns: [{ v: L(i) }, { w: 'x' }], condition: IGNORE });
    for (const p of ['a', 'z']) rows.push({ type: 'PUT', primaryKey: [{ pk: p }, { seq: L(0) }], attributeColumns: [{ v: L(-1) }], condition: IGNORE });
    const bw = await client.batchWriteRow({ tables: [{ tableName: t, rows }] });
    eq(bw.tables.filter((r) => !r.isOk).length, 0, 'failed rows');
  });
  await check('range: forward INF_MIN..INF_MAX (bounds padded by the SDK) returns the partition in order', async () => {
    const r = await scan(t, lo, hi);
    eq(seqs(r.rows), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'sequence numbers');
    eq(r.next, null, 'nextStartPrimaryKey');
    eq([keyOf(r.rows[3]), attrs(r.rows[3])], [[['pk', 'r'], ['seq', 3n]], { v: 3n, w: 'x' }], 'row 3');
  });
  await check('range: backward INF_MAX..INF_MIN returns the partition in reverse', async () => {
    const r = await scan(t, hi, lo, BACKWARD);
    eq(seqs(r.rows), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0], 'sequence numbers');
    eq(r.next, null, 'nextStartPrimaryKey');
  });
  await check('range: INF_MIN..INF_MAX on every key column returns the whole table', async () => {
    const r = await scan(t, [{ pk: INF_MIN }, { seq: INF_MIN }], [{ pk: INF_MAX }, { seq: INF_MAX }]);
    eq(r.rows.map((x) => x.primaryKey[0].value), ['a', ...Array(10).fill('r'), 'z'], 'partition keys');
  });
  await check('range: inclusive start, exclusive end',
    async () => eq(seqs((await scan(t, R(3), R(7))).rows), [3, 4, 5, 6], 'sequence numbers'));
  await check('range: backward from an inclusive start to an exclusive end',
    async () => eq(seqs((await scan(t, R(7), R(3), BACKWARD)).rows), [7, 6, 5, 4], 'sequence numbers'));
  await check('range: limit 6 pages through 10 rows in two pages with nextStartPrimaryKey', async () => {
    const p1 = await scan(t, lo, hi, FORWARD, { limit: 6 });
    eq(seqs(p1.rows), [0, 1, 2, 3, 4, 5], 'page 1');
    eq(nextKey(p1.next), [['pk', 'r'], ['seq', 6n]], 'nextStartPrimaryKey after page 1');
    const p2 = await scan(t, toKey(p1.next), hi, FORWARD, { limit: 6 });
    eq(seqs(p2.rows), [6, 7, 8, 9], 'page 2');
    eq(p2.next, null, 'nextStartPrimaryKey after page 2');
  });
  await check('range: backward limit returns nextStartPrimaryKey', async () => {
    const p1 = await scan(t, hi, lo, BACKWARD, { limit: 4 });
    eq(seqs(p1.rows), [9, 8, 7, 6], 'page 1');
    eq(nextKey(p1.next), [['pk', 'r'], ['seq', 5n]], 'nextStartPrimaryKey');
  });
  await check('range: columnsToGet returns only those columns and the full key', async () => {
    const r = await scan(t, R(0), R(2), FORWARD, { columnsToGet: ['w'] });
    eq(r.rows.map((x) => [keyOf(x), attrs(x)]), [[[['pk', 'r'], ['seq', 0n]], { w: 'x' }],
      [[['pk', 'r'], ['seq', 1n]], { w: 'x' }]], 'rows');
  });
  await check('range: an empty range returns no rows and no next key', async () => {
    const r = await scan(t, R(100), R(200));
    eq([r.rows, r.next], [[], null], '[rows, next]');
  });
  await check('range: (a, INF_MAX)..(b, INF_MIN) is a valid empty range', async () => {
    const r = await scan(t, [{ pk: 'a' }, { seq: INF_MAX }], [{ pk: 'b' }, { seq: INF_MIN }]);
    eq([r.rows, r.next], [[], null], '[rows, next]');
  });
  await check('range: forward with start after end is OTSParameterInvalid (400)',
    () => expectError(() => scan(t, R(7), R(3)), 'OTSParameterInvalid', 400,
      { prefix: 'Begin key must less than end key in FORWARD' }));
  await check('range: forward with start equal to end is OTSParameterInvalid (400)',
    () => expectError(() => scan(t, R(3), R(3)), 'OTSParameterInvalid', 400,
      { prefix: 'Begin key must less than end key in FORWARD' }));
  await check('range: forward INF_MAX..INF_MIN is OTSParameterInvalid (400)',
    () => expectError(() => scan(t, hi, lo), 'OTSParameterInvalid', 400,
      { prefix: 'Begin key must less than end key in FORWARD' }));
  await check('range: backward with start before end is OTSParameterInvalid (400)',
    () => expectError(() => scan(t, R(3), R(7), BACKWARD), 'OTSParameterInvalid', 400,
      { prefix: 'Begin key must more than end key in BACKWARD' }));
  await check('range: getRange on a missing table is OTSObjectNotExist (404)',
    () => expectError(() => scan(tableName('nosuch'), lo, hi), 'OTSObjectNotExist', 404));
  await dropTable(t);
}

// ================================================================================================
// Filters on reads, start/end column, column pagination.
// ================================================================================================
async function filters() {
  const s = 'filter';
  const t = tableName(s);
  await createTable(s, t, [{ name: 'pk', type: 'STRING' }, { name: 'seq', type: 'INTEGER' }], { maxVersions: 3 });
  const F = (i) => [{ pk: 'f' }, { seq: L(i) }];
  // Explicit bounds (not INF_MIN/INF_MAX, which the range section covers), so that these checks do
  // not depend on the SDK's padded PlainBuffer.
  const lo = F(0);
  const hi = F(1000);
  const G = [{ pk: 'g' }, { seq: L(0) }];
  const base = now() - 60000;
  await check('filter: load rows', async () => {
    for (let i = 0; i < 5; i++) await put(t, F(i), [{ v: L(i * 10) }, { s: `s${i}` }]);
    await put(t, F(5), [{ s: 's5' }]);
    await put(t, F(6), [{ v: L(60) }, { mv: 'old', timestamp: base }]);
    await put(t, G, [{ a: L(1) }, { b: L(2) }, { c: L(3) }, { d: L(4) }]);
    // A newer version without a timestamp (server time), so no padded PlainBuffer is involved.
    await update(t, F(6), [{ PUT: [{ mv: 'new' }] }]);
  });
  const rangeCheck = (what, columnFilter, expected, opts = {}) => check(`filter: getRange with ${what}`, async () => {
    const r = await scan(t, opts.start || lo, opts.end || hi, FORWARD, Object.assign({ columnFilter }, opts.read));
    eq(seqs(r.rows), expected, 'sequence numbers');
  });
  await check('filter: getRow with v == 20 returns the matching row',
    async () => eq(attrs(await get(t, F(2), { columnFilter: single('v', L(20), CT.EQUAL) })), { s: 's2', v: 20n }, 'row'));
  await check('filter: getRow with v == 20 on another row returns no row',
    async () => eq(await get(t, F(1), { columnFilter: single('v', L(20), CT.EQUAL) }), null, 'row'));
  await check('filter: getRow with v == 20.0 (a double against an integer) returns no row',
    async () => eq(await get(t, F(2), { columnFilter: single('v', 20, CT.EQUAL) }), null, 'row'));
  await check('filter: getRow filtering on a column outside columnsToGet treats it as missing',
    async () => eq(await get(t, F(2), { columnsToGet: ['s'], columnFilter: single('v', L(20), CT.EQUAL) }), null, 'row'));
  await rangeCheck('v == 20', single('v', L(20), CT.EQUAL), [2]);
  await rangeCheck('v != 20 (passIfMissing=false)', single('v', L(20), CT.NOT_EQUAL), [0, 1, 3, 4, 6]);
  await rangeCheck('v > 20 (passIfMissing=false)', single('v', L(20), CT.GREATER_THAN), [3, 4, 6]);
  await rangeCheck('v > 20 (passIfMissing=true)', single('v', L(20), CT.GREATER_THAN, true), [3, 4, 5, 6]);
  await rangeCheck('v >= 20', single('v', L(20), CT.GREATER_EQUAL), [2, 3, 4, 6]);
  await rangeCheck('v < 20', single('v', L(20), CT.LESS_THAN), [0, 1]);
  await rangeCheck('v <= 20', single('v', L(20), CT.LESS_EQUAL), [0, 1, 2]);
  await rangeCheck("s > 's3' (strings compare bytewise)", single('s', 's3', CT.GREATER_THAN), [4, 5]);
  await rangeCheck("mv == 'old' on the newest version only", single('mv', 'old', CT.EQUAL), [], { read: { maxVersions: 2 } });
  await rangeCheck("mv == 'old' on any version (latestVersionOnly=false)", single('mv', 'old', CT.EQUAL, false, false), [6],
    { read: { maxVersions: 2 } });
  await rangeCheck("mv == 'new' on the newest version", single('mv', 'new', CT.EQUAL), [6]);
  await rangeCheck('AND(v >= 20, v < 40)', composite(LO.AND, single('v', L(20), CT.GREATER_EQUAL),
    single('v', L(40), CT.LESS_THAN)), [2, 3]);
  await rangeCheck('OR(v == 10, v == 40)', composite(LO.OR, single('v', L(10), CT.EQUAL), single('v', L(40), CT.EQUAL)),
    [1, 4]);
  await rangeCheck('NOT(v == 10) over rows that have v', composite(LO.NOT, single('v', L(10), CT.EQUAL)), [0, 2, 3, 4],
    { start: F(0), end: F(5) });
  await rangeCheck('OR(AND(v >= 10, v <= 20), v == 40)', composite(LO.OR,
    composite(LO.AND, single('v', L(10), CT.GREATER_EQUAL), single('v', L(20), CT.LESS_EQUAL)),
    single('v', L(40), CT.EQUAL)), [1, 2, 4]);
  await check('filter: a row that passes returns all requested versions', async () => {
    const r = await scan(t, lo, hi, FORWARD, { columnFilter: single('mv', 'new', CT.EQUAL), maxVersions: 2,
      columnsToGet: ['mv'] });
    eq(r.rows.map((x) => cells(x).map((c) => c.slice(0, 2))), [[['mv', 'new'], ['mv', 'old']]], 'cells');
    eq(cells(r.rows[0])[1][2], base, 'timestamp of the older version');
  });
  await check('filter: batchGetRow with v == 20 returns only the matching row', async () => {
    const bg = await client.batchGetRow({ tables: [{ tableName: t, maxVersions: 1, primaryKey: [F(1), F(2)],
      columnFilter: single('v', L(20), CT.EQUAL) }] });
    const r = bg.tables[0];
    eq(r.map((x) => x.isOk), [true, true], 'isOk');
    eq(r.map((x) => x.attributes && x.attributes.map((a) => [a.columnName, norm(a.columnValue)])),
      [null, [['s', 's2'], ['v', 20n]]], 'columns per row');
  });
  await check("filter: getRow startColumn 'b', endColumn 'd' returns b and c",
    async () => eq(names(await get(t, G, { startColumn: 'b', endColumn: 'd' })), [['b', 2n], ['c', 3n]], 'columns'));
  await check("filter: getRow startColumn 'c' returns c and d",
    async () => eq(names(await get(t, G, { startColumn: 'c' })), [['c', 3n], ['d', 4n]], 'columns'));
  await check("filter: getRow endColumn 'b' returns a",
    async () => eq(names(await get(t, G, { endColumn: 'b' })), [['a', 1n]], 'columns'));
  await check("filter: getRange startColumn 'b', endColumn 'd' returns b and c", async () => {
    const r = await scan(t, G, [{ pk: 'g' }, { seq: L(1) }], FORWARD, { startColumn: 'b', endColumn: 'd' });
    eq(r.rows.map(names), [[['b', 2n], ['c', 3n]]], 'columns');
  });
  await check("filter: batchGetRow startColumn 'b', endColumn 'd' returns b and c", async () => {
    const bg = await client.batchGetRow({ tables: [{ tableName: t, maxVersions: 1, primaryKey: [G],
      startColumn: 'b', endColumn: 'd' }] });
    eq(bg.tables[0][0].attributes && bg.tables[0][0].attributes.map((a) => [a.columnName, norm(a.columnValue)]),
      [['b', 2n], ['c', 3n]], 'columns');
  });
  // ColumnPaginationFilter(limit, offset): skip `offset` columns, return at most `limit`.
  await check('filter: getRow ColumnPaginationFilter(limit 2, offset 1) returns b and c',
    async () => eq(names(await get(t, G, { columnFilter: new TableStore.ColumnPaginationFilter(2, 1) })),
      [['b', 2n], ['c', 3n]], 'columns'));
  await check("filter: getRow ColumnPaginationFilter(limit 2, offset 1) after startColumn 'b' returns c and d",
    async () => eq(names(await get(t, G, { startColumn: 'b', columnFilter: new TableStore.ColumnPaginationFilter(2, 1) })),
      [['c', 3n], ['d', 4n]], 'columns'));
  await check('filter: getRange ColumnPaginationFilter(limit 1, offset 0) returns the first column of each row', async () => {
    const r = await scan(t, F(0), F(3), FORWARD, { columnFilter: new TableStore.ColumnPaginationFilter(1, 0) });
    eq(r.rows.map(names), [[['s', 's0']], [['s', 's1']], [['s', 's2']]], 'columns');
  });
  await check('filter: batchGetRow ColumnPaginationFilter(limit 2, offset 2) returns c and d', async () => {
    const bg = await client.batchGetRow({ tables: [{ tableName: t, maxVersions: 1, primaryKey: [G],
      columnFilter: new TableStore.ColumnPaginationFilter(2, 2) }] });
    eq(bg.tables[0][0].attributes && bg.tables[0][0].attributes.map((a) => [a.columnName, norm(a.columnValue)]),
      [['c', 3n], ['d', 4n]], 'columns');
  });
  await dropTable(t);
}

// ================================================================================================
// Time-range reads (always with maxVersions in Node; see the header about specific_time).
// ================================================================================================
async function timeRanges() {
  const s = 'timerange';
  const t = tableName(s);
  await createTable(s, t, [{ name: 'pk', type: 'STRING' }], { maxVersions: 5 });
  const pk = [{ pk: 't' }];
  const base = now() - 60000;
  const [T1, T2, T3] = [base, base + 1000, base + 2000];
  // Row 't' holds one version per column at T1, T2, T3 (written by a single putRow, no padding);
  // row 'm' holds three versions of one column (written by updates with timestamps, which the SDK pads).
  await check('timerange: load columns at T1, T2 and T3',
    () => put(t, pk, [{ a: 'a1', timestamp: T1 }, { b: 'b2', timestamp: T2 }, { c: 'c3', timestamp: T3 }]));
  const tr = async (startTime, endTime, key = pk, maxVersions = 5) => cells(await get(t, key,
    { maxVersions, timeRange: { startTime, endTime } }));
  await check('timerange: getRow timeRange [T1, T3) returns the cells at T1 and T2',
    async () => eq(await tr(T1, T3), [['a', 'a1', T1], ['b', 'b2', T2]], 'cells'));
  await check('timerange: getRow timeRange [T1, T3 + 1) returns all three cells',
    async () => eq(await tr(T1, T3 + 1), [['a', 'a1', T1], ['b', 'b2', T2], ['c', 'c3', T3]], 'cells'));
  await check('timerange: getRow timeRange [T2, T3) returns only T2',
    async () => eq(await tr(T2, T3), [['b', 'b2', T2]], 'cells'));
  await check('timerange: getRow timeRange after every version returns no row',
    async () => eq(await get(t, pk, { maxVersions: 5, timeRange: { startTime: T3 + 1, endTime: T3 + 100 } }), null, 'row'));
  await check('timerange: getRange timeRange [T1, T2) returns the oldest cell', async () => {
    const r = await scan(t, pk, [{ pk: 'u' }], FORWARD, { maxVersions: 5, timeRange: { startTime: T1, endTime: T2 } });
    eq(r.rows.map((x) => cells(x)), [[['a', 'a1', T1]]], 'rows');
  });
  await check('timerange: getRange timeRange after every version returns no rows', async () => {
    const r = await scan(t, pk, [{ pk: 'u' }], FORWARD,
      { maxVersions: 5, timeRange: { startTime: T3 + 1, endTime: T3 + 100 } });
    eq(r.rows, [], 'rows');
  });
  await check('timerange: batchGetRow timeRange [T2, T3 + 1) returns the cells at T2 and T3', async () => {
    const bg = await client.batchGetRow({ tables: [{ tableName: t, maxVersions: 5, primaryKey: [pk],
      timeRange: { startTime: T2, endTime: T3 + 1 } }] });
    const row = bg.tables[0][0];
    eq(row.attributes && row.attributes.map((a) => [a.columnName, a.columnValue, num(a.timestamp)]),
      [['b', 'b2', T2], ['c', 'c3', T3]], 'cells');
  });
  const mk = [{ pk: 'm' }];
  await check('timerange: load three versions of one column', async () => {
    await put(t, mk, [{ v: 'a', timestamp: T1 }]);
    await update(t, mk, [{ PUT: [{ v: 'b', timestamp: T2 }] }], EXPECT_EXIST);
    await update(t, mk, [{ PUT: [{ v: 'c', timestamp: T3 }] }], EXPECT_EXIST);
    eq(cells(await get(t, mk, { maxVersions: 5 })), [['v', 'c', T3], ['v', 'b', T2], ['v', 'a', T1]], 'versions');
  });
  await check('timerange: getRow timeRange [T1, T3) over versions returns T2 and T1, newest first',
    async () => eq(await tr(T1, T3, mk), [['v', 'b', T2], ['v', 'a', T1]], 'cells'));
  await check('timerange: getRow timeRange with maxVersions 1 returns the newest version in the range',
    async () => eq(await tr(T1, T3, mk, 1), [['v', 'b', T2]], 'cells'));
  await dropTable(t);
}

// ================================================================================================
// Size limits.
// ================================================================================================
async function limits() {
  const s = 'limits';
  const t = tableName(s);
  await createTable(s, t, [{ name: 'pk', type: 'STRING' }]);
  await check('limits: a 3.4 MiB putRow of two values under 2 MiB succeeds and reads back', async () => {
    await put(t, [{ pk: 'big' }], [{ c1: 'a'.repeat(1900 * 1024) }, { c2: 'b'.repeat(1536 * 1024) }]);
    const got = attrs(await get(t, [{ pk: 'big' }]));
    eq(got && Object.entries(got).map(([k, v]) => [k, v.length, v[0]]), [['c1', 1900 * 1024, 'a'], ['c2', 1536 * 1024, 'b']],
      '[column, length, first char]');
  });
  await check('limits: a value of exactly 2 MiB is accepted', async () => {
    await put(t, [{ pk: 'exact' }], [{ c: Buffer.alloc(2 * MIB, 7) }]);
    const got = attrs(await get(t, [{ pk: 'exact' }]));
    eq(got && got.c.length, 2 * MIB, 'length');
  });
  await check('limits: a value of 2 MiB + 1 is OTSParameterInvalid (400)',
    () => expectError(() => put(t, [{ pk: 'toolong' }], [{ c: 'x'.repeat(2 * MIB + 1) }]), 'OTSParameterInvalid', 400,
      { message: "The length of attribute column: 'c' exceeds the MaxLength:2097152 with CurrentLength:2097153." }));
  await check('limits: the refused row was not written', async () => eq(await get(t, [{ pk: 'toolong' }]), null, 'row'));
  await check('limits: a 4.3 MiB batchWriteRow is OTSParameterInvalid (400) and writes nothing', async () => {
    await expectError(() => client.batchWriteRow({ tables: [{ tableName: t, rows: [
      { type: 'PUT', primaryKey: [{ pk: 'bw1' }], attributeColumns: [{ c: 'x'.repeat(1900 * 1024) }], condition: IGNORE },
      { type: 'PUT', primaryKey: [{ pk: 'bw2' }], attributeColumns: [{ c: 'y'.repeat(1900 * 1024) }], condition: IGNORE },
      { type: 'PUT', primaryKey: [{ pk: 'bw3' }], attributeColumns: [{ c: 'z'.repeat(512 * 1024) }], condition: IGNORE },
    ] }] }), 'OTSParameterInvalid', 400,
    { prefix: 'The total data size of BatchWriteRow request exceeds the limit, limit size: 4194304, data size: ' });
    eq(await get(t, [{ pk: 'bw1' }]), null, 'row bw1');
  });
  await check('limits: a 5.6 MiB putRow gets an OTS error with a protobuf body', () => expectError(
    () => put(t, [{ pk: 'huge' }], [0, 1, 2].map((i) => ({ [`c${i}`]: 'h'.repeat(1900 * 1024) }))), null, null,
    { codes: ['OTSParameterInvalid', 'OTSRequestBodyTooLarge', 'OTSOutOfRowSizeLimit'], statuses: [400, 413] }));
  await dropTable(t);
}

// ================================================================================================
// Authentication.
// ================================================================================================
async function auth() {
  await check('auth: a wrong secret is OTSAuthFailed (403)',
    () => expectError(() => newClient(ACCESS_ID, 'not-the-secret').listTable({}), 'OTSAuthFailed', 403));
  await check('auth: an unknown access key id is OTSAuthFailed (403)',
    () => expectError(() => newClient('no-such-access-key-id', ACCESS_SECRET).listTable({}), 'OTSAuthFailed', 403));
}

(async () => {
  for (const section of [tables, rows, autoIncrement, columnConditions, batch, ranges, filters, timeRanges, limits, auth]) {
    try {
      await section();
    } catch (err) {
      failed.push(section.name);
      console.log(`FAILED: section ${section.name} aborted: ${describeErr(err)}`);
    }
  }
  const total = passed + failed.length;
  if (failed.length) {
    console.log(`${failed.length} of ${total} SDK conformance checks FAILED`);
    process.exit(1);
  }
  console.log(`all SDK conformance checks passed (${total} checks)`);
  process.exit(0);
})();
