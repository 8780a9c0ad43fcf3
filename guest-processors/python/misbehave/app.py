"""`misbehave` in Python: breaks the rules on purpose, for the sandbox's containment tests.

Option `mode` picks the misbehaviour; it only happens on batches holding a record whose integer
key column equals option `key` (other batches are kept as they are). Modes: `loop` (never
returns), `allocate` (grows memory without bound), `raise` (an uncaught exception), `sleep`
(sleeps for an hour), `print` (prints 100,000 lines), and `open-file` / `socket` (try to read
/etc/passwd or connect to 127.0.0.1:`port`, and fail the record with `stop` naming the error the
guest got: the sandbox gives it no files and no network).
"""

import socket
import time

import ots_processor as ots


class Misbehave(ots.Processor):
    reads_key = True

    def __init__(self, options):
        options.only("mode", "key", "port")
        self.mode = options.string("mode")
        self.key = options.integer("key")
        self.port = options.integer("port", 80)

    def process(self, batch):
        hit = next(
            (i for i, r in enumerate(batch.records) if self.key in r.key.values()),
            None,
        )
        if hit is None:
            return ots.ALL_KEPT
        if self.mode == "loop":
            n = 0
            while True:
                n += 1
        if self.mode == "allocate":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if self.mode == "raise":
            raise RuntimeError("misbehave: raising on purpose")
        if self.mode == "sleep":
            time.sleep(3600)
            return ots.ALL_KEPT
        if self.mode == "print":
            for n in range(100_000):
                print(f"misbehave: line {n}")
            return ots.ALL_KEPT
        try:
            if self.mode == "open-file":
                with open("/etc/passwd") as f:
                    f.read()
            elif self.mode == "socket":
                # A bytes host: a str one needs the `idna` codec, which the build leaves out.
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.connect((b"127.0.0.1", self.port))
            else:
                raise ots.Failure(f"unknown mode {self.mode!r}")
        except OSError as e:
            raise ots.Failure(f"{self.mode} failed: {e!r}", record=hit, action="stop")
        raise ots.Failure(f"{self.mode} succeeded, which it must not", record=hit, action="stop")


WitWorld = ots.export(Misbehave)
