"""``python -m bench``: every benchmark in one run; the last line of output is one JSON object."""

from __future__ import annotations

import os
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent / "shared"


def _main() -> int:
    report = sys.stdout
    # fhir_api is the Lambda layer under shared/ (Lambda puts it on the path as /opt/python; pytest's
    # pythonpath setting does the same for the tests).
    if str(SHARED) not in sys.path:
        sys.path.insert(0, str(SHARED))
    # The functions log one JSON record per request to stdout (CloudWatch in AWS). Here those lines
    # would drown the report, so the process's stdout goes nowhere and the report keeps the terminal.
    # This happens before fhir_api is imported: the functions' logger writes to sys.stdout as it finds it.
    sys.stdout = open(os.devnull, "w")
    from bench.run import run

    return run(report)


if __name__ == "__main__":
    sys.exit(_main())
