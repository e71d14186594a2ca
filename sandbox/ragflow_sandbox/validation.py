"""Reading and validating request input the way RAGFlow does: JSON bodies
(``validate_and_parse_json_request``), pydantic errors rendered as
``Field: <loc> - Message: <msg> - Value: <input>`` lines (``format_validation_error_message``),
and the REST query helpers. The models themselves are in :mod:`ragflow_sandbox.models`.

Example:
    >>> from ragflow_sandbox.models import DeleteDocumentReq
    >>> validate(DeleteDocumentReq, {"ids": ["a"]})
    {'ids': ['a'], 'delete_all': False}
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from . import constants as C

__all__ = [
    "BadRequest",
    "ValidationFailed",
    "check_ids_limit",
    "parse_json_object",
    "rest_page",
    "rest_page_size",
    "validate",
]


class ValidationFailed(Exception):
    """A request that its model rejected; :meth:`message` is RAGFlow's text for it."""

    def __init__(self, error: ValidationError) -> None:
        super().__init__(str(error))
        self.error = error

    def message(self) -> str:
        """One ``Field: <loc> - Message: <msg> - Value: <input>`` line per error (the value
        cut to 128 characters)."""
        lines = []
        for item in self.error.errors():
            value = str(item["input"])
            if len(value) > 128:
                value = value[:125] + "..."
            loc = ".".join(str(part) for part in item["loc"])
            lines.append(f"Field: <{loc}> - Message: <{item['msg']}> - Value: <{value}>")
        return "\n".join(lines)


def validate(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` validated by ``model``, as a plain dict with every field (defaults filled).

    Raises:
        ValidationFailed: With every error pydantic found.
    """
    try:
        return model.model_validate(data).model_dump()
    except ValidationError as exc:
        raise ValidationFailed(exc) from None


# --- JSON bodies --------------------------------------------------------------------------------


class BadRequest(Exception):
    """A request the route rejects before model validation (message already final)."""


def parse_json_object(body: bytes, content_type: str | None) -> dict[str, Any]:
    """Decode a JSON body the way ``validate_and_parse_json_request`` does.

    Raises:
        BadRequest: With RAGFlow's message for a wrong content type, bad JSON or a non-object.
    """
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if mimetype != "application/json":
        raise BadRequest(f"Unsupported content type: Expected application/json, got {content_type}")
    try:
        payload = json.loads(body)  # an empty body is malformed JSON as well
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(
            "Malformed JSON syntax: Missing commas/brackets or invalid encoding"
        ) from None
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        name = {str: "str", list: "list", int: "int", float: "float", bool: "bool"}.get(
            type(payload), type(payload).__name__
        )
        raise BadRequest(f"Invalid request payload: expected object, got {name}")
    return payload


# --- query helpers --------------------------------------------------------------------------------


def rest_page(value: Any) -> int:
    """``validate_rest_api_page``: invalid values fall back to page 1."""
    try:
        page = int(value)
    except (TypeError, ValueError):
        return C.DEFAULT_PAGE
    return page if page >= 1 else C.DEFAULT_PAGE


def rest_page_size(value: Any) -> int:
    """``validate_rest_api_page_size``: invalid values fall back to 30; above 100 raises."""
    try:
        size = int(value)
    except (TypeError, ValueError):
        return C.DEFAULT_PAGE_SIZE
    if size < 1:
        return C.DEFAULT_PAGE_SIZE
    if size > C.MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be less than or equal to {C.MAX_PAGE_SIZE}")
    return size


def check_ids_limit(ids: list[Any] | None, field_name: str = "ids") -> None:
    """``validate_rest_api_ids``: at most 100 ids."""
    if ids is not None and len(ids) > C.MAX_IDS:
        raise ValueError(f"{field_name} must contain at most {C.MAX_IDS} IDs")
