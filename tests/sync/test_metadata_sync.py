"""Metadata mapping and per-file parsing rules, end to end against the sandbox over HTTP."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ragflow_dagster.client import RAGFlowClient
from ragflow_dagster.sources import LocalFolderSource, S3Source
from ragflow_dagster.sync.engine import SyncAbortedError, SyncOptions, sync_source
from ragflow_dagster.sync.identity import managed_path
from ragflow_dagster.sync.metadata import MetadataSpec, SourceFile, load_spec
from ragflow_dagster.sync.rules import load_rules
from tests.reliability.raw import raw_documents


@pytest.fixture
def client(ragflow_sandbox):
    with RAGFlowClient(ragflow_sandbox.base_url, ragflow_sandbox.api_key) as c:
        yield c


class RawAPI:
    """The dataset as raw HTTP shows it (never our own client)."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url, self.key = base_url, key

    def documents(self, dataset_id: str) -> list[dict]:
        return raw_documents(self.base_url, self.key, dataset_id)


@pytest.fixture
def raw(ragflow_sandbox):
    return RawAPI(ragflow_sandbox.base_url, ragflow_sandbox.api_key)


@pytest.fixture
def dataset(client, request):
    ds = client.create_dataset(f"meta_{request.node.name}"[:120])
    yield ds
    client.delete_datasets([ds.id])


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def docs_by_path(raw: RawAPI, dataset_id: str) -> dict[str, dict]:
    """The managed documents as the raw HTTP listing shows them."""
    out = {}
    for d in raw.documents(dataset_id):
        path = managed_path(d.get("meta_fields") or {})
        if path:
            out[path] = d
    return out


TREE = {
    "hr/2023/handbook.txt": "holidays are granted on request\n" * 5,
    "hr/2024/policy.txt": "remote work is allowed two days a week\n" * 5,
    "eng/2024/design.txt": "the robot docks at the charging station\n" * 5,
    "readme.txt": "general notes about the company\n" * 5,
}

SPEC = {
    "static": [{"glob": "hr/**", "set": {"department": "HR"}}],
    "from_path": [
        {"regex": r"^(?P<team>[^/]+)/(?P<year>\d{4})/", "types": {"year": "int"}},
    ],
}


def user_meta(doc: dict) -> dict:
    reserved = {
        "managed_by",
        "source_uri",
        "source_path",
        "sha256",
        "size",
        "change_token",
        "label_check",
        "meta_keys",
        "meta_read_keys",
        "meta_token",
    }
    return {k: v for k, v in (doc.get("meta_fields") or {}).items() if k not in reserved}


