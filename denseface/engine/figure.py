"""The layout figure: one face, cropped and enlarged, every region drawn and labelled."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from denseface.engine.draw import REGION_COLORS, SHAPE90_COLORS, draw_faces, draw_shape90
from denseface.engine.layout import REGION_COUNTS, REGION_NAMES, SHAPE90_NAMES
from denseface.engine.result import Box, Face

RGB = npt.NDArray[np.uint8]


def _crop(rgb: RGB, face: Face, width: int, margin: float, legend_w: int) -> tuple[RGB, Face]:
    """The face cropped with a margin and scaled to ``width - legend_w``, and the face moved with it."""
    b = face.box
    pad = margin * max(b.width, b.height)
    x0, y0 = max(0, int(b.x - pad)), max(0, int(b.y - pad))
    x1, y1 = min(rgb.shape[1], int(b.x + b.width + pad)), min(rgb.shape[0], int(b.y + b.height + pad))
    face_w = width - legend_w
    scale = face_w / (x1 - x0)
    crop: RGB = cv2.resize(
        rgb[y0:y1, x0:x1], (face_w, round((y1 - y0) * scale)), interpolation=cv2.INTER_CUBIC
    ).astype(np.uint8)
    moved = Face(
        box=Box((b.x - x0) * scale, (b.y - y0) * scale, b.width * scale, b.height * scale),
        score=face.score,
        points=(face.points - np.array([x0, y0], np.float32)) * scale,
        mesh=np.concatenate([(face.mesh[:, :2] - np.array([x0, y0], np.float32)), face.mesh[:, 2:]], 1)
        * scale,
        pose=face.pose,
    )
    return crop, moved


def layout_figure(rgb: RGB, face: Face, *, width: int = 900, margin: float = 0.25) -> RGB:
    """The face cropped with a margin, scaled to ``width`` (plus a legend column), regions labelled."""
    legend_w = 300
    face_w = width - legend_w
    crop, moved = _crop(rgb, face, width, margin, legend_w)
    drawn = draw_faces((crop * 0.75).astype(np.uint8), [moved], boxes=False)
    canvas = np.full((max(drawn.shape[0], 40 + 34 * len(REGION_NAMES)), width, 3), 24, np.uint8)
    canvas[: drawn.shape[0], :face_w] = drawn
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(
        canvas, "888 points, 14 regions", (face_w + 16, 32), font, 0.6, (235, 235, 235), 1, cv2.LINE_AA
    )
    for i, name in enumerate(REGION_NAMES):
        y = 70 + 34 * i
        cv2.rectangle(canvas, (face_w + 16, y - 14), (face_w + 34, y + 4), REGION_COLORS[name], -1)
        label = f"{name} ({REGION_COUNTS[name]})"
        cv2.putText(canvas, label, (face_w + 44, y), font, 0.55, (235, 235, 235), 1, cv2.LINE_AA)
        start = moved.regions[name][0]
        cv2.circle(
            canvas, (round(float(start[0])), round(float(start[1]))), 5, (255, 255, 255), 1, cv2.LINE_AA
        )
    return canvas


def shape90_figure(rgb: RGB, face: Face, *, width: int = 900, margin: float = 0.25) -> RGB:
    """AnalyzeFace's 90 points on the face, each numbered with its index in its region."""
    legend_w = 300
    face_w = width - legend_w
    crop, moved = _crop(rgb, face, width, margin, legend_w)
    drawn = draw_shape90((crop * 0.6).astype(np.uint8), [moved], boxes=False)
    canvas = np.full((max(drawn.shape[0], 40 + 34 * len(SHAPE90_NAMES)), width, 3), 24, np.uint8)
    canvas[: drawn.shape[0], :face_w] = drawn
    font = cv2.FONT_HERSHEY_SIMPLEX
    size = max(0.3, min(0.45, face_w / 1600))
    shape = moved.shape90()
    for name in SHAPE90_NAMES:
        for i, p in enumerate(shape[name]):
            if name.endswith("Pupil"):
                continue
            at = (round(float(p[0])) + 4, round(float(p[1])) - 4)
            cv2.putText(canvas, str(i), at, font, size, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(canvas, str(i), at, font, size, SHAPE90_COLORS[name], 1, cv2.LINE_AA)
    cv2.putText(
        canvas, "AnalyzeFace: 90 points", (face_w + 16, 32), font, 0.6, (235, 235, 235), 1, cv2.LINE_AA
    )
    for i, name in enumerate(SHAPE90_NAMES):
        y = 70 + 34 * i
        cv2.rectangle(canvas, (face_w + 16, y - 14), (face_w + 34, y + 4), SHAPE90_COLORS[name], -1)
        label = f"{name} ({len(shape[name])})"
        cv2.putText(canvas, label, (face_w + 44, y), font, 0.55, (235, 235, 235), 1, cv2.LINE_AA)
    return canvas
