"""What a student's spreadsheet program sees: live formulas of shared functions, with cached values."""

import re
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
from blocks import block, records
from openpyxl import load_workbook

from xlconv.cells import MAX_FORMULA_CHARS
from xlconv.formulas import ALLOWED_FUNCTIONS, SELF_CHECK_FUNCTIONS
from xlconv.sheets import style

CONV_SHEETS = ["lee-6x6", "velickovic-7x7", "convolved-feature-5x5", "edge-laplacian", "dilation-5x5",
               "padding-same-full"]
SHEETS = CONV_SHEETS + ["output-size"]


def formulas(path):
    wb = load_workbook(path)
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if isinstance(c.value, str) and c.value.startswith("="):
                    yield ws.title, c.coordinate, c.value


@pytest.mark.parametrize("name", SHEETS)
def test_only_functions_every_spreadsheet_shares(shipped, name):
    used = set()
    for _, _, f in formulas(shipped[name]):
        used |= set(re.findall(r"([A-Z][A-Z0-9.]*)\(", f))
        assert len(f) <= MAX_FORMULA_CHARS
    assert used and used <= ALLOWED_FUNCTIONS, used - ALLOWED_FUNCTIONS


@pytest.mark.parametrize("self_check", [True, False])
def test_exercise_files_use_shared_functions_too(tmp_path, self_check):
    from xlconv.exercise import exercise

    result = exercise("lee-6x6", tmp_path / "ex", seed=1, self_check=self_check)
    for path in [*result.student_files, *result.key_files]:
        used = set()
        for _, _, f in formulas(path):
            used |= set(re.findall(r"([A-Z][A-Z0-9.]*)\(", f))
        assert used <= SELF_CHECK_FUNCTIONS, (path.name, used - SELF_CHECK_FUNCTIONS)


@pytest.mark.parametrize("name", SHEETS)
def test_every_output_cell_is_a_formula(shipped, name):
    wb = load_workbook(shipped[name])
    for block_name, (sheet, grids, info, role) in records(wb).items():
        if role in ("output", "padded", "dilated"):
            ph, pw = info.get("padding", [0, 0]) if role == "padded" else (0, 0)
            for g in grids:
                for i in range(g.height):
                    for j in range(g.width):
                        v = wb[sheet].cell(g.top + i + 1, g.left + j + 1).value
                        if ph <= i < g.height - ph and pw <= j < g.width - pw:
                            assert isinstance(v, str) and v.startswith("="), (block_name, g.cell(i, j), v)
                        else:  # the padding ring: visible zeros
                            assert v == 0, (block_name, g.cell(i, j), v)


def test_kernels_are_absolute_and_windows_relative(shipped):
    wb = load_workbook(shipped["convolved-feature-5x5"])
    sheet, grids, _, _ = records(wb)["feature"]
    f = wb[sheet].cell(grids[0].top + 1, grids[0].left + 1).value
    assert re.fullmatch(r"=SUMPRODUCT\([A-Z]+\d+:[A-Z]+\d+,\$[A-Z]+\$\d+:\$[A-Z]+\$\d+\)", f), f


@pytest.mark.parametrize("name", SHEETS)
def test_formula_cells_carry_their_values_for_viewers_that_do_not_calculate(shipped, name):
    """Every <f> in the file has a <v> beside it, and pandas (which never calculates) reads the numbers."""
    with zipfile.ZipFile(shipped[name]) as z:
        for member in z.namelist():
            if member.startswith("xl/worksheets/sheet"):
                xml = z.read(member).decode()
                n_formulas = xml.count("<f>")
                assert n_formulas == len(re.findall(r"<f>[^<]*</f><v>[^<]+</v>", xml)), member


def test_pandas_reads_the_lecture_numbers_without_any_engine(shipped):
    wb = load_workbook(shipped["lee-6x6"], data_only=True)
    sheet, grids, _, _ = records(wb)["stride1"]
    g = grids[0]
    df = pd.read_excel(shipped["lee-6x6"], sheet_name=sheet, header=None, engine="openpyxl")
    values = df.iloc[g.top:g.top + g.height, g.left:g.left + g.width].to_numpy(dtype=float)
    np.testing.assert_array_equal(values, [[3, -1, -3, -1], [-3, 1, 0, -3], [-3, -3, 0, 1], [3, -2, -2, -1]])
    np.testing.assert_array_equal(values, block(wb, "stride1")[0])


