"""Exercises of the tiny CNN: answer blocks of the forward pass and of its gradients on one sheet, a shipped digit
per student, keys, self-checks, and grading that marks gradient answers against torch.autograd's values."""

import json

import numpy as np
import pytest
from exercise_helpers import fill, save_through_libreoffice, write_roster
from openpyxl import load_workbook

from xlconv import model
from xlconv import reference as ref
from xlconv import torch_reference as tref
from xlconv.errors import SpecError
from xlconv.exercise import exercise
from xlconv.grade import grade, load_key
from xlconv.spec import load, loads
from xlconv.verify import verify

SPEC = "tiny-cnn-digits"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-ex")
    result = exercise(SPEC, out / "ex", seed=11, roster=write_roster(out, "id,name\ns01,Ann\ns02,Bob\n"))
    return out, result, load_key(out / "ex")


def test_default_answers_are_a_conv_the_probabilities_and_a_gradient(made):
    _, result, key = made
    manifest = json.loads(result.manifest.read_text())
    assert manifest["answers"] == ["conv1", "probs", "filter1_grad"]
    assert [r.name for r in key.answers] == ["conv1", "probs", "filter1_grad"]
    # One sheet (grading reads one): the gradients sit under the forward pass, no Digits sheet, no pick cell.
    wb = load_workbook(result.student_files[0])
    assert [s for s in wb.sheetnames if s != "_xlconv"] == ["Tiny CNN"]
    assert {r.sheet for r in key.records} == {"Tiny CNN"} and "pick" not in {r.name for r in key.records}


def test_each_student_gets_a_shipped_digit_and_a_target_the_net_does_not_predict(made):
    _, result, key = made
    ex = load(SPEC).examples
    picked = []
    for v in result.variants:
        inputs = key.variants[v.student.id]["inputs"]
        image = np.asarray(inputs["image"])
        n = next(k for k in range(len(ex.labels)) if np.array_equal(ex.values[k], image[0]))
        target = int(np.asarray(inputs["loss_target"]).item())
        predicted = int(np.argmax(key.expected(v.student.id)["probs"]))
        assert target != predicted
        assert key.expected(v.student.id)["loss"].item() > 1.0  # so the gradients are far from 0
        picked.append((n, target))
    assert picked[0] != picked[1]


def test_gradient_answers_are_autograd_of_the_variant(made):
    _, result, key = made
    for v in result.variants:
        spec = v.spec
        values = model.graph_values(spec, model.compute(spec))
        path = ref.ancestors(model.nodes(spec), "loss")
        made_ = {n.name for n in path}
        roots = {x: values[x] for n in path for x in n.reads() if x not in made_}
        torch_grads = tref.autograd(path, roots, "loss")
        got = key.expected(v.student.id)["filter1_grad"]
        np.testing.assert_allclose(got.ravel(), torch_grads["filter1"].ravel(), atol=1e-12)
        assert np.abs(got).max() > 0.1  # an all-zero answer must not pass (tolerance 0.005)


def test_student_sheet_has_blank_answers_and_no_formula_for_them(made):
    _, result, key = made
    ws = load_workbook(result.student_files[0])["Tiny CNN"]
    for rec in key.answers:
        for g in rec.grids:
            for i in range(g.height):
                for j in range(g.width):
                    assert ws.cell(g.top + i + 1, g.left + j + 1).value is None, rec.name


@pytest.mark.libreoffice
def test_right_and_wrong_gradient_answers_through_libreoffice(made):
    out, result, key = made
    students = {v.student.id: result.out_dir / v.student_file for v in result.variants}
    right = fill(students["s01"], out / "typed" / "s01.xlsx", key, "s01")
    wrong = fill(students["s02"], out / "typed" / "s02.xlsx", key, "s02",
                 answer=lambda b, c, i, j, v: v + 0.1 if (b, i, j) == ("filter1_grad", 1, 2) else v)
    saved = save_through_libreoffice([right, wrong], out / "saved")
    book = grade(saved, result.out_dir, out / "gradebook.csv")
    rows = {r.student_id: r for r in book.rows}
    assert book.questions == {"conv1": 144, "probs": 10, "filter1_grad": 9}
    assert rows["s01"].status == "ok" and rows["s01"].marks == {"conv1": 144, "probs": 10, "filter1_grad": 9}
    assert rows["s02"].marks == {"conv1": 144, "probs": 10, "filter1_grad": 8}
    # The live self-checks (recalculated by LibreOffice) agree: every tick for s01, one cross for s02.
    score = next(r for r in key.records if r.name == "_score").grids[0]
    got = [load_workbook(p, data_only=True)["Tiny CNN"].cell(score.top + 1, score.left + 1).value for p in saved]
    assert got == [163, 162]
    # And a blank gradient block scores 0 of 9, not a lucky 9 of 9 (the gradients are far from 0).
    assert not any(abs(x) <= key.tolerance for x in key.expected("s01")["filter1_grad"].ravel())


@pytest.mark.libreoffice
def test_the_key_verifies(made):
    _, result, _ = made
    (r,) = verify([result.key_files[0]])
    assert r.ok, r.lines()
    assert r.cells > 700


def test_answers_can_be_chosen_and_are_checked(tmp_path):
    text = load(SPEC).path.read_text() if hasattr(load(SPEC).path, "read_text") else open(load(SPEC).path).read()
    spec = loads(text + '\n[exercise]\nanswers = ["logits", "conv1_grad"]\n', str(tmp_path / "a.toml"))
    result = exercise(spec, tmp_path / "ex", seed=1)
    assert json.loads(result.manifest.read_text())["answers"] == ["logits", "conv1_grad"]
    with pytest.raises(SpecError, match=r"exercise.answers: 'nope' is not an op or a gradient block"):
        loads(text + '\n[exercise]\nanswers = ["nope"]\n', str(tmp_path / "b.toml"))
