"""The output-size sheet: the unrounded value includes dilation and floors to H_out on every row; ceil_mode only on
pooling rows; readable formulas; notes, page set-up, zoom and frozen headings, in the worksheet and in an
exercise's student and key files alike."""

import math
import re
import zipfile

import pytest
from blocks import block, cell_of
from conftest import recalculated_values
from openpyxl import load_workbook

import xlconv
from xlconv import reference as ref
from xlconv.exercise import exercise
from xlconv.grade import load_key
from xlconv.sheets import size, style
from xlconv.spec import load
from xlconv.verify import read_records

SHEET = "Output size"
H_OUT = [55, 27, 27, 13, 13, 13, 13, 6, 13]
UNROUNDED = [55.25, 27, 27, 13, 13, 13, 13, 6, 13]  # the dilated example: (13 + 4 - 2*2 - 1)/1 + 1, not 15
POOL_ROWS = {1, 3, 7}
HEADINGS = {"H_in", "padding", "kernel_size", "stride", "dilation"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return xlconv.build("output-size", tmp_path_factory.mktemp("size"))


@pytest.fixture(scope="module")
def ex(tmp_path_factory):
    return exercise("output-size", tmp_path_factory.mktemp("ex") / "ex", seed=7)


def table(path):
    """(worksheet, {column key: 1-based column}, first data row (1-based)) of the size table."""
    ws = load_workbook(path)[SHEET]
    heads = {ws.cell(size.TABLE_TOP, c).value: c for c in range(1, ws.max_column + 1)}
    col = {key: heads[h] for key, h, _ in size.COLUMNS if h in heads}
    return ws, col, size.TABLE_TOP + 1


def sheet_xml(path):
    with zipfile.ZipFile(path) as z:
        return z.read("xl/worksheets/sheet1.xml").decode(), z.read("xl/workbook.xml").decode()


def test_is_pool_reads_the_spec_rows():
    spec = load("output-size")
    assert {n for n, row in enumerate(spec.rows) if size.is_pool(row)} == POOL_ROWS


def test_reference_unrounded_value_takes_dilation_and_keeps_old_calls():
    assert ref.lecture_out_size(224, 11, 4, 2) == 55.25
    assert ref.lecture_out_size(13, 3, 1, 2, 2) == 13
    for h, k, s, p, d in [(224, 11, 4, 2, 1), (13, 3, 1, 2, 2), (31, 5, 3, 1, 3), (7, 2, 2, 0, 2)]:
        assert math.floor(ref.lecture_out_size(h, k, s, p, d)) == ref.out_size(h, k, s, p, d)
        assert ref.lecture_out_size(h, k, s, p, 1) == (h + 2 * p - k) / s + 1  # the lecture's form when d = 1


def test_unrounded_includes_dilation_and_floors_to_h_out_on_every_row(built):
    ws, col, top = table(built)
    values = load_workbook(built, data_only=True)[SHEET]
    unrounded = [values.cell(top + n, col["lecture"]).value for n in range(9)]
    outs = [values.cell(top + n, col["out"]).value for n in range(9)]
    assert unrounded == UNROUNDED and outs == H_OUT
    assert all(math.floor(u) == o for u, o in zip(unrounded, outs))
    f = ws.cell(top, col["lecture"]).value
    assert f == "=(D6+2*E6-H6*(F6-1)-1)/G6+1"
    assert "d(k−1)" in ws.cell(size.TABLE_TOP, col["lecture"]).value
    # The heading's note says what the value is when d = 1: the lecture's form.
    assert "the lecture's (H_in + 2 × padding − kernel size)/Stride + 1" in ws.cell(top, col["lecture"]).comment.text


def test_ceil_mode_only_on_pooling_rows_and_readable_h_out(built):
    ws, col, top = table(built)
    for n in range(9):
        r = top + n
        ceil, out = ws.cell(r, col["ceil"]), ws.cell(r, col["out"]).value
        if n in POOL_ROWS:
            assert ceil.value is False and ceil.number_format == style.BOOLEAN_FORMAT
            assert out.startswith("=IF(I") and out.count("IF(") == 1 and "MIN(" in out
        else:
            assert ceil.value == size.NOT_POOLING and ceil.fill.fgColor.rgb.endswith(style.NOT_APPLICABLE[1:])
            assert out == f"=INT((D{r}+2*E{r}-H{r}*(F{r}-1)-1)/G{r})+1"
        assert len(out) <= 120  # the old nested IF(ceil_mode, ... IF(...)) was 150 and more


def test_the_size_records_skip_ceil_on_convolution_rows(built):
    records = {r.name: r for r in read_records(built)[0]}
    assert records["size_0"].info["rows"] == ["in", "k", "s", "p", "d", "lecture", "out"]
    assert records["size_1"].info["rows"] == ["in", "k", "s", "p", "d", "ceil", "lecture", "out"]


def widths(path):
    """{1-based column: width in characters} from the sheet XML."""
    xml, _ = sheet_xml(path)
    out = {}
    for m in re.finditer(r'<col min="(\d+)" max="(\d+)" width="([\d.]+)"', xml):
        for c in range(int(m.group(1)), int(m.group(2)) + 1):
            out[c] = float(m.group(3))
    return out


def check_look(path, worked):
    """What the worksheet, the key and the student's file share: notes, booleans, widths, set-up, zoom, panes."""
    ws, col, top = table(path)
    for key in ("in", "p", "k", "s", "d", "ceil"):
        note = ws.cell(size.TABLE_TOP, col[key]).comment
        assert note is not None and len(note.text) > 40, key
    for key in ("lecture", "out"):
        assert ws.cell(top, col[key]).comment is not None, key
    assert ws.cell(top + 1, col["in"]).comment is not None  # the first chained H_in
    notes = " ".join(c.comment.text for row in ws.iter_rows() for c in row if c.comment)
    assert ("55.25" in notes) == worked  # a student's notes quote no worked answer
    assert "Stride determines how filter shifts" in notes
    # No ### : every number fits its column (about one character per digit, plus a margin).
    w = widths(path)
    for row in load_workbook(path, data_only=True)[SHEET].iter_rows(min_row=top, max_row=top + 8):
        for c in row:
            if isinstance(c.value, (int, float)) and not isinstance(c.value, bool):
                shown = f"{c.value:.2f}" if c.number_format == "0.00" else f"{c.value:g}"
                assert len(shown) + 2 <= w[c.column], c.coordinate
            if isinstance(c.value, bool):
                assert len("FALSE") + 2 <= w[c.column]
    xml, book_xml = sheet_xml(path)
    setup = re.search(r"<pageSetup [^>]*>", xml).group(0)
    assert 'orientation="landscape"' in setup and 'fitToHeight="0"' in setup and 'paperSize="9"' in setup
    assert '<pageSetUpPr fitToPage="1"/>' in xml
    assert re.search(r'<definedName name="_xlnm.Print_Titles" localSheetId="0">\'Output size\'!\$5:\$5<', book_xml)
    assert '<pane ySplit="5" topLeftCell="A6" activePane="bottomLeft" state="frozen"/>' in xml
    zoom = int(re.search(r'zoomScale="(\d+)"', xml).group(1))
    content = sum(style.column_px(w.get(c, 8.43)) for c in range(1, max(w) + 1))
    assert 50 <= zoom <= 100 and content * zoom / 100 <= style.SCREEN_PX[0]
    heights = [float(h) for h in re.findall(r'<row r="\d+"[^>]* ht="([\d.]+)"', xml)]
    assert sum(heights) * 4 / 3 * zoom / 100 <= style.SCREEN_PX[1]
    return ws, col, top


def test_worksheet_look(built):
    check_look(built, worked=True)


@pytest.mark.parametrize("kind", ["student", "key"])
def test_exercise_files_look_the_same(ex, kind):
    path = (ex.student_files if kind == "student" else ex.key_files)[0]
    ws, col, top = check_look(path, worked=kind == "key")
    for n in range(9):
        ceil = ws.cell(top + n, col["ceil"]).value
        assert (ceil is False) if n in POOL_ROWS else ceil == size.NOT_POOLING
    # A chained H_in whose H_out above is still blank shows nothing on the student's sheet, not a size of 0.
    assert ws.cell(top + 1, col["in"]).number_format == ("0" if kind == "key" else "0;-0;;@")
    if kind == "key":
        assert ws.cell(top, col["out"]).value == "=INT((D6+2*E6-H6*(F6-1)-1)/G6)+1"
        assert ws.cell(top + 8, col["lecture"]).value == "=(D14+2*E14-H14*(F14-1)-1)/G14+1"


def test_exercise_records_a_convolution_row_without_ceil_mode(ex):
    k = load_key(ex.out_dir)
    widths_ = {r.name: r.grids[0].width for r in k.inputs if r.name.startswith("layer") and "h_in" not in r.name}
    assert [widths_[f"layer{n}"] for n in range(9)] == [5 if n in POOL_ROWS else 4 for n in range(9)]
    expected = k.expected("")
    assert expected["H_out"].ravel().tolist() == H_OUT
    assert expected["unrounded"].ravel().tolist() == UNROUNDED  # verify's lecture_size check takes dilation


@pytest.mark.libreoffice
def test_recalculated_sheet_and_key_agree_and_verify(built, ex):
    wb, key = recalculated_values([built, ex.key_files[0]])
    assert block(wb, "size_8").ravel().tolist() == [13, 3, 1, 2, 2, 13, 13]  # in, k, s, p, d, unrounded, H_out
    reports = xlconv.verify([built, ex.key_files[0]])
    assert all(r.ok for r in reports), [r.lines() for r in reports]


@pytest.mark.libreoffice
def test_ceil_mode_typed_on_a_pooling_row_follows_torch(built, tmp_path):
    # 227 gives conv1 (227 + 4 - 11)/4 + 1 = 56, and the pooling (56 - 3)/2 + 1 = 27.5: floor 27, ceil 28.
    wb = load_workbook(built)
    cell_of(wb, "size_0", 0, 0, 0).value = 227
    cell_of(wb, "size_1", 5, 0, 0).value = True  # size_1's sixth cell is ceil_mode
    edited = tmp_path / "ceil.xlsx"
    wb.save(edited)
    (after,) = recalculated_values([edited])
    assert block(after, "size_1").ravel().tolist() == [56, 3, 2, 0, 1, 1, 27.5, 28]
    assert block(after, "size_2")[0, 0, 0] == 28  # the chain follows
    report, = xlconv.verify([edited])
    assert report.ok, "\n".join(report.lines())
