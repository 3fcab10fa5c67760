// Recalculate .xlsx workbooks with HyperFormula: xlconv's third engine (xlconv/hyperformula.py runs this).
//
//   node recalc.cjs [--cached] NODE_MODULES IN.xlsx OUT.xlsx [IN.xlsx OUT.xlsx ...]
//
// exceljs reads every sheet's typed values and formulas; HyperFormula evaluates the formulas from those alone
// (the cached results in the file are never given to it); exceljs writes the workbook back with each formula
// cell's cached result replaced by HyperFormula's value, so verify reads it exactly as LibreOffice's output.
// A formula HyperFormula cannot evaluate (a function it lacks, a syntax it rejects) comes back as an Excel error
// value in that cell, which verify reports as a failure naming the cell.
'use strict';

const path = require('path');
const { createRequire } = require('module');

const argv = process.argv.slice(2);
// --cached (for xlconv's tests only): give HyperFormula each formula's cached result instead of the formula, the
// shortcut an engine that does not recalculate takes; the canary check must catch it.
const useCached = argv[0] === '--cached';
const [modules, ...pairs] = useCached ? argv.slice(1) : argv;
if (!modules || pairs.length === 0 || pairs.length % 2 !== 0) {
  process.stderr.write('usage: node recalc.cjs NODE_MODULES IN.xlsx OUT.xlsx [IN.xlsx OUT.xlsx ...]\n');
  process.exit(2);
}
// The packages live outside the xlconv package (installed by npm, never shipped), so resolve them from there.
const requireFrom = createRequire(path.join(path.resolve(modules), 'noop.js'));
const ExcelJS = requireFrom('exceljs');
const { HyperFormula } = requireFrom('hyperformula');

// HyperFormula's dependency graph keeps each cell's dependants in an array and scans it (includes) before every
// new edge: building a workbook where 50,000 formulas read one mean or std cell then takes minutes (O(n^2)).
// Remembering each long array's members in a Set gives the same graph, edges in the same order, in seconds.
// Only the pinned version is patched (engines/hyperformula/package.json); any other stops with a clear message.
function fasterEdges() {
  const root = path.dirname(requireFrom.resolve('hyperformula'));
  const { Graph } = require(path.join(root, 'DependencyGraph', 'Graph.js'));
  const proto = Graph.prototype;
  for (const method of ['addEdge', 'removeEdge', 'removeEdgeIfExists', 'getNodeIdIfNotNumber']) {
    if (typeof proto[method] !== 'function') throw new Error(`HyperFormula ${HyperFormula.version}: Graph.${method} missing`);
  }
  const members = new WeakMap(); // an edges array -> the Set of its ids (arrays replaced by HyperFormula start anew)
  const addEdge = proto.addEdge;
  proto.addEdge = function (fromNode, toNode) {
    const fromId = this.getNodeIdIfNotNumber(fromNode);
    const toId = this.getNodeIdIfNotNumber(toNode);
    const edges = fromId === undefined || toId === undefined ? undefined : this.edgesSparseArray[fromId];
    if (edges === undefined || edges.length < 64) return addEdge.call(this, fromNode, toNode);
    let seen = members.get(edges);
    if (seen === undefined) {
      seen = new Set(edges.filter((id) => id !== undefined)); // removed edges are holes in the array
      members.set(edges, seen);
    }
    if (seen.has(toId)) return;
    edges.push(toId);
    seen.add(toId);
  };
  for (const method of ['removeEdge', 'removeEdgeIfExists']) {
    const original = proto[method];
    proto[method] = function (fromNode, toNode) {
      const result = original.call(this, fromNode, toNode);
      const fromId = this.getNodeIdIfNotNumber(fromNode);
      const edges = fromId === undefined ? undefined : this.edgesSparseArray[fromId];
      const seen = edges === undefined ? undefined : members.get(edges);
      if (seen !== undefined) seen.delete(this.getNodeIdIfNotNumber(toNode));
      return result;
    };
  }
}
fasterEdges();

// Excel's semantics where HyperFormula's defaults differ (its "Compatibility with Microsoft Excel" guide).
const CONFIG = {
  licenseKey: 'gpl-v3',
  useArrayArithmetic: true, // Excel evaluates array expressions inside SUMPRODUCT((A1:B2="x")*1)
  evaluateNullToZero: true, // =A1 of an empty cell is 0, not empty
  leapYear1900: true,
  nullDate: { year: 1899, month: 12, day: 31 },
  accentSensitive: true,
  caseSensitive: false,
  localeLang: 'en-US',
  // Excel keeps 15 significant digits; HyperFormula's default rounds results to 11.
  precisionRounding: 14,
  maxRows: 1048576,
  maxColumns: 16384,
};

const EPOCH_MS = Date.UTC(1899, 11, 30);

function excelSerial(date) {
  return (date.getTime() - EPOCH_MS) / 86400000;
}

// What a typed (non-formula) cell gives HyperFormula; text is quoted so that "=x", "1.5" or "TRUE" stay text.
function rawValue(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v === 'string') return "'" + v;
  if (v instanceof Date) return excelSerial(v);
  if (typeof v === 'object') {
    if (v.error !== undefined) return v.error; // '#N/A' and friends parse as the error itself
    if (Array.isArray(v.richText)) return "'" + v.richText.map((r) => r.text).join('');
    if (v.text !== undefined) return rawValue(v.text); // a hyperlink cell's text
  }
  return "'" + String(v);
}

