"""The shipped tiny-cnn-digits spec: its script re-trains it byte for byte, and what its note claims is true.

The oracles are independent of the script: scikit-learn's digits and split are rebuilt here, torch runs the
net built from the TOML's numbers, and a loop-by-loop NumPy forward pass checks torch on the shipped digits.
"""

import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn ships the 8x8 digits the tiny CNN trains on: "
                                      "pip install scikit-learn (it is in the test extras)")
torch = pytest.importorskip("torch")
F = pytest.importorskip("torch.nn.functional")

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "train_tiny_cnn.py"
SHIPPED = ROOT / "xlconv" / "worksheets" / "tiny-cnn-digits.toml"
FILTERS = ["filter1", "filter2", "filter3", "filter4"]


def load_script():
    """The training script as a module, so that re-running it does not pay for importing torch again."""
    spec = importlib.util.spec_from_file_location("train_tiny_cnn", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def spec():
    return tomllib.loads(SHIPPED.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def digits():
    """Images / 16, labels, and the split the spec's header states, rebuilt here."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images, labels = d.images / 16.0, d.target
    train, test = train_test_split(np.arange(len(labels)), test_size=0.2, random_state=0, stratify=labels)
    return images, labels, np.sort(train), np.sort(test)


def weights(spec):
    """The net's parameters as the spreadsheet holds them, laid out as torch's."""
    ops = {k: spec[k][0] for k in ("conv", "linear")}
    conv_w = np.array([spec["grids"][g]["values"] for g in ops["conv"]["weight"]], dtype=np.float64)[:, None]
    return (conv_w, np.array(ops["conv"]["bias"], dtype=np.float64),
            np.array(spec["grids"][ops["linear"]["weight"]]["values"], dtype=np.float64),
            np.array(ops["linear"]["bias"], dtype=np.float64))


def torch_net(spec):
    conv_w, conv_b, fc_w, fc_b = weights(spec)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, kernel_size=3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(36, 10)).double()
    with torch.no_grad():
        for p, v in zip(net.parameters(), (conv_w, conv_b, fc_w, fc_b)):
            assert p.shape == v.shape
            p.copy_(torch.from_numpy(v))
    return net


def numpy_forward(spec, image):
    """Logits, probabilities and cross-entropy parts by plain loops: conv, ReLU, 2x2 max pool, flatten, linear."""
    conv_w, conv_b, fc_w, fc_b = weights(spec)
    fmap = np.zeros((4, 6, 6))
    for c in range(4):
        for i in range(6):
            for j in range(6):
                fmap[c, i, j] = np.sum(image[i:i + 3, j:j + 3] * conv_w[c, 0]) + conv_b[c]
    fmap = np.maximum(fmap, 0)
    pooled = np.array([[[fmap[c, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max() for j in range(3)] for i in range(3)]
                       for c in range(4)])
    logits = fc_w @ pooled.reshape(36) + fc_b
    e = np.exp(logits - logits.max())
    return logits, e / e.sum()


def test_the_script_regenerates_the_shipped_spec_byte_for_byte(tmp_path, capsys):
    script = load_script()
    out = tmp_path / "tiny.toml"
    assert script.main(["--output", str(out)]) == 0
    assert out.read_bytes() == SHIPPED.read_bytes(), "re-run tools/train_tiny_cnn.py, or it is not deterministic"
    seconds = float(re.search(r"trained in ([\d.]+) s \(([\d.]+) s of CPU\)", capsys.readouterr().err)[2])
    assert seconds < 10, f"training took {seconds:.1f} s of CPU; the issue asks for seconds"
    out.write_text(out.read_text(encoding="utf-8").replace("lr = ", "lr = 1"), encoding="utf-8")
    assert script.main(["--output", str(out), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err


def test_the_spec_wires_the_net_as_the_script_trained_it(spec):
    assert spec["conv"][0]["input"] == "image" and spec["conv"][0]["weight"] == FILTERS
    assert [spec[k][0]["input"] for k in ("relu", "pool", "flatten", "linear", "softmax", "loss")] == \
        ["conv1", "relu1", "pool1", "flat", "logits", "logits"]
    assert spec["pool"][0]["kernel_size"] == 2 and spec["loss"][0]["kind"] == "cross_entropy"
    assert spec["gradients"]["wrt"] == [*FILTERS, "fc"]
    for w in weights(spec):
        assert np.array_equal(np.round(w, 4), w), "the weights hold at most 4 decimals, as the sheet does"
    ex = spec["examples"]
    pick = ex["pick"]
    assert ex["grid"] == "image" and spec["grids"]["image"]["values"] == ex["values"][pick]
    assert spec["loss"][0]["target"] == ex["labels"][pick]


def test_the_stated_test_accuracy_is_what_torch_measures(spec, digits):
    images, labels, train, test = digits
    assert "train_test_split(test_size=0.2, random_state=0, stratify=labels)" in SHIPPED.read_text().split("\n")[2]
    with torch.no_grad():
        predicted = torch_net(spec)(torch.from_numpy(images[test][:, None])).argmax(dim=1).numpy()
    correct = int((predicted == labels[test]).sum())
    m = re.search(r"test accuracy (\d+\.\d)% \((\d+) of (\d+) held-out digits\)", spec["note"])
    assert m, "the note states the test accuracy"
    assert (m[1], int(m[2]), int(m[3])) == (f"{100 * correct / len(test):.1f}", correct, len(test))
    assert correct / len(test) >= 0.9


def test_the_shipped_examples_are_held_out_digits_with_their_labels(spec, digits):
    images, labels, train, test = digits
    ex = spec["examples"]
    assert sorted(ex["labels"]) == sorted(list(range(10)) * 2)
    in_train = set(train.tolist())
    for k, (grid, label) in enumerate(zip(ex["values"], ex["labels"])):
        grid = np.array(grid, dtype=np.float64)
        assert np.array_equal(grid * 16, np.round(grid * 16)), f"example {k}: pixels are k/16"
        same = np.flatnonzero((images == grid).all(axis=(1, 2)))
        assert len(same), f"example {k} is not one of scikit-learn's digits"
        assert not in_train.intersection(same.tolist()), f"example {k} is a training digit"
        assert set(labels[same].tolist()) == {label}, f"example {k} is labelled {label}"


def test_the_note_says_which_shipped_digits_the_net_gets_right(spec):
    ex = spec["examples"]
    with torch.no_grad():
        predicted = torch_net(spec)(torch.tensor(ex["values"], dtype=torch.float64)[:, None]).argmax(dim=1)
    right = int((predicted.numpy() == np.array(ex["labels"])).sum())
    assert f"{right} of the {len(ex['labels'])} shipped test digits are classified correctly" in spec["note"]


def test_numpy_forward_of_every_shipped_digit_matches_torch(spec):
    net = torch_net(spec)
    ex = spec["examples"]
    for k, (grid, label) in enumerate(zip(ex["values"], ex["labels"])):
        image = np.array(grid, dtype=np.float64)
        logits, probs = numpy_forward(spec, image)
        with torch.no_grad():
            t_logits = net(torch.from_numpy(image)[None, None])
            t_loss = F.cross_entropy(t_logits, torch.tensor([label])).item()
        np.testing.assert_allclose(logits, t_logits[0].numpy(), rtol=1e-12, atol=1e-12, err_msg=f"example {k}")
        np.testing.assert_allclose(probs, F.softmax(t_logits, dim=1)[0].numpy(), rtol=1e-12, atol=1e-15)
        assert -np.log(probs[label]) == pytest.approx(t_loss, rel=1e-9, abs=1e-12)


def test_one_sgd_step_lowers_the_picked_digits_loss(spec):
    ex = spec["examples"]
    net = torch_net(spec)
    x = torch.tensor(ex["values"][ex["pick"]], dtype=torch.float64)[None, None]
    y = torch.tensor([spec["loss"][0]["target"]])
    before = F.cross_entropy(net(x), y)
    before.backward()
    with torch.no_grad():
        for p in net.parameters():
            p -= spec["sgd"]["lr"] * p.grad
        after = F.cross_entropy(net(x), y)
    assert before.item() > 0.1, "the sheet opens on a digit whose loss shows"
    assert after.item() < before.item() / 2
