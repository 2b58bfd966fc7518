"""Run every tutorial script in this folder (each writes the figure its page shows).

    python docs/tutorials/run_all.py          # from the top of the repository

Prints each script's wall time and fails (exit 1) if one fails.
"""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = sorted(p.name for p in HERE.glob("*.py") if p.name != Path(__file__).name)

if __name__ == "__main__":
    total = time.perf_counter()
    for name in SCRIPTS:
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(HERE / name)])
        print(f"{name}: {time.perf_counter() - started:.1f} s", flush=True)
        if result.returncode != 0:
            sys.exit(f"tutorial {name} failed (exit {result.returncode})")
    print(f"all tutorials: {time.perf_counter() - total:.1f} s")
