"""ragflow-sandbox: a RAGFlow-compatible HTTP server for tests, demos and benchmarks.

It answers the ``/api/v1`` routes for datasets, documents, parsing, chunks, retrieval and
document metadata like a RAGFlow v0.27 server (same envelope, codes, messages, limits),
keeps its state in SQLite plus blob files (a restarted server keeps its data), parses in a
background worker and can inject faults. It is a distribution of its own (like moto for AWS):
it shares no code with any client it is used to test.

Start it with the ``ragflow-sandbox`` console script / ``python -m ragflow_sandbox``, with
:func:`run_sandbox` in Python, or through the ``ragflow_sandbox`` /
``ragflow_sandbox_factory`` pytest fixtures.

Parsing: a parse request moves documents to ``RUNNING`` at once; the worker then takes them to
``DONE`` (text chunked by the dataset's ``chunk_token_num`` and ``delimiter``) or ``FAIL``.
Small text files are done within milliseconds. ``parse_delay`` (seconds, also
``--parse-delay`` and ``SandboxServer.set_parse_delay``) keeps every document RUNNING that
long first, to imitate a slow server.

Making a parse FAIL deterministically: upload a ``.pdf`` whose bytes do not start with
``%PDF-`` (a corrupt PDF, as on the real server), or a ``.docx``/``.xlsx``/``.pptx`` that is
not a zip archive, or put the marker ``RAGFLOW_SANDBOX_FAIL`` in the first 64 KiB of any file.

Faults (off by default): ``fault_rate`` / ``--fault-rate`` at start, or
``SandboxServer.set_faults(rate=..., kinds=[...], routes=..., methods=..., latency_ms=...)``
(``PUT /_sandbox/faults``) at run time; see :mod:`ragflow_sandbox.faults`.

Example:
    >>> from ragflow_sandbox import run_sandbox
    >>> with run_sandbox() as server:
    ...     server.base_url.startswith("http://127.0.0.1:"), server.api_key.startswith("ragflow-")
    (True, True)
"""

from .cli import add_cli_arguments, run_cli
from .server import SandboxServer, generate_api_key, run_sandbox

__version__ = "0.1.0"

__all__ = [
    "SandboxServer",
    "__version__",
    "add_cli_arguments",
    "generate_api_key",
    "run_cli",
    "run_sandbox",
]
