"""The course's offline sentiment set: short reviews generated from word lists, written once to CSV.

The set is built so that its TEST split measures generalisation, not memorisation.
Every sentence is a neutral frame ("We tried {thing} last week and it was {word}.")
filled with a neutral thing (the soup, the battery, the plot) and sentiment words.
Frames, things and fillers are drawn with the same probabilities for both labels,
so only the sentiment words carry the label. The three splits use DISJOINT
sentiment vocabularies: a test sentence says "stellar" or "appalling", words that
never occur in the training (or validation) text. A model that only memorised
training words is at chance on test; a model that knows English from
pretraining can still read the test reviews.

The label is a column of the file, chosen when the sentence is generated; nothing
derives it from the text later (the source articles' ``endswith('positive')`` leak).

Regenerate the shipped files with ``python -m sftcourse.sentiment`` (deterministic;
a test checks the files equal :func:`generate_splits`' output).
"""

from __future__ import annotations

import csv
import io
import random
import re
from pathlib import Path

from sftcourse.generated import regenerate_main, write_split_files

CLASS_NAMES: tuple[str, str] = ("negative", "positive")
SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_SIZES: dict[str, int] = {"train": 600, "val": 200, "test": 400}
SPLIT_SEEDS: dict[str, int] = {"train": 1009, "val": 2003, "test": 3001}
DATA_DIR = Path(__file__).resolve().parent / "data" / "text"

# --- neutral material, shared by every split and both labels --------------------------------

THINGS: dict[str, tuple[str, ...]] = {
    "film": ("the film", "the documentary", "the sequel", "the musical", "the soundtrack",
             "the screenplay", "the cast", "the animation"),
    "restaurant": ("the food", "the service", "the soup", "the dessert", "the pasta", "the wine list",
                   "the breakfast", "the menu"),
    "product": ("the blender", "the battery", "the screen", "the keyboard", "the charger",
                "the vacuum cleaner", "the backpack", "the phone case"),
    "hotel": ("the room", "the bed", "the view", "the front desk", "the pool", "the shower"),
    "outing": ("the concert", "the museum tour", "the app", "the cooking class", "the ferry ride"),
}
ADVERBS: tuple[str, ...] = ("", "really ", "truly ", "simply ", "honestly ")
CLOSINGS: tuple[str, ...] = ("if you ask me", "to be honest", "at least for me", "as far as I can tell")
WHEN: tuple[str, ...] = ("last week", "on Friday", "over the holidays", "yesterday", "this morning")
WHO: tuple[str, ...] = ("My sister", "A colleague", "My neighbour", "Our group", "My partner")

# --- sentiment material: one disjoint vocabulary per split -------------------------------------
# adjectives fit "X was ___"; verbs fit "I ___ it".

ADJECTIVES: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {
        "positive": ("good", "great", "excellent", "wonderful", "fantastic", "lovely", "pleasant",
                     "enjoyable", "delightful", "impressive", "brilliant", "amazing", "perfect", "nice"),
        "negative": ("bad", "terrible", "awful", "horrible", "poor", "disappointing", "dreadful",
                     "unpleasant", "mediocre", "annoying", "useless", "frustrating", "disastrous", "lame"),
    },
    "val": {
        "positive": ("superb", "terrific", "splendid", "fabulous", "marvelous", "awesome"),
        "negative": ("lousy", "atrocious", "abysmal", "dismal", "subpar", "shoddy"),
    },
    "test": {
        "positive": ("outstanding", "magnificent", "exceptional", "stellar", "phenomenal", "remarkable",
                     "exquisite", "sublime", "top-notch", "spectacular", "flawless", "glorious"),
        "negative": ("appalling", "pathetic", "horrendous", "abominable", "deplorable", "ghastly",
                     "wretched", "unbearable", "inferior", "woeful", "miserable", "dire"),
    },
}
VERBS: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {"positive": ("loved", "liked", "enjoyed", "appreciated"),
              "negative": ("hated", "disliked", "regretted")},
    "val": {"positive": ("cherished", "treasured"),
            "negative": ("loathed", "resented")},
    "test": {"positive": ("adored", "admired", "relished"),
             "negative": ("despised", "abhorred", "detested")},
}

