"""Chapter 12's exercise checks: common wrong answers get their sentence, and delegating answers fail.

Each wrong answer replaces the solution cell of one exercise; the exercise's check cell (hidden tests
included) must then raise a CheckError whose message names the mistake. The solution itself must pass.
An answer that calls the course's implementation (or the library shortcut) fails with
``sftcourse.grading.own_work``'s sentence. The notebook's code runs in a module registered in
``sys.modules``, as a kernel's ``__main__`` is, so that names the answer imports are switched off too.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import nbformat
import pytest

from sftcourse.grading import CheckError

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "12_sft_chat_model.ipynb"


def _cells():
    nb = nbformat.read(SOLUTION, as_version=4)
    setup = nb.cells[1].source
    checks, solutions = {}, {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            checks[meta["grade_id"].split("_")[0]] = cell.source
        elif meta.get("solution"):
            solutions[meta["grade_id"].split("_")[0]] = cell.source
    return setup, checks, solutions


SETUP, CHECKS, SOLUTIONS = _cells()


@pytest.fixture()
def namespace():
    """A fresh notebook namespace per test, a module in sys.modules like a kernel's __main__."""
    module = types.ModuleType("_solutions_12_notebook")
    sys.modules[module.__name__] = module
    try:
        exec(SETUP, module.__dict__)
        yield module.__dict__
    finally:
        del sys.modules[module.__name__]


def _run(ns, exercise, answer):
    exec(answer, ns)
    exec(CHECKS[exercise], ns)


@pytest.mark.parametrize("exercise", ["ex1", "ex2", "ex3", "ex4"])
def test_the_solutions_pass(namespace, exercise):
    _run(namespace, exercise, SOLUTIONS[exercise])


