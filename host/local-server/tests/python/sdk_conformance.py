#!/usr/bin/env python3
"""Conformance suite: the official Tablestore Python SDK (PyPI `tablestore==6.4.8`), unmodified,
against a Tablestore-compatible endpoint.

Usage: sdk_conformance.py ENDPOINT ACCESS_ID ACCESS_SECRET INSTANCE

The checks say how the real Tablestore service behaves (error codes, HTTP statuses and messages,
read and write semantics), so they can be pointed at the real service too. Every check prints
`ok: <what>` or `FAILED: <what>: <detail>`; all checks run, and the exit status is 1 if any failed.
Each section works on its own freshly created table, so sections do not depend on each other.

What the Python SDK 6.4.8 cannot express, and is therefore left to the Node suite
(tests/node/sdk_conformance.js): stream specifications on CreateTable/UpdateTable and stream
details in DescribeTable, the table status, ReturnType RT_AFTER_MODIFY, and ColumnPaginationFilter.
Neither SDK has ComputeSplitPointsBySize (`compute_splits` is the search-index API), so it is not
covered here.
"""
import logging
import os
import sys
import time
import traceback

logging.getLogger("tablestore").setLevel(logging.ERROR)  # "Native C++ encoder not available" notices
logging.getLogger().setLevel(logging.ERROR)

from tablestore import (INF_MAX, INF_MIN, PK_AUTO_INCR, BatchGetRowRequest,  # noqa: E402
                        BatchWriteRowRequest, CapacityUnit, ComparatorType, CompositeColumnCondition,
                        Condition, DeleteRowItem, Direction, LogicalOperator, OTSClient, OTSClientError,
                        OTSServiceError, PutRowItem, ReservedThroughput, ReturnType, Row,
                        RowExistenceExpectation, SingleColumnCondition, TableInBatchGetRowItem,
                        TableInBatchWriteRowItem, TableMeta, TableOptions, UpdateRowItem)
from tablestore.retry import NoRetryPolicy  # noqa: E402

if len(sys.argv) != 5:
    print("usage: sdk_conformance.py ENDPOINT ACCESS_ID ACCESS_SECRET INSTANCE", file=sys.stderr)
    sys.exit(2)
ENDPOINT, ACCESS_ID, ACCESS_SECRET, INSTANCE = sys.argv[1:5]
client = OTSClient(ENDPOINT, ACCESS_ID, ACCESS_SECRET, INSTANCE,
                   retry_policy=NoRetryPolicy(), socket_timeout=20)

IGNORE = RowExistenceExpectation.IGNORE
EXPECT_EXIST = RowExistenceExpectation.EXPECT_EXIST
EXPECT_NOT_EXIST = RowExistenceExpectation.EXPECT_NOT_EXIST
RUN_ID = "%d_%d" % (os.getpid(), int(time.time() * 1000) % 100000000)
MIB = 1024 * 1024
CONDITION_FAILED = "Condition check failed."

passed = []
failed = []


class Mismatch(Exception):
    pass


def check(what, fn):
    """Runs one check; an exception of any kind fails this check only."""
    try:
        fn()
    except Mismatch as ex:
        failed.append(what)
        print("FAILED: %s: %s" % (what, " ".join(str(ex).split())))
    except (OTSServiceError, OTSClientError) as ex:
        failed.append(what)
        print("FAILED: %s: unexpected %s" % (what, describe_error(ex)))
    except Exception as ex:  # noqa: BLE001 - report and carry on
        failed.append(what)
        tb = traceback.extract_tb(ex.__traceback__)[-1]
        print("FAILED: %s: %s: %s (line %d)" % (what, type(ex).__name__, str(ex)[:300], tb.lineno))
    else:
        passed.append(what)
        print("ok: %s" % what)


def describe_error(ex):
    if isinstance(ex, OTSServiceError):
        return "OTSServiceError(http %s, %s, %r)" % (ex.get_http_status(), ex.get_error_code(),
                                                     ex.get_error_message())
    if isinstance(ex, OTSClientError):
        return "OTSClientError(http %s, %r)" % (ex.get_http_status(), ex.get_error_message())
    return "%s: %s" % (type(ex).__name__, ex)


def plain(value):
    """SDK objects (Row, ...) as plain Python values, for messages."""
    if isinstance(value, Row):
        return {"primary_key": plain(value.primary_key), "attribute_columns": plain(value.attribute_columns)}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray)) and len(value) > 16:
        return "<%s of %d bytes>" % (type(value).__name__, len(value))
    if isinstance(value, str) and len(value) > 60:
        return value[:20] + "...<%d chars>" % len(value)
    return value


def short(value, limit=300):
    text = " ".join(repr(plain(value)).split())
    return text if len(text) <= limit else text[:limit] + "..."


def eq(actual, expected, what="value"):
    if actual != expected:
        raise Mismatch("%s: expected %s, got %s" % (what, short(expected), short(actual)))


def truthy(cond, detail):
    if not cond:
        raise Mismatch(detail)


def expect_error(fn, code, status, message=None, message_prefix=None, codes=None, statuses=None):
    """The call must fail with a service error (a protobuf Error body) of this code and status."""
    try:
        fn()
    except OTSServiceError as ex:
        problems = []
        if codes is not None:
            if ex.get_error_code() not in codes:
                problems.append("code %s not in %s" % (ex.get_error_code(), codes))
        elif ex.get_error_code() != code:
            problems.append("code %s, expected %s" % (ex.get_error_code(), code))
        if statuses is not None:
            if ex.get_http_status() not in statuses:
                problems.append("http %s not in %s" % (ex.get_http_status(), statuses))
        elif ex.get_http_status() != status:
            problems.append("http %s, expected %s" % (ex.get_http_status(), status))
        if message is not None and ex.get_error_message() != message:
            problems.append("message %r, expected %r" % (ex.get_error_message(), message))
        if message_prefix is not None and not str(ex.get_error_message()).startswith(message_prefix):
            problems.append("message %r, expected it to start with %r" % (ex.get_error_message(), message_prefix))
        if problems:
            raise Mismatch("; ".join(problems) + " [%s]" % describe_error(ex))
        return ex
    except OTSClientError as ex:
        raise Mismatch("expected a service error %s (http %s), got %s" % (code or codes, status or statuses,
                                                                          describe_error(ex)))
    raise Mismatch("expected %s (http %s), but the call succeeded" % (code or codes, status or statuses))


def table_name(section):
    return "conf_%s_%s" % (section, RUN_ID)


def create_table(section, name, schema, ttl=-1, max_version=1, deviation=86400):
    check("%s: create_table %s" % (section, name),
          lambda: client.create_table(TableMeta(name, schema), TableOptions(ttl, max_version, deviation),
                                      ReservedThroughput(CapacityUnit(0, 0))))


def drop_table(name):
    try:
        client.delete_table(name)
    except Exception:  # noqa: BLE001 - cleanup only
        pass


def now_ms():
    return int(time.time() * 1000)


def attrs(row):
    """{name: value} of the newest cell of each column (None for a missing row)."""
    if row is None:
        return None
    out = {}
    for name, value, _ts in row.attribute_columns:
        out.setdefault(name, value)
    return out


def cells(row, column=None):
    """[(name, value, ts)] of a row, optionally of one column only."""
    if row is None:
        return None
    return [tuple(c) for c in row.attribute_columns if column is None or c[0] == column]


def get(table, pk, **kwargs):
    kwargs.setdefault("max_version", 1)
    _, row, _ = client.get_row(table, pk, **kwargs)
    return row


def seqs(rows):
    return [r.primary_key[1][1] for r in rows]


def scan(table, start, end, direction=Direction.FORWARD, **kwargs):
    kwargs.setdefault("max_version", 1)
    _, next_start, rows, _ = client.get_range(table, direction, start, end, **kwargs)
    return rows, next_start


