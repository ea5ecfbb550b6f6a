"""sftcourse.chat: loading through the real code path (tiny Llama saved to a folder), data, labels, decoding."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from sftcourse import chat, hub
from sftcourse.chat import (
    IGNORE_INDEX,
    ChatCollator,
    chatml,
    encode_chat,
    greedy_decode,
    lm_loss,
    load_causal_lm,
    load_instructions,
    pack,
    pad_batch,
    record_to_messages,
    write_instructions,
)
from sftcourse.hub import OfflineError
from sftcourse.runtime import cache_dir

CHAT = [{"role": "user", "content": "Write May 3, 2001 in ISO form."}, {"role": "assistant", "content": "2001-05-03"}]


@pytest.fixture(scope="module")
def tokenizer():
    """SmolLM2's real tokenizer when its cached copy exists (fast), else a byte-level BPE with ChatML tokens."""
    from transformers import AutoTokenizer

    folder = cache_dir("models") / hub.SMOLLM2_CACHE_NAME
    if (folder / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(folder)
    return _small_chatml_tokenizer()


def _small_chatml_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    for ch in sorted(alphabet):
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>", additional_special_tokens=["<|endoftext|>"])
    fast.chat_template = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                          "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                          "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
                          "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
                          "{{ '<|im_start|>assistant\n' }}{% endif %}")
    return fast


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tokenizer):
    """A random 2-layer Llama saved with save_pretrained: the same format as a Hub download."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    folder = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_causal_lm(tiny_dir, profile="quick")


# ---------------------------------------------------------------------------
# Loading


def test_load_causal_lm_from_a_local_folder(tiny, tiny_dir):
    model, tok = tiny
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    assert tok.pad_token_id is not None
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(tiny_dir)
    ids = torch.tensor([[1, 5, 9, 11]])
    assert torch.equal(model(ids).logits, reference(ids).logits)


def test_offline_hub_name_fails_with_the_model_name_and_two_ways_out(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError) as err:
        load_causal_lm("sftcourse-test/no-such-chat-model", profile="full", cache_root=tmp_path)
    msg = str(err.value)
    assert "causal LM 'sftcourse-test/no-such-chat-model'" in msg and "internet" in msg and "save_pretrained" in msg


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_causal_lm("./no/such/folder", profile="quick")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="config.json"):
        load_causal_lm(tmp_path / "empty", profile="quick")
    with pytest.raises(ValueError, match="profile must be one of"):
        load_causal_lm(tmp_path, profile="Quick")


def test_full_profile_default_is_a_hub_name():
    assert chat.default_model_name("full") == chat.FULL_MODEL_NAME


# ---------------------------------------------------------------------------
# Instruction files


def _write(tmp_path, lines):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_instructions_reads_messages_and_alpaca(tmp_path):
    path = _write(tmp_path, [json.dumps({"messages": CHAT}), "",
                             json.dumps({"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}),
                             json.dumps({"instruction": "Say hi.", "output": "Hi!"})])
    chats = load_instructions(path)
    assert chats[0] == CHAT
    assert chats[1] == [{"role": "user", "content": "Add the numbers.\n\n2 and 3"}, {"role": "assistant", "content": "5"}]
    assert chats[2][0]["content"] == "Say hi."
    assert load_instructions(write_instructions(tmp_path / "out.jsonl", chats)) == chats


@pytest.mark.parametrize("line, message", [
    ('{"messages": [{"role": "user", "content": "hi"}', "line 2 is not valid JSON"),
    ('{"prompt": "hi", "answer": "yo"}', "line 2: a record needs either 'messages'"),
    ('{"instruction": "hi"}', "line 2: an Alpaca-style record needs 'instruction' and 'output'; 'output' missing"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "line 2: the last message must be the assistant"),
    ('{"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}', "line 2: message 0 has no 'content'"),
    ('{"messages": [{"role": "human", "content": "a"}, {"role": "assistant", "content": "b"}]}', "role 'human'"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": " "}]}', "reply is empty"),
    ('{"messages": [{"role": "system", "content": "a"}, {"role": "assistant", "content": "b"}]}', "no 'user'"),
    ('[1, 2]', "line 2: expected a JSON object"),
])
def test_malformed_records_name_the_line_and_the_problem(tmp_path, line, message):
    path = _write(tmp_path, [json.dumps({"messages": CHAT}), line])
    with pytest.raises(ValueError) as err:
        load_instructions(path)
    assert message in str(err.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_instructions(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ValueError, match="no records"):
        load_instructions(tmp_path / "empty.jsonl")
    with pytest.raises(ValueError, match="messages"):
        record_to_messages({"text": "x"})


def _smoltalk_like_repo(root, rows):
    """A local folder laid out like the Hub repository HuggingFaceTB/smol-smoltalk: parquet shards under data/."""
    datasets = pytest.importorskip("datasets")
    (root / "data").mkdir(parents=True)
    datasets.Dataset.from_list(rows).to_parquet(str(root / "data" / "train-00000-of-00004.parquet"))
    datasets.Dataset.from_list(rows[:1]).to_parquet(str(root / "data" / "train-00001-of-00004.parquet"))
    return root


SMOLTALK_ROWS = [{"messages": [{"role": "user", "content": f"Question {i}?"},
                               {"role": "assistant", "content": f"Answer {i}."}], "source": "everyday"}
                 for i in range(6)]


def test_hub_instructions_download_once_through_the_hub_module_then_load_offline(tmp_path, monkeypatch):
    """The real download path (datasets.load_dataset, then save_to_disk into the cache), with the Hub
    repository replaced by a local folder in the same layout; the second call runs offline."""
    import datasets

    repo = _smoltalk_like_repo(tmp_path / "repo", SMOLTALK_ROWS)
    real_load_dataset, calls = datasets.load_dataset, []

    def hub_as_local_folder(name, config_name=None, **kwargs):
        calls.append((name, kwargs["data_files"]))
        return real_load_dataset(str(repo), config_name, **kwargs)

    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(datasets, "load_dataset", hub_as_local_folder)
    chats = chat.load_hub_instructions(profile="full", data_files=chat.HUB_INSTRUCTIONS_FILES,
                                       cache_root=tmp_path / "cache")
    assert calls == [(chat.HUB_INSTRUCTIONS, chat.HUB_INSTRUCTIONS_FILES)]
    assert chats == [row["messages"] for row in SMOLTALK_ROWS]  # only the named shard: 6 rows, not 7
    assert (tmp_path / "cache" / "HuggingFaceTB--smol-smoltalk--train=train-00000-of-00004").is_dir()

    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    again = chat.load_hub_instructions(profile="full", data_files=chat.HUB_INSTRUCTIONS_FILES, num_examples=3,
                                       seed=1, cache_root=tmp_path / "cache")
    assert len(calls) == 1 and len(again) == 3 and all(c in chats for c in again)
    assert again == chat.load_hub_instructions(profile="full", data_files=chat.HUB_INSTRUCTIONS_FILES,
                                               num_examples=3, seed=1, cache_root=tmp_path / "cache")
    with pytest.raises(OfflineError, match="HuggingFaceTB/smol-smoltalk.*Two ways out"):
        chat.load_hub_instructions(profile="full", cache_root=tmp_path / "cache")  # the whole set is not cached


def test_hub_instructions_read_alpaca_columns_from_a_local_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {"instruction": ["Add the numbers.", "Say hi."], "input": ["2 and 3", ""], "output": ["5", "Hi!"]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "alpaca"))
    chats = chat.load_hub_instructions(tmp_path / "alpaca", profile="quick")
    assert chats == [[{"role": "user", "content": "Add the numbers.\n\n2 and 3"}, {"role": "assistant", "content": "5"}],
                     [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}]]


@pytest.mark.parametrize("rows, kwargs, message", [
    ({"messages": [CHAT, [{"role": "user", "content": "no reply"}]]}, {}, "[train] record 1: the last message"),
    ({"instruction": ["a", "b"], "output": ["x", None]}, {}, "[train] record 1: 'output' must be a string"),
    ({"text": ["a"]}, {}, "record 0: a record needs either 'messages'"),
    ({"messages": [CHAT]}, {"split": "test"}, "has no split 'test'; it has ['train']"),
    ({"messages": [CHAT]}, {"num_examples": 2}, "num_examples=2 but"),
    ({"messages": [CHAT]}, {"num_examples": 0}, "num_examples must be a positive int"),
    ({"messages": [CHAT]}, {"seed": "0"}, "seed must be an int"),
    ({"messages": [CHAT]}, {"data_files": {"train": ""}}, "data_files must map split names"),
])
def test_malformed_hub_records_name_the_record(tmp_path, rows, kwargs, message):
    datasets = pytest.importorskip("datasets")
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "set"))
    with pytest.raises(ValueError) as err:
        chat.load_hub_instructions(tmp_path / "set", profile="quick", **kwargs)
    assert message in str(err.value), str(err.value)


# ---------------------------------------------------------------------------
# Template, labels, batches, packing


def test_chatml_matches_the_tokenizers_chat_template(tokenizer):
    for add in (False, True):
        msgs = CHAT if not add else CHAT[:1]
        expected = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=add)
        assert chatml(msgs, add_generation_prompt=add) == expected
    with_system = [{"role": "system", "content": "Be brief."}, *CHAT]
    assert chatml(with_system) == tokenizer.apply_chat_template(with_system, tokenize=False)
    assert chatml(CHAT, default_system=None).startswith("<|im_start|>user\n")


def test_encode_chat_labels_only_the_reply(tokenizer):
    enc = encode_chat(tokenizer, CHAT)
    prompt = tokenizer(chatml(CHAT[:1], add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    n = len(prompt)
    assert enc["input_ids"][:n] == prompt and enc["labels"][:n] == [IGNORE_INDEX] * n
    assert enc["labels"][n:] == enc["input_ids"][n:]
    assert tokenizer.decode(enc["labels"][n:]) == "2001-05-03<|im_end|>\n"
    assert len(encode_chat(tokenizer, CHAT, max_length=n + 2)["input_ids"]) == n + 2
    with pytest.raises(ValueError, match="cuts off the whole reply"):
        encode_chat(tokenizer, CHAT, max_length=n)
    with pytest.raises(ValueError, match="max_length must be"):
        encode_chat(tokenizer, CHAT, max_length=0)


def test_encode_chat_labels_equal_trls_completion_only_labels(tokenizer, tmp_path):
    """Independent oracle: TRL's SFTTrainer tokenises prompt/completion data and masks the prompt itself."""
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    chats = [CHAT, [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"}]]
    data = Dataset.from_list([{"prompt": c[:-1], "completion": c[-1:]} for c in chats])
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    args = SFTConfig(output_dir=str(tmp_path), max_length=128, bf16=False, use_cpu=True, report_to="none")
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    ours = pad_batch([encode_chat(tokenizer, c) for c in chats], tokenizer.pad_token_id)
    for key in ("input_ids", "labels", "attention_mask"):
        assert torch.equal(batch[key], ours[key]), key


def test_pad_batch_pads_labels_with_minus_100():
    feats = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    out = ChatCollator(0)(feats)
    assert out["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert out["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="no examples"):
        pad_batch([], 0)
    with pytest.raises(ValueError, match="3 input_ids but 2 labels"):
        pad_batch([{"input_ids": [1, 2, 3], "labels": [1, 2]}], 0)


def test_lm_loss_is_the_shifted_cross_entropy_and_equals_the_models_loss(tiny):
    model, _ = tiny
    torch.manual_seed(1)
    ids = torch.randint(3, 200, (2, 7))
    labels = ids.clone()
    labels[0, :3] = IGNORE_INDEX
    logits = model(ids).logits
    # oracle: an explicit loop over positions, t predicts t + 1
    terms = [-F.log_softmax(logits[b, t], -1)[labels[b, t + 1]] for b in range(2) for t in range(6)
             if labels[b, t + 1] != IGNORE_INDEX]
    assert torch.allclose(lm_loss(logits, labels), torch.stack(terms).mean(), atol=1e-6)
    assert torch.allclose(lm_loss(logits, labels), model(ids, labels=labels).loss, atol=1e-6)
    # the oracle can fail: an unshifted loss is different
    assert not torch.allclose(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)),
                              lm_loss(logits, labels), atol=1e-3)


