"""Train the tiny CNN of the shipped spec tiny-cnn-digits on scikit-learn's 8x8 digits and write the spec.

The net: 1x8x8 input (pixels / 16) -> Conv2d(1, 4, kernel_size=3) -> ReLU -> MaxPool2d(2) -> Flatten (36)
-> Linear(36, 10); cross-entropy loss. Everything is seeded and runs single-threaded in float64, so the
written file is the same on every run; the weights are rounded to 4 decimals (what the spreadsheet holds)
and the stated test accuracy is measured with those rounded weights, in NumPy and in torch.

    python tools/train_tiny_cnn.py            # rewrite xlconv/worksheets/tiny-cnn-digits.toml
    python tools/train_tiny_cnn.py --check    # exit 1 if rewriting would change that file

Needs scikit-learn (the test extras): its wheel ships the digits, so no download happens.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "xlconv" / "worksheets" / "tiny-cnn-digits.toml"

SEED = 0
SPLIT_SEED = 0  # train_test_split's random_state
TEST_SIZE = 0.2
EPOCHS = 100  # full-batch Adam steps
LR = 0.03
DECIMALS = 4  # the weights as the spreadsheet holds them
FILTERS = 4
# The sheet's one SGD step on the picked digit. Its gradients reach 1-2 against weights of about 2, so 0.01
# moves no weight by more than 0.02 yet takes the loss from 0.51 to 0.06; 0.5 would jump weights by 1 and
# drive the loss to exactly 0, which teaches less.
SGD_LR = 0.01
PER_CLASS = 2  # shipped test digits of each class


@dataclass(frozen=True)
class Data:
    """The digits as (N, 8, 8) floats in [0, 1] with their labels, and the fixed stratified split."""

    images: np.ndarray
    labels: np.ndarray
    train: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class Params:
    """The net's weights in float64, laid out as torch's state_dict."""

    conv_w: np.ndarray  # (4, 1, 3, 3)
    conv_b: np.ndarray  # (4,)
    fc_w: np.ndarray  # (10, 36)
    fc_b: np.ndarray  # (10,)


def load_data() -> Data:
    """scikit-learn's copy of the UCI digits, pixels divided by 16, split 80/20 stratified with random_state 0."""
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]
    from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float64) / 16.0
    labels = np.asarray(digits.target, dtype=np.int64)
    train, test = train_test_split(np.arange(len(labels)), test_size=TEST_SIZE, random_state=SPLIT_SEED,
                                   stratify=labels)
    return Data(images, labels, np.asarray(train), np.asarray(test))


