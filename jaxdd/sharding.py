"""Device mesh for distillation: one ``data`` axis over every device of every host.

The real batch is sharded over ``data`` (``PartitionSpec(None, 'data')`` on the
class-major [K, n, ...] batch); the synthetic set and the optimizer state are
replicated. On one device all of this is a no-op. Multi-host runs call
``jax.distributed.initialize()`` first (see ``jaxdd.launch`` and ``launch/``).
"""

import jax
import numpy as np
from jax.sharding import Mesh

from jaxdd.errors import ConfigError


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh named ``data`` over ``devices`` (default: all devices)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ('data',))


def check_divisible(n: int, mesh: Mesh, field: str) -> None:
  """The per-class real batch is split over the devices: it must divide evenly."""
  size = mesh.shape['data']
  if n % size:
    raise ConfigError(f'{field} ({n}) must be a multiple of the number of devices '
                      f'({size}) so the real batch shards evenly')
