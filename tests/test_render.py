"""`xlconv render`: every shipped toy workbook printed by LibreOffice to PDF and PNGs, and its pages checked.

What can be computed from the .xlsx is checked without an engine: every visible sheet has a page set-up, and no
recorded block is cut by a manual page break. Where LibreOffice's own automatic breaks fall (after fitting the
width) is read back from a PDF of a probe copy: each recorded block row's cells are replaced by a short token
naming the row ("@17@"), every other formula is replaced by its cached value (so that no formula copies a token
elsewhere), the copy is printed, and pdftotext says on which page each token landed. Row heights, column widths,
the page set-up and what every other cell shows stay as they were, so the pages break where the real ones do (the
test checks that the probe has as many pages as the real print).
"""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from defusedxml import ElementTree
from PIL import Image

import xlconv
from xlconv import engine
from xlconv.cells import a1
from xlconv.cli import main
from xlconv.render import render
from xlconv.spec import builtin_names
from xlconv.verify import read_records

MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
PKG = "{http://schemas.openxmlformats.org/package/2006/relationships}"
# Paper sizes (mm) by the pageSetup paperSize code: 1 Letter (the default), 9 A4.
PAPER_MM = {1: (215.9, 279.4), 9: (210.0, 297.0)}


# --- reading the .xlsx ----------------------------------------------------------------------------------------


def sheets(path: Path) -> list[dict]:
    """The workbook's sheets in order: name, visible, XML text, print-title rows (zero-based, inclusive)."""
    with zipfile.ZipFile(path) as z:
        book = ElementTree.fromstring(z.read("xl/workbook.xml"))
        rels = {r.get("Id"): r.get("Target") for r in
                ElementTree.fromstring(z.read("xl/_rels/workbook.xml.rels")).iter(f"{PKG}Relationship")}
        titles: dict[int, tuple[int, int]] = {}
        for name in book.iter(f"{MAIN}definedName"):
            m = re.search(r"\$(\d+):\$(\d+)", name.text or "")
            if name.get("name") == "_xlnm.Print_Titles" and m:
                titles[int(name.get("localSheetId"))] = (int(m.group(1)) - 1, int(m.group(2)) - 1)
        out = []
        for i, s in enumerate(book.iter(f"{MAIN}sheet")):
            target = rels[s.get(f"{REL}id")]
            member = target.lstrip("/") if target.startswith("/") else "xl/" + target
            out.append({"name": s.get("name"), "visible": s.get("state", "visible") == "visible", "member": member,
                        "xml": z.read(member).decode("utf-8"), "titles": titles.get(i)})
    return out


def manual_breaks(xml: str) -> list[int]:
    """Zero-based rows that start a new page by a manual break (<brk id="n"> breaks after 1-based row n)."""
    root = ElementTree.fromstring(xml)
    return [int(b.get("id")) for rb in root.iter(f"{MAIN}rowBreaks") for b in rb.iter(f"{MAIN}brk")]


def blocks_by_sheet(path: Path) -> dict[str, list[tuple[str, list[int]]]]:
    """{sheet: [(block name, its rows (zero-based, sorted)), ...]} of every recorded block. A block is one unit:
    all its grids (a map's channels, a step-by-step panel's picks and sums) belong on one page."""
    out: dict[str, list[tuple[str, list[int]]]] = {}
    for rec in read_records(path)[0]:
        rows = sorted({r for g in rec.grids for r in range(g.top, g.bottom + 1)})
        out.setdefault(rec.sheet, []).append((rec.name, rows))
    return out


