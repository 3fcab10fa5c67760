"""RowStream and Deferred: fast and ordered writing of constant_memory sheets, read back by openpyxl and
compared with the XML XlsxWriter's public API writes."""

import re
import tempfile
import zipfile
from pathlib import Path

import pytest
import xlsxwriter
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from xlsxwriter.utility import xl_rowcol_to_cell

from xlconv.book import Book
from xlconv.rowstream import Deferred, RowStream, xf


def test_streamed_rows_mix_with_xlsxwriter_rows(tmp_path):
    path = tmp_path / "s.xlsx"
    with Book(path, "t", constant_memory=True) as book:
        ws = book.wb.add_worksheet("S")
        fmt = book.fmt(num_format="0.00", bold=True)
        ws.write_string(0, 0, "written by XlsxWriter")
        ws.write_number(1, 2, 5)
        stream = RowStream(ws)
        s = xf(fmt)
        stream.row(2, [stream.number("A3", s, "1.5"), stream.formula("B3", s, "A3*2+IF(A3<2,1,0)", "4"),
                       stream.text("C3", s, "a < b & c")], 0, 2, height=30)
        stream.row(4, [stream.blank("B5", s)], 1, 1)
        with pytest.raises(ValueError):
            stream.row(3, [], 0, 0)  # out of order
        ws.write_number(6, 0, 7)  # XlsxWriter again, below the stream
    wb = load_workbook(path)
    ws = wb["S"]
    assert ws["A1"].value == "written by XlsxWriter" and ws["C2"].value == 5
    assert ws["A3"].value == 1.5 and ws["B3"].value == "=A3*2+IF(A3<2,1,0)" and ws["C3"].value == "a < b & c"
    assert ws["A3"].number_format == "0.00" and ws["A3"].font.b
    assert ws.row_dimensions[3].height == 30
    assert ws["A7"].value == 7
    assert ws.dimensions == "A1:C7"
    cached = load_workbook(path, data_only=True)["S"]
    assert cached["B3"].value == 4


def test_stream_refuses_a_row_xlsxwriter_already_holds(tmp_path):
    with Book(tmp_path / "s.xlsx", "t", constant_memory=True) as book:
        ws = book.wb.add_worksheet("S")
        ws.write_number(3, 0, 1)
        stream = RowStream(ws)
        with pytest.raises(ValueError):
            stream.row(3, [], 0, 0)
        with pytest.raises(ValueError):
            stream.row(2, [], 0, 0)
        stream.row(4, [stream.number("A5", 0, "2")], 0, 0)


def test_stream_needs_constant_memory(tmp_path):
    with Book(tmp_path / "s.xlsx", "t") as book:
        with pytest.raises(ValueError):
            RowStream(book.wb.add_worksheet("S"))


def test_deferred_replays_in_row_order(tmp_path):
    path = tmp_path / "d.xlsx"
    with Book(path, "t", constant_memory=True) as book:
        ws = book.wb.add_worksheet("D")
        d = Deferred(ws)
        d.write_number(5, 0, 3)
        d.write_string(0, 1, "top")
        d.set_row(5, 40)
        d.merge_range(2, 0, 2, 3, "merged", book.fmt(bold=True))
        d.write_formula(5, 1, "=A6*2", None, 6)
        with pytest.raises(ValueError):
            d.merge_range(3, 0, 4, 0, "two rows")
        d.flush()
    ws = load_workbook(path)["D"]
    assert ws["B1"].value == "top" and ws["A3"].value == "merged" and ws["A6"].value == 3
    assert ws["B6"].value == "=A6*2" and abs(ws.row_dimensions[6].height - 40) < 0.5  # XlsxWriter rounds to pixels
    assert "A3:D3" in [str(r) for r in ws.merged_cells.ranges]


# -- RowStream writes the XML XlsxWriter's public API writes ------------------------------------------------
#
# Two constant_memory workbooks get the same cells and the same formats: one through write_number,
# write_formula (with its cached value), write_string, write_blank and set_row, the other through
# RowStream. Their worksheet XML must then be byte-identical, so Excel sees what XlsxWriter would give it.
# In constant_memory mode XlsxWriter writes strings as inlineStr, exactly as RowStream.text does, so text is
# compared exactly too. What legitimately differs is pinned down in test_known_differences_from_xlsxwriter.

