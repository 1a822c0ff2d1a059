// Prints the source files of the given groups of native/sources.json, space-separated (for binding.gyp).
//   node scripts/sources.cjs core napi
const path = require("node:path");
const list = require(path.join(__dirname, "..", "native", "sources.json"));
const out = [];
for (const group of process.argv.slice(2)) {
  if (!Array.isArray(list[group])) throw new Error(`native/sources.json: no group '${group}'`);
  out.push(...list[group]);
}
process.stdout.write(out.join(" "));
