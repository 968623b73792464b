"""The action catalog: denseface/data/iai_actions.json matches the pinned official SDK, and the one table
of implemented actions is consistent with it."""

from __future__ import annotations

import inspect
import json
from importlib import resources
from types import ModuleType

import pytest
from tencentcloud.iai.v20180301 import iai_client as client_2018
from tencentcloud.iai.v20200303 import iai_client as client_2020

from denseface.rpc import catalog


def sdk_actions(module: ModuleType) -> list[str]:
    """The public methods the official SDK's IaiClient defines itself: one per action."""
    client = module.IaiClient
    return sorted(name for name, fn in vars(client).items() if inspect.isfunction(fn) and name[0] != "_")


@pytest.mark.parametrize(("version", "module"), [("2018-03-01", client_2018), ("2020-03-03", client_2020)])
def test_iai_actions_match_the_official_sdk(version: str, module: ModuleType) -> None:
    data = json.loads(resources.files("denseface").joinpath("data/iai_actions.json").read_text("utf-8"))
    assert module.IaiClient._apiVersion == version
    assert data["versions"][version] == sdk_actions(module)
    assert catalog.iai_actions()[version] == frozenset(sdk_actions(module))
    assert "tencentcloud-sdk-python-iai" in data["description"]


def test_implemented_actions_exist_in_every_version() -> None:
    assert set(catalog.iai_actions()) == set(catalog.VERSIONS)
    for action in catalog.IMPLEMENTED_ACTIONS:
        assert all(catalog.is_iai_action(action, version) for version in catalog.VERSIONS)


def test_is_iai_action() -> None:
    assert catalog.is_iai_action("DetectFace")
    assert catalog.is_iai_action("CompareMaskFace")
    assert not catalog.is_iai_action("CompareMaskFace", "2018-03-01")
    assert catalog.is_iai_action("CompareMaskFace", "2020-03-03")
    assert not catalog.is_iai_action("DescribeInstances")
    assert not catalog.is_iai_action("detectface")
    assert not catalog.is_iai_action("DetectFace", "2019-01-01")