def test_defined_names_point_at_the_blocks(shipped):
    wb = load_workbook(shipped["lee-6x6"])
    names = set(wb.defined_names.keys())
    assert {"image", "filter1", "filter2", "stride1_c0", "stride1_c1", "pooled_c0"} <= names
    sheet, grids, _, _ = records(wb)["image"]
    assert wb.defined_names["image"].attr_text == grids[0].sheet_ref(sheet)


def test_the_record_sheet_is_hidden(shipped):
    wb = load_workbook(shipped["lee-6x6"])
    assert wb["_xlconv"].sheet_state == "hidden"
    assert wb.sheetnames[0] == "Lee 6x6"


def test_building_toy_worksheets_does_not_import_torch(tmp_path):
    code = ("import sys, xlconv.cli; xlconv.cli.main(['build', '-o', sys.argv[1], *sys.argv[2:]]); "
            "print('torch' in sys.modules, 'torchvision' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path), *SHEETS], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False False"
    assert sorted(p.stem for p in tmp_path.iterdir()) == sorted(SHEETS)


def test_same_spec_gives_byte_identical_files(tmp_path):
    from xlconv import build

    a = build("lee-6x6", tmp_path / "a").read_bytes()
    b = build("lee-6x6", tmp_path / "b").read_bytes()
    assert a == b



# -- What a student sees on the convolution sheets: panels, unread cells, notes, print and screen ---------------


def _rgb(colour):
    """"#F4B183" or "FFF4B183" as "F4B183"."""
    return colour[-6:].upper()


def traces(wb):
    """The step-by-step panels in sheet order: [(name, grids, info)]."""
    return [(n, grids, info) for n, (_, grids, info, role) in records(wb).items() if role == "trace"]


def highlight_rules(ws, cells, others):
    """The conditional-format rules whose formula reads one of a panel's pick cells (absolute addresses such as
    "$H$26") and none of the other panels': [(range, rule)]."""
    return [(str(cf.sqref), rule) for cf in ws.conditional_formatting for rule in cf.rules
            if rule.formula and any(c in rule.formula[0] for c in cells)
            and not any(c in rule.formula[0] for c in others)]


@pytest.mark.parametrize("name", CONV_SHEETS)
def test_each_panel_lights_its_cells_in_a_colour_of_its_own(shipped, name):
    wb = load_workbook(shipped[name])
    ws = wb.worksheets[0]
    blocks = records(wb)
    panels = traces(wb)
    assert panels, "every convolution and pooling has a step-by-step panel"
    pick_cells = [{g.cell(0, 0, absolute=True) for g in grids[:3]} for _, grids, _ in panels]
    roles = {_rgb(c) for c in style.COLOURS.values()} | {_rgb(style.UNREAD["fg_color"])}
    fills = []
    for k, ((panel, grids, info), cells) in enumerate(zip(panels, pick_cells)):
        own = highlight_rules(ws, cells, set().union(*pick_cells) - cells)
        colours = {_rgb(rule.dxf.fill.bgColor.rgb) for _, rule in own}
        assert colours == {_rgb(style.PANEL_COLOURS[k % len(style.PANEL_COLOURS)])}, (panel, colours)
        fills.append(colours.pop())
        lit = {rng for rng, _ in own}
        output = info["output"]
        assert {g.ref() for g in blocks[output][1]} <= lit, (panel, "the picked cell lights up in every map")
        op_input = blocks[output][2]["input"]
        window_src = f"{output}_padded" if f"{output}_padded" in blocks else op_input
        assert {g.ref() for g in blocks[window_src][1]} <= lit, (panel, "the window lights up where it is read")
        weights = blocks[output][2].get("weight", [])
        if len(weights) > 1:  # the picked filter lights up too
            assert all(g.ref() in lit for w in weights for g in blocks[w][1]), panel
    assert len(set(fills)) == len(fills), "two panels never share a colour"
    assert not set(fills) & roles, "a panel's colour is no role's colour (not the yellow of the pick cells)"


@pytest.mark.parametrize("name", CONV_SHEETS)
def test_highlights_come_before_heat_maps_so_the_pick_stays_visible(shipped, name):
    ws = load_workbook(shipped[name]).worksheets[0]
    for cf in ws.conditional_formatting:
        scales = [r.priority for r in cf.rules if r.type == "colorScale"]
        lights = [r for r in cf.rules if r.type == "expression" and r.dxf and r.dxf.fill and r.dxf.fill.bgColor
                  and _rgb(r.dxf.fill.bgColor.rgb) in {_rgb(c) for c in style.PANEL_COLOURS}]
        for rule in lights:
            assert rule.stopIfTrue, (cf.sqref, "a lit cell stops the heat map in Excel")
            assert rule.dxf.border.left.style == "medium", (cf.sqref, "a frame shows over a heat map in LibreOffice")
            assert all(rule.priority < p for p in scales), (cf.sqref, rule.priority, scales)


def test_lee_panels_start_apart_and_the_pooling_panel_picks_a_pooled_cell(shipped):
    wb = load_workbook(shipped["lee-6x6"], data_only=True)
    by_name = {n: block(wb, n).ravel().tolist() for n, _, _ in traces(wb)}
    assert set(by_name) == {"stride1_trace", "stride2_trace", "pooled_trace"}
    assert by_name["stride1_trace"] == [1, 1, 1, 3, 3]  # the lecture's first cell
    f, r, c, total, chosen = by_name["pooled_trace"]
    assert total == chosen == block(wb, "pooled")[int(f) - 1, int(r) - 1, int(c) - 1]
    assert by_name["stride2_trace"][:3] != [1, 1, 1], "the stride-2 window starts away from the stride-1 one"


def test_cells_no_window_reads_are_hatched_with_a_note(shipped):
    wb = load_workbook(shipped["lee-6x6"])
    sheet, (g,), _, _ = records(wb)["image"]
    ws = wb[sheet]
    for i in range(6):
        for j in range(6):
            cell = ws.cell(g.top + i + 1, g.left + j + 1)
            unread = i == 5 or j == 5  # stride 2's windows end at row 5 and column 5
            assert (cell.fill.patternType == "darkUp") == unread, cell.coordinate
            if unread:
                assert _rgb(cell.fill.fgColor.rgb) == _rgb(style.UNREAD["fg_color"])
                assert _rgb(cell.fill.bgColor.rgb) == _rgb(style.COLOURS["input"]), "still an input cell"
                assert "No window of stride2 reads this cell" in cell.comment.text
                assert "never reached" in cell.comment.text
            else:
                assert cell.comment is None
    for name in CONV_SHEETS[1:]:  # every other toy sheet reads every cell
        sheet = load_workbook(shipped[name]).worksheets[0]
        assert not any(c.fill.patternType == "darkUp" for row in sheet.iter_rows() for c in row), name


def test_dilation_leaves_holes_that_are_marked(tmp_path):
    """A dilated filter that fits once reads only its taps: the cells between them are hatched, with why."""
    import xlconv

    spec = xlconv.from_arrays("Holes", {"x": np.arange(25).reshape(5, 5), "k": np.ones((3, 3))},
                              [xlconv.Conv("y", "y", "x", ("k",), bias=None, dilation=(2, 2))])
    wb = load_workbook(xlconv.build(spec, tmp_path))
    sheet, (g,), _, _ = records(wb)["x"]
    ws = wb[sheet]
    for i in range(5):
        for j in range(5):
            cell = ws.cell(g.top + i + 1, g.left + j + 1)
            assert (cell.fill.patternType == "darkUp") == (i % 2 == 1 or j % 2 == 1), cell.coordinate
            if i % 2:
                assert "dilation 2 spreads the filter's taps 2 cells apart" in cell.comment.text


def page_geometry(ws):
    """(landscape, rows' heights in points, the printed width in points) as the file states them."""
    landscape = ws.page_setup.orientation == "landscape"
    widths = {}
    for dim in ws.column_dimensions.values():  # openpyxl keeps a run of equal columns as one dimension
        for c in range(dim.min, dim.max + 1):
            widths[c] = dim.width
    width_points = sum(round((widths.get(c) or 8.43) * 7) for c in range(1, ws.max_column + 1)) * 0.75
    heights = [ws.row_dimensions[r].ht or style.HEADER_ROW_POINTS for r in range(1, ws.max_row + 1)]
    return landscape, heights, width_points


def check_print_setup(path):
    """A4, fitted to the width, and every page (between the manual breaks) holds its rows whole: no recorded
    block, panel or size table straddles a break, and no page is taller than the paper at that scale."""
    wb = load_workbook(path)
    ws = wb.worksheets[0]
    assert ws.page_setup.paperSize == 9 and ws.page_setup.orientation in ("landscape", "portrait")
    fitted = bool(ws.sheet_properties.pageSetUpPr and ws.sheet_properties.pageSetUpPr.fitToPage)
    breaks = sorted(b.id for b in ws.row_breaks.brk)  # 0-based first row of each new page
    # Excel ignores manual breaks on a sheet fitted to pages: a sheet with breaks has a fixed print scale.
    assert (fitted and ws.page_setup.fitToHeight == 0 and not breaks) or (not fitted and ws.page_setup.scale)
    assert not ws.print_options.gridLines
    for name, (sheet, grids, _, role) in records(wb).items():
        if sheet != ws.title:
            continue
        top = min(g.top for g in grids) - (1 if role == "trace" else 0)  # a panel: its heading, then picks
        bottom = max(g.bottom for g in grids)
        assert not any(top < b <= bottom for b in breaks), (path.name, name, top, bottom, breaks)
    landscape, heights, width = page_geometry(ws)
    page_w, page_h = style.A4_PRINTABLE[landscape]
    scale = min(1.0, page_w / width) if fitted else ws.page_setup.scale / 100
    assert width * scale <= page_w * 1.001 / style.LIBREOFFICE_COLUMN_STRETCH ** (0 if fitted else 1)
    room = page_h / scale
    repeat = heights[0] if ws.print_title_rows else 0.0
    starts = [0] + breaks
    for n, (a, b) in enumerate(zip(starts, starts[1:] + [len(heights)])):
        assert sum(heights[a:b]) + (repeat if n else 0) <= room + 0.5, (path.name, "page", n + 1, a, b)
    return breaks


@pytest.mark.parametrize("name", CONV_SHEETS + ["conv-arithmetic"])
def test_every_sheet_prints_its_blocks_whole(shipped, name):
    breaks = check_print_setup(shipped[name])
    if name == "lee-6x6":
        assert breaks, "Lee's sheet is more than a page: it breaks between blocks"


def test_cells_are_wide_enough_and_square(shipped, tmp_path):
    import xlconv

    for name in CONV_SHEETS:
        wb = load_workbook(shipped[name])
        ws = wb.worksheets[0]
        width = ws.column_dimensions["B"].width
        for block_name, (_, grids, _, role) in records(wb).items():
            if role not in ("input", "kernel", "padded", "dilated", "output", "bias"):
                continue
            height = ws.row_dimensions[grids[0].top + 1].ht
            # square within 4% in Excel (a column of w characters is 7w pixels) and in LibreOffice (6% wider)
            for columns_px in (round(width * 7), round(width * 7) * style.LIBREOFFICE_COLUMN_STRETCH):
                assert abs(height * 4 / 3 / columns_px - 1) <= 0.04, (name, block_name, "grid cells are square")
    # Two-decimal products and sums wider than 6 characters widen every column instead of showing "###".
    spec = xlconv.from_arrays("Wide", {"x": np.full((3, 3), -24.99), "k": np.full((2, 2), 99.99)},
                              [xlconv.Conv("y", "y", "x", ("k",), bias=(0.5,))])
    ws = load_workbook(xlconv.build(spec, tmp_path)).worksheets[0]
    assert round(ws.column_dimensions["B"].width * 7) >= len("-9995.50") * 7


def notes(ws):
    return {c.coordinate: c.comment.text for row in ws.iter_rows() for c in row if c.comment}


def check_notes(path):
    """Notes on the parameter cells (stride, padding, dilation; the panels' picks) and on each block's first
    formula cell, in the lecture's words."""
    wb = load_workbook(path)
    ws = wb.worksheets[0]
    found = notes(ws)
    for name, (sheet, grids, info, role) in records(wb).items():
        if role == "size" and info["axis"] == 0:
            for key, g in zip(info["rows"], grids):
                assert g.cell(0, 0) in found, (name, key)
            text = {key: found[g.cell(0, 0)] for key, g in zip(info["rows"], grids)}
            assert "Stride determines how filter shifts" in text["s"]
            assert "padding" in text["p"] and "d x (k - 1) + 1" in text["d"]
        elif role in ("output", "answer"):
            assert grids[0].cell(0, 0) in found, name
        elif role == "trace":
            for key, g in zip(info["cells"][:3], grids):
                if ws.cell(g.top + 1, g.left + 1).fill.fgColor.rgb.endswith(style.COLOURS["pick"][1:]):
                    assert g.cell(0, 0) in found, (name, key)
    return found


@pytest.mark.parametrize("name", CONV_SHEETS)
def test_parameter_and_first_formula_cells_have_notes_in_the_lectures_words(shipped, name):
    found = check_notes(shipped[name])
    assert any("Use Excel to verify!" in t for t in found.values())


def test_the_sheets_say_each_thing_once_and_name_maps_as_the_lecture(shipped):
    for name in CONV_SHEETS:
        ws = load_workbook(shipped[name]).worksheets[0]
        assert ws["B2"].value.count("cross-correlation") == 1, name
        texts = [c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
        assert not [t for t in texts if re.search(r"(\d+) x (\d+).*\(\1x\2\)", t)], name
        assert "products (formula)" in texts and "you type here" in texts
        assert "= total" not in texts, (name, "no bias and one channel: the sum of products is the total")
    wb = load_workbook(shipped["lee-6x6"])
    ws = wb.worksheets[0]
    for block_name in ("stride1", "stride2", "pooled"):
        _, grids, _, _ = records(wb)[block_name]
        assert [ws.cell(g.top, g.left + 1).value for g in grids] == ["Filter 1", "Filter 2"], block_name
    # One filter: no filter to pick, only a row and a column.
    wb = load_workbook(shipped["velickovic-7x7"])
    ws = wb.worksheets[0]
    (_, grids, _), = traces(wb)
    picks = {str(dv.sqref) for dv in ws.data_validations.dataValidation}
    assert grids[0].cell(0, 0) not in picks and {grids[1].cell(0, 0), grids[2].cell(0, 0)} <= picks
    assert ws.cell(grids[0].top + 1, grids[0].left + 1).value == 1  # what verify reads as the filter


def test_booleans_read_true_or_false(shipped):
    for name in CONV_SHEETS:
        ws = load_workbook(shipped[name]).worksheets[0]
        for row in ws.iter_rows():
            for c in row:
                if isinstance(c.value, bool):
                    assert c.number_format == style.BOOLEAN_FORMAT, (name, c.coordinate)


def test_screen_zoom_shows_the_main_content(shipped):
    for name in CONV_SHEETS:
        ws = load_workbook(shipped[name]).worksheets[0]
        zoom = ws.sheet_view.zoomScale
        assert 25 <= zoom <= 100, name
        _, heights, width = page_geometry(ws)
        assert width * 4 / 3 * zoom / 100 <= style.SCREEN_PX[0], (name, "the width fits the laptop window")
    wb = load_workbook(shipped["edge-laplacian"])
    ws = wb.worksheets[0]
    _, (photo,), _, _ = records(wb)["photo"]
    _, heights, _ = page_geometry(ws)
    photo_px = sum(heights[:photo.bottom + 1]) * 4 / 3 * ws.sheet_view.zoomScale / 100
    assert photo_px <= style.SCREEN_PX[1], "Edge Laplacian opens on the whole face"
    assert ws.freeze_panes == "A2", "a big sheet keeps its title in view"
    assert all(ws.cell(photo.top + 1 + i, photo.left + 1).border.left.style is None for i in range(3)), \
        "the photo's pixels have no borders, so the picture reads as a photo"
