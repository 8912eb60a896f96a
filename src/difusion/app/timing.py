"""How fast the explorer is: start-up to the first HTTP 200, and one sampling request.

    python -m difusion.app.timing RUN_DIR [--repeats 3]

prints the median of each over ``repeats`` tries: the seconds from starting `difusion explore RUN_DIR`
to the page answering, and for a 20-step DPM-Solver++(2M) request of 16 images the sampler's own
time and the whole request (sampler, grid, trajectory strip and GIF), as the Reverse tab runs it.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def startup_seconds(run_dir: str | Path, timeout: float = 120.0) -> float:
    """Seconds from launching `difusion explore RUN_DIR` to its first HTTP 200."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "difusion.cli", "explore", str(run_dir), "--port", str(port)]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < timeout:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200:
                    return time.perf_counter() - started
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"the explorer did not answer within {timeout:.0f} s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def request_seconds(
    run_dir: str | Path, n: int = 16, steps: int = 20, sampler: str = "dpmpp-2m"
) -> tuple[float, float]:
    """(sampler seconds, whole-request seconds) of one Reverse-tab request on a loaded run."""
    from difusion.app import explorer as ex

    run = ex.RunRegistry([run_dir]).load(str(run_dir))
    started = time.perf_counter()
    traj = ex.reverse_process(run, sampler=sampler, steps=steps, n=n)
    data = ex.run_data(run)
    ex.samples_picture(traj.samples, data)
    ex.trajectory_strip(traj, data=data)
    ex.save_animation(ex.trajectory_frames(traj, data))
    return traj.seconds, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    starts = [startup_seconds(args.run_dir) for _ in range(args.repeats)]
    requests = [request_seconds(args.run_dir) for _ in range(args.repeats)]
    print(f"start-up to HTTP 200: median {statistics.median(starts):.2f} s of {starts}")
    sampler = [round(r[0], 2) for r in requests]
    whole = [round(r[1], 2) for r in requests]
    print(
        f"20-step dpmpp-2m, 16 images: sampler median {statistics.median(sampler):.2f} s of {sampler}"
    )
    print(
        f"  whole request (with pictures and GIF): median {statistics.median(whole):.2f} s of {whole}"
    )


if __name__ == "__main__":
    main()
