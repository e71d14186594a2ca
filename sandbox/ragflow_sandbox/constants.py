"""Constants of the sandbox that mirror a RAGFlow v0.27 server.

Values come from the real server (``common/constants.py``, ``api/constants.py``,
``api/utils/pagination_utils.py``, ``api/utils/file_utils.py``); they are restated here,
never imported, because the sandbox is a stand-alone server.
"""

from __future__ import annotations

import copy
import re
from typing import Any

# --- return codes (RetCode) -------------------------------------------------------------------
SUCCESS = 0
EXCEPTION_ERROR = 100
ARGUMENT_ERROR = 101
DATA_ERROR = 102
OPERATING_ERROR = 103
AUTHENTICATION_ERROR = 109
UNAUTHORIZED = 401
NOT_FOUND = 404
SERVER_ERROR = 500

UNAUTHORIZED_MESSAGE = "<Unauthorized '401: Unauthorized'>"

# --- limits -------------------------------------------------------------------------------------
DEFAULT_PAGE = 1
DEFAULT_PAGE_SIZE = 30
MAX_PAGE_SIZE = 100
MAX_IDS = 100
DATASET_NAME_LIMIT = 128
FILE_NAME_LEN_LIMIT = 255
#: ``MAX_CONTENT_LENGTH`` of the HTTP layer (Quart / nginx): 1 GiB.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024 * 1024
#: Files above this size fail at parse time (``common/settings.py`` default, 128 MiB).
DEFAULT_MAX_PARSE_BYTES = 128 * 1024 * 1024

# --- document run states (TaskStatus) -----------------------------------------------------------
RUN_UNSTART = "0"
RUN_RUNNING = "1"
RUN_CANCEL = "2"
RUN_DONE = "3"
RUN_FAIL = "4"
RUN_SCHEDULE = "5"
RUN_TEXT = {"0": "UNSTART", "1": "RUNNING", "2": "CANCEL", "3": "DONE", "4": "FAIL"}
RUN_CODES = {
    "UNSTART": "0",
    "RUNNING": "1",
    "CANCEL": "2",
    "DONE": "3",
    "FAIL": "4",
    "SCHEDULE": "5",
}

# --- file types ---------------------------------------------------------------------------------
FILE_PDF = "pdf"
FILE_DOC = "doc"
FILE_VISUAL = "visual"
FILE_AURAL = "aural"
FILE_VIRTUAL = "virtual"
FILE_OTHER = "other"
VALID_FILE_TYPES = {"pdf", "doc", "visual", "aural", "virtual", "folder", "other"}

_DOC_RE = re.compile(
    r".*\.(msg|eml|doc|docx|ppt|pptx|yml|xml|htm|json|jsonl|ldjson|csv|txt|ini|xls|xlsx|wps|rtf|"
    r"hlp|pages|numbers|key|md|mdx|py|js|java|c|cpp|h|php|go|ts|sh|cs|kt|html|sql|epub)$"
)
_AURAL_RE = re.compile(r".*\.(wav|flac|ape|alac|wavpack|wv|mp3|aac|ogg|vorbis|opus)$")
# "WMF" stays upper case as on the real server, so ".wmf" is not matched there either.
_VISUAL_RE = re.compile(
    r".*\.(jpg|jpeg|png|tif|gif|bmp|pcx|tga|exif|fpx|svg|psd|cdr|pcd|dxf|ufo|eps|ai|raw|WMF|webp|"
    r"avif|apng|icon|ico|mpg|mpeg|avi|rm|rmvb|mov|wmv|asf|dat|asx|wvx|mpe|mpa|mp4|avi|mkv)$"
)


def filename_type(filename: str | None) -> str:
    """Classify a file name the way RAGFlow's ``filename_type`` does.

    Args:
        filename: The uploaded file name.

    Returns:
        One of ``pdf``, ``doc``, ``aural``, ``visual`` or ``other`` (not accepted).

    Example:
        >>> filename_type("notes.MD"), filename_type("tool.exe")
        ('doc', 'other')
    """
    if not isinstance(filename, str):
        return FILE_OTHER
    base = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not base or len(base) > FILE_NAME_LEN_LIMIT:
        return FILE_OTHER
    name = base.lower()
    if name.endswith(".pdf"):
        return FILE_PDF
    if _DOC_RE.match(name):
        return FILE_DOC
    if _AURAL_RE.match(name):
        return FILE_AURAL
    if _VISUAL_RE.match(name):
        return FILE_VISUAL
    return FILE_OTHER