def test_static_and_path_values_then_a_relabel_without_reparse(client, raw, dataset, tmp_path):
    write_tree(tmp_path, TREE)
    source = LocalFolderSource(tmp_path)
    first = sync_source(client, source, dataset.id, SyncOptions(metadata=load_spec(SPEC)))
    assert first.converged and first.counts["uploaded"] == 4
    docs = docs_by_path(raw, dataset.id)
    assert user_meta(docs["hr/2024/policy.txt"]) == {
        "department": "HR",
        "team": "hr",
        "year": 2024,
    }
    assert user_meta(docs["eng/2024/design.txt"]) == {"team": "eng", "year": 2024}
    assert user_meta(docs["readme.txt"]) == {}
    began = {p: d["process_begin_at"] for p, d in docs.items()}
    assert all(began.values())

    # the same mapping again: nothing at all, one listing request
    again = sync_source(client, source, dataset.id, SyncOptions(metadata=load_spec(SPEC)))
    assert again.counts["unchanged"] == 4 and again.counts["relabelled"] == 0
    assert again.api_calls == 1

    renamed = {**SPEC, "static": [{"glob": "hr/**", "set": {"department": "People"}}]}
    dry = sync_source(
        client, source, dataset.id, SyncOptions(metadata=load_spec(renamed), dry_run=True)
    )
    assert dry.counts["relabelled"] == 2
    assert "would relabel 2: department HR→People" in dry.summary()
    assert dry.to_dict()["decisions"] == {"relabel": {"department HR→People": 2}}
    assert docs_by_path(raw, dataset.id)["hr/2024/policy.txt"]["meta_fields"]["department"] == "HR"

    done = sync_source(client, source, dataset.id, SyncOptions(metadata=load_spec(renamed)))
    c = done.counts
    assert c["relabelled"] == 2 and c["unchanged"] == 2
    assert (c["uploaded"], c["replaced"], c["parse_requested"], c["parsed"]) == (0, 0, 0, 0)
    assert "relabelled 2: department HR→People" in done.summary()
    assert done.converged
    after = docs_by_path(raw, dataset.id)
    assert {p: d["process_begin_at"] for p, d in after.items()} == began
    assert after["hr/2023/handbook.txt"]["meta_fields"]["department"] == "People"
    assert after["hr/2023/handbook.txt"]["run"] == "DONE"
    # 2 PATCHes, plus the listings before and after
    assert done.api_calls == 2 + 2

    # a key no longer mapped is removed again
    unmapped = sync_source(client, source, dataset.id)
    assert unmapped.counts["unchanged"] == 4  # no mapping given: mapped keys stay as they are
    dropped = sync_source(client, source, dataset.id, SyncOptions(metadata=MetadataSpec()))
    assert dropped.counts["relabelled"] == 4 - 1  # readme.txt carried no mapped key
    assert all(user_meta(d) == {} for d in docs_by_path(raw, dataset.id).values())


def test_front_matter_keys_only_and_an_edit_reuploads(client, raw, dataset, tmp_path):
    write_tree(
        tmp_path,
        {
            "post.md": "---\ntitle: Docking\nauthor: Ada\ndate: 2024-05-01\nsecret: x\n---\n"
            "# Docking\nthe robot docks\n",
            "plain.md": "# No front matter\njust text\n",
        },
    )
    spec = load_spec({"front_matter": {"keys": ["title", "author", "date"]}})
    source = LocalFolderSource(tmp_path)
    first = sync_source(client, source, dataset.id, SyncOptions(metadata=spec))
    assert first.converged and first.counts["metadata_reads"] == 2
    docs = docs_by_path(raw, dataset.id)
    assert user_meta(docs["post.md"]) == {"title": "Docking", "author": "Ada", "date": "2024-05-01"}
    assert user_meta(docs["plain.md"]) == {}

    again = sync_source(client, source, dataset.id, SyncOptions(metadata=spec))
    assert again.counts["metadata_reads"] == 0 and again.api_calls == 1

    (tmp_path / "post.md").write_text("---\ntitle: Docking v2\nauthor: Ada\n---\n# v2\n")
    edited = sync_source(client, source, dataset.id, SyncOptions(metadata=spec))
    assert edited.counts["replaced"] == 1 and edited.counts["metadata_reads"] == 1
    assert user_meta(docs_by_path(raw, dataset.id)["post.md"]) == {
        "title": "Docking v2",
        "author": "Ada",
    }


