"""Random shapes and parameters: every cell LibreOffice computes agrees with torch.

Hypothesis draws batches of cases; each batch goes through one LibreOffice run, so the
suite stays fast while covering sizes 1-9, kernels 1-5, stride 1-3, padding 0-2,
dilation 1-2, 1-3 channels, bias, ReLU, and max/avg pooling with padding and ceil_mode.
"""

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from blocks import block, records
from conftest import recalculated_values
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import xlconv
from xlconv import reference as ref
from xlconv.spec import Conv, Pool, Relu

BATCH = 12


@st.composite
def grids(draw, shape):
    """Small integers or two-decimal numbers, so both exact and rounded arithmetic get exercised."""
    if draw(st.booleans()):
        return np.array(draw(st.lists(st.integers(-9, 9), min_size=int(np.prod(shape)),
                                      max_size=int(np.prod(shape))))).reshape(shape)
    cents = draw(st.lists(st.integers(-500, 500), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return np.array(cents).reshape(shape) / 100


@st.composite
def cases(draw):
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    span = [d[a] * (k[a] - 1) + 1 for a in (0, 1)]
    h = draw(st.integers(max(1, span[0] - 2 * p[0]), 9))
    w = draw(st.integers(max(1, span[1] - 2 * p[1]), 9))
    arrays = {"x": draw(grids((c_in, h, w)))}
    for o in range(c_out):
        arrays[f"kern{o}"] = draw(grids((c_in, *k)))
    bias = tuple(draw(st.integers(-3, 3)) / 2 for _ in range(c_out)) if draw(st.booleans()) else None
    ops = [Conv("y", "y", "x", tuple(f"kern{o}" for o in range(c_out)), bias, s, p, d)]
    oh = ref.out_size(h, k[0], s[0], p[0], d[0])
    ow = ref.out_size(w, k[1], s[1], p[1], d[1])
    last = "y"
    if draw(st.booleans()):
        ops.append(Relu("act", "act", "y"))
        last = "act"
    mode = draw(st.sampled_from(["max", "avg", None]))
    if mode:
        pk = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        pp = (draw(st.integers(0, pk[0] // 2)), draw(st.integers(0, pk[1] // 2)))
        ps = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        pd = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if mode == "max" else (1, 1)
        ceil = draw(st.booleans())
        fits = all(pd[a] * (pk[a] - 1) + 1 <= (oh, ow)[a] + 2 * pp[a] for a in (0, 1))
        # torch gives -inf where a dilated window sees only padding; xlconv refuses such specs.
        all_windows_see_input = fits and all(
            ref.pool_bounds(i, n, pk[a], ps[a], pp[a], pd[a])[0]
            for a, n in ((0, oh), (1, ow)) for i in range(ref.out_size(n, pk[a], ps[a], pp[a], pd[a], ceil)))
        if all_windows_see_input:
            ops.append(Pool("pool", "pool", last, mode, pk, ps, pp, pd, ceil, draw(st.booleans())))
    return arrays, ops


def torch_outputs(arrays, ops):
    """Every op's output straight from torch.nn.functional (independent of xlconv's references)."""
    t = {n: torch.tensor(np.asarray(a, dtype=float).reshape((-1,) + np.shape(a)[-2:])) for n, a in arrays.items()}
    out = {}
    for op in ops:
        x = (out.get(op.input) if op.input in out else t[op.input])[None]
        if isinstance(op, Conv):
            w = torch.stack([t[n] for n in op.weight])
            b = None if op.bias is None else torch.tensor(op.bias, dtype=torch.float64)
            y = F.conv2d(x, w, b, op.stride, op.padding, op.dilation)
        elif isinstance(op, Relu):
            y = F.relu(x)
        elif op.mode == "max":
            y = F.max_pool2d(x, op.kernel_size, op.stride, op.padding, op.dilation, ceil_mode=op.ceil_mode)
        else:
            y = F.avg_pool2d(x, op.kernel_size, op.stride, op.padding, ceil_mode=op.ceil_mode,
                             count_include_pad=op.count_include_pad)
        out[op.name] = y[0]
    return {n: v.numpy() for n, v in out.items()}


@pytest.mark.libreoffice
# No shrinking: each step would cost a LibreOffice run; the failing batch is printed whole.
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(st.lists(cases(), min_size=BATCH, max_size=BATCH))
def test_random_convolutions_and_poolings_agree_with_torch(batch):
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for n, (arrays, ops) in enumerate(batch):
            spec = xlconv.from_arrays(f"case {n}", arrays, ops, name=f"case{n}")
            paths.append(xlconv.build(spec, tmp))
        books = recalculated_values(paths)
        for (arrays, ops), wb, path in zip(batch, books, paths):
            for name, expected in torch_outputs(arrays, ops).items():
                np.testing.assert_allclose(block(wb, name), expected, rtol=1e-12, atol=1e-9,
                                           err_msg=f"{Path(path).name}: {name} {ops}")
            # The step-by-step panels (a conv's products and sum, a pooling's window and its MAX or average, with
            # padding, dilation and ceil_mode) equal the cell they pick.
            for name, (_, _, info, role) in records(wb).items():
                if role == "trace":
                    filt, row, col, total, chosen = block(wb, name).ravel()
                    picked = block(wb, info["output"])[int(filt) - 1, int(row) - 1, int(col) - 1]
                    assert total == pytest.approx(picked, abs=1e-9), (Path(path).name, name, ops)
                    assert chosen == pytest.approx(picked, abs=1e-9), (Path(path).name, name, ops)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_the_taps_of_one_output_cell_add_up_to_torch_s_conv_and_transposed_conv(data):
    # reference.conv_taps and conv_transpose_taps name the products of one output cell (the self-checks spell them
    # out when a conv reads another answer, and feedback lists them): summed, they are torch's cell.
    k = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    s = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    d = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    p = (data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2)))
    h, w = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = torch.from_numpy(rng.integers(-5, 6, (1, 1, h, w)).astype(np.float64))
    wt = torch.from_numpy(rng.integers(-3, 4, (1, 1, *k)).astype(np.float64))
    span = [d[a] * (k[a] - 1) + 1 for a in (0, 1)]
    cases = []
    if h + 2 * p[0] >= span[0] and w + 2 * p[1] >= span[1]:
        cases.append((ref.conv_taps, F.conv2d(x, wt, stride=s, padding=p, dilation=d)))
    op = (data.draw(st.integers(0, max(s[0], d[0]) - 1)), data.draw(st.integers(0, max(s[1], d[1]) - 1)))
    if all(ref.conv_transpose_out_size(n, k[a], s[a], p[a], op[a], d[a]) > 0 for a, n in ((0, h), (1, w))):
        cases.append((ref.conv_transpose_taps, F.conv_transpose2d(x, wt, stride=s, padding=p, output_padding=op,
                                                                  dilation=d)))
    for taps, want in cases:
        want = want.numpy()[0, 0]
        for i in range(want.shape[0]):
            for j in range(want.shape[1]):
                got = sum(float(x[0, 0, a, b] * wt[0, 0, u, v]) for a, b, u, v in taps(i, j, k, s, p, d, (h, w)))
                assert got == want[i, j], (taps.__name__, i, j)
