"""Run one transcribd CLI command in this process, then report its resource use.

python -m bench.run_one REPORT.json -- transcribd-args...
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> None:
    report, args = sys.argv[1], sys.argv[3:]
    from daemon.cli import cli
    from daemon.sysload import bound_malloc_arenas, peak_rss

    bound_malloc_arenas()  # as the transcribd entry point does
    started = time.perf_counter()
    code = 0
    try:
        cli.main(args=args, prog_name="transcribd", standalone_mode=False)
    except SystemExit as exc:
        code = int(exc.code or 0)
    wall = time.perf_counter() - started
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(report, "w", encoding="utf-8") as f:
        json.dump(
            {
                "exit": code,
                "wall": wall,
                "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
                "peak_rss": max(peak_rss(), kids.ru_maxrss * 1024),
            },
            f,
        )


if __name__ == "__main__":
    main()
