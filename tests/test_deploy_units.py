"""The small parts a container relies on: the CPU count from a cgroup's limit, JSON log lines, one
clear line for a bad setting or an unreadable keys file, the image's lock file, and imports that run
one way (no module imports one that imports it back)."""

from __future__ import annotations

import ast
import graphlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from denseface import logs
from denseface.processes import available_cpus
from tests.conftest import ROOT


def cgroup(tmp_path: Path, *, v2: str | None = None, v1: tuple[str, str] | None = None) -> str:
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2 + "\n")
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(v1[0] + "\n")
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(v1[1] + "\n")
    return str(tmp_path)


@pytest.mark.parametrize(
    ("v2", "v1", "limit"),
    [
        ("200000 100000", None, 2),  # --cpus 2 on cgroup v2
        ("150000 100000", None, 2),  # 1.5 CPUs: rounded up
        ("50000 100000", None, 1),  # half a CPU: still one worker
        (None, ("100000", "100000"), 1),  # cgroup v1 (a hybrid host)
        ("max 100000", None, None),  # no limit
        (None, ("-1", "100000"), None),
        (None, None, None),  # no cgroup files at all
    ],
)
def test_workers_follow_the_cgroup_cpu_limit(
    tmp_path: Path, v2: str | None, v1: tuple[str, str] | None, limit: int | None
) -> None:
    cpus = len(os.sched_getaffinity(0))
    expected = cpus if limit is None else min(cpus, limit)
    assert available_cpus(cgroup(tmp_path, v2=v2, v1=v1)) == expected


def test_json_log_lines(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(logs.FORMAT_VARIABLE, "json")
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        logs.configure(logging.INFO, "worker 3")
        logging.getLogger("denseface.test").info("ready: %d", 2)
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("denseface.test").exception("failed")
    finally:
        root.handlers[:] = saved
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert {k: first[k] for k in ("level", "logger", "message", "process")} == {
        "level": "INFO",
        "logger": "denseface.test",
        "message": "ready: 2",
        "process": "worker 3",
    }
    assert first["time"].endswith("+00:00")
    assert "ValueError: boom" in second["exception"]


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "DENSEFACE_CONFIG_DIR": str(tmp_path / "config"), **env}
    return subprocess.run(
        [sys.executable, "-m", "denseface", "serve", "--port", "0", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_bad_setting_or_an_unreadable_keys_file_is_one_line(tmp_path: Path) -> None:
    bad = serve(tmp_path, DENSEFACE_WORKERS="two")
    assert bad.returncode == 1
    assert "DENSEFACE_WORKERS: Input should be a valid integer" in bad.stderr
    unreadable = serve(tmp_path, "--credentials", str(tmp_path))  # a directory: cannot be read
    assert unreadable.returncode == 1
    assert f"cannot read credentials file {tmp_path}" in unreadable.stderr
    assert "Traceback" not in bad.stderr + unreadable.stderr


def locked(path: Path) -> dict[str, str]:
    """name → version of a ``uv pip compile --generate-hashes`` file; every entry has a hash."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, version = line.split(" ")[0].partition("==")
            pins[name.lower().replace("_", "-").replace(".", "-")] = version
    text = path.read_text()
    assert text.count("==") == len(pins)
    assert text.count("--hash=sha256:") >= len(pins)
    return pins


def test_the_image_lock_pins_every_serving_dependency_and_not_onnx() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    serve = locked(ROOT / "requirements" / "serve.lock")
    models = locked(ROOT / "requirements" / "models.lock")
    for requirement in project["dependencies"]:
        name = requirement.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip()
        if "python_version" in requirement and "3.11" in requirement.split(";")[1]:
            continue  # for older Pythons only (the image has 3.11)
        assert name.lower().replace("_", "-") in serve, f"{name} is not in requirements/serve.lock: make lock"
    assert "onnx" not in serve  # only `models fetch` needs it: the models extra
    assert "onnx" in models
    assert all(serve[name] == version for name, version in models.items() if name in serve)


def import_graph(root: Path, prefix: str = "") -> dict[str, set[str]]:
    """module → the modules of the same tree it imports, anywhere in it (inside functions too)."""
    files = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        files[prefix + ".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        found: set[str] = set()
        for node in runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {module for module in found if module in files and module != name}
    return graph


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (imports for annotations only, never run)."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


@pytest.mark.parametrize(("root", "prefix"), [(ROOT / "denseface", "denseface."), (ROOT / "benchmarks", "")])
def test_no_import_circles(root: Path, prefix: str) -> None:
    """Imports run one way, here and through others (were: batch/command.py ↔ cli.py, and
    benchmarks/http_load.py ↔ metering.py); imports for annotations only do not count."""
    graph = import_graph(root, prefix)
    assert (
        "denseface.cli" not in graph["denseface.batch.command"]
        if prefix
        else "http_load" not in graph["metering"]
    )
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as cycle:
        pytest.fail(f"an import circle: {' → '.join(cycle.args[1])}")
