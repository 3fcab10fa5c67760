"""The tiny CNN's losses and their gradients through a real engine: MSE (mean and sum) and, through softmax,
cross-entropy; every gradient cell LibreOffice recalculates is compared with torch.autograd run here on a graph
built op by op with torch.nn.functional (not xlconv's own torch reference), and one workbook also goes through
Gnumeric."""

import numpy as np
import pytest
from blocks import block

from xlconv import build
from xlconv.spec import loads
from xlconv.verify import verify


def _rows(a):
    return "[" + ", ".join("[" + ", ".join(f"{float(v):.4g}" for v in row) + "]" for row in a) + "]"


# (case, the loss's input, kind, reduction): MSE on the probabilities runs the gradient back through softmax's own
# Jacobian, p (g - SUMPRODUCT(g, p)); MSE on the pooled maps starts the chain at the maps; cross-entropy on the
# logits is softmax - one-hot.
CASES = [
    ("mse-mean-probs", "probs", "mse", "mean"),
    ("mse-sum-pool", "pool1", "mse", "sum"),
    ("ce-logits", "logits", "cross_entropy", "mean"),
]


def loss_spec(seed, on, kind, reduction):
    """A small CNN (6x6 image, 2 filters of 3x3, ReLU, 2x2 max pool, flatten, linear to 4, softmax) whose loss
    reads `on`, differentiated by the image, both filters and the dense weights."""
    rng = np.random.default_rng(seed)
    parts = ['title = "Loss test"', "[grids.image]", f"values = {_rows(rng.random((6, 6)))}"]
    for k in (1, 2):
        parts += [f"[grids.filter{k}]", f"values = {_rows(rng.normal(0, 0.7, (3, 3)))}"]
    parts += ["[grids.fc]", f"values = {_rows(rng.normal(0, 0.5, (4, 8)))}"]
    if kind == "mse" and on == "probs":
        parts += ["[grids.want]", "values = [[0], [1], [0], [0]]"]  # a one-hot column, shaped like the probabilities
    elif kind == "mse":
        parts += ["[grids.want]", f"values = {[[[round(float(v), 3) for v in r] for r in c] for c in rng.random((2, 2, 2))]}"]
    parts += ["[[conv]]", 'name = "conv1"', 'input = "image"', 'weight = ["filter1", "filter2"]', "bias = [0.1, -0.2]",
              "[[relu]]", 'name = "relu1"', 'input = "conv1"',
              "[[pool]]", 'name = "pool1"', 'input = "relu1"', "kernel_size = 2",
              "[[flatten]]", 'name = "flat"', 'input = "pool1"',
              "[[linear]]", 'name = "logits"', 'input = "flat"', 'weight = "fc"', "bias = [0.3, -0.1, 0.2, 0]",
              "[[softmax]]", 'name = "probs"', 'input = "logits"',
              "[[loss]]", 'name = "loss"', f'input = "{on}"', f'kind = "{kind}"']
    parts += ["target = 2"] if kind == "cross_entropy" else ['target = "want"', f'reduction = "{reduction}"']
    parts += ["[gradients]", 'wrt = ["image", "filter1", "filter2"' + (', "fc"]' if on != "pool1" else "]")]
    return "\n".join(parts) + "\n"


