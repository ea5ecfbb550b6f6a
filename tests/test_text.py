"""sftcourse.text: model loading on a local folder, file loaders and their errors, dynamic padding, masking."""

from __future__ import annotations

import json

import pytest
import torch

from sftcourse import hub, text
from sftcourse.hub import minilm_dir
from sftcourse.text import (
    BatchTokenizer,
    PadCollator,
    TextDataset,
    encode_dataset,
    load_model,
    load_offline_sentiment,
    load_text_file,
    load_text_splits,
    load_tokenizer,
    mask_tokens,
    mean_pool,
    pad_collate,
)

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "soup", "was", "good", "bad", "great", "##s",
         "un", "##real", "film", "very", "."]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A local model folder in the Hub's format: save_pretrained of a tiny BertConfig and a WordPiece tokenizer."""
    from transformers import BertConfig, BertModel, BertTokenizer

    path = tmp_path_factory.mktemp("tiny-bert")
    BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    BertModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    return load_tokenizer(model_dir)


# --- models -----------------------------------------------------------------------------------


def test_load_model_heads_from_a_local_folder(model_dir):
    from transformers import BertModel

    saved = BertModel.from_pretrained(model_dir)
    clf = load_model(model_dir, num_labels=3, label_names=["a", "b", "c"])
    assert type(clf).__name__ == "BertForSequenceClassification"
    assert clf.config.num_labels == 3 and clf.config.id2label[2] == "c"
    assert torch.equal(clf.bert.embeddings.word_embeddings.weight, saved.embeddings.word_embeddings.weight)
    assert type(load_model(model_dir, head="base")).__name__ == "BertModel"
    assert type(load_model(model_dir, head="masked-lm")).__name__ == "BertForMaskedLM"
    # from scratch: the same architecture, different (random) weights
    torch.manual_seed(1)
    scratch = load_model(model_dir, num_labels=3, pretrained=False)
    assert type(scratch).__name__ == "BertForSequenceClassification"
    assert scratch.config.num_labels == 3
    assert sum(p.numel() for p in scratch.parameters()) == sum(p.numel() for p in clf.parameters())
    assert not torch.equal(scratch.bert.embeddings.word_embeddings.weight, saved.embeddings.word_embeddings.weight)


def test_load_model_errors(model_dir, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no config.json"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="head must be"):
        load_model(model_dir, head="lm")
    with pytest.raises(ValueError, match="num_labels"):
        load_model(model_dir, num_labels=0)
    with pytest.raises(ValueError, match="label_names has 1"):
        load_model(model_dir, num_labels=2, label_names=["x"])
    (tmp_path / "config.json").write_text((model_dir / "config.json").read_text())
    with pytest.raises(ValueError, match="no tokenizer files"):
        load_tokenizer(tmp_path)


def test_quick_and_full_model_names():
    d = minilm_dir()
    assert text.default_model_name("quick") == str(d)
    assert text.default_model_name("full") == "bert-base-uncased"



# --- datasets and files -----------------------------------------------------------------------


def test_text_dataset_validates():
    ds = TextDataset(["good", "bad"], [1, 0], ["neg", "pos"])
    assert len(ds) == 2 and ds[0] == ("good", 1) and ds.num_classes == 2
    assert ds.subset(1).texts == ["good"]
    with pytest.raises(ValueError, match="same samples"):
        TextDataset(["a"], [0, 1], ["n", "p"])
    with pytest.raises(ValueError, match="empty"):
        TextDataset([], [], ["n", "p"])
    with pytest.raises(ValueError, match="text 1 is empty"):
        TextDataset(["a", "  "], [0, 1], ["n", "p"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        TextDataset(["a", "b"], [0, 2], ["n", "p"])
    with pytest.raises(ValueError, match="two distinct"):
        TextDataset(["a"], [0], ["n", "n"])


def test_load_csv_and_jsonl_with_label_names(tmp_path):
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text('review,stars\n"Great, really",pos\nAwful,neg\nFine,pos\n', encoding="utf-8")
    ds, mapping = load_text_file(csv_path, text_column="review", label_column="stars")
    assert mapping == {"neg": 0, "pos": 1}
    assert ds.texts == ["Great, really", "Awful", "Fine"] and ds.labels == [1, 0, 1]
    jl = tmp_path / "tickets.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in [{"text": "refund please", "label": "billing"},
                                                     {"text": "app crashes", "label": "bug"}, {}][:2]) + "\n\n")
    ds, mapping = load_text_file(jl, label_names=["bug", "billing", "other"])
    assert mapping == {"bug": 0, "billing": 1, "other": 2} and ds.labels == [1, 0] and ds.num_classes == 3


