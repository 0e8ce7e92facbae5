"""Returning the host memory XLA's compiler freed to the operating system.

Compiling a large program (an unrolled, rematerialised MTT meta-gradient, a DSA
iteration) makes XLA:CPU allocate hundreds of MB of compiler data structures on the
host heap. It frees them when compilation ends, but glibc's malloc keeps freed heap
pages mapped, so the process's resident memory stays that much higher for the whole run
and the program's own buffers come on top (measured for MTT, MNIST IPC 10, syn_steps
10: +0.60 GB resident after compiling, of which `malloc_trim` returns 0.47 GB;
benchmarks/results/mtt_memory.json). `release_free_memory` asks glibc to hand those
pages back; the distillation loop calls it once after compiling its step.
"""

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=None)
def _libc_malloc_trim():
  """glibc's ``malloc_trim``, or None where it does not exist (macOS, musl)."""
  name = ctypes.util.find_library('c')
  if name is None:
    return None
  try:
    fn = ctypes.CDLL(name).malloc_trim
  except (OSError, AttributeError):
    return None
  fn.argtypes = [ctypes.c_size_t]
  fn.restype = ctypes.c_int
  return fn


def release_free_memory() -> bool:
  """Returns the heap's free pages to the OS (glibc ``malloc_trim(0)``).

  Frees nothing that is in use: only memory malloc already holds as free. Returns
  whether any memory was released (False where glibc is not the allocator).
  """
  fn = _libc_malloc_trim()
  return bool(fn(0)) if fn is not None else False