def page_setup_problems(path: Path) -> list[str]:
    problems = []
    for s in sheets(path):
        if not s["visible"]:
            continue
        root = ElementTree.fromstring(s["xml"])
        setup = root.find(f"{MAIN}pageSetup")
        fit = root.find(f"{MAIN}sheetPr/{MAIN}pageSetUpPr")
        if setup is None:
            problems.append(f"{s['name']}: no pageSetup")
            continue
        if setup.get("orientation") not in ("portrait", "landscape"):
            problems.append(f"{s['name']}: no orientation")
        if int(setup.get("paperSize", "1")) not in PAPER_MM:
            problems.append(f"{s['name']}: paper {setup.get('paperSize')} is neither A4 nor Letter")
        fitted = fit is not None and fit.get("fitToPage") in ("1", "true")
        if fitted and int(setup.get("fitToWidth", "1")) < 1:  # fitToWidth defaults to 1
            problems.append(f"{s['name']}: fit to page, but not to a page width")
        if not fitted and setup.get("scale") is None:
            problems.append(f"{s['name']}: neither fitted to the page width nor given an explicit scale")
    return problems


def cut_by_manual_breaks(path: Path) -> list[str]:
    blocks = blocks_by_sheet(path)
    cut = []
    for s in sheets(path):
        breaks = manual_breaks(s["xml"])
        for name, rows in blocks.get(s["name"], []):
            for b in breaks:
                if rows[0] < b <= rows[-1]:
                    cut.append(f"{s['name']}!{name} (rows {rows[0] + 1}-{rows[-1] + 1}) is cut by the manual break "
                               f"before row {b + 1}")
    return cut


# --- the probe: which page does each recorded row land on? ----------------------------------------------------

_CELL = re.compile(r'<c r="([A-Z]+[0-9]+)"([^>]*?)(?:/>|>(.*?)</c>)', re.DOTALL)


def _probe_cell(m: re.Match, tokens: dict[str, str]) -> str:
    """A block cell becomes its row's token; any other formula cell keeps its cached value but loses its formula,
    so that no formula copies a token onto another row (a step-by-step panel shows the window it reads)."""
    ref, attrs, body = m.group(1), m.group(2), m.group(3) or ""
    token = tokens.get(ref)
    if token is not None:
        attrs = re.sub(r'\st="[^"]*"', "", attrs)
        return f'<c r="{ref}"{attrs} t="inlineStr"><is><t>{token}</t></is></c>'
    if "<f" not in body:
        return m.group(0)
    body = re.sub(r"<f\b[^>]*?(/>|>.*?</f>)", "", body, flags=re.DOTALL)
    if ' t="str"' in attrs:  # a text result: keep it as text
        attrs = attrs.replace(' t="str"', ' t="inlineStr"')
        text = re.search(r"<v>(.*?)</v>", body, re.DOTALL)
        body = f"<is><t>{text.group(1) if text else ''}</t></is>"
    return f'<c r="{ref}"{attrs}>{body}</c>' if body else f'<c r="{ref}"{attrs}/>'


def probe_copy(src: Path, dest: Path) -> dict[str, tuple[str, int]]:
    """Write dest: src with every recorded block cell replaced by its row's token; returns {token: (sheet, row)}."""
    tokens: dict[str, tuple[str, int]] = {}
    of_row: dict[tuple[str, int], str] = {}
    by_member = {}
    grids: dict[str, list] = {}
    for rec in read_records(src)[0]:
        grids.setdefault(rec.sheet, []).extend(rec.grids)
    for s in sheets(src):
        cells: dict[str, str] = {}
        for g in grids.get(s["name"], []):
            for r in range(g.top, g.bottom + 1):
                token = of_row.setdefault((s["name"], r), f"@{len(of_row)}@")
                tokens[token] = (s["name"], r)
                for c in range(g.left, g.right + 1):
                    cells[a1(r, c)] = token
        if s["visible"]:
            by_member[s["member"]] = _CELL.sub(lambda m, cells=cells: _probe_cell(m, cells), s["xml"])
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = by_member[info.filename].encode("utf-8") if info.filename in by_member else zin.read(info)
            zout.writestr(info, data)
    return tokens


def pdf_pages(pdf: Path) -> int:
    out = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", out, re.M).group(1))


def token_pages(pdf: Path) -> dict[str, set[int]]:
    """{token: 1-based pages it appears on} from pdftotext's layout text."""
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    found: dict[str, set[int]] = {}
    for n, page in enumerate(text.split("\f"), start=1):
        for t in re.findall(r"@\d+@", page):
            found.setdefault(t, set()).add(n)
    return found


