"""One exception type for bad user input, so the CLI can print one line and exit non-zero."""

from __future__ import annotations


class InputError(Exception):
    """Bad input data. The message names the file and, when known, the record."""

    def __init__(self, message: str, path: object | None = None, record: object | None = None):
        self.path = str(path) if path is not None else None
        self.record = record
        where = ""
        if self.path is not None:
            where = self.path
            if record is not None:
                where += f" [record {record}]"
            where += ": "
        super().__init__(f"{where}{message}")
