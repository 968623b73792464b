"""The CPU part of the image actions: one :class:`~denseface.rpc.service.AnalyzeJob` in, the
response fields out as JSON bytes. The server runs it in a worker process that owns an Analyzer.

Steps 2–5 of :mod:`denseface.rpc.service`: base64 (the ``Image`` parameter's text travels to the worker
as is; a downloaded ``Url`` arrives as raw bytes), Tencent's header checks, decode, the models, the
minimum face size, and the response fields of the job's action (at most its Mode 0 face limit),
serialised the way the server's envelope expects (compact JSON, UTF-8). Running out of memory while
decoding or running the models is ``InferenceError`` (``FailedOperation.ServerError``); every other
library error keeps its own Tencent code.
"""

from __future__ import annotations

from denseface.api import Analyzer
from denseface.engine.decode import Decoded, decode_bytes
from denseface.engine.result import Face
from denseface.errors import FaceTooSmallError, InferenceError, NoFaceError
from denseface.rpc.actions import ACTIONS
from denseface.rpc.image_input import check_tencent_image, decode_base64_image
from denseface.rpc.service import AnalyzeJob, ServiceOptions


def analyze_job(analyzer: Analyzer, job: AnalyzeJob, options: ServiceOptions) -> bytes:
    """The response fields (without ``RequestId``) as a compact JSON object; raises ``DensefaceError``."""
    action = ACTIONS[job.action]
    data = decode_base64_image(job.image.decode("utf-8"), options.limits) if job.base64 else job.image
    check_tencent_image(data, options.limits)
    decoded, faces = _engine(analyzer, data, job, action.max_faces)
    faces = _big_enough(faces, options.min_face_size)
    return action.response_json(decoded.width, decoded.height, faces, job.face_model_version)


def _engine(analyzer: Analyzer, data: bytes, job: AnalyzeJob, max_faces: int) -> tuple[Decoded, list[Face]]:
    """Decode and run the models; running out of memory is ``FailedOperation.ServerError`` too."""
    try:
        decoded = decode_bytes(data)
        return decoded, analyzer.analyze(decoded, mode=job.mode, rotate=job.rotate, max_faces=max_faces)
    except MemoryError as exc:
        raise InferenceError("out of memory while analysing the image; retry the request") from exc


def _big_enough(faces: list[Face], min_face_size: float) -> list[Face]:
    if not faces:
        raise NoFaceError("no face was found in the image")
    kept = [f for f in faces if min(f.box.width, f.box.height) >= min_face_size]
    if not kept:
        raise FaceTooSmallError(f"every face found is smaller than {min_face_size:g} px; send a larger photo")
    return kept