def torch_gradients(spec, on, kind, reduction):
    """dL/d(every value) by torch.autograd on the graph written out with torch.nn.functional."""
    import torch
    import torch.nn.functional as F

    g = {x.name: torch.tensor(x.values, dtype=torch.float64, requires_grad=True) for x in spec.grids}
    b = torch.tensor([0.1, -0.2], dtype=torch.float64, requires_grad=True)
    fb = torch.tensor([0.3, -0.1, 0.2, 0], dtype=torch.float64, requires_grad=True)
    conv = F.conv2d(g["image"][None], torch.cat([g["filter1"], g["filter2"]])[:, None], b)[0]
    relu = F.relu(conv)
    pool = F.max_pool2d(relu, 2)
    flat = torch.flatten(pool)
    logits = F.linear(flat, g["fc"][0], fb)
    probs = F.softmax(logits, dim=0)
    vals = {"conv1": conv, "relu1": relu, "pool1": pool, "flat": flat, "logits": logits, "probs": probs}
    for v in vals.values():
        v.retain_grad()
    if kind == "cross_entropy":
        loss = F.cross_entropy(logits[None], torch.tensor([2]))
    else:
        loss = F.mse_loss(vals[on].reshape(-1), g["want"].reshape(-1), reduction=reduction)
    loss.backward()
    out = {f"{k}_grad": v.grad.numpy() for k, v in vals.items() if v.grad is not None}
    out.update({f"{k}_grad": g[k].grad.numpy() for k in ("image", "filter1", "filter2", "fc") if g[k].grad is not None})
    out["conv1_bias_grad"] = b.grad.numpy()
    if fb.grad is not None:  # the dense head is off the loss's path when the loss reads the pooled maps
        out["logits_bias_grad"] = fb.grad.numpy()
    return loss.item(), out


@pytest.fixture(scope="module")
def recalculated(tmp_path_factory):
    """Every case built and recalculated by LibreOffice in one run."""
    from conftest import recalculated_values

    out = tmp_path_factory.mktemp("losses")
    specs = [loads(loss_spec(n, on, kind, red), str(out / f"{case}.toml")) for n, (case, on, kind, red) in
             enumerate(CASES)]
    paths = [build(s, out / case) for s, (case, *_) in zip(specs, CASES)]
    return dict(zip([c[0] for c in CASES], zip(specs, paths, recalculated_values(paths))))


@pytest.mark.libreoffice
@pytest.mark.parametrize("case,on,kind,reduction", CASES)
def test_loss_and_every_gradient_match_autograd(recalculated, case, on, kind, reduction):
    spec, _, wb = recalculated[case]
    loss, grads = torch_gradients(spec, on, kind, reduction)
    np.testing.assert_allclose(block(wb, "loss").item(), loss, rtol=1e-10, atol=1e-12)
    expected = {"image_grad", "filter1_grad", "filter2_grad", "conv1_bias_grad", "conv1_grad", "relu1_grad",
                "pool1_grad"} | ({"fc_grad", "flat_grad", "logits_grad", "logits_bias_grad"} if on != "pool1" else set())
    if on == "probs":
        expected.add("probs_grad")
    got = {}
    for name in expected:
        got[name] = block(wb, name)
        assert not np.isnan(got[name]).any(), f"{case}: {name} has cells that are not numbers"
        # In C order: vectors may be rows or columns on the sheet; fc's gradient is one column per class, which is
        # torch's row k.
        np.testing.assert_allclose(got[name].reshape(-1), grads[name].reshape(-1), rtol=1e-9, atol=1e-12,
                                   err_msg=f"{case}: {name}")
    assert np.abs(got["image_grad"]).max() > 1e-6, "a gradient that is all zeros proves little"


@pytest.mark.libreoffice
def test_mse_reductions_differ_by_the_cell_count(tmp_path):
    """reduction="sum" is reduction="mean" times the number of cells, for the loss and for every gradient."""
    from conftest import recalculated_values

    paths = [build(loads(loss_spec(1, "pool1", "mse", red), str(tmp_path / f"{red}.toml")), tmp_path / red)
             for red in ("mean", "sum")]
    mean, total = recalculated_values(paths)
    n = 8  # 2 maps of 2 x 2
    np.testing.assert_allclose(block(total, "loss"), n * block(mean, "loss"), rtol=1e-12)
    np.testing.assert_allclose(block(total, "filter2_grad"), n * block(mean, "filter2_grad"), rtol=1e-9, atol=1e-14)


@pytest.mark.gnumeric
def test_gnumeric_verifies_mse_through_softmax(tmp_path):
    """verify recomputes every gradient with NumPy and torch.autograd after Gnumeric recalculated the workbook."""
    path = build(loads(loss_spec(0, "probs", "mse", "mean"), str(tmp_path / "g.toml")), tmp_path)
    (r,) = verify([path], engine="gnumeric")
    assert r.ok, r.lines()
    assert r.cells > 150