def test_sidecar_is_not_uploaded_and_its_edit_relabels_one_document(client, raw, dataset, tmp_path):
    write_tree(tmp_path, {"a.txt": "alpha text\n" * 5, "b.txt": "bravo text\n" * 5})
    (tmp_path / "a.txt.meta.json").write_text(json.dumps({"owner": "ada", "tags": ["x", "y"]}))
    # a sidecar's reserved keys are ignored (the identity keys win), the rest is taken
    (tmp_path / "b.txt.meta.yaml").write_text("owner: bob\npriority: 2\nsha256: forged\n")
    spec = MetadataSpec(sidecar=True)
    source = LocalFolderSource(tmp_path)
    first = sync_source(client, source, dataset.id, SyncOptions(metadata=spec))
    assert first.converged and first.counts["uploaded"] == 2 and first.counts["scanned"] == 2
    docs = docs_by_path(raw, dataset.id)
    assert sorted(docs) == ["a.txt", "b.txt"]
    assert len(raw.documents(dataset.id)) == 2  # no sidecar was uploaded
    assert user_meta(docs["a.txt"]) == {"owner": "ada", "tags": ["x", "y"]}
    assert user_meta(docs["b.txt"]) == {"owner": "bob", "priority": 2}
    began = {p: d["process_begin_at"] for p, d in docs.items()}

    noop = sync_source(client, source, dataset.id, SyncOptions(metadata=spec))
    assert noop.counts["metadata_reads"] == 0 and noop.api_calls == 1

    (tmp_path / "b.txt.meta.yaml").write_text("owner: carol\npriority: 2\n")
    assert docs["b.txt"]["meta_fields"]["sha256"] != "forged"
    edited = sync_source(client, source, dataset.id, SyncOptions(metadata=spec))
    c = edited.counts
    assert c["relabelled"] == 1 and c["metadata_reads"] == 1 and c["unchanged"] == 1
    assert (c["uploaded"], c["replaced"], c["parse_requested"]) == (0, 0, 0)
    after = docs_by_path(raw, dataset.id)
    assert user_meta(after["b.txt"])["owner"] == "carol"
    assert {p: d["process_begin_at"] for p, d in after.items()} == began

    (tmp_path / "a.txt.meta.json").unlink()
    gone = sync_source(client, source, dataset.id, SyncOptions(metadata=spec))
    assert gone.counts["relabelled"] == 1
    assert user_meta(docs_by_path(raw, dataset.id)["a.txt"]) == {}


def test_a_metadata_function(client, raw, dataset, tmp_path):
    write_tree(tmp_path, {"x/a.txt": "alpha\n" * 5, "b.txt": "bravo\n" * 5})

    def depth(file: SourceFile) -> dict:
        return {"depth": file.path.count("/"), "uri_scheme": file.uri.split(":", 1)[0]}

    spec = MetadataSpec(static=[{"glob": "**", "set": {"depth": -1}}], function=depth)
    report = sync_source(
        client, LocalFolderSource(tmp_path), dataset.id, SyncOptions(metadata=spec)
    )
    assert report.converged
    docs = docs_by_path(raw, dataset.id)
    assert user_meta(docs["x/a.txt"]) == {"depth": 1, "uri_scheme": "file"}
    assert user_meta(docs["b.txt"]) == {"depth": 0, "uri_scheme": "file"}


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (None, "'owner': value None (NoneType) is not a str, int, float"),
        ({"a": 1}, "'owner': value {'a': 1} (dict)"),
        ([["nested"]], "'owner': list item ['nested'] (list)"),
        (True, "'owner': value True (bool)"),
    ],
)
def test_bad_values_fail_clearly_before_anything_is_uploaded(
    client, raw, dataset, tmp_path, value, needle
):
    write_tree(tmp_path, {"a.txt": "alpha\n", "bad/b.txt": "bravo\n"})
    spec = MetadataSpec(function=lambda f: {"owner": value} if f.path.startswith("bad/") else {})
    with pytest.raises(SyncAbortedError) as info:
        sync_source(client, LocalFolderSource(tmp_path), dataset.id, SyncOptions(metadata=spec))
    message = str(info.value)
    assert "bad/b.txt: metadata key " in message and needle in message
    assert raw.documents(dataset.id) == []


def test_reserved_keys_cannot_be_mapped(client, raw, dataset, tmp_path):
    write_tree(tmp_path, {"a.txt": "alpha\n"})
    spec = load_spec({"static": [{"glob": "*", "set": {"sha256": "forged"}}]})
    with pytest.raises(SyncAbortedError, match=r"a.txt: metadata key 'sha256': is reserved"):
        sync_source(client, LocalFolderSource(tmp_path), dataset.id, SyncOptions(metadata=spec))
    assert raw.documents(dataset.id) == []