def section(fn):
    """Runs one section; an exception outside a check fails the section but not the suite."""
    try:
        fn()
    except Exception as ex:  # noqa: BLE001
        failed.append(fn.__name__)
        print("FAILED: section %s aborted: %s" % (fn.__name__, describe_error(ex)))
    return fn


# ------------------------------------------------------------------------------------------------
# Tables: create with options, describe, update, list, delete, and the errors of each.
# ------------------------------------------------------------------------------------------------
@section
def tables():
    t = table_name("tables")
    schema = [("pk", "STRING"), ("seq", "INTEGER")]
    meta = TableMeta(t, schema)
    check("tables: create_table with TTL -1, max versions 3, deviation 172800",
          lambda: client.create_table(meta, TableOptions(-1, 3, 172800), ReservedThroughput(CapacityUnit(0, 0))))
    check("tables: list_table shows the new table", lambda: truthy(t in client.list_table(), "%s not listed" % t))

    def describe_schema():
        d = client.describe_table(t)
        eq(d.table_meta.table_name, t, "table name")
        eq(list(d.table_meta.schema_of_primary_key), schema, "primary key schema")
    check("tables: describe_table returns the schema", describe_schema)

    def describe_options():
        o = client.describe_table(t).table_options
        eq((o.time_to_live, o.max_version, o.max_time_deviation), (-1, 3, 172800), "(ttl, max versions, deviation)")
    check("tables: describe_table returns the options", describe_options)

    def describe_throughput():
        cu = client.describe_table(t).reserved_throughput_details.capacity_unit
        eq((cu.read, cu.write), (0, 0), "reserved (read, write)")
    check("tables: describe_table returns the reserved throughput", describe_throughput)

    def update_max_versions():
        u = client.update_table(t, TableOptions(time_to_live=None, max_version=5, max_time_deviation=None))
        eq(u.table_options.max_version, 5, "max versions in the UpdateTable response")
        eq(u.table_options.time_to_live, -1, "TTL in the UpdateTable response")
        o = client.describe_table(t).table_options
        eq((o.time_to_live, o.max_version, o.max_time_deviation), (-1, 5, 172800),
           "(ttl, max versions, deviation) after a partial update")
    check("tables: update_table changes max versions and keeps the other options", update_max_versions)

    def update_ttl():
        client.update_table(t, TableOptions(time_to_live=86400, max_version=None, max_time_deviation=None))
        eq(client.describe_table(t).table_options.time_to_live, 86400, "TTL")
    check("tables: update_table sets TTL 86400", update_ttl)

    check("tables: update_table with TTL 3600 is OTSParameterInvalid (400)",
          lambda: expect_error(lambda: client.update_table(t, TableOptions(3600, None, None)),
                               "OTSParameterInvalid", 400))
    check("tables: a refused update leaves TTL unchanged",
          lambda: eq(client.describe_table(t).table_options.time_to_live, 86400, "TTL"))
    check("tables: update_table with max versions 0 is OTSParameterInvalid (400)",
          lambda: expect_error(lambda: client.update_table(t, TableOptions(None, 0, None)),
                               "OTSParameterInvalid", 400))
    create_again = lambda: client.create_table(meta, TableOptions(), ReservedThroughput(CapacityUnit(0, 0)))  # noqa: E731
    check("tables: creating it again is OTSObjectAlreadyExist (409)",
          lambda: expect_error(create_again, "OTSObjectAlreadyExist", 409))
    check("tables: ... with the message 'Requested table already exists.'",
          lambda: expect_error(create_again, "OTSObjectAlreadyExist", 409, message="Requested table already exists."))
    missing = table_name("missing")
    check("tables: describe_table of a missing table is OTSObjectNotExist (404)",
          lambda: expect_error(lambda: client.describe_table(missing), "OTSObjectNotExist", 404))
    check("tables: ... with the message 'Requested table does not exist.'",
          lambda: expect_error(lambda: client.describe_table(missing), "OTSObjectNotExist", 404,
                               message="Requested table does not exist."))
    short_ttl = table_name("ttl3600")
    check("tables: create_table with TTL 3600 is OTSParameterInvalid (400)",
          lambda: expect_error(lambda: client.create_table(TableMeta(short_ttl, schema), TableOptions(3600, 1, 86400),
                                                           ReservedThroughput(CapacityUnit(0, 0))),
                               "OTSParameterInvalid", 400))
    check("tables: the refused table was not created",
          lambda: truthy(short_ttl not in client.list_table(), "%s is listed" % short_ttl))
    drop_table(short_ttl)
    for bad in ("0bad", "bad-name", "bad#name"):
        check("tables: create_table named %r is OTSParameterInvalid (400)" % bad,
              lambda bad=bad: expect_error(lambda: client.create_table(TableMeta(bad, schema), TableOptions(),
                                                                       ReservedThroughput(CapacityUnit(0, 0))),
                                           "OTSParameterInvalid", 400, message="Invalid table name: '%s'." % bad))
    check("tables: delete_table removes it", lambda: (client.delete_table(t),
                                                       truthy(t not in client.list_table(), "still listed")))
    check("tables: describe_table after delete is OTSObjectNotExist (404)",
          lambda: expect_error(lambda: client.describe_table(t), "OTSObjectNotExist", 404))
    check("tables: delete_table of a missing table is OTSObjectNotExist (404)",
          lambda: expect_error(lambda: client.delete_table(t), "OTSObjectNotExist", 404))
    drop_table(t)


