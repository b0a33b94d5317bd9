"""genai.training.heap: after map_large_blocks, a large tensor freed and a smaller large one allocated comes
from its own mapping, not from glibc's heap (which, by default, raises its threshold to the largest block
freed and keeps serving activations from a heap it never shrinks)."""

import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import json, sys
import torch
from genai.training.heap import map_large_blocks

setting = map_large_blocks() if sys.argv[1] == "on" else None
big = torch.ones(16 << 18)  # 16 MiB: mapped, and freeing it raises glibc's default threshold
del big
t = torch.ones(6 << 18)  # 6 MiB
heap = [l for l in open("/proc/self/maps") if l.rstrip().endswith("[heap]")]
lo, hi = (int(x, 16) for x in heap[0].split()[0].split("-")) if heap else (0, 0)
print(json.dumps({"setting": setting, "in_heap": lo <= t.data_ptr() < hi}))
"""


def _probe(mode: str, **env) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"} | env
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="Linux only: the probe reads /proc/self/maps, and mallopt is glibc's"
)
def test_large_tensors_leave_the_heap_and_the_environment_wins():
    assert _probe("off") == {"setting": None, "in_heap": True}  # glibc's default: served from the heap
    assert _probe("on") == {"setting": "blocks >= 4 MiB mapped", "in_heap": False}
    # A user's own MALLOC_MMAP_THRESHOLD_ is left alone (and applies: 32 MiB keeps 6 MiB in the heap).
    assert _probe("on", MALLOC_MMAP_THRESHOLD_=str(32 << 20)) == {"setting": None, "in_heap": True}
