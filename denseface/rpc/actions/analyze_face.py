"""``AnalyzeFace`` (五官定位): up to 10 faces, each the 90 points of Tencent's ``FaceShape``.

Parameters and their checks: :mod:`denseface.rpc.actions.common` (the same as AnalyzeDenseLandmarks).
``FaceModelVersion`` "3.0" (the default) or "2.0": Tencent names two of its own models; denseface has one
engine, so both give the same points, and the response reports the version the call asked for (a client
written for "2.0" keeps working). The response fields: ``ImageWidth``, ``ImageHeight``, ``FaceShapeSet``
(per face, no box: ``FaceProfile`` 21, ``LeftEye`` 8, ``RightEye`` 8, ``LeftEyeBrow`` 8, ``RightEyeBrow`` 8,
``Mouth`` 22, ``Nose`` 13, ``LeftPupil`` 1, ``RightPupil`` 1 integer ``{X, Y}``) and ``FaceModelVersion``;
the order of the points is :meth:`denseface.Face.shape90` (``denseface/data/shape90.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from denseface.rpc.actions.common import Action, pixel_points, points_json

if TYPE_CHECKING:
    from denseface.engine.result import Face

MAX_FACES = 10
FACE_MODEL_VERSIONS = ("3.0", "2.0")


def face_shape(face: Face, width: int, height: int) -> dict[str, Any]:
    """One ``FaceShape``: the 9 regions as integer pixel points clipped to the image."""
    return {
        name: [{"X": x, "Y": y} for x, y in pixel_points(points, width, height)]
        for name, points in face.shape90().items()
    }


def analyze_face_response(
    width: int, height: int, faces: Sequence[Face], version: str = FACE_MODEL_VERSIONS[0]
) -> dict[str, Any]:
    """The response fields (without ``RequestId``)."""
    return {
        "ImageWidth": width,
        "ImageHeight": height,
        "FaceShapeSet": [face_shape(f, width, height) for f in faces],
        "FaceModelVersion": version,
    }


def analyze_face_response_json(
    width: int, height: int, faces: Sequence[Face], version: str = FACE_MODEL_VERSIONS[0]
) -> bytes:
    """:func:`analyze_face_response` as compact JSON, written directly. ``version`` is one of
    :data:`FACE_MODEL_VERSIONS` (checked with the parameters), so nothing needs escaping."""
    shapes = [
        "{"
        + ",".join(
            f'"{name}":{points_json(points, width, height)}' for name, points in face.shape90().items()
        )
        + "}"
        for face in faces
    ]
    return (
        f'{{"ImageWidth":{width},"ImageHeight":{height},"FaceShapeSet":[{",".join(shapes)}],'
        f'"FaceModelVersion":"{version}"}}'
    ).encode("ascii")


ACTION = Action("AnalyzeFace", MAX_FACES, FACE_MODEL_VERSIONS, analyze_face_response_json)
