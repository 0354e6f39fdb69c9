import sys

from .cli import main, run

# The quick exit of run() where this is the program itself; code that a host runs with
# runpy.run_module("scalefit") gets main()'s SystemExit, as any command line in process does.
(run if sys.modules["__main__"].__dict__ is globals() else main)()
