"""Writing a workbook: XlsxWriter (formulas with cached values), styles, the block record, atomic save."""

from __future__ import annotations

import datetime as dt
import math
import re
import zlib
from collections import OrderedDict
from io import BytesIO, StringIO
from pathlib import Path
from types import TracebackType
from zipfile import ZIP64_LIMIT, ZIP_DEFLATED, ZipFile, ZipInfo
from typing import Any, Callable, Literal, Sequence

import xlsxwriter
from xlsxwriter.comments import Comments, CommentType
from xlsxwriter.format import Format
from xlsxwriter.packager import Packager
from xlsxwriter.sharedstrings import SharedStrings
from xlsxwriter.vml import Vml
from xlsxwriter.utility import xl_rowcol_to_cell_fast
from xlsxwriter.worksheet import (CellBlankTuple, CellFormulaTuple, CellNumberTuple, CellStringTuple, Worksheet,
                                  re_dynamic_function)

from xlconv import record
from xlconv._version import __version__
from xlconv.atomic import atomic_path, in_folder
from xlconv.cells import MAX_FORMULA_CHARS, Grid
from xlconv.errors import SpecError

# Fixed document timestamps make the same spec give byte-identical files.
FIXED_DATE = dt.datetime(2024, 1, 1, 0, 0, 0)
# True: write with XlsxWriter's own classes, none of the fast paths below (tests compare the two byte for byte).
_PLAIN = False
_PREPARED: dict[tuple[str, bool], str] = {}
_XML_ESCAPES = re.compile('["&<>\n]')  # what XlsxWriter's XML writer escapes
_PREPARED_MAX = 200_000
_PLAIN_FORMULAS: dict[tuple[str, bool], str] = {}  # formulas that are neither dynamic nor array -> prepared
_ERROR_CODES = ("#DIV/0!", "#N/A", "#NAME?", "#NULL!", "#NUM!", "#REF!", "#VALUE!")  # a formula's cached errors
_URL_STARTS = ("ftp", "http", "mailto:", "internal:", "external:", "file://")  # what XlsxWriter may write as a link


_VERTICES: dict[tuple[Any, ...], list[Any]] = {}  # (the sheet's sizes, a note's box) -> where the box lands
_CF_XML: dict[tuple[str, str], str] = {}  # a sheet's conditional-format rules -> their XML
_SI_XML: dict[str, str] = {}  # a shared string -> its <si> element


def _keep(cache: dict[Any, Any], key: Any, value: Any, limit: int) -> Any:
    """cache[key] = value, the cache emptied first when it holds limit entries (the caches below serve the variants
    of one exercise; a huge workbook's entries rarely repeat, so they are bounded rather than kept); returns value."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value


def _captured(writer: Any, write: Callable[[], None]) -> str:
    """What write() writes to writer's XML output, returned instead of written."""
    fh = writer.fh
    writer.fh = StringIO()
    try:
        write()
        return str(writer.fh.getvalue())
    finally:
        writer.fh = fh


def _write_once(writer: Any, cache: dict[Any, str], key: Any, write: Callable[[], None], limit: int = 64) -> None:
    """What write() writes to writer's XML output, written from cache when key (None: never cached) was written
    before; the cache is emptied when it holds limit texts."""
    text = cache.get(key) if key is not None else None
    if text is None:
        text = _captured(writer, write)
        if key is not None:
            _keep(cache, key, text, limit)
    writer.fh.write(text)


class _SharedStrings(SharedStrings):
    """XlsxWriter's shared strings part, each <si> element (a pure function of its string) written once: most
    strings of a variant's workbook are those of the one before."""

    def _write_si(self, string: str) -> None:
        _write_once(self, _SI_XML, string, lambda: super(_SharedStrings, self)._write_si(string), 20_000)


_COMMENTS: dict[tuple[Any, ...], Any] = {}  # (cell, text, options) -> a note as XlsxWriter made it
_RULES: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}  # (range, options) -> (range, the stored rule)


