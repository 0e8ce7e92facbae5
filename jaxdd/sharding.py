"""The device mesh and where each stage's work goes on it (docs/design.md, "Sharding").

One mesh holds every device of every process, with two named axes:

  ``members``  independent networks: evaluation seeds, experts, teachers, relabel
               students, EL2N scorers, FRePo's pool (``train.members.over_members``);
  ``data``     the examples of one batch of one network.

Their sizes come from the config's optional ``mesh`` section (``MeshConfig``; -1 = the
devices the other axis leaves), so one config runs unchanged on one CPU, 8 GPUs or a
pod slice. The distillation step trains no independent networks: its work (a class's
images, an inner step's synthetic minibatch, a kernel's rows, a poster's patches) is
split over both axes at once, ``ROWS``.

Code below the launcher never receives a mesh as an argument: the run enters it with
``jax.set_mesh(mesh)`` and the helpers here read it from the context while tracing.
Outside a mesh, or on a mesh of one device, every helper is the identity, so the
single-device programs are exactly those of before. Sharding constraints inside a
step may split an axis unevenly (15 real images over 8 devices): XLA pads and masks
them. Arrays that cross the step's boundary (its state) are sharded only along an
axis that divides evenly, otherwise replicated (``row_sharding``).
"""

import contextvars
import functools
import math
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from jaxdd.config_fields import read_section
from jaxdd.errors import ConfigError, is_int

MEMBERS, DATA = 'members', 'data'
ROWS = (MEMBERS, DATA)   # the distillation step's work: over every device


class MeshConfig(NamedTuple):
  """``config.mesh``: the mesh's axis sizes; their product is the device count.

  Attributes:
    members: devices along ``members`` (independent networks); -1 = the rest.
    data: devices along ``data`` (one network's batch); -1 = the rest.

  The default puts every device on ``members``: jaxdd's networks are small and many
  (5-100 seeds, experts or teachers), so splitting them costs no communication, while
  splitting one small network's batch costs an all-reduce of its gradient every step.
  """
  members: int = -1
  data: int = 1


def _axis_size(v) -> bool:
  return is_int(v) and (v == -1 or v >= 1)


MESH_CHECKS = {'members': (_axis_size, 'a positive integer or -1 (the rest)'),
               'data': (_axis_size, 'a positive integer or -1 (the rest)')}


def parse_mesh(section) -> MeshConfig:
  """``MeshConfig`` from ``config.mesh`` (None: the defaults), checked.

  Raises:
    ConfigError: an unknown field or a size that is neither -1 nor positive.
  """
  cfg = read_section(section, MeshConfig, 'mesh', MESH_CHECKS)
  if cfg.members == -1 and cfg.data == -1:
    raise ConfigError('mesh.members and mesh.data cannot both be -1')
  return cfg


def axis_sizes(cfg: MeshConfig, num_devices: int) -> tuple[int, int]:
  """(members, data) with -1 resolved; their product is ``num_devices``.

  Raises:
    ConfigError: the sizes do not multiply to the device count.
  """
  members, data = cfg.members, cfg.data
  if members == -1:
    members = num_devices // data if num_devices % data == 0 else 0
  if data == -1:
    data = num_devices // members if num_devices % members == 0 else 0
  if members * data != num_devices:
    raise ConfigError(f'mesh.members ({cfg.members}) x mesh.data ({cfg.data}) must '
                      f'cover the {num_devices} devices exactly')
  return members, data


def make_mesh(section=None, devices=None) -> Mesh:
  """The ``(members, data)`` mesh over ``devices`` (default: every device of every
  process), sized by the config section ``mesh`` (``MeshConfig``).

  ``jax.make_mesh`` orders the devices by the hardware's topology (TPU ICI rings,
  hosts), so ``data`` — the axis with a collective every step — stays within a host.
  """
  cfg = parse_mesh(section)
  devices = jax.devices() if devices is None else list(devices)
  shape = axis_sizes(cfg, len(devices))
  return jax.make_mesh(shape, (MEMBERS, DATA), axis_types=(AxisType.Auto,) * 2,
                       devices=devices)


def context_axis_size(axis) -> int:
  """The size of mesh ``axis`` (a name or a tuple of names) in the context; 1 outside
  a mesh."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return 1
  names = axis if isinstance(axis, tuple) else (axis,)
  return math.prod(mesh.shape[n] for n in names if n in mesh.shape)


def constrain(x, *spec):
  """``x`` laid out as ``PartitionSpec(*spec)`` on the context's mesh; the identity
  outside a mesh or where the named axes hold one device."""
  names = [n for s in spec if s is not None
           for n in (s if isinstance(s, tuple) else (s,))]
  if not names or context_axis_size(tuple(names)) == 1:
    return x
  return jax.lax.with_sharding_constraint(x, P(*spec))


def shard_rows(x, axis: int = 0):
  """``x`` with its axis ``axis`` split over every device (``ROWS``)."""
  return constrain(x, *([None] * axis + [ROWS]))


def shard_batch(x):
  """A network's batch (leading axis) split over ``data``."""
  return constrain(x, DATA)


def row_sharding(mesh: Mesh, tree: Any) -> Any:
  """Per leaf: ``P(ROWS)`` when its leading axis divides evenly over the mesh's
  devices, else replicated. For the state a step carries across its boundary, where a
  layout must divide evenly (inside the step, ``shard_rows`` may split unevenly)."""
  def one(leaf):
    shape = np.shape(leaf)
    if shape and shape[0] >= mesh.size and shape[0] % mesh.size == 0 and mesh.size > 1:
      return NamedSharding(mesh, P(ROWS))
    return NamedSharding(mesh, P())
  return jax.tree_util.tree_map(one, tree)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def to_host(x) -> np.ndarray:
  """A global array as one numpy array on every process (a multi-host row-sharded
  array has shards this process cannot read directly)."""
  if getattr(x, 'is_fully_addressable', True) or x.is_fully_replicated:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def pad_rows(x: np.ndarray, multiple: int) -> np.ndarray:
  """``x`` with rows appended (copies of row 0) up to a multiple of ``multiple``, for
  an array that must divide evenly at a step's boundary; the padding is never read."""
  extra = -len(x) % multiple
  if not extra:
    return x
  return np.concatenate([x, np.repeat(x[:1], extra, axis=0)])


_ROWS_STEP = contextvars.ContextVar('jaxdd_rows_step', default=False)


def traced_on(mesh: Mesh, fn):
  """``fn`` traced with ``mesh`` as the context mesh, for ``jax.jit`` with shardings on
  ``mesh`` (``jax.set_mesh`` cannot be entered inside a trace), as a step whose work is
  split by rows (``rows_step``)."""
  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    token = _ROWS_STEP.set(True)
    try:
      with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
        return fn(*args, **kwargs)
    finally:
      _ROWS_STEP.reset(token)
  return wrapped


def rows_step() -> bool:
  """Whether a distillation step (``traced_on``) is being traced on several devices."""
  return _ROWS_STEP.get() and context_axis_size(ROWS) > 1


def place(x, target: NamedSharding) -> jax.Array:
  """The host array ``x`` (the same on every process) as a global array laid out as
  ``target``; each process fills only its own devices' shards."""
  if jax.dtypes.issubdtype(getattr(x, 'dtype', None), jax.dtypes.prng_key):
    data = place(jax.random.key_data(x), target)
    return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, target, lambda index: x[index])


def place_tree(tree, shardings):
  """``place`` leaf by leaf (``shardings`` a matching tree, e.g. ``row_sharding``)."""
  return jax.tree_util.tree_map(place, tree, shardings)
