"""The Python guest SDK: write a Tablestore record processor in Python, built into a
WebAssembly component with componentize-py (see docs/guests.md).

It wraps the bindings componentize-py generates from ``wit/`` (module ``wit_world``) so a guest
works with plain Python values: options as a dict, column names instead of name ids, values as
``int``/``float``/``bool``/``str``/``bytes``, and actions as ``KEEP``, ``DROP``, ``replace(...)``
and ``keep_in(...)``::

    import ots_processor as ots

    class DropDeletes(ots.Processor):
        def process(self, batch):
            return [ots.DROP if r.kind == "delete" else ots.KEEP for r in batch.records]

    WitWorld = ots.export(DropDeletes)

The module that componentize-py is pointed at must define ``WitWorld``; ``export`` makes one.
"""

import json

import componentize_py_types as cpt
import wit_world
from wit_world.imports import types as t

__all__ = [
    "ALL",
    "ALL_KEPT",
    "DROP",
    "KEEP",
    "Batch",
    "Change",
    "Column",
    "Failure",
    "Options",
    "Output",
    "Processor",
    "Record",
    "export",
    "keep_in",
    "log",
    "replace",
]

#: ``Processor.reads_columns`` value: every column.
ALL = "all"
#: ``process`` may return this (or ``None``): every record kept, nothing renamed.
ALL_KEPT = None


class Processor:
    """A record processor. One instance lives per sandbox instance.

    Subclasses take the replication config's options in ``__init__`` (raise ``ValueError`` to
    refuse them: the load fails with that message) and implement ``process``. What a processor
    reads is declared by three attributes, set on the class or in ``__init__``; the host leaves
    the rest out of the batch, and whatever is not read is still replicated in full when a
    record is kept.
    """

    #: Whether records carry their primary key (``Record.key``).
    reads_key = False
    #: ``None`` (no columns), ``ALL``, or a list of column names.
    reads_columns = None
    #: Write to this table instead of the configured destination.
    target_table = None

    def __init__(self, options):
        options.only()

    def process(self, batch):
        """Returns ``ALL_KEPT``, one action per record, or an ``Output``."""
        raise NotImplementedError


class Options(dict):
    """The options of the replication config: a dict, with checked accessors whose errors name
    the option."""

    def only(self, *allowed):
        unknown = sorted(k for k in self if k not in allowed)
        if unknown:
            known = ", ".join(f"`{k}`" for k in allowed) or "none"
            raise ValueError(f"unknown option `{unknown[0]}` (known options: {known})")

    def _typed(self, key, kind, what, default):
        value = self.get(key, default)
        if value is not default and not isinstance(value, kind):
            raise ValueError(f"option `{key}` must be {what}")
        return value

    def string(self, key, default=None):
        return self._typed(key, str, "a string", default)

    def bool(self, key, default=False):
        return self._typed(key, bool, "a boolean", default)

    def integer(self, key, default=None):
        value = self._typed(key, int, "an integer", default)
        if isinstance(value, bool):
            raise ValueError(f"option `{key}` must be an integer")
        return value

    def strings(self, key, default=()):
        value = self._typed(key, list, "a list of strings", default)
        if not all(isinstance(v, str) for v in value):
            raise ValueError(f"option `{key}` must be a list of strings")
        return list(value)


class Failure(Exception):
    """Raise from ``process`` to fail the batch: ``action`` is ``"retry"`` (transient),
    ``"skip"`` (set record ``record`` aside in the dead-letter sink and go on) or ``"stop"``."""

    def __init__(self, message, record=None, action="stop"):
        super().__init__(message)
        if action not in _FAILURE_ACTIONS:
            raise ValueError(f"unknown failure action {action!r} (retry, skip or stop)")
        self.message = message
        self.record = record
        self.action = action


class Column:
    """One attribute column of a record or change. ``op`` is ``"put"``, ``"delete-one-version"``,
    ``"delete-all-versions"`` or ``"increment"``; ``value`` is the put value or the increment."""

    __slots__ = ("name", "op", "value", "timestamp")

    def __init__(self, name, value=None, timestamp=None, op="put"):
        self.name = name
        self.op = op
        self.value = value
        self.timestamp = timestamp

    def __repr__(self):
        return f"Column({self.name!r}, {self.value!r}, {self.timestamp!r}, op={self.op!r})"