def test_lm_loss_refuses_a_batch_without_labels_instead_of_nan():
    logits = torch.randn(1, 4, 10)
    labels = torch.full((1, 4), IGNORE_INDEX)
    assert torch.isnan(F.cross_entropy(logits[0, :-1], labels[0, 1:]))  # the pitfall
    with pytest.raises(ValueError, match="NaN"):
        lm_loss(logits, labels)
    with pytest.raises(ValueError, match=r"\(B, T, V\)"):
        lm_loss(torch.randn(4, 10), labels)


def test_packed_loss_equals_the_padded_loss_and_leaks_without_position_ids(tiny):
    model, _ = tiny
    torch.manual_seed(2)
    feats = []
    for n, k in [(6, 2), (9, 4), (4, 1)]:
        ids = torch.randint(3, 200, (n,)).tolist()
        feats.append({"input_ids": ids, "labels": [IGNORE_INDEX] * k + ids[k:]})
    batch = pad_batch(feats, pad_token_id=0)
    with torch.no_grad():
        padded = model(**batch).loss
        packed = pack(feats)
        assert packed["position_ids"].tolist()[0] == [*range(6), *range(9), *range(4)]
        good = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], labels=packed["labels"],
                     use_cache=False).loss
        leaky = model(input_ids=packed["input_ids"], labels=packed["labels"], use_cache=False).loss
        # with a cache transformers does not look for packed sequences: the boundaries are ignored
        cached = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], labels=packed["labels"],
                       use_cache=True).loss
    assert torch.allclose(good, padded, atol=1e-5)
    assert (leaky - padded).abs() > 1e-4 and (cached - padded).abs() > 1e-4
    with pytest.raises(ValueError, match="no examples"):
        pack([])


