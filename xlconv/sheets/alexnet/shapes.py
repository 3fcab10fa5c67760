"""The Shapes sheet: every layer with live output-size formulas and parameter counts, next to torch's shapes."""

from __future__ import annotations

from xlconv import formulas as fx
from xlconv.book import Book
from xlconv.cells import Grid, a1
from xlconv.rowstream import Deferred
from xlconv.sheets import style
from xlconv.sheets.alexnet.common import heading, note, square
from xlconv.sheets.alexnet.layout import SHEET_SHAPES
from xlconv.torchnet import Run

SHAPE_COLUMNS = [  # key, heading, width
    ("name", "layer", 13),
    ("module", "module (print(model))", 40),
    ("c_in", "C in", 7), ("h_in", "H in", 7), ("w_in", "W in", 7),
    ("k", "kernel", 7), ("s", "stride", 7), ("p", "padding", 8), ("d", "dilation", 8), ("ceil", "ceil_mode", 9),
    ("c_out", "C out", 7), ("h_out", "H out", 7), ("w_out", "W out", 7),
    ("params", "parameters", 12),
    ("t_c", "torch C", 8), ("t_h", "torch H", 8), ("t_w", "torch W", 8), ("check", "sheet = torch?", 10),
    ("lecture", "the lecture", 56),
]

# Where the lecture's slides and listings differ from the model (about the lecture's own numbers).
LECTURE_NOTES = {
    "features.0": "(224 + 2x2 - 11)/4 + 1 = 55.25, rounded down to 55. One listing in the lecture prints "
                  "padding=0 here; the model has padding=(2, 2). With padding 0 the map would be 54 x 54 (see below).",
    "features.2": "The slide computes (55 + 2x2 - 3)/2 + 1 = 27 with padding 2, but this pooling has padding 0: "
                  "(55 - 3)/2 + 1 = 27 (with padding 2 it would be 29).",
    "features.3": "The lecture's cell [15] writes conv2(conv1_out); the printed 27 x 27 needs the pooled map "
                  "conv1_out1 (the 55 x 55 conv1_out would give 55 x 55).",
    "features.6": "The slide says 394 channels; conv3 has 384: Conv2d(192, 384).",
    "features.7": "The lecture calls features[7:9] 'max pooling after the 3rd convolution'; it is this ReLU and "
                  "the next Conv2d(384, 256), not a pooling, so the size stays 13 x 13.",
    "features.8": "conv4: Conv2d(384, 256, kernel_size=3, padding=1), part of the lecture's features[7:9].",
    "features.12": "After the last pooling: 256 x 6 x 6.",
    "avgpool": "AdaptiveAvgPool2d((6, 6)) always outputs 6 x 6; the input is already 6 x 6, so nothing changes.",
    "flatten": "torch.flatten(x, 1) in AlexNet.forward: 256 x 6 x 6 = 9216, the in_features of classifier[1].",
    "classifier.6": "1000 scores, one per ImageNet class (see Predictions).",
}