def torch_model(params: Params | None = None) -> Any:
    """The net as a float64 torch Sequential; with params, those weights loaded."""
    import torch
    from torch import nn

    model = nn.Sequential(nn.Conv2d(1, FILTERS, kernel_size=3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(FILTERS * 3 * 3, 10)).double()
    if params is not None:
        with torch.no_grad():
            for p, v in zip(model.parameters(), (params.conv_w, params.conv_b, params.fc_w, params.fc_b)):
                p.copy_(torch.from_numpy(np.asarray(v, dtype=np.float64)))
    return model


def train(data: Data) -> tuple[Params, float, float]:
    """Full-batch Adam from torch's seeded default initialisation; the weights, wall and CPU seconds taken.

    One thread, because a multi-threaded reduction may sum in another order and change the last bits;
    the caller's random state and thread count are restored (the tests call this in-process).
    """
    import torch
    import torch.nn.functional as F

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            wall, cpu = time.perf_counter(), time.process_time()
            model = torch_model()
            x = torch.from_numpy(data.images[data.train][:, None])
            y = torch.from_numpy(data.labels[data.train])
            opt = torch.optim.Adam(model.parameters(), lr=LR)
            for _ in range(EPOCHS):
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        torch.set_num_threads(threads)
    w = [p.detach().numpy().copy() for p in model.parameters()]
    return Params(*w), wall, cpu


def rounded(params: Params) -> Params:
    """The weights rounded to DECIMALS places, as the spreadsheet holds them (no -0.0)."""
    return Params(*(np.round(v, DECIMALS) + 0.0 for v in (params.conv_w, params.conv_b, params.fc_w, params.fc_b)))


def numpy_logits(params: Params, images: np.ndarray) -> np.ndarray:
    """The forward pass in NumPy float64: (N, 8, 8) images to (N, 10) logits."""
    n = len(images)
    k = params.conv_w[:, 0]  # (4, 3, 3)
    windows = np.lib.stride_tricks.sliding_window_view(images, (3, 3), axis=(1, 2))  # (N, 6, 6, 3, 3)
    conv = np.einsum("nhwij,cij->nchw", windows, k) + params.conv_b[None, :, None, None]
    relu = np.maximum(conv, 0.0)
    pooled = relu.reshape(n, FILTERS, 3, 2, 3, 2).max(axis=(3, 5))
    flat = pooled.reshape(n, -1)
    return flat @ params.fc_w.T + params.fc_b


def torch_predictions(params: Params, images: np.ndarray) -> np.ndarray:
    """Predicted classes of (N, 8, 8) images by the torch net with these weights."""
    import torch

    with torch.no_grad():
        return torch_model(params)(torch.from_numpy(images[:, None])).argmax(dim=1).numpy()


def pick_examples(data: Data) -> np.ndarray:
    """Dataset indices of PER_CLASS held-out digits per class, ordered 0-9, 0-9, ...

    The first test digits of each class in the split's order, skipping any whose pixels also occur in the
    training split, so that every shipped example is one the net never saw.
    """
    seen = {data.images[i].tobytes() for i in data.train}
    chosen: dict[int, list[int]] = {c: [] for c in range(10)}
    for i in data.test:
        c = int(data.labels[i])
        if len(chosen[c]) < PER_CLASS and data.images[i].tobytes() not in seen:
            chosen[c].append(int(i))
    return np.array([chosen[c][k] for k in range(PER_CLASS) for c in range(10)])


def cross_entropy(params: Params, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-digit cross-entropy in NumPy float64, through a max-shifted log-softmax."""
    z = numpy_logits(params, images)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(labels)), labels]


def first_pick(params: Params, data: Data, examples: np.ndarray) -> int:
    """The shipped example the sheet opens on: the correctly classified one the net is least sure of.

    A confident digit has a loss of 0.0000 to four places, and one SGD step would show no drop; an unsure
    but right one shows the probabilities split and the loss falling after the step.
    """
    images, labels = data.images[examples], data.labels[examples]
    losses = cross_entropy(params, images, labels)
    right = numpy_logits(params, images).argmax(axis=1) == labels
    return int(np.argmax(np.where(right, losses, -np.inf)))


def sgd_lowers_loss(params: Params, image: np.ndarray, label: int) -> tuple[float, float]:
    """Cross-entropy of one digit before and after one SGD step of SGD_LR on it (torch autograd)."""
    import torch
    import torch.nn.functional as F

    model = torch_model(params)
    x, y = torch.from_numpy(image[None, None]), torch.tensor([label])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= SGD_LR * p.grad
        after = F.cross_entropy(model(x), y)
    return loss.item(), after.item()


def num(x: float) -> str:
    """A number as the spec writes it: at most DECIMALS places, shortest form, integers bare, never -0."""
    r = round(float(x), DECIMALS) + 0.0
    return str(int(r)) if r.is_integer() else repr(r)


def row(values: Iterable[Any]) -> str:
    """One grid row or list on one line, so that a re-trained file diffs row by row."""
    return "[" + ", ".join(num(v) for v in values) + "]"


def matrix(values: np.ndarray, indent: str = "  ") -> str:
    """A 2-D array as a multi-line TOML array, one row a line."""
    return "[\n" + "".join(f"{indent}{row(r)},\n" for r in values) + indent[:-2] + "]"


def _a(digit: int) -> str:
    return f"{'an' if digit == 8 else 'a'} {digit}"


def render(data: Data, params: Params, correct: int, examples: np.ndarray, pick: int) -> str:
    """The spec text: the rounded weights, the picked example as the image, all examples, the accuracy."""
    total = len(data.test)
    pct = f"{100 * correct / total:.1f}%"
    first = examples[pick]
    shown = numpy_logits(params, data.images[examples]).argmax(axis=1)
    wrong = [f"shipped digit {k} is {_a(data.labels[i])} the net reads as {_a(shown[k])}"
             for k, i in enumerate(examples) if shown[k] != data.labels[i]]
    shipped_note = (f"{len(examples) - len(wrong)} of the {len(examples)} shipped test digits are classified "
                    "correctly" + (f" ({'; '.join(wrong)})" if wrong else "") + ". ")
    lines = [
        f"# Generated by tools/train_tiny_cnn.py (seed {SEED}, {EPOCHS} epochs of full-batch Adam, lr {LR}); "
        "do not edit by hand: re-run the script.",
        "# Data: scikit-learn's copy of the UCI ML hand-written digits (8x8), CC BY 4.0, Alpaydin & Kaynak.",
        f"# Split: train_test_split(test_size={TEST_SIZE}, random_state={SPLIT_SEED}, stratify=labels): "
        f"{len(data.train)} training, {total} test digits.",
        'title = "A tiny CNN on an 8x8 handwritten digit: conv, ReLU, max pool, dense, softmax, loss, gradients '
        'and one SGD step"',
        'sheet = "Tiny CNN"',
        'note = """A whole CNN, small enough to follow by hand. The "features" section: four trained 3x3 filters '
        "slide over the 8x8 digit (Conv2d(1, 4, kernel_size=3), no padding) and give four 6x6 feature maps; "
        "ReLU keeps the positive part; 2x2 max pooling (MaxPool2d(2)) keeps the largest value of each 2x2 block, "
        "leaving four 3x3 maps. The \"classifier\" section: flatten turns the pooled maps into 36 numbers (channel, row, "
        "column, as torch.flatten), a fully connected layer (Linear(36, 10)) gives one score (logit) per digit "
        "0-9, and softmax turns the scores into probabilities; the largest is the predicted digit. The "
        "cross-entropy loss is -ln(probability of the true digit). Trained with torch on "
        f"{len(data.train)} digits; test accuracy {pct} ({correct} of {total} held-out digits), measured with "
        f"the weights rounded to {DECIMALS} decimals as they are here. Data: scikit-learn's copy of the UCI ML "
        "hand-written digits (Alpaydin & Kaynak, CC BY 4.0), pixel values 0-16 divided by 16. Type pixels or "
        f"pick one of the {len(examples)} shipped test digits (two of each digit, in the order 0-9, 0-9) and "
        f"watch the probabilities and the predicted digit change. {shipped_note}The sheet opens on shipped digit "
        f"{pick}, {_a(data.labels[first])} the net gets right but is unsure of, so that one SGD step visibly lowers "
        "its loss.\"\"\"",
        "",
        "[grids.image]",
        'label = "8 x 8 digit"',
        f"values = {matrix(data.images[first])}",
    ]
    for c in range(FILTERS):
        lines += ["", f"[grids.filter{c + 1}]", f'label = "Filter {c + 1}"',
                  f"values = [{', '.join(row(r) for r in params.conv_w[c, 0])}]"]
    lines += ["", "[grids.fc]", f'label = "Dense weights (10 x {FILTERS * 9})"', f"values = {matrix(params.fc_w)}"]
    lines += [
        "",
        "[[conv]]",
        'name = "conv1"',
        'label = "Feature maps (Conv2d(1, 4, kernel_size=3))"',
        'input = "image"',
        f"weight = [{', '.join(f'{chr(34)}filter{c + 1}{chr(34)}' for c in range(FILTERS))}]",
        f"bias = {row(params.conv_b)}",
        "",
        "[[relu]]",
        'name = "relu1"',
        'label = "ReLU"',
        'input = "conv1"',
        "",
        "[[pool]]",
        'name = "pool1"',
        'label = "2x2 max pooling (MaxPool2d(2))"',
        'input = "relu1"',
        "kernel_size = 2",
        "",
        "[[flatten]]",
        'name = "flat"',
        'label = "Flatten (36)"',
        'input = "pool1"',
        "",
        "[[linear]]",
        'name = "logits"',
        'label = "Logits (Linear(36, 10))"',
        'input = "flat"',
        'weight = "fc"',
        f"bias = {row(params.fc_b)}",
        "",
        "[[softmax]]",
        'name = "probs"',
        'label = "Probabilities (softmax)"',
        'input = "logits"',
        "",
        "[[loss]]",
        'name = "loss"',
        'label = "Cross-entropy loss"',
        'input = "logits"',
        'kind = "cross_entropy"',
        f"target = {int(data.labels[first])}",
        "",
        "[gradients]",
        f"wrt = [{', '.join(f'{chr(34)}filter{c + 1}{chr(34)}' for c in range(FILTERS))}, \"fc\"]",
        "",
        "[sgd]",
        f"lr = {SGD_LR}",
        "",
        "[examples]",
        'grid = "image"',
        f"labels = {row(data.labels[examples])}",
        "values = [\n" + "".join(f"  {matrix(data.images[i], '    ')},\n" for i in examples) + "]",
        f"pick = {pick}",
    ]
    return "\n".join(lines) + "\n"


def generate() -> tuple[str, dict[str, Any]]:
    """Train, round, measure and render; returns the spec text and the figures measured."""
    data = load_data()
    trained, seconds, cpu = train(data)
    params = rounded(trained)
    test_x, test_y = data.images[data.test], data.labels[data.test]
    np_pred = numpy_logits(params, test_x).argmax(axis=1)
    torch_pred = torch_predictions(params, test_x)
    if not np.array_equal(np_pred, torch_pred):
        raise SystemExit("NumPy and torch disagree on the rounded net's predictions")
    correct = int((np_pred == test_y).sum())
    examples = pick_examples(data)
    pick = first_pick(params, data, examples)
    before, after = sgd_lowers_loss(params, data.images[examples[pick]], int(data.labels[examples[pick]]))
    if not after < before:
        raise SystemExit(f"one SGD step of lr {SGD_LR} does not lower the picked example's loss ({before} -> {after})")
    stats = {"seconds": seconds, "cpu_seconds": cpu, "correct": correct, "total": len(test_y),
             "train_total": len(data.train), "train_correct": int((numpy_logits(params, data.images[data.train]).argmax(1)
                                   == data.labels[data.train]).sum()),
             "loss_before": before, "loss_after": after}
    return render(data, params, correct, examples, pick), stats


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with --check, compare) the tiny-cnn-digits spec; 0 on success, 1 if --check finds a change."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="spec file to write (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 if the file would change")
    args = ap.parse_args(argv)
    text, stats = generate()
    print(f"trained in {stats['seconds']:.2f} s ({stats['cpu_seconds']:.2f} s of CPU); "
          f"test accuracy {stats['correct']}/{stats['total']} ({100 * stats['correct'] / stats['total']:.1f}%), "
          f"training {stats['train_correct']}/{stats['train_total']}; "
          f"picked example's loss {stats['loss_before']:.4f} -> {stats['loss_after']:.4f} after one SGD step",
          file=sys.stderr)
    new = text.encode("utf-8")  # bytes, so that no platform turns the newlines into CRLF
    old = args.output.read_bytes() if args.output.exists() else None
    if args.check:
        if old != new:
            print(f"{args.output} is out of date: re-run tools/train_tiny_cnn.py", file=sys.stderr)
            return 1
        return 0
    if old != new:
        args.output.write_bytes(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
