"""What every cache of trained networks shares: data digests, canonical JSON, the file
name of a cached result, and atomic writes.

Expert buffers (``expert_store``), teacher sets (``teacher_store``) and EL2N scores
(``real_filter``) are cached under a name derived from everything that determines them
(a *cache key*: a JSON-able dict of data digests, model and config), and written so that
an interrupted run leaves nothing at the final path: a file or directory is written
under a temporary name and renamed into place.
"""

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from typing import BinaryIO

import numpy as np


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


def write_file_atomically(path: str, write: Callable[[BinaryIO], None]) -> None:
  """``write(f)`` into ``path.tmp<pid>``, then ``os.replace`` it to ``path``.

  Creates the parent directory. An interrupted write (any exception, or
  KeyboardInterrupt) removes the temporary file and leaves ``path`` as it was.
  """
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f'{path}.tmp{os.getpid()}'
  try:
    with open(tmp, 'wb') as f:
      write(f)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_dir_atomically(path: str, write: Callable[[str], None]) -> None:
  """``write(tmp_dir)`` into the fresh directory ``path.tmp<pid>``, then rename it to
  ``path``; an interrupted write removes it and leaves nothing at ``path``.

  Raises:
    FileExistsError: ``path`` exists (a directory is never replaced).
  """
  path = os.path.abspath(path)
  if os.path.exists(path):
    raise FileExistsError(f'{path!r} exists')
  tmp = f'{path}.tmp{os.getpid()}'
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  try:
    write(tmp)
    os.rename(tmp, path)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
