"""CPU time that includes child processes: the beam decoder's pool and the peak-memory probes
run in children, which `time.process_time` (this process only) leaves out."""

from __future__ import annotations

import resource


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads) and of its children waited for."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
