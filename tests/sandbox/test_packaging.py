"""``ragflow-sandbox`` is a distribution of its own, and ``ragflow-dagster`` does not ship it.

Read from the installed metadata (``importlib.metadata``) and the package source (``ast``), so a
dependency or an import that creeps back in fails here.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

import ragflow_sandbox

SANDBOX_ONLY = {"starlette", "uvicorn", "python-multipart", "xxhash"}
SANDBOX_RUNTIME = SANDBOX_ONLY | {"pydantic"}
NOT_AT_RUN_TIME = SANDBOX_ONLY | {"dagster-webserver", "boto3", "ragflow-sandbox"}
FORBIDDEN = "ragflow_dagster"
PACKAGES = (("ragflow-dagster", "ragflow_dagster"), ("ragflow-sandbox", "ragflow_sandbox"))


def _name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _runtime_requirements(dist: str) -> set[str]:
    """Requirement names without an ``extra == ...`` marker."""
    return {_name(r) for r in md.requires(dist) or [] if "extra ==" not in r}


def _extra_requirements(dist: str, extra: str) -> set[str]:
    return {_name(r) for r in md.requires(dist) or [] if f'extra == "{extra}"' in r}


def test_the_root_distribution_needs_no_server_ui_or_s3_at_run_time() -> None:
    runtime = _runtime_requirements("ragflow-dagster")
    assert runtime & NOT_AT_RUN_TIME == set(), runtime
    assert {"dagster", "requests", "tenacity", "pydantic"} <= runtime
    assert _extra_requirements("ragflow-dagster", "ui") == {"dagster-webserver"}
    assert _extra_requirements("ragflow-dagster", "s3") == {"boto3"}


def test_the_sandbox_distribution_brings_its_server_stack_and_nothing_of_ragflow_dagster() -> None:
    runtime = _runtime_requirements("ragflow-sandbox")
    assert runtime == SANDBOX_RUNTIME
    assert md.distribution("ragflow-sandbox").metadata["Name"] == "ragflow-sandbox"


def test_ragflow_sandbox_source_imports_nothing_of_ragflow_dagster() -> None:
    root = Path(ragflow_sandbox.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert len(files) >= 10
    offenders = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.partition(".")[0] == FORBIDDEN]
    assert offenders == []


def test_the_pytest_plugin_is_registered_by_the_sandbox_distribution_only() -> None:
    owners = {
        dist.metadata["Name"]
        for dist in md.distributions()
        for ep in dist.entry_points
        if ep.group == "pytest11" and ep.value.startswith("ragflow_sandbox")
    }
    assert owners == {"ragflow-sandbox"}
    groups = {ep.group for ep in md.distribution("ragflow-dagster").entry_points}
    assert "pytest11" not in groups


def test_console_script_and_module_entry_points() -> None:
    scripts = {ep.name: ep.value for ep in md.distribution("ragflow-sandbox").entry_points}
    assert scripts["ragflow-sandbox"] == "ragflow_sandbox.cli:main"
    script = Path(sys.executable).with_name("ragflow-sandbox")
    assert script.exists(), script
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("usage: ragflow-sandbox"), out


def test_both_packages_are_typed_and_licensed() -> None:
    for dist, package in PACKAGES:
        files = [str(f) for f in md.files(dist) or []]
        meta = md.distribution(dist).metadata
        assert meta["License-Expression"] == "Apache-2.0", dist
        # an editable install lists py.typed only in the source tree
        typed = Path(__import__(package).__file__).with_name("py.typed")
        assert typed.exists() or any(f.endswith(f"{package}/py.typed") for f in files), dist


def test_no_sandbox_module_is_above_600_lines() -> None:
    root = Path(ragflow_sandbox.__file__).parent
    sizes = {
        p.relative_to(root).as_posix(): len(p.read_text().splitlines()) for p in root.rglob("*.py")
    }
    assert len(sizes) >= 25
    assert {name: n for name, n in sizes.items() if n > 600} == {}
