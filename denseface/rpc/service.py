"""The image actions (``AnalyzeDenseLandmarks``, ``AnalyzeFace``): Tencent parameters in, Tencent response
fields out, routed by the call's action through :data:`denseface.rpc.actions.ACTIONS`.

Transport-neutral (no ASGI): the server hands over an authenticated :class:`ApiCall` and a way to run
the CPU work elsewhere (:data:`RunJob`: the server's worker processes). The order of the checks follows
Tencent's documented error codes (the same for both actions):

1. parameters (``Mode``, ``Image``/``Url``, ``FaceModelVersion``, ``NeedRotateDetection``);
2. image bytes: base64 (≤ 5 MB of text) or a safe download (≤ 5 MB) — ``Url`` wins when both are given;
3. header checks before decoding pixels: PNG/JPEG/BMP only, long side ≤ 4000 (JPEG) / 2000 (others),
   short side ≥ 64;
4. decode, detect, landmark;
5. no face → ``InvalidParameterValue.NoFaceInPhoto``; only faces smaller than ``min_face_size`` →
   ``FailedOperation.FaceSizeTooSmall``.

Steps 1 and the download of step 2 run here, in the server process; the rest is an :class:`AnalyzeJob`
for :func:`denseface.rpc.analysis.analyze_job`, which a worker runs (this module imports no model code,
so the server process never loads the models).

A failure of the engine's work (step 4) that is worth retrying is ``FailedOperation.ServerError``: a
model run that fails inside its runtime (the engine raises :class:`~denseface.errors.InferenceError`
where LiteRT's ``invoke`` or ONNX Runtime's ``run`` fails), running out of memory while decoding or
running the models, or a worker process that died while holding the request. The server logs it with
the RequestId and the runtime's own exception and keeps serving. Any other unexpected exception is a
bug and becomes ``InternalError`` in the server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from denseface.errors import InferenceError
from denseface.rpc.actions import ACTIONS
from denseface.rpc.fetch import UrlFetcher
from denseface.rpc.image_input import DEFAULT_LIMITS, ImageLimits
from denseface.rpc.protocol import ApiCall

SERVER_ERROR = InferenceError.code


@dataclass(frozen=True)
class ServiceOptions:
    min_face_size: float = 34.0  # px, the shorter side of a face box
    limits: ImageLimits = DEFAULT_LIMITS


@dataclass(frozen=True)
class AnalyzeJob:
    """The CPU work of one call, as it travels to a worker: the image, the two flags, the action and
    the FaceModelVersion its response reports.

    ``image`` is the ``Image`` parameter's base64 text encoded as UTF-8 when ``base64`` is true (the
    worker decodes and checks it), else the bytes downloaded from ``Url``."""

    image: bytes
    base64: bool
    mode: int
    rotate: bool
    action: str = "AnalyzeDenseLandmarks"
    face_model_version: str = "3.0"


#: Runs one job in a worker, under the request's deadline; returns the response fields as JSON bytes.
RunJob = Callable[[AnalyzeJob], Awaitable[bytes]]


class ActionService:
    def __init__(self, fetcher: UrlFetcher) -> None:
        self.fetcher = fetcher

    async def handle(self, call: ApiCall, run: RunJob, *, from_query: bool) -> bytes:
        """Response fields for one authenticated call, a JSON object (UTF-8); raises ``DensefaceError``
        subclasses.

        ``from_query``: the parameters are strings from a query or form (GET, v1), not JSON values."""
        action = ACTIONS[call.action]  # the protocol admits implemented actions only
        params = action.parse(call.params, from_query=from_query)
        if params.url is not None:
            data, base64 = await self.fetcher.fetch(params.url), False
        else:
            data, base64 = (params.image_b64 or "").encode("utf-8"), True
        job = AnalyzeJob(
            data,
            base64=base64,
            mode=params.mode,
            rotate=params.need_rotate,
            action=action.name,
            face_model_version=params.face_model_version,
        )
        return await run(job)
