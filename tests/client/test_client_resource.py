"""`RAGFlowResource` inside a real Dagster run, configured with ``EnvVar``."""

import io
import uuid

import dagster as dg

from ragflow_dagster.client import RAGFlowClient, UploadFile
from ragflow_dagster.resource import RAGFlowResource


def test_resource_in_materialize_with_envvar(sandbox, monkeypatch):
    monkeypatch.setenv("RAGFLOW_API_KEY", sandbox.api_key)
    name = f"resource-{uuid.uuid4().hex[:8]}"
    seen: dict[str, object] = {}

    @dg.asset
    def synced(context: dg.AssetExecutionContext, ragflow: RAGFlowResource) -> dg.MaterializeResult:
        ds = ragflow.ensure_dataset(
            name, chunk_method="naive", parser_config={"chunk_token_num": 200}
        )
        again = ragflow.ensure_dataset(name, chunk_method="naive")
        client = ragflow.get_client()
        assert client is ragflow.get_client()  # one pooled client per resource
        docs = client.upload_documents(ds.id, [UploadFile("hello.txt", io.BytesIO(b"hello"))])
        seen.update(
            client=client,
            dataset_id=ds.id,
            same=again.id == ds.id,
            repr=repr(ragflow),
            url=ragflow.dataset_url(ds.id),
        )
        return dg.MaterializeResult(metadata={"dataset_id": ds.id, "documents": len(docs)})

    resource = RAGFlowResource(
        base_url=sandbox.base_url,
        api_key=dg.EnvVar("RAGFLOW_API_KEY"),
        max_retries=2,
        dataset_url_template="http://ui/dataset/files/{dataset_id}",
    )
    result = dg.materialize([synced], resources={"ragflow": resource})
    assert result.success
    mat = result.asset_materializations_for_node("synced")[0]
    assert mat.metadata["documents"].value == 1
    assert seen["same"] is True
    assert seen["url"] == f"http://ui/dataset/files/{seen['dataset_id']}"
    assert sandbox.api_key not in str(seen["repr"]) and "api_key" not in str(seen["repr"])
    assert seen["client"]._closed  # closed at the end of the step
    # Run configuration keeps the variable's name, never the value.
    assert sandbox.api_key not in repr(resource) and "RAGFLOW_API_KEY" in repr(resource.api_key)
    with RAGFlowClient(sandbox.base_url, sandbox.api_key) as client:
        ds = client.find_dataset(name)
        assert ds is not None and ds.parser_config["chunk_token_num"] == 200
        assert [d.name for d in client.iter_documents(ds.id)] == ["hello.txt"]
        client.delete_datasets([ds.id])