FORMATS = [{"num_format": "0.00", "bold": True}, {"num_format": "0.000", "bg_color": "#DDEEFF"},
           {"bg_color": "#102030"}, {"italic": True, "font_size": 8}]
LAST_ROW, LAST_COL = 1_048_575, 16_383  # zero-based: XFD1048576


def _cached(value: str) -> float | int:
    """The number to hand write_formula so that it writes `value` back: XlsxWriter writes str() of it."""
    return int(value) if re.fullmatch(r"-?\d+", value) else float(value)


def _write_public(ws, r, c, cell, fmt, cached_as):
    kind, *args = cell
    if kind == "number":
        ws.write_number(r, c, float(args[0]), fmt)
    elif kind == "formula":
        ws.write_formula(r, c, "=" + args[0], fmt, cached_as(args[1]))
    elif kind == "text":
        ws.write_string(r, c, args[0], fmt)
    else:
        ws.write_blank(r, c, None, fmt)


def _stream_cell(stream, r, c, cell, s):
    kind, *args = cell
    ref = xl_rowcol_to_cell(r, c)
    return {"number": stream.number, "formula": stream.formula, "text": stream.text,
            "blank": stream.blank}[kind](ref, s, *args)


def _build(path: Path, rows, streamed: bool, cached_as=_cached) -> None:
    """rows: [(row, height or None, [(col, format number, cell), ...]), ...] in increasing row order.
    Row 0 is always written through XlsxWriter in both books, to exercise the hand-over."""
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    ws = wb.add_worksheet("S")
    fmts = [wb.add_format(props) for props in FORMATS]
    # XlsxWriter numbers formats in the order of their first use, which differs between the two ways of
    # writing; fixing every index up front, in creation order, makes the two styles.xml identical.
    xfs = [xf(f) for f in fmts]
    ws.write_string(0, 0, "header", fmts[0])
    stream = RowStream(ws) if streamed else None
    for r, height, cells in rows:
        if stream is not None:
            stream.row(r, [_stream_cell(stream, r, c, cell, xfs[k]) for c, k, cell in cells],
                       min(c for c, _, _ in cells), max(c for c, _, _ in cells), height)
        else:
            if height is not None:
                ws.set_row(r, height)
            for c, k, cell in cells:
                _write_public(ws, r, c, cell, fmts[k], cached_as)
    wb.close()


def _part(path: Path, name: str) -> str:
    with zipfile.ZipFile(path) as z:
        return z.read(name).decode("utf-8")


def _sheet_data(xml: str) -> str:
    m = re.search(r"<sheetData>.*</sheetData>|<sheetData/>", xml, re.S)
    assert m, xml
    return m.group(0)


def _both(tmp: Path, rows) -> tuple[str, str]:
    """(XlsxWriter's, RowStream's) worksheet XML of the same rows; their styles must be identical."""
    public, streamed = tmp / "public.xlsx", tmp / "stream.xlsx"
    _build(public, rows, streamed=False)
    _build(streamed, rows, streamed=True)
    assert _part(public, "xl/styles.xml") == _part(streamed, "xl/styles.xml")
    sheet = "xl/worksheets/sheet1.xml"
    return _part(public, sheet), _part(streamed, sheet)


F9 = [f"{v:.9g}" for v in (0.5, -0.25, 0.1, -3.14159274, 123.456789, 0.000123, 2.0, -7.0)]  # as xlconv writes
F7 = [f"{v:.7g}" for v in (4.0, -2.5, 0.3333333, 1234.567, -0.0001234)]

