"""host_memory.release_free_memory: freed heap pages go back to the OS."""

import ctypes.util
import os

import pytest

from jaxdd import host_memory

BLOCK, COUNT = 64 * 1024, 2000   # below glibc's mmap threshold: these live on the heap


def _resident_mb() -> float:
  with open('/proc/self/statm') as f:
    return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2 ** 20


@pytest.mark.skipif(ctypes.util.find_library('c') is None or not os.path.exists(
    '/proc/self/statm'), reason='needs glibc and /proc (Linux)')
def test_freed_heap_holes_return_to_the_os():
  # Every other block freed: holes in the middle of the heap, which free() alone keeps
  # resident (only the top of the heap is trimmed automatically).
  blocks = [b'\x01' * BLOCK for _ in range(COUNT)]
  for i in range(0, COUNT, 2):
    blocks[i] = None
  before = _resident_mb()
  assert host_memory.release_free_memory()
  released = before - _resident_mb()
  freed_mb = COUNT // 2 * BLOCK / 2 ** 20
  assert released > 0.5 * freed_mb, (released, freed_mb)
  assert all(b[0] == 1 and len(b) == BLOCK for b in blocks[1::2])   # the rest intact