# Frames: {thing}/{thing2} neutral things, {adv} an adverb (with its space), {adj}/{adj2}
# sentiment adjectives, {verb} a sentiment verb; the rest is neutral filler.
FRAMES: tuple[str, ...] = (
    "{Thing} was {adv}{adj}.",
    "I thought {thing} was {adj}.",
    "{Thing} is {adj}, {closing}.",
    "We checked out {thing} {when} and it was {adv}{adj}.",
    "{Thing} was {adj} and {thing2} was {adv}{adj2}.",
    "Overall, {thing} turned out to be {adj}.",
    "{who} suggested {thing}; I {verb} it.",
    "I {verb} {thing}, {closing}.",
    "{Thing} was {adj}. I {verb} it.",
    "I would call {thing} {adv}{adj}.",
    "{when_cap} we had a look at {thing}: {adj}, {closing}.",
)


def _words(text: str) -> set[str]:
    """Lower-case word tokens of ``text`` (hyphenated words give their parts)."""
    return set(re.findall(r"[a-z]+", text.lower()))


def _check_split(split: object) -> str:
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def sentiment_words(split: str) -> set[str]:
    """Every word of ``split``'s sentiment vocabulary (adjectives and verbs, both labels)."""
    _check_split(split)
    words: set[str] = set()
    for table in (ADJECTIVES, VERBS):
        for label in CLASS_NAMES:
            for w in table[split][label]:
                words |= _words(w)
    return words


def _fill(frame: str, rng: random.Random, split: str, label: str) -> str:
    domain = rng.choice(sorted(THINGS))
    thing, thing2 = rng.sample(THINGS[domain], 2)
    adjs = ADJECTIVES[split][label]
    adj, adj2 = rng.sample(adjs, 2)
    when = rng.choice(WHEN)
    values = {
        "thing": thing, "Thing": thing[0].upper() + thing[1:], "thing2": thing2,
        "adv": rng.choice(ADVERBS), "adj": adj, "adj2": adj2,
        "verb": rng.choice(VERBS[split][label]), "closing": rng.choice(CLOSINGS),
        "when": when, "when_cap": when[0].upper() + when[1:], "who": rng.choice(WHO),
    }
    return frame.format(**values)


def generate_split(split: str, n: int | None = None, seed: int | None = None) -> list[tuple[str, str]]:
    """``n`` unique (text, label name) pairs of ``split``, half of each label, in a seeded order."""
    _check_split(split)
    n = SPLIT_SIZES[split] if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 2 or n % 2:
        raise ValueError(f"n must be an even number >= 2 (half of each label), got {n!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an int or None, got {seed!r}")
    rng = random.Random(SPLIT_SEEDS[split] if seed is None else seed)
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for label in CLASS_NAMES:
        count, misses = 0, 0
        while count < n // 2:
            text = _fill(rng.choice(FRAMES), rng, split, label)
            if text in seen:
                misses += 1
                if misses > 5000:  # the combinations are (nearly) exhausted
                    raise ValueError(f"could not generate {n // 2} unique {label} sentences for {split!r}; "
                                     "ask for fewer")
                continue
            seen.add(text)
            rows.append((text, label))
            count, misses = count + 1, 0
    rng.shuffle(rows)
    return rows


def generate_splits() -> dict[str, list[tuple[str, str]]]:
    """All three splits with their default sizes and seeds; texts are unique across splits."""
    splits = {split: generate_split(split) for split in SPLITS}
    texts = [t for rows in splits.values() for t, _ in rows]
    assert len(texts) == len(set(texts)), "disjoint vocabularies make cross-split duplicates impossible"
    return splits


def to_csv(rows: list[tuple[str, str]]) -> str:
    """The CSV text (header ``text,label``, ``\\n`` line ends) of (text, label) rows."""
    if isinstance(rows, str) or not all(isinstance(r, (tuple, list)) and len(r) == 2 for r in rows):
        raise ValueError("rows must be a list of (text, label) pairs, as generate_split returns")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    return buf.getvalue()


def split_path(split: str, root: Path | None = None) -> Path:
    """Where ``split``'s CSV lives (``sftcourse/data/text/sentiment_{split}.csv`` by default)."""
    _check_split(split)
    return (DATA_DIR if root is None else Path(root)) / f"sentiment_{split}.csv"


def write_splits(root: Path | None = None) -> list[Path]:
    """Write the three CSV files under ``root`` (default: the package's data folder); return their paths."""
    return write_split_files({split: to_csv(rows) for split, rows in generate_splits().items()}, split_path, root)


def main(argv: list[str] | None = None) -> int:
    return regenerate_main(argv, description="Write the offline sentiment CSV files.", default_root=DATA_DIR,
                           write=write_splits)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
