"""One input → one row: read (or download) the photo, analyse it, and shape the result as plain data.

A row is a dict with the keys, in this order::

    path    the input as given (a file path as found, or the URL)
    width   the oriented image's width in pixels (null when it could not be decoded)
    height  its height
    faces   a list, largest face first, each {"box": {x, y, width, height}, "score",
            "points": 888 [x, y] pairs in the region order of REGION_NAMES,
            "pose": {yaw, pitch, roll}} (+ "mesh": 478 [x, y, z] with format "full")
    error   null, or {"code": the Tencent code, "message"}

Every failure of one input becomes that input's ``error``; :func:`analyze_source` never raises for a
bad photo. Coordinates are rounded to 0.01 px, scores to 1e-4, angles to 0.01°.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from denseface.errors import (
    DensefaceError,
    ImageDecodeError,
    ImageSizeExceedError,
)

if TYPE_CHECKING:
    from denseface.api import Analyzer
    from denseface.engine.result import Face
    from denseface.rpc.fetch import UrlFetcher

log = logging.getLogger(__name__)

Row = dict[str, Any]

FORMATS = ("tencent", "full")
#: a local file larger than this is not read (FailedOperation.ImageSizeExceed); URLs keep the server's cap
MAX_FILE_BYTES = 64 * 1024 * 1024
_URL = re.compile(r"\A[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class RowOptions:
    """How every input of a batch is analysed (pickled once per worker)."""

    mode: int = 0
    rotate: bool = False
    format: str = "tencent"
    detector: str = "thorough"
    #: CIDRs a URL may resolve to although they are not public (as the server's DENSEFACE_URL_ALLOW)
    url_allow: tuple[str, ...] = ()
    #: seconds to connect / for the whole download, the server's defaults (DENSEFACE_URL_CONNECT_TIMEOUT,
    #: DENSEFACE_URL_DEADLINE)
    url_connect_timeout: float = 3.0
    url_deadline: float = 8.0

    def __post_init__(self) -> None:
        if self.mode not in (0, 1):
            raise ValueError(f"mode must be 0 or 1, not {self.mode!r}")
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")


def is_url(source: str) -> bool:
    """``scheme://…``: fetched by the SSRF-safe fetcher, which refuses every scheme but http(s)."""
    return _URL.match(source) is not None


class Fetcher:
    """The server's own fetcher (``rpc/fetch.py``: no server state, only the errors and the size
    limits), so a URL in a list gets exactly the checks and limits a ``Url`` parameter gets. Built on
    the first URL: a batch of files never imports httpx."""

    def __init__(self, options: RowOptions | None = None) -> None:
        self.options = options or RowOptions()
        self._fetcher: UrlFetcher | None = None

    def fetch(self, url: str) -> bytes:
        if self._fetcher is None:
            from denseface.rpc.fetch import UrlFetcher, parse_networks

            self._fetcher = UrlFetcher(
                allow_networks=parse_networks(self.options.url_allow),
                connect_timeout=self.options.url_connect_timeout,
                deadline=self.options.url_deadline,
            )
        return self._fetcher.fetch_sync(url)


def read_source(source: str, fetcher: Fetcher | None = None) -> bytes:
    if is_url(source):
        return (fetcher or Fetcher()).fetch(source)
    try:
        size = os.stat(source).st_size
        if size > MAX_FILE_BYTES:
            raise ImageSizeExceedError(f"the file is {size} bytes; the limit is {MAX_FILE_BYTES} bytes")
        with open(source, "rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ImageDecodeError(f"cannot read the file: {exc.strerror or exc}") from exc


def analyze_source(
    analyzer: Analyzer, source: str, options: RowOptions, fetcher: Fetcher | None = None
) -> Row:
    """The row of ``source``; a bad input gives a row with its ``error``."""
    from denseface.engine.decode import decode_bytes

    width: int | None = None
    height: int | None = None
    try:
        # every format the library (and `denseface analyze`) decodes; the service's own PNG/JPEG/BMP
        # rule is the API's, not the batch's
        decoded = decode_bytes(read_source(source, fetcher or Fetcher(options)))
        width, height = decoded.width, decoded.height
        faces = analyzer.analyze(decoded, mode=options.mode, rotate=options.rotate)
    except DensefaceError as exc:
        return error_row(source, exc.code, exc.message, width, height)
    except Exception as exc:  # a bug must cost one row, not the batch
        log.exception("%s: unexpected error", source)
        return error_row(source, "InternalError", f"{type(exc).__name__}: {exc}", width, height)
    return {
        "path": source,
        "width": width,
        "height": height,
        "faces": [face_row(face, full=options.format == "full") for face in faces],
        "error": None,
    }


def _rounded(values: Any, digits: int) -> list[Any]:
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()  # type: ignore[no-any-return]


def _named(names: tuple[str, ...], values: tuple[float, ...]) -> dict[str, float]:
    return dict(zip(names, _rounded(values, 2), strict=True))


def face_row(face: Face, *, full: bool) -> Row:
    box, pose = face.box, face.pose
    row: Row = {
        "box": _named(("x", "y", "width", "height"), (box.x, box.y, box.width, box.height)),
        "score": round(float(face.score), 4),
        "points": _rounded(face.points, 2),
        "pose": _named(("yaw", "pitch", "roll"), (pose.yaw, pose.pitch, pose.roll)),
    }
    if full:
        row["mesh"] = _rounded(face.mesh, 2)
    return row


def error_row(
    source: str, code: str, message: str, width: int | None = None, height: int | None = None
) -> Row:
    return {
        "path": source,
        "width": width,
        "height": height,
        "faces": [],
        "error": {"code": code, "message": message},
    }
