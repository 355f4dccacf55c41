"""The paper's scaling experiment from a checkout: ``python benchmarks/paper/scaling.py [options]``.

Same as ``kanarray reproduce scaling [options]`` (see ``kanarray.reproduce.scaling`` and
``kanarray reproduce --help``); writes scaling.md and scaling.png into --out and prints the table.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from kanarray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["reproduce", "scaling", *sys.argv[1:]]))
