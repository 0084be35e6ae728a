"""A long-running program: in-process SDK pipeline, background sender thread, heartbeats."""

from __future__ import annotations

import sys
import time

import otel_expansion

telemetry = otel_expansion.init("worker", "5.0", mode="service")


@otel_expansion.command("process-job")
def process(job: int) -> None:
    otel_expansion.feature("job", kind="batch")
    if job % 3 == 2:
        raise RuntimeError(f"job {job} failed")
    time.sleep(0.01)


def main(jobs: int, linger: float) -> None:
    for i in range(jobs):
        try:
            process(i)
        except RuntimeError as exc:
            otel_expansion.record_exception(exc)
    time.sleep(linger)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6, float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
