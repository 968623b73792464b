"""Log lines for every process (the CLI, the server, its workers, batch workers): text by default,
one JSON object a line with ``DENSEFACE_LOG_FORMAT=json`` (for a log collector reading a container's
output). Worker processes inherit the variable, so all of a server's lines share one format."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys

FORMAT_VARIABLE = "DENSEFACE_LOG_FORMAT"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"}`` (+ ``"process"``: which worker, ``"exception"``)."""

    def __init__(self, process: str = "") -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.process:
            line["process"] = self.process
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: int, process: str = "") -> None:
    """Log ``level`` and above to stderr, as text or JSON (``$DENSEFACE_LOG_FORMAT``); ``process``
    names a worker (``worker 0``) in each line."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get(FORMAT_VARIABLE, "").strip().lower() == "json":
        handler.setFormatter(JsonFormatter(process))
    else:
        where = f" [{process}]" if process else ""
        handler.setFormatter(logging.Formatter(f"%(levelname)s %(name)s{where}: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