def parser_for(file_type: str, filename: str, default: str) -> str:
    """Chunk method a new document gets (``FileService.get_parser``)."""
    if file_type == FILE_VISUAL:
        return "picture"
    if file_type == FILE_AURAL:
        return "audio"
    if re.search(r"\.(ppt|pptx|pages)$", filename):
        return "presentation"
    if re.search(r"\.(msg|eml)$", filename):
        return "email"
    return default


# --- chunk methods and parser_config defaults ---------------------------------------------------
DATASET_CHUNK_METHODS = (
    "naive",
    "book",
    "email",
    "laws",
    "manual",
    "one",
    "paper",
    "picture",
    "presentation",
    "qa",
    "table",
    "tag",
    "resume",
)
DOCUMENT_CHUNK_METHODS = {
    "naive",
    "manual",
    "qa",
    "table",
    "paper",
    "book",
    "laws",
    "presentation",
    "picture",
    "one",
    "knowledge_graph",
    "email",
    "audio",
    "tag",
}

RAPTOR_PROMPT = (
    "Summarize the paragraphs below without inventing facts or changing numbers.\n"
    "Output exactly two parts in the same language as the source:\n"
    "1. First line: a concise title only.\n"
    "2. Following lines: a concise summary of the content.\n"
    "Do not output labels, Markdown headings, bullet points, or any other commentary.\n\n"
    "Paragraphs:\n{cluster_content}"
)

_NAIVE_DEFAULTS: dict[str, Any] = {
    "layout_recognize": "DeepDOC",
    "chunk_token_num": 512,
    "delimiter": "\n",
    "auto_keywords": 0,
    "auto_questions": 0,
    "html4excel": False,
    "topn_tags": 3,
    "raptor": {
        "use_raptor": True,
        "prompt": RAPTOR_PROMPT,
        "max_token": 512,
        "clustering_threshold": 0.3,
        "clustering_ratio": 0.5,
        "max_cluster": 64,
        "random_seed": 0,
    },
    "graphrag": {
        "use_graphrag": True,
        "entity_types": ["organization", "person", "geo", "event", "category"],
        "method": "light",
        "batch_chunk_token_size": 4096,
        "retry_attempts": 2,
        "retry_backoff_seconds": 2.0,
        "retry_backoff_max_seconds": 60.0,
        "build_subgraph_timeout_per_chunk_seconds": 300,
        "build_subgraph_min_timeout_seconds": 600,
        "merge_timeout_seconds": 180,
        "resolution_timeout_seconds": 1800,
        "community_timeout_seconds": 1800,
        "lock_acquire_timeout_seconds": 600,
    },
    "parent_child": {"use_parent_child": False, "children_delimiter": "\n"},
}
_NO_EXTRAS: dict[str, Any] = {"raptor": {"use_raptor": False}, "graphrag": {"use_graphrag": False}}
_METHOD_DEFAULTS: dict[str, dict[str, Any] | None] = {
    "naive": _NAIVE_DEFAULTS,
    "qa": _NO_EXTRAS,
    "tag": None,
    "resume": None,
    "manual": _NO_EXTRAS,
    "table": None,
    "paper": _NO_EXTRAS,
    "book": _NO_EXTRAS,
    "laws": _NO_EXTRAS,
    "presentation": _NO_EXTRAS,
    "one": None,
    "knowledge_graph": {
        "chunk_token_num": 8192,
        "delimiter": "\n",
        "entity_types": ["organization", "person", "location", "event", "time"],
        "raptor": {"use_raptor": False},
        "graphrag": {"use_graphrag": False},
    },
    "email": None,
    "picture": None,
    "audio": None,
}