# ------------------------------------------------------------------------------------------------
# Single rows: values, versions, columns_to_get, updates, deletes, row existence conditions.
# ------------------------------------------------------------------------------------------------
@section
def rows():
    s = "rows"
    t = table_name(s)
    create_table(s, t, [("pk", "STRING"), ("seq", "INTEGER")], max_version=3)
    pk = [("pk", "a"), ("seq", 1)]
    base = now_ms() - 60000
    T1, T2, T3 = base, base + 1000, base + 2000

    def value_types():
        client.put_row(t, Row(pk, [("s", "text"), ("i", 42), ("f", 1.5), ("b", True),
                                   ("bin", bytearray(b"\x00\x01"))]))
        row = get(t, pk)
        eq(row.primary_key, pk, "primary key")
        values = attrs(row)
        eq(values, {"s": "text", "i": 42, "f": 1.5, "b": True, "bin": bytearray(b"\x00\x01")}, "values")
        eq([type(values[k]).__name__ for k in ("s", "i", "f", "b", "bin")],
           ["str", "int", "float", "bool", "bytearray"], "value types")
    check("rows: get_row reads every value type back", value_types)

    check("rows: put_row EXPECT_NOT_EXIST on an existing row is OTSConditionCheckFail (403)",
          lambda: expect_error(lambda: client.put_row(t, Row(pk, [("s", "x")]), Condition(EXPECT_NOT_EXIST)),
                               "OTSConditionCheckFail", 403, message=CONDITION_FAILED))
    check("rows: the refused put changed nothing", lambda: eq(attrs(get(t, pk, columns_to_get=["s"])),
                                                               {"s": "text"}, "row"))
    check("rows: columns_to_get returns only those columns",
          lambda: eq(sorted(attrs(get(t, pk, columns_to_get=["s", "i"])).items()), [("i", 42), ("s", "text")],
                     "columns"))
    check("rows: columns_to_get naming only absent columns returns no row",
          lambda: eq(get(t, pk, columns_to_get=["nope"]), None, "row"))
    check("rows: get_row of a missing row returns None",
          lambda: eq(get(t, [("pk", "missing"), ("seq", 1)]), None, "row"))

    def put_replaces():
        p = [("pk", "replace"), ("seq", 1)]
        client.put_row(t, Row(p, [("a", 1), ("b", 2)]))
        client.put_row(t, Row(p, [("c", 3)]))
        eq(attrs(get(t, p)), {"c": 3}, "row after the second put")
    check("rows: put_row replaces the whole row", put_replaces)

    vpk = [("pk", "versions"), ("seq", 1)]

    def versions():
        client.put_row(t, Row(vpk, [("v", "a", T1)]))
        client.update_row(t, Row(vpk, {"put": [("v", "b", T2)]}), Condition(EXPECT_EXIST))
        client.update_row(t, Row(vpk, {"put": [("v", "c", T3)]}), Condition(EXPECT_EXIST))
        eq(cells(get(t, vpk, max_version=3)), [("v", "c", T3), ("v", "b", T2), ("v", "a", T1)], "max_version=3")
    check("rows: explicit timestamps keep several versions, newest first", versions)
    check("rows: max_version=2 returns the two newest versions",
          lambda: eq(cells(get(t, vpk, max_version=2)), [("v", "c", T3), ("v", "b", T2)], "cells"))
    check("rows: max_version=1 returns the newest version",
          lambda: eq(cells(get(t, vpk, max_version=1)), [("v", "c", T3)], "cells"))

    def put_versions_and_delete_all():
        client.update_row(t, Row(pk, {"put": [("s", "v2", T1), ("s", "v3", T2)], "delete_all": ["i"]}),
                          Condition(EXPECT_EXIST))
        row = get(t, pk, max_version=3, columns_to_get=["s", "i"])
        got = cells(row)
        eq([c for c in got if c[0] == "s"][1:], [("s", "v3", T2), ("s", "v2", T1)], "older versions of s")
        eq([c for c in got if c[0] == "i"], [], "cells of i")
    check("rows: update_row puts versions and deletes all versions of a column", put_versions_and_delete_all)

    def delete_one_version():
        client.update_row(t, Row(pk, {"delete": [("s", None, T1)]}), Condition(IGNORE))
        eq([ts for _, _, ts in cells(get(t, pk, max_version=3, columns_to_get=["s"]))][1:], [T2], "older versions")
    check("rows: update_row deletes one version", delete_one_version)

    cpk = [("pk", "counter"), ("seq", 1)]

    def increments():
        client.update_row(t, Row(cpk, {"increment": [("cnt", 1)]}), Condition(IGNORE))
        eq(attrs(get(t, cpk)), {"cnt": 1}, "after +1 on a missing column")
        client.update_row(t, Row(cpk, {"increment": [("cnt", 5)]}), Condition(EXPECT_EXIST))
        eq(attrs(get(t, cpk)), {"cnt": 6}, "after +5")
        client.update_row(t, Row(cpk, {"increment": [("cnt", -2)]}), Condition(EXPECT_EXIST))
        eq(attrs(get(t, cpk)), {"cnt": 4}, "after -2")
    check("rows: update_row increment counts from 0 and adds", increments)

    def mixed_update():
        client.update_row(t, Row(cpk, {"put": [("p", "x")], "delete_all": ["cnt"], "increment": [("k", 3)]}),
                          Condition(EXPECT_EXIST))
        eq(attrs(get(t, cpk)), {"p": "x", "k": 3}, "row")
    check("rows: update_row combines put, delete_all and increment", mixed_update)

    missing_pk = [("pk", "absent"), ("seq", 1)]
    check("rows: update_row EXPECT_EXIST on a missing row is OTSConditionCheckFail (403)",
          lambda: expect_error(lambda: client.update_row(t, Row(missing_pk, {"put": [("x", 1)]}),
                                                         Condition(EXPECT_EXIST)),
                               "OTSConditionCheckFail", 403, message=CONDITION_FAILED))
    check("rows: put_row EXPECT_EXIST on a missing row is OTSConditionCheckFail (403)",
          lambda: expect_error(lambda: client.put_row(t, Row(missing_pk, [("x", 1)]), Condition(EXPECT_EXIST)),
                               "OTSConditionCheckFail", 403, message=CONDITION_FAILED))
    check("rows: refused writes created no row", lambda: eq(get(t, missing_pk), None, "row"))

    def delete_only_update():
        client.update_row(t, Row(missing_pk, {"delete_all": ["x"]}), Condition(IGNORE))
        eq(get(t, missing_pk), None, "row")
    check("rows: update_row that only deletes columns of a missing row creates no row", delete_only_update)

    def expect_not_exist_ok():
        p = [("pk", "fresh"), ("seq", 1)]
        client.put_row(t, Row(p, [("x", 1)]), Condition(EXPECT_NOT_EXIST))
        eq(attrs(get(t, p)), {"x": 1}, "row")
    check("rows: put_row EXPECT_NOT_EXIST on a missing row writes it", expect_not_exist_ok)

    def return_pk():
        p = [("pk", "rtpk"), ("seq", 7)]
        _, rr = client.put_row(t, Row(p, [("x", 1)]), Condition(IGNORE), return_type=ReturnType.RT_PK)
        truthy(rr is not None, "no row returned")
        eq(rr.primary_key, p, "returned primary key")
        _, none = client.put_row(t, Row(p, [("x", 2)]), Condition(IGNORE))
        eq(none, None, "row returned without a return type")
    check("rows: put_row RT_PK returns the primary key (and nothing without it)", return_pk)

    def update_return_pk():
        p = [("pk", "rtpk"), ("seq", 7)]
        _, rr = client.update_row(t, Row(p, {"put": [("y", 1)]}), Condition(IGNORE), return_type=ReturnType.RT_PK)
        truthy(rr is not None, "no row returned")
        eq(rr.primary_key, p, "returned primary key")
    check("rows: update_row RT_PK returns the primary key", update_return_pk)

    def delete_row():
        client.delete_row(t, Row(pk), Condition(IGNORE))
        eq(get(t, pk), None, "row")
    check("rows: delete_row removes the row", delete_row)
    check("rows: delete_row EXPECT_EXIST on a missing row is OTSConditionCheckFail (403)",
          lambda: expect_error(lambda: client.delete_row(t, Row(pk), Condition(EXPECT_EXIST)),
                               "OTSConditionCheckFail", 403, message=CONDITION_FAILED))
    # The service checks keys against the schema with OTSInvalidPK (Python SDK row_op_test.py,
    # Java DataOperationTest). In batches the same errors are per row.
    check("rows: a key of the wrong type is OTSInvalidPK (400)",
          lambda: expect_error(lambda: client.put_row(t, Row([("pk", 1), ("seq", 1)], [("v", 1)])),
                               "OTSInvalidPK", 400, message="Validate PK type fail. Input: VT_INTEGER, Meta: VT_STRING."))
    check("rows: a key missing a column is OTSInvalidPK (400)",
          lambda: expect_error(lambda: client.get_row(t, [("pk", "a")], max_version=1),
                               "OTSInvalidPK", 400, message="Validate PK size fail. Input: 1, Meta: 2."))
    check("rows: a key with a wrong column name is OTSInvalidPK (400)",
          lambda: expect_error(lambda: client.get_row(t, [("pk", "a"), ("sq", 1)], max_version=1),
                               "OTSInvalidPK", 400, message="Validate PK name fail. Input: sq, Meta: seq."))

    def batch_wrong_key():
        req = BatchGetRowRequest()
        req.add(TableInBatchGetRowItem(t, [[("pk", "fresh"), ("seq", 1)], [("pk", "fresh"), ("seq", "1")]],
                                       max_version=1))
        got = client.batch_get_row(req).get_result_by_table(t)
        eq([r.is_ok for r in got], [True, False], "is_ok")
        eq(attrs(got[0].row), {"x": 1}, "good row")
        eq((got[1].error_code, got[1].error_message),
           ("OTSInvalidPK", "Validate PK type fail. Input: VT_STRING, Meta: VT_INTEGER."), "error of the bad row")
    check("rows: batch_get_row reports a wrong key type per row (OTSInvalidPK)", batch_wrong_key)
    check("rows: get_row on a missing table is OTSObjectNotExist (404)",
          lambda: expect_error(lambda: client.get_row(table_name("nosuch"), pk, max_version=1),
                               "OTSObjectNotExist", 404))
    check("rows: ... with the message 'Requested table does not exist.'",
          lambda: expect_error(lambda: client.get_row(table_name("nosuch"), pk, max_version=1),
                               "OTSObjectNotExist", 404, message="Requested table does not exist."))
    drop_table(t)


