import ragflow_dagster


def test_version_is_exposed():
    assert ragflow_dagster.__version__.count(".") == 2
    assert "__version__" in ragflow_dagster.__all__