def deep_merge(default: dict[str, Any], custom: dict[str, Any]) -> dict[str, Any]:
    """Merge ``custom`` into a deep copy of ``default`` (custom wins, dicts merge recursively)."""
    merged = copy.deepcopy(default)
    stack = [(merged, custom)]
    while stack:
        base, override = stack.pop()
        for key, value in override.items():
            if key in base and isinstance(value, dict) and isinstance(base[key], dict):
                stack.append((base[key], value))
            else:
                base[key] = copy.deepcopy(value)
    return merged


def default_parser_config(chunk_method: str | None, parser_config: dict[str, Any] | None) -> dict:
    """Return the merged parser config RAGFlow stores (``get_parser_config``).

    Args:
        chunk_method: The chunk method (``None`` means ``naive``).
        parser_config: The caller's config, or ``None`` for the defaults.

    Returns:
        The config with the method's defaults filled in.

    Example:
        >>> default_parser_config("qa", None)["raptor"]
        {'use_raptor': False}
    """
    method = chunk_method or "naive"
    base = {"table_context_size": 0, "image_context_size": 0}
    defaults = _METHOD_DEFAULTS.get(method)
    if not parser_config:
        merged = deep_merge(base, defaults or {})
    elif defaults is None:
        merged = deep_merge(base, parser_config)
    else:
        merged = deep_merge(deep_merge(base, defaults), parser_config)
    parent_child = merged.get("parent_child", {})
    if isinstance(parent_child, dict) and parent_child.get("use_parent_child"):
        merged["children_delimiter"] = parent_child.get("children_delimiter", "\n")
    elif parent_child:
        merged["children_delimiter"] = ""
    return merged


# --- embedding models known to the sandbox ------------------------------------------------------
DEFAULT_EMBEDDING_MODEL = "BAAI/bge-small-en-v1.5@Builtin"
DEFAULT_LLM_ID = "glm-4-flash@CI@ZHIPU-AI"
#: factory -> embedding models the system knows.
EMBEDDING_CATALOG: dict[str, set[str]] = {
    "Builtin": {"BAAI/bge-small-en-v1.5"},
    "ZHIPU-AI": {"embedding-2", "embedding-3"},
    "SILICONFLOW": {
        "BAAI/bge-m3",
        "BAAI/bge-large-en-v1.5",
        "BAAI/bge-large-zh-v1.5",
        "netease-youdao/bce-embedding-base_v1",
    },
    "Tongyi-Qianwen": {"text-embedding-v2", "text-embedding-v3", "text-embedding-v4"},
    "OpenAI": {"text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"},
    "Ollama": set(),
}
RERANK_CATALOG: dict[str, set[str]] = {
    "SILICONFLOW": {"BAAI/bge-reranker-v2-m3", "netease-youdao/bce-reranker-base_v1"},
    "ZHIPU-AI": set(),
    "Builtin": set(),
}
#: factories the sandbox tenant has configured.
AUTHORIZED_FACTORIES = {"Builtin", "ZHIPU-AI", "SILICONFLOW"}


def check_model(model: str, model_type: str) -> str | None:
    """Like :func:`check_embedding_model` for ``embedding`` or ``rerank`` models."""
    catalog = RERANK_CATALOG if model_type == "rerank" else EMBEDDING_CATALOG
    if re.fullmatch(r"[0-9a-fA-F]{32}", model):
        return f"TenantModel id={model} not found."
    name, _, factory = model.rpartition("@")
    if "@" in name:  # "name@instance@factory"
        name = name.split("@", 1)[0]
    if not name:
        name, factory = factory, ""
    if factory not in AUTHORIZED_FACTORIES:
        return f"Provider {factory or None} not found for model {model}."
    if name not in catalog.get(factory, set()):
        return f"Model {model} not found for model {model_type}"
    return None


def check_embedding_model(model: str) -> str | None:
    """Return ``None`` if the tenant may use ``model``, else the server's error message.

    Messages follow ``resolve_model_config`` of RAGFlow v0.27: an unconfigured provider gives
    ``Provider <p> not found for model <m>.``; an unknown model of a configured provider gives
    ``Model <m> not found for model embedding``.
    """
    return check_model(model, "embedding")
