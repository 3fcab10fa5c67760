"""The AlexNet conv1 workbook: built from random, state_dict and (offline) torch-cache weights, recalculated by
LibreOffice, and compared with torch: conv1, ReLU and max pool cell by cell, the pre-processing (live from the
photo's pixels), the trace and its highlights, the shapes; and what users see: the contents sheet and its links,
notes, page set-up, zoom, the photo's cells, no machine paths. The expected values are computed here with torch
and torchvision directly, not with xlconv."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import urllib.error
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from defusedxml import ElementTree
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from PIL import Image
from torchvision import transforms

from xlconv import cli, torchnet
from xlconv.build import alexnet_workbook, build, build_all
from xlconv.engine import recalculate
from xlconv.errors import PretrainedUnavailable, SpecError, WeightsError
from xlconv.formulas import ALLOWED_FUNCTIONS
from xlconv.model import AlexNetSpec
from xlconv.cells import parse_a1, parse_range
from xlconv.spec import channels_text, check_channels, loads, parse_channels
from xlconv.verify import check, read_records

SHEETS = ["Contents", "Preprocess", "Filters", "conv1", "Trace", "Shapes", "Predictions"]
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
      "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships"}
TOL = 1e-4
GRACE = torchnet.image_path(None)


# -- independent references ---------------------------------------------------------------------------


def lecture_tensor(image: Path = GRACE, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> torch.Tensor:
    """The lecture's transformer, written out again here."""
    transformer = transforms.Compose([transforms.Resize(224), transforms.CenterCrop(224), transforms.ToTensor(),
                                      transforms.Normalize(mean=list(mean), std=list(std))])
    return transformer(Image.open(image).convert("RGB"))


def seeded_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torchvision.models.alexnet(weights=None).eval()


def from_pixels(pixels: np.ndarray, mean, std) -> torch.Tensor:
    """ToTensor() then Normalize() of (H, W, 3) 0-255 pixels, as torchvision computes them."""
    x = transforms.functional.to_tensor(Image.fromarray(pixels.astype(np.uint8)))
    return transforms.functional.normalize(x, list(mean), list(std))


