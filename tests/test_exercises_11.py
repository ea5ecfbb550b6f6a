"""Chapter 11's exercise checks: the solution passes, and each common wrong answer gets its sentence.

Every case runs the student notebook's own setup cell and the visible part of a check cell
(hidden tests removed, as a learner sees it) against a wrong answer.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from sftcourse.exercises import make_exercise
from sftcourse.grading import CheckError

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "11_finetuning_techniques.ipynb"


def _by_grade_id(nb: nbformat.NotebookNode) -> dict[str, str]:
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells if "nbgrader" in c.metadata}


@pytest.fixture(scope="module")
def notebook() -> dict[str, str]:
    solution = nbformat.read(SOLUTION, as_version=4)
    student = make_exercise(solution, source_name=SOLUTION.name)
    cells = {"setup": next(c.source for c in student.cells if c.cell_type == "code")}
    cells.update({f"visible:{k}": v for k, v in _by_grade_id(student).items()})
    cells.update({f"solution:{k}": v for k, v in _by_grade_id(solution).items()})
    return cells


def _run(notebook: dict[str, str], answer: str, check_id: str) -> None:
    namespace: dict[str, object] = {}
    exec(compile(notebook["setup"], "setup", "exec"), namespace)
    exec(compile(answer, "answer", "exec"), namespace)
    exec(compile(notebook[f"visible:{check_id}"], check_id, "exec"), namespace)


@pytest.mark.parametrize("answer_id, check_id", [("ex1_lora", "ex1_test"), ("ex2_llrd", "ex2_test"),
                                                 ("ex3_paired", "ex3_test"), ("ex4_tokens", "ex4_test")])
def test_the_solutions_pass_the_visible_and_hidden_checks(notebook, answer_id, check_id):
    namespace: dict[str, object] = {}
    exec(compile(notebook["setup"], "setup", "exec"), namespace)
    exec(compile(notebook[f"solution:{answer_id}"], "answer", "exec"), namespace)
    exec(compile(notebook[f"solution:{check_id}"], check_id, "exec"), namespace)


LORA_OK = """
class MyLoRALinear(nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        FREEZE
        self.scaling = SCALE
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(INIT_B)
        INIT_A

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling
"""
_LORA = {"FREEZE": "base.requires_grad_(False)", "SCALE": "alpha / r",
         "INIT_B": "torch.zeros(base.out_features, r)", "INIT_A": "nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))"}


def _lora(**change: str) -> str:
    src = LORA_OK
    for key, value in {**_LORA, **change}.items():
        src = src.replace(key, value)
    return src


WRONG_ANSWERS = [
    ("ex1_test", _lora(), None),
    ("ex1_test", _lora(INIT_B="torch.randn(base.out_features, r)"), "initialise B with zeros"),
    ("ex1_test", _lora(INIT_A="nn.init.zeros_(self.lora_A)"), "lora_A is all zeros"),
    ("ex1_test", _lora(SCALE="1.0"), "forgot the alpha / r scale"),
    ("ex1_test", _lora(SCALE="alpha"), "alpha instead of alpha / r"),
    ("ex1_test", _lora(FREEZE="pass"), "still require gradients"),
    ("ex1_test", _lora(INIT_B="torch.zeros(r, base.out_features)"), "lora_B (d_out, r)"),
    ("ex1_test", "class MyLoRALinear(sftcourse.lora.LoRALinear):\n    pass\n", "calls sftcourse.lora.LoRALinear"),
    ("ex1_test", "def MyLoRALinear(base, r, alpha):\n    return sftcourse.lora.LoRALinear(base, r, alpha)\n",
     "calls sftcourse.lora.LoRALinear"),
    ("ex1_test", "import peft\n"
                 "def MyLoRALinear(base, r, alpha):\n"
                 "    wrapped = peft.inject_adapter_in_model(peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=['0']),\n"
                 "                                           nn.Sequential(base))\n"
                 "    layer = wrapped[0]\n"
                 "    layer.lora_A, layer.lora_B = layer.lora_A['default'].weight, layer.lora_B['default'].weight\n"
                 "    return layer\n",
     "calls peft.tuners.lora.layer.Linear.forward"),
    ("ex2_test", """
def layerwise_lr_groups(model, lr, decay):
    L = model.config.num_hidden_layers
    out = []
    for name, p in model.named_parameters():
        d = 0 if name.startswith("bert.embeddings.") else (
            int(name.split(".")[3]) + 1 if name.startswith("bert.encoder.layer.") else L + 1)
        out.append({"params": [p], "lr": lr * decay ** d})
    return out
""", "wrong way"),
    ("ex2_test", """
def layerwise_lr_groups(model, lr, decay):
    L = model.config.num_hidden_layers
    out = []
    for name, p in model.named_parameters():
        d = 0 if name.startswith("bert.embeddings.") else (
            int(name.split(".")[3]) if name.startswith("bert.encoder.layer.") else L + 1)
        out.append({"params": [p], "lr": lr * decay ** (L + 1 - d)})
    return out
""", "layer 0 got the embeddings' rate"),
    ("ex2_test", """
def layerwise_lr_groups(model, lr, decay):
    L = model.config.num_hidden_layers
    out = []
    for name, p in model.named_parameters():
        d = 0 if name.startswith("bert.embeddings.") else (
            int(name.split(".")[3]) + 2 if name.startswith("bert.encoder.layer.") else L + 1)
        out.append({"params": [p], "lr": lr * decay ** (L + 1 - d)})
    return out
""", "off by one power"),
    ("ex2_test", """
def layerwise_lr_groups(model, lr, decay):
    return [{"params": list(model.parameters()), "lr": lr}, {"params": list(model.classifier.parameters()), "lr": lr}]
""", "two groups"),
    ("ex2_test", """
def layerwise_lr_groups(model, lr, decay):
    return [{"params": list(model.parameters()), "lr": lr}]
""", "the learning rate of each parameter"),
    ("ex3_test", """
def paired_ci(a, b, confidence=0.95):
    d = np.asarray(b) - np.asarray(a)
    half = 1.959963984540054 * d.std(ddof=1) / math.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half
""", "normal 1.96"),
    ("ex3_test", """
def paired_ci(a, b, confidence=0.95):
    d = np.asarray(b) - np.asarray(a)
    half = t_quantile((1 + confidence) / 2, len(d) - 1) * d.std() / math.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half
""", "ddof=1"),
    ("ex3_test", """
def paired_ci(a, b, confidence=0.95):
    a, b = np.asarray(a), np.asarray(b)
    n = len(a)
    half = t_quantile((1 + confidence) / 2, n - 1) * math.sqrt(a.var(ddof=1) / n + b.var(ddof=1) / n)
    return b.mean() - a.mean(), b.mean() - a.mean() - half, b.mean() - a.mean() + half
""", "independent groups"),
    ("ex3_test", """
def paired_ci(a, b, confidence=0.95):
    d = np.asarray(a) - np.asarray(b)
    half = t_quantile((1 + confidence) / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half
""", "sign is reversed"),
    ("ex3_test", """
def paired_ci(a, b, confidence=0.95):
    d = np.asarray(b) - np.asarray(a)
    half = t_quantile(confidence, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half
""", "(1 + c) / 2"),
    ("ex3_test", """
def paired_ci(a, b, confidence=0.95):
    c = sftcourse.stats.paired_comparison(a, b, confidence=confidence)
    return c.mean_diff, c.ci_low, c.ci_high
""", "calls sftcourse.stats.paired_comparison"),
    ("ex4_test", """
def accumulated_token_loss(token_losses, masks):
    return [(l * m).sum() / m.sum() / len(masks) for l, m in zip(token_losses, masks)]
""", "naive accumulation"),
    ("ex4_test", """
def accumulated_token_loss(token_losses, masks):
    total = sum(l.numel() for l in token_losses)
    return [l.sum() / total for l in token_losses]
""", "padding positions were counted"),
    ("ex4_test", """
def accumulated_token_loss(token_losses, masks):
    total = sum(float(m.sum()) for m in masks)
    return [torch.tensor((l * m).sum().item() / total) for l, m in zip(token_losses, masks)]
""", "carries the graph"),
]


@pytest.mark.parametrize("check_id, answer, message", WRONG_ANSWERS,
                         ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(WRONG_ANSWERS)])
def test_visible_checks_catch_wrong_answers(notebook, check_id, answer, message):
    if message is None:  # the template of the wrong answers is itself right: the cases test one change each
        _run(notebook, answer, check_id)
        return
    with pytest.raises(CheckError, match=re.escape(message)):
        _run(notebook, answer, check_id)