// Excel writes newer functions with a prefix (_xlfn.STDEV.S); HyperFormula knows them by their plain names.
function hfFormula(formula) {
  return '=' + formula.replace(/_xlfn\.|_xlws\./gi, '');
}

function isFormula(cell) {
  return cell.type === ExcelJS.ValueType.Formula;
}

// Excel's defined names from the workbook part: exceljs expands each range into single cells, which loses names of
// non-rectangular or sheet-scoped ranges, so they are read from the XML itself.
async function definedNames(file, sheetCount) {
  const JSZip = requireFrom('jszip');
  const fs = require('fs');
  const zip = await JSZip.loadAsync(fs.readFileSync(file));
  const part = zip.file('xl/workbook.xml');
  if (!part) return [];
  const xml = await part.async('string');
  const out = [];
  const re = /<definedName\b([^>]*)>([^<]*)<\/definedName>/g;
  let m;
  while ((m = re.exec(xml)) !== null) {
    const name = /\bname="([^"]*)"/.exec(m[1]);
    if (!name || name[1].startsWith('_xlnm.')) continue; // print areas and titles: layout, not values
    const local = /\blocalSheetId="(\d+)"/.exec(m[1]);
    const text = m[2].replace(/&apos;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>')
      .replace(/&amp;/g, '&');
    out.push({ name: name[1], expression: '=' + text, scope: local ? Number(local[1]) : undefined });
  }
  return out.filter((n) => n.scope === undefined || n.scope < sheetCount);
}

async function recalc(input, output) {
  const started = Date.now();
  const seconds = {};
  let lap = started;
  const phase = (name) => {
    const now = Date.now();
    seconds[name] = (now - lap) / 1000;
    lap = now;
  };
  const wb = new ExcelJS.Workbook();
  await wb.xlsx.readFile(input);
  phase('read');
  const sheets = [];
  const data = {};
  wb.eachSheet((ws) => {
    const rows = [];
    const formulas = [];
    ws.eachRow({ includeEmpty: false }, (row, r) => {
      const line = [];
      row.eachCell({ includeEmpty: false }, (cell, c) => {
        if (isFormula(cell)) {
          // A shared formula's follower cells have their own formula translated by exceljs; an array formula's
          // other cells hold no formula of their own and receive its spilled values.
          if (cell.formulaType === ExcelJS.FormulaType.Shared || cell.formula) {
            line[c - 1] = useCached ? rawValue(cell.result) : hfFormula(cell.formula);
            formulas.push(cell);
          }
        } else {
          line[c - 1] = rawValue(cell.value);
        }
      });
      rows[r - 1] = line;
    });
    for (let r = 0; r < rows.length; r++) if (!rows[r]) rows[r] = [];
    for (const line of rows) for (let c = 0; c < line.length; c++) if (line[c] === undefined) line[c] = null;
    sheets.push({ ws, formulas });
    data[ws.name] = rows;
  });
  const names = await definedNames(input, sheets.length);
  const hf = HyperFormula.buildFromSheets(data, CONFIG, []);
  phase('build');
  // TRUE and FALSE are constants in Excel, functions in HyperFormula.
  hf.addNamedExpression('TRUE', '=TRUE()');
  hf.addNamedExpression('FALSE', '=FALSE()');
  const unnamed = [];
  for (const n of names) {
    try {
      // localSheetId counts sheets in the workbook's order, which is the order exceljs read them in.
      const scope = n.scope === undefined ? undefined : hf.getSheetId(sheets[n.scope].ws.name);
      hf.addNamedExpression(n.name, n.expression, scope);
    } catch (e) {
      unnamed.push(`${n.name} (${e.message})`);
    }
  }
  let errors = 0;
  const firstErrors = [];
  for (const { ws, formulas } of sheets) {
    const sheetId = hf.getSheetId(ws.name);
    for (const cell of formulas) {
      let v = hf.getCellValue({ sheet: sheetId, row: cell.row - 1, col: cell.col - 1 });
      if (v !== null && typeof v === 'object') {
        // DetailedCellError: keep Excel's error text so the cell reads as an error, as it would from LibreOffice.
        errors++;
        if (firstErrors.length < 5) firstErrors.push(`${ws.name}!${cell.address}: ${v.value} ${v.message || ''}`.trim());
        v = { error: v.value };
      } else if (v === null) {
        v = 0;
      }
      const formula = cell.formula;
      cell.value = { formula, result: v };
    }
  }
  phase('evaluate');
  await wb.xlsx.writeFile(output);
  phase('write');
  const report = {
    input, output, sheets: sheets.length, formulas: sheets.reduce((n, s) => n + s.formulas.length, 0), errors,
    first_errors: firstErrors, unknown_names: unnamed, seconds: { ...seconds, total: (Date.now() - started) / 1000 },
  };
  process.stdout.write(JSON.stringify(report) + '\n');
}

(async () => {
  for (let i = 0; i < pairs.length; i += 2) {
    try {
      await recalc(pairs[i], pairs[i + 1]);
    } catch (e) {
      process.stderr.write(`hyperformula: ${pairs[i]}: ${e && e.message ? e.message : e}\n`);
      process.exit(1);
    }
  }
})();
