"""Overlay pictures: every region in its own colour, contours as lines, points as dots."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from denseface.engine.layout import REGION_CLOSED, REGION_NAMES, REGION_SLICES, SHAPE90_NAMES
from denseface.engine.result import Face

RGB = npt.NDArray[np.uint8]

# One colour per region (RGB); the page uses the same palette (server/static/regions.js, tested).
REGION_COLORS: dict[str, tuple[int, int, int]] = {
    "LeftEye": (56, 189, 248),  # #38bdf8
    "RightEye": (129, 140, 248),  # #818cf8
    "LeftEyeBrow": (163, 230, 53),  # #a3e635
    "RightEyeBrow": (34, 197, 94),  # #22c55e
    "MouthOutside": (244, 63, 94),  # #f43f5e
    "MouthInside": (253, 164, 175),  # #fda4af
    "Nose": (192, 132, 252),  # #c084fc
    "LeftPupil": (244, 114, 182),  # #f472b6
    "RightPupil": (251, 146, 60),  # #fb923c
    "CentralAxis": (248, 250, 252),  # #f8fafc
    "Chin": (250, 204, 21),  # #facc15
    "LeftEyeBags": (45, 212, 191),  # #2dd4bf
    "RightEyeBags": (103, 232, 249),  # #67e8f9
    "Forehead": (253, 186, 116),  # #fdba74
}
# AnalyzeFace's 90-point regions in the colours of the 888 regions they come from (the page's too).
SHAPE90_COLORS: dict[str, tuple[int, int, int]] = {
    "FaceProfile": REGION_COLORS["Chin"],
    "LeftEye": REGION_COLORS["LeftEye"],
    "RightEye": REGION_COLORS["RightEye"],
    "LeftEyeBrow": REGION_COLORS["LeftEyeBrow"],
    "RightEyeBrow": REGION_COLORS["RightEyeBrow"],
    "Mouth": REGION_COLORS["MouthOutside"],
    "Nose": REGION_COLORS["Nose"],
    "LeftPupil": REGION_COLORS["LeftPupil"],
    "RightPupil": REGION_COLORS["RightPupil"],
}
# Wide outlines first, so eyes, brows and lips stay visible on top of them.
UNDERNEATH = ("Forehead", "Chin", "CentralAxis", "LeftEyeBags", "RightEyeBags")
NOSE_BRIDGE = 24  # Nose points 0–23 are the bridge, 24–63 the alar contour (two open polylines)


def polylines(name: str, pts: npt.NDArray[np.float32]) -> list[tuple[npt.NDArray[np.float32], bool]]:
    """The region's points as (polyline, closed) pieces, as they should be drawn or measured."""
    if name == "Nose":
        return [(pts[:NOSE_BRIDGE], False), (pts[NOSE_BRIDGE:], False)]
    if name.endswith("Pupil"):
        return [(pts[1:], True)]
    return [(pts, REGION_CLOSED[name])]


def shape90_polylines(name: str, pts: npt.NDArray[np.float32]) -> list[tuple[npt.NDArray[np.float32], bool]]:
    """A 90-point region as (polyline, closed) pieces: eyes and brows closed; the mouth's outer (0–11)
    and inner (12–21) lines closed; the nose from the bridge's top (1) round to 12, its tip (0) a dot;
    the face profile open; pupils dots only."""
    if name == "Mouth":
        return [(pts[:12], True), (pts[12:], True)]
    if name == "Nose":
        return [(pts[1:], False)]
    if name.endswith("Pupil"):
        return []
    return [(pts, name != "FaceProfile")]


def draw_shape90(rgb: RGB, faces: Sequence[Face], *, boxes: bool = True) -> RGB:
    """A copy of ``rgb`` with each face's 90 AnalyzeFace points (:meth:`Face.shape90`) drawn."""
    out = np.ascontiguousarray(rgb.copy())
    shift = 4
    for face in faces:
        scale = max(1.0, face.box.width / 220.0)
        thickness = max(1, round(scale))
        radius = max(2, round(2.5 * scale))
        if boxes:
            x, y, w, h = face.box.x, face.box.y, face.box.width, face.box.height
            cv2.rectangle(
                out, _fixed((x, y)), _fixed((x + w, y + h)), (255, 255, 255), thickness, cv2.LINE_AA, shift
            )
        shape = face.shape90()
        for name in SHAPE90_NAMES:
            color = SHAPE90_COLORS[name]
            for line, closed in shape90_polylines(name, shape[name]):
                fixed = np.round(line * (1 << shift)).astype(np.int32)
                cv2.polylines(out, [fixed], closed, color, thickness, cv2.LINE_AA, shift)
            for p in shape[name]:
                cv2.circle(out, _fixed(p), radius << shift, color, -1, cv2.LINE_AA, shift)
    return out


def draw_faces(
    rgb: RGB, faces: Sequence[Face], *, regions: Sequence[str] = REGION_NAMES, boxes: bool = True
) -> RGB:
    """A copy of ``rgb`` with the faces' regions drawn; line width scales with the face size."""
    out = np.ascontiguousarray(rgb.copy())
    shift = 4  # sub-pixel precision for cv2 drawing
    for face in faces:
        scale = max(1.0, face.box.width / 220.0)
        thickness = max(1, round(scale))
        radius = max(1, round(1.2 * scale))
        if boxes:
            x, y, w, h = face.box.x, face.box.y, face.box.width, face.box.height
            cv2.rectangle(
                out, _fixed((x, y)), _fixed((x + w, y + h)), (255, 255, 255), thickness, cv2.LINE_AA, shift
            )
        ordered = [n for n in UNDERNEATH if n in regions] + [n for n in regions if n not in UNDERNEATH]
        for name in ordered:
            pts = face.points[REGION_SLICES[name]]
            color = REGION_COLORS[name]
            for line, closed in polylines(name, pts):
                fixed = np.round(line * (1 << shift)).astype(np.int32)
                cv2.polylines(out, [fixed], closed, color, thickness, cv2.LINE_AA, shift)
            for p in pts:
                cv2.circle(out, _fixed(p), radius << shift, color, -1, cv2.LINE_AA, shift)
    return out


def _fixed(p: Sequence[float] | npt.NDArray[np.float32]) -> tuple[int, int]:
    return round(float(p[0]) * 16), round(float(p[1]) * 16)
