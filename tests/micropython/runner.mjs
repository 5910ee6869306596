// Runs the portable core's tests on the real MicroPython interpreter (WebAssembly port).
// Usage: node runner.mjs ROOT FILE... ; every FILE (relative to ROOT) is copied into the
// interpreter's filesystem under /lib, then every tests/core/test_*.py module is run.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";

const [root, ...files] = process.argv.slice(2);
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
const modules = [];
for (const rel of files) {
  const dest = "/lib/" + rel;
  mkdirs(path.posix.dirname(dest));
  mp.FS.writeFile(dest, fs.readFileSync(path.join(root, rel)));
  const m = rel.match(/^tests\/core\/(test_[a-z0-9_]+)\.py$/);
  if (m) modules.push("tests.core." + m[1]);
}
const harness = `
import sys
sys.path.insert(0, '/lib')
passed = 0
failed = 0
for modname in ${JSON.stringify(modules)}:
    try:
        mod = __import__(modname, None, None, ['*'])
    except Exception as e:
        failed += 1
        print('FAIL', modname, '(import)')
        sys.print_exception(e)
        continue
    for name in sorted(dir(mod)):
        if not name.startswith('test_'):
            continue
        fn = getattr(mod, name)
        if not callable(fn):
            continue
        try:
            fn()
            passed += 1
            print('PASS', modname + '::' + name)
        except Exception as e:
            failed += 1
            print('FAIL', modname + '::' + name)
            sys.print_exception(e)
print('%d passed, %d failed' % (passed, failed))
_mamori_failed = failed
`;
try {
  mp.runPython(harness);
} catch (e) {
  console.error("harness crashed:", e.message || e);
  process.exit(3);
}
process.exit(mp.globals.get("_mamori_failed") ? 1 : 0);