# ------------------------------------------------------------------------------------------------
# Auto-increment primary keys with ReturnType.RT_PK.
# ------------------------------------------------------------------------------------------------
@section
def auto_increment():
    s = "autoinc"
    t = table_name(s)
    create_table(s, t, [("pk", "STRING"), ("id", "INTEGER", PK_AUTO_INCR)])
    ids = []

    def put_generates():
        _, rr = client.put_row(t, Row([("pk", "x"), ("id", PK_AUTO_INCR)], [("c", "v1")]), Condition(IGNORE),
                               return_type=ReturnType.RT_PK)
        truthy(rr is not None, "no row returned")
        eq([n for n, _ in rr.primary_key], ["pk", "id"], "returned key names")
        eq(rr.primary_key[0], ("pk", "x"), "partition key")
        truthy(isinstance(rr.primary_key[1][1], int) and rr.primary_key[1][1] > 0,
               "generated id %r is not a positive integer" % (rr.primary_key[1][1],))
        ids.append(rr.primary_key[1][1])
    check("autoinc: put_row with PK_AUTO_INCR and RT_PK returns the generated key", put_generates)
    check("autoinc: the generated key reads the row back",
          lambda: (truthy(ids, "no generated id"), eq(attrs(get(t, [("pk", "x"), ("id", ids[0])])), {"c": "v1"}, "row")))

    def second_put():
        _, rr = client.put_row(t, Row([("pk", "x"), ("id", PK_AUTO_INCR)], [("c", "v2")]), Condition(IGNORE),
                               return_type=ReturnType.RT_PK)
        truthy(rr is not None and ids, "no row returned")
        ids.append(rr.primary_key[1][1])
        truthy(ids[1] > ids[0], "second id %r is not greater than %r" % (ids[1], ids[0]))
    check("autoinc: a second put gets a greater id", second_put)

    def update_generates():
        _, rr = client.update_row(t, Row([("pk", "x"), ("id", PK_AUTO_INCR)], {"put": [("c", "v3")]}),
                                  Condition(IGNORE), return_type=ReturnType.RT_PK)
        truthy(rr is not None, "no row returned")
        gen = rr.primary_key[1][1]
        truthy(isinstance(gen, int) and gen > max(ids, default=0), "generated id %r, previous %r" % (gen, ids))
        eq(attrs(get(t, [("pk", "x"), ("id", gen)])), {"c": "v3"}, "row")
        ids.append(gen)
    check("autoinc: update_row with PK_AUTO_INCR and RT_PK returns the generated key", update_generates)

    def put_without_return():
        lo, hi = [("pk", "x"), ("id", INF_MIN)], [("pk", "x"), ("id", INF_MAX)]
        before = scan(t, lo, hi)[0]
        _, rr = client.put_row(t, Row([("pk", "x"), ("id", PK_AUTO_INCR)], [("c", "v4")]), Condition(IGNORE))
        eq(rr, None, "returned row")
        after = scan(t, lo, hi)[0]
        eq(len(after), len(before) + 1, "number of rows")
        eq(attrs(after[-1]), {"c": "v4"}, "row with the greatest id")
    check("autoinc: put_row without a return type still writes a row with a new id", put_without_return)

    def batch_generates():
        req = BatchWriteRowRequest()
        req.add(TableInBatchWriteRowItem(t, [
            PutRowItem(Row([("pk", "y"), ("id", PK_AUTO_INCR)], [("c", "b1")]), Condition(IGNORE),
                       return_type=ReturnType.RT_PK)]))
        res = client.batch_write_row(req)
        succ, fail = res.get_put()
        eq((len(succ), len(fail)), (1, 0), "(succeeded, failed)")
        key = succ[0].row.primary_key
        truthy(key is not None and key[0] == ("pk", "y") and isinstance(key[1][1], int),
               "returned key %r" % (key,))
        eq(attrs(get(t, key)), {"c": "b1"}, "row")
    check("autoinc: batch_write_row put with PK_AUTO_INCR and RT_PK returns the generated key", batch_generates)
    check("autoinc: PK_AUTO_INCR in a get_row key is OTSParameterInvalid (400)",
          lambda: expect_error(lambda: client.get_row(t, [("pk", "x"), ("id", PK_AUTO_INCR)], max_version=1),
                               "OTSParameterInvalid", 400))
    drop_table(t)


# ------------------------------------------------------------------------------------------------
# Column conditions on writes (single, composite, pass_if_missing, latest_version_only).
# ------------------------------------------------------------------------------------------------
@section
def column_conditions():
    s = "colcond"
    t = table_name(s)
    create_table(s, t, [("pk", "STRING")], max_version=3)
    pk = [("pk", "c")]
    base = now_ms() - 60000
    counter = [0]

    def reset():
        client.put_row(t, Row(pk, [("i", 42), ("s", "text"), ("mv", "old", base)]))
        client.update_row(t, Row(pk, {"put": [("mv", "new", base + 1000)]}), Condition(IGNORE))

    def single(col, value, comp, pass_if_missing=True, latest_version_only=True):
        return SingleColumnCondition(col, value, comp, pass_if_missing=pass_if_missing,
                                     latest_version_only=latest_version_only)

    def composite(op, *subs):
        c = CompositeColumnCondition(op)
        for sub in subs:
            c.add_sub_condition(sub)
        return c

    def conditional_update(what, cond, applies, existence=IGNORE, op="update"):
        def run():
            reset()
            counter[0] += 1
            marker = counter[0]
            condition = Condition(existence, cond)
            if op == "update":
                write = lambda: client.update_row(t, Row(pk, {"put": [("w", marker)]}), condition)
            elif op == "put":
                write = lambda: client.put_row(t, Row(pk, [("i", 42), ("s", "text"), ("w", marker)]), condition)
            else:
                write = lambda: client.delete_row(t, Row(pk), condition)
            if applies:
                write()
            else:
                expect_error(write, "OTSConditionCheckFail", 403, message=CONDITION_FAILED)
            row = get(t, pk)
            if op == "delete":
                eq(row is None, applies, "row deleted")
            else:
                eq((row and attrs(row).get("w")), marker if applies else None, "the write was applied")
        check("colcond: %s %s" % (what, "succeeds" if applies else "is OTSConditionCheckFail (403)"), run)

    EQ, NE, GT, LT = (ComparatorType.EQUAL, ComparatorType.NOT_EQUAL, ComparatorType.GREATER_THAN,
                      ComparatorType.LESS_THAN)
    conditional_update("update_row with i == 42", single("i", 42, EQ), True)
    conditional_update("update_row with i == 43", single("i", 43, EQ), False)
    conditional_update("put_row with i == 42", single("i", 42, EQ), True, op="put")
    conditional_update("put_row with i != 42", single("i", 42, NE), False, op="put")
    conditional_update("update_row with i > 40", single("i", 40, GT), True)
    conditional_update("update_row with s < 'text'", single("s", "text", LT), False)
    conditional_update("update_row with EXPECT_EXIST and s == 'text'", single("s", "text", EQ), True,
                       existence=EXPECT_EXIST)
    conditional_update("update_row with i == '42' (a string against an integer)", single("i", "42", EQ), False)
    conditional_update("update_row with AND(i == 42, s == 'text')",
                       composite(LogicalOperator.AND, single("i", 42, EQ), single("s", "text", EQ)), True)
    conditional_update("update_row with AND(i == 42, s == 'other')",
                       composite(LogicalOperator.AND, single("i", 42, EQ), single("s", "other", EQ)), False)
    conditional_update("update_row with OR(i == 0, s == 'text')",
                       composite(LogicalOperator.OR, single("i", 0, EQ), single("s", "text", EQ)), True)
    conditional_update("update_row with OR(i == 0, s == 'other')",
                       composite(LogicalOperator.OR, single("i", 0, EQ), single("s", "other", EQ)), False)
    conditional_update("update_row with NOT(i == 43)", composite(LogicalOperator.NOT, single("i", 43, EQ)), True)
    conditional_update("update_row with NOT(i == 42)", composite(LogicalOperator.NOT, single("i", 42, EQ)), False)
    conditional_update("update_row on a missing column with pass_if_missing=True",
                       single("nope", 1, EQ, pass_if_missing=True), True)
    conditional_update("update_row on a missing column with pass_if_missing=False",
                       single("nope", 1, EQ, pass_if_missing=False), False)
    conditional_update("update_row with mv == 'old' on the newest version only",
                       single("mv", "old", EQ, latest_version_only=True), False)
    conditional_update("update_row with mv == 'old' on any version (latest_version_only=False)",
                       single("mv", "old", EQ, latest_version_only=False), True)
    conditional_update("delete_row with i == 43", single("i", 43, EQ), False, op="delete")
    conditional_update("delete_row with i == 42", single("i", 42, EQ), True, op="delete")

    def missing_row_condition():
        p = [("pk", "absent")]
        expect_error(lambda: client.update_row(t, Row(p, {"put": [("w", 1)]}),
                                               Condition(EXPECT_EXIST, single("i", 42, EQ))),
                     "OTSConditionCheckFail", 403, message=CONDITION_FAILED)
        eq(get(t, p), None, "row")
    check("colcond: EXPECT_EXIST with a column condition on a missing row is OTSConditionCheckFail (403)",
          missing_row_condition)
    drop_table(t)


