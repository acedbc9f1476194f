"""CPU accounting: a child process's CPU counts, where `time.process_time` misses it."""

import subprocess
import sys
import time

from asrcompress._cpu import cpu_seconds

_BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4:\n    pass\n"


def test_a_finished_childs_cpu_is_counted():
    own0, all0 = time.process_time(), cpu_seconds()
    subprocess.run([sys.executable, "-c", _BURN], check=True)
    own, total = time.process_time() - own0, cpu_seconds() - all0
    assert total >= 0.4  # the child's 0.4 s of spinning (and its interpreter start)
    assert total - own >= 0.35  # none of it was this process's own