def test_greedy_decode_matches_generate(tiny):
    model, tok = tiny
    ids = torch.tensor([[1, 17, 42, 99, 7]])
    ours = greedy_decode(model, ids, max_new_tokens=8)
    theirs = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                            eos_token_id=None, pad_token_id=tok.pad_token_id)[:, ids.shape[1]:]
    assert torch.equal(ours, theirs)
    # no cache: the same tokens from re-running the whole sequence each step
    seq = ids
    for _ in range(8):
        seq = torch.cat([seq, model(seq).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(seq[:, ids.shape[1]:], ours)
    first = int(ours[0, 0])
    stopped = greedy_decode(model, ids, max_new_tokens=8, eos_token_id=first)
    assert stopped.tolist() == [[first]]
    with pytest.raises(ValueError, match=r"\(1, T\)"):
        greedy_decode(model, torch.ones(2, 3, dtype=torch.long), max_new_tokens=2)


def test_generate_replies_left_pads_and_restores_the_padding_side(tiny):
    model, tok = tiny
    side = tok.padding_side
    replies = chat.generate_replies(model, tok, ["Hi", "Write a long question here please"], max_new_tokens=3)
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)
    assert tok.padding_side == side
    # batched with left padding = one at a time
    alone = chat.generate_replies(model, tok, ["Hi"], max_new_tokens=3)
    assert alone[0] == replies[0]