class Change:
    """A row change: ``kind`` is ``"put"``, ``"update"`` or ``"delete"``; ``key`` maps the
    source table's key columns, in schema order, to their values; ``columns`` are ``Column``s."""

    __slots__ = ("kind", "key", "columns")

    def __init__(self, kind, key, columns=()):
        self.kind = kind
        self.key = key
        self.columns = list(columns)


class Record:
    """One record of a batch: ``kind``, ``key`` (a dict, empty unless the processor reads keys),
    ``columns`` (the ones it reads) and ``sequence`` (``(epoch, timestamp_us, row_index)`` for
    stream records, ``None`` for full-data rows)."""

    __slots__ = ("kind", "key", "columns", "sequence")

    def written(self, name):
        """The value the record writes to column ``name`` (its last put), or ``None``."""
        for column in reversed(self.columns):
            if column.name == name and column.op == "put":
                return column.value
        return None

    def change(self, values=None):
        """The record's own change, with the puts of the columns in ``values`` writing the new
        values instead: what ``replace`` takes. It holds what the processor reads, so a
        processor rewriting records reads the key and every column."""
        values = values or {}
        columns = [
            Column(c.name, values[c.name], c.timestamp)
            if c.op == "put" and c.name in values
            else Column(c.name, c.value, c.timestamp, c.op)
            for c in self.columns
        ]
        return Change(self.kind, dict(self.key), columns)


class Batch:
    """Records of one channel, in log order, with names resolved. ``table`` is the source
    table and ``key_names`` its key columns in schema order."""

    __slots__ = ("table", "names", "key_names", "records")

    def __init__(self, raw):
        names = raw.names
        self.table = raw.table
        self.names = names
        self.key_names = [names[i] for i in raw.key_names]
        self.records = [_record(r, names) for r in raw.records]


def _record(raw, names):
    record = Record()
    record.kind = _KINDS[raw.kind]
    record.key = {names[k.name]: k.value.value for k in raw.primary_key or ()}
    record.columns = [_column(c, names) for c in raw.columns or ()]
    s = raw.sequence
    record.sequence = None if s is None else (s.epoch, s.timestamp, s.row_index)
    return record


def _column(raw, names):
    op = raw.op
    if isinstance(op, t.ColumnOp_Put):
        return Column(names[raw.name], op.value.value, raw.timestamp)
    if isinstance(op, t.ColumnOp_Increment):
        return Column(names[raw.name], op.value, raw.timestamp, "increment")
    if isinstance(op, t.ColumnOp_DeleteOneVersion):
        return Column(names[raw.name], None, raw.timestamp, "delete-one-version")
    return Column(names[raw.name], None, raw.timestamp, "delete-all-versions")


class _Action:
    __slots__ = ("raw",)

    def __init__(self, raw):
        self.raw = raw


#: Write the record's own change to where it was going.
KEEP = _Action(t.RoutedAction_Keep())
#: Write nothing for the record.
DROP = _Action(t.RoutedAction_Drop())


def replace(*changes):
    """Write these changes instead of the record (possibly none). Each is a ``Change`` for where
    the record was going, or a ``(table, Change)`` pair naming a table the config lists."""
    return _Action(("replace", changes))


def keep_in(*tables):
    """Write the record's own change to each of these tables (``None``: where it was going)."""
    return _Action(t.RoutedAction_KeepIn(list(tables)))


class Output:
    """What ``process`` returns when it renames columns: ``actions`` (``ALL_KEPT`` or one per
    record) and ``renames``, a dict from a column name to its new name, or to ``None`` to remove
    the column from every change of the batch."""

    __slots__ = ("actions", "renames")

    def __init__(self, actions=ALL_KEPT, renames=None):
        self.actions = actions
        self.renames = renames or {}


def log(level, message):
    """Logs through the host (rate-limited there). ``level``: debug, info, warn or error.
    ``print`` works too: stdout is logged at info, stderr at warn."""
    wit_world.log(_LOG_LEVELS[level], message)


