"""The lecture's AlexNet walk-through as data: weights through torchvision's API, the pre-processed photo,
conv1 -> ReLU -> max pool by torch, every layer's shapes by forward hooks, and the top-5 classes.

torch and torchvision are imported inside the functions only: ``import xlconv.cli`` and building the
toy worksheets never load them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xlconv.errors import ImageError, PretrainedUnavailable, SpecError, WeightsError
from xlconv.guards import image_size, input_file
from xlconv.model import NORMALIZE
from xlconv.spec import check_channels, parse_channels, photo_path

CHECKPOINT = "alexnet-owt-7be5be79.pth"  # the file torchvision's AlexNet_Weights.IMAGENET1K_V1 downloads
WEIGHTS_ENUM = "AlexNet_Weights.IMAGENET1K_V1"
SIZE = 224  # the lecture's transformer: Resize(224) then CenterCrop(224)
LECTURE_MEAN = (0.5, 0.5, 0.5)
LECTURE_STD = (0.5, 0.5, 0.5)
DEFAULT_IMAGE = "grace_hopper"


@dataclass(frozen=True)
class Weights:
    """Where the network's weights came from, as the workbook states it."""

    kind: str  # "pretrained" | "random" | "file"
    label: str  # one line for the sheet titles
    source: str  # the cache path, the file, or the seed
    untrained: bool


@dataclass
class Photo:
    """The photo before and after the lecture's pre-processing."""

    path: Path
    original_size: tuple[int, int]  # (width, height), as PIL reports it
    resized_size: tuple[int, int]  # (width, height) after Resize(224)
    crop_box: tuple[int, int, int, int]  # (left, top, right, bottom) of CenterCrop(224) in the resized image
    pixels: np.ndarray  # (224, 224, 3) uint8: the cropped picture, what ToTensor divides by 255
    normalize: str  # "lecture" | "imagenet"
    mean: tuple[float, ...]  # one per channel
    std: tuple[float, ...]
    tensor: np.ndarray  # (3, 224, 224) float32: torchvision's output, the network's input


@dataclass
class LayerShape:
    """One module of the model with the input and output shapes torch produced (forward hooks)."""

    name: str  # "features.0", "avgpool", "flatten", "classifier.1"
    module: str  # repr of the module
    kind: str  # "conv" | "relu" | "maxpool" | "adaptiveavgpool" | "flatten" | "dropout" | "linear"
    params: dict[str, Any]
    in_shape: tuple[int, ...]  # without the batch axis
    out_shape: tuple[int, ...]
    n_params: int


@dataclass(frozen=True)
class Geometry:
    """conv1 and its pooling as torchvision's model defines them (model.features[0] and [2]), square."""

    size: int  # the input's height and width (the crop)
    in_channels: int
    filters: int  # out_channels
    kernel: int
    stride: int
    padding: int
    pool_kernel: int
    pool_stride: int

    @property
    def padded(self) -> int:
        """The input with conv1's padding ring."""
        return self.size + 2 * self.padding

    @property
    def conv(self) -> int:
        """conv1's output height and width."""
        return (self.padded - self.kernel) // self.stride + 1

    @property
    def pooled(self) -> int:
        """The max-pooled map's height and width."""
        return (self.conv - self.pool_kernel) // self.pool_stride + 1


def geometry(model: Any, size: int = SIZE) -> Geometry:
    """conv1's and the first pooling's geometry, read from the model (features[0] and features[2])."""
    from torch import nn

    conv, pool = model.features[0], model.features[2]
    if not isinstance(conv, nn.Conv2d) or not isinstance(pool, nn.MaxPool2d):
        raise WeightsError(f"features[0] and [2] are {type(conv).__name__} and {type(pool).__name__}, not the "
                           f"Conv2d and MaxPool2d of AlexNet")

    def square(v: Any, what: str) -> int:
        a, b = (v, v) if isinstance(v, int) else tuple(v)
        if a != b:
            raise WeightsError(f"{what} is {v}; the workbook draws square kernels, strides and paddings only")
        return int(a)

    if conv.dilation not in (1, (1, 1)) or conv.groups != 1 or pool.padding not in (0, (0, 0)) or pool.ceil_mode:
        raise WeightsError("conv1 or its pooling has dilation, groups, padding or ceil_mode, which the workbook "
                           "does not draw")
    return Geometry(size, int(conv.in_channels), int(conv.out_channels), square(conv.kernel_size, "kernel_size"),
                    square(conv.stride, "stride"), square(conv.padding, "padding"),
                    square(pool.kernel_size, "pool kernel_size"), square(pool.stride, "pool stride"))


