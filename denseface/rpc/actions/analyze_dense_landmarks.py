"""``AnalyzeDenseLandmarks`` (稠密关键点): up to 5 faces, each its box and 888 points in 14 regions.

Parameters and their checks: :mod:`denseface.rpc.actions.common`; FaceModelVersion "3.0" only (the one
Tencent accepts for this action). Exactly Tencent's response fields and nothing else (the official SDK
warns about unknown nested fields): ``ImageWidth``, ``ImageHeight``, ``DenseFaceShapeSet`` (``X``, ``Y``,
``Width``, ``Height`` and the 14 region lists of integer ``{X, Y}``) and ``FaceModelVersion``.
``RequestId`` is added by the envelope.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from denseface.rpc.actions.common import Action, face_box, pixel_points, points_json

if TYPE_CHECKING:
    from denseface.engine.result import Face

MAX_FACES = 5
FACE_MODEL_VERSION = "3.0"


def dense_face_shape(face: Face, width: int, height: int) -> dict[str, Any]:
    """One ``DenseFaceShape``: the box and every region as integer pixel points, both clipped to the
    image (a face cut by the frame keeps its points on the border, as a drawn overlay would)."""
    x, y, w, h = face_box(face, width, height)
    shape: dict[str, Any] = {"X": x, "Y": y, "Width": w, "Height": h}
    for name, points in face.regions.items():
        shape[name] = [{"X": px, "Y": py} for px, py in pixel_points(points, width, height)]
    return shape


def analyze_response(
    width: int, height: int, faces: Sequence[Face], version: str = FACE_MODEL_VERSION
) -> dict[str, Any]:
    """The response fields (without ``RequestId``)."""
    return {
        "ImageWidth": width,
        "ImageHeight": height,
        "DenseFaceShapeSet": [dense_face_shape(f, width, height) for f in faces],
        "FaceModelVersion": version,
    }


def dense_face_shape_json(face: Face, width: int, height: int, extra: str = "") -> str:
    """:func:`dense_face_shape` as compact JSON; ``extra``: more ``"Name":value`` members at its end
    (the stream adds ``"TrackId"``)."""
    x, y, w, h = face_box(face, width, height)
    regions = [f'"{name}":{points_json(points, width, height)}' for name, points in face.regions.items()]
    members = [f'"X":{x},"Y":{y},"Width":{w},"Height":{h}', *regions, *([extra] if extra else [])]
    return "{" + ",".join(members) + "}"


def analyze_response_json(
    width: int, height: int, faces: Sequence[Face], version: str = FACE_MODEL_VERSION
) -> bytes:
    """:func:`analyze_response` as compact JSON, byte for byte what ``json.dumps(..., separators=(",",
    ":"))`` makes of it, written directly (no 888 dicts per face: about 3× faster). Every value is an
    integer or a fixed name, so nothing needs escaping."""
    shapes = [dense_face_shape_json(face, width, height) for face in faces]
    return (
        f'{{"ImageWidth":{width},"ImageHeight":{height},"DenseFaceShapeSet":[{",".join(shapes)}],'
        f'"FaceModelVersion":"{version}"}}'
    ).encode("ascii")


ACTION = Action("AnalyzeDenseLandmarks", MAX_FACES, (FACE_MODEL_VERSION,), analyze_response_json)
