"""sftcourse.text: model loading on a local folder, file loaders and their errors, dynamic padding, masking."""

from __future__ import annotations

import json

import pytest
import torch

from sftcourse import hub, text
from sftcourse.hub import minilm_dir
from sftcourse.text import (
    MaskedMeanPooler,
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
    use_mean_pooling,
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
    clf = load_model(model_dir, num_classes=3, class_names=["a", "b", "c"])
    assert type(clf).__name__ == "BertForSequenceClassification"
    assert clf.config.num_labels == 3 and clf.config.id2label[2] == "c"
    assert torch.equal(clf.bert.embeddings.word_embeddings.weight, saved.embeddings.word_embeddings.weight)
    assert type(load_model(model_dir, head="base")).__name__ == "BertModel"
    assert type(load_model(model_dir, head="masked-lm")).__name__ == "BertForMaskedLM"
    # from scratch: the same architecture, different (random) weights
    torch.manual_seed(1)
    scratch = load_model(model_dir, num_classes=3, pretrained=False)
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
    with pytest.raises(ValueError, match="num_classes"):
        load_model(model_dir, num_classes=0)
    with pytest.raises(ValueError, match="class_names has 1"):
        load_model(model_dir, num_classes=2, class_names=["x"])
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
    with pytest.raises(ValueError, match="duplicates"):
        TextDataset(["a"], [0], ["n", "n"])


def test_load_csv_and_jsonl_with_class_names(tmp_path):
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text('review,stars\n"Great, really",pos\nAwful,neg\nFine,pos\n', encoding="utf-8")
    ds, mapping = load_text_file(csv_path, text_column="review", label_column="stars")
    assert mapping == {"neg": 0, "pos": 1}
    assert ds.texts == ["Great, really", "Awful", "Fine"] and ds.labels == [1, 0, 1]
    jl = tmp_path / "tickets.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in [{"text": "refund please", "label": "billing"},
                                                     {"text": "app crashes", "label": "bug"}, {}][:2]) + "\n\n")
    ds, mapping = load_text_file(jl, class_names=["bug", "billing", "other"])
    assert mapping == {"bug": 0, "billing": 1, "other": 2} and ds.labels == [1, 0] and ds.num_classes == 3


