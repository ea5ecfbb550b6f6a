"""Data files the course generates and ships: writing a generator's splits, and its regenerate command.

:mod:`sftcourse.sentiment` (CSV) and :mod:`sftcourse.instructions` (JSONL) build their splits
deterministically in code and ship the result under ``sftcourse/data``; their tests compare the
shipped files with the generator's output. Both write files and offer
``python -m sftcourse.<module> [--root DIR]`` the same way, through the two functions here.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path


def write_split_files(texts: Mapping[str, str], split_path: Callable[[str, Path | None], Path],
                      root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write ``texts[split]`` to ``split_path(split, root)`` for every split, in order; return the paths.

    ``root=None`` lets ``split_path`` choose its default (the package's data folder); folders are
    created. Text is written as UTF-8 with the newlines it contains (no platform translation), so the
    files are byte for byte the same on every system.
    """
    if not isinstance(texts, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in texts.items()):
        raise TypeError(f"texts must map split names to file contents (str -> str), got {type(texts).__name__}")
    if root is not None:
        root = Path(root)
        if root.is_file():
            raise ValueError(f"root {root} is a file; pass a folder (it is created if missing)")
    paths = []
    for split, text in texts.items():
        path = split_path(split, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="")
        paths.append(path)
    return paths


def regenerate_main(argv: list[str] | None, *, description: str, default_root: Path,
                    write: Callable[[Path | None], list[Path]]) -> int:
    """The ``python -m sftcourse.<generator>`` command: parse ``--root``, call ``write(root)``, list the files."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--root", type=Path, default=None, help=f"output folder (default {default_root})")
    args = parser.parse_args(argv)
    for path in write(args.root):
        print(f"wrote {path}")
    return 0


__all__ = ["write_split_files", "regenerate_main"]