def test_retrieval_filtered_by_a_mapped_key(client, dataset, tmp_path):
    write_tree(tmp_path, TREE)
    report = sync_source(
        client, LocalFolderSource(tmp_path), dataset.id, SyncOptions(metadata=load_spec(SPEC))
    )
    assert report.converged
    condition = {
        "logic": "and",
        "conditions": [{"name": "department", "comparison_operator": "is", "value": "HR"}],
    }
    hits = client.retrieve(
        "holidays remote work robot notes",
        dataset_ids=[dataset.id],
        similarity_threshold=0.0,
        metadata_condition=condition,
    )
    names = {c.document_name for c in hits.chunks}
    assert names == {"hr/2023/handbook.txt", "hr/2024/policy.txt"}
    unfiltered = client.retrieve(
        "holidays remote work robot notes", dataset_ids=[dataset.id], similarity_threshold=0.0
    )
    assert {c.document_name for c in unfiltered.chunks} > names
    by_year = client.retrieve(
        "holidays remote work robot notes",
        dataset_ids=[dataset.id],
        similarity_threshold=0.0,
        metadata_condition={
            "conditions": [{"name": "year", "comparison_operator": "=", "value": "2023"}]
        },
    )
    assert {c.document_name for c in by_year.chunks} == {"hr/2023/handbook.txt"}


# ------------------------------------------------------------------ parsing rules

RULE_TREE = {
    "faq/a.txt": "Q: what is docking?\nA: charging\n" * 3,
    "faq/b.txt": "Q: how long?\nA: an hour\n" * 3,
    "docs/c.txt": "the manual of the robot\n" * 5,
    "docs/d.txt": "the design of the station\n" * 5,
    "e.txt": "misc notes\n" * 5,
}


def test_rules_at_upload_then_a_rule_change_reparses_exactly_the_affected(
    client, raw, dataset, tmp_path
):
    write_tree(tmp_path, RULE_TREE)
    source = LocalFolderSource(tmp_path)
    rules = load_rules([{"glob": "faq/**", "chunk_method": "qa"}])
    first = sync_source(client, source, dataset.id, SyncOptions(rules=rules))
    assert first.converged and first.counts["uploaded"] == 5 and first.counts["parsed"] == 5
    docs = docs_by_path(raw, dataset.id)
    assert {p: d["chunk_method"] for p, d in docs.items()} == {
        "faq/a.txt": "qa",
        "faq/b.txt": "qa",
        "docs/c.txt": "naive",
        "docs/d.txt": "naive",
        "e.txt": "naive",
    }
    assert first.counts["rechunked"] == 0  # the rule came with the upload
    began = {p: d["process_begin_at"] for p, d in docs.items()}
    updated = {p: d["update_time"] for p, d in docs.items()}

    same = sync_source(client, source, dataset.id, SyncOptions(rules=rules))
    # one listing and the dataset's default method
    assert same.counts["unchanged"] == 5 and same.api_calls == 2

    changed = load_rules(
        [
            {"glob": "faq/**", "chunk_method": "qa"},
            {"glob": "docs/**", "chunk_method": "one"},
            {"glob": "e.txt", "chunk_method": "naive", "parser_config": {"chunk_token_num": 64}},
        ]
    )
    dry = sync_source(client, source, dataset.id, SyncOptions(rules=changed, dry_run=True))
    assert dry.counts["rechunked"] == 3
    assert "would re-chunk 2: chunk_method naive→one" in dry.summary()
    assert "would re-chunk 1: parser_config chunk_token_num 512→64" in dry.summary()

    done = sync_source(client, source, dataset.id, SyncOptions(rules=changed))
    c = done.counts
    assert done.converged
    assert c["rechunked"] == 3 and c["parse_requested"] == 3 and c["parsed"] == 3
    assert (c["uploaded"], c["replaced"], c["unchanged"]) == (0, 0, 2)
    after = docs_by_path(raw, dataset.id)
    assert after["docs/c.txt"]["chunk_method"] == "one"
    assert after["e.txt"]["parser_config"]["chunk_token_num"] == 64
    assert all(after[p]["run"] == "DONE" for p in after)
    for path in ("faq/a.txt", "faq/b.txt"):  # untouched: not even a PATCH
        assert after[path]["process_begin_at"] == began[path]
        assert after[path]["update_time"] == updated[path]
    for path in ("docs/c.txt", "docs/d.txt", "e.txt"):
        assert after[path]["update_time"] > updated[path]

    # rules alone leave keys a mapping set as they are, through a re-chunk too
    mapped = load_spec({"static": [{"glob": "docs/**", "set": {"kind": "doc"}}]})
    assert sync_source(client, source, dataset.id, SyncOptions(rules=changed, metadata=mapped))
    assert docs_by_path(raw, dataset.id)["docs/c.txt"]["meta_fields"]["kind"] == "doc"

    # dropping the rules of docs/ brings them back to the dataset's default
    back = sync_source(client, source, dataset.id, SyncOptions(rules=rules))
    assert back.counts["rechunked"] == 2 and back.counts["relabelled"] == 0
    final = docs_by_path(raw, dataset.id)
    assert final["docs/d.txt"]["chunk_method"] == "naive"
    assert final["docs/d.txt"]["meta_fields"]["kind"] == "doc"


