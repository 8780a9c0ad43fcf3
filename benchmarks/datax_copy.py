#!/usr/bin/env python3
"""A DataX-style full copy with the official Tablestore Python SDK: GetRange pages from the
source, BatchWriteRow (200 rows, every cell with its source timestamp) into the destination.
The integer key range [0, rows) is cut into one slice per worker process (the last slice runs
to INF_MAX), as a DataX job splits a table over its channels.

Usage: datax_copy.py ENDPOINT ACCESS_ID ACCESS_SECRET INSTANCE SOURCE DESTINATION
                     [--rows N] [--workers W] [--page P] [--batch B]
Prints one JSON line: rows copied, elapsed seconds, CPU seconds of all its processes.
"""
import argparse
import json
import multiprocessing
import resource
import sys
import time

from tablestore import (INF_MAX, INF_MIN, BatchWriteRowRequest, Condition, Direction,
                        OTSClient, PutRowItem, Row, RowExistenceExpectation,
                        TableInBatchWriteRowItem)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("endpoint", "access_id", "access_secret", "instance", "source", "destination"):
        parser.add_argument(name)
    parser.add_argument("--rows", type=int, default=1_000_000, help="ids are 0..rows")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--page", type=int, default=5000, help="rows per GetRange")
    parser.add_argument("--batch", type=int, default=200, help="rows per BatchWriteRow")
    return parser.parse_args()


def write(client, table, rows):
    """One BatchWriteRow; rows that fail are sent again (up to 5 times)."""
    for _ in range(5):
        request = BatchWriteRowRequest()
        request.add(TableInBatchWriteRowItem(table, [
            PutRowItem(Row(r.primary_key, r.attribute_columns),
                       Condition(RowExistenceExpectation.IGNORE)) for r in rows]))
        _, failed = client.batch_write_row(request).get_put()
        if not failed:
            return
        rows = [rows[item.index] for item in failed]
        time.sleep(0.1)
    raise RuntimeError(f"{len(rows)} rows could not be written to {table}")


def copy_slice(args, start, end):
    """Copies [start, end) of the source; returns the number of rows."""
    client = OTSClient(args.endpoint, args.access_id, args.access_secret, args.instance,
                       logger_name="datax_copy")
    start_key, end_key = [("id", start)], [("id", end)]
    copied, pending = 0, []
    while start_key is not None:
        _, start_key, rows, _ = client.get_range(args.source, Direction.FORWARD, start_key,
                                                 end_key, max_version=1, limit=args.page)
        pending.extend(rows)
        while len(pending) >= args.batch:
            write(client, args.destination, pending[:args.batch])
            copied += args.batch
            pending = pending[args.batch:]
    if pending:
        write(client, args.destination, pending)
        copied += len(pending)
    return copied


def run_slice(packed):
    args, start, end = packed
    return copy_slice(args, start, end)


def main():
    args = parse_args()
    workers = max(1, args.workers)
    step = args.rows // workers
    bounds = [INF_MIN] + [i * step for i in range(1, workers)] + [INF_MAX]
    slices = [(args, bounds[i], bounds[i + 1]) for i in range(workers)]
    started = time.monotonic()
    if workers == 1:
        copied = [run_slice(slices[0])]
    else:
        with multiprocessing.Pool(workers) as pool:
            copied = pool.map(run_slice, slices)
    elapsed = time.monotonic() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    print(json.dumps({"rows": sum(copied), "elapsed_secs": elapsed, "cpu_secs": cpu,
                      "workers": workers}))


if __name__ == "__main__":
    sys.exit(main())
