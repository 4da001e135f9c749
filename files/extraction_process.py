"""Extraction in a child process with OS limits on its memory, CPU time and output.

A parser's memory and time cannot be bounded from inside it: lxml parsing an XML bomb
or pypdf decoding one page that never ends hold the interpreter until they finish. So
ingestion runs ``files.extraction.extract_pages`` in ``python -m files.extraction_process``:

- the child sets ``RLIMIT_AS`` (DOCUMENT_EXTRACT_MEMORY_MB) before it reads the file, an
  ``RLIMIT_CPU`` a little past the deadline (so a child whose parent died still ends) and
  ``RLIMIT_FSIZE`` on what it writes;
- the parent waits until the ingestion's deadline and kills the child there;
- bytes go in and the result comes out through temporary files, not pipes: neither side
  can block the other, and the parent never reads more than the child was allowed to
  write. The result is JSON (never pickle: the child handles hostile input).

A new interpreter (``subprocess``, no ``preexec_fn``) rather than ``fork``: the web
process runs threads and an event loop, and a forked copy of those is unsafe. It costs
one interpreter start plus the reader's imports per document: measured as the child's CPU
time, about 0.08 s for a text file, 0.26 s for a 4-page PDF (importing pypdf is 0.22 s of
it) and 0.21 s for a DOCX; small beside embedding.

Every way the child can end maps to a failure code: its own ``ExtractionFailed``; killed
at the deadline or by its CPU limit: ``document_too_slow``; out of memory or output:
``document_too_large``; any other crash of a reader on the file: ``document_unreadable``
(logged with the child's last words, since it may also be a bug of ours).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from files.extraction import MB, TEXT, ExtractionFailed, Page, too_large, too_slow

logger = logging.getLogger(__name__)

# The child's CPU limit is this far past its wall-clock budget: the parent kills it at the
# deadline, the CPU limit only ends a child whose parent died first.
CPU_LIMIT_MARGIN_S = 5
# JSON may escape a character as \u00XX: the result file holds at most this many bytes
# per character of text.
JSON_BYTES_PER_CHAR = 6
OUTPUT_SLACK_BYTES = MB
STDERR_TAIL_BYTES = 2000
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Words in the child's last output that mean it ran out of memory.
_OUT_OF_MEMORY = (b"MemoryError", b"Cannot allocate memory", b"out of memory", b"bad_alloc")


def _out_of_memory(memory_mb: int) -> ExtractionFailed:
    return ExtractionFailed(
        f"Reading the file needed more than {memory_mb} MB of memory "
        "(DOCUMENT_EXTRACT_MEMORY_MB); it may be a decompression bomb, or hold very large "
        "embedded content. Export it again without that, or split it, and upload the parts.",
        code="document_too_large",
    )


def _unreadable(reason: str) -> ExtractionFailed:
    return ExtractionFailed(
        f"The file could not be read ({reason}). Open it and save or export it again (as "
        "PDF or plain text if need be), and upload that.",
        code="document_unreadable",
    )


def _output_limit(max_unzipped_bytes: int) -> int:
    return max_unzipped_bytes * JSON_BYTES_PER_CHAR + OUTPUT_SLACK_BYTES


def _child_env() -> dict[str, str]:
    # Nothing of the parent's environment (it holds vendor keys): what Python needs to
    # find the project and decode nothing by locale.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUTF8": "1"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def extract_pages_isolated(
    *,
    data: bytes,
    content_type: str,
    max_pages: int,
    max_unzipped_bytes: int,
    memory_mb: int,
    deadline: float,
) -> list[Page]:
    """``extract_pages`` in a child process that is killed at ``deadline`` (a
    ``time.monotonic()`` value) and cannot use more than ``memory_mb`` MB. Raises
    ExtractionFailed (and nothing else for anything the file does)."""
    seconds = deadline - time.monotonic()
    if seconds <= 0:
        raise too_slow()
    params = {
        "content_type": content_type,
        "max_pages": max_pages,
        "max_unzipped_bytes": max_unzipped_bytes,
        "memory_mb": memory_mb,
        "seconds": seconds,
        "output_bytes": _output_limit(max_unzipped_bytes),
    }
    with (
        tempfile.TemporaryFile(prefix="extract-in-") as stdin,
        tempfile.TemporaryFile(prefix="extract-out-") as stdout,
        tempfile.TemporaryFile(prefix="extract-err-") as stderr,
    ):
        stdin.write(data)
        stdin.seek(0)
        child = subprocess.Popen(
            [sys.executable, "-m", "files.extraction_process", json.dumps(params)],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=_PROJECT_ROOT,
            env=_child_env(),
            close_fds=True,
        )
        killed = False
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            killed = True
        finally:
            # Also on the worker's soft time limit or any exception raised into this wait.
            if child.poll() is None:
                child.kill()
                child.wait()
        if killed:
            raise too_slow()
        return _result(child.returncode, stdout, stderr, params)


def _tail(stream) -> bytes:
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(size - STDERR_TAIL_BYTES, 0))
    return stream.read()


def _result(returncode: int, stdout, stderr, params: dict) -> list[Page]:
    memory_mb = params["memory_mb"]
    if returncode == -signal.SIGXCPU:
        raise too_slow()
    if returncode == -signal.SIGXFSZ:
        raise too_large(params["max_unzipped_bytes"], TEXT)
    size = stdout.seek(0, os.SEEK_END)
    if returncode != 0 or size == 0 or size > params["output_bytes"]:
        last_words = _tail(stderr)
        # SIGKILL we did not send: the kernel's (or a container's) out-of-memory killer.
        if returncode == -signal.SIGKILL or any(word in last_words for word in _OUT_OF_MEMORY):
            raise _out_of_memory(memory_mb)
        logger.warning(
            "document extraction child ended with %s: %s",
            returncode,
            last_words.decode("utf-8", "replace"),
        )
        raise _unreadable(f"the reader stopped with exit status {returncode}")
    stdout.seek(0)
    try:
        result = json.loads(stdout.read())
        if "pages" in result:
            return [Page(number=number, text=text) for number, text in result["pages"]]
        if "failed" in result:
            raise ExtractionFailed(result["failed"]["message"], code=result["failed"]["code"])
        if "out_of_memory" in result:
            raise _out_of_memory(memory_mb)
        crash = str(result["crashed"])
    except (ValueError, KeyError, TypeError):
        crash = "its result could not be read"
    # A reader that raises on a file may also be a bug of ours: the traceback is logged.
    logger.warning(
        "document extraction crashed in the child: %s\n%s",
        crash,
        _tail(stderr).decode("utf-8", "replace"),
    )
    raise _unreadable(crash[:300])


# ---------------------------------------------------------------- the child process


def _limit(resource_id: int, value: int) -> None:
    import resource

    _, hard = resource.getrlimit(resource_id)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(resource_id, (value, hard))


def _child_main(argv: list[str]) -> int:
    import resource

    from files.extraction import extract_pages

    params = json.loads(argv[1])
    # Before the file is read: the limits cover every byte the child holds.
    _limit(resource.RLIMIT_AS, params["memory_mb"] * MB)
    _limit(resource.RLIMIT_CPU, math.ceil(params["seconds"]) + CPU_LIMIT_MARGIN_S)
    _limit(resource.RLIMIT_FSIZE, params["output_bytes"])
    deadline = time.monotonic() + params["seconds"]
    out_of_memory = False
    try:
        data = sys.stdin.buffer.read()
        pages = extract_pages(
            data=data,
            content_type=params["content_type"],
            max_pages=params["max_pages"],
            deadline=deadline,
            max_unzipped_bytes=params["max_unzipped_bytes"],
        )
        del data
        result: dict = {"pages": [[page.number, page.text] for page in pages]}
    except ExtractionFailed as exc:
        result = {"failed": {"code": exc.code, "message": exc.message}}
    except MemoryError:
        # Reported after the except block: the traceback still holds what filled memory.
        out_of_memory = True
    except Exception as exc:  # the child's boundary: a reader's crash on a hostile file
        # To the child's stderr (logging's last-resort handler), which the parent logs.
        logger.exception("reading the document crashed")
        result = {"crashed": f"{type(exc).__name__}: {exc}"}
    if out_of_memory:
        result = {"out_of_memory": True}
    sys.stdout.buffer.write(json.dumps(result, ensure_ascii=False).encode())
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv))
