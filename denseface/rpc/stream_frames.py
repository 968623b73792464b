"""The CPU part of a live stream: the frames of one connection through one tracker, in a worker.

A worker keeps a :class:`StreamTrackers` table: stream id → :class:`~denseface.api.Tracker`, created on
the stream's first frame and dropped by its end message (or with the worker). Each frame passes the
API's guards first (``Image`` size ≤ 5 MB, Tencent's header checks: PNG/JPEG/BMP, sides), then is
decoded and tracked; the answer's fields are ``{"DenseFaceShapeSet": [...]}``: each face exactly an
AnalyzeDenseLandmarks ``DenseFaceShape`` plus ``"TrackId"`` (``denseface video``'s ``id``). A frame
without a face is an empty set, not an error (a stream has many).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from denseface.errors import ImageSizeExceedError, InferenceError
from denseface.rpc.actions.analyze_dense_landmarks import MAX_FACES, dense_face_shape_json
from denseface.rpc.image_input import check_tencent_image
from denseface.rpc.service import ServiceOptions

if TYPE_CHECKING:
    from denseface.api import Analyzer, Tracker


@dataclass(frozen=True)
class FrameJob:
    """One frame of stream ``stream`` (an id the server gives each connection): the encoded image, its
    time in seconds (increasing along the stream) and the stream's Mode. ``end``: no frame, the stream
    is over (its tracker is freed)."""

    stream: int
    image: bytes
    time: float = 0.0
    mode: int = 0
    end: bool = False


class StreamTrackers:
    """The trackers of the streams one worker serves."""

    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        self._trackers: dict[int, Tracker] = {}

    def __len__(self) -> int:
        return len(self._trackers)

    def run(self, job: FrameJob, options: ServiceOptions) -> bytes:
        """The answer's fields (compact JSON) for one frame; ``b"{}"`` for an end message. Raises
        ``DensefaceError`` for a frame that cannot be used (the tracker is left as it was)."""
        if job.end:
            self._trackers.pop(job.stream, None)
            return b"{}"
        from denseface.api import Tracker
        from denseface.engine.decode import decode_bytes

        if len(job.image) > options.limits.max_download:
            raise ImageSizeExceedError(f"a frame is limited to {options.limits.max_download} bytes")
        check_tencent_image(job.image, options.limits)
        try:
            decoded = decode_bytes(job.image)
            tracker = self._trackers.get(job.stream)
            if tracker is None:
                tracker = self._trackers[job.stream] = Tracker(
                    self.analyzer, mode=job.mode, max_faces=MAX_FACES
                )
            frame = tracker.update(decoded.rgb, job.time)
        except MemoryError as exc:
            raise InferenceError("out of memory while analysing the frame; retry") from exc
        width, height = decoded.width, decoded.height
        shapes = [dense_face_shape_json(t.face, width, height, f'"TrackId":{t.id}') for t in frame.faces]
        return ('{"DenseFaceShapeSet":[' + ",".join(shapes) + "]}").encode("ascii")


__all__ = ["FrameJob", "StreamTrackers"]