# ------------------------------------------------------------------------------------------------
# BatchWriteRow / BatchGetRow.
# ------------------------------------------------------------------------------------------------
@section
def batch():
    s = "batch"
    t = table_name(s)
    create_table(s, t, [("pk", "STRING"), ("seq", "INTEGER")])
    items = [PutRowItem(Row([("pk", "batch"), ("seq", i)], [("v", i), ("w", "x%d" % i)]), Condition(IGNORE))
             for i in range(200)]

    def write_200():
        request = BatchWriteRowRequest()
        request.add(TableInBatchWriteRowItem(t, items))
        succeeded, failed_ = client.batch_write_row(request).get_put()
        eq((len(succeeded), len(failed_)), (200, 0), "(succeeded, failed)")
        eq([r.index for r in succeeded], list(range(200)), "result order")
    check("batch: batch_write_row of 200 rows succeeds row by row", write_200)

    def too_many():
        request = BatchWriteRowRequest()
        request.add(TableInBatchWriteRowItem(t, items + [PutRowItem(Row([("pk", "batch"), ("seq", 999)], [("v", 0)]),
                                                                    Condition(IGNORE))]))
        expect_error(lambda: client.batch_write_row(request), "OTSParameterInvalid", 400,
                     message="Rows count exceeds the upper limit: 200.")
        eq(get(t, [("pk", "batch"), ("seq", 999)]), None, "row 999")
    check("batch: 201 rows is OTSParameterInvalid (400) and writes nothing", too_many)

    def pages_200():
        seen = []
        start = [("pk", "batch"), ("seq", INF_MIN)]
        end = [("pk", "batch"), ("seq", INF_MAX)]
        pages = 0
        while start is not None and pages < 10:
            rows_, start = scan(t, start, end, limit=64)
            seen.extend(seqs(rows_))
            pages += 1
        eq(seen, list(range(200)), "sequence numbers")
    check("batch: forward get_range pages through 200 rows in order", pages_200)
    check("batch: backward get_range returns the last rows first",
          lambda: eq(seqs(scan(t, [("pk", "batch"), ("seq", INF_MAX)], [("pk", "batch"), ("seq", INF_MIN)],
                               Direction.BACKWARD, limit=5)[0]), [199, 198, 197, 196, 195], "sequence numbers"))

    def key(name):
        return [("pk", name), ("seq", 0)]

    result = {}

    def mixed():
        client.put_row(t, Row(key("m_update"), [("v", 1)]))
        client.put_row(t, Row(key("m_delete"), [("v", 1)]))
        request = BatchWriteRowRequest()
        request.add(TableInBatchWriteRowItem(t, [
            PutRowItem(Row(key("m_put"), [("v", 10)]), Condition(IGNORE), return_type=ReturnType.RT_PK),
            UpdateRowItem(Row(key("m_update"), {"put": [("v", 20)], "increment": [("n", 2)]}),
                          Condition(EXPECT_EXIST), return_type=ReturnType.RT_PK),
            DeleteRowItem(Row(key("m_delete")), Condition(EXPECT_EXIST)),
            PutRowItem(Row(key("m_missing"), [("v", 30)]), Condition(EXPECT_EXIST)),
        ]))
        res = result["mixed"] = client.batch_write_row(request)
        eq(res.is_all_succeed(), False, "is_all_succeed()")
        put_ok, put_fail = res.get_put()
        upd_ok, upd_fail = res.get_update()
        del_ok, del_fail = res.get_delete()
        eq(([r.index for r in put_ok], [r.index for r in put_fail]), ([0], [3]), "put (ok, failed) indexes")
        eq(([r.index for r in upd_ok], [r.index for r in upd_fail]), ([1], []), "update (ok, failed) indexes")
        eq(([r.index for r in del_ok], [r.index for r in del_fail]), ([2], []), "delete (ok, failed) indexes")
        eq((put_fail[0].error_code, put_fail[0].error_message), ("OTSConditionCheckFail", CONDITION_FAILED),
           "error of the failed row")
    check("batch: batch_write_row mixes put/update/delete with per-row results and one failing row", mixed)

    def mixed_effects():
        eq(attrs(get(t, key("m_put"))), {"v": 10}, "m_put")
        eq(attrs(get(t, key("m_update"))), {"v": 20, "n": 2}, "m_update")
        eq(get(t, key("m_delete")), None, "m_delete")
        eq(get(t, key("m_missing")), None, "m_missing")
    check("batch: the ok rows were written and the failing row was not", mixed_effects)

    def mixed_return_types():
        res = result["mixed"]
        eq(res.get_put()[0][0].row.primary_key, key("m_put"), "RT_PK of the put")
        eq(res.get_update()[0][0].row.primary_key, key("m_update"), "RT_PK of the update")
        eq(res.get_delete()[0][0].row.primary_key, None, "row of the delete (no return type)")
    check("batch: RT_PK rows of batch_write_row return their primary keys", mixed_return_types)

    def column_condition_rows():
        client.put_row(t, Row(key("c_ok"), [("v", 1)]))
        client.put_row(t, Row(key("c_fail"), [("v", 1)]))
        request = BatchWriteRowRequest()
        request.add(TableInBatchWriteRowItem(t, [
            UpdateRowItem(Row(key("c_ok"), {"put": [("v", 2)]}),
                          Condition(IGNORE, SingleColumnCondition("v", 1, ComparatorType.EQUAL))),
            UpdateRowItem(Row(key("c_fail"), {"put": [("v", 2)]}),
                          Condition(IGNORE, SingleColumnCondition("v", 999, ComparatorType.EQUAL))),
        ]))
        upd_ok, upd_fail = client.batch_write_row(request).get_update()
        eq(([r.index for r in upd_ok], [r.index for r in upd_fail]), ([0], [1]), "(ok, failed) indexes")
        eq((upd_fail[0].error_code, upd_fail[0].error_message), ("OTSConditionCheckFail", CONDITION_FAILED),
           "error of the failed row")
        eq((attrs(get(t, key("c_ok"))), attrs(get(t, key("c_fail")))), ({"v": 2}, {"v": 1}), "(c_ok, c_fail)")
    check("batch: a column condition fails only its own row", column_condition_rows)

    def batch_get():
        req = BatchGetRowRequest()
        req.add(TableInBatchGetRowItem(t, [[("pk", "batch"), ("seq", 5)], [("pk", "batch"), ("seq", 5000)],
                                           [("pk", "batch"), ("seq", 7)]], columns_to_get=["v"], max_version=1))
        got = client.batch_get_row(req).get_result_by_table(t)
        eq(len(got), 3, "number of results")
        eq([r.is_ok for r in got], [True, True, True], "is_ok")
        eq(got[0].row.primary_key, [("pk", "batch"), ("seq", 5)], "first key")
        eq(attrs(got[0].row), {"v": 5}, "first row (only v)")
        eq(got[1].row, None, "missing row")
        eq(got[2].row.primary_key, [("pk", "batch"), ("seq", 7)], "third key")
        eq(attrs(got[2].row), {"v": 7}, "third row (only v)")
    check("batch: batch_get_row returns rows in request order, None for a missing row, only columns_to_get",
          batch_get)

    def batch_get_all_columns():
        req = BatchGetRowRequest()
        req.add(TableInBatchGetRowItem(t, [[("pk", "batch"), ("seq", 9)]], max_version=1))
        got = client.batch_get_row(req).get_result_by_table(t)
        eq(attrs(got[0].row), {"v": 9, "w": "x9"}, "row")
    check("batch: batch_get_row without columns_to_get returns every column", batch_get_all_columns)

    def batch_get_two_tables():
        other = table_name("batch2")
        client.create_table(TableMeta(other, [("k", "INTEGER")]), TableOptions(-1, 1, 86400),
                            ReservedThroughput(CapacityUnit(0, 0)))
        try:
            client.put_row(other, Row([("k", 1)], [("o", "other")]))
            req = BatchGetRowRequest()
            req.add(TableInBatchGetRowItem(t, [[("pk", "batch"), ("seq", 1)]], max_version=1))
            req.add(TableInBatchGetRowItem(other, [[("k", 1)]], max_version=1))
            got = client.batch_get_row(req)
            eq(attrs(got.get_result_by_table(t)[0].row), {"v": 1, "w": "x1"}, "row of the first table")
            eq(attrs(got.get_result_by_table(other)[0].row), {"o": "other"}, "row of the second table")
        finally:
            drop_table(other)
    check("batch: batch_get_row over two tables", batch_get_two_tables)
    drop_table(t)


