#!/usr/bin/env python3
"""The official Tablestore Python SDK, unmodified, against the local server.

Usage: sdk_compat.py ENDPOINT ACCESS_ID ACCESS_SECRET INSTANCE
Exits non-zero with a message on the first expectation that fails; prints one line per check.
"""
import sys
import time

from tablestore import (INF_MAX, INF_MIN, BatchWriteRowRequest, CapacityUnit, Condition,
                        Direction, OTSClient, OTSServiceError, PutRowItem, ReservedThroughput,
                        Row, RowExistenceExpectation, TableInBatchWriteRowItem, TableMeta,
                        TableOptions)

endpoint, access_id, access_secret, instance = sys.argv[1:5]
client = OTSClient(endpoint, access_id, access_secret, instance)
TABLE = "sdk_compat"
T1 = int(time.time() * 1000) - 2000
T2 = T1 + 1000


def check(what, ok):
    if not ok:
        print("FAILED:", what)
        sys.exit(1)
    print("ok:", what)


def service_error(fn):
    try:
        fn()
    except OTSServiceError as e:
        return e.get_error_code()
    return None


# Tables.
if TABLE in client.list_table():
    client.delete_table(TABLE)
meta = TableMeta(TABLE, [("pk", "STRING"), ("seq", "INTEGER")])
client.create_table(meta, TableOptions(time_to_live=-1, max_version=3), ReservedThroughput(CapacityUnit(0, 0)))
check("list_table shows the new table", TABLE in client.list_table())
described = client.describe_table(TABLE)
check("describe_table returns the schema",
      described.table_meta.schema_of_primary_key == [("pk", "STRING"), ("seq", "INTEGER")])
check("describe_table returns the options", described.table_options.max_version == 3)
check("creating it again is OTSObjectAlreadyExist",
      service_error(lambda: client.create_table(meta, TableOptions(), ReservedThroughput(CapacityUnit(0, 0))))
      == "OTSObjectAlreadyExist")

# Single rows.
pk = [("pk", "a"), ("seq", 1)]
client.put_row(TABLE, Row(pk, [("s", "text"), ("i", 42), ("f", 1.5), ("b", True), ("bin", bytearray(b"\x00\x01"))]))
_, row, _ = client.get_row(TABLE, pk, max_version=1)
values = {name: value for name, value, _ in row.attribute_columns}
check("get_row reads every value type back",
      values == {"s": "text", "i": 42, "f": 1.5, "b": True, "bin": bytearray(b"\x00\x01")})
check("put_row with EXPECT_NOT_EXIST on an existing row is OTSConditionCheckFail",
      service_error(lambda: client.put_row(TABLE, Row(pk, [("s", "x")]),
                                           Condition(RowExistenceExpectation.EXPECT_NOT_EXIST)))
      == "OTSConditionCheckFail")

client.update_row(TABLE, Row(pk, {"put": [("s", "v2", T1), ("s", "v3", T2)], "delete_all": ["i"]}),
                  Condition(RowExistenceExpectation.EXPECT_EXIST))
_, row, _ = client.get_row(TABLE, pk, max_version=3, columns_to_get=["s", "i"])
versions = [(name, value, ts) for name, value, ts in row.attribute_columns]
check("update_row puts versions and deletes all versions of a column",
      [v for v in versions if v[0] == "s"][1:] == [("s", "v3", T2), ("s", "v2", T1)]
      and not any(v[0] == "i" for v in versions))
client.update_row(TABLE, Row(pk, {"delete": [("s", None, T1)]}), Condition(RowExistenceExpectation.IGNORE))
_, row, _ = client.get_row(TABLE, pk, max_version=3, columns_to_get=["s"])
check("update_row deletes one version", [ts for _, _, ts in row.attribute_columns][1:] == [T2])

client.delete_row(TABLE, Row(pk), Condition(RowExistenceExpectation.IGNORE))
_, row, _ = client.get_row(TABLE, pk, max_version=1)
check("delete_row removes the row", row is None)

# Batch write of 200 rows.
items = [PutRowItem(Row([("pk", "batch"), ("seq", i)], [("v", i)]), Condition(RowExistenceExpectation.IGNORE))
         for i in range(200)]
request = BatchWriteRowRequest()
request.add(TableInBatchWriteRowItem(TABLE, items))
result = client.batch_write_row(request)
succeeded, failed = result.get_put()
check("batch_write_row of 200 rows succeeds row by row", len(succeeded) == 200 and not failed)

too_many = BatchWriteRowRequest()
too_many.add(TableInBatchWriteRowItem(TABLE, items + [PutRowItem(Row([("pk", "batch"), ("seq", 999)], [("v", 0)]),
                                                                  Condition(RowExistenceExpectation.IGNORE))]))
check("201 rows is OTSParameterInvalid", service_error(lambda: client.batch_write_row(too_many)) == "OTSParameterInvalid")

# Paged range reads.
seen = []
start = [("pk", "batch"), ("seq", INF_MIN)]
end = [("pk", "batch"), ("seq", INF_MAX)]
while start is not None:
    _, start, rows, _ = client.get_range(TABLE, Direction.FORWARD, start, end, max_version=1, limit=64)
    seen.extend(r.primary_key[1][1] for r in rows)
check("forward get_range pages through 200 rows in order", seen == list(range(200)))
_, _, rows, _ = client.get_range(TABLE, Direction.BACKWARD, [("pk", "batch"), ("seq", INF_MAX)],
                                 [("pk", "batch"), ("seq", INF_MIN)], max_version=1, limit=5)
check("backward get_range returns the last rows first", [r.primary_key[1][1] for r in rows] == [199, 198, 197, 196, 195])

# Errors for bad requests.
check("get_row on a missing table is OTSObjectNotExist",
      service_error(lambda: client.get_row("no_such_table", pk, max_version=1)) == "OTSObjectNotExist")
check("a key of the wrong type is OTSParameterInvalid",
      service_error(lambda: client.put_row(TABLE, Row([("pk", 1), ("seq", 1)], [("v", 1)]))) == "OTSParameterInvalid")
wrong = OTSClient(endpoint, access_id, "not-the-secret", instance)
check("a wrong secret is OTSAuthFailed", service_error(lambda: wrong.list_table()) == "OTSAuthFailed")

client.delete_table(TABLE)
check("delete_table removes it", TABLE not in client.list_table())
print("all SDK compatibility checks passed")