@dataclass
class Run:
    """Everything the AlexNet workbook shows, computed once by torch."""

    weights: Weights
    photo: Photo
    channels: tuple[int, ...]
    geometry: Geometry
    weight: np.ndarray  # (64, 3, 11, 11) float32
    bias: np.ndarray  # (64,) float32
    conv: np.ndarray  # (64, 55, 55) float32: model.features[0]
    relu: np.ndarray  # (64, 55, 55): model.features[0:2]
    pool: np.ndarray  # (64, 27, 27): model.features[0:3]
    shapes: list[LayerShape]
    top5: list[tuple[int, str, float]]  # (class index, name, probability)
    model_repr: str
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)


def checkpoint_path() -> Path:
    """Where torch.hub keeps (or would download) the pretrained file: $TORCH_HOME/hub/checkpoints/..."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / CHECKPOINT


# -- weights ---------------------------------------------------------------------------------------


def load_model(weights: str = "pretrained", seed: int = 0):
    """AlexNet in eval mode and a description of its weights.

    "pretrained": torchvision's AlexNet_Weights.IMAGENET1K_V1, from the torch cache or downloaded with torch's
    progress bar; PretrainedUnavailable (one line naming the cache file) when neither works.
    "random": an untrained network, torch.manual_seed(seed) first. Anything else: a state_dict file.
    """
    import torch
    from torchvision.models import AlexNet_Weights, alexnet

    if weights == "pretrained":
        path = checkpoint_path()
        was_cached = path.is_file()
        try:
            with _held_download_line():
                model = alexnet(weights=AlexNet_Weights.IMAGENET1K_V1, progress=True)
        except OSError as e:  # URLError, socket errors, timeouts: offline and nothing cached
            reason = getattr(e, "reason", None) or e.strerror or e
            raise PretrainedUnavailable(
                f"pretrained AlexNet weights are not cached and cannot be downloaded ({reason}): place {CHECKPOINT} "
                f"(from {AlexNet_Weights.IMAGENET1K_V1.url}) at {path}, or use --weights random or a state_dict "
                f"file") from None
        except RuntimeError as e:  # a corrupt cached file, or a download failing torch's hash check
            raise WeightsError(f"{path}: not a usable AlexNet checkpoint ({_first_line(e)}); delete it to download "
                               f"it again") from None
        how = f"read from the torch cache {path}" if was_cached else f"downloaded to {path}"
        return model.eval(), Weights("pretrained", f"pretrained weights {WEIGHTS_ENUM}", how, False)
    if weights == "random":
        torch.manual_seed(seed)
        model = alexnet(weights=None)
        return model.eval(), Weights("random", f"UNTRAINED: random weights (torch.manual_seed({seed}))",
                                     f"seed {seed}", True)
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"--weights {weights}: not 'pretrained', 'random' or an existing state_dict file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, zip errors, refused globals: all mean "not a state_dict file"
        raise WeightsError(f"{path}: not a state_dict file that torch.load(weights_only=True) can read "
                           f"({type(e).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state_dict")
    model = alexnet(weights=None)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise WeightsError(f"{path}: not an AlexNet state_dict ({_first_line(e)})") from None
    return model.eval(), Weights("file", f"weights from the state_dict file {path.name}", str(path), False)


class _held_download_line:
    """While torch.hub fetches the weights, hold back the 'Downloading: ...' line it prints to stdout.

    The line goes to stderr (stdout carries only the workbook's path) as soon as the download shows progress
    (tqdm writes to stderr) or succeeds; when the download fails, as it does offline, it is dropped, so the
    user reads one line: ours, naming the file to place in the cache.
    """

    def __enter__(self):
        import sys

        self.out, self.err, self.held = sys.stdout, sys.stderr, []
        sys.stdout, sys.stderr = _Tap(self.out, self._hold), _Tap(self.err, None, self._release)
        return self

    def _hold(self, text: str) -> bool:
        if text.startswith("Downloading: "):
            self.held.append(text)
            return True
        return False

    def _release(self):
        if self.held:
            self.err.write("".join(self.held))
            self.held.clear()

    def __exit__(self, exc_type, exc, tb):
        import sys

        sys.stdout, sys.stderr = self.out, self.err
        if exc_type is None:
            self._release()
        return False


class _Tap:
    """A stream that may keep some writes (hold) or run something before each write (before)."""

    def __init__(self, real, hold=None, before=None):
        self.real, self.hold, self.before = real, hold, before

    def write(self, text: str) -> int:
        if self.hold is not None and self.hold(text):
            return len(text)
        if self.before is not None:
            self.before()
        return self.real.write(text)

    def __getattr__(self, name):  # flush, isatty, fileno, encoding... as the real stream
        return getattr(self.real, name)


def _first_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 200 else text[:197] + "..."


def categories() -> list[str]:
    """The 1000 ImageNet class names, from the weights' metadata (no download needed)."""
    from torchvision.models import AlexNet_Weights

    return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


# -- the photo -------------------------------------------------------------------------------------


def image_path(image: str | Path | None) -> Path:
    """The photo file: a path, or the default photograph that matplotlib ships."""
    name = str(image) if image is not None else DEFAULT_IMAGE
    return photo_path(name, Path("."))


def mean_std(normalize: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The lecture's 0.5s, or the mean and std of the weights' own ImageNet transforms."""
    if normalize == "lecture":
        return LECTURE_MEAN, LECTURE_STD
    if normalize == "imagenet":
        from torchvision.models import AlexNet_Weights

        t = AlexNet_Weights.IMAGENET1K_V1.transforms()
        return tuple(float(v) for v in t.mean), tuple(float(v) for v in t.std)
    raise SpecError(f"--normalize must be 'lecture' or 'imagenet', got {normalize!r}")


def preprocess(image: str | Path | None = None, normalize: str = "lecture") -> Photo:
    """Resize(224), CenterCrop(224), ToTensor(), Normalize(mean, std): the lecture's transformer, by torchvision."""
    from PIL import Image, UnidentifiedImageError
    from torchvision import transforms

    path = image_path(image)
    mean, std = mean_std(normalize)
    if path.exists():
        input_file(path, "image file", ImageError)
    try:
        with Image.open(path) as im:
            image_size(im.size, str(path), ImageError)  # from the header: nothing decoded yet
            # The lecture: Image.fromarray(image.astype('uint8')).convert('RGB').
            img = im.convert("RGB")
    except FileNotFoundError:
        raise ImageError(f"{path}: no such image file") from None
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"{path}: not an image Pillow can read ({_first_line(e)})") from None
    transformer = transforms.Compose([
        transforms.Resize(SIZE),
        transforms.CenterCrop(SIZE),
        transforms.ToTensor(),
        transforms.Normalize(mean=list(mean), std=list(std)),
    ])
    tensor = transformer(img).numpy()
    resized = transforms.Resize(SIZE)(img)
    cropped = transforms.CenterCrop(SIZE)(resized)
    w, h = resized.size
    if w < SIZE or h < SIZE:
        raise ImageError(f"{path}: {img.size[0]}x{img.size[1]} resizes to {w}x{h}, smaller than the {SIZE}x{SIZE} "
                         f"crop")
    # torchvision's center_crop: top = round((h - 224) / 2), left = round((w - 224) / 2).
    top, left = int(round((h - SIZE) / 2.0)), int(round((w - SIZE) / 2.0))
    pixels = np.asarray(cropped, dtype=np.uint8).copy()
    return Photo(path, img.size, (w, h), (left, top, left + SIZE, top + SIZE), pixels, normalize, mean, std,
                 tensor.astype(np.float32))


# -- the network's walk-through ----------------------------------------------------------------------


def layer_shapes(model, x) -> list[LayerShape]:
    """Every module of features, avgpool and classifier with the shapes torch really produces (forward hooks)."""
    import torch
    from torch import nn

    seen: list[tuple[str, nn.Module, tuple, tuple]] = []
    hooks = []
    named = [(f"features.{i}", m) for i, m in enumerate(model.features)] + [("avgpool", model.avgpool)] + \
        [(f"classifier.{i}", m) for i, m in enumerate(model.classifier)]
    for name, m in named:
        hooks.append(m.register_forward_hook(
            lambda mod, inp, out, name=name: seen.append((name, mod, tuple(inp[0].shape[1:]), tuple(out.shape[1:])))))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    out: list[LayerShape] = []
    for name, m, ins, outs in seen:
        if name == "classifier.0":
            # torch.flatten(x, 1) in AlexNet.forward: not a module, so no hook; its shapes are avgpool's out
            # and classifier[0]'s in.
            prev = out[-1]
            out.append(LayerShape("flatten", "torch.flatten(x, 1)", "flatten", {}, prev.out_shape, ins, 0))
        out.append(LayerShape(name, repr(m), _kind(m), _params(m), ins, outs, sum(p.numel() for p in m.parameters())))
    return out


def _kind(m) -> str:
    return {"Conv2d": "conv", "ReLU": "relu", "MaxPool2d": "maxpool", "AdaptiveAvgPool2d": "adaptiveavgpool",
            "Dropout": "dropout", "Linear": "linear"}.get(type(m).__name__, type(m).__name__.lower())


def _params(m) -> dict[str, Any]:
    from torch import nn

    def one(v):
        return v[0] if isinstance(v, tuple) else v

    if isinstance(m, nn.Conv2d):
        return dict(in_channels=m.in_channels, out_channels=m.out_channels, kernel_size=one(m.kernel_size),
                    stride=one(m.stride), padding=one(m.padding), dilation=one(m.dilation))
    if isinstance(m, nn.MaxPool2d):
        return dict(kernel_size=one(m.kernel_size), stride=one(m.stride), padding=one(m.padding),
                    dilation=one(m.dilation), ceil_mode=bool(m.ceil_mode))
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return dict(output_size=one(m.output_size))
    if isinstance(m, nn.Linear):
        return dict(in_features=m.in_features, out_features=m.out_features)
    if isinstance(m, nn.Dropout):
        return dict(p=m.p)
    return {}


def top5(model, x, names: list[str]) -> list[tuple[int, str, float]]:
    """The five most probable ImageNet classes (softmax of the logits), by torch."""
    import torch

    with torch.no_grad():
        probs = torch.softmax(model(x)[0], dim=0)
    p, idx = torch.topk(probs, 5)
    return [(int(i), names[int(i)] if int(i) < len(names) else f"class {int(i)}", float(v))
            for v, i in zip(p.tolist(), idx.tolist())]


def run(image: str | Path | None = None, weights: str = "pretrained", seed: int = 0, normalize: str = "lecture",
        channels: str | Sequence[int] | None = None, where: str = "--channels") -> Run:
    """Load the network and the photo and compute everything the workbook shows."""
    import torch

    picked = parse_channels(channels, where)
    if normalize not in NORMALIZE:
        raise SpecError(f"--normalize must be 'lecture' or 'imagenet', got {normalize!r}")
    photo = preprocess(image, normalize)
    model, w = load_model(weights, seed)
    geo = geometry(model)
    chans = check_channels(picked, geo.filters, where)
    x = torch.from_numpy(photo.tensor)[None]
    with torch.no_grad():
        conv = model.features[0](x)
        relu = model.features[1](conv.clone())  # ReLU(inplace=True) would overwrite conv
        pool = model.features[2](relu)
    conv1 = model.features[0]
    return Run(
        weights=w, photo=photo, channels=chans, geometry=geo,
        weight=conv1.weight.detach().numpy().astype(np.float32).copy(),
        bias=conv1.bias.detach().numpy().astype(np.float32).copy(),
        conv=conv[0].numpy().copy(), relu=relu[0].numpy().copy(), pool=pool[0].numpy().copy(),
        shapes=layer_shapes(model, x), top5=top5(model, x, categories()), model_repr=repr(model), seed=seed)


__all__ = ["CHECKPOINT", "Weights", "Photo", "LayerShape", "Run", "Geometry", "geometry", "checkpoint_path",
           "load_model", "preprocess", "layer_shapes", "top5", "run",
           "categories", "mean_std", "image_path"]
