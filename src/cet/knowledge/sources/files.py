"""Reading a source's text files the same way everywhere: size-capped, binary refused, UTF-8 only."""

from __future__ import annotations

from pathlib import Path


class UnusableFile(Exception):
    """A file that cannot be read as text; the message is the reason a SkippedRecord records."""


def read_text_file(path: Path, max_bytes: int) -> str:
    """The file's UTF-8 text (a BOM is dropped); raises UnusableFile saying why there is none."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UnusableFile(f"file too large ({size} bytes > {max_bytes})")
        data = path.read_bytes()
    except OSError as exc:
        raise UnusableFile(f"unreadable: {exc.strerror or exc}") from None
    if b"\x00" in data:
        raise UnusableFile("binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnusableFile(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
