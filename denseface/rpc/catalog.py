"""Which actions and versions exist: Tencent's iai actions, and the ones denseface implements.

=====================================================  ===========================================
the request's action                                   answer (after authentication)
=====================================================  ===========================================
in :data:`IMPLEMENTED_ACTIONS`                          served
an iai action of that version (``iai_actions.json``)    ``UnsupportedOperation.UnknowMethod``
anything else                                           ``InvalidAction``
=====================================================  ===========================================

``denseface/data/iai_actions.json`` lists every action of the iai API per version, derived from the
official Python SDK's ``IaiClient`` classes (its ``description`` says how).
"""

from __future__ import annotations

import functools
import json
from importlib import resources

VERSIONS = ("2018-03-01", "2020-03-03")
REGION_REQUIRED_VERSIONS = frozenset({"2020-03-03"})
#: The one table of actions denseface serves (in every version in :data:`VERSIONS`); each is the module
#: of its name in :mod:`denseface.rpc.actions`.
IMPLEMENTED_ACTIONS: tuple[str, ...] = ("AnalyzeDenseLandmarks", "AnalyzeFace")


@functools.cache
def iai_actions() -> dict[str, frozenset[str]]:
    """Every iai action name, by API version."""
    text = resources.files("denseface").joinpath("data/iai_actions.json").read_text(encoding="utf-8")
    table = json.loads(text)["versions"]
    return {version: frozenset(names) for version, names in table.items()}


def is_iai_action(action: str, version: str | None = None) -> bool:
    """Whether ``action`` is an action of Tencent's iai API (in ``version``, or in any version)."""
    table = iai_actions()
    if version is None:
        return any(action in names for names in table.values())
    return action in table.get(version, frozenset())


__all__ = ["IMPLEMENTED_ACTIONS", "REGION_REQUIRED_VERSIONS", "VERSIONS", "iai_actions", "is_iai_action"]