def test_unknown_chunk_method_is_refused_before_any_upload():
    with pytest.raises(ValueError, match="chunk_method 'fancy' is not one RAGFlow accepts"):
        load_rules([{"glob": "*", "chunk_method": "fancy"}])


# ------------------------------------------------------------------ S3 metadata and tags


def test_s3_user_metadata_and_tags_read_for_changed_objects_only(s3_endpoint, client, raw, dataset):
    bucket = s3_endpoint.new_bucket("meta")
    s3 = s3_endpoint.client()
    for i in range(3):
        s3.put_object(
            Bucket=bucket,
            Key=f"kb/r{i}.txt",
            Body=f"report number {i}\n".encode() * 5,
            Metadata={"owner": f"team{i}", "ignored": "x"},
            Tagging=f"project=apollo&tier={i}",
        )
    source = S3Source(bucket, "kb", client=s3)
    spec = load_spec({"s3": {"metadata": ["owner"], "tags": True}})
    first = sync_source(client, source, dataset.id, SyncOptions(metadata=spec))
    assert first.converged and first.counts["uploaded"] == 3
    assert first.counts["metadata_reads"] == 3 * 2  # head + tagging per new object
    docs = docs_by_path(raw, dataset.id)
    assert user_meta(docs["r1.txt"]) == {"owner": "team1", "project": "apollo", "tier": "1"}

    noop = sync_source(client, source, dataset.id, SyncOptions(metadata=spec))
    assert noop.counts["metadata_reads"] == 0 and noop.api_calls == 1

    s3.put_object(
        Bucket=bucket,
        Key="kb/r2.txt",
        Body=b"report two, revised\n" * 5,
        Metadata={"owner": "team9"},
        Tagging="project=gemini",
    )
    changed = sync_source(client, source, dataset.id, SyncOptions(metadata=spec))
    assert changed.counts["replaced"] == 1 and changed.counts["metadata_reads"] == 2
    assert user_meta(docs_by_path(raw, dataset.id)["r2.txt"]) == {
        "owner": "team9",
        "project": "gemini",
    }

    # a static value changes: relabels only, no S3 request at all (the stored sha256 serves)
    s3_calls: list[str] = []
    s3.meta.events.register("before-call.s3", lambda model, **_kw: s3_calls.append(model.name))
    spec2 = load_spec(
        {"s3": {"metadata": ["owner"], "tags": True}, "static": [{"glob": "**", "set": {"k": 1}}]}
    )
    relabel = sync_source(client, source, dataset.id, SyncOptions(metadata=spec2))
    c = relabel.counts
    assert c["relabelled"] == 3 and c["metadata_reads"] == 0 and c["parse_requested"] == 0
    assert relabel.api_calls == 1 + 3 + 1  # listing, 3 PATCHes, the verifying listing
    assert s3_calls == ["ListObjectsV2"]
    assert user_meta(docs_by_path(raw, dataset.id)["r0.txt"])["k"] == 1


