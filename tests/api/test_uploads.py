"""api.uploads: an uploaded file on disk under a safe name with the extension of its kind."""

from __future__ import annotations

import asyncio
import io

import pytest
from fastapi import UploadFile

from api.uploads import save_upload
from engine.errors import FileUnreadable, TooLarge

SUFFIXES = (".csv", ".xlsx", ".xls", ".parquet")


def _save(tmp_path, name: str, content: bytes, suffixes=SUFFIXES, max_expanded: int = 1 << 30):
    upload = UploadFile(file=io.BytesIO(content), filename=name)
    return asyncio.run(save_upload(upload, tmp_path, suffixes, max_expanded))


@pytest.mark.parametrize(("name", "content", "saved"), [
    ("roll.csv", b"a,b\n", "roll.csv"),
    ("名册.CSV", b"a,b\n", "名册.CSV"),
    ("../../etc/roll.csv", b"a,b\n", "roll.csv"),
    ("C:\\Users\\x\\roll.xlsx", b"PK\x03\x04rest", "roll.xlsx"),
    (".hidden.csv", b"a,b\n", "hidden.csv"),
    ("bad\x00name\n.csv", b"a,b\n", "bad_name_.csv"),
    ("export", b"PK\x03\x04rest", "export.xlsx"),
    ("export", b"PAR1rest", "export.parquet"),
    ("export", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", "export.xls"),
    ("export", b"a,b\n", "export.csv"),
    ("", b"a,b\n", "upload.csv"),
])
def test_the_name_and_kind(tmp_path, name, content, saved):
    path = _save(tmp_path, name, content)
    assert path.parent == tmp_path and path.name == saved and path.read_bytes() == content


def test_another_kind_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(FileUnreadable, match=r"\.csv"):
        _save(tmp_path, "roll.parquet", b"PAR1", suffixes=(".csv", ".xlsx"))
    assert list(tmp_path.iterdir()) == []


def test_a_large_file_is_copied_whole(tmp_path):
    content = b"x" * (3 * (1 << 20) + 17)
    assert _save(tmp_path, "big.csv", content).read_bytes() == content


def _expanding() -> bytes:
    """A zip whose one part expands to 2 MB."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"0" * 2_000_000)
    return buffer.getvalue()


def test_an_xlsx_that_expands_too_far_is_refused(tmp_path):
    with pytest.raises(TooLarge):
        _save(tmp_path, "roll.xlsx", _expanding(), max_expanded=1 << 20)


def test_an_xlsx_named_xls_that_expands_too_far_is_refused_too(tmp_path):
    with pytest.raises(TooLarge):
        _save(tmp_path, "roll.xls", _expanding(), max_expanded=1 << 20)
