// Runs portable tests on the real MicroPython interpreter (WebAssembly port).
// Usage: node runner.mjs ROOT MODULES_JSON FILE... ; every FILE (relative to ROOT) is copied
// into the interpreter's filesystem under /lib, then tests/micropython/harness.py runs MODULES.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";

const [root, modulesJson, ...files] = process.argv.slice(2);
const mp = await loadMicroPython({
  heapsize: 8 * 1024 * 1024,
  stdout: (s) => process.stdout.write(s + "\n"),
  stderr: (s) => process.stderr.write(s + "\n"),
});
const made = new Set();
function mkdirs(dir) {
  let cur = "";
  for (const part of dir.split("/").filter(Boolean)) {
    cur += "/" + part;
    if (!made.has(cur)) {
      try { mp.FS.mkdir(cur); } catch (e) { /* exists */ }
      made.add(cur);
    }
  }
}
for (const rel of files) {
  const dest = "/lib/" + rel;
  mkdirs(path.posix.dirname(dest));
  mp.FS.writeFile(dest, fs.readFileSync(path.join(root, rel)));
}
const modules = JSON.parse(modulesJson);
try {
  mp.runPython(`
import sys
sys.path.insert(0, '/lib')
from tests.micropython import harness
_mamori_failed = harness.run('webassembly', ${JSON.stringify(modules)})
`);
} catch (e) {
  console.error("harness crashed:", e.message || e);
  process.exit(3);
}
process.exit(mp.globals.get("_mamori_failed") ? 1 : 0);
