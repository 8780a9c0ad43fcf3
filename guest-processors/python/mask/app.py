"""`mask`: hides personal data before it reaches the destination, in Python.

Options:
- `columns` (required): the columns to hide, e.g. `["email", "phone"]`.
- `mode`: `hash` (default) writes the hex SHA-256 of the value, salted with `salt`, so equal
  values stay equal and joins on them still work; `mask` keeps the last `keep` characters
  (default 4) of a string and writes `*` for the others; `remove` leaves the column out.
- `salt` (hash mode): a string mixed into every hash, so hashes cannot be looked up in a table
  of known values' hashes.

Records writing none of the columns are kept as they are. Hashing covers every value type (a
number is hashed as its decimal text, binary as its bytes); a `mask` of a value that is not a
string fails the record with `skip`, so it goes to the dead-letter sink and is not written in
the clear.
"""

import hashlib

import ots_processor as ots

MODES = ("hash", "mask", "remove")


class Mask(ots.Processor):
    reads_key = True
    reads_columns = ots.ALL

    def __init__(self, options):
        options.only("columns", "mode", "salt", "keep")
        self.columns = set(options.strings("columns"))
        if not self.columns:
            raise ValueError("option `columns` must name at least one column")
        self.mode = options.string("mode", "hash")
        if self.mode not in MODES:
            raise ValueError(f"option `mode` must be one of {', '.join(MODES)}, not {self.mode!r}")
        self.salt = options.string("salt", "").encode()
        self.keep = options.integer("keep", 4)
        if self.keep < 0:
            raise ValueError("option `keep` must not be negative")
        if self.mode != "hash" and "salt" in options:
            raise ValueError("option `salt` only applies to mode `hash`")
        if self.mode != "mask" and "keep" in options:
            raise ValueError("option `keep` only applies to mode `mask`")
        if self.mode == "remove":
            # Removing is a rename to nothing: no record is copied across the boundary.
            self.reads_key = False
            self.reads_columns = None

    def process(self, batch):
        if self.mode == "remove":
            return ots.Output(ots.ALL_KEPT, renames={c: None for c in self.columns})
        if not self.columns.intersection(batch.names):
            return ots.ALL_KEPT
        return [self.action(i, r) for i, r in enumerate(batch.records)]

    def action(self, index, record):
        values = {}
        for column in record.columns:
            if column.op == "put" and column.name in self.columns:
                values[column.name] = self.hide(index, column.name, column.value)
        return ots.replace(record.change(values)) if values else ots.KEEP

    def hide(self, index, name, value):
        if self.mode == "hash":
            if isinstance(value, bytes):
                data = value
            elif isinstance(value, str):
                data = value.encode()
            else:
                data = repr(value).encode()
            return hashlib.sha256(self.salt + data).hexdigest()
        if not isinstance(value, str):
            raise ots.Failure(
                f"column `{name}` holds a {type(value).__name__}, and mode `mask` only masks strings",
                record=index,
                action="skip",
            )
        visible = value[len(value) - self.keep:] if self.keep else ""
        return "*" * (len(value) - len(visible)) + visible


WitWorld = ots.export(Mask)
