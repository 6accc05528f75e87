"""Uploaded files, for POST /batches and POST /sources/{key}/snapshots: copied to disk chunk by
chunk (never held whole in memory), their kind told by their name's extension or, when the name
has none (a program's upload often has no file name), by their first bytes; an XLSX that would
expand beyond the configured size is refused before anything is decompressed.

The body as a whole is limited before it is read (app.UploadLimit)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from engine.errors import FileUnreadable
from engine.workbooks import check_xlsx_size

__all__ = ["save_upload"]

_CHUNK = 1 << 20
# anything else is read as CSV
_SIGNATURES = ((b"PK\x03\x04", ".xlsx"), (b"PAR1", ".parquet"), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", ".xls"))


def _safe_name(name: str, suffix: str) -> str:
    """The uploaded file's own name, fit for a file system and a message: no directories,
    control characters or leading dots; the extension its kind needs."""
    stem = re.sub(r"[\x00-\x1f\x7f/\\:]+", "_", Path(name.replace("\\", "/")).name).lstrip(".").strip()
    stem = stem[: 200 - len(suffix)] or "upload"
    return stem if stem.lower().endswith(suffix) else stem + suffix


async def save_upload(upload: UploadFile, directory: Path, suffixes: tuple[str, ...], max_expanded: int) -> Path:
    """Write `upload` under `directory` (which must exist) as `<its name>` with the extension of
    its kind, one of `suffixes`; FileUnreadable for another kind, TooLarge for an XLSX bomb."""
    name = upload.filename or ""
    suffix = Path(name).suffix.lower()
    head = await upload.read(8)
    if not suffix:
        suffix = next((kind for magic, kind in _SIGNATURES if head.startswith(magic)), ".csv")
    if suffix not in suffixes:
        listed = " 或 ".join(s.lstrip(".").upper() for s in suffixes)
        raise FileUnreadable(f"{name}: 请上传 {listed} 文件 (upload a {', '.join(suffixes)} file, not {suffix})")
    path = directory / _safe_name(name, suffix)
    handle = await run_in_threadpool(open, path, "wb")  # the disk waits in a thread, not the event loop
    try:
        await run_in_threadpool(handle.write, head)
        while chunk := await upload.read(_CHUNK):
            await run_in_threadpool(handle.write, chunk)
    finally:
        await run_in_threadpool(handle.close)
    if suffix == ".xlsx" or (suffix == ".xls" and head.startswith(b"PK\x03\x04")):  # an XLSX under either name
        await run_in_threadpool(check_xlsx_size, path, max_expanded)
    return path
