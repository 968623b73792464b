"""Overlay pictures: every region in its own colour, contours as lines, points as dots."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from denseface.engine.layout import REGION_CLOSED, REGION_NAMES, REGION_SLICES
from denseface.engine.result import Face

RGB = npt.NDArray[np.uint8]

# One colour per region (RGB), distinguishable on skin tones; the page uses the same table.
REGION_COLORS: dict[str, tuple[int, int, int]] = {
    "LeftEye": (0, 200, 255),
    "RightEye": (0, 140, 255),
    "LeftEyeBrow": (255, 170, 0),
    "RightEyeBrow": (255, 110, 0),
    "MouthOutside": (255, 40, 90),
    "MouthInside": (255, 120, 200),
    "Nose": (90, 230, 70),
    "LeftPupil": (250, 250, 60),
    "RightPupil": (230, 210, 0),
    "CentralAxis": (200, 200, 200),
    "Chin": (170, 90, 255),
    "LeftEyeBags": (0, 230, 170),
    "RightEyeBags": (0, 180, 130),
    "Forehead": (255, 220, 140),
}
NOSE_BRIDGE = 24  # Nose points 0–23 are the bridge, 24–63 the alar contour (two open polylines)


def polylines(name: str, pts: npt.NDArray[np.float32]) -> list[tuple[npt.NDArray[np.float32], bool]]:
    """The region's points as (polyline, closed) pieces, as they should be drawn or measured."""
    if name == "Nose":
        return [(pts[:NOSE_BRIDGE], False), (pts[NOSE_BRIDGE:], False)]
    if name.endswith("Pupil"):
        return [(pts[1:], True)]
    return [(pts, REGION_CLOSED[name])]


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
        for name in regions:
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
