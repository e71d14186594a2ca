"""The records of one listing share equal values, which are read-only (issue 16, memory)."""

from __future__ import annotations

import copy
import io
import json
import pickle
from dataclasses import asdict

import pytest

from ragflow_dagster.client import Document, UploadFile
from ragflow_dagster.client.shared import EMPTY, FrozenDict, FrozenList, Shared, freeze


def _upload(client, dataset, count: int) -> list[Document]:
    files = [UploadFile(f"s{i}.txt", io.BytesIO(b"x" * (i + 1))) for i in range(count)]
    return client.upload_documents(dataset.id, files)


def test_one_listing_shares_one_parser_config_and_refuses_changes(client, dataset):
    _upload(client, dataset, 5)
    docs = list(client.iter_documents(dataset.id, page_size=2))  # three pages, one listing
    assert len(docs) == 5
    configs = {id(d.parser_config) for d in docs}
    assert len(configs) == 1, "equal parser_config values are one object"
    config = docs[0].parser_config
    assert config and isinstance(config, FrozenDict)
    with pytest.raises(TypeError):
        config["chunk_token_num"] = 1  # type: ignore[index]
    nested = next(v for v in config.values() if isinstance(v, dict))
    with pytest.raises(TypeError):
        nested.clear()
    assert len({id(d.dataset_id) for d in docs}) == 1
    assert len({id(d.extra["created_by"]) for d in docs}) == 1
    with pytest.raises(TypeError):
        docs[0].extra["x"] = 1  # type: ignore[index]
    docs[0].meta_fields["own"] = 1  # each record's meta_fields is its own plain dict
    assert "own" not in docs[1].meta_fields

    page, total = client.list_documents(dataset.id, page_size=5)
    assert total == 5 and len({id(d.parser_config) for d in page}) == 1
    assert page[0].parser_config == config and page[0].parser_config is not config


def test_shared_values_still_behave_as_dicts_and_lists():
    doc = Document.from_api(
        {"id": "d", "name": "a.txt", "parser_config": {"raptor": {"kinds": ["a"]}}, "x": [1]}
    )
    plain = {"raptor": {"kinds": ["a"]}}
    assert doc.parser_config == plain and json.loads(json.dumps(doc.parser_config)) == plain
    assert isinstance(doc.parser_config["raptor"]["kinds"], FrozenList)
    assert pickle.loads(pickle.dumps(doc)) == doc
    assert copy.deepcopy(doc).parser_config == plain
    assert asdict(doc)["parser_config"] == plain and asdict(doc)["extra"] == {"x": [1]}
    mutable = dict(doc.parser_config) | {"chunk_token_num": 128}
    assert mutable["chunk_token_num"] == 128 and "chunk_token_num" not in doc.parser_config
    assert Document(id="a", dataset_id="d", name="a").parser_config is EMPTY


def test_sharing_keeps_the_types_the_server_sent():
    shared = Shared()
    as_bool = shared.config({"html4excel": True, "n": 1})
    as_int = shared.config({"html4excel": 1, "n": 1})
    as_float = shared.config({"html4excel": 1.0, "n": 1})
    assert as_bool == as_int == as_float  # equal in Python, yet three records' worth
    assert [type(c["html4excel"]) for c in (as_bool, as_int, as_float)] == [bool, int, float]
    assert shared.config({"n": 1, "html4excel": True}) is not as_bool  # order kept too
    assert shared.config({"html4excel": True, "n": 1}) is as_bool
    assert shared.config({}) is EMPTY and freeze(as_bool) is as_bool


def test_the_string_cache_is_bounded():
    shared = Shared(max_texts=3)
    for i in range(10):
        shared.text(f"t{i}")
    again = "".join(["t", "9"])
    assert shared.text(again) is not again  # still remembered: the one object comes back
    assert len(shared._texts) <= 3


def test_values_without_an_exact_json_text_are_never_shared_wrongly():
    shared = Shared()
    nan = shared.config({"x": float("nan")})  # JSON text "null", like the next one
    null = shared.config({"x": None})
    assert null is not nan and null == {"x": None} and null["x"] is None
    assert nan["x"] != nan["x"]  # still the NaN it was
    big = shared.config({"n": 10**20})  # beyond orjson's 64 bits: frozen, not shared
    assert big == {"n": 10**20} and isinstance(big, FrozenDict)
    assert shared.config({"n": 10**20}) is not big


def test_short_strings_of_meta_fields_are_shared_long_ones_copied_as_they_are():
    shared = Shared()
    long = "x" * 40
    a = shared.strings({"team": "legal", "uri": long, "n": 3})
    b = shared.strings({"team": "".join(["le", "gal"]), "uri": "".join(["x" * 20, "x" * 20])})
    assert a["team"] is b["team"] and a["uri"] == b["uri"] and a["uri"] is not b["uri"]
    a["own"] = 1  # each result is a plain dict of its own
    assert "own" not in b and a["n"] == 3
