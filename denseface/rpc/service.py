"""The ``AnalyzeDenseLandmarks`` action: Tencent parameters in, Tencent response fields out.

Transport-neutral (no ASGI): the server hands over an authenticated :class:`ApiCall` and a way to run
CPU work off the event loop. The order of the checks follows Tencent's documented error codes:

1. parameters (``Mode``, ``Image``/``Url``, ``FaceModelVersion``, ``NeedRotateDetection``);
2. image bytes: base64 (≤ 5 MB of text) or a safe download (≤ 5 MB) — ``Url`` wins when both are given;
3. header checks before decoding pixels: PNG/JPEG/BMP only, long side ≤ 4000 (JPEG) / 2000 (others),
   short side ≥ 64;
4. decode, detect, landmark (in a worker);
5. no face → ``InvalidParameterValue.NoFaceInPhoto``; only faces smaller than ``min_face_size`` →
   ``FailedOperation.FaceSizeTooSmall``.

A failure of the engine's work (step 4) that is worth retrying is ``FailedOperation.ServerError``: a
model run that fails inside its runtime (the engine raises :class:`~denseface.errors.InferenceError`
where LiteRT's ``invoke`` or OpenCV DNN's ``forward`` fails), or running out of memory while decoding or
running the models (mapped here). The server logs it with the RequestId and the runtime's own exception
and keeps serving. Any other unexpected exception is a bug and becomes ``InternalError`` in the server.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from denseface.api import Analyzer
from denseface.engine.decode import Decoded, decode_bytes
from denseface.engine.result import Face
from denseface.errors import FaceTooSmallError, InferenceError, NoFaceError
from denseface.rpc.actions import AnalyzeParams, parse_analyze_params
from denseface.rpc.fetch import UrlFetcher
from denseface.rpc.image_input import DEFAULT_LIMITS, ImageLimits, check_tencent_image, decode_base64_image
from denseface.rpc.protocol import ApiCall
from denseface.rpc.shape import analyze_response

log = logging.getLogger(__name__)

T = TypeVar("T")
SERVER_ERROR = InferenceError.code
#: Runs a blocking function with an Analyzer from the pool, off the event loop, under the deadline.
RunInWorker = Callable[[Callable[[Analyzer], T]], Awaitable[T]]


@dataclass(frozen=True)
class ServiceOptions:
    min_face_size: float = 34.0  # px, the shorter side of a face box
    limits: ImageLimits = DEFAULT_LIMITS


class DenseLandmarkService:
    def __init__(self, fetcher: UrlFetcher, options: ServiceOptions | None = None) -> None:
        self.fetcher = fetcher
        self.options = options or ServiceOptions()

    async def handle(self, call: ApiCall, run: RunInWorker[Any], *, from_query: bool) -> dict[str, Any]:
        """Response fields for one authenticated call; raises ``DensefaceError`` subclasses.

        ``from_query``: the parameters are strings from a query or form (GET, v1), not JSON values."""
        params = parse_analyze_params(call.params, from_query=from_query)
        data = await self.fetcher.fetch(params.url) if params.url is not None else None
        result: dict[str, Any] = await run(lambda analyzer: self._analyze(analyzer, data, params))
        return result

    def _analyze(self, analyzer: Analyzer, data: bytes | None, params: AnalyzeParams) -> dict[str, Any]:
        """The CPU part, in a worker thread: base64, header checks, decode, landmarks, response."""
        if data is None:
            data = decode_base64_image(params.image_b64 or "", self.options.limits)
        check_tencent_image(data, self.options.limits)
        decoded, faces = self._engine(analyzer, data, params)
        return analyze_response(decoded.width, decoded.height, self._big_enough(faces))

    @staticmethod
    def _engine(analyzer: Analyzer, data: bytes, params: AnalyzeParams) -> tuple[Decoded, list[Face]]:
        """Decode and run the models; running out of memory is ``FailedOperation.ServerError`` too."""
        try:
            decoded = decode_bytes(data)
            return decoded, analyzer.analyze(decoded, mode=params.mode, rotate=params.need_rotate)
        except MemoryError as exc:
            raise InferenceError("out of memory while analysing the image; retry the request") from exc

    def _big_enough(self, faces: list[Face]) -> list[Face]:
        if not faces:
            raise NoFaceError("no face was found in the image")
        kept = [f for f in faces if min(f.box.width, f.box.height) >= self.options.min_face_size]
        if not kept:
            raise FaceTooSmallError(
                f"every face found is smaller than {self.options.min_face_size:g} px; send a larger photo"
            )
        return kept