def test_keys_set_by_hand_survive_relabels(client, raw, dataset, tmp_path):
    write_tree(tmp_path, {"hr/a.txt": "alpha\n" * 5})
    source = LocalFolderSource(tmp_path)
    spec = load_spec({"static": [{"glob": "hr/**", "set": {"department": "HR"}}]})
    assert sync_source(client, source, dataset.id, SyncOptions(metadata=spec)).converged
    doc = docs_by_path(raw, dataset.id)["hr/a.txt"]
    client.update_document(
        dataset.id, doc["id"], meta_fields={**doc["meta_fields"], "reviewer": "bob"}
    )
    renamed = load_spec({"static": [{"glob": "hr/**", "set": {"department": "People"}}]})
    assert (
        sync_source(client, source, dataset.id, SyncOptions(metadata=renamed)).counts["relabelled"]
        == 1
    )
    assert user_meta(docs_by_path(raw, dataset.id)["hr/a.txt"]) == {
        "department": "People",
        "reviewer": "bob",
    }
    # a touched file (new mtime, same bytes) is relabelled with no mapping given: all kept
    os.utime(tmp_path / "hr/a.txt", (1_000_000, 1_000_000))
    touched = sync_source(client, source, dataset.id)
    assert touched.counts["relabelled"] == 1 and touched.counts["parse_requested"] == 0
    assert user_meta(docs_by_path(raw, dataset.id)["hr/a.txt"]) == {
        "department": "People",
        "reviewer": "bob",
    }


def test_a_move_carries_the_new_paths_values_and_rule(client, raw, dataset, tmp_path):
    write_tree(tmp_path, {"hr/2023/a.txt": "alpha handbook\n" * 5, "b.txt": "bravo\n" * 5})
    source = LocalFolderSource(tmp_path)
    opts = SyncOptions(
        metadata=load_spec(SPEC), rules=load_rules([{"glob": "eng/**", "chunk_method": "one"}])
    )
    assert sync_source(client, source, dataset.id, opts).converged
    doc_id = docs_by_path(raw, dataset.id)["hr/2023/a.txt"]["id"]
    (tmp_path / "eng/2024").mkdir(parents=True)
    (tmp_path / "hr/2023/a.txt").rename(tmp_path / "eng/2024/a.txt")
    moved = sync_source(client, source, dataset.id, opts)
    assert moved.converged and moved.counts["moved"] == 1 and moved.counts["uploaded"] == 0
    doc = docs_by_path(raw, dataset.id)["eng/2024/a.txt"]
    assert doc["id"] == doc_id  # the same document, renamed and relabelled
    assert user_meta(doc) == {"team": "eng", "year": 2024}
    assert doc["chunk_method"] == "one" and doc["run"] == "DONE"


def test_s3_metadata_of_a_source_without_it_is_a_clear_error(client, dataset, tmp_path):
    write_tree(tmp_path, {"a.txt": "alpha\n"})
    spec = load_spec({"s3": {"tags": True}})
    with pytest.raises(SyncAbortedError, match="reads S3 metadata/tags, but LocalFolderSource"):
        sync_source(client, LocalFolderSource(tmp_path), dataset.id, SyncOptions(metadata=spec))


def test_rules_leave_files_whose_method_the_server_fixes(client, raw, dataset, tmp_path):
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    write_tree(tmp_path, {"notes.txt": "notes\n" * 5})
    rules = load_rules([{"glob": "**", "chunk_method": "qa"}])
    opts = SyncOptions(rules=rules, parse=False)
    report = sync_source(client, LocalFolderSource(tmp_path), dataset.id, opts)
    assert report.counts["uploaded"] == 2 and report.counts["failed"] == 0
    docs = docs_by_path(raw, dataset.id)
    assert (docs["photo.png"]["chunk_method"], docs["notes.txt"]["chunk_method"]) == (
        "picture",
        "qa",
    )
    again = sync_source(client, LocalFolderSource(tmp_path), dataset.id, opts)
    assert again.counts["rechunked"] == 0 and again.counts["failed"] == 0
