"""The shipped ISO-date instruction set: files = generator output, answers correct, splits disjoint."""

from __future__ import annotations

import datetime as dt
import re
import string

import pytest

from sftcourse import instructions
from sftcourse.chat import load_instructions
from sftcourse.instructions import (
    GENERAL_PROMPTS,
    MONTHS,
    REPLAY_PROMPTS,
    SPLIT_SIZES,
    SPLITS,
    TEMPLATES,
    generate_split,
    generate_splits,
)


@pytest.fixture(scope="module")
def splits():
    return generate_splits()


def test_shipped_files_equal_the_generator_output_and_load(splits):
    for split, chats in splits.items():
        path = instructions.split_path(split)
        assert path.read_text(encoding="utf-8") == instructions.to_jsonl(chats), \
            f"{path.name} is stale: run `python -m sftcourse.instructions`"
        assert load_instructions(path) == chats


def _parse(prompt):
    """Independent oracle: find the written date in a prompt with a regex and the month table."""
    names = "|".join(MONTHS)
    m = re.search(rf"({names}) (\d{{1,2}}), (\d{{4}})", prompt)
    if m:
        month, day, year = m.groups()
    else:
        day, month, year = re.search(rf"(\d{{1,2}}) ({names}) (\d{{4}})", prompt).groups()
    return dt.date(int(year), MONTHS.index(month) + 1, int(day))


def test_every_answer_is_the_iso_form_of_the_prompts_date(splits):
    for chats in splits.values():
        for user, reply in chats:
            assert user["role"] == "user" and reply["role"] == "assistant"
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", reply["content"])
            assert _parse(user["content"]).isoformat() == reply["content"]


def _wording(prompt):
    return re.sub(r"\d+|" + "|".join(MONTHS), "#", prompt)


def test_splits_share_no_template_and_no_date(splits):
    assert {s: len(c) for s, c in splits.items()} == SPLIT_SIZES
    wordings = {s: {_wording(u["content"]) for u, _ in chats} for s, chats in splits.items()}
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not wordings[a] & wordings[b], (a, b)
    dates = [r["content"] for chats in splits.values() for _, r in chats]
    assert len(dates) == len(set(dates))
    keys = {s: {t.split("{date}")[0].strip(string.punctuation + " ").lower() for t in TEMPLATES[s]} for s in SPLITS}
    assert not (keys["train"] & keys["test"])


def test_generation_is_deterministic_and_checks_its_arguments(splits):
    assert generate_splits() == splits
    assert generate_split("val", n=3, seed=5) == generate_split("val", n=3, seed=5)
    with pytest.raises(ValueError, match="split must be one of"):
        generate_split("dev")
    with pytest.raises(ValueError, match="positive int"):
        generate_split("train", n=0)


def test_write_splits_to_another_folder(tmp_path):
    paths = instructions.write_splits(tmp_path)
    assert [p.name for p in paths] == [f"iso_dates_{s}.jsonl" for s in SPLITS]
    assert instructions.main(["--root", str(tmp_path)]) == 0


def test_general_prompts_are_not_about_dates():
    assert len(GENERAL_PROMPTS) >= 6
    assert not any(m in p for p in GENERAL_PROMPTS for m in MONTHS + ("date", "ISO"))


def test_replay_prompts_are_disjoint_from_the_forgetting_prompts():
    """Replay must not train on the prompts forgetting is measured on (not even the same words in another case)."""
    assert len(REPLAY_PROMPTS) >= 8 and len(set(REPLAY_PROMPTS)) == len(REPLAY_PROMPTS)
    assert not {p.lower().strip() for p in REPLAY_PROMPTS} & {p.lower().strip() for p in GENERAL_PROMPTS}
    assert not any(m in p for p in REPLAY_PROMPTS for m in MONTHS + ("date", "ISO"))