@pytest.mark.parametrize("content, kwargs, message", [
    ("", {}, "is empty"),
    ("text,label\n", {}, "no examples"),
    ("sentence,label\nhi,pos\nho,neg\n", {}, r"no column 'text' \(text_column\).*sentence"),
    ("text,y\nhi,pos\nho,neg\n", {}, r"no column 'label' \(label_column\)"),
    ("text,label\nhi,pos\n ,neg\n", {}, "example 2 has an empty 'text'"),
    ("text,label\nhi,pos\nho,\n", {}, "example 2 has an empty 'label'"),
    ("text,label\nhi,pos\nho,meh\n", {"label_names": ["neg", "pos"]}, r"label\(s\) \['meh'\]"),
    ("text,label\nhi,pos\nho,pos\n", {}, "at least two classes"),
])
def test_load_text_file_errors_say_what_to_fix(tmp_path, content, kwargs, message):
    path = tmp_path / "data.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_text_file(path, **kwargs)


def test_load_text_file_bad_paths_and_json(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_text_file(tmp_path / "missing.csv")
    (tmp_path / "data.txt").write_text("hi")
    with pytest.raises(ValueError, match=".csv file"):
        load_text_file(tmp_path / "data.txt")
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": "x"}\n{oops\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        load_text_file(tmp_path / "bad.jsonl")


def test_load_text_splits_share_the_training_mapping(tmp_path):
    for name, rows in [("tr", "a,x\nb,y\n"), ("va", "c,y\n"), ("te", "d,x\n")]:
        (tmp_path / f"{name}.csv").write_text("text,label\n" + rows)
    s = load_text_splits(tmp_path / "tr.csv", tmp_path / "va.csv", tmp_path / "te.csv")
    assert s.label_names == ["x", "y"] and s.val.labels == [1] and s.test.labels == [0]
    (tmp_path / "va.csv").write_text("text,label\nc,z\n")
    with pytest.raises(ValueError, match="not in label_names"):
        load_text_splits(tmp_path / "tr.csv", tmp_path / "va.csv", tmp_path / "te.csv")


def test_offline_sentiment_set():
    s = load_offline_sentiment()
    assert s.label_names == ["negative", "positive"]
    assert (len(s.train), len(s.val), len(s.test)) == (600, 200, 400)
    assert sum(s.train.labels) == 300 and sum(s.test.labels) == 200


def test_offline_sentiment_missing_files(tmp_path):
    with pytest.raises(ValueError, match="python -m sftcourse.sentiment"):
        load_offline_sentiment(tmp_path)


# --- batches ----------------------------------------------------------------------------------


TEXTS = ["the soup was good", "bad", "the film was very unreal .", "great soups"]


def test_batch_tokenizer_pads_to_the_longest_in_the_batch(tokenizer):
    collate = BatchTokenizer(tokenizer)
    batch = collate([(t, i % 2) for i, t in enumerate(TEXTS)])
    lengths = [len(tokenizer(t)["input_ids"]) for t in TEXTS]
    assert batch["input_ids"].shape == (4, max(lengths))
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["labels"].tolist() == [0, 1, 0, 1] and batch["labels"].dtype == torch.long
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    short = collate([("bad", 0), ("good", 1)])
    assert short["input_ids"].shape == (2, 3)  # [CLS] word [SEP]: no global padding
    capped = BatchTokenizer(tokenizer, max_length=4)([(TEXTS[2], 0)])
    assert capped["input_ids"].shape == (1, 4) and capped["input_ids"][0, -1] == tokenizer.sep_token_id


def test_pad_collate_equals_the_tokenizers_own_padding(tokenizer):
    """Oracle: the tokenizer padding the whole batch itself, and transformers' DataCollatorWithPadding."""
    from transformers import DataCollatorWithPadding

    ds = TextDataset(TEXTS, [0, 1, 0, 1], ["n", "p"])
    enc = encode_dataset(ds, tokenizer)
    ours = pad_collate([enc[i] for i in range(4)], enc.pad_token_id)
    ref = BatchTokenizer(tokenizer)([ds[i] for i in range(4)])
    assert set(ours) == set(ref)
    for key in ref:
        assert torch.equal(ours[key], ref[key]), key
    hf = DataCollatorWithPadding(tokenizer)([enc[i] for i in range(4)])
    for key in ("input_ids", "attention_mask", "token_type_ids", "labels"):
        assert torch.equal(ours[key], hf[key]), key
    assert torch.equal(PadCollator(enc.pad_token_id)([enc[0], enc[1]])["input_ids"], ours["input_ids"][:2, :6])


def test_pad_collate_by_hand_and_errors():
    out = pad_collate([{"input_ids": [5, 6, 7], "labels": 1}, {"input_ids": [8], "labels": 0}], pad_token_id=9)
    assert out["labels"].tolist() == [1, 0]
    assert out["input_ids"].tolist() == [[5, 6, 7], [8, 9, 9]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert "token_type_ids" not in out
    with pytest.raises(ValueError, match="empty"):
        pad_collate([])
    with pytest.raises(ValueError, match="input_ids"):
        pad_collate([{"labels": 1}])
    with pytest.raises(ValueError, match="feature 1 lacks 'labels'"):
        pad_collate([{"input_ids": [5], "labels": 1}, {"input_ids": [8]}])
    with pytest.raises(ValueError, match="feature 1 has 'labels'"):
        pad_collate([{"input_ids": [5]}, {"input_ids": [8], "labels": 1}])
    with pytest.raises(ValueError, match="no input_ids"):
        pad_collate([{"input_ids": []}])
    with pytest.raises(ValueError, match="max_length"):
        BatchTokenizer(None, max_length=1)


def test_batches_run_through_a_model_with_fit_convention(model_dir, tokenizer):
    """A padded batch is exactly what model(**batch) takes; padding does not change real tokens' logits."""
    model = load_model(model_dir, num_labels=2).eval()
    batch = BatchTokenizer(tokenizer)([(TEXTS[0], 1), (TEXTS[1], 0)])
    labels = batch.pop("labels")
    with torch.no_grad():
        out = model(**batch, labels=labels)
        alone = model(**{k: v[1:, :3] for k, v in batch.items()}).logits
    assert out.logits.shape == (2, 2) and torch.isfinite(out.loss)
    assert torch.allclose(out.logits[1:], alone, atol=1e-5)


# --- masked LM and pooling --------------------------------------------------------------------


def test_mask_tokens_statistics_and_invariants():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 1000, (400, 50), generator=g)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -5:] = True
    masked, labels = mask_tokens(ids, mask_token_id=4, vocab_size=1000, special_mask=special, generator=g)
    targets = labels != -100
    assert not targets[special].any()
    assert torch.equal(labels[targets], ids[targets])
    assert torch.equal(masked[~targets], ids[~targets])
    frac = targets.float().sum() / (~special).sum()
    assert abs(float(frac) - 0.15) < 0.01
    n = targets.sum()
    as_mask = (masked[targets] == 4).float().sum() / n
    unchanged = (masked[targets] == ids[targets]).float().sum() / n
    assert abs(float(as_mask) - 0.8) < 0.03 and abs(float(unchanged) - 0.1) < 0.03
    with pytest.raises(ValueError, match="same|must match"):
        mask_tokens(ids, mask_token_id=4, vocab_size=1000, special_mask=special[:, :3])
    with pytest.raises(ValueError, match="mlm_probability"):
        mask_tokens(ids, mask_token_id=4, vocab_size=1000, special_mask=special, mlm_probability=0.0)


