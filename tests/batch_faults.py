"""A real Analyzer whose process dies (SIGKILL) on chosen photos, for the batch's dead-worker path: the
real models never crash on demand. Module-level and picklable, so a spawned batch worker builds it."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from denseface.api import Analyzer
from denseface.engine.decode import Decoded


class KillingAnalyzer:
    """Kills its own process when given a photo of ``always`` size (every time) or ``once`` size (the
    first time in any process: ``marker`` records it); analyses every other photo for real."""

    def __init__(self, model_dir: Path, always: tuple[int, int], once: tuple[int, int], marker: Path) -> None:
        self.real = Analyzer(model_dir)
        self.always, self.once, self.marker = always, once, marker

    def analyze(self, image: Decoded, **kwargs: Any) -> Any:
        size = (image.width, image.height)
        if size == self.always or (size == self.once and not self.marker.exists()):
            if size == self.once:
                self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.real.analyze(image, **kwargs)


def killing_analyzer(model_dir: Path, always: tuple[int, int], once: tuple[int, int], marker: Path) -> Any:
    return KillingAnalyzer(model_dir, always, once, marker)
