"""The course's instruction set for chapter 12: write a date in ISO 8601 form, as chats in JSONL.

The task has one checkable answer per prompt ("March 5, 2001" -> "2001-03-05"), scored by exact
match, and SmolLM2-135M-Instruct cannot do it out of the box: it echoes the date back or talks
around it (chapter 12 measures 0 exact matches before fine-tuning). Learning it needs the month
names mapped to numbers, zero padding, reordering, and replying with the date only.

The three splits share NO prompt template: training prompts are worded one way, validation and
test prompts in other words, so a model that only memorised the training wording does not pass
the test. Dates are unique across splits.

:data:`GENERAL_PROMPTS` are everyday requests unrelated to dates; chapter 12 measures forgetting
as the fine-tuned model's loss on the original model's own answers to them. :data:`REPLAY_PROMPTS`
are other everyday requests (none shared with GENERAL_PROMPTS) whose original answers chapter 12
replays during SFT.

Regenerate the shipped files with ``python -m sftcourse.instructions`` (deterministic; a test
checks that the files equal :func:`generate_splits`' output).
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from sftcourse.chat import Messages, to_jsonl
from sftcourse.generated import regenerate_main, write_split_files

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_SIZES = {"train": 160, "val": 24, "test": 24}
SPLIT_SEEDS = {"train": 1201, "val": 1202, "test": 1203}
DATA_DIR = Path(__file__).resolve().parent / "data" / "chat"

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
# How the date is written in a prompt (shared by the splits: the TASK is the same, the wording is not).
DATE_FORMS = ("{month} {day}, {year}", "{day} {month} {year}")
TEMPLATES: dict[str, tuple[str, ...]] = {
    "train": (
        "Write the date {date} in ISO 8601 format.",
        "Convert {date} to YYYY-MM-DD.",
        "What is {date} as an ISO date?",
        "Reformat this date as YYYY-MM-DD: {date}",
        "{date}: give it in year-month-day form with zero-padded numbers.",
        "Turn the date {date} into the form year-month-day.",
    ),
    "val": (
        "Please express {date} as an ISO 8601 date.",
        "I need {date} written as YYYY-MM-DD.",
    ),
    "test": (
        "Rewrite the date {date} in the ISO format year-month-day.",
        "How is {date} written in ISO 8601 notation?",
        "Express {date} as a YYYY-MM-DD string.",
    ),
}
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1).toordinal(), dt.date(2099, 12, 31).toordinal()

GENERAL_PROMPTS: tuple[str, ...] = (
    "What is the capital of France?",
    "Give me two tips for staying focused while studying.",
    "Explain in one sentence what photosynthesis is.",
    "Write a short poem about the sea.",
    "Name three primary colors.",
    "How do I boil an egg?",
    "What does a thermometer measure?",
    "Suggest a name for a friendly cat.",
)
# Other everyday requests, none of them in GENERAL_PROMPTS: chapter 12 mixes the original model's own
# answers to these into SFT batches (self-replay) and still measures forgetting on GENERAL_PROMPTS alone.
REPLAY_PROMPTS: tuple[str, ...] = (
    "What is the largest planet in our solar system?",
    "Give me a tip for sleeping better.",
    "Explain in one sentence what gravity is.",
    "Write a short poem about autumn leaves.",
    "Name three kinds of fruit.",
    "How do I make a cup of tea?",
    "What does a barometer measure?",
    "Suggest a name for a small, brave dog.",
    "Why is the sky blue?",
    "List two benefits of regular exercise.",
    "What is the boiling point of water at sea level?",
    "Describe a rainbow to a child.",
    "How many legs does a spider have?",
    "Give me an idea for a quick healthy breakfast.",
    "What is a synonym for happy?",
    "Explain what a noun is.",
)


def iso_answer(date: dt.date) -> str:
    """The one correct reply: ``YYYY-MM-DD``."""
    return date.isoformat()


def date_prompt(date: dt.date, template: str, form: str) -> str:
    """A user prompt: ``template`` with the date written as ``form`` (see DATE_FORMS)."""
    text = form.format(month=MONTHS[date.month - 1], day=date.day, year=date.year)
    prompt = template.format(date=text)
    return prompt[0].upper() + prompt[1:]


def generate_split(split: str, n: int | None = None, seed: int | None = None,
                   exclude: set[dt.date] | None = None) -> list[Messages]:
    """``n`` chats of ``split`` (user prompt, assistant ISO date), dates unique and not in ``exclude``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    n = SPLIT_SIZES[split] if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    rng = random.Random(SPLIT_SEEDS[split] if seed is None else seed)
    taken = set(exclude or ())
    chats = []
    for i in range(n):
        date = dt.date.fromordinal(rng.randint(FIRST_DAY, LAST_DAY))
        while date in taken:
            date = dt.date.fromordinal(rng.randint(FIRST_DAY, LAST_DAY))
        taken.add(date)
        templates = TEMPLATES[split]
        prompt = date_prompt(date, templates[i % len(templates)], rng.choice(DATE_FORMS))
        chats.append([{"role": "user", "content": prompt}, {"role": "assistant", "content": iso_answer(date)}])
    rng.shuffle(chats)
    return chats


def generate_splits() -> dict[str, list[Messages]]:
    """All three splits with their default sizes and seeds; no date occurs in two splits."""
    splits: dict[str, list[Messages]] = {}
    seen: set[dt.date] = set()
    for split in SPLITS:
        splits[split] = generate_split(split, exclude=seen)
        seen |= {dt.date.fromisoformat(chat[-1]["content"]) for chat in splits[split]}
    return splits


def split_path(split: str, root: Path | None = None) -> Path:
    """Where ``split``'s JSONL lives (``sftcourse/data/chat/iso_dates_{split}.jsonl`` by default)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return (DATA_DIR if root is None else Path(root)) / f"iso_dates_{split}.jsonl"


def write_splits(root: Path | None = None) -> list[Path]:
    """Write the three JSONL files under ``root`` (default: the package's data folder); return their paths."""
    return write_split_files({split: to_jsonl(chats) for split, chats in generate_splits().items()}, split_path, root)


def main(argv: list[str] | None = None) -> int:
    return regenerate_main(argv, description="Write the ISO-date instruction JSONL files.", default_root=DATA_DIR,
                           write=write_splits)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
