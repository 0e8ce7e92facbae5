"""Storage and caching of squeeze-stage teacher sets (``jaxdd.pretrain.teachers``).

A stored set is a directory: an orbax ``StandardCheckpointer`` checkpoint of the
variables pytree (numpy, leading teacher axis) under ``state/`` and ``meta.json``
(config, data digests, per-teacher test accuracy). It is written to a temporary
directory that is renamed into place (``store.write_dir_atomically``), so an interrupted
save leaves nothing behind.
``load_or_train_teachers`` keys a set by digests of the train data + model + config
(``cache_key``, ``store.cache_file``), as ``jaxdd.pretrain.expert_store`` does for expert
trajectories, and trains, tests and stores it when no stored set matches.
"""

import json
import types
from collections.abc import Mapping, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from jaxdd import models as models_lib
from jaxdd.outputs import as_path
# Training is looked up on the module at call time (``tch.train_teachers``), so that a
# patched ``jaxdd.pretrain.teachers.train_teachers`` (tests) is the one that runs.
from jaxdd.pretrain import store
from jaxdd.pretrain import teacher_eval
from jaxdd.pretrain import teachers as tch
from jaxdd.errors import ConfigError, DataError

_STATE_DIR = 'state'      # orbax checkpoint inside a stored set
_META_FILE = 'meta.json'


def _checkpointer() -> ocp.StandardCheckpointer:
  """An orbax checkpointer of this process alone: a stored set is numpy arrays, written
  by process 0 (``store.write_dir_atomically``) and read by each process for itself,
  so orbax must not wait for the other processes of a multi-process run."""
  me = jax.process_index()
  alone = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me},
                                             barrier_sync_key_prefix=f'teachers{me}')
  return ocp.StandardCheckpointer(multiprocessing_options=alone)


def config_from_dict(d: Mapping) -> tch.TeacherConfig:
  """Inverse of ``teachers.config_dict``: the 'config' entry of a stored set's metadata
  back to a ``TeacherConfig``."""
  return tch.TeacherConfig(**{**d, 'model_kw': types.MappingProxyType(dict(d['model_kw']))})


def save_teachers(path: epath.PathLike, teachers: tch.Teachers) -> None:
  """Writes ``teachers`` to the directory ``path`` atomically.

  Layout: ``path/state`` (an orbax ``StandardCheckpointer`` checkpoint of the numpy
  variables pytree) and ``path/meta.json`` (``teachers.meta``, which must hold
  'config', 'num_classes' and 'image_shape' to rebuild the model). Everything is
  written to ``path.tmp<pid>`` first and renamed to ``path`` at the end
  (``store.write_dir_atomically``), so an interrupted save leaves nothing at ``path``.

  Raises:
    FileExistsError: ``path`` exists.
  """

  def write(tmp):
    state = jax.tree_util.tree_map(np.asarray, teachers.variables)
    with _checkpointer() as ckptr:  # saves asynchronously; exit waits
      ckptr.save(as_path(tmp) / _STATE_DIR, state)
      ckptr.wait_until_finished()
    (tmp / _META_FILE).write_text(store.to_json(teachers.meta or {}))

  store.write_dir_atomically(path, write)


def load_teachers(path: epath.PathLike) -> tch.Teachers:
  """Reads a set written by ``save_teachers``; the model is rebuilt from the metadata
  and the stored tree must match its variables (structure, shapes, dtypes).

  Raises:
    DataError: missing or unreadable set, or one that does not fit its model.
  """

  try:
    meta = json.loads((epath.Path(path) / _META_FILE).read_text())
    cfg = config_from_dict(meta['config'])
    image_shape = tuple(meta['image_shape'])
    model = tch.make_teacher_model(cfg, meta['num_classes'], image_shape)
  except (OSError, KeyError, TypeError, ValueError) as e:
    raise DataError(f'teacher set {path!r} is not readable ({e})') from None
  one = jax.eval_shape(lambda k: models_lib.init_model(model, k, image_shape),
                       jax.random.key(0))
  count = cfg.num_teachers
  # Abstract leaves without a sharding restore as numpy arrays.
  target = jax.tree_util.tree_map(
      lambda s: jax.ShapeDtypeStruct((count,) + s.shape, s.dtype), one)
  try:
    with _checkpointer() as ckptr:
      restored = ckptr.restore(as_path(path) / _STATE_DIR, target)
  except (OSError, KeyError, TypeError, ValueError) as e:
    raise DataError(f'teacher set {path!r} does not fit model {cfg.model} on images '
                    f'{image_shape} ({e})') from None
  variables = jax.tree_util.tree_map(np.asarray, restored)
  if (jax.tree_util.tree_structure(variables) != jax.tree_util.tree_structure(target)
      or any(a.shape != b.shape or a.dtype != b.dtype for a, b in zip(
          jax.tree_util.tree_leaves(variables), jax.tree_util.tree_leaves(target)))):
    raise DataError(f'teacher set {path!r} does not fit model {cfg.model} on images '
                    f'{image_shape}: stored layout differs')
  return tch.Teachers(model, variables, meta)