# ------------------------------------------------------------------------------------------------
# GetRange: directions, INF bounds, limit and paging, errors, empty ranges.
# ------------------------------------------------------------------------------------------------
@section
def ranges():
    s = "range"
    t = table_name(s)
    create_table(s, t, [("pk", "STRING"), ("seq", "INTEGER")])
    R = lambda i: [("pk", "r"), ("seq", i)]  # noqa: E731
    lo, hi = [("pk", "r"), ("seq", INF_MIN)], [("pk", "r"), ("seq", INF_MAX)]

    def load():
        request = BatchWriteRowRequest()
        rows_ = [PutRowItem(Row(R(i), [("v", i), ("w", "x")]), Condition(IGNORE)) for i in range(10)]
        rows_ += [PutRowItem(Row([("pk", p), ("seq", 0)], [("v", -1)]), Condition(IGNORE)) for p in ("a", "z")]
        request.add(TableInBatchWriteRowItem(t, rows_))
        truthy(client.batch_write_row(request).is_all_succeed(), "a row failed")
    check("range: load 12 rows", load)

    def forward():
        rows_, nxt = scan(t, lo, hi)
        eq(seqs(rows_), list(range(10)), "sequence numbers")
        eq(nxt, None, "next_start_primary_key")
        eq(rows_[3].primary_key, R(3), "primary key")
        eq(attrs(rows_[3]), {"v": 3, "w": "x"}, "attributes")
    check("range: forward INF_MIN..INF_MAX returns the partition in order", forward)

    def backward():
        rows_, nxt = scan(t, hi, lo, Direction.BACKWARD)
        eq(seqs(rows_), list(range(9, -1, -1)), "sequence numbers")
        eq(nxt, None, "next_start_primary_key")
    check("range: backward INF_MAX..INF_MIN returns the partition in reverse", backward)

    def whole_table():
        rows_, _ = scan(t, [("pk", INF_MIN), ("seq", INF_MIN)], [("pk", INF_MAX), ("seq", INF_MAX)])
        eq([r.primary_key[0][1] for r in rows_], ["a"] + ["r"] * 10 + ["z"], "partition keys")
    check("range: INF_MIN..INF_MAX on every key column returns the whole table", whole_table)

    check("range: inclusive start, exclusive end",
          lambda: eq(seqs(scan(t, R(3), R(7))[0]), [3, 4, 5, 6], "sequence numbers"))
    check("range: backward from an inclusive start to an exclusive end",
          lambda: eq(seqs(scan(t, R(7), R(3), Direction.BACKWARD)[0]), [7, 6, 5, 4], "sequence numbers"))

    def paging():
        page1, nxt = scan(t, lo, hi, limit=6)
        eq(seqs(page1), [0, 1, 2, 3, 4, 5], "page 1")
        eq(nxt, R(6), "next_start_primary_key after page 1")
        page2, nxt2 = scan(t, nxt, hi, limit=6)
        eq(seqs(page2), [6, 7, 8, 9], "page 2")
        eq(nxt2, None, "next_start_primary_key after page 2")
    check("range: limit 6 pages through 10 rows in two pages with next_start_primary_key", paging)

    def backward_paging():
        page1, nxt = scan(t, hi, lo, Direction.BACKWARD, limit=4)
        eq(seqs(page1), [9, 8, 7, 6], "page 1")
        eq(nxt, R(5), "next_start_primary_key")
    check("range: backward limit returns next_start_primary_key", backward_paging)

    def xget():
        got = list(client.xget_range(t, Direction.FORWARD, lo, hi, CapacityUnit(0, 0), max_version=1))
        eq(seqs(got), list(range(10)), "sequence numbers")
    check("range: xget_range iterates every row", xget)

    check("range: columns_to_get returns only those columns and the full key",
          lambda: eq([(r.primary_key, attrs(r)) for r in scan(t, R(0), R(2), columns_to_get=["w"])[0]],
                     [(R(0), {"w": "x"}), (R(1), {"w": "x"})], "rows"))
    check("range: an empty range returns no rows and no next key",
          lambda: eq(scan(t, R(100), R(200)), ([], None), "(rows, next)"))
    check("range: (a, INF_MAX)..(b, INF_MIN) is a valid empty range",
          lambda: eq(scan(t, [("pk", "a"), ("seq", INF_MAX)], [("pk", "b"), ("seq", INF_MIN)]), ([], None),
                     "(rows, next)"))
    check("range: forward with start after end is OTSParameterInvalid (400)",
          lambda: expect_error(lambda: scan(t, R(7), R(3)), "OTSParameterInvalid", 400,
                               message_prefix="Begin key must less than end key in FORWARD"))
    check("range: forward with start equal to end is OTSParameterInvalid (400)",
          lambda: expect_error(lambda: scan(t, R(3), R(3)), "OTSParameterInvalid", 400,
                               message_prefix="Begin key must less than end key in FORWARD"))
    check("range: backward with start before end is OTSParameterInvalid (400)",
          lambda: expect_error(lambda: scan(t, R(3), R(7), Direction.BACKWARD), "OTSParameterInvalid", 400,
                               message_prefix="Begin key must more than end key in BACKWARD"))
    check("range: limit 0 is OTSParameterInvalid (400)",
          lambda: expect_error(lambda: scan(t, lo, hi, limit=0), "OTSParameterInvalid", 400,
                               message="The limit must be greater than 0."))
    check("range: get_range on a missing table is OTSObjectNotExist (404)",
          lambda: expect_error(lambda: scan(table_name("nosuch"), lo, hi), "OTSObjectNotExist", 404))
    drop_table(t)


