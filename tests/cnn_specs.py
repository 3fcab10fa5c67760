"""Test helper: tiny-CNN spec texts in the shipped tiny-cnn-digits format, with seeded random numbers (never the
trained file's), for the builder, verify and the engines."""

import numpy as np


def _rows(a, digits=4):
    return "[" + ", ".join("[" + ", ".join(f"{float(v):.{digits}g}" for v in row) + "]" for row in a) + "]"


def digits_spec(seed=0, n_examples=6, pick=0, size=8, filters=4, kernel=3, pool=2, classes=10, lr=0.5,
                integer=False):
    """A spec text like the shipped one: image, filters, dense weights, conv/relu/pool/flatten/linear/softmax/loss,
    [gradients], [sgd] and [examples]; integer=True draws small integers (so pooling windows tie)."""
    rng = np.random.default_rng(seed)
    draw = (lambda *s: rng.integers(-2, 3, size=s).astype(float)) if integer else (lambda *s: rng.normal(0, 0.5, s))
    examples = rng.integers(0, 3, size=(n_examples, size, size)) / 2 if integer else \
        np.round(rng.random((n_examples, size, size)), 4)
    labels = [int(x) for x in rng.integers(0, classes, n_examples)]
    out = (size - kernel + 1) // pool
    flat = filters * out * out
    parts = ['title = "Tiny CNN test"', 'sheet = "Tiny CNN"',
             'note = """A tiny CNN for tests. Test accuracy: 90% on 6 held-out digits."""',
             "[grids.image]", 'label = "8 x 8 digit"', f"values = {_rows(examples[pick])}"]
    for k in range(filters):
        parts += [f"[grids.filter{k + 1}]", f'label = "Filter {k + 1}"', f"values = {_rows(draw(kernel, kernel))}"]
    parts += ["[grids.fc]", f'label = "Dense weights ({classes} x {flat})"',
              f"values = {_rows(draw(classes, flat) / (1 if integer else 3))}"]
    bias = ", ".join(f"{v:.3g}" for v in draw(filters))
    fbias = ", ".join(f"{v:.3g}" for v in draw(classes))
    parts += ["[[conv]]", 'name = "conv1"', 'input = "image"',
              "weight = [" + ", ".join(f'"filter{k + 1}"' for k in range(filters)) + "]", f"bias = [{bias}]",
              "[[relu]]", 'name = "relu1"', 'input = "conv1"',
              "[[pool]]", 'name = "pool1"', 'input = "relu1"', f"kernel_size = {pool}",
              "[[flatten]]", 'name = "flat"', 'input = "pool1"',
              "[[linear]]", 'name = "logits"', 'input = "flat"', 'weight = "fc"', f"bias = [{fbias}]",
              "[[softmax]]", 'name = "probs"', 'input = "logits"',
              "[[loss]]", 'name = "loss"', 'input = "logits"', 'kind = "cross_entropy"', f"target = {labels[pick]}",
              "[gradients]", "wrt = [" + ", ".join(f'"filter{k + 1}"' for k in range(filters)) + ', "fc"]',
              "[sgd]", f"lr = {lr}",
              "[examples]", 'grid = "image"', f"labels = {labels}",
              "values = [" + ", ".join(_rows(e) for e in examples) + "]", f"pick = {pick}"]
    return "\n".join(parts) + "\n"
