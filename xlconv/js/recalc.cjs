// Recalculate workbooks with HyperFormula: xlconv's third engine (xlconv/hyperformula.py runs this).
//
//   node recalc.cjs NODE_MODULES IN.json OUT.json [IN.json OUT.json ...]
//
// IN.json is what xlconv/hyperformula.py read from a workbook with openpyxl: every sheet's cells as HyperFormula's
// raw content (a number, a boolean, "'text", "=formula" or "#ERROR!") and the workbook's defined names; never a
// cached result. OUT.json gets HyperFormula's value of every formula cell, from which hyperformula.py writes the
// recalculated .xlsx that verify reads. A formula HyperFormula cannot evaluate (a function it lacks, a syntax it
// rejects) comes back as an Excel error value in that cell, which verify reports as a failure naming the cell.
'use strict';

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const [modules, ...pairs] = process.argv.slice(2);
if (!modules || pairs.length === 0 || pairs.length % 2 !== 0) {
  process.stderr.write('usage: node recalc.cjs NODE_MODULES IN.json OUT.json [IN.json OUT.json ...]\n');
  process.exit(2);
}
// The package lives outside xlconv (installed by npm, never shipped), so resolve it from there.
const requireFrom = createRequire(path.join(path.resolve(modules), 'noop.js'));
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

function recalc(input, output) {
  const started = Date.now();
  const seconds = {};
  let lap = started;
  const phase = (name) => {
    const now = Date.now();
    seconds[name] = (now - lap) / 1000;
    lap = now;
  };
  const book = JSON.parse(fs.readFileSync(input, 'utf8'));
  const data = {};
  for (const sheet of book.sheets) {
    const rows = [];
    for (const [r, c, content] of sheet.cells) {
      while (rows.length <= r) rows.push([]);
      const row = rows[r];
      while (row.length < c) row.push(null);
      row[c] = content;
    }
    data[sheet.name] = rows;
  }
  phase('read');
  const hf = HyperFormula.buildFromSheets(data, CONFIG, []);
  phase('build');
  // TRUE and FALSE are constants in Excel, functions in HyperFormula.
  hf.addNamedExpression('TRUE', '=TRUE()');
  hf.addNamedExpression('FALSE', '=FALSE()');
  const refused = [];
  for (const n of book.names) {
    try {
      hf.addNamedExpression(n.name, n.expression, n.sheet === null ? undefined : hf.getSheetId(n.sheet));
    } catch (e) {
      refused.push(`${n.name} (${e.message})`);
    }
  }
  let errors = 0;
  const firstErrors = [];
  const sheets = book.sheets.map((sheet) => {
    const id = hf.getSheetId(sheet.name);
    const values = [];
    for (const [r, c, content] of sheet.cells) {
      if (typeof content !== 'string' || !content.startsWith('=')) continue;
      let v = hf.getCellValue({ sheet: id, row: r, col: c });
      if (v !== null && typeof v === 'object') { // DetailedCellError: Excel's error text, as LibreOffice writes it
        errors++;
        if (firstErrors.length < 5) firstErrors.push(`${sheet.name} row ${r + 1} column ${c + 1}: ${v.value} ${v.message}`);
        v = { error: v.value };
      }
      values.push([r, c, v]);
    }
    return { name: sheet.name, values };
  });
  phase('evaluate');
  fs.writeFileSync(output, JSON.stringify({ sheets }));
  phase('write');
  const report = {
    input, formulas: sheets.reduce((n, s) => n + s.values.length, 0), errors, first_errors: firstErrors,
    refused_names: refused, seconds: { ...seconds, total: (Date.now() - started) / 1000 },
  };
  process.stdout.write(JSON.stringify(report) + '\n');
}

for (let i = 0; i < pairs.length; i += 2) {
  try {
    recalc(pairs[i], pairs[i + 1]);
  } catch (e) {
    process.stderr.write(`hyperformula: ${pairs[i]}: ${e && e.message ? e.message : e}\n`);
    process.exit(1);
  }
}
