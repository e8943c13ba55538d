"""Reading a source's text files the same way everywhere: size-capped, binary refused, UTF-8 only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


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


def outside_tree(path: Path, tree: Path) -> bool:
    """Whether `path` (a file found under `tree`) is a symbolic link, or lies under one, whose target is outside
    `tree`: such a file is refused, so a link cannot pull in what the given tree does not hold."""
    try:
        path.resolve().relative_to(tree.resolve())
    except (ValueError, OSError, RuntimeError):  # elsewhere, or a link loop that resolves nowhere
        return True
    return False


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses anchors and aliases: a few lines of nested aliases ("billion laughs")
    otherwise expand into gigabytes once the value is used."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed", event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(None, None, "anchors are not allowed", event.start_mark)
        return super().compose_node(parent, index)


def safe_yaml(text: str) -> Any:
    """YAML as plain data, without anchors or aliases (a `yaml.YAMLError` saying so when the text has any)."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
