"""Chapter 13's exercises: the visible checks catch the common wrong answers, each with its sentence.

Each wrong answer is executed with the student notebook's setup and visible check cell (hidden tests
removed, as a learner sees them), in this process: no kernel, no launch.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from sftcourse.exercises import make_exercise
from sftcourse.grading import CheckError

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "13_scaling_out.ipynb"


def _cells():
    nb = make_exercise(nbformat.read(SOLUTION, as_version=4))
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup = code[0].source
    checks = {c.metadata["nbgrader"]["grade_id"]: c.source for c in code
              if c.metadata.get("nbgrader", {}).get("grade")}
    return setup, checks


def _solution_source(grade_id: str) -> str:
    nb = nbformat.read(SOLUTION, as_version=4)
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return c.source
    raise KeyError(grade_id)


WRONG = {
    "ex1_test": [
        ("def global_gradient(shard_grads, shard_sizes):\n    return sum(shard_grads)", "SUM"),
        ("def global_gradient(shard_grads, shard_sizes):\n    return sum(shard_grads) / len(shard_grads)", "plain average"),
        ("def global_gradient(shard_grads, shard_sizes):\n    return sum(b * g for g, b in zip(shard_grads, shard_sizes))",
         "not right yet|factor"),
        ("def global_gradient(shard_grads, shard_sizes):\n"
         "    d = course_distributed.average_gradients([{'w': g} for g in shard_grads], shard_sizes)\n    return d['w']",
         r"calls sftcourse\.distributed\.average_gradients"),
        ("def global_gradient(shard_grads, shard_sizes):\n    pass", "None"),
    ],
    "ex2_test": [
        ("def shard(n, world_size, rank, drop_last):\n    return list(range(n))[rank::world_size]", "same number"),
        ("def shard(n, world_size, rank, drop_last):\n    m = n // world_size\n    return list(range(m * world_size))[rank::world_size]",
         "on no rank"),
        ("def shard(n, world_size, rank, drop_last):\n    m = -(-n // world_size) if not drop_last else n // world_size\n"
         "    idx = [i % n for i in range(m * world_size)]\n    return idx[rank * m:(rank + 1) * m]", "contiguous"),
        ("def shard(n, world_size, rank, drop_last):\n    m = -(-n // world_size) if not drop_last else n // world_size\n"
         "    idx = list(range(n)) + [n - 1] * (m * world_size - n) if not drop_last else list(range(m * world_size))\n"
         "    return idx[rank::world_size]", "order of the padding"),
        ("def shard(n, world_size, rank, drop_last):\n"
         "    return list(DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=False, drop_last=drop_last))",
         r"calls torch\.utils\.data\.distributed\.DistributedSampler\.__iter__"),
        ("def shard(n, world_size, rank, drop_last):\n"
         "    return course_distributed.shard_indices(n, world_size, rank, drop_last=drop_last)",
         r"calls sftcourse\.distributed\.shard_indices"),
    ],
    "ex3_test": [
        ("def state_memory(num_params, precision, world_size, zero_stage):\n"
         "    b = {'fp32': (4, 4, 4), 'mixed': (2, 2, 4)}[precision]\n"
         "    out = dict(params=num_params * b[0], grads=num_params * b[1], optimizer=num_params * b[2])\n"
         "    out['total'] = sum(out.values())\n    return out", "TWO tensors"),
        ("def state_memory(num_params, precision, world_size, zero_stage):\n"
         "    b = {'fp32': (4, 4, 8), 'mixed': (2, 2, 8)}[precision]\n"
         "    s = lambda k: world_size if zero_stage >= k else 1\n"
         "    out = dict(params=num_params * b[0] / s(3), grads=num_params * b[1] / s(2), optimizer=num_params * b[2] / s(1))\n"
         "    out['total'] = sum(out.values())\n    return out", "MASTER COPY"),
        ("def state_memory(num_params, precision, world_size, zero_stage):\n"
         "    b = {'fp32': (4, 4, 8), 'mixed': (2, 2, 12)}[precision]\n"
         "    s = world_size if zero_stage >= 1 else 1\n"
         "    out = dict(params=num_params * b[0] / s, grads=num_params * b[1] / s, optimizer=num_params * b[2] / s)\n"
         "    out['total'] = sum(out.values())\n    return out", "keeps them whole"),
        ("def state_memory(num_params, precision, world_size, zero_stage):\n"
         "    b = {'fp32': (4, 4, 8), 'mixed': (2, 2, 12)}[precision]\n"
         "    s = lambda k: world_size if zero_stage >= k else 1\n"
         "    out = dict(params=num_params * b[0], grads=num_params * b[1] / s(2), optimizer=num_params * b[2] / s(1))\n"
         "    out['total'] = sum(out.values())\n    return out", "not sharded"),
        ("def state_memory(num_params, precision, world_size, zero_stage):\n"
         "    return course_distributed.training_state_bytes(num_params, precision=precision, world_size=world_size,\n"
         "                                                   zero_stage=zero_stage)",
         r"calls sftcourse\.distributed\.training_state_bytes"),
    ],
}


@pytest.mark.parametrize("grade_id, wrong, message",
                         [(g, w, m) for g, answers in WRONG.items() for w, m in answers],
                         ids=[f"{g}-{i}" for g, answers in WRONG.items() for i in range(len(answers))])
def test_visible_checks_catch_the_wrong_answer_with_a_sentence(grade_id, wrong, message):
    setup, checks = _cells()
    namespace: dict = {}
    exec(setup, namespace)
    exec(wrong, namespace)
    with pytest.raises(CheckError, match=message):
        exec(checks[grade_id], namespace)


@pytest.mark.parametrize("grade_id", sorted(WRONG))
def test_the_solutions_pass_the_visible_checks(grade_id):
    setup, checks = _cells()
    namespace: dict = {}
    exec(setup, namespace)
    solution_id = {"ex1_test": "ex1_global_gradient", "ex2_test": "ex2_shard", "ex3_test": "ex3_state_memory"}[grade_id]
    exec(_solution_source(solution_id), namespace)
    exec(checks[grade_id], namespace)
