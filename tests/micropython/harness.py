"""The test harness that runs inside MicroPython (both ports): every test_* function of the
given modules, one PASS/FAIL line each, then ``PORT: N passed, M failed``.

The WebAssembly port imports it from its in-memory filesystem (runner.mjs), the unix port from
the repository (run_core_tests.py). MicroPython code: no typing, no CPython-only modules.
"""

import sys


def run(port, modules):
    """Run every test function of MODULES; print the counts; return the number of failures."""
    passed = 0
    failed = 0
    for modname in modules:
        try:
            mod = __import__(modname, None, None, ["*"])
        except Exception as e:
            failed += 1
            print("FAIL", modname, "(import)")
            sys.print_exception(e)
            continue
        for name in sorted(dir(mod)):
            if not name.startswith("test_"):
                continue
            fn = getattr(mod, name)
            if not callable(fn):
                continue
            try:
                fn()
                passed += 1
                print("PASS", modname + "::" + name)
            except Exception as e:
                failed += 1
                print("FAIL", modname + "::" + name)
                sys.print_exception(e)
    print("%s: %d passed, %d failed" % (port, passed, failed))
    return failed