# ------------------------------------------------------------------------------------------------
# Filters on reads (get_row, get_range, batch_get_row), start_column / end_column.
# ------------------------------------------------------------------------------------------------
@section
def filters():
    s = "filter"
    t = table_name(s)
    create_table(s, t, [("pk", "STRING"), ("seq", "INTEGER")], max_version=3)
    F = lambda i: [("pk", "f"), ("seq", i)]  # noqa: E731
    lo, hi = F(INF_MIN), F(INF_MAX)
    base = now_ms() - 60000
    EQ, NE, GT, GE, LT, LE = (ComparatorType.EQUAL, ComparatorType.NOT_EQUAL, ComparatorType.GREATER_THAN,
                              ComparatorType.GREATER_EQUAL, ComparatorType.LESS_THAN, ComparatorType.LESS_EQUAL)

    def load():
        for i in range(5):
            client.put_row(t, Row(F(i), [("v", i * 10), ("s", "s%d" % i)]))
        client.put_row(t, Row(F(5), [("s", "s5")]))                          # no v
        client.put_row(t, Row(F(6), [("v", 60), ("mv", "old", base)]))
        client.update_row(t, Row(F(6), {"put": [("mv", "new", base + 1000)]}), Condition(IGNORE))
        client.put_row(t, Row([("pk", "g"), ("seq", 0)], [("a", 1), ("b", 2), ("c", 3), ("d", 4)]))
    check("filter: load rows", load)

    def single(col, value, comp, pass_if_missing=False, latest_version_only=True):
        return SingleColumnCondition(col, value, comp, pass_if_missing=pass_if_missing,
                                     latest_version_only=latest_version_only)

    def composite(op, *subs):
        c = CompositeColumnCondition(op)
        for sub in subs:
            c.add_sub_condition(sub)
        return c

    def range_check(what, column_filter, expected, start=None, end=None, **kwargs):
        check("filter: get_range with %s" % what,
              lambda: eq(seqs(scan(t, start or lo, end or hi, column_filter=column_filter, **kwargs)[0]), expected,
                         "sequence numbers"))

    check("filter: get_row with v == 20 returns the matching row",
          lambda: eq(attrs(get(t, F(2), column_filter=single("v", 20, EQ))), {"v": 20, "s": "s2"}, "row"))
    check("filter: get_row with v == 20 on another row returns None",
          lambda: eq(get(t, F(1), column_filter=single("v", 20, EQ)), None, "row"))
    check("filter: get_row with v == '20' (string against integer) returns None",
          lambda: eq(get(t, F(2), column_filter=single("v", "20", EQ)), None, "row"))
    check("filter: get_row filtering on a column outside columns_to_get treats it as missing",
          lambda: eq(get(t, F(2), columns_to_get=["s"], column_filter=single("v", 20, EQ)), None, "row"))
    range_check("v == 20", single("v", 20, EQ), [2])
    range_check("v != 20 (pass_if_missing=False)", single("v", 20, NE), [0, 1, 3, 4, 6])
    range_check("v > 20 (pass_if_missing=False)", single("v", 20, GT), [3, 4, 6])
    range_check("v > 20 (pass_if_missing=True)", single("v", 20, GT, pass_if_missing=True), [3, 4, 5, 6])
    range_check("v >= 20", single("v", 20, GE), [2, 3, 4, 6])
    range_check("v < 20", single("v", 20, LT), [0, 1])
    range_check("v <= 20", single("v", 20, LE), [0, 1, 2])
    range_check("s > 's3' (strings compare bytewise)", single("s", "s3", GT), [4, 5])
    range_check("mv == 'old' on the newest version only", single("mv", "old", EQ), [], max_version=2)
    range_check("mv == 'old' on any version (latest_version_only=False)",
                single("mv", "old", EQ, latest_version_only=False), [6], max_version=2)
    range_check("mv == 'new' on the newest version", single("mv", "new", EQ), [6])
    range_check("AND(v >= 20, v < 40)", composite(LogicalOperator.AND, single("v", 20, GE), single("v", 40, LT)),
                [2, 3])
    range_check("OR(v == 10, v == 40)", composite(LogicalOperator.OR, single("v", 10, EQ), single("v", 40, EQ)),
                [1, 4])
    range_check("NOT(v == 10) over rows that have v", composite(LogicalOperator.NOT, single("v", 10, EQ)),
                [0, 2, 3, 4], start=F(0), end=F(5))
    range_check("OR(AND(v >= 10, v <= 20), v == 40)",
                composite(LogicalOperator.OR,
                          composite(LogicalOperator.AND, single("v", 10, GE), single("v", 20, LE)),
                          single("v", 40, EQ)), [1, 2, 4])

    def filtered_rows_keep_versions():
        rows_, _ = scan(t, lo, hi, column_filter=single("mv", "new", EQ), max_version=2, columns_to_get=["mv"])
        eq([cells(r) for r in rows_], [[("mv", "new", base + 1000), ("mv", "old", base)]], "cells")
    check("filter: a row that passes returns all requested versions", filtered_rows_keep_versions)

    def batch_filter():
        req = BatchGetRowRequest()
        req.add(TableInBatchGetRowItem(t, [F(1), F(2)], column_filter=single("v", 20, EQ), max_version=1))
        got = client.batch_get_row(req).get_result_by_table(t)
        eq([r.is_ok for r in got], [True, True], "is_ok")
        eq(got[0].row, None, "filtered-out row")
        eq(attrs(got[1].row), {"v": 20, "s": "s2"}, "matching row")
    check("filter: batch_get_row with v == 20 returns only the matching row", batch_filter)

    G = [("pk", "g"), ("seq", 0)]
    check("filter: get_row start_column 'b', end_column 'd' returns b and c",
          lambda: eq([c[:2] for c in cells(get(t, G, start_column="b", end_column="d"))],
                     [("b", 2), ("c", 3)], "columns"))
    check("filter: get_row start_column 'c' returns c and d",
          lambda: eq([c[:2] for c in cells(get(t, G, start_column="c"))], [("c", 3), ("d", 4)], "columns"))
    check("filter: get_row end_column 'b' returns a",
          lambda: eq([c[:2] for c in cells(get(t, G, end_column="b"))], [("a", 1)], "columns"))
    check("filter: get_range start_column 'b', end_column 'd' returns b and c",
          lambda: eq([[c[:2] for c in cells(r)] for r in scan(t, [("pk", "g"), ("seq", INF_MIN)],
                                                               [("pk", "g"), ("seq", INF_MAX)],
                                                               start_column="b", end_column="d")[0]],
                     [[("b", 2), ("c", 3)]], "columns"))

    def batch_columns():
        req = BatchGetRowRequest()
        req.add(TableInBatchGetRowItem(t, [G], max_version=1, start_column="b", end_column="d"))
        got = client.batch_get_row(req).get_result_by_table(t)
        eq([c[:2] for c in cells(got[0].row)], [("b", 2), ("c", 3)], "columns")
    check("filter: batch_get_row start_column 'b', end_column 'd' returns b and c", batch_columns)
    drop_table(t)


