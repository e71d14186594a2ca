"""Request validation by pydantic models shaped like RAGFlow's: pydantic writes the messages."""

from __future__ import annotations

import uuid

import pytest

from ragflow_sandbox import models as M
from ragflow_sandbox.validation import ValidationFailed, validate

from .helpers import Api


def _message(model: type, data: dict) -> str:
    with pytest.raises(ValidationFailed) as info:
        validate(model, data)
    return info.value.message()


def test_every_error_is_reported_one_line_each_in_field_order() -> None:
    config = {"table_column_roles": {"a": "bad", "b": "worse"}}
    text = _message(M.CreateDatasetReq, {"name": "", "parser_config": config})
    assert text.splitlines() == [
        "Field: <name> - Message: <String should have at least 1 character> - Value: <>",
        "Field: <parser_config.table_column_roles.a> - Message: "
        "<Input should be 'indexing', 'metadata' or 'both'> - Value: <bad>",
        "Field: <parser_config.table_column_roles.b> - Message: "
        "<Input should be 'indexing', 'metadata' or 'both'> - Value: <worse>",
    ]


def test_custom_messages_and_long_values_are_cut_to_128_characters() -> None:
    text = _message(M.CreateDatasetReq, {"name": "x", "avatar": "y" * 300})
    assert text == (
        "Field: <avatar> - Message: <missing MIME prefix. Expected format: "
        f"data:<mime>;base64,<data>> - Value: <{'y' * 125}...>"
    )
    assert "Extra inputs are not permitted" in _message(M.CreateDatasetReq, {"name": "x", "z": 1})
    assert _message(M.CreateDatasetReq, {"name": "x", "parse_type": 1}) == (
        "Field: <> - Message: <parser_id omitted → required fields missing: pipeline_id> - "
        "Value: <{'name': 'x', 'parse_type': 1}>"
    )


def test_defaults_are_filled_and_legacy_raptor_keys_mapped() -> None:
    out = validate(
        M.CreateDatasetReq,
        {"name": " ds ", "parser_config": {"raptor": {"max_token": 100, "threshold": 0.2}}},
    )
    assert out["name"] == "ds" and out["chunk_method"] == "naive"
    raptor = out["parser_config"]["raptor"]
    assert raptor["max_token"] == 512 and "threshold" not in raptor
    assert out["parser_config"]["graphrag"]["entity_types"][0] == "organization"
    ids = [str(uuid.uuid4())]
    assert validate(M.DeleteDatasetReq, {"ids": ids})["ids"] == [uuid.UUID(ids[0]).hex]


def test_the_routes_answer_with_the_model_messages(api: Api) -> None:
    res = api.delete("/datasets", json={"ids": ["not-a-uuid"]})
    assert res == {
        "code": 101,
        "message": "Field: <ids> - Message: <Invalid UUID format> - Value: <['not-a-uuid']>",
    }
    res = api.post("/datasets", json={"name": "v", "chunk_method": "nope"})
    assert res["code"] == 101 and res["message"].startswith(
        "Field: <chunk_method> - Message: <Input should be 'naive', 'book'"
    )
    listed = api.get("/datasets", params={"page_size": 101})
    assert listed == {
        "code": 101,
        "message": "Field: <page_size> - Message: <Value error, page_size must be less than or "
        "equal to 100> - Value: <101>",
    }