WRONG = {
    "masks the reply instead of the prompt": ("ex1", """
def sft_labels(input_ids, attention_mask, prompt_lengths):
    labels = torch.full_like(input_ids, -100)
    for b, n in enumerate(prompt_lengths):
        labels[b, :n] = input_ids[b, :n]
    return labels
""", "masked the reply and kept the prompt"),
    "forgets the padding": ("ex1", """
def sft_labels(input_ids, attention_mask, prompt_lengths):
    labels = input_ids.clone()
    for b, n in enumerate(prompt_lengths):
        labels[b, :n] = -100
    return labels
""", "padding tokens still carry labels"),
    "shifts the labels itself": ("ex1", """
def sft_labels(input_ids, attention_mask, prompt_lengths):
    labels = input_ids.clone()
    for b, n in enumerate(prompt_lengths):
        labels[b, :n] = -100
    labels[attention_mask == 0] = -100
    out = torch.full_like(labels, -100)
    out[:, :-1] = labels[:, 1:]
    return out
""", "shifted by one"),
    "masks one token too many": ("ex1", """
def sft_labels(input_ids, attention_mask, prompt_lengths):
    labels = input_ids.clone()
    for b, n in enumerate(prompt_lengths):
        labels[b, :n + 1] = -100
    labels[attention_mask == 0] = -100
    return labels
""", "off-by-one at the boundary"),
    "modifies input_ids in place": ("ex1", """
def sft_labels(input_ids, attention_mask, prompt_lengths):
    labels = input_ids
    for b, n in enumerate(prompt_lengths):
        labels[b, :n] = -100
    labels[attention_mask == 0] = -100
    return labels
""", "in place"),
    "no default system message": ("ex2", """
def to_chatml(messages, add_generation_prompt):
    text = "".join(f"<|im_start|>{m['role']}\\n{m['content']}<|im_end|>\\n" for m in messages)
    return text + ("<|im_start|>assistant\\n" if add_generation_prompt else "")
""", "default system message is missing"),
    "no newline after im_end": ("ex2", """
def to_chatml(messages, add_generation_prompt):
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": "You are a helpful AI assistant named SmolLM, trained by Hugging Face"}] + messages
    text = "".join(f"<|im_start|>{m['role']}\\n{m['content']}<|im_end|>" for m in messages)
    return text + ("<|im_start|>assistant\\n" if add_generation_prompt else "")
""", "followed by a newline"),
    "always adds the generation prompt": ("ex2", """
def to_chatml(messages, add_generation_prompt):
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": "You are a helpful AI assistant named SmolLM, trained by Hugging Face"}] + messages
    text = "".join(f"<|im_start|>{m['role']}\\n{m['content']}<|im_end|>\\n" for m in messages)
    return text + "<|im_start|>assistant\\n"
""", "add_generation_prompt=True the text ends"),
    "no shift": ("ex3", """
def next_token_loss(logits, labels):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
""", "scored each position against its own token"),
    "shift the wrong way": ("ex3", """
def next_token_loss(logits, labels):
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, 1:].reshape(-1, V), labels[:, :-1].reshape(-1), ignore_index=-100)
""", "the shift goes the other way"),
    "returns the prompt too": ("ex4", """
def greedy(model, input_ids, max_new_tokens, eos_id):
    seq = input_ids
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = model(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, token], 1)
            if int(token) == eos_id:
                break
    return seq[0].tolist()
""", "returned the prompt too"),
    "ignores eos": ("ex4", """
def greedy(model, input_ids, max_new_tokens, eos_id):
    out, new = model(input_ids=input_ids, use_cache=True), []
    for _ in range(max_new_tokens):
        token = int(out.logits[0, -1].argmax())
        new.append(token)
        out = model(input_ids=torch.tensor([[token]]), cache=out.cache, use_cache=True)
    return new
""", "kept going after the end token"),
    "argmax of the first position": ("ex4", """
def greedy(model, input_ids, max_new_tokens, eos_id):
    out, new = model(input_ids=input_ids, use_cache=True), []
    for _ in range(max_new_tokens):
        token = int(out.logits[0, 0].argmax())
        new.append(token)
        if token == eos_id:
            break
        out = model(input_ids=torch.tensor([[token]]), cache=out.cache, use_cache=True)
    return new
""", "LAST position"),
    "no KV cache": ("ex4", """
def greedy(model, input_ids, max_new_tokens, eos_id):
    seq, new = input_ids, []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = int(model(input_ids=seq).logits[0, -1].argmax())
            new.append(token)
            if token == eos_id:
                break
            seq = torch.cat([seq, torch.tensor([[token]])], 1)
    return new
""", "feed ONLY the new token"),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_wrong_answers_get_their_sentence(namespace, name):
    exercise, answer, message = WRONG[name]
    with pytest.raises(CheckError) as err:
        _run(namespace, exercise, answer)
    assert message in str(err.value), str(err.value)


DELEGATING = {  # exercise: (answer, what the check names as switched off)
    "ex1": ("""
def sft_labels(input_ids, attention_mask, prompt_lengths):
    from sftcourse.chat import pad_batch
    return pad_batch([{"input_ids": [1], "labels": [1]}], 0)["labels"]
""", "sftcourse.chat.pad_batch"),
    "ex2": ("""
def to_chatml(messages, add_generation_prompt):
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
""", "apply_chat_template"),
    "ex2, the course's chatml": ("""
from sftcourse.chat import chatml
def to_chatml(messages, add_generation_prompt):
    return chatml(messages, add_generation_prompt=add_generation_prompt)
""", "sftcourse.chat.chatml"),
    "ex3": ("""
from sftcourse.chat import lm_loss
def next_token_loss(logits, labels):
    return lm_loss(logits, labels)
""", "sftcourse.chat.lm_loss"),
    "ex4": ("""
def greedy(model, input_ids, max_new_tokens, eos_id):
    return model.inner.generate(input_ids, max_new_tokens=max_new_tokens, do_sample=False)[0, input_ids.shape[1]:].tolist()
""", "generate"),
    "ex4, the course's greedy_decode": ("""
import sftcourse.chat as course_chat
def greedy(model, input_ids, max_new_tokens, eos_id):
    return course_chat.greedy_decode(model, input_ids, max_new_tokens=max_new_tokens, eos_token_id=eos_id)[0].tolist()
""", "sftcourse.chat.greedy_decode"),
}


@pytest.mark.parametrize("case", list(DELEGATING))
def test_answers_that_call_the_course_or_the_library_shortcut_fail(namespace, case):
    answer, name = DELEGATING[case]
    with pytest.raises(CheckError) as err:
        _run(namespace, case.split(",")[0], answer)
    message = str(err.value)
    assert "a ✓ must mean you wrote it" in message and name in message, message


def test_the_switched_off_functions_are_restored_after_a_check(namespace):
    import sftcourse.chat

    before = {f.__name__: getattr(sftcourse.chat, f.__name__) for f in namespace["COURSE_VERSIONS"]}
    generate = namespace["LlamaForCausalLM"].generate
    with pytest.raises(CheckError):
        _run(namespace, "ex4", DELEGATING["ex4, the course's greedy_decode"][0])
    assert {name: getattr(sftcourse.chat, name) for name in before} == before
    assert namespace["LlamaForCausalLM"].generate is generate


def test_course_version_is_the_same_function_as_the_solutions(namespace):
    """The library's chatml/lm_loss/greedy_decode agree with the solutions (one behaviour, two places)."""
    import torch

    from sftcourse.chat import chatml, greedy_decode, lm_loss

    ns = namespace
    for exercise in ("ex2", "ex3", "ex4"):
        exec(SOLUTIONS[exercise], ns)
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]
    assert ns["to_chatml"](msgs, False) == chatml(msgs)
    logits, labels = torch.randn(2, 5, 7), torch.randint(7, (2, 5))
    assert torch.allclose(ns["next_token_loss"](logits, labels), lm_loss(logits, labels))
    tiny, prompt = ns["_tiny"] if "_tiny" in ns else None, torch.tensor([[1, 2, 3]])
    if tiny is None:
        exec(CHECKS["ex4"].split("torch.manual_seed(0)")[0], ns)
        tiny = ns["_tiny"]
    assert ns["greedy"](tiny, prompt, 5, -1) == greedy_decode(tiny, prompt, max_new_tokens=5)[0].tolist()