SAME_XML = {
    "numbers": [(1, None, [(0, 0, ("number", "-1")), (1, 0, ("number", "0")), (2, 1, ("number", "3")),
                           (3, 1, ("number", "-0.5")), (4, 0, ("number", "-123456.789"))]),
                (2, None, [(c, 1, ("number", v)) for c, v in enumerate(F9)])],
    "formulas with < > & and quotes": [
        (1, None, [(0, 0, ("number", "2")), (1, 0, ("number", "-3"))]),
        (2, None, [(0, 1, ("formula", "IF(A2<0,\"<0\",A2)", "2")),
                   (1, 1, ("formula", "IF(AND(A2>=0,B2<>1),A2&\"&amp; \"\"q\"\"\",0)", "2")),
                   (2, 1, ("formula", "A2*-0.5+B2/3", F7[3])),
                   (3, 1, ("formula", "'It''s'!A1+\"x\"", F7[1])),
                   (4, 1, ("formula", "MAX(0,A2:B2)", F7[2]))]),
        (3, None, [(c, 0, ("formula", f"A2*{v}", v)) for c, v in enumerate(F7)])],
    "text and blanks": [(1, None, [(1, 3, ("text", "filter 3")), (2, 3, ("text", "a < b & c > d")),
                                   (3, 3, ("text", 'say "w*0.5+0.5"')), (4, 2, ("blank",)),
                                   (5, 2, ("blank",)), (6, 3, ("text", "bias[0]"))])],
    "columns beyond Z": [(1, None, [(c, 1, ("number", str(c))) for c in (25, 26, 27, 51, 52, 701, 702, 16383)]),
                         (2, None, [(16383, 2, ("blank",))])],
    "row heights": [(1, 30.0, [(1, 2, ("blank",)), (2, 2, ("blank",))]),
                    (2, None, [(1, 0, ("number", "1"))]),
                    (3, 15.75, [(1, 1, ("formula", "B3*2", "2"))]),
                    (5, 409.5, [(0, 0, ("text", "tall"))]),
                    (9, 0.75, [(3, 2, ("blank",))])],
    "last row and column": [(LAST_ROW - 1, 22.5, [(0, 0, ("number", "1")), (LAST_COL, 0, ("number", "2"))]),
                            (LAST_ROW, None, [(LAST_COL, 1, ("formula", "XFD1048575+1", "3"))])],
}


@pytest.mark.parametrize("rows", list(SAME_XML.values()), ids=list(SAME_XML))
def test_rowstream_writes_xlsxwriters_xml(tmp_path, rows):
    public, streamed = _both(tmp_path, rows)
    assert _sheet_data(streamed) == _sheet_data(public)
    assert streamed == public  # the whole sheet, <dimension ref> included


_V = re.compile(r"<v>([^<]*)</v>")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=12))
def test_xlconv_number_text_is_the_double_xlsxwriter_writes(values):
    """xlconv writes numbers as f"{v:.9g}" and cached results as f"{v:.7g}"; XlsxWriter, given float(text),
    writes f"{x:.16G}" (numbers) and repr(x) (cached values). The texts may differ ("1e-05" vs "1E-05",
    "98765.4321" vs "98765.43210000001") but must be the same IEEE double, and everything else identical."""
    nines, sevens = [f"{v:.9g}" for v in values], [f"{v:.7g}" for v in values]
    rows = [(1, None, [(c, 0, ("number", s)) for c, s in enumerate(nines)]),
            (2, None, [(c, 1, ("formula", f"A2*{c}", s)) for c, s in enumerate(sevens)])]
    with tempfile.TemporaryDirectory() as tmp:
        public, streamed = Path(tmp) / "public.xlsx", Path(tmp) / "stream.xlsx"
        _build(public, rows, streamed=False, cached_as=float)
        _build(streamed, rows, streamed=True)
        pub = _sheet_data(_part(public, "xl/worksheets/sheet1.xml"))
        ours = _sheet_data(_part(streamed, "xl/worksheets/sheet1.xml"))
    assert _V.findall(ours) == nines + sevens  # RowStream writes xlconv's text verbatim
    as_double = lambda xml: _V.sub(lambda m: f"<v>{float(m.group(1)).hex()}</v>", xml)  # noqa: E731
    assert as_double(ours) == as_double(pub)


