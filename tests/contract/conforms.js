// Checks JSON documents against TypeScript types with the TypeScript compiler: the DoorDash SDK's own .d.ts, and
// uber-direct.d.ts (Uber Direct's documented shapes, which the uber-direct package does not ship).
//
// Reads {"checks": [{"label", "type", "value"}]} on stdin, where "type" names an export of conformance.d.ts;
// prints {"errors": [...]}: one line per mismatch, naming the document's label. Fields a type does not name
// are allowed (clients ignore them); a null where the type wants a value, a missing required field, or a
// word outside an enum is an error.
"use strict";

const path = require("path");
const ts = require("typescript");

async function readInput() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

async function main() {
  const { checks } = await readInput();
  const file = path.join(__dirname, "conformance.check.ts");
  const lines = [
    'import type * as Types from "./conformance";',
    "type Open<T> = T & { [field: string]: unknown };",
    "declare function conforms<T>(label: string, value: Open<T>): void;",
  ];
  const labelOfLine = {};
  for (const check of checks) {
    labelOfLine[lines.length] = check.label;
    lines.push(`conforms<Types.${check.type}>(${JSON.stringify(check.label)}, ${JSON.stringify(check.value)});`);
  }
  const source = lines.join("\n");
  const options = { strict: true, noEmit: true, target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.CommonJS,
                    moduleResolution: ts.ModuleResolutionKind.Node10, skipLibCheck: true, types: [] };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, version, ...rest) => name === file
    ? ts.createSourceFile(name, source, version) : getSourceFile(name, version, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  const errors = ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, " ");
    if (!diagnostic.file || diagnostic.file.fileName !== file) return text;
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    const at = diagnostic.file.text.slice(diagnostic.start, diagnostic.start + diagnostic.length);
    return `${labelOfLine[line] ?? "line " + line}: ${at.slice(0, 60)}: ${text}`;
  });
  process.stdout.write(JSON.stringify({ errors }));
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
