"""What the bench scripts share: where the repository, Snakemake and EmoDB are, and timed runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
#: The team's EmoDB copy (``SERFLOW_EMODB`` overrides it, as for the tests).
EMODB = Path(os.environ.get("SERFLOW_EMODB", REPO.parent / "shared" / "data" / "emodb" / "wav"))

if str(REPO / "src") not in sys.path:  # this checkout's serflow, installed or not
    sys.path.insert(0, str(REPO / "src"))


def snakemake_command(workdir, *args, snakefile=REPO / "Snakefile") -> list[str]:
    """The Snakemake command line of a run in ``workdir`` (its arguments after these)."""
    return [SNAKEMAKE, "-s", str(Path(snakefile).resolve()), "-d", str(workdir), *args]


def timed(cmd, cwd=None) -> float:
    """Wall seconds of a command that must succeed (its output is shown only if it fails)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start
