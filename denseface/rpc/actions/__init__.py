"""The actions denseface serves, one module each, found by the action's name.

:data:`denseface.rpc.catalog.IMPLEMENTED_ACTIONS` is the one table of names; the action ``AnalyzeFace``
lives in ``denseface/rpc/actions/analyze_face.py`` (its name in snake case) as that module's
``ACTION``, an :class:`~denseface.rpc.actions.common.Action`: its parameter rules (shared by every
action in :mod:`~denseface.rpc.actions.common`), its Mode 0 face limit and its response fields.

=====================  ==========  ================  ==========================================
action                 Mode 0      FaceModelVersion  response
=====================  ==========  ================  ==========================================
AnalyzeDenseLandmarks  ≤ 5 faces   "3.0"             ``DenseFaceShapeSet``: box + 888 points
AnalyzeFace            ≤ 10 faces  "3.0", "2.0"      ``FaceShapeSet``: 90 points, no box
=====================  ==========  ================  ==========================================

Nothing here imports model code: the server process parses parameters with these modules and the
worker processes build the responses.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from types import MappingProxyType

from denseface.rpc.actions.common import Action
from denseface.rpc.catalog import IMPLEMENTED_ACTIONS


def _module_name(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


def _load() -> Mapping[str, Action]:
    table: dict[str, Action] = {}
    for name in IMPLEMENTED_ACTIONS:
        action = importlib.import_module(f"{__name__}.{_module_name(name)}").ACTION
        if not isinstance(action, Action) or action.name != name:  # pragma: no cover - guards the table
            raise RuntimeError(f"{_module_name(name)}.ACTION is not the action {name}")
        table[name] = action
    return MappingProxyType(table)


#: action name → its :class:`Action`, for every name in ``IMPLEMENTED_ACTIONS``
ACTIONS: Mapping[str, Action] = _load()

__all__ = ["ACTIONS", "Action"]