def test_mean_pool_averages_real_tokens_only():
    h = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    m = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = mean_pool(h, m)
    assert torch.allclose(out[0], h[0, :2].mean(0)) and torch.allclose(out[1], h[1].mean(0))
    with pytest.raises(ValueError, match=r"\(B, T, H\)"):
        mean_pool(h, m[:, :2])


def test_load_sst2_wraps_glue_splits(monkeypatch, tmp_path):
    """The happy path on an in-memory stand-in with GLUE's SST-2 schema (the real download needs the Hub)."""
    import datasets

    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"]),
                                  "idx": datasets.Value("int32")})

    def part(n, offset):
        return datasets.Dataset.from_dict({"sentence": [f"sentence {offset + i} " for i in range(n)],
                                           "label": [i % 2 for i in range(n)],
                                           "idx": list(range(n))}, features=features)

    fake = datasets.DatasetDict({"train": part(50, 0), "validation": part(8, 1000), "test": part(4, 2000)})
    calls = []
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append((a, k)) or fake)
    s = text.load_sst2(val_size=10, seed=0, max_train=30, cache_root=tmp_path)
    assert calls[0][0] == ("nyu-mll/glue", "sst2")
    assert s.label_names == ["negative", "positive"]
    assert (len(s.train), len(s.val), len(s.test)) == (30, 10, 8)
    assert s.test.texts[0] == "sentence 1000" and s.test.labels == [i % 2 for i in range(8)]
    assert not set(s.val.texts) & set(s.train.texts)
    # the download was saved to the course cache: the next call needs neither the Hub nor load_dataset
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    again = text.load_sst2(val_size=10, seed=0, max_train=30, cache_root=tmp_path)
    assert len(calls) == 1 and again.test.texts == s.test.texts
