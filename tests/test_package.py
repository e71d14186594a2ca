import importlib
import subprocess
import sys

import ragflow_dagster


def test_version_is_exposed():
    assert ragflow_dagster.__version__.count(".") == 2
    assert "__version__" in ragflow_dagster.__all__


def test_every_public_name_resolves_and_has_a_docstring():
    for name in ragflow_dagster.__all__:
        if name.startswith("__"):
            continue
        value = getattr(ragflow_dagster, name)
        if callable(value) and not isinstance(value, (str, tuple)):
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_engine_imports_without_dagster():
    code = (
        "import sys\n"
        "from ragflow_dagster import RAGFlowClient, LocalFolderSource, sync_source\n"
        "assert 'dagster' not in sys.modules, sorted(m for m in sys.modules if 'dagster' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_attribute_raises():
    try:
        ragflow_dagster.nope  # noqa: B018
    except AttributeError as exc:
        assert "nope" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")
    # a real submodule still imports after the failed attribute lookup
    assert importlib.import_module("ragflow_dagster.sync.plan").plan_sync.__name__ == "plan_sync"


def test_all_matches_the_export_table():
    from ragflow_dagster import _EXPORTS

    assert sorted(ragflow_dagster.__all__) == sorted(["__version__", *_EXPORTS])
