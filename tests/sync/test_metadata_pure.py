"""The pure halves of the metadata mapping and the parsing rules (no server)."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from ragflow_dagster.sources.base import SourceEntry
from ragflow_dagster.sync.decide import Rechunk, meta_changes
from ragflow_dagster.sync.desired import Desired
from ragflow_dagster.sync.identity import managed_meta
from ragflow_dagster.sync.metadata import (
    RESERVED_KEYS,
    MetadataError,
    MetadataSpec,
    SourceFile,
    cheap_meta,
    describe_changes,
    load_spec,
    meta_token,
    parse_sidecar,
    sidecar_of,
    validate_meta,
)
from ragflow_dagster.sync.plan import PlanOptions, Relabel, plan_sync
from ragflow_dagster.sync.rules import DesiredParse, load_rules, rule_drift


def _file(path: str) -> SourceFile:
    return SourceFile(path, f"file:///r/{path}", 1, 0.0)


def test_merge_order_static_then_path_groups_with_types():
    spec = load_spec(
        {
            "static": [
                {"glob": "**", "set": {"team": "unknown", "tier": 1}},
                {"glob": "hr/**", "set": {"department": "HR"}},
            ],
            "from_path": [
                {
                    "regex": r"^(?P<team>[^/]+)/(?P<year>\d{4})/(?P<day>\d{4}-\d{2}-\d{2})_"
                    r"(?P<tags>[a-z+]+)_(?P<score>\d+\.\d+)",
                    "types": {"year": "int", "day": "date", "tags": "list", "score": "float"},
                    "separator": "+",
                }
            ],
        }
    )
    meta = cheap_meta(spec, _file("hr/2024/2024-03-01_a+b_0.5.txt"))
    assert meta == {
        "team": "hr",
        "tier": 1,
        "department": "HR",
        "year": 2024,
        "day": "2024-03-01",
        "tags": ["a", "b"],
        "score": 0.5,
    }
    assert cheap_meta(spec, _file("x.txt")) == {"team": "unknown", "tier": 1}


def test_a_bad_typed_capture_names_the_file_and_the_key():
    spec = load_spec({"from_path": [{"regex": r"^(?P<day>[^/]+)/", "types": {"day": "date"}}]})
    with pytest.raises(MetadataError, match=r"^x/a.txt: metadata key 'day': 'x' is not a valid"):
        cheap_meta(spec, _file("x/a.txt"))


@pytest.mark.parametrize(
    "bad",
    [
        {"static": [{"glob": "*", "sett": {}}]},
        {"from_path": [{"regex": "("}]},
        {"from_path": [{"regex": "no-groups"}]},
        {"from_path": [{"regex": "(?P<a>x)", "types": {"a": "decimal"}}]},
        {"unknown_section": True},
    ],
)
def test_malformed_specs_are_refused(bad):
    with pytest.raises(ValidationError):
        load_spec(bad)


def test_values_are_checked_as_ragflow_stores_them():
    assert validate_meta("a", {"s": "x", "i": 1, "f": 1.5, "l": ["a, b", "a", 2]}) == {
        "s": "x",
        "i": 1,
        "f": 1.5,
        "l": ["a", "b", 2],  # RAGFlow splits list items on , ; | and drops repeats
    }
    for key in RESERVED_KEYS:
        with pytest.raises(MetadataError, match="is reserved"):
            validate_meta("a", {key: "x"})
    for value in (None, {"k": 1}, [], [None], True, object()):
        with pytest.raises(MetadataError, match=r"^a: metadata key 'k'"):
            validate_meta("a", {"k": value})
    with pytest.raises(MetadataError, match="must not contain"):
        validate_meta("a", {"a,b": 1})


def test_sidecars_and_tokens():
    assert sidecar_of("a/b.pdf.meta.yaml") == "a/b.pdf"
    assert sidecar_of(".meta.json") is None
    assert parse_sidecar("x.meta.yaml", b"when: 2024-01-02\nn: [1, 2]\n") == {
        "when": "2024-01-02",
        "n": [1, 2],
    }
    with pytest.raises(MetadataError, match="must hold a mapping"):
        parse_sidecar("x.meta.json", b"[1]")
    spec = MetadataSpec(sidecar=True)
    assert meta_token(spec, "1-2") != meta_token(spec, "1-3") != meta_token(spec, None)
    other = load_spec({"sidecar": True, "front_matter": {"keys": ["a"]}})
    assert meta_token(spec, "1-2") != meta_token(other, "1-2")


def test_describe_changes():
    assert describe_changes({"a": 1, "b": ["x"]}, {"a": 1.0, "b": ["x", "y"], "c": "n"}) == (
        "b [x]→[x, y]",
        "c +n",
    )
    assert describe_changes({"a": "1"}, {"a": 1}) == ("a 1→1",)


def test_rules_first_match_wins_and_drift():
    rules = load_rules(
        {
            "rules": [
                {"glob": "faq/**", "chunk_method": "qa"},
                {"glob": "*.csv", "chunk_method": "table"},
            ]
        }
    )
    assert rules.rule_for("faq/x.csv").chunk_method == "qa"
    assert rules.rule_for("y.csv").chunk_method == "table"
    assert rules.rule_for("y.md") is None
    want = DesiredParse("naive", {"raptor": {"use_raptor": True}})
    assert rule_drift(want, "naive", {"raptor": {"use_raptor": True, "x": 1}}) is None
    assert rule_drift(want, "NAIVE", {"raptor": {"use_raptor": True}}) is None
    assert rule_drift(want, "naive", {}) == "parser_config raptor None→{'use_raptor': True}"


def _doc(meta, *, chunk_method="naive", parser_config=None):
    class Doc:
        id = "d1"
        name = "a.txt"
        size = 1
        run = "DONE"
        chunk_count = 1
        create_time = 1
        progress_msg = ""
        process_begin_at = "x"

    d = Doc()
    d.meta_fields = meta
    d.chunk_method = chunk_method
    d.parser_config = parser_config or {}
    return d


ENTRY = SourceEntry("a.txt", 1, 0.0, "1-0", "aa")
LABEL = managed_meta(
    source_uri="file:///r/a.txt", path="a.txt", sha256="aa", size=1, change_token="1-0"
)


def test_planner_relabels_on_a_metadata_change_only():
    desired = Desired(meta={"department": "People"})
    doc = _doc({**LABEL, "department": "HR", "meta_keys": ["department"]})
    plan = plan_sync([ENTRY], [doc], PlanOptions(desired=lambda _p: desired))
    (action,) = plan.actions
    assert isinstance(action, Relabel) and action.changes == ("department HR→People",)
    assert not action.needs_parse
    same = _doc({**LABEL, "department": "People", "meta_keys": ["department"]})
    assert [
        a.kind for a in plan_sync([ENTRY], [same], PlanOptions(desired=lambda _p: desired)).actions
    ] == ["unchanged"]
    # no mapping at all: no opinion on mapped keys
    assert [a.kind for a in plan_sync([ENTRY], [doc]).actions] == ["unchanged"]
    assert meta_changes(Desired(meta={}), doc.meta_fields) == ("department -HR",)


def test_planner_rechunks_on_a_rule_change():
    desired = Desired(parse=DesiredParse("qa", {}, "faq/**"))
    doc = _doc(dict(LABEL))
    (action,) = plan_sync([ENTRY], [doc], PlanOptions(desired=lambda _p: desired)).actions
    assert isinstance(action, Rechunk)
    assert (action.chunk_method, action.reason) == ("qa", "chunk_method naive→qa")
    fitting = _doc(dict(LABEL), chunk_method="qa")
    plan = plan_sync([ENTRY], [fitting], PlanOptions(desired=lambda _p: desired))
    assert [a.kind for a in plan.actions] == ["unchanged"]


def test_a_file_or_sidecar_gone_since_listed_reads_as_empty(tmp_path):
    from ragflow_dagster.sources import LocalFolderSource
    from ragflow_dagster.sources.inventory import Inventory
    from ragflow_dagster.sync.desired import resolve_desired

    entries = [
        SourceEntry("a.md", 5, 0.0, "5-0", "aa"),
        SourceEntry("a.md.meta.json", 9, 0.0, "9-0", "bb"),
    ]
    inv = Inventory(entries, [], True, "file:///x", 2, 0.0)
    spec = load_spec({"front_matter": {"keys": ["title"]}, "sidecar": True})
    kept, book = resolve_desired(LocalFolderSource(tmp_path), inv, [], spec=spec, rules=None)
    assert [e.path for e in kept.entries] == ["a.md"]
    assert book.get("a.md").meta == {} and book.reads["sidecar"] == 1


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"chunk_token_num": 0}, "chunk_token_num: 0 is not an integer in [1, 2048]"),
        ({"auto_keywords": 99}, "auto_keywords"),
        ({"chunk_token_num": "128"}, "chunk_token_num"),
        ({"delimiter": ""}, "delimiter"),
    ],
)
def test_rules_refuse_parser_configs_the_server_refuses(config, needle):
    with pytest.raises(ValidationError, match=re.escape(needle)):
        load_rules([{"glob": "*", "chunk_method": "naive", "parser_config": config}])