# What differs from XlsxWriter, and why it does not matter to Excel: (stream it, write it publicly,
# RowStream's XML, XlsxWriter's XML). st is the stream and s the XF index of fmt.
KNOWN_DIFFERENCES = {
    # s="0" is the default XF: the same cell. xlconv always gives a format.
    "unformatted cell": (lambda st, s: st.number("B2", 0, "7"), lambda ws, fmt: ws.write_number(1, 1, 7),
                         '<c r="B2" s="0"><v>7</v></c>', '<c r="B2"><v>7</v></c>'),
    # xsd:double allows e and E; both name the same double.
    "exponent": (lambda st, s: st.number("B2", s, "1e-05"), lambda ws, fmt: ws.write_number(1, 1, 1e-05, fmt),
                 "<v>1e-05</v>", "<v>1E-05</v>"),
    # .16G shows binary noise; both texts round to the same double (see the hypothesis test above).
    "16 digits": (lambda st, s: st.number("B2", s, "98765.4321"),
                  lambda ws, fmt: ws.write_number(1, 1, 98765.4321, fmt),
                  "<v>98765.4321</v>", "<v>98765.43210000001</v>"),
    # write_formula's cached value is str(number): a float that is a whole number gets ".0".
    "whole cached value": (lambda st, s: st.formula("B2", s, "1+1", "2"),
                           lambda ws, fmt: ws.write_formula(1, 1, "=1+1", fmt, 2.0),
                           "<v>2</v>", "<v>2.0</v>"),
    # set_row rounds a height to whole pixels (3/4 point); RowStream writes it as given and Excel draws it
    # in whole pixels anyway. xlconv's Filters sheet uses row_points(4.6) = 27.9 points.
    "unaligned height": (lambda st, s: st.row(1, [st.number("B2", s, "7")], 1, 1, 27.9),
                         lambda ws, fmt: (ws.set_row(1, 27.9), ws.write_number(1, 1, 7, fmt)),
                         '<row r="2" ht="27.9" customHeight="1">', '<row r="2" ht="27.75" customHeight="1">'),
    # XlsxWriter adds xml:space="preserve" to text with leading or trailing blanks; RowStream does not, so
    # such text should not be streamed (xlconv's labels have none).
    "leading blank": (lambda st, s: st.text("B2", s, " x"), lambda ws, fmt: ws.write_string(1, 1, " x", fmt),
                      "<t> x</t>", '<t xml:space="preserve"> x</t>'),
}


@pytest.mark.parametrize("stream_it, write_it, ours, theirs", list(KNOWN_DIFFERENCES.values()),
                         ids=list(KNOWN_DIFFERENCES))
def test_known_differences_from_xlsxwriter(tmp_path, stream_it, write_it, ours, theirs):
    xml = {}
    for name in ("stream", "public"):
        path = tmp_path / f"{name}.xlsx"
        wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
        ws = wb.add_worksheet("S")
        fmt = wb.add_format({"bold": True})
        if name == "public":
            write_it(ws, fmt)
        else:
            stream = RowStream(ws)
            cell = stream_it(stream, xf(fmt))
            if cell is not None:
                stream.row(1, [cell], 1, 1)
        wb.close()
        xml[name] = _sheet_data(_part(path, "xl/worksheets/sheet1.xml"))
    assert ours in xml["stream"] and theirs in xml["public"]
    assert xml["stream"].replace(ours, theirs) == xml["public"]  # and that is the only difference


@pytest.mark.parametrize("r, first_col, last_col, cell", [
    (LAST_ROW + 1, 0, LAST_COL, "XFD1048577"),
    (LAST_ROW + 1, 0, 0, "A1048577"),
    (0, 0, LAST_COL + 1, "XFE1"),
    (5, 3, LAST_COL + 10, "XFN6"),
    (0, -1, 3, "(row 1, column 0)"),
    (-1, 0, 0, "(row 0, column 1)"),
])
def test_out_of_range_cells_raise(tmp_path, r, first_col, last_col, cell):
    wb = xlsxwriter.Workbook(str(tmp_path / "s.xlsx"), {"constant_memory": True})
    ws = wb.add_worksheet("S")
    stream = RowStream(ws)
    with pytest.raises(ValueError, match=re.escape(f"cell {cell} is outside Excel's 1,048,576 rows x 16,384 columns")):
        stream.row(r, [], first_col, last_col)
    assert (ws.dim_rowmin, ws.dim_colmin, ws.dim_rowmax, ws.dim_colmax) == (None,) * 4  # nothing recorded
    stream.row(LAST_ROW, [stream.number("XFD1048576", 0, "1")], LAST_COL, LAST_COL)  # the last cell is fine
    wb.close()


@pytest.mark.parametrize("first, second", [(4, 4), (4, 3), (4, 0)])
def test_rows_out_of_order_raise(tmp_path, first, second):
    wb = xlsxwriter.Workbook(str(tmp_path / "s.xlsx"), {"constant_memory": True})
    stream = RowStream(wb.add_worksheet("S"))
    stream.row(first, [stream.number(f"A{first + 1}", 0, "1")], 0, 0)
    with pytest.raises(ValueError, match="out of order"):
        stream.row(second, [stream.number(f"A{second + 1}", 0, "2")], 0, 0)
    wb.close()