def features(model, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """conv1, ReLU and max pool: model.features[0], [0:2], [0:3] (fresh calls: ReLU is in-place)."""
    with torch.no_grad():
        return tuple(model.features[0:n](x[None].clone())[0].double().numpy() for n in (1, 2, 3))


# -- reading workbooks ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def sheet_rows(path: Path, sheet: str) -> list[tuple]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = load_workbook(path, read_only=True, data_only=True)
    try:
        return list(wb[sheet].iter_rows(values_only=True))
    finally:
        wb.close()


def block(rows: list[tuple], grids) -> np.ndarray:
    """(C, H, W) floats of a recorded block's grids."""
    out = []
    for g in grids:
        out.append([[_num(rows[r][c]) if c < len(rows[r]) else np.nan for c in range(g.left, g.right + 1)]
                    for r in range(g.top, g.bottom + 1)])
    return np.array(out, dtype=np.float64)


def _num(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan


def cell_fills(path: Path, sheet: str) -> dict[str, str]:
    """RRGGBB fill of every styled cell of one sheet, read from the XML (openpyxl would load every sheet)."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(path) as z:
        styles = ElementTree.fromstring(z.read("xl/styles.xml"))
        sheet_xml = ElementTree.fromstring(z.read(f"xl/worksheets/sheet{SHEETS.index(sheet) + 1}.xml"))
    fills = []
    for fill in styles.find("m:fills", ns):
        fg = fill.find("m:patternFill/m:fgColor", ns)
        fills.append(fg.get("rgb", "")[-6:] if fg is not None else "")
    xfs = [int(x.get("fillId", 0)) for x in styles.find("m:cellXfs", ns)]
    return {c.get("r"): fills[xfs[int(c.get("s", 0))]] for c in sheet_xml.iter(f"{{{ns['m']}}}c")}


def records(path: Path) -> dict:
    return {r.name: r for r in read_records(path)[0]}


def titles(path: Path) -> dict[str, str]:
    """The title cell (B1) of every sheet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = load_workbook(path, read_only=True, data_only=True)
    try:
        return {sheet: next(wb[sheet].iter_rows(max_row=1, values_only=True))[1] for sheet in SHEETS}
    finally:
        wb.close()


def with_values(src: Path, dst: Path, sheet: str, values: dict[str, float]) -> Path:
    """A copy of an xlconv workbook with some typed numbers of one sheet changed (XlsxWriter's sheetN order)."""
    member = f"xl/worksheets/sheet{SHEETS.index(sheet) + 1}.xml"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == member:
                text = data.decode()
                for ref, v in values.items():
                    text, n = re.subn(rf'(<c r="{ref}"[^>]*><v>)[^<]*(</v>)', rf"\g<1>{v}\g<2>", text)
                    assert n == 1, ref
                data = text.encode()
            zout.writestr(info, data)
    return dst


def assert_maps_match(path: Path, model, x: torch.Tensor, channels):
    """Every conv1, ReLU and pool cell of a recalculated workbook within 1e-4 of torch."""
    recs = records(path)
    rows = sheet_rows(path, "conv1")
    expected = dict(zip(("conv1", "relu1", "pool1"), features(model, x)))
    for name in ("conv1", "relu1", "pool1"):
        got = block(rows, recs[name].grids)
        exp = expected[name][list(channels)]
        assert got.shape == exp.shape, name
        assert not np.isnan(got).any(), f"{name}: a cell is not a number"
        diff = np.abs(got - exp).max()
        assert diff <= TOL, f"{name}: largest difference {diff}"


# -- fixtures -------------------------------------------------------------------------------------------

SEED = 7
CHANNELS = "0,5,63"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Three small workbooks: --weights random --seed, a state_dict file, and the torchvision cache path."""
    tmp = tmp_path_factory.mktemp("alexnet")
    out = {}
    out["random"] = alexnet_workbook(tmp / "random.xlsx", weights="random", seed=SEED, channels=CHANNELS)
    sd = tmp / "seed11.pth"
    torch.save(seeded_model(11).state_dict(), sd)
    out["file"] = alexnet_workbook(tmp / "file.xlsx", weights=str(sd), channels="1-2")
    home = tmp / "torch-home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(seeded_model(13).state_dict(), home / "hub" / "checkpoints" / torchnet.CHECKPOINT)
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(home))
    try:
        out["cache"] = alexnet_workbook(tmp / "cache.xlsx", weights="pretrained", channels="3")
    finally:
        mp.undo()
    out["home"] = home
    return out


@pytest.fixture(scope="module")
def recalculated(built, tmp_path_factory):
    """The three workbooks after LibreOffice (tests using this are marked libreoffice: skip or fail there)."""
    keys = ["random", "file", "cache"]
    outs = recalculate([built[k] for k in keys], tmp_path_factory.mktemp("recalc"), timeout=600)
    return dict(zip(keys, outs))


# -- unit tests -----------------------------------------------------------------------------------------


def test_parse_channels():
    filters = torchvision.models.alexnet(weights=None).features[0].out_channels  # 64
    assert parse_channels(None) is None and check_channels(None, filters) == tuple(range(64))
    assert check_channels(parse_channels("0-63"), filters) == tuple(range(64))
    assert parse_channels("9-11, 0,5,5") == (0, 5, 9, 10, 11)
    assert parse_channels([3, 1]) == (1, 3)
    assert channels_text((0, 1, 2, 5, 7, 8)) == "0-2,5,7-8"
    for bad in ("64", "3-1", "a", "", "1-", [True], []):
        with pytest.raises(SpecError):
            check_channels(parse_channels(bad), filters)


def test_preprocessing_is_torchvisions():
    photo = torchnet.preprocess(None, "lecture")
    assert np.array_equal(photo.tensor, lecture_tensor().numpy())
    assert photo.original_size == (512, 600)
    assert photo.resized_size == (224, 262)
    assert photo.crop_box == (0, 19, 224, 243)
    # ToTensor/Normalize of the stored crop pixels gives the tensor again.
    again = (photo.pixels.transpose(2, 0, 1).astype(np.float32) / 255 - 0.5) / 0.5
    assert np.abs(again - photo.tensor).max() < 1e-6
    imagenet = torchnet.preprocess(None, "imagenet")
    t = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.transforms()
    assert imagenet.mean == tuple(t.mean) and imagenet.std == tuple(t.std)
    assert np.array_equal(imagenet.tensor, lecture_tensor(GRACE, t.mean, t.std).numpy())


def test_layer_shapes_are_the_forward_hooks_shapes():
    model = seeded_model(0)
    x = lecture_tensor()[None]
    shapes = torchnet.layer_shapes(model, x)
    names = [s.name for s in shapes]
    assert names == [f"features.{i}" for i in range(13)] + ["avgpool", "flatten"] + \
        [f"classifier.{i}" for i in range(7)]
    by = {s.name: s for s in shapes}
    assert by["features.0"].out_shape == (64, 55, 55) and by["features.0"].n_params == 64 * 3 * 11 * 11 + 64 == 23296
    assert by["features.2"].out_shape == (64, 27, 27)
    assert by["features.6"].out_shape == (384, 13, 13)
    assert by["features.8"].kind == "conv" and by["features.7"].kind == "relu"
    assert by["flatten"].out_shape == (9216,)
    assert sum(s.n_params for s in shapes) == sum(p.numel() for p in model.parameters()) == 61100840


def test_spec_parsing(tmp_path):
    spec = loads('kind = "alexnet"\nweights = "random"\nseed = 3\nchannels = [1, 2]\nnormalize = "imagenet"\n',
                 str(tmp_path / "a.toml"), tmp_path)
    assert isinstance(spec, AlexNetSpec)
    assert (spec.weights, spec.seed, spec.channels, spec.normalize, spec.image) == ("random", 3, (1, 2), "imagenet",
                                                                                  None)
    spec = loads('kind = "alexnet"\nweights = "w.pth"\nimage = "cat.png"\n', str(tmp_path / "b.toml"), tmp_path)
    assert spec.weights == str(tmp_path / "w.pth") and spec.image == str(tmp_path / "cat.png")
    for text, field in (('kind = "alexnet"\nchanels = "0-3"\n', "chanels"),
                        ('kind = "alexnet"\nnormalize = "zscore"\n', "normalize"),
                        ('kind = "alexnet"\nseed = -1\n', "seed"),
                        ('kind = "alexnet"\nchannels = "3-1"\n', "channels"),
                        ('kind = "alexnet"\nsheet = "x"\n', "sheet")):
        with pytest.raises(SpecError) as e:
            loads(text, "ws/x.toml", tmp_path)
        msg = str(e.value)
        assert msg.startswith("ws/x.toml") and field in msg and "\n" not in msg
    # A channel past conv1's 64 filters is known once the model is loaded: the same one-line error, no file.
    spec = loads('kind = "alexnet"\nweights = "random"\nchannels = "0-99"\n', "ws/x.toml", tmp_path)
    with pytest.raises(SpecError) as e:
        build(spec, tmp_path / "out")
    msg = str(e.value)
    assert msg.startswith("ws/x.toml") and "channels" in msg and "99" in msg and "\n" not in msg
    assert not (tmp_path / "out" / "x.xlsx").exists()


def test_shipped_spec_is_the_default_workbook():
    from xlconv import spec as specs

    s = specs.load("alexnet-conv1")
    assert (s.weights, s.seed, s.normalize, s.channels, s.image) == ("pretrained", 0, "lecture", tuple(range(64)),
                                                                     None)


def test_building_toy_worksheets_never_imports_torch(tmp_path):
    code = ("import sys, xlconv.cli\n"
            "from xlconv.build import build_all\n"
            "from xlconv import spec\n"
            "assert 'torch' not in sys.modules, 'import xlconv.cli imported torch'\n"
            "names = [n for n in spec.builtin_names() if spec.load(n).kind != 'alexnet']\n"
            "assert len(names) >= 5\n"
            f"build_all(names, {str(tmp_path)!r})\n"
            "assert 'torch' not in sys.modules, 'building the toy worksheets imported torch'\n"
            "assert 'torchvision' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
    assert len(list(tmp_path.glob("*.xlsx"))) >= 5


# -- weights loading -------------------------------------------------------------------------------------


def _offline(monkeypatch, home: Path):
    """Nothing cached in TORCH_HOME, and any download fails at once as it does without internet."""
    monkeypatch.setenv("TORCH_HOME", str(home))

    def no_network(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network (test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


def test_pretrained_offline_nothing_cached_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    _offline(monkeypatch, tmp_path / "empty-torch-home")
    out = tmp_path / "out" / "a.xlsx"
    status = cli.main(["alexnet", "--channels", "0", "-o", str(out)])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    expected = tmp_path / "empty-torch-home" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert str(expected) in lines[0] and "Traceback" not in captured.err
    assert not out.exists() and not list((tmp_path / "out").glob("*"))
    with pytest.raises(PretrainedUnavailable):
        torchnet.load_model("pretrained")


def test_xlconv_build_falls_back_to_untrained_and_builds_the_others(tmp_path, monkeypatch, capsys):
    _offline(monkeypatch, tmp_path / "empty-torch-home")
    spec = tmp_path / "alexnet-small.toml"
    spec.write_text('kind = "alexnet"\nchannels = "0"\nseed = 2\n')
    toy = Path(__file__).parent.parent / "xlconv" / "worksheets" / "lee-6x6.toml"
    paths = build_all([toy, spec], tmp_path / "build")
    err = capsys.readouterr().err
    assert [p.name for p in paths] == ["lee-6x6.xlsx", "alexnet-small.xlsx"]
    assert all(p.exists() for p in paths)
    warning = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warning) == 1 and "alexnet-owt-7be5be79.pth" in warning[0] and "UNTRAINED" in warning[0]
    assert all("UNTRAINED" in t for t in titles(paths[1]).values())


def test_bad_state_dict_files_are_one_line_errors(tmp_path, capsys):
    garbage = tmp_path / "garbage.pth"
    garbage.write_text("not a checkpoint")
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2)}, other)
    for path in (garbage, other, tmp_path / "missing.pth"):
        out = tmp_path / f"{path.stem}.xlsx"
        assert cli.main(["alexnet", "--weights", str(path), "--channels", "0", "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and str(path.name) in err
        assert not out.exists()
    with pytest.raises(WeightsError):
        torchnet.load_model(str(other))


def test_unreadable_image_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    out = tmp_path / "x.xlsx"
    assert cli.main(["alexnet", "--weights", "random", "--image", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "notes.jpg" in err and not out.exists()


def test_cli_prints_the_path(tmp_path, capsys):
    out = tmp_path / "cli.xlsx"
    photo = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((300, 400, 3)) * 255).astype(np.uint8)).save(photo)
    assert cli.main(["alexnet", "--weights", "random", "--seed", "1", "--channels", "2", "--image", str(photo),
                     "--normalize", "imagenet", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    recs = records(out)
    rows = sheet_rows(out, "conv1")
    got = block(rows, recs["conv1_input"].grids)
    t = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.transforms()
    expected = np.pad(lecture_tensor(photo, t.mean, t.std).numpy(), ((0, 0), (2, 2), (2, 2)))
    # The cached values are what the cells' formula computes in float64, (pixel/255 - mean)/std; torch's
    # transforms compute it in float32, so they agree to float32's precision.
    np.testing.assert_allclose(got, expected, rtol=0, atol=4 * np.finfo(np.float32).eps)
    raw = block(sheet_rows(out, "Preprocess"), recs["pre_raw"].grids)
    std = block(sheet_rows(out, "Preprocess"), recs["pre_std"].grids)
    mean_typed = block(sheet_rows(out, "Preprocess"), recs["pre_mean"].grids)
    assert np.array_equal(got[:, 2:-2, 2:-2], (raw / 255 - mean_typed) / std)
    mean = block(sheet_rows(out, "Preprocess"), recs["pre_mean"].grids).ravel()
    assert np.allclose(mean, t.mean)


# -- the built workbooks ----------------------------------------------------------------------------------


def test_titles_say_untrained_only_for_random_weights(built):
    assert all(t.startswith("UNTRAINED") for t in titles(built["random"]).values())
    for key in ("file", "cache"):
        assert not any("UNTRAINED" in t for t in titles(built[key]).values())
    pre = sheet_rows(built["cache"], "Preprocess")
    note = " ".join(str(v) for row in pre[:4] for v in row if v)
    # The label comes from what the real torchvision API did: it read the file placed in the cache; the sheet
    # names the file, not the machine's path to it.
    assert "pretrained weights AlexNet_Weights.IMAGENET1K_V1" in note and torchnet.CHECKPOINT in note
    assert str(built["home"]) not in note


def test_conv1_input_is_the_lecture_transform_padded(built):
    recs = records(built["random"])
    got = block(sheet_rows(built["random"], "conv1"), recs["conv1_input"].grids)
    assert got.shape == (3, 228, 228)
    expected = np.pad(lecture_tensor().numpy(), ((0, 0), (2, 2), (2, 2)))
    # The cached values are the formula's float64 (pixel/255 - 0.5)/0.5, torchvision's float32 values to float32's
    # precision, and the ring is zero.
    np.testing.assert_allclose(got, expected, rtol=0, atol=4 * np.finfo(np.float32).eps)
    raw = block(sheet_rows(built["random"], "Preprocess"), recs["pre_raw"].grids)
    assert np.array_equal(got[:, 2:-2, 2:-2], (raw / 255 - 0.5) / 0.5)
    assert not got[:, :2].any() and not got[:, -2:].any() and not got[:, :, :2].any() and not got[:, :, -2:].any()


def test_filters_sheet_holds_the_weights_and_draws_them(built):
    recs = records(built["random"])
    rows = sheet_rows(built["random"], "Filters")
    w = seeded_model(SEED).features[0].weight.detach().numpy()
    b = seeded_model(SEED).features[0].bias.detach().numpy()
    for k in (0, 17, 63):
        assert np.array_equal(block(rows, recs[f"conv1_w{k}"].grids).astype(np.float32), w[k])
    assert np.array_equal(block(rows, recs["conv1_bias"].grids).ravel().astype(np.float32), b[[0, 5, 63]])
    # The pictures: cell fills of the lecture's w*0.5+0.5 and of the per-filter min-max.
    from xlconv.sheets.alexnet import Layout

    fills = cell_fills(built["random"], "Filters")
    geometry = torchnet.geometry(seeded_model(SEED))
    layout = Layout(torchnet.Run(None, None, (0, 5, 63), geometry, w, b, None, None, None, [], [], "", 0))
    lecture = np.clip(w.transpose(0, 2, 3, 1) * 0.5 + 0.5, 0, 1)
    lo, hi = w.min(axis=(1, 2, 3)), w.max(axis=(1, 2, 3))
    minmax = (w.transpose(0, 2, 3, 1) - lo[:, None, None, None]) / (hi - lo)[:, None, None, None]
    for k, i, j in ((0, 0, 0), (9, 5, 10), (63, 10, 3)):
        for half, pic in ((0, lecture), (1, minmax)):
            top, left = layout.pic_cell(half, k)
            rgb = fills[f"{get_column_letter(left + j + 1)}{top + i + 1}"]
            got = np.array([int(rgb[n:n + 2], 16) for n in (0, 2, 4)])
            assert np.abs(got / 255 - pic[k, i, j]).max() <= 0.5 / 15 + 1e-9, (k, i, j, half)  # 4 or 5 bits


def test_formulas_use_only_the_shared_functions(built):
    names: set[str] = set()
    with zipfile.ZipFile(built["random"]) as z:
        for n in z.namelist():
            if n.startswith("xl/worksheets/sheet"):
                for f in re.findall(r"<f>(.*?)</f>", z.read(n).decode()):
                    names.update(re.findall(r"([A-Z][A-Z0-9.]*)\(", re.sub(r'"[^"]*"', "", f)))
    assert names and names <= ALLOWED_FUNCTIONS, names - ALLOWED_FUNCTIONS


def test_cached_values_are_torchs(built):
    """Viewers that do not calculate show torch's numbers: the formulas' cached values."""
    recs = records(built["random"])
    rows = sheet_rows(built["random"], "conv1")
    conv, relu, pool = features(seeded_model(SEED), lecture_tensor())
    ch = [0, 5, 63]
    for name, exp in (("conv1", conv), ("relu1", relu), ("pool1", pool)):
        assert np.abs(block(rows, recs[name].grids) - exp[ch]).max() < 1e-5


def test_the_sheets_follow_the_models_geometry(tmp_path, monkeypatch):
    """conv1 without padding and a 3/3 pooling: every size on the sheets comes from model.features, none restated."""
    real = torchnet.load_model

    def changed(weights="pretrained", seed=0):
        model, w = real(weights, seed)
        old = model.features[0]
        conv = torch.nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=0)
        conv.load_state_dict(old.state_dict())
        model.features[0], model.features[2] = conv, torch.nn.MaxPool2d(kernel_size=3, stride=3)
        return model, w

    monkeypatch.setattr(torchnet, "load_model", changed)
    path = alexnet_workbook(tmp_path / "geo.xlsx", weights="random", seed=SEED, channels="0,63")
    model, _ = changed("random", SEED)
    recs = records(path)
    rows = sheet_rows(path, "conv1")
    assert block(rows, recs["conv1_input"].grids).shape == (3, 224, 224)  # no ring
    assert (recs["pool1"].info["kernel_size"], recs["pool1"].info["stride"]) == ([3, 3], [3, 3])
    for name, exp in zip(("conv1", "relu1", "pool1"), features(model, lecture_tensor())):
        got = block(rows, recs[name].grids)
        assert got.shape == exp[[0, 63]].shape == ((2, 54, 54) if name != "pool1" else (2, 18, 18)), name
        assert np.abs(got - exp[[0, 63]]).max() < 1e-5, name
    text = " ".join(str(v) for sheet in ("conv1", "Trace", "Shapes") for row in sheet_rows(path, sheet)[:8]
                    for v in row if isinstance(v, str))
    for needle in ("Conv2d(3, 64, kernel_size=(11, 11), stride=(4, 4), padding=(0, 0))", "= 54.25, rounded down: "
                   "54 x 54", "(54 - 3)/3 + 1 = 18", "output row y (1-54)", "channel (0-63)"):
        assert needle in text, needle


@pytest.mark.libreoffice
@pytest.mark.parametrize("key", ["random", "file", "cache"])
def test_libreoffice_maps_match_torch(recalculated, key):
    model = {"random": seeded_model(SEED), "file": seeded_model(11), "cache": seeded_model(13)}[key]
    channels = {"random": [0, 5, 63], "file": [1, 2], "cache": [3]}[key]
    assert_maps_match(recalculated[key], model, lecture_tensor(), channels)


@pytest.mark.libreoffice
def test_libreoffice_preprocess_formulas_match_torchvision(recalculated):
    """The crop's pixels are typed on Preprocess; conv1's input computes ToTensor() and Normalize() from them."""
    path = recalculated["random"]
    recs = records(path)
    photo = torchnet.preprocess(None)
    assert np.array_equal(block(sheet_rows(path, "Preprocess"), recs["pre_raw"].grids),
                          photo.pixels.transpose(2, 0, 1))
    assert np.abs(block(sheet_rows(path, "conv1"), recs["conv1_normalized"].grids)
                  - lecture_tensor().numpy()).max() < 1e-6


@pytest.mark.libreoffice
def test_libreoffice_shapes_equal_torchs(recalculated):
    path = recalculated["random"]
    model = seeded_model(SEED)
    seen = []
    named = [(f"features.{i}", m) for i, m in enumerate(model.features)] + [("avgpool", model.avgpool)] + \
        [(f"classifier.{i}", m) for i, m in enumerate(model.classifier)]
    for name, m in named:
        m.register_forward_hook(lambda mod, i, o, name=name: seen.append((name, tuple(o.shape[1:]), mod)))
    with torch.no_grad():
        model(lecture_tensor()[None])
    rows = sheet_rows(path, "Shapes")
    head = next(n for n, row in enumerate(rows) if row[1] == "layer")
    cols = {v: c for c, v in enumerate(rows[head]) if v}
    table = {row[1]: row for row in rows[head + 1:] if row[1]}
    for name, shape, mod in seen:
        row = table[name]
        got = tuple(int(row[cols[k]]) for k in ("C out", "H out", "W out")[:len(shape)])
        assert got == shape, name
        assert int(row[cols["parameters"]]) == sum(p.numel() for p in mod.parameters()), name
        assert row[cols["sheet = torch?"]] == "= torch"
    assert int(table["flatten"][cols["C out"]]) == 256 * 6 * 6 == 9216
    total = next(row for row in rows if row[2] and "total parameters" in str(row[2]))
    assert int(total[cols["parameters"]]) == sum(p.numel() for p in model.parameters())
    what_if = next(row for row in rows if row[1] == "what if")
    assert int(what_if[cols["H out"]]) == 54


@pytest.mark.libreoffice
def test_libreoffice_trace_equals_its_map_cell(built, tmp_path):
    """Pick channel 63, output (1, 55): the top-right corner, whose window covers the padding ring."""
    src = built["random"]
    rec = records(src)["conv1_trace"]
    picks = rec.info["picks"]
    edited = with_values(src, tmp_path / "trace.xlsx", "Trace",
                         {picks["channel"]: 63, picks["row"]: 1, picks["column"]: 55})
    [out] = recalculate([edited], tmp_path / "out")
    rows = sheet_rows(out, "Trace")
    v = [rows[g.top][g.left] for g in rec.grids]
    conv = features(seeded_model(SEED), lecture_tensor())[0]
    assert v[0] == 3  # channel 63 is the third map of "0,5,63"
    assert abs(v[3] - v[4]) < 1e-9 and abs(v[3] - conv[63, 0, 54]) < TOL
    text = [c for r in rows for c in r if isinstance(c, str)]
    assert "= equal" in text and "conv1_out[0, 63, 0, 54]" in text


@pytest.mark.libreoffice
def test_verify_covers_the_workbook_and_catches_a_wrong_formula(recalculated, built, tmp_path):
    report = check(recalculated["random"], built["random"])
    assert report.ok, report.lines()
    cells = {s.sheet: s.cells for s in report.sheets}
    # NumPy and torch: the normalised input, conv/ReLU/pool
    assert cells["conv1"] == 2 * (3 * 224 * 224 + 3 * 55 * 55 * 2 + 3 * 27 * 27)
    assert cells["Trace"] == 5 and cells["Shapes"] > 0
    # A conv1 formula off by one must be caught.
    bad = tmp_path / "bad.xlsx"
    with zipfile.ZipFile(built["random"]) as zin, zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if b"<f>SUMPRODUCT(" in data:
                data = data.replace(b"<f>SUMPRODUCT(", b"<f>1+SUMPRODUCT(", 1)
            zout.writestr(info, data)
    [out] = recalculate([bad], tmp_path / "out")
    report = check(out, bad)
    assert not report.ok
    conv1 = next(s for s in report.sheets if s.sheet == "conv1")
    assert conv1.mismatches >= 2 and "conv1" in conv1.failures[0]


@pytest.mark.libreoffice
def test_full_default_workbook_all_64_channels(tmp_path):
    """The default 64-channel workbook: every conv1, ReLU and pool cell after LibreOffice within 1e-4 of torch."""
    path = alexnet_workbook(tmp_path / "full.xlsx", weights="random", seed=SEED)
    [out] = recalculate([path], tmp_path / "out", timeout=600)
    assert_maps_match(out, seeded_model(SEED), lecture_tensor(), range(64))


@pytest.mark.gnumeric
def test_gnumeric_recalculates_it_too(built, tmp_path):
    [out] = recalculate([built["file"]], tmp_path, engine="gnumeric")
    report = check(out, built["file"], engine="gnumeric")
    assert report.ok, report.lines()
    assert_maps_match(out, seeded_model(11), lecture_tensor(), [1, 2])


def test_preprocess_sheet_states_sizes_and_embeds_the_crop(built):
    rows = sheet_rows(built["random"], "Preprocess")
    text = " ".join(str(v) for row in rows for v in row if isinstance(v, str))
    for needle in ("512 x 600", "224 x 262", "left 0, top 19, right 224, bottom 243", "The 224 x 224 crop",
                   "Normalize(mean=[0.5]*3, std=[0.5]*3)"):
        assert needle in text, needle
    with zipfile.ZipFile(built["random"]) as z:
        [png] = [n for n in z.namelist() if n.startswith("xl/media/")]
        picture = np.asarray(Image.open(__import__("io").BytesIO(z.read(png))).convert("RGB"))
    assert np.array_equal(picture, torchnet.preprocess(None).pixels)


# -- what users see: contents, live pixels, highlights, paths, pages, notes, screen ------------------------------


def xml(path: Path, member: str):
    with zipfile.ZipFile(path) as z:
        return ElementTree.fromstring(z.read(member))


def sheet_xml(path: Path, sheet: str):
    """A sheet's XML (XlsxWriter numbers the parts in the order the sheets were added, SHEETS's order)."""
    return xml(path, f"xl/worksheets/sheet{SHEETS.index(sheet) + 1}.xml")


def tag(name: str) -> str:
    return f"{{{NS['m']}}}{name}"


def test_contents_is_the_first_and_active_sheet_and_links_to_every_sheet(built):
    path = built["random"]
    book = xml(path, "xl/workbook.xml")
    assert [s.get("name") for s in book.find("m:sheets", NS)][:len(SHEETS)] == SHEETS
    assert int(book.find("m:bookViews/m:workbookView", NS).get("activeTab", "0")) == 0
    contents = sheet_xml(path, "Contents")
    assert contents.find("m:sheetViews/m:sheetView", NS).get("tabSelected") == "1"
    for sheet in SHEETS[1:]:
        assert sheet_xml(path, sheet).find("m:sheetViews/m:sheetView", NS).get("tabSelected") is None, sheet
    rows = sheet_rows(path, "Contents")
    targets: dict[str, list[str]] = {}
    for link in contents.iter(tag("hyperlink")):
        assert link.get(f"{{{NS['r']}}}id") is None, "an internal link, not a file or web address"
        where, _, cell = link.get("location").rpartition("!")
        sheet = where.strip("'")
        assert sheet in SHEETS[1:], link.get("location")
        r, c = parse_a1(link.get("ref"))
        assert sheet in rows[r][c], (link.get("ref"), rows[r][c])  # the link's text names its sheet
        targets.setdefault(sheet, []).append(cell)
    assert sorted(targets) == sorted(SHEETS[1:])
    assert all("A1" in cells for cells in targets.values())
    # The links into the long conv1 sheet land on the labels of its blocks.
    conv = sheet_rows(path, "conv1")
    deep = [parse_a1(cell) for cell in targets["conv1"] if cell != "A1"]
    assert len(deep) == 4 and all(isinstance(conv[r][c], str) and conv[r][c] for r, c in deep)
    text = " ".join(str(v) for row in rows for v in row if isinstance(v, str))
    assert f"xlconv verify {path.name}" in text and "UNTRAINED means" in text
    assert "UNTRAINED" not in " ".join(str(v) for row in sheet_rows(built["file"], "Contents") for v in row if v)


@pytest.mark.libreoffice
def test_editing_a_pixel_and_the_mean_changes_the_maps_as_torch_computes(built, tmp_path):
    """Live end to end: a pixel and a mean changed on Preprocess change every map exactly as torch computes them
    from the changed picture, and verify agrees."""
    src = built["random"]
    recs = records(src)
    pixels = torchnet.preprocess(None).pixels.copy()
    y, x = 60, 70  # a pixel of the crop, 0-based: its R value becomes its opposite
    new = 255 - int(pixels[y, x, 0])
    pixels[y, x, 0] = new
    mean = (0.5, 0.3, 0.5)
    edited = with_values(src, tmp_path / "edited.xlsx", "Preprocess",
                         {recs["pre_raw"].grids[0].cell(y, x): new, recs["pre_mean"].grids[1].cell(0, 0): mean[1]})
    [out] = recalculate([edited], tmp_path / "out")
    model = seeded_model(SEED)
    changed = from_pixels(pixels, mean, (0.5, 0.5, 0.5))
    assert_maps_match(out, model, changed, [0, 5, 63])
    before = features(model, lecture_tensor())[0][[0, 5, 63]]
    assert np.abs(block(sheet_rows(out, "conv1"), recs["conv1"].grids) - before).max() > 0.05
    report = check(out, edited)
    assert report.ok, report.lines()


def cf_rules(path: Path, sheet: str) -> list[tuple[str, str, bool, int]]:
    """(sqref, formula, stop_if_true, priority) of a sheet's expression rules."""
    out = []
    for cf in sheet_xml(path, sheet).iter(tag("conditionalFormatting")):
        for rule in cf.findall("m:cfRule", NS):
            if rule.get("type") == "expression":
                out.append((cf.get("sqref"), rule.find("m:formula", NS).text, rule.get("stopIfTrue") == "1",
                            int(rule.get("priority"))))
    return out


def lit(rule: str, grid, values: dict[str, float]) -> np.ndarray:
    """Evaluate a rule of arithmetic, comparisons, ROW(), COLUMN() and cell references over a grid: a mask."""
    rows, cols = np.mgrid[grid.top + 1:grid.bottom + 2, grid.left + 1:grid.right + 2]
    expr = rule.replace("ROW()", "R").replace("COLUMN()", "C")
    expr = re.sub(r"\$?([A-Z]{1,3})\$?([0-9]+)", lambda m: repr(float(values[m[1] + m[2]])), expr)
    expr = re.sub(r"(?<![<>])=", "==", expr)
    return np.broadcast_to(eval(expr, {"R": rows, "C": cols}), rows.shape).astype(bool)


@pytest.mark.libreoffice
def test_the_trace_lights_its_window_and_the_pooled_cells_it_feeds(built, tmp_path):
    """Pick channel 5, output (20, 33): conv1 lights the 11 x 11 x 3 window of its input that torch's conv2d
    reads for that cell, the conv1 and ReLU cell, and the max-pool cells whose windows hold it; the Trace sheet
    names them. Masks from torch: the gradient of that one output, and max pooling of a lone spike."""
    src = built["random"]
    recs = records(src)
    trace = recs["conv1_trace"]
    ch, y, x = 5, 20, 33
    edited = with_values(src, tmp_path / "trace.xlsx", "Trace",
                         {trace.info["picks"]["channel"]: ch, trace.info["picks"]["row"]: y,
                          trace.info["picks"]["column"]: x})
    [out] = recalculate([edited], tmp_path / "out")
    model = seeded_model(SEED)
    conv1, pool1 = model.features[0], model.features[2]
    # torch: which input cells feed conv1_out[0, :, y-1, x-1], and which pooled cells that output feeds.
    padded = torch.nn.functional.pad(lecture_tensor()[None], (2, 2, 2, 2)).requires_grad_(True)
    torch.nn.functional.conv2d(padded, torch.ones_like(conv1.weight[:1]), stride=conv1.stride)[0, 0, y - 1,
                                                                                              x - 1].backward()
    window = (padded.grad[0, 0] != 0).numpy()
    spike = torch.zeros(1, 1, 55, 55)
    spike[0, 0, y - 1, x - 1] = 1
    fed = (pool1(spike)[0, 0] == 1).numpy()
    assert window.sum() == 121 and 1 <= fed.sum() <= 4
    # The Trace sheet names the pooled cells, and conv1 copies its picks.
    rows = sheet_rows(out, "Trace")
    feeds = {k: rows[parse_a1(v)[0]][parse_a1(v)[1]] for k, v in trace.info["feeds"].items()}
    fr, fc = np.nonzero(fed)
    assert (feeds["first_row"], feeds["last_row"], feeds["first_col"], feeds["last_col"]) == \
        (fr.min() + 1, fr.max() + 1, fc.min() + 1, fc.max() + 1)
    text = [c for r in rows for c in r if isinstance(c, str)]
    assert f"pool1_out[0, {ch}, {fr.min()}:{fr.max() + 1}, {fc.min()}:{fc.max() + 1}]" in text
    conv_rows = sheet_rows(out, "conv1")
    rules = cf_rules(edited, "conv1")  # as written (LibreOffice saves them its own way); values as recalculated
    refs = {ref for _, rule, _, _ in rules for ref in re.findall(r"\$[A-Z]+\$[0-9]+", rule)}
    values = {ref.replace("$", ""): conv_rows[parse_a1(ref)[0]][parse_a1(ref)[1]] for ref in refs}
    assert sorted(values.values()) == sorted([2, y, x, fr.min() + 1, fr.max() + 1, fc.min() + 1, fc.max() + 1])
    by_range = {}
    for sqref, rule, stop, priority in rules:
        by_range.setdefault(sqref, []).append((rule, stop, priority))
    for c in range(3):
        g = recs["conv1_input"].grids[c]
        [(rule, stop, priority)] = by_range[g.ref()]
        assert stop and np.array_equal(lit(rule, g, values), window)
    heat = min(int(r.get("priority")) for cf in sheet_xml(edited, "conv1").iter(tag("conditionalFormatting"))
               for r in cf.findall("m:cfRule", NS) if r.get("type") != "expression")
    for name, mask in (("conv1", None), ("relu1", None), ("pool1", fed)):
        for pos, g in enumerate(recs[name].grids):
            [(rule, stop, priority)] = by_range[g.ref()]
            assert stop and priority < heat  # lit over the heat map
            expected = np.zeros((g.height, g.width), bool)
            if pos == 1:  # channel 5 is the second map of "0,5,63"
                if mask is None:
                    expected[y - 1, x - 1] = True
                else:
                    expected = mask
            assert np.array_equal(lit(rule, g, values), expected), (name, pos)


ABSOLUTE = re.compile(r"(?<![\w.:])(/(?:tmp|home|root|usr|work|opt|var|Users)/|[A-Za-z]:\\)")


def test_no_cell_note_or_property_holds_a_path_of_the_building_machine(built):
    """The photo, the state_dict file and the torch cache are named by file name only."""
    for key in ("random", "file", "cache"):
        with zipfile.ZipFile(built[key]) as z:
            for member in z.namelist():
                if member.endswith((".xml", ".vml")) and not member.startswith("xl/theme"):
                    text = z.read(member).decode()
                    for s in re.findall(r">([^<]+)<", text):
                        assert not ABSOLUTE.search(s), (key, member, s[:200])
                        assert str(built["home"]) not in s and str(GRACE.parent) not in s
    assert GRACE.name in " ".join(str(v) for row in sheet_rows(built["random"], "Preprocess") for v in row if v)


def defined_names(path: Path) -> dict[tuple[str, int | None], str]:
    book = xml(path, "xl/workbook.xml")
    return {(d.get("name"), int(d.get("localSheetId")) if d.get("localSheetId") else None): d.text
            for d in book.iter(tag("definedName"))}


def test_every_sheet_is_set_up_for_paper_without_splitting_a_grid(built):
    path = built["random"]
    recs = records(path)
    names = defined_names(path)
    for n, sheet in enumerate(SHEETS):
        root = sheet_xml(path, sheet)
        setup = root.find("m:pageSetup", NS)
        assert setup is not None and setup.get("paperSize") == "9", sheet
        assert setup.get("orientation") == ("portrait" if sheet == "Predictions" else "landscape"), sheet
        fit = root.find("m:sheetPr/m:pageSetUpPr", NS)
        breaks = [int(b.get("id")) for b in root.iter(tag("brk"))]
        if fit is not None and fit.get("fitToPage") == "1":
            assert setup.get("fitToWidth", "1") == "1" and not breaks, sheet  # fit-to-width ignores breaks
        else:
            assert 10 <= int(setup.get("scale")) <= 100, sheet
        # No grid of this sheet is cut by a page break (a break id is the first row of a page, 0-based).
        for rec in recs.values():
            if rec.sheet == sheet:
                for g in rec.grids:
                    assert not [b for b in breaks if g.top < b <= g.bottom], (sheet, rec.name, g, breaks)
        area = names.get(("_xlnm.Print_Area", n))
        if sheet in ("Preprocess", "Filters", "conv1", "Trace", "Predictions"):
            assert area, sheet
    # conv1 prints band by band: every page starts at a label (an input grid's or a band's or a section's).
    conv = sheet_rows(path, "conv1")
    breaks = [int(b.get("id")) for b in sheet_xml(path, "conv1").iter(tag("brk"))]
    assert breaks and all(isinstance(conv[b][1], str) for b in breaks)
    # Trace prints its own columns only: the hidden helper row of channels is outside the print area.
    trace_area = parse_range(names[("_xlnm.Print_Area", SHEETS.index("Trace"))])
    helper = [r for r in sheet_xml(path, "Trace").iter(tag("row")) if r.get("hidden") == "1"]
    assert helper and all(int(r.get("r")) - 1 > trace_area.bottom for r in helper)
    assert trace_area.right < 45
    # Predictions prints portrait on one page: everything inside the print area.
    pred = parse_range(names[("_xlnm.Print_Area", SHEETS.index("Predictions"))])
    rows = sheet_rows(path, "Predictions")
    assert all(v is None for r in rows for v in r[pred.right + 1:])


def comments(path: Path, sheet: str) -> dict[str, str]:
    """The notes of a sheet: {cell: text}."""
    n = SHEETS.index(sheet) + 1
    rels = xml(path, f"xl/worksheets/_rels/sheet{n}.xml.rels")
    [target] = [r.get("Target") for r in rels if r.get("Target", "").split("/")[-1].startswith("comments")]
    root = xml(path, "xl/" + target.split("../")[-1])
    return {c.get("ref"): "".join(t.text or "" for t in c.iter(tag("t"))) for c in root.iter(tag("comment"))}


def test_notes_on_the_parameters_and_the_first_formula_of_each_block(built):
    path = built["random"]
    recs = records(path)
    pre = comments(path, "Preprocess")
    for name in ("pre_mean", "pre_std"):
        for g in recs[name].grids:
            assert "mean" in pre[g.cell(0, 0)] or "std" in pre[g.cell(0, 0)]
    assert "maps follow" in pre[recs["pre_mean"].grids[0].cell(0, 0)]
    conv = comments(path, "conv1")
    assert "(pixel/255 - mean)/std" in conv[recs["conv1_normalized"].grids[0].cell(0, 0)]
    assert "padding" in conv[recs["conv1_input"].grids[0].cell(0, 0)]
    for name, word in (("conv1", "SUMPRODUCT"), ("relu1", "ReLU"), ("pool1", "Max pooling")):
        assert word in conv[recs[name].grids[0].cell(0, 0)], name
    trace = comments(path, "Trace")
    for key, cell in recs["conv1_trace"].info["picks"].items():
        assert cell in trace, key
    assert len(trace) >= 10
    assert recs["conv1_w0"].grids[0].cell(0, 0) in comments(path, "Filters")
    assert len(comments(path, "Shapes")) >= 3


def test_screen_zoom_whole_maps_frozen_headings_and_a_square_photo(built):
    from xlconv.sheets.alexnet.layout import GRID_PX, MAPS_PER_BAND

    path = built["random"]
    zoom = {}
    for sheet in SHEETS:
        view = sheet_xml(path, sheet).find("m:sheetViews/m:sheetView", NS)
        zoom[sheet] = int(view.get("zoomScale", "100"))
        assert 10 <= zoom[sheet] <= 100
        if sheet in ("Preprocess", "Filters", "conv1", "Trace", "Shapes"):
            assert view.find("m:pane", NS).get("state") == "frozen", sheet
    # conv1: a band (its label row and 55 map rows) fits the height of a laptop window, its maps the width.
    recs = records(path)
    root = sheet_xml(path, "conv1")
    heights = {int(r.get("r")) - 1: float(r.get("ht", 15)) for r in root.iter(tag("row"))}
    g = recs["conv1"].grids[0]
    band_px = sum(heights[r] for r in range(g.top - 1, g.bottom + 1)) * 4 / 3 * zoom["conv1"] / 100
    assert band_px <= 560
    assert MAPS_PER_BAND * (55 + 2) * GRID_PX * zoom["conv1"] / 100 <= 1300
    # Square map cells: column width (XML characters, padding included) x 7 pixels = row height x 4/3.
    cols = {int(c.get("min")): float(c.get("width")) for c in root.iter(tag("col"))}
    assert round(cols[2] * 7) == round(heights[g.top] * 4 / 3) == GRID_PX
    # The photo sits top-left on whole square cells, as wide as high.
    drawing = xml(path, "xl/drawings/drawing1.xml")
    ns = {"xdr": "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing",
          "a": "http://schemas.openxmlformats.org/drawingml/2006/main"}
    [anchor] = drawing.findall("xdr:twoCellAnchor", ns)
    fr, to = (tuple(int(anchor.find(f"xdr:{end}/xdr:{k}", ns).text) for k in ("col", "colOff", "row", "rowOff"))
              for end in ("from", "to"))
    assert fr[1] == fr[3] == to[1] == to[3] == 0 and to[0] - fr[0] == to[2] - fr[2] == 12
    assert fr[0] <= 2 and fr[2] <= 6
    ext = anchor.find("xdr:pic/xdr:spPr/a:xfrm/a:ext", ns)
    assert ext.get("cx") == ext.get("cy")
    pre = sheet_xml(path, "Preprocess")
    pre_cols = {int(c.get("min")): float(c.get("width")) for c in pre.iter(tag("col"))}
    pre_rows = {int(r.get("r")) - 1: float(r.get("ht", 15)) for r in pre.iter(tag("row"))}
    assert all(round(pre_rows[r] * 4 / 3) == round(pre_cols[2] * 7) == GRID_PX for r in range(fr[2], to[2]))


def test_shapes_prints_booleans_as_words_and_the_total_in_full(built):
    path = built["random"]
    styles = xml(path, "xl/styles.xml")
    formats = {int(f.get("numFmtId")): f.get("formatCode") for f in styles.iter(tag("numFmt"))}
    xfs = [int(x.get("numFmtId", 0)) for x in styles.find("m:cellXfs", NS)]
    root = sheet_xml(path, "Shapes")
    booleans = [c for c in root.iter(tag("c")) if c.get("t") == "b"]
    assert len(booleans) == 3  # the three max poolings' ceil_mode
    assert all(formats.get(xfs[int(c.get("s"))]) == '"TRUE";"TRUE";"FALSE"' for c in booleans)
    rows = sheet_rows(path, "Shapes")
    head = next(n for n, row in enumerate(rows) if row[1] == "layer")
    total_row = next(n for n, row in enumerate(rows) if row[2] and "total parameters" in str(row[2]))
    col = rows[head].index("torch C")
    merged = [parse_range(m.get("ref")) for m in root.iter(tag("mergeCell"))]
    assert any(m.top == total_row and m.left == col and m.width >= 3 for m in merged)