@pytest.mark.parametrize("content, kwargs, message", [
    ("", {}, "is empty"),
    ("text,label\n", {}, "no examples"),
    ("sentence,label\nhi,pos\nho,neg\n", {}, r"no column 'text' \(text_column\).*sentence"),
    ("text,y\nhi,pos\nho,neg\n", {}, r"no column 'label' \(label_column\)"),
    ("text,label\nhi,pos\n ,neg\n", {}, "example 2 has an empty 'text'"),
    ("text,label\nhi,pos\nho,\n", {}, "example 2 has an empty 'label'"),
    ("text,label\nhi,pos\nho,meh\n", {"class_names": ["neg", "pos"]}, r"label\(s\) \['meh'\]"),
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
    assert s.class_names == ["x", "y"] and s.val.labels == [1] and s.test.labels == [0]
    (tmp_path / "va.csv").write_text("text,label\nc,z\n")
    with pytest.raises(ValueError, match="not in class_names"):
        load_text_splits(tmp_path / "tr.csv", tmp_path / "va.csv", tmp_path / "te.csv")


def test_offline_sentiment_set():
    s = load_offline_sentiment()
    assert s.class_names == ["negative", "positive"]
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


def test_batches_run_through_a_model_with_fit_convention(model_dir, tokenizer):
    """A padded batch is exactly what model(**batch) takes; padding does not change real tokens' logits."""
    model = load_model(model_dir, num_classes=2).eval()
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
    assert s.class_names == ["negative", "positive"]
    assert (len(s.train), len(s.val), len(s.test)) == (30, 10, 8)
    assert s.test.texts[0] == "sentence 1000" and s.test.labels == [i % 2 for i in range(8)]
    assert not set(s.val.texts) & set(s.train.texts)
    # the download was saved to the course cache: the next call needs neither the Hub nor load_dataset
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    again = text.load_sst2(val_size=10, seed=0, max_train=30, cache_root=tmp_path)
    assert len(calls) == 1 and again.test.texts == s.test.texts


# --- bad input: a clear error naming the argument ---------------------------------------------


class _Tok:
    """Stands in for a tokenizer only where the input is rejected before the tokenizer is used."""

    pad_token_id = 0

    def __call__(self, *args, **kwargs):
        raise AssertionError("the bad input should have been rejected before tokenising")


def _csv(tmp, content, name="data.csv"):
    path = tmp / name
    path.write_text(content, encoding="utf-8")
    return path


BAD_INPUTS = [
    ("default_model_name 'Quick'", lambda tmp, md: text.default_model_name("Quick"), ValueError,
     "profile must be one of 'quick', 'full'"),
    ("load_sentiment 'Quick'", lambda tmp, md: text.load_sentiment("Quick"), ValueError,
     "profile must be one of 'quick', 'full'"),
    ("load_sentiment None", lambda tmp, md: text.load_sentiment(None), ValueError, "profile must be one of"),
    ("load_tokenizer None", lambda tmp, md: load_tokenizer(None), TypeError, "name_or_dir must be a Hub name"),
    ("load_tokenizer missing folder", lambda tmp, md: load_tokenizer(tmp / "nope"), ValueError, "does not exist"),
    ("load_model None", lambda tmp, md: load_model(None), TypeError, "name_or_dir"),
    ("load_model head", lambda tmp, md: load_model(md, head="lm"), ValueError, "head must be one of"),
    ("load_model num_classes 0", lambda tmp, md: load_model(md, num_classes=0),
     ValueError, "num_classes must be an int >= 1"),
    ("load_model num_classes float", lambda tmp, md: load_model(md, num_classes=2.0), ValueError, "num_classes"),
    ("load_model num_classes bool", lambda tmp, md: load_model(md, num_classes=True), ValueError, "num_classes"),
    ("load_model class_names length", lambda tmp, md: load_model(md, num_classes=2, class_names=["x"]), ValueError,
     "class_names has 1 names but num_classes=2"),
    ("load_model class_names a string", lambda tmp, md: load_model(md, num_classes=2, class_names="ab"), TypeError,
     "class_names must be a list of strings"),
    ("load_model class_names duplicates", lambda tmp, md: load_model(md, num_classes=2, class_names=["a", "a"]),
     ValueError, "duplicates"),
    ("load_model old name num_labels", lambda tmp, md: load_model(md, num_labels=3), TypeError,
     "takes num_classes= and class_names="),
    ("load_model old name label_names", lambda tmp, md: load_model(md, label_names=["a", "b"]), TypeError,
     "not label_names"),
    ("load_model pretrained str", lambda tmp, md: load_model(md, pretrained="yes"),
     TypeError, "pretrained must be True"),
    ("TextDataset texts a string", lambda tmp, md: TextDataset("good film", [1], ["n", "p"]), TypeError,
     "texts must be a list of strings, got a single str"),
    ("TextDataset texts None", lambda tmp, md: TextDataset(None, [1], ["n", "p"]), TypeError, "texts must be a list"),
    ("TextDataset text not a str", lambda tmp, md: TextDataset(["a", 3], [0, 1], ["n", "p"]), ValueError,
     "text 1 is empty or not a string"),
    ("TextDataset empty", lambda tmp, md: TextDataset([], [], ["n", "p"]), ValueError, "texts is empty"),
    ("TextDataset lengths", lambda tmp, md: TextDataset(["a"], [0, 1], ["n", "p"]), ValueError, "same samples"),
    ("TextDataset float label", lambda tmp, md: TextDataset(["a", "b"], [0, 1.7], ["n", "p"]), ValueError,
     "labels must be integer class ids.*1.7"),
    ("TextDataset integral float label", lambda tmp, md: TextDataset(["a", "b"], [0, 1.0], ["n", "p"]), ValueError,
     "labels must be integer class ids"),
    ("TextDataset str label", lambda tmp, md: TextDataset(["a", "b"], [0, "1"], ["n", "p"]), ValueError,
     "labels must be integer class ids"),
    ("TextDataset None label", lambda tmp, md: TextDataset(["a", "b"], [0, None], ["n", "p"]), ValueError,
     "labels must be integer class ids"),
    ("TextDataset bool label", lambda tmp, md: TextDataset(["a", "b"], [0, True], ["n", "p"]), ValueError,
     "labels must be integer class ids"),
    ("TextDataset label out of range", lambda tmp, md: TextDataset(["a", "b"], [0, 2], ["n", "p"]), ValueError,
     r"\[0, 1\]"),
    ("TextDataset negative label", lambda tmp, md: TextDataset(["a", "b"], [0, -1], ["n", "p"]),
     ValueError, r"\[0, 1\]"),
    ("TextDataset class_names a string", lambda tmp, md: TextDataset(["a"], [0], "np"), TypeError,
     "class_names must be a list of strings"),
    ("TextDataset one class", lambda tmp, md: TextDataset(["a"], [0], ["n"]), ValueError, "two distinct"),
    ("TextDataset float tensor labels", lambda tmp, md: TextDataset(["a", "b"], torch.tensor([0.0, 1.5]), ["n", "p"]),
     ValueError, "labels must be integer class ids"),
    ("subset 0", lambda tmp, md: TextDataset(["a", "b"], [0, 1], ["n", "p"]).subset(0), ValueError, "n must be an int"),
    ("subset too many", lambda tmp, md: TextDataset(["a", "b"], [0, 1], ["n", "p"]).subset(3), ValueError,
     "only 2 examples"),
    ("subset float", lambda tmp, md: TextDataset(["a", "b"], [0, 1], ["n", "p"]).subset(1.5),
     ValueError, "n must be an int"),
    ("TextSplits names disagree", lambda tmp, md: text.TextSplits(
        TextDataset(["a"], [0], ["n", "p"]), TextDataset(["a"], [0], ["p", "n"]), TextDataset(["a"], [0], ["n", "p"]),
        ["n", "p"]), ValueError, "class_names"),
    ("load_text_file None", lambda tmp, md: load_text_file(None), TypeError, "path must be a file path"),
    ("load_text_file a folder", lambda tmp, md: load_text_file(tmp), ValueError, "is a folder"),
    ("CSV unquoted comma",
     lambda tmp, md: load_text_file(_csv(tmp, "text,label\ngood film,pos\nnot bad, really,pos\nbad,neg\n")),
     ValueError, r"line 3 has 3 fields but the header has 2.*quote"),
    ("CSV missing field", lambda tmp, md: load_text_file(_csv(tmp, "text,label,source\nhi,pos,a\nho,neg\n")),
     ValueError,
     r"line 3 has 2 fields but the header has 3"),
    ("CSV duplicate header", lambda tmp, md: load_text_file(_csv(tmp, "text,text\nhi,pos\n")), ValueError,
     "duplicate column"),
    ("load_text_file class_names a string", lambda tmp, md: load_text_file(_csv(tmp, "text,label\nhi,a\nho,b\n"),
                                                                           class_names="ab"), TypeError,
     "class_names must be a list"),
    ("load_text_file class_names duplicates", lambda tmp, md: load_text_file(_csv(tmp, "text,label\nhi,a\nho,b\n"),
                                                                             class_names=["a", "a", "b"]), ValueError,
     "duplicates"),
    ("JSONL value not a scalar",
     lambda tmp, md: load_text_file(_csv(tmp, '{"text": ["a"], "label": "x"}\n{"text": "b", "label": "y"}\n',
                                                                     "d.jsonl")),
                                                                      ValueError, "example 1.*'text' must be a string"),
    ("load_text_splits missing val",
     lambda tmp, md: load_text_splits(_csv(tmp, "text,label\na,x\nb,y\n"), tmp / "va.csv",
                                                                      tmp / "te.csv"), ValueError, "does not exist"),
    ("load_offline_sentiment missing", lambda tmp, md: load_offline_sentiment(tmp),
     ValueError, "python -m sftcourse.sentiment"),
    ("load_sst2 val_size 0", lambda tmp, md: text.load_sst2(val_size=0), ValueError, "val_size must be an int >= 1"),
    ("load_sst2 seed -1", lambda tmp, md: text.load_sst2(seed=-1), ValueError, "seed must be an int >= 0"),
    ("load_sst2 max_train 0", lambda tmp, md: text.load_sst2(max_train=0), ValueError, "max_train"),
    ("load_sst2 profile", lambda tmp, md: text.load_sst2(profile="Full"), ValueError, "profile must be one of"),
    ("BatchTokenizer None", lambda tmp, md: BatchTokenizer(None),
     TypeError, "tokenizer must be a Hugging Face tokenizer"),
    ("BatchTokenizer max_length 1", lambda tmp, md: BatchTokenizer(_Tok(), max_length=1), ValueError, "max_length"),
    ("BatchTokenizer max_length str", lambda tmp, md: BatchTokenizer(_Tok(), max_length="64"),
     ValueError, "max_length"),
    ("BatchTokenizer empty batch", lambda tmp, md: BatchTokenizer(_Tok())([]), ValueError, "batch is empty"),
    ("BatchTokenizer not pairs", lambda tmp, md: BatchTokenizer(_Tok())(["good", "bad"]), ValueError,
     r"\(text, label\) pairs"),
    ("BatchTokenizer text not str", lambda tmp, md: BatchTokenizer(_Tok())([(3, 0)]),
     ValueError, r"\(text, label\) pairs"),
    ("encode_dataset not a TextDataset", lambda tmp, md: encode_dataset(["a"], _Tok()), TypeError,
     "dataset must be a TextDataset"),
    ("encode_dataset max_length 0", lambda tmp, md: encode_dataset(TextDataset(["a"], [0], ["n", "p"]), _Tok(), 0),
     ValueError, "max_length"),
    ("EncodedDataset empty", lambda tmp, md: text.EncodedDataset([], 0, ["n", "p"]), ValueError, "features is empty"),
    ("EncodedDataset pad id float", lambda tmp, md: text.EncodedDataset([{"input_ids": [1]}], 0.5, ["n", "p"]),
     ValueError, "pad_token_id"),
    ("pad_collate empty", lambda tmp, md: pad_collate([]), ValueError, "features is empty"),
    ("pad_collate no input_ids", lambda tmp, md: pad_collate([{"ids": [1]}]), ValueError, "input_ids"),
    ("pad_collate empty ids", lambda tmp, md: pad_collate([{"input_ids": []}]), ValueError, "no input_ids"),
    ("pad_collate mixed keys", lambda tmp, md: pad_collate([{"input_ids": [1], "labels": 0}, {"input_ids": [2]}]),
     ValueError, "same keys"),
    ("pad_collate pad id None", lambda tmp, md: pad_collate([{"input_ids": [1]}], None), ValueError, "pad_token_id"),
    ("pad_collate float ids", lambda tmp, md: pad_collate([{"input_ids": [1.5, 2.0]}]),
     ValueError, "integer token ids"),
    ("pad_collate float label", lambda tmp, md: pad_collate([{"input_ids": [1], "labels": 0.5}]), ValueError,
     "labels must be integer"),
    ("PadCollator None", lambda tmp, md: PadCollator(None), ValueError, "pad_token_id"),
    ("PadCollator str", lambda tmp, md: PadCollator("0"), ValueError, "pad_token_id must be an int"),
    ("mask_tokens shape",
     lambda tmp, md: mask_tokens(torch.ones(2, 3, dtype=torch.long), mask_token_id=4, vocab_size=10,
                                                      special_mask=torch.zeros(2, 4, dtype=torch.bool)), ValueError,
     "special_mask has shape"),
    ("mask_tokens probability 0", lambda tmp, md: mask_tokens(torch.ones(2, 3, dtype=torch.long), mask_token_id=4,
                                                              vocab_size=10, special_mask=torch.zeros(2, 3),
                                                              mlm_probability=0.0), ValueError, "mlm_probability"),
    ("mask_tokens probability NaN", lambda tmp, md: mask_tokens(torch.ones(2, 3, dtype=torch.long), mask_token_id=4,
                                                                vocab_size=10, special_mask=torch.zeros(2, 3),
                                                                mlm_probability=float("nan")),
                                                                 ValueError, "mlm_probability"),
    ("mask_tokens float ids", lambda tmp, md: mask_tokens(torch.ones(2, 3), mask_token_id=4, vocab_size=10,
                                                          special_mask=torch.zeros(2, 3)),
                                                           ValueError, "integer token ids"),
    ("mask_tokens vocab_size 0", lambda tmp, md: mask_tokens(torch.ones(2, 3, dtype=torch.long), mask_token_id=4,
                                                             vocab_size=0, special_mask=torch.zeros(2, 3)), ValueError,
     "vocab_size"),
    ("mask_tokens mask id out of vocab",
     lambda tmp, md: mask_tokens(torch.ones(2, 3, dtype=torch.long), mask_token_id=10,
                                                                     vocab_size=10, special_mask=torch.zeros(2, 3)),
     ValueError, "mask_token_id"),
    ("mask_tokens ids out of vocab", lambda tmp, md: mask_tokens(torch.full((2, 3), 12), mask_token_id=4, vocab_size=10,
                                                                 special_mask=torch.zeros(2, 3)), ValueError,
     r"input_ids must lie in \[0, 9\]"),
    ("mean_pool shapes", lambda tmp, md: mean_pool(torch.zeros(2, 3, 4), torch.ones(2, 2)), ValueError, r"\(B, T, H\)"),
    ("mean_pool empty row", lambda tmp, md: mean_pool(torch.zeros(2, 3, 4), torch.tensor([[1, 1, 0], [0, 0, 0]])),
     ValueError, "row 1 of attention_mask has no real tokens"),
]


@pytest.mark.parametrize("case, call, exc, match", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(case, call, exc, match, tmp_path, model_dir, monkeypatch):
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)  # nothing may wait for the network
    with pytest.raises(exc, match=match):
        call(tmp_path, model_dir)


# --- use_mean_pooling -----------------------------------------------------------------------------


def test_use_mean_pooling_classifies_the_mean_of_real_tokens(model_dir):
    import copy

    clf = use_mean_pooling(load_model(model_dir, num_classes=3, class_names=["a", "b", "c"])).eval()
    assert isinstance(clf.bert.pooler, MaskedMeanPooler)
    assert not any("pooler" in n for n, _ in clf.named_parameters()), "the untrained pooler's weights are gone"
    ids = torch.tensor([[2, 5, 6, 7, 8, 3, 0, 0], [2, 5, 14, 7, 9, 15, 10, 3]])
    mask = (ids != 0).long()
    with torch.no_grad():
        logits = clf(input_ids=ids, attention_mask=mask).logits
        hidden = clf.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        # independent oracle: average the real tokens' vectors by hand, then the linear head
        by_hand = torch.stack([hidden[i, : int(mask[i].sum())].mean(0) for i in range(2)])
        expected = clf.classifier(by_hand)
        alone = clf(input_ids=ids[:1, :6], attention_mask=mask[:1, :6]).logits  # no padding at all
        no_mask = clf(input_ids=ids[1:]).logits  # no mask given: every token is real
    assert torch.allclose(logits, expected, atol=1e-6)
    assert torch.allclose(alone, logits[:1], atol=1e-5), "padding must not change a sequence's logits"
    assert torch.allclose(no_mask, logits[1:], atol=1e-5)
    # a deep copy gets its own pooler and hook: running the copy leaves the original's mask alone
    with torch.no_grad():
        clf(input_ids=ids, attention_mask=mask)
    twin = copy.deepcopy(clf)
    with torch.no_grad():
        twin(input_ids=ids[:1], attention_mask=mask[:1])
    assert clf.bert.pooler.attention_mask.shape[0] == 2 and twin.bert.pooler.attention_mask.shape[0] == 1
    assert use_mean_pooling(clf) is clf and isinstance(clf.bert.pooler, MaskedMeanPooler)


def test_use_mean_pooling_rejects_models_without_a_pooler():
    with pytest.raises(TypeError, match="has no pooler"):
        use_mean_pooling(torch.nn.Linear(3, 2))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        use_mean_pooling("bert-base-uncased")
