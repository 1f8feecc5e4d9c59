"""Print the oldest versions pyproject.toml allows, as pip constraints: every ``name>=X`` floor becomes ``name==X``.

.ci/run installs the package with these constraints on the oldest Python that ``requires-python``
allows, so the floors users are promised are the versions that CI runs the tests with.
Usage: python3 .ci/oldest-versions.py [--python]   (--python: print that Python's version instead).
Runs on Python >= 3.11 (tomllib), which .ci/run's python3 is.
"""

import re
import sys
from pathlib import Path

import tomllib

project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
if sys.argv[1:] == ["--python"]:
    print(re.fullmatch(r">=\s*(\d+\.\d+)", project["requires-python"]).group(1))
else:
    for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
        floor = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", requirement)
        if floor:  # a requirement without a plain floor is left to pip
            print(f"{floor[1]}=={floor[2]}")