def crossing_page_boundaries(src: Path, tokens: dict[str, tuple[str, int]], pdf: Path) -> list[str]:
    """Every recorded grid whose rows land on more than one page of the probe's PDF (print-title rows, which
    repeat on every page, aside); a row that lands on no page is reported too."""
    pages = token_pages(pdf)
    row_pages = {at: pages.get(t, set()) for t, at in tokens.items()}
    titles = {s["name"]: s["titles"] for s in sheets(src)}
    problems = []
    for sheet, blocks in blocks_by_sheet(src).items():
        t = titles.get(sheet)
        for name, all_rows in blocks:
            rows = [r for r in all_rows if not (t and t[0] <= r <= t[1])]
            missing = [r + 1 for r in rows if not row_pages[(sheet, r)]]
            if missing:
                problems.append(f"{sheet}!{name}: rows {missing} were not found in the PDF")
                continue
            on = sorted(set().union(*(row_pages[(sheet, r)] for r in rows))) if rows else []
            if len(on) > 1:
                first = {p: min(r for r in rows if p in row_pages[(sheet, r)]) + 1 for p in on}
                problems.append(f"{sheet}!{name} (rows {rows[0] + 1}-{rows[-1] + 1}) crosses pages {on}: page "
                                + ", page ".join(f"{p} starts at row {first[p]}" for p in on[1:]))
    return problems


# --- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(shipped, tmp_path_factory):
    out = tmp_path_factory.mktemp("render")
    (out / "lee-6x6-9.png").write_bytes(b"an earlier render's page that no longer exists")
    (out / "lee-6x6-notes.png").write_bytes(b"not a page")
    return out, render(list(shipped.values()), out)


@pytest.fixture(scope="module")
def probes(shipped, tmp_path_factory):
    """{name: (tokens, probe PDF)} for every shipped workbook (one LibreOffice run)."""
    folder = tmp_path_factory.mktemp("probe")
    tokens = {name: probe_copy(path, folder / path.name) for name, path in shipped.items()}
    pdfs = engine.convert([folder / p.name for p in shipped.values()], folder / "pdf")
    return {name: (tokens[name], pdf) for name, pdf in zip(shipped, pdfs)}


# Every shipped toy workbook (the shipped fixture builds all built-ins but the AlexNet one).
NAMES = [n for n in builtin_names() if n != "alexnet-conv1"]


# --- tests ----------------------------------------------------------------------------------------------------


