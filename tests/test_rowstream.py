"""RowStream and Deferred: fast and ordered writing of constant_memory sheets, read back by openpyxl."""

import pytest
from openpyxl import load_workbook

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
