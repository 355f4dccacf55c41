"""The paper's feynman experiment from a checkout: ``python benchmarks/paper/feynman.py [options]``.

Same as ``kanarray reproduce feynman [options]`` (see ``kanarray.reproduce.feynman`` and
``kanarray reproduce --help``); writes feynman.md and feynman.png into --out and prints the table.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from kanarray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["reproduce", "feynman", *sys.argv[1:]]))
