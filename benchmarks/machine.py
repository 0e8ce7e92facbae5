"""What this machine can do at best, to turn a speed target into a feasibility check.

``matmul_gflops`` measures the float32 throughput of XLA's best case on this backend
(large square matrix products: the densest work a CPU does); ``compiled_flops`` reads
XLA's cost analysis of a jitted function. A workload of F FLOPs cannot finish in less
than F / matmul_gflops seconds here, whatever the implementation, so a target below
that bound is out of reach of float32 arithmetic on this hardware.

    python benchmarks/machine.py        # prints the measured peak
"""

import os
import platform
import time

import jax
import jax.numpy as jnp


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
  """Best-of-``repeats`` float32 GFLOP/s of an n x n @ n x n product under jit."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  f = jax.jit(lambda a, b: a @ b)
  jax.block_until_ready(f(a, b))
  best = float('inf')
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(f(a, b))
    best = min(best, time.perf_counter() - t0)
  return 2 * n ** 3 / best / 1e9


def compiled_flops(fn, *args, static_argnums=()) -> float:
  """XLA's FLOP count of ``jit(fn)(*args)`` (loops counted once: pass loop-free fns)."""
  compiled = jax.jit(fn, static_argnums=static_argnums).lower(*args).compile()
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):   # older jax returns one dict per device
    cost = cost[0]
  return float(cost['flops'])


def _cpu_model() -> str:
  """The CPU's model name (Linux), so results from different days' machines differ in
  their description when their speeds do."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def hardware() -> str:
  return f'{os.cpu_count()} CPU cores ({_cpu_model()}, {platform.machine()})'


if __name__ == '__main__':
  print(f'{hardware()}: float32 matmul {matmul_gflops():.1f} GFLOP/s (jax {jax.__version__})')