class ShapesSheet:
    """Every layer with live output-size formulas and parameter counts, next to the shapes torch produced."""

    def __init__(self, book: Book, data: Run):
        self.book, self.data = book, data
        self.ws = book.wb.add_worksheet(SHEET_SHAPES)

    def build(self) -> None:
        b, ws, data = self.book, self.ws, self.data
        d = Deferred(ws)
        col = {key: i + 1 for i, (key, _, _) in enumerate(SHAPE_COLUMNS)}
        ws.set_column(0, 0, 2)
        for key, _, width in SHAPE_COLUMNS:
            ws.set_column(col[key], col[key], width)
        d.write_string(0, 1, heading(data, "every layer's input and output shape, and its parameters"),
                       b.fmt(**style.TITLE))
        note = ("One row per module of model.features, model.avgpool and model.classifier, plus the flatten in "
                "AlexNet.forward. Yellow cells are the layers' settings; the shapes are live: C/H/W in of a row is "
                "C/H/W out of the row above, and H out = INT((H in + 2 padding - dilation (kernel - 1) - 1) / stride) "
                f"+ 1 for convolutions and poolings, so changing {data.geometry.size} or a padding updates everything "
                "below. Parameters: C out x C in x kernel x kernel + C out (bias) for a convolution, in x out + out "
                "for Linear. The torch columns are the shapes torch really produced for the photo (forward hooks): "
                "values, not formulas. Where the lecture slips, this sheet follows the real model and says so.")
        d.merge_range(1, 1, 1, col["lecture"], note, b.fmt(**style.NOTE))
        d.set_row(1, 15 * 4)
        head = b.fmt(bold=True, bottom=2, align="center", valign="vcenter", text_wrap=True)
        top = 3
        d.set_row(top, 30)
        for key, heading_text, _ in SHAPE_COLUMNS:
            d.write_string(top, col[key], heading_text, head)
        text = b.fmt(font_size=9, valign="vcenter")
        mono = b.fmt(font_size=8, valign="vcenter", font_name="Consolas", text_wrap=True)
        wrap = b.fmt(font_size=8, valign="vcenter", text_wrap=True, italic=True)
        param = style.cell(b, "param", "0")
        live = style.cell(b, "input", "0")
        out = style.cell(b, "output", "0", bold=True)
        count = style.cell(b, "output", "#,##0")
        torchf = style.cell(b, "product", "0")
        r = top
        prev: dict[str, str] | None = None  # cells of the previous row's outputs
        first_params = last_params = ""
        for n, layer in enumerate(data.shapes):
            r = top + 1 + n
            lines = max(-(-len(LECTURE_NOTES.get(layer.name, "")) // 70), -(-len(layer.module) // 48), 1)
            d.set_row(r, max(24, 11 * lines + 4))
            cells = {key: a1(r, col[key]) for key in col}
            d.write_string(r, col["name"], layer.name, text)
            d.write_string(r, col["module"], layer.module, mono)
            ins = list(layer.in_shape) + [None] * (3 - len(layer.in_shape))
            outs = list(layer.out_shape) + [None] * (3 - len(layer.out_shape))
            # inputs: typed for the first row, else the previous row's outputs
            for key, v, pkey in (("c_in", ins[0], "c_out"), ("h_in", ins[1], "h_out"), ("w_in", ins[2], "w_out")):
                if v is None:
                    continue
                if prev is None:
                    d.write_number(r, col[key], v, param)
                else:
                    d.write_formula(r, col[key], fx.copy(prev[pkey]), live, v)
            p = layer.params
            kind = layer.kind
            if kind in ("conv", "maxpool"):
                for key, name in (("k", "kernel_size"), ("s", "stride"), ("p", "padding"), ("d", "dilation")):
                    d.write_number(r, col[key], p[name], param)
                if kind == "maxpool":
                    d.write_boolean(r, col["ceil"], p["ceil_mode"], style.cell(b, "param", style.BOOLEAN_FORMAT))
                if kind == "conv":
                    d.write_number(r, col["c_out"], p["out_channels"], param)
                else:
                    d.write_formula(r, col["c_out"], fx.copy(cells["c_in"]), live, outs[0])
                for axis, (ikey, okey) in enumerate((("h_in", "h_out"), ("w_in", "w_out"))):
                    ceil = cells["ceil"] if kind == "maxpool" else None
                    d.write_formula(r, col[okey], fx.out_size(cells[ikey], cells["k"], cells["s"], cells["p"],
                                                              cells["d"], ceil), out, outs[1 + axis])
                    keys = ["in", "k", "s", "p", "d"] + (["ceil"] if ceil else []) + ["out"]
                    cols = [ikey, "k", "s", "p", "d"] + (["ceil"] if ceil else []) + [okey]
                    b.record(f"shape_{n}_{'hw'[axis]}", "size", SHEET_SHAPES,
                             [Grid(r, col[c], 1, 1) for c in cols], rows=keys, layer=layer.name, axis=axis)
                if kind == "conv":
                    d.write_formula(r, col["params"], fx.conv_params(cells["c_out"], cells["c_in"], cells["k"],
                                                                     cells["k"]), count, layer.n_params)
            elif kind == "adaptiveavgpool":
                d.write_formula(r, col["c_out"], fx.copy(cells["c_in"]), live, outs[0])
                for okey in ("h_out", "w_out"):
                    d.write_number(r, col[okey], p["output_size"], param)
            elif kind == "flatten":
                d.write_formula(r, col["c_out"], fx.times([cells["c_in"], cells["h_in"], cells["w_in"]]), out,
                                outs[0])
            elif kind == "linear":
                d.write_number(r, col["c_out"], p["out_features"], param)
                d.write_formula(r, col["params"], fx.linear_params(cells["c_in"], cells["c_out"]), count,
                                layer.n_params)
            else:  # ReLU, Dropout: the shape passes through
                for ikey, okey, v in (("c_in", "c_out", outs[0]), ("h_in", "h_out", outs[1]),
                                      ("w_in", "w_out", outs[2])):
                    if v is not None:
                        d.write_formula(r, col[okey], fx.copy(cells[ikey]), live, v)
            if kind not in ("conv", "linear"):
                d.write_number(r, col["params"], 0, count)
            for key, v in zip(("t_c", "t_h", "t_w"), outs):
                if v is not None:
                    d.write_number(r, col[key], v, torchf)
            pairs = [(cells[o], cells[t]) for o, t, v in zip(("c_out", "h_out", "w_out"), ("t_c", "t_h", "t_w"), outs)
                     if v is not None]
            d.write_formula(r, col["check"], fx.same_check(pairs, "= torch"),
                            b.fmt(align="center", font_size=9, bold=True), "= torch")
            d.write_string(r, col["lecture"], LECTURE_NOTES.get(layer.name, ""), wrap)
            prev = {k: cells[k] for k in ("c_out", "h_out", "w_out")}
            if not first_params:
                first_params = a1(r, col["params"])
            last_params = a1(r, col["params"])
        r += 1
        d.write_string(r, col["module"], "total parameters (live sum) / torch's count", b.fmt(bold=True, align="right"))
        total = sum(s.n_params for s in data.shapes)
        d.write_formula(r, col["params"], fx.total([f"{first_params}:{last_params}"]), count, total)
        torch_total = style.cell(b, "product", "#,##0")
        d.merge_range(r, col["t_c"], r, col["t_w"], "", torch_total)  # 61,100,840 needs more than one column
        d.write_number(r, col["t_c"], total, torch_total)
        self.total_cell = (r, col["params"])
        # What the listing that prints conv1 with padding=0 would give.
        geo = data.geometry
        r += 2
        no_pad = (geo.size - geo.kernel) // geo.stride + 1
        d.write_string(r, col["name"], "what if", b.fmt(bold=True))
        d.write_string(r, col["module"], "conv1 as one listing prints it, padding=0: H out = "
                                         f"INT(({geo.size} + 2x0 - {geo.kernel})/{geo.stride}) + 1", text)
        h, k, s, pz, dil = (a1(r, col[c]) for c in ("h_in", "k", "s", "p", "d"))
        d.write_number(r, col["h_in"], geo.size, param)
        d.write_number(r, col["k"], geo.kernel, param)
        d.write_number(r, col["s"], geo.stride, param)
        d.write_number(r, col["p"], 0, param)
        d.write_number(r, col["d"], 1, param)
        d.write_formula(r, col["h_out"], fx.out_size(h, k, s, pz, dil), out, no_pad)
        d.write_string(r, col["lecture"], f"{square(no_pad)}, not the {square(geo.conv)} torch prints: the real conv1 "
                                          f"pads by {geo.padding}.", wrap)
        b.record("shape_padding0", "size", SHEET_SHAPES,
                 [Grid(r, col[c], 1, 1) for c in ("h_in", "k", "s", "p", "d", "h_out")],
                 rows=["in", "k", "s", "p", "d", "out"], layer="features.0 with padding=0")
        self._notes(top)
        d.flush()
        ws.freeze_panes(top + 1, 2)
        widths = sum(style.column_px(w) for _, _, w in SHAPE_COLUMNS) + style.column_px(2)
        ws.set_zoom(style.fit_zoom((widths, (top + 8) * 32), least=55))
        style.page_setup(ws, landscape=True, repeat_rows=(top, top))

    def _notes(self, top: int) -> None:
        """Notes in the lecture's words on the first typed size and the first formulas."""
        ws, geo = self.ws, self.data.geometry
        col = {key: i + 1 for i, (key, _, _) in enumerate(SHAPE_COLUMNS)}
        r = top + 1
        note(ws, r, col["h_in"], f"The photo after Resize({geo.size}) and CenterCrop({geo.size}): type another size "
                                 "and every row below follows.")
        note(ws, r, col["h_out"], "Feature map's width and height: H_out = (H_in + 2 x padding - kernel size)/stride "
                                  f"+ 1, rounded down (INT): ({geo.size} + 2x{geo.padding} - {geo.kernel})/{geo.stride}"
                                  f" + 1 = {(geo.size + 2 * geo.padding - geo.kernel) / geo.stride + 1:g} gives "
                                  f"{geo.conv}. With a dilation d the kernel spans d(kernel - 1) + 1 cells.")
        note(ws, r, col["params"], "A Conv2d's parameters: C out x C in x kernel x kernel weights, plus one bias per "
                                   f"output channel: {geo.filters} x {geo.in_channels} x {geo.kernel} x {geo.kernel} + "
                                   f"{geo.filters}.")


__all__ = ["ShapesSheet", "SHAPE_COLUMNS", "LECTURE_NOTES"]