def cache_key(x_train, y_train, num_classes: int, cfg: tch.TeacherConfig) -> dict:
  """Everything that determines a teacher set: train-data digests, model and config
  (``seed_loop`` only changes float rounding, ``test_batch_size`` nothing)."""
  config = {k: v for k, v in tch.config_dict(cfg).items()
            if k not in ('seed_loop', 'test_batch_size')}
  return {'version': 1, 'x_shape': list(np.shape(x_train)),
          'x_digest': store.digest(x_train), 'y_digest': store.digest(y_train),
          'num_classes': int(num_classes), 'teachers': config}


def teacher_set_path(cache_dir: str, x_train, y_train, num_classes: int,
                     cfg: tch.TeacherConfig) -> str:
  """``cache_dir/teachers_<model>_<first 16 hex of SHA-256 of the cache key>``
  (``store.cache_file``, a directory: no suffix)."""
  key = cache_key(x_train, y_train, num_classes, cfg)
  return store.cache_file(cache_dir, 'teachers', cfg.model.lower(), key, suffix='')


def load_or_train_teachers(cache_dir: str, x_train, y_train, x_test, y_test,
                           num_classes: int, cfg: tch.TeacherConfig, *,
                           verbose: bool = True) -> tch.Teachers:
  """Loads the stored teacher set for these arguments, or trains, tests and stores it.

  A stored set is reused when its key (``cache_key``: data digests + model + config)
  matches. Otherwise ``train_teachers`` runs, every teacher is scored on the test
  split (``meta['test_accuracy']``, one float per teacher, printed) and the set is
  saved with ``save_teachers`` (atomic). A stored set scored on another test split
  is re-scored on this one (in memory only).
  """
  tch.check_teacher_config(cfg)
  tch.check_teacher_data(x_test, y_test, num_classes, 'test')
  path = teacher_set_path(cache_dir, x_train, y_train, num_classes, cfg)
  test_digest = store.digest(x_test) + store.digest(y_test)
  if store.cached(path):
    print(f'teachers: loading {path}', flush=True)
    teachers = load_teachers(path)
    if teachers.meta.get('test_digest') != test_digest:
      acc = teacher_eval.evaluate_teachers(teachers, x_test, y_test,
                              test_batch_size=cfg.test_batch_size, seed_loop=cfg.seed_loop)
      teachers = teachers._replace(meta={**teachers.meta, 'test_digest': test_digest,
                                         'test_accuracy': acc.tolist()})
    return teachers
  print(f'teachers: no stored set at {path}; training {cfg.num_teachers} '
        f'{cfg.model} teachers', flush=True)
  teachers = tch.train_teachers(x_train, y_train, num_classes, cfg, verbose=verbose)
  acc = teacher_eval.evaluate_teachers(teachers, x_test, y_test, test_batch_size=cfg.test_batch_size,
                          seed_loop=cfg.seed_loop)
  print(f'teachers: test accuracy {", ".join(f"{a:.4f}" for a in acc)} (mean '
        f'{acc.mean():.4f})', flush=True)
  teachers = teachers._replace(meta={
      **teachers.meta, 'cache_key': cache_key(x_train, y_train, num_classes, cfg),
      'test_digest': test_digest, 'test_accuracy': acc.tolist()})
  try:
    save_teachers(path, teachers)   # process 0; the others wait (store)
    store.log(f'teachers: saved {path}')
  except FileExistsError:  # another process stored the same set meanwhile
    pass
  return teachers


def load_or_train_teacher_sets(cache_dir: str, x_train, y_train, x_test, y_test,
                               num_classes: int, cfgs: Sequence[tch.TeacherConfig], *,
                               verbose: bool = True) -> list[tch.Teachers]:
  """``load_or_train_teachers`` for each config in turn: EDC's several backbones
  (docs/methods.md §2 EDC "Teachers"). All configs are checked before anything trains."""
  cfgs = list(cfgs)
  if not cfgs:
    raise ConfigError(f'{tch.SECTION} must list at least one TeacherConfig, got none')
  for cfg in cfgs:
    tch.check_teacher_config(cfg)
  return [load_or_train_teachers(cache_dir, x_train, y_train, x_test, y_test,
                                 num_classes, cfg, verbose=verbose) for cfg in cfgs]


__all__ = ['config_from_dict', 'save_teachers', 'load_teachers', 'cache_key',
           'teacher_set_path', 'load_or_train_teachers', 'load_or_train_teacher_sets']