class _Worksheet(Worksheet):
    """XlsxWriter's worksheet with its formula preparation memoized.

    XlsxWriter runs some 30-90 regular expressions over every formula to spell out Excel's newer functions;
    an exercise writes the same formulas in every variant, so that preparation (a pure function of the text
    and the future-functions flag) was most of a variant's time.
    """

    # XlsxWriter escapes every attribute and text of the sheet's XML through a regular expression, and the
    # numbers (most attributes) only by catching the TypeError it raises; these fast paths return what it
    # would return, and hand anything that may need escaping to it.

    def _escape_attributes(self, attribute: Any) -> Any:
        if type(attribute) is not str or not _XML_ESCAPES.search(attribute):
            return attribute
        return super()._escape_attributes(attribute)

    def _escape_control_characters(self, data: Any) -> Any:
        if type(data) is not str or ("_x" not in data and data.isprintable()):
            return data
        return Worksheet._escape_control_characters(data)

    # The sheet's rows as XlsxWriter's _write_rows, _calculate_spans and _write_cell write them, with the cells
    # of a row taken from its dict rather than by probing every column of the sheet's width, and the common cells
    # (a number, a shared string, a formula with a number, a blank, with their own format or none) written by one
    # f-string each instead of XlsxWriter's attribute lists: the same characters (tests/test_exercise_fast.py).

    def _calculate_spans(self) -> None:
        spans = {}
        span_min: int | None = None
        span_max = 0
        lo, hi = self.dim_colmin, self.dim_colmax
        for row_num in range(self.dim_rowmin, self.dim_rowmax + 1):
            for source in (self.table, self.comments):
                if row_num in source:
                    cols = [c for c in source[row_num] if lo <= c <= hi]
                    if cols and span_min is None:
                        span_min, span_max = min(cols), max(cols)
                    elif cols:
                        span_min, span_max = min(span_min, *cols), max(span_max, *cols)
            if ((row_num + 1) % 16 == 0) or row_num == self.dim_rowmax:
                if span_min is not None:
                    spans[int(row_num / 16)] = f"{span_min + 1}:{span_max + 1}"
                    span_min = None
        self.row_spans = spans

    def _write_rows(self) -> None:
        self._calculate_spans()
        lo, hi = self.dim_colmin, self.dim_colmax
        for row_num in range(self.dim_rowmin, self.dim_rowmax + 1):
            if row_num in self.row_info or row_num in self.comments or self.table[row_num]:
                span = self.row_spans.get(int(row_num / 16))
                row = self.table[row_num]
                if row:
                    self._write_row(row_num, span, self.row_info.get(row_num))
                    for col_num in sorted(c for c in row if lo <= c <= hi):
                        self._write_cell(row_num, col_num, row[col_num])
                    self._xml_end_tag("row")
                else:
                    self._write_empty_row(row_num, span, self.row_info.get(row_num))

    def _write_cell(self, row: int, col: int, cell: Any) -> None:
        kind = type(cell)
        fmt = cell.format
        if fmt:
            s = f' s="{fmt._get_xf_index()}"'
        elif (row in self.row_info and self.row_info[row].row_format) or col in self.col_info:
            super()._write_cell(row, col, cell)  # a row's or column's format
            return
        else:
            s = ""
        if kind is CellNumberTuple:
            self.fh.write(f'<c r="{xl_rowcol_to_cell_fast(row, col)}"{s}><v>{cell.number:.16G}</v></c>')
        elif kind is CellStringTuple and not self.constant_memory:
            self.fh.write(f'<c r="{xl_rowcol_to_cell_fast(row, col)}"{s} t="s"><v>{cell.string}</v></c>')
        elif kind is CellFormulaTuple and not isinstance(cell.value, (bool, str)):
            formula = self._escape_data(cell.formula)
            self.fh.write(f'<c r="{xl_rowcol_to_cell_fast(row, col)}"{s}><f>{formula}</f><v>{cell.value}</v></c>')
        elif kind is CellFormulaTuple and type(cell.value) is str:
            value = cell.value
            t = "" if value == "" else ' t="e"' if value in _ERROR_CODES else ' t="str"'
            self.fh.write(f'<c r="{xl_rowcol_to_cell_fast(row, col)}"{s}{t}><f>{self._escape_data(cell.formula)}</f>'
                          f'<v>{self._escape_data(value)}</v></c>')
        elif kind is CellBlankTuple:
            self.fh.write(f'<c r="{xl_rowcol_to_cell_fast(row, col)}"{s}/>')
        else:
            super()._write_cell(row, col, cell)

    # The write methods as XlsxWriter's, for the calls the sheets make (row and column numbers, a number, a
    # formula, a string, a blank): without the A1-notation wrapper, the per-call regular expressions (a formula's
    # dynamic-array check, a string's URL check) made once per text, and the cell stored directly. Anything else
    # (A1 notation, out of bounds, constant_memory, NaN, a user write handler) goes to XlsxWriter's own code.

    def _fast(self, row: Any, col: Any) -> bool:
        """Whether (row, col) is a plain in-bounds cell of an in-memory sheet; if so, its dimensions are noted."""
        return (type(row) is int and type(col) is int and not self.constant_memory
                and self._check_dimensions(row, col) == 0)

    def write_number(self, row: Any, col: Any, *args: Any, **kwargs: Any) -> Any:
        number: Any = args[0] if args else None
        if (kwargs or len(args) > 2 or type(number) not in (int, float) or not math.isfinite(number)
                or not self._fast(row, col)):
            return super().write_number(row, col, *args, **kwargs)
        self.table[row][col] = CellNumberTuple(number, args[1] if len(args) > 1 else None)
        return 0

    def write_formula(self, row: Any, col: Any, *args: Any, **kwargs: Any) -> Any:
        formula = args[0] if args else None
        if kwargs or not 1 <= len(args) <= 3 or type(formula) is not str or self.constant_memory:
            return super().write_formula(row, col, *args, **kwargs)
        key = (formula, bool(self.use_future_functions))
        prepared = _PLAIN_FORMULAS.get(key)
        if prepared is None:
            if (not formula or re_dynamic_function.search(formula)
                    or (formula.startswith("{") and formula.endswith("}"))):
                return super().write_formula(row, col, *args, **kwargs)
            prepared = _keep(_PLAIN_FORMULAS, key, self._prepare_formula(formula), _PREPARED_MAX)
        if not self._fast(row, col):
            return super().write_formula(row, col, *args, **kwargs)
        self.table[row][col] = CellFormulaTuple(prepared, args[1] if len(args) > 1 else None,
                                                args[2] if len(args) > 2 else 0)
        return 0

    def write_blank(self, row: Any, col: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs or not 1 <= len(args) <= 2 or type(row) is not int or type(col) is not int:
            return super().write_blank(row, col, *args, **kwargs)
        if len(args) < 2 or args[1] is None:
            return 0  # XlsxWriter stores no blank cell without a format, and notes no dimensions for it
        if not self._fast(row, col):
            return super().write_blank(row, col, *args, **kwargs)
        self.table[row][col] = CellBlankTuple(args[1])
        return 0

    def write_string(self, row: Any, col: Any, *args: Any, **kwargs: Any) -> Any:
        string = args[0] if args else None
        if (kwargs or not 1 <= len(args) <= 2 or type(string) is not str or len(string) > self.xls_strmax // 2
                or not self._fast(row, col)):
            return super().write_string(row, col, *args, **kwargs)
        self.table[row][col] = CellStringTuple(self.str_table._get_shared_string_index(string),
                                               args[1] if len(args) > 1 else None)
        return 0

    def write_row(self, *args: Any, **kwargs: Any) -> Any:
        if (kwargs or not 3 <= len(args) <= 4 or type(args[0]) is not int or self.write_handlers
                or self.strings_to_numbers or self.strings_to_formulas):
            return super().write_row(*args, **kwargs)
        row, col, data = args[:3]
        cell_format = args[3] if len(args) > 3 else None
        for token in data:
            kind = type(token)
            if token is None or (kind is str and token == ""):
                error = self.write_blank(row, col, None, cell_format)
            elif kind in (int, float):
                error = self.write_number(row, col, token, cell_format)
            elif kind is str and not (":" in token and self.strings_to_urls and token.startswith(_URL_STARTS)):
                error = self.write_string(row, col, token, cell_format)
            else:
                error = self._write(row, col, token, cell_format)
            if error:
                return error
            col += 1
        return 0

    def write_comment(self, *args: Any, **kwargs: Any) -> Any:
        """XlsxWriter's write_comment, the note copied from one made earlier with the same cell, text and options
        (XlsxWriter parses the options and lays out every note anew)."""
        if (kwargs or not 3 <= len(args) <= 4 or type(args[0]) is not int or type(args[1]) is not int
                or type(args[2]) is not str or len(args[2]) > self.xls_strmax // 2):
            return super().write_comment(*args, **kwargs)
        row, col, comment = args[:3]
        options = args[3] if len(args) > 3 else None
        shown = _exact(options)  # a note's text is keyed as it is: printing it again would cost more than its hash
        key = None if shown is None else ("comment", row, col, comment, shown)
        proto = _COMMENTS.get(key) if key is not None else None
        if proto is None or not self._fast(row, col):
            done = super().write_comment(*args)
            if done == 0 and key is not None:
                made = self.comments[row][col]
                made._xlconv_made = key
                proto = _keep(_COMMENTS, key, CommentType.__new__(CommentType), 10_000)
                proto.__dict__.update(made.__dict__)
            return done
        self.has_vml = True
        self.has_comments = True
        made = CommentType.__new__(CommentType)
        made.__dict__.update(proto.__dict__)
        made.vertices = list(proto.vertices)
        self.comments[row][col] = made
        return 0

    def conditional_format(self, *args: Any, **kwargs: Any) -> Any:
        """XlsxWriter's conditional_format, the stored rule copied from one made earlier with the same range and
        options: only the rule's format (a dxf index the workbook gives out) and its priority are new."""
        if (kwargs or len(args) != 5 or any(type(a) is not int for a in args[:4]) or type(args[4]) is not dict
                or self.use_data_bars_2010):
            return super().conditional_format(*args, **kwargs)
        options = args[4]
        fmt = options.get("format")
        if fmt is not None and not isinstance(fmt, Format):
            return super().conditional_format(*args)
        # The rule depends on the format only through its dxf index (asked of the format below), so the key
        # holds whether there is one, not which.
        key = _exact(("cf", args[:4], {k: (v is not None) if k == "format" else v for k, v in options.items()}))
        done = _RULES.get(key) if key is not None else None
        if done is None:
            count = self.dxf_priority
            status = super().conditional_format(*args)
            if status == 0 and key is not None and self.dxf_priority == count + 1:
                cell_range, stored = next((r, rules[-1]) for r, rules in reversed(self.cond_formats.items())
                                          if rules and rules[-1].get("priority") == count)
                if not stored.get("is_data_bar_2010"):
                    _keep(_RULES, key, (cell_range, dict(stored)), 10_000)
            return status
        cell_range, stored = done
        rule = dict(stored)
        if fmt:
            index = fmt._get_dxf_index()
            if stored.get("format") is not None:  # a colour scale drops its format after the index is given out
                rule["format"] = index
        rule["priority"] = self.dxf_priority
        self.dxf_priority += 1
        if cell_range in self.cond_formats:
            self.cond_formats[cell_range].append(rule)
        else:
            self.cond_formats[cell_range] = [rule]
        return 0

    def _prepare_vml_objects(self, *args: Any) -> Any:
        # Where a note's box lands depends on its own offsets and size and on the sheet's column widths and row
        # heights, which are fixed by now: the sizes are keyed once for all the notes of the sheet.
        columns = sorted((c, i.width, i.hidden) for c, i in self.col_info.items())
        self.__dict__["_xlconv_sizes"] = _exact(("sizes", columns, sorted(self.row_sizes.items()),
                                                 self.default_col_width, self.default_row_height,
                                                 self.col_size_changed))
        try:
            return super()._prepare_vml_objects(*args)
        finally:
            del self.__dict__["_xlconv_sizes"]

    def _comment_vertices(self, comment: Any) -> Any:
        sizes = self.__dict__.get("_xlconv_sizes")
        key = None if sizes is None else (sizes, comment.start_col, comment.start_row, comment.x_offset,
                                          comment.y_offset, comment.width, comment.height)
        done = _VERTICES.get(key) if key is not None else None
        if done is None:
            done = super()._comment_vertices(comment)
            if key is not None:
                _keep(_VERTICES, key, list(done), 10_000)
        return list(done)

    def _write_conditional_formats(self) -> None:
        """XlsxWriter's conditional formats, their XML written once per set of rules (the same in every variant)."""
        # A 2010 data bar's rule also files the bar for the sheet's extension list as it is written: never cached.
        bars = any(rule.get("is_data_bar_2010") for rules in self.cond_formats.values() for rule in rules)
        key = None if bars else _exact(("cf-xml", self.cond_formats))
        _write_once(self, _CF_XML, key, super()._write_conditional_formats)

    def _prepare_formula(self, formula: str, expand_future_functions: bool = False) -> str:
        key = (formula, bool(expand_future_functions or self.use_future_functions))
        done = _PREPARED.get(key)
        if done is None:
            done = _keep(_PREPARED, key, super()._prepare_formula(formula, expand_future_functions), _PREPARED_MAX)
        return done


class _Packager(Packager):
    """XlsxWriter's packager, reusing the XML of cell notes (comments and their VML drawing) from an earlier
    workbook with the very same notes: every variant of an exercise has the same notes, and writing them was a
    sixth of a variant's time. The key is the notes' full data, so any difference writes them afresh. app.xml
    likewise, keyed by the repr of everything XlsxWriter writes it from."""

    def _notes(self, ws: Worksheet) -> tuple[Any, ...]:
        """_notes_key of a sheet's notes, made once for its VML drawing and its comments part (half a ms each)."""
        keys: dict[int, tuple[Any, ...]] = self.__dict__.setdefault("_xlconv_notes", {})
        if id(ws) not in keys:
            keys[id(ws)] = _notes_key(ws.comments_list)
        return keys[id(ws)]

    def _write_vml_files(self) -> None:
        sheets = self.workbook.worksheets()
        if not self.in_memory or any(ws.has_header_vml for ws in sheets):
            super()._write_vml_files()
            return
        index = 1
        for ws in sheets:
            if ws.has_vml:
                key = ("vml", ws.vml_data_id, ws.vml_shape_id, self._notes(ws), _notes_key(ws.buttons_list))
                self._filename(f"xl/drawings/vmlDrawing{index}.vml").write(_part(key, lambda fh: _vml(fh, ws)))
                index += 1

    def _cached(self, key: tuple[Any, ...] | None, write: Callable[[], None]) -> None:
        """What write() adds to the package (one part), from _NAMED_PARTS when key was written before; key None
        (data that _exact could not key) always writes."""
        if not self.in_memory:  # parts written to temporary files (constant_memory)
            write()
            return
        done = _NAMED_PARTS.get(key) if key is not None else None
        if done is not None:
            self._filename(done[0]).write(done[1])
            return
        count = len(self.filenames)
        write()
        if key is not None and len(self.filenames) == count + 1:
            fh, name, is_binary = self.filenames[-1]
            if not is_binary:
                _keep(_NAMED_PARTS, key, (name, fh.getvalue()), 64)

    def _write_app_file(self) -> None:
        wb = self.workbook
        key = _exact(("app", [(ws.name, ws.is_chartsheet, ws.hidden) for ws in wb.worksheets()],
                      self.chartsheet_count, self.named_ranges, sorted(wb.doc_properties.items()), wb.read_only))
        self._cached(key, super()._write_app_file)

    def _write_shared_strings_file(self) -> None:
        """XlsxWriter's sharedStrings.xml, written by _SharedStrings."""
        if not self.workbook.str_table.count:
            return
        sst = _SharedStrings()
        sst.string_table = self.workbook.str_table
        sst._set_xml_writer(self._filename("xl/sharedStrings.xml"))
        sst._assemble_xml_file()

    def _write_styles_file(self) -> None:
        self._cached(_styles_key(self.workbook), super()._write_styles_file)

    def _write_comment_files(self) -> None:
        if not self.in_memory:
            super()._write_comment_files()
            return
        index = 1
        for ws in self.workbook.worksheets():
            if ws.has_comments:
                key = ("comments", self._notes(ws))
                self._filename(f"xl/comments{index}.xml").write(_part(key, lambda fh: _comments(fh, ws)))
                index += 1


_PARTS: dict[tuple[Any, ...], str] = {}
# What preparing the formats (Workbook._prepare_format_properties) sets on each: with the properties a format was
# made from and its cell and conditional-format indices, all that styles.xml is written from.
_PREPARED_ATTRS = ("xf_index", "dxf_index", "font_index", "has_font", "has_dxf_font", "num_format_index",
                   "border_index", "has_border", "has_dxf_border", "fill_index", "has_fill", "has_dxf_fill",
                   "fg_color", "bg_color", "dxf_fg_color", "dxf_bg_color", "pattern", "_format_key")


def _styles_key(wb: Any) -> tuple[Any, ...] | None:
    """A key equal exactly when two workbooks' styles.xml is the same (called once their formats are prepared), or
    None for a format not made by _Workbook.add_format. Colours are compared as objects: the copies of a format
    share its Color objects, which XlsxWriter never changes."""
    def state(f: Format) -> tuple[Any, ...] | None:
        d = f.__dict__
        props = d.get("_xlconv_props")
        return None if props is None else (props, *(d.get(a) for a in _PREPARED_ATTRS))

    formats = [state(f) for f in wb.xf_formats] + [None] + [state(f) for f in wb.dxf_formats]
    if any(x is None for i, x in enumerate(formats) if i != len(wb.xf_formats)):
        return None
    return ("styles", tuple(formats), repr((wb.palette, wb.font_count, wb.num_formats, wb.border_count,
                                            wb.fill_count, wb.custom_colors, wb.has_comments)))


def _state(x: Any) -> Any:
    """A hashable value that is equal exactly when x's data is: XlsxWriter's note objects print as
    ``<... object at 0x...>``, so they are compared by their attributes."""
    if isinstance(x, (list, tuple)):
        return tuple(_state(v) for v in x)
    if isinstance(x, dict):
        return tuple(sorted((k, _state(v)) for k, v in x.items()))
    if hasattr(x, "__dict__") and type(x).__repr__ is object.__repr__:
        return (type(x).__qualname__, _state(vars(x)))
    return (type(x).__qualname__, repr(x))


_NAMED_PARTS: dict[tuple[Any, ...], tuple[str, str]] = {}  # key -> (the part's name in the package, its XML)


def _exact(data: Any) -> tuple[str, str] | None:
    """A key equal exactly when data prints the same, None when it holds an object printed by its address
    (another object could later get the same address)."""
    text = repr(data)
    return None if " at 0x" in text else ("repr", text)


def _notes_key(objs: list[Any]) -> tuple[Any, ...]:
    """The same equality as _state for a list of XlsxWriter notes or buttons, some 30 times cheaper: the repr of
    each object's attributes, which hold str, numbers, None, bool, lists of numbers and Colors (whose repr is
    exact). A repr that prints an address could match another object's after a reuse: such a note is keyed by
    _state instead."""
    out: list[Any] = []
    for o in objs:
        made = o.__dict__.get("_xlconv_made")
        if made is not None and type(o) is CommentType:
            # A note made by _Worksheet.write_comment: its attributes follow from the call that made it, except
            # what the workbook sets when it closes (the box's place, visibility, author).
            out.append((made, tuple(o.vertices), o.is_visible, o.author))
            continue
        text = repr(vars(o))
        out.append((type(o).__qualname__, text) if " at 0x" not in text else _state(o))
    return tuple(out)


def _part(key: tuple[Any, ...], write: Callable[[StringIO], None]) -> str:
    """The XML that write produces, made once per key."""
    text = _PARTS.get(key)
    if text is None:
        fh = StringIO()
        write(fh)
        text = _keep(_PARTS, key, fh.getvalue(), 64)
    return text


def _vml(fh: StringIO, ws: Any) -> None:
    vml = Vml()
    vml._set_xml_writer(fh)
    vml._assemble_xml_file(ws.vml_data_id, ws.vml_shape_id, ws.comments_list, ws.buttons_list)


def _comments(fh: StringIO, ws: Any) -> None:
    comments = Comments()
    comments._set_xml_writer(fh)
    comments._assemble_xml_file(ws.comments_list)


_ZIPPED: OrderedDict[bytes, tuple[bytes, int]] = OrderedDict()  # a part's bytes -> (deflated, CRC-32)
_ZIPPED_MAX = 64


def _deflated(data: bytes) -> tuple[bytes, int]:
    """data deflated as ZipFile deflates it (default level, raw stream) and its CRC, made once per content: most
    parts of a workbook are the same in every variant, and the least recently used are dropped."""
    hit = _ZIPPED.get(data)
    if hit is not None:
        _ZIPPED.move_to_end(data)
        return hit
    z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    hit = _ZIPPED[data] = (z.compress(data) + z.flush(), zlib.crc32(data))
    if len(_ZIPPED) > _ZIPPED_MAX:
        _ZIPPED.popitem(last=False)
    return hit


def _write_member(zf: ZipFile, zinfo: ZipInfo, data: bytes) -> None:
    """zf.writestr(zinfo, data) for a deflated member of a zip file being written, with the deflated bytes from _deflated:
    the same header (as ZipFile writes it once the sizes and CRC are known), data and directory entry."""
    fp: Any = zf.fp
    if (zf._writing or not zf._seekable or zinfo.compress_type != ZIP_DEFLATED  # type: ignore[attr-defined]
            or zinfo._compresslevel is not None or len(data) * 1.05 > ZIP64_LIMIT):  # type: ignore[attr-defined]
        zf.writestr(zinfo, data)
        return
    deflated, crc = _deflated(data)
    zinfo.file_size = len(data)
    zinfo.flag_bits = 0x00
    if not zinfo.external_attr:
        zinfo.external_attr = 0o600 << 16
    fp.seek(zf.start_dir)
    zinfo.header_offset = fp.tell()
    zf._writecheck(zinfo)  # type: ignore[attr-defined]
    zf._didModify = True  # type: ignore[attr-defined]
    zinfo.compress_size, zinfo.CRC = len(deflated), crc
    fp.write(zinfo.FileHeader(False))
    fp.write(deflated)
    zf.start_dir = fp.tell()
    zf.filelist.append(zinfo)
    zf.NameToInfo[zinfo.filename] = zinfo


_DEFINED: dict[tuple[str, str], str] = {}  # the workbook's defined names -> their XML
_NAMES: dict[tuple[str, str], list[Any]] = {}  # (name, formula) -> the defined name XlsxWriter stored
_FORMATS: dict[tuple[tuple[str, type, Any], ...], Format] = {}  # properties -> a Format never used by a workbook


class _Workbook(xlsxwriter.Workbook):
    fh: Any  # the XML writer's output, declared for mypy

    def _get_packager(self) -> Packager:
        return _Packager()

    def define_name(self, name: str, formula: str) -> Literal[0, -1]:
        """XlsxWriter's define_name, its checks (some regular expressions) made once per name and formula: without
        a sheet part ("Sheet!name") what it stores depends on nothing else."""
        if "!" in name:
            return super().define_name(name, formula)
        done = _NAMES.get((name, formula))
        if done is None:
            count = len(self.defined_names)
            if super().define_name(name, formula) != 0:
                return -1
            assert len(self.defined_names) == count + 1
            _keep(_NAMES, (name, formula), list(self.defined_names[-1]), 10_000)
            return 0
        self.defined_names.append(list(done))
        return 0

    def _write_defined_names(self) -> None:
        """XlsxWriter's <definedNames>, written once per list of names (one per grid: the same in every variant)."""
        _write_once(self, _DEFINED, _exact(("names", self.defined_names)), super()._write_defined_names)

    def add_format(self, properties: dict[str, Any] | None = None) -> Format:
        """XlsxWriter's add_format, the Format made by copying the attributes of one made earlier with the same
        properties (some sixty attributes and a setter call per property, for the 29 formats of every variant)."""
        props = self.default_format_properties.copy()
        props.update(properties or {})
        try:
            key = tuple((k, type(v), v) for k, v in sorted(props.items()))  # True, 1 and 1.0 print differently
            proto = _FORMATS.get(key)
        except TypeError:  # an unhashable property value
            return super().add_format(properties)
        if proto is None:
            proto = Format(props, None, None)
            # Worked out once for every copy (a pure function of the properties, which nothing here changes
            # after add_format: Book.fmt hands the same Format to every cell that asks for these properties).
            proto._get_format_key()
            proto._xlconv_props = key  # what _styles_key knows the format by
            _keep(_FORMATS, key, proto, 1000)
        made = Format.__new__(Format)
        made.__dict__.update(proto.__dict__)
        made.xf_format_indices = self.xf_format_indices
        made.dxf_format_indices = self.dxf_format_indices
        self.formats.append(made)
        return made

    def _store_workbook(self) -> None:
        """XlsxWriter's _store_workbook for a workbook made in memory (the same steps, in the same order), with each
        part zipped by _write_member."""
        if not self.in_memory or self.vba_project or not isinstance(self.filename, str):
            super()._store_workbook()
            return
        # Zipped in memory and written with one call: a zip file on disk is written member by member, with a
        # seek (a flush) before each.
        out = BytesIO()
        with ZipFile(out, "w", compression=ZIP_DEFLATED, allowZip64=self.allow_zip64) as xlsx_file:
            packager = self._get_packager()
            if not self.worksheets():
                self.add_worksheet()
            if self.worksheet_meta.activesheet == 0:
                self.worksheets_objs[0].selected = 1
                self.worksheets_objs[0].hidden = 0
            for sheet in self.worksheets():
                if sheet.index == self.worksheet_meta.activesheet:
                    sheet.active = 1
            self._prepare_sst_string_data()
            self._prepare_vml()
            self._prepare_defined_names()
            self._prepare_drawings()
            self._add_chart_data()
            self._prepare_tables()
            self._prepare_metadata()
            packager._add_workbook(self)
            packager._set_tmpdir(self.tmpdir)
            packager._set_in_memory(self.in_memory)
            for part, name, is_binary in packager._create_package():
                zinfo = ZipInfo(name, (1980, 1, 1, 0, 0, 0))
                zinfo.compress_type = xlsx_file.compression
                _write_member(xlsx_file, zinfo, part.getvalue() if is_binary else part.getvalue().encode("utf-8"))
        with open(self.filename, "wb") as fh:
            fh.write(out.getbuffer())


class Book:
    """An .xlsx being written to a temporary file that becomes the real one only on success."""

    def __init__(self, path: str | Path, title: str, constant_memory: bool = False, tolerance: float = 1e-6,
                 atomic: bool = True):
        """atomic False: write path itself (atomic.in_folder), for a file in a folder that appears whole."""
        self.path = Path(path)
        self._atomic = atomic_path(self.path) if atomic else in_folder(self.path)
        self.tmp = self._atomic.__enter__()
        # in_memory: the parts are zipped from memory rather than from one temporary file each (XlsxWriter's
        # default), which cost more than writing a small workbook; constant_memory streams rows to disk instead.
        self.wb = (xlsxwriter.Workbook if _PLAIN else _Workbook)(
            str(self.tmp), {"constant_memory": constant_memory, "in_memory": not constant_memory,
                            "strings_to_numbers": False, "strings_to_formulas": False})
        if not _PLAIN:
            self.wb.worksheet_class = _Worksheet
        self.wb.set_properties({"title": title, "author": "xlconv", "created": FIXED_DATE,
                                "comments": f"Generated by xlconv {__version__}"})
        self.blocks: list[record.Block] = []
        self.tolerance = tolerance
        self.meta: dict[str, str] = {}  # extra key -> text rows of the record sheet (columns G:), e.g. exercises
        self._formats: dict[tuple[tuple[str, Any], ...], Format] = {}
        self._fast_formats: dict[tuple[tuple[str, Any], ...], Format] = {}
        self.named_formats: dict[tuple[Any, ...], Format] = {}  # formats under a caller's own key (style.cell)

    def __enter__(self) -> "Book":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        if exc_type is None:
            self.close()
        else:
            try:
                self.wb.close()
            except Exception:  # the original error is what matters
                pass
            self._atomic.__exit__(exc_type, exc, tb)
        return False

    def fmt(self, **props: Any) -> Format:
        """A cached cell format with these XlsxWriter properties (see xlconv.sheets.style for the named ones)."""
        fast = tuple(props.items())  # the same call site passes its properties in the same order
        made = self._fast_formats.get(fast)
        if made is None:
            key = tuple(sorted(props.items()))
            if key not in self._formats:
                self._formats[key] = self.wb.add_format(props)
            made = self._fast_formats[fast] = self._formats[key]
        return made

    def record(self, name: str, role: str, sheet: str, grids: Sequence[Grid], **info: Any) -> record.Block:
        """Record a block so that verify can find it later without guessing."""
        block = record.Block(name, role, sheet, tuple(grids), info)
        self.blocks.append(block)
        return block

    def close(self) -> Path:
        """Write the hidden record sheet and defined names, then move the file into place."""
        record.write(self.wb, record.Record(tuple(self.blocks), self.tolerance, __version__, self.meta))
        self.wb.close()
        self._atomic.__exit__(None, None, None)
        return self.path


def check_formula(formula: str, where: str | Callable[[], str]) -> str:
    """Refuse a formula past Excel's 8,192-character limit, naming where it would go (where may be a function
    giving that text, so that the cells of a grid do not each spell it out for nothing)."""
    if len(formula) > MAX_FORMULA_CHARS:
        where = where if isinstance(where, str) else where()
        raise SpecError(f"{where}: a formula would be {len(formula)} characters, past Excel's limit of "
                        f"{MAX_FORMULA_CHARS}")
    return formula


__all__ = ["Book", "FIXED_DATE", "check_formula"]
