"""What every cache of trained networks shares: data digests, canonical JSON, the file
name of a cached result, and atomic writes.

Expert buffers (``expert_store``), teacher sets (``teacher_store``) and EL2N scores
(``real_filter``) are cached under a name derived from everything that determines them
(a *cache key*: a JSON-able dict of data digests, model and config), and written so that
an interrupted run leaves nothing at the final path: a file or directory is written
under a temporary name and renamed into place.

Multi-process runs train a cache once, not once per process. Every process decides
with ``cached`` (the same answer everywhere: the file is there for all of them), then
either all load it or all train (the training's compiled programs span every process);
the atomic writers write on process 0 only and end at a barrier, so no process reads
a cache before it is complete. Cache directories may be URLs (``gs://...``): paths go
through ``etils.epath``.
"""

import hashlib
import json
import os
import re
from collections.abc import Callable
from typing import BinaryIO

import jax
import numpy as np
from etils import epath
from jax.experimental import multihost_utils


def digest(a) -> str:
  """First 16 hex digits of SHA-256 of an array's C-order bytes (data identity in
  cache keys; dtype and shape are not included: cache keys store the shape)."""
  return hashlib.sha256(np.ascontiguousarray(np.asarray(a))).hexdigest()[:16]


def to_json(obj) -> str:
  """Canonical JSON (sorted keys): the text that cache keys are hashed from."""
  # numpy scalars (e.g. a seed from a config) become Python numbers.
  return json.dumps(obj, sort_keys=True, default=lambda o: o.item() if hasattr(
      o, 'item') else str(o))


def key_hash(key: dict) -> str:
  """First 16 hex digits of SHA-256 of ``to_json(key)``."""
  return hashlib.sha256(to_json(key).encode()).hexdigest()[:16]


def cache_file(cache_dir: str, prefix: str, name: str, key: dict,
               suffix: str = '.npz') -> str:
  """``cache_dir/<prefix>_<slug of name>_<key_hash(key)><suffix>``: the path of a
  cached result determined by ``key``; the slug keeps the letters and digits of the
  base name of ``name`` (a data set, a model), runs of others become '_', at most 40."""
  slug = re.sub(r'[^A-Za-z0-9]+', '_', os.path.basename(str(name))).strip('_')[:40]
  return os.path.join(cache_dir, f'{prefix}_{slug}_{key_hash(key)}{suffix}')


def cached(path: epath.PathLike) -> bool:
  """Whether the cache at ``path`` exists for every process (a directory shared by
  all, or a copy on each host). One process without it makes every process train: a
  process cannot train alone, the training spans all of them."""
  here = epath.Path(path).exists()
  if jax.process_count() == 1:
    return here
  return bool(np.all(multihost_utils.process_allgather(np.int32(here))))


def log(message: str) -> None:
  """A line about a cache's file, printed by the process that writes it (process 0)."""
  if jax.process_index() == 0:
    print(message, flush=True)


def _on_process_zero(path: epath.PathLike, write: Callable[[], None]) -> None:
  """``write()`` on process 0 only; then every process waits until it is done (a
  barrier named after the cache file, the same on every host), so that none reads
  ``path`` early. An exception on process 0 is raised there after the barrier."""
  if jax.process_count() == 1:
    write()
    return
  try:
    if jax.process_index() == 0:
      write()
  finally:
    multihost_utils.sync_global_devices(f'jaxdd.store:{epath.Path(path).name}')


def write_file_atomically(path: epath.PathLike, write: Callable[[BinaryIO], None]
                          ) -> None:
  """``write(f)`` into ``path.tmp<pid>``, then rename it to ``path`` (process 0 of a
  multi-process run; the others wait for it, see ``_on_process_zero``).

  Creates the parent directory. An interrupted write (any exception, or
  KeyboardInterrupt) removes the temporary file and leaves ``path`` as it was.
  """
  path = epath.Path(path)

  def write_once():
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'{path.name}.tmp{os.getpid()}')
    try:
      with tmp.open('wb') as f:
        write(f)
      tmp.replace(path)
    finally:
      tmp.unlink(missing_ok=True)

  _on_process_zero(path, write_once)


def write_dir_atomically(path: epath.PathLike, write: Callable[[epath.Path], None]
                         ) -> None:
  """``write(tmp_dir)`` into the fresh directory ``path.tmp<pid>``, then rename it to
  ``path``; an interrupted write removes it and leaves nothing at ``path``. Process 0
  of a multi-process run writes, the others wait for it (``_on_process_zero``):
  ``write`` must not need them (no collective, no multi-process checkpointer).

  Raises:
    FileExistsError: ``path`` exists (a directory is never replaced); on process 0.
  """
  path = epath.Path(path)

  def write_once():
    if path.exists():
      raise FileExistsError(f'{os.fspath(path)!r} exists')
    tmp = path.with_name(f'{path.name}.tmp{os.getpid()}')
    if tmp.exists():
      tmp.rmtree()
    tmp.mkdir(parents=True)
    try:
      write(tmp)
      tmp.rename(path)
    finally:
      if tmp.exists():
        tmp.rmtree()

  _on_process_zero(path, write_once)