def test_the_shipped_toy_workbooks_are_all_tested(shipped):
    assert sorted(shipped) == sorted(NAMES) and {"lee-6x6", "output-size"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_visible_sheet_has_a_page_setup(shipped, name):
    assert not page_setup_problems(shipped[name])


@pytest.mark.parametrize("name", NAMES)
def test_no_recorded_block_is_cut_by_a_manual_page_break(shipped, name):
    assert not cut_by_manual_breaks(shipped[name])


@pytest.mark.libreoffice
@pytest.mark.parametrize("name", NAMES)
def test_no_recorded_block_crosses_an_automatic_page_boundary(shipped, rendered, probes, name):
    tokens, pdf = probes[name]
    assert pdf_pages(pdf) == pdf_pages(rendered[0] / f"{name}.pdf"), "the probe must paginate as the real print"
    problems = crossing_page_boundaries(shipped[name], tokens, pdf)
    assert not problems, "\n".join(problems)


@pytest.mark.libreoffice
@pytest.mark.parametrize("name", NAMES)
def test_pngs_are_pages_of_the_pdf(shipped, rendered, name):
    out, pngs = rendered
    pdf = out / f"{name}.pdf"
    pages = [p for p in pngs if re.fullmatch(re.escape(name) + r"-\d+\.png", p.name)]
    assert pdf.is_file() and pages and all(p.parent == out and p.is_file() for p in pages)
    visible = [s for s in sheets(shipped[name]) if s["visible"]]
    assert len(pages) == pdf_pages(pdf) >= len(visible)
    if name == "output-size":
        assert len(pages) == 1  # nine rows fit one landscape page
    width = len(str(len(pages)))
    assert [p.name for p in pages] == [f"{name}-{n:0{width}d}.png" for n in range(1, len(pages) + 1)]
    papers = set()
    for s in visible:
        setup = ElementTree.fromstring(s["xml"]).find(f"{MAIN}pageSetup")
        papers.add(PAPER_MM[int(setup.get("paperSize", "1"))] if setup is not None else PAPER_MM[1])
    sizes = [mm / 25.4 * 60 for paper in papers for mm in paper]  # pixels at 60 dpi
    for p in pages:
        with Image.open(p) as im:
            assert im.format == "PNG" and all(min(abs(n - s) for s in sizes) <= 1 for n in im.size), (p.name, im.size)
            gray = im.convert("L")
            inked = sum(gray.histogram()[:200]) / (gray.width * gray.height)
            assert inked > 0.002, f"{p.name} is blank"


@pytest.mark.libreoffice
def test_render_replaces_an_earlier_renders_pages_only(rendered):
    out, _ = rendered
    assert not (out / "lee-6x6-9.png").exists()
    assert (out / "lee-6x6-notes.png").read_bytes() == b"not a page"


@pytest.mark.libreoffice
def test_the_pictures_show_recalculated_values(shipped, tmp_path):
    # A cached value that is wrong must not reach the picture: LibreOffice recalculates on load.
    src = shipped["output-size"]
    lied = tmp_path / "lied.xlsx"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(lied, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"<v>55.25</v>", b"<v>99.75</v>")
                assert b"99.75" in data
            zout.writestr(info, data)
    [png] = render([lied], tmp_path / "out", dpi=30)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "out" / "lied.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "55.25" in text and "99.75" not in text and "###" not in text
    assert png.name == "lied-1.png"


@pytest.mark.libreoffice
def test_cli_prints_the_pngs(shipped, tmp_path, capsys):
    assert main(["render", str(shipped["output-size"]), "-o", str(tmp_path / "slides"), "--dpi", "40"]) == 0
    out = capsys.readouterr().out.split()
    assert out == [str(tmp_path / "slides" / "output-size-1.png")]
    with Image.open(out[0]) as im:
        assert max(im.size) == round(297 / 25.4 * 40)


def test_library_api():
    assert xlconv.render is render and render.__module__ == "xlconv.render"


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.xlsx"
    text.write_text("not a workbook")
    empty_zip = tmp_path / "empty.xlsx"
    with zipfile.ZipFile(empty_zip, "w") as z:
        z.writestr("hello.txt", "hi")
    return {"missing": tmp_path / "nope.xlsx", "text": text, "zip": empty_zip, "folder": tmp_path}


@pytest.mark.parametrize("kind", ["missing", "text", "zip", "folder"])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(shipped, tmp_path, capsys, kind):
    bad = _bad_inputs(tmp_path)[kind]
    out = tmp_path / "out"
    assert main(["render", str(shipped["lee-6x6"]), str(bad), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"xlconv: {bad}"), captured.err
    assert not out.exists()


@pytest.mark.parametrize("dpi", ["0", "5000"])
def test_a_bad_dpi_is_one_line(shipped, tmp_path, capsys, dpi):
    assert main(["render", str(shipped["lee-6x6"]), "-o", str(tmp_path / "out"), "--dpi", dpi]) == 2
    assert "--dpi must be a whole number" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_two_files_with_one_name_are_refused(shipped, tmp_path, capsys):
    other = tmp_path / "b" / "lee-6x6.xlsx"
    other.parent.mkdir()
    other.write_bytes(shipped["lee-6x6"].read_bytes())
    assert main(["render", str(shipped["lee-6x6"]), str(other), "-o", str(tmp_path / "out")]) == 2
    assert "same name" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