# ------------------------------------------------------------------------------------------------
# Time-range reads: [start, end) and specific_time, with versions.
# ------------------------------------------------------------------------------------------------
@section
def time_ranges():
    s = "timerange"
    t = table_name(s)
    create_table(s, t, [("pk", "STRING")], max_version=5)
    pk = [("pk", "t")]
    base = now_ms() - 60000
    T1, T2, T3 = base, base + 1000, base + 2000

    def load():
        client.put_row(t, Row(pk, [("v", "a", T1), ("w", "x", T2)]))
        client.update_row(t, Row(pk, {"put": [("v", "b", T2)]}), Condition(EXPECT_EXIST))
        client.update_row(t, Row(pk, {"put": [("v", "c", T3)]}), Condition(EXPECT_EXIST))
        eq(cells(get(t, pk, max_version=5, columns_to_get=["v"])), [("v", "c", T3), ("v", "b", T2), ("v", "a", T1)],
           "versions")
    check("timerange: load three versions", load)

    def tr(time_range, max_version=None, columns=("v",)):
        return cells(get(t, pk, max_version=max_version, time_range=time_range, columns_to_get=list(columns)))

    check("timerange: get_row time_range [T1, T3) returns the versions at T2 and T1",
          lambda: eq(tr((T1, T3)), [("v", "b", T2), ("v", "a", T1)], "cells"))
    check("timerange: get_row time_range [T1, T3 + 1) returns all three versions",
          lambda: eq(tr((T1, T3 + 1)), [("v", "c", T3), ("v", "b", T2), ("v", "a", T1)], "cells"))
    check("timerange: get_row time_range [T2, T3) returns only T2",
          lambda: eq(tr((T2, T3)), [("v", "b", T2)], "cells"))
    check("timerange: get_row time_range with every column",
          lambda: eq(tr((T2, T3), columns=()), [("v", "b", T2), ("w", "x", T2)], "cells"))
    check("timerange: get_row specific_time T2 returns that version",
          lambda: eq(tr(T2), [("v", "b", T2)], "cells"))
    check("timerange: get_row specific_time without a version returns None",
          lambda: eq(get(t, pk, max_version=None, time_range=T1 + 1), None, "row"))
    check("timerange: get_row time_range with max_version=1 returns the newest version in the range",
          lambda: eq(tr((T1, T3 + 1), max_version=1), [("v", "c", T3)], "cells"))
    check("timerange: get_row time_range after every version returns None",
          lambda: eq(get(t, pk, max_version=None, time_range=(T3 + 1, T3 + 100)), None, "row"))
    check("timerange: get_range time_range [T1, T2) returns the oldest version",
          lambda: eq([cells(r) for r in scan(t, [("pk", INF_MIN)], [("pk", INF_MAX)], max_version=None,
                                             time_range=(T1, T2))[0]], [[("v", "a", T1)]], "rows"))
    check("timerange: get_range specific_time T3 returns that version",
          lambda: eq([cells(r) for r in scan(t, [("pk", INF_MIN)], [("pk", INF_MAX)], max_version=None,
                                             time_range=T3)[0]], [[("v", "c", T3)]], "rows"))
    check("timerange: get_range time_range after every version returns no rows",
          lambda: eq(scan(t, [("pk", INF_MIN)], [("pk", INF_MAX)], max_version=None,
                          time_range=(T3 + 1, T3 + 100))[0], [], "rows"))

    def batch_tr():
        req = BatchGetRowRequest()
        req.add(TableInBatchGetRowItem(t, [pk], columns_to_get=["v"], time_range=(T2, T3 + 1)))
        got = client.batch_get_row(req).get_result_by_table(t)
        eq(cells(got[0].row), [("v", "c", T3), ("v", "b", T2)], "cells")
    check("timerange: batch_get_row time_range [T2, T3 + 1) returns two versions", batch_tr)

    def batch_specific():
        req = BatchGetRowRequest()
        req.add(TableInBatchGetRowItem(t, [pk], columns_to_get=["v"], time_range=T1))
        got = client.batch_get_row(req).get_result_by_table(t)
        eq(cells(got[0].row), [("v", "a", T1)], "cells")
    check("timerange: batch_get_row specific_time T1 returns that version", batch_specific)
    drop_table(t)


# ------------------------------------------------------------------------------------------------
# Size limits: request bodies above 2 MiB are fine; values above 2 MiB and oversized requests are
# refused with OTS errors (protobuf Error bodies, not plain-text HTTP 413).
# ------------------------------------------------------------------------------------------------
@section
def limits():
    s = "limits"
    t = table_name(s)
    create_table(s, t, [("pk", "STRING")])

    def big_put():
        p = [("pk", "big")]
        client.put_row(t, Row(p, [("c1", "a" * (1900 * 1024)), ("c2", "b" * (1536 * 1024))]))
        got = attrs(get(t, p))
        eq(sorted((k, len(v), v[:1]) for k, v in got.items()), [("c1", 1900 * 1024, "a"), ("c2", 1536 * 1024, "b")],
           "(column, length, first char)")
    check("limits: a 3.4 MiB put_row of two values under 2 MiB succeeds and reads back", big_put)

    def exact_2mib():
        p = [("pk", "exact")]
        client.put_row(t, Row(p, [("c", bytearray(b"\x07" * (2 * MIB)))]))
        eq(len(attrs(get(t, p))["c"]), 2 * MIB, "length")
    check("limits: a value of exactly 2 MiB is accepted", exact_2mib)

    check("limits: a value of 2 MiB + 1 is OTSParameterInvalid (400)",
          lambda: expect_error(lambda: client.put_row(t, Row([("pk", "toolong")], [("c", "x" * (2 * MIB + 1))])),
                               "OTSParameterInvalid", 400,
                               message="The length of attribute column: 'c' exceeds the MaxLength:2097152 "
                                       "with CurrentLength:2097153."))
    check("limits: the refused row was not written", lambda: eq(get(t, [("pk", "toolong")]), None, "row"))

    def batch_too_big():
        request = BatchWriteRowRequest()
        request.add(TableInBatchWriteRowItem(t, [
            PutRowItem(Row([("pk", "bw1")], [("c", "x" * (1900 * 1024))]), Condition(IGNORE)),
            PutRowItem(Row([("pk", "bw2")], [("c", "y" * (1900 * 1024))]), Condition(IGNORE)),
            PutRowItem(Row([("pk", "bw3")], [("c", "z" * (512 * 1024))]), Condition(IGNORE))]))
        expect_error(lambda: client.batch_write_row(request), "OTSParameterInvalid", 400,
                     message_prefix="The total data size of BatchWriteRow request exceeds the limit, "
                                    "limit size: 4194304, data size: ")
        eq(get(t, [("pk", "bw1")]), None, "row bw1")
    check("limits: a 4.3 MiB batch_write_row is OTSParameterInvalid (400) and writes nothing", batch_too_big)

    def oversized():
        e = expect_error(lambda: client.put_row(t, Row([("pk", "huge")], [("c%d" % i, "h" * (1900 * 1024))
                                                                           for i in range(3)])),
                         None, None, codes=("OTSParameterInvalid", "OTSRequestBodyTooLarge", "OTSOutOfRowSizeLimit"),
                         statuses=(400, 413))
        truthy(e.get_error_code().startswith("OTS"), "code %r" % e.get_error_code())
    check("limits: a 5.6 MiB put_row gets an OTS error with a protobuf body", oversized)
    drop_table(t)


# ------------------------------------------------------------------------------------------------
# Authentication.
# ------------------------------------------------------------------------------------------------
@section
def auth():
    wrong = OTSClient(ENDPOINT, ACCESS_ID, "not-the-secret", INSTANCE, retry_policy=NoRetryPolicy())
    check("auth: a wrong secret is OTSAuthFailed (403)",
          lambda: expect_error(lambda: wrong.list_table(), "OTSAuthFailed", 403))
    unknown = OTSClient(ENDPOINT, "no-such-access-key-id", ACCESS_SECRET, INSTANCE, retry_policy=NoRetryPolicy())
    check("auth: an unknown access key id is OTSAuthFailed (403)",
          lambda: expect_error(lambda: unknown.list_table(), "OTSAuthFailed", 403))


total = len(passed) + len(failed)
if failed:
    print("%d of %d SDK conformance checks FAILED" % (len(failed), total))
    sys.exit(1)
print("all SDK conformance checks passed (%d checks)" % total)
