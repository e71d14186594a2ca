"""``dg scaffold defs ragflow_dagster.RAGFlowIngestionComponent <name>``: a commented defs.yaml.

Example:
    .. code-block:: console

        $ dg scaffold defs ragflow_dagster.RAGFlowIngestionComponent handbook \\
              --source s3://acme-docs/handbook --dataset handbook
"""

from __future__ import annotations

import json
from typing import Literal

import dagster as dg
from pydantic import BaseModel, Field

TEMPLATE = """\
type: {type_name}

attributes:
  # A folder (relative to this file, or absolute) or s3://bucket/prefix.
  source: {source}
  # source:
  #   uri: s3://bucket/prefix
  #   endpoint_url: "{{{{ env.S3_ENDPOINT_URL }}}}"   # MinIO, R2, ...

  dataset:
    name: {dataset}
    chunk_method: naive
    # parser_config: {{chunk_token_num: 256}}
    # embedding_model: BAAI/bge-large-zh-v1.5@BAAI

  # Or, instead of dataset: route the source into several datasets (first match wins; one
  # asset per dataset, one listing per run; partitioning must stay none):
  # routes:
  #   - {{glob: "engineering/**", dataset: eng}}
  #   - {{glob: ["policies/**", "*.policy.md"], dataset: {{name: policies, chunk_method: naive}}}}
  # default_dataset: general      # else files no route matches are skipped as "unrouted"

  # Which files take part (all optional; the legacy uploader's filters).
  filters:
    exclude_dirs: [.git, node_modules, __pycache__]
    exclude: ["~$*", "*.tmp"]
    # extensions: [pdf, docx, md, txt]
    # include: ["reports/**/*.pdf"]
    # max_size: 50MB
    # modified_after: "2024-01-01"

  # Your own meta_fields on each document (README: Metadata mapping); later sources win.
  # metadata:
  #   static: [{{glob: "hr/**", set: {{department: HR}}}}]
  #   from_path: [{{regex: '^(?P<team>[^/]+)/(?P<year>\\d{{4}})/', types: {{year: int}}}}]
  #   front_matter: {{keys: [title, author]}}
  #   sidecar: true               # <name>.meta.json / .meta.yaml next to a file
  #   s3: {{metadata: [owner], tags: true}}

  # Per-file parsing rules: the first match wins, else the dataset's chunk_method.
  # rules:
  #   - {{glob: "faq/**", chunk_method: qa}}
  #   - {{glob: "*.csv", chunk_method: table}}

  # none: a reconcile is one run (default, scales to 100,000+ files); shards: static hash
  # shards to select and backfill; files: a dynamic partition per file (small trees only).
  partitioning: {partitioning}
  # shards: 64

  sensor:
    minimum_interval_seconds: 30
    settle_seconds: 60            # files written more recently wait for a later tick
    # max_partition_adds: 1000
    # list_budget_seconds: 35     # S3: listing time per tick before it resumes later

  schedule:
    cron: "0 2 * * *"             # nightly full reconcile

  freshness:
    fail_window: 24h
    warn_window: 6h

  checks:
    max_lag: 1h
    blocking: true
    # retrieval_probes:
    #   - {{question: "How many vacation days?", expected_path: "hr/leave.md"}}

  # The server: read from these environment variables inside each run.
  resource:
    base_url_env: RAGFLOW_BASE_URL
    api_key_env: RAGFLOW_API_KEY
"""


class ScaffoldParams(BaseModel):
    """Options of ``dg scaffold defs ragflow_dagster.RAGFlowIngestionComponent``."""

    source: str = Field(default="docs", description="A folder or s3://bucket/prefix.")
    dataset: str | None = Field(
        default=None, description="Dataset name (default: the name of the component's folder)."
    )
    partitioning: Literal["none", "shards", "files"] = Field(
        default="none", description="none (default), shards or files."
    )


def _yaml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML scalar


class RAGFlowIngestionScaffolder(dg.Scaffolder[ScaffoldParams]):
    """Writes a commented ``defs.yaml`` for a new ingestion."""

    @classmethod
    def get_scaffold_params(cls) -> type[ScaffoldParams]:
        return ScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[ScaffoldParams]) -> None:
        params = request.params if request.params is not None else ScaffoldParams()
        if request.scaffold_format != "yaml":
            from dagster.components.component_scaffolding import scaffold_component

            scaffold_component(request)
            return
        dataset = params.dataset or request.target_path.name
        text = TEMPLATE.format(
            type_name=request.type_name,
            source=_yaml_str(params.source),
            dataset=_yaml_str(dataset),
            partitioning=params.partitioning,
        )
        request.target_path.mkdir(parents=True, exist_ok=True)
        target = request.target_path / "defs.yaml"
        if request.append and target.exists():
            with target.open("a", encoding="utf-8") as f:
                f.write("---\n" + text)
        else:
            target.write_text(text, encoding="utf-8")


__all__ = ["RAGFlowIngestionScaffolder", "ScaffoldParams"]
