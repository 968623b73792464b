"""Where rows go: a JSONL file or a Parquet directory, both valid after a crash and resumable.

``OUT.jsonl``
    One JSON object a line, each written with a single ``write`` of the whole line and flushed, so a kill
    leaves complete lines (at most the last one cut short if the machine itself dies; :func:`open_sink`
    with ``resume`` cuts such a tail off before appending).
``OUT.parquet``
    A directory of part files (``part-00000.parquet`` …), each one row group, written to a temporary name
    and renamed when complete: any reader of Parquet datasets (``pyarrow.parquet.read_table(OUT)``,
    pandas, DuckDB, Spark, Ray) accepts the directory at any moment. A part is written every
    ``part_rows`` rows (:data:`PART_ROWS` by default) and when the sink closes (also on Ctrl-C); after
    a kill, the rows not yet in a part are simply done again by ``--resume``.

``done_paths(OUT)`` is the set of ``path`` values already written, for ``--resume``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from denseface.batch.rows import Row

PART_ROWS = 256
_PATH_PREFIX = '{"path":'
_SPACES = re.compile(r"[ \t]*")


class SinkError(ValueError):
    """OUT cannot be used: unknown extension, exists without ``--resume``, pyarrow missing."""


class Sink(Protocol):
    def write(self, row: Row) -> None: ...
    def close(self) -> None: ...


def kind_of(out: str | os.PathLike[str]) -> str:
    suffix = Path(out).suffix.lower()
    if suffix not in (".jsonl", ".parquet"):
        raise SinkError(f"OUT must end in .jsonl or .parquet, not {str(out)!r}")
    return suffix[1:]


def open_sink(out: str | os.PathLike[str], *, full: bool, resume: bool, part_rows: int = PART_ROWS) -> Sink:
    """A sink for ``out``; without ``resume`` an existing, non-empty ``out`` is refused (not overwritten)."""
    path = Path(out)
    kind = kind_of(path)
    if not resume and _has_content(path):
        raise SinkError(f"{path} exists: pass --resume to continue it, or remove it")
    if kind == "jsonl":
        path.parent.mkdir(parents=True, exist_ok=True)
        return JsonlSink(path)
    return ParquetSink(path, full=full, part_rows=part_rows)


def _has_content(path: Path) -> bool:
    if path.is_dir():
        return any(path.iterdir())
    return path.exists() and path.stat().st_size > 0


def done_paths(out: str | os.PathLike[str]) -> set[str]:
    """``path`` of every row already in ``out`` (empty when it does not exist)."""
    path = Path(out)
    if not path.exists():
        return set()
    if kind_of(path) == "jsonl":
        return set(_jsonl_paths(path))
    pq = _pyarrow_parquet()
    done: set[str] = set()
    for part in _parts(path):
        done.update(str(p) for p in pq.read_table(part, columns=["path"]).column("path").to_pylist())
    return done


def read_rows(out: str | os.PathLike[str]) -> list[Row]:
    """Every row of ``out`` (for tests and small outputs: it loads everything)."""
    path = Path(out)
    if kind_of(path) == "jsonl":
        with path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    pq = _pyarrow_parquet()
    rows: list[Row] = []
    for part in _parts(path):
        rows.extend(pq.read_table(part).to_pylist())
    return rows


# ------------------------------------------------------------------------------------------------- JSONL
def _jsonl_paths(path: Path) -> Iterable[str]:
    decoder = json.JSONDecoder()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break  # a cut last line: not a row
            if line.startswith(_PATH_PREFIX):  # our own rows: read the path only
                start = _SPACES.match(line, len(_PATH_PREFIX))
                yield decoder.raw_decode(line, start.end() if start else len(_PATH_PREFIX))[0]
            elif line.strip():
                yield json.loads(line)["path"]


class JsonlSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists():
            _cut_partial_line(path)
        self._handle = path.open("ab", buffering=0)

    def write(self, row: Row) -> None:
        line = json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
        data = memoryview(line.encode("utf-8"))
        while data:
            written = self._handle.write(data)
            data = data[written or 0 :]

    def close(self) -> None:
        if not self._handle.closed:
            os.fsync(self._handle.fileno())
            self._handle.close()


def _cut_partial_line(path: Path) -> None:
    """Drop bytes after the last newline (a line a crash cut short)."""
    with path.open("rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        end = size
        while end > 0:
            start = max(0, end - 65536)
            handle.seek(start)
            chunk = handle.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        if end != size:
            handle.truncate(end)


# ----------------------------------------------------------------------------------------------- Parquet
def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise SinkError("Parquet output needs pyarrow: pip install 'denseface[parquet]'") from exc
    return pq


def _parts(directory: Path) -> list[Path]:
    return sorted(directory.glob("part-*.parquet"))


def parquet_schema(*, full: bool) -> Any:
    import pyarrow as pa

    f64 = pa.float64()
    face = [
        pa.field("box", pa.struct([(k, f64) for k in ("x", "y", "width", "height")])),
        pa.field("score", f64),
        pa.field("points", pa.list_(pa.list_(f64, 2))),
        pa.field("pose", pa.struct([(k, f64) for k in ("yaw", "pitch", "roll")])),
    ]
    if full:
        face.append(pa.field("mesh", pa.list_(pa.list_(f64, 3))))
    return pa.schema(
        [
            pa.field("path", pa.string(), nullable=False),
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("faces", pa.list_(pa.struct(face))),
            pa.field("error", pa.struct([("code", pa.string()), ("message", pa.string())])),
        ]
    )


class ParquetSink:
    def __init__(self, path: Path, *, full: bool, part_rows: int = PART_ROWS) -> None:
        if part_rows < 1:
            raise SinkError("a Parquet part needs at least one row")
        self._pq = _pyarrow_parquet()
        self.part_rows = part_rows
        self.path = path
        self._schema = parquet_schema(full=full)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.tmp"):  # a part a kill interrupted
            stale.unlink()
        parts = _parts(path)
        self._next = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
        self._rows: list[Row] = []

    def write(self, row: Row) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.part_rows:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        import pyarrow as pa

        table = pa.Table.from_pylist(self._rows, schema=self._schema)
        final = self.path / f"part-{self._next:05d}.parquet"
        temporary = final.with_suffix(".tmp")
        self._pq.write_table(table, temporary, row_group_size=len(self._rows))
        os.replace(temporary, final)
        self._next += 1
        self._rows = []

    def close(self) -> None:
        self.flush()