def export(processor_class):
    """The ``WitWorld`` class componentize-py exports, running ``processor_class``."""

    class WitWorld(wit_world.WitWorld):
        processor = None

        def init(self, options):
            try:
                parsed = json.loads(options) if options else {}
                if not isinstance(parsed, dict):
                    raise ValueError("the options must be a JSON object")
                processor = processor_class(Options(parsed))
                info = _info(processor)
            except ValueError as e:
                raise cpt.Err(str(e))
            WitWorld.processor = processor
            return info

        def process(self, batch):
            processor = WitWorld.processor
            if processor is None:
                raise cpt.Err(t.ProcessorError(None, t.FailureAction.STOP, "process called before init"))
            try:
                result = processor.process(Batch(batch))
            except Failure as f:
                raise cpt.Err(t.ProcessorError(f.record, _FAILURE_ACTIONS[f.action], f.message))
            return _output(batch, result)

    return WitWorld


def _info(processor):
    columns = processor.reads_columns
    if columns is None:
        interest = t.ColumnInterest_None_()
    elif columns == ALL:
        interest = t.ColumnInterest_All()
    elif isinstance(columns, (list, tuple)) and all(isinstance(c, str) for c in columns):
        interest = t.ColumnInterest_Named(list(columns))
    else:
        raise ValueError("reads_columns must be None, ALL or a list of column names")
    return t.ProcessorInfo(t.Interest(bool(processor.reads_key), interest), processor.target_table)


def _output(batch, result):
    if not isinstance(result, Output):
        result = Output(result)
    names = _Names(batch.names)
    if result.actions is ALL_KEPT:
        outcome = t.RoutedOutcome_AllKept()
    else:
        outcome = t.RoutedOutcome_Actions([_action(a, names) for a in result.actions])
    renames = []
    for old, new in result.renames.items():
        id = names.known.get(old)
        if id is not None:
            renames.append(t.NameChange(id, new))
    return t.RoutedOutput(outcome, renames, names.added)


def _action(action, names):
    if not isinstance(action, _Action):
        raise TypeError(f"an action must be KEEP, DROP, replace(...) or keep_in(...), not {action!r}")
    raw = action.raw
    if isinstance(raw, tuple):
        routed = []
        for change in raw[1]:
            table, change = change if isinstance(change, tuple) else (None, change)
            routed.append(t.RoutedChange(table, _row_change(change, names)))
        return t.RoutedAction_Replace(routed)
    return raw


def _row_change(change, names):
    key = [t.KeyColumn(names.id(n), _value(v)) for n, v in change.key.items()]
    columns = [_wit_column(c, names) for c in change.columns]
    return t.RowChange(_KIND_VALUES[change.kind], key, columns)


def _wit_column(column, names):
    if column.op == "put":
        op = t.ColumnOp_Put(_value(column.value))
    elif column.op == "increment":
        op = t.ColumnOp_Increment(column.value)
    elif column.op == "delete-one-version":
        op = t.ColumnOp_DeleteOneVersion()
    elif column.op == "delete-all-versions":
        op = t.ColumnOp_DeleteAllVersions()
    else:
        raise ValueError(f"column `{column.name}`: unknown op {column.op!r}")
    return t.Column(names.id(column.name), op, column.timestamp)


def _value(value):
    # bool before int: True is an int in Python.
    if isinstance(value, bool):
        return t.Value_Boolean(value)
    if isinstance(value, int):
        return t.Value_Integer(value)
    if isinstance(value, float):
        return t.Value_Double(value)
    if isinstance(value, str):
        return t.Value_String(value)
    if isinstance(value, (bytes, bytearray)):
        return t.Value_Binary(bytes(value))
    raise TypeError(f"a column value must be int, float, bool, str or bytes, not {type(value).__name__}")


class _Names:
    """The batch's name table and the names replacements add past its end."""

    def __init__(self, names):
        self.known = {n: i for i, n in enumerate(names)}
        self.added = []

    def id(self, name):
        id = self.known.get(name)
        if id is None:
            id = len(self.known)
            self.known[name] = id
            self.added.append(name)
        return id


_KINDS = {t.ChangeKind.PUT: "put", t.ChangeKind.UPDATE: "update", t.ChangeKind.DELETE: "delete"}
_KIND_VALUES = {v: k for k, v in _KINDS.items()}
_FAILURE_ACTIONS = {
    "retry": t.FailureAction.RETRY,
    "skip": t.FailureAction.SKIP,
    "stop": t.FailureAction.STOP,
}
_LOG_LEVELS = {
    "debug": t.LogLevel.DEBUG,
    "info": t.LogLevel.INFO,
    "warn": t.LogLevel.WARN,
    "error": t.LogLevel.ERROR,
}
