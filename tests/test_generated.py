"""Writing generated split files and the regenerate command (used by sentiment and instructions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sftcourse.generated import regenerate_main, write_split_files


def _path(split: str, root: Path | None) -> Path:
    return (Path("/nonexistent-default") if root is None else root) / "sub" / f"{split}.txt"


def test_writes_every_split_byte_for_byte_in_order(tmp_path):
    texts = {"train": "a,b\r\nünï\n", "val": "", "test": "x\n"}
    paths = write_split_files(texts, _path, tmp_path)
    assert paths == [tmp_path / "sub" / f"{s}.txt" for s in texts]
    # oracle: the raw bytes, no newline translation, UTF-8
    assert [p.read_bytes() for p in paths] == [t.encode("utf-8") for t in texts.values()]


def test_regenerate_main_passes_root_and_lists_the_files(tmp_path, capsys):
    seen = []

    def write(root):
        seen.append(root)
        return write_split_files({"only": "1\n"}, _path, root)

    assert regenerate_main(["--root", str(tmp_path)], description="d", default_root=tmp_path, write=write) == 0
    assert seen == [tmp_path]
    assert capsys.readouterr().out == f"wrote {tmp_path / 'sub' / 'only.txt'}\n"


def test_the_two_generators_use_it(tmp_path):
    from sftcourse import instructions, sentiment

    for module, count in ((sentiment, 3), (instructions, 3)):
        paths = module.write_splits(tmp_path / module.__name__)
        assert len(paths) == count and all(p.read_text(encoding="utf-8") for p in paths)
        assert [p.read_bytes() for p in paths] == [module.split_path(s).read_bytes() for s in module.SPLITS]


def _a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    return f


@pytest.mark.parametrize("case, call, exc, match", [
    ("root is a file", lambda tmp: write_split_files({"a": "b"}, _path, _a_file(tmp)), ValueError, "is a file"),
    ("texts not a mapping", lambda tmp: write_split_files(["a"], _path, tmp), TypeError, "texts must map"),
    ("a text is not a str", lambda tmp: write_split_files({"a": b"b"}, _path, tmp), TypeError, "str -> str"),
    ("unknown option", lambda tmp: regenerate_main(["--nope"], description="d", default_root=tmp,
                                                   write=lambda r: []), SystemExit, "2"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_input_raises_a_clear_error(case, call, exc, match, tmp_path):
    with pytest.raises(exc, match=match):
        call(tmp_path)
