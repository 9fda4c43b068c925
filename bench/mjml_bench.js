// Times the reference JavaScript MJML compiler in-process.
// Usage: node mjml_bench.js MODULE_DIR SOURCE.mjml WARMUP RUNS
// Prints one JSON line: {"version", "median_ms", "min_ms", "runs", "html_bytes"}.
"use strict";
const fs = require("fs");
const path = require("path");

async function main() {
  const [moduleDir, sourcePath, warmupArg, runsArg] = process.argv.slice(2);
  const mjml2html = require(path.join(moduleDir, "node_modules", "mjml"));
  const version = require(path.join(moduleDir, "node_modules", "mjml", "package.json")).version;
  const source = fs.readFileSync(sourcePath, "utf8");
  const options = { validationLevel: "soft" };
  // mjml 5 returns a promise, mjml 4 the result itself; await handles both.
  const compile = async () => await mjml2html(source, options);
  const warmup = parseInt(warmupArg, 10), runs = parseInt(runsArg, 10);
  let result;
  for (let i = 0; i < warmup; i++) result = await compile();
  const times = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    result = await compile();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  const median = times.length % 2 ? times[(times.length - 1) / 2] : (times[times.length / 2 - 1] + times[times.length / 2]) / 2;
  const errors = (result.errors || []).length;
  console.log(JSON.stringify({ version, median_ms: median, min_ms: times[0], runs, html_bytes: Buffer.byteLength(result.html, "utf8"), errors }));
}

main().catch((err) => { console.error(err && err.stack ? err.stack : String(err)); process.exit(1); });
