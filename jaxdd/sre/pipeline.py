"""Squeeze → recover → relabel: the teacher-statistics pipeline (SRe2L, CFM, EDC).

docs/methods.md §1 SRe2L, §2 UniDD/CFM and EDC. Unlike the generic loop of
``jaxdd.distill`` (a parameterization × an objective, scored by the standard protocol),
these methods run three stages, each a module of its own:

1. **squeeze** (``jaxdd.pretrain.teachers``): train the teacher networks on the real data, stored
   with orbax and reused across runs (cache keyed by data, model and recipe);
2. **recover** (``jaxdd.sre.recover``): synthesise ``ipc`` sequential batches of one image
   per class, each optimised for its own iterations against the teachers' statistics
   (SRe2L's BN-statistic loss, CFM's frequency matching, EDC's soft category-aware
   matching); the method is ``config.recover.method``;
3. **relabel** (``jaxdd.sre.relabel``): students learn from the teachers' soft labels,
   computed online on every augmented batch; the same protocol scores a random real
   subset of the same size, the baseline the papers' gains are measured against.

The whole run is on the config's mesh (``config.mesh``, ``jaxdd.sharding``); in a
multi-process run every process runs every stage (the compiled programs span all
processes) and process 0 alone writes the workdir's files.

A config selects this pipeline with ``pipeline='sre'`` (``python -m jaxdd.launch``
dispatches on it). Its sections: ``teachers`` (``cache_dir`` and ``sets``: a list of
``TeacherConfig`` fields, one entry per architecture; EDC uses several in turn),
``recover`` (``RecoverConfig`` fields) and ``relabel`` (``RelabelConfig`` fields, plus
``student`` and ``seeds``). Outputs in the workdir (a local directory or a URL
such as ``gs://bucket/run``): ``distilled.npz`` / ``.png`` (reused when present: a
rerun resumes at the relabel stage), ``results.json``.
"""

import os
import time

import jax
import numpy as np
from etils import epath

from jaxdd import data as data_lib
from jaxdd import evaluate as eval_lib
from jaxdd import models as models_lib
from jaxdd import sharding
from jaxdd.sre import recover
from jaxdd.sre import relabel
from jaxdd.pretrain import store, teacher_eval, teacher_store, teachers
from jaxdd.config_fields import section_values
from jaxdd.errors import ConfigError
from jaxdd.outputs import as_path, save_grid_png, write_json, write_npz

DEFAULT_CACHE = os.path.join('~', '.cache', 'jaxdd', 'teachers')


def teacher_configs(config) -> list:
  sets = config.teachers.get('sets', None)
  if not sets:
    raise ConfigError('teachers.sets must list at least one teacher architecture '
                      '(a dict of jaxdd.pretrain.teachers.TeacherConfig fields)')
  cfgs = [teachers.TeacherConfig(**section_values(s, teachers.TeacherConfig, 'teachers.sets[i]'))
          for s in sets]
  for c in cfgs:
    teachers.check_teacher_config(c)
  return cfgs


def recover_config(config, ds) -> 'recover.RecoverConfig':
  """``config.recover`` as a RecoverConfig, with the IPC and, for pixel clipping, the
  data's normalisation (``recipes.sre.sre_config`` fills the section with the method's
  authors' defaults, so every field is visible and overridable)."""
  fields = section_values(config.recover, recover.RecoverConfig, 'recover')
  if fields.get('method') not in recover.METHODS:
    raise ConfigError(f'recover.method must be one of {", ".join(recover.METHODS)}, '
                      f'got {fields.get("method")!r}')
  fields['ipc'] = int(config.ipc)
  if config.get('zca', 'none') != 'none':
    fields['clip'] = False   # pixel bounds have no box shape in a whitened space
  else:
    if fields.get('norm_mean') is None:
      fields['norm_mean'] = tuple(float(m) for m in np.ravel(ds.mean))
    if fields.get('norm_std') is None:
      fields['norm_std'] = tuple(float(v) for v in np.ravel(ds.std))
  cfg = recover.RecoverConfig(**fields)
  recover.check_recover_config(cfg)
  return cfg


def relabel_config(config) -> 'relabel.RelabelConfig':
  fields = section_values(config.relabel, relabel.RelabelConfig, 'relabel',
                          shared=('student', 'seeds'))
  for k in ('student', 'seeds'):
    fields.pop(k, None)
  cfg = relabel.RelabelConfig(**fields)
  relabel.check_relabel_config(cfg)
  return cfg


def check_config(config, ds) -> tuple:
  """All three stages' settings, checked before anything trains or compiles."""
  if isinstance(config.ipc, float) and not float(config.ipc).is_integer():
    raise ConfigError(f'ipc must be a whole number for pipeline=sre, got {config.ipc}')
  seeds = config.relabel.get('seeds', 5)
  if not isinstance(seeds, int) or seeds <= 0:
    raise ConfigError(f'relabel.seeds must be a positive integer, got {seeds!r}')
  return teacher_configs(config), recover_config(config, ds), relabel_config(config)


def _teacher_list(sets) -> list:
  """Every stored teacher as a (model, variables) pair, sets in order."""
  return [(s.model, teacher_eval.teacher(s, i)) for s in sets
          for i in range(teacher_eval.num_teachers(s))]


def run(config, workdir: epath.PathLike, *, evaluate: bool = True, log=print) -> dict:
  """Runs the three stages on the config's mesh; returns (and, on process 0, writes)
  ``results.json``'s content. Every process of a multi-process run calls it."""
  mesh = sharding.make_mesh(config.get('mesh'))
  if jax.process_index() != 0:   # one copy of the progress lines
    log = lambda *args, **kwargs: None
  with jax.set_mesh(mesh):
    return _run(config, as_path(workdir), evaluate, log)


def _run(config, workdir: epath.Path, evaluate: bool, log) -> dict:
  t_start = time.time()
  is_main = jax.process_index() == 0
  workdir.mkdir(parents=True, exist_ok=True)
  ds = data_lib.load_from_config(config)
  data_lib.check_ipc(ds, int(config.ipc))
  tcfgs, rcfg, lcfg = check_config(config, ds)
  image_shape = tuple(ds.x_train.shape[1:])
  k = ds.num_classes

  # ---- Squeeze.
  cache = os.path.expanduser(config.teachers.get('cache_dir', '') or DEFAULT_CACHE)
  t0 = time.time()
  sets = teacher_store.load_or_train_teacher_sets(cache, ds.x_train, ds.y_train, ds.x_test,
                                             ds.y_test, k, tcfgs)
  teacher_acc = [float(a) for s in sets
                 for a in teacher_eval.evaluate_teachers(s, ds.x_test, ds.y_test)]
  log(f'teachers: {len(teacher_acc)} ready in {time.time() - t0:.1f} s, test accuracy '
      + ', '.join(f'{a:.4f}' for a in teacher_acc))
  pairs = _teacher_list(sets)
  recover_teachers = pairs if rcfg.method == 'edc' else pairs[0]

  # ---- Recover (skipped when this workdir already holds the distilled set; for every
  # process or for none: recovering is a program of all processes).
  path = workdir / 'distilled.npz'
  t0 = time.time()
  if store.cached(path):
    with path.open('rb') as f, np.load(f) as npz:
      images, labels = npz['images'], npz['labels']
    log(f'recover: reusing {path} ({images.shape[0]} images)')
    recover_seconds = None
  else:
    targets = recover.prepare_targets(rcfg.method, recover_teachers, ds.x_train,
                                      ds.y_train, k, rcfg, log=log)
    images, labels = recover.synthesize(
        jax.random.key(config.seed), recover_teachers, targets, rcfg, k, image_shape,
        data=(ds.x_train, ds.y_train), log=log)
    images, labels = sharding.to_host(images), sharding.to_host(labels)
    recover_seconds = round(time.time() - t0, 2)
    if is_main:
      write_npz(path, images=images, labels=labels)
      save_grid_png(workdir / 'distilled.png', data_lib.denormalize(ds, images),
                    labels, k)
  results = {'pipeline': 'sre', 'method': rcfg.method, 'data': config.data,
             'ipc': int(config.ipc), 'budget_floats': int(images.size),
             'teacher_accuracies': teacher_acc, 'recover_seconds': recover_seconds,
             'recover': rcfg._asdict()}

  # ---- Relabel: the distilled set and a random real subset, same protocol.
  if evaluate:
    student = models_lib.get_model(config.relabel.get('student', 'convnet'), k,
                                   image_shape=image_shape)
    teacher_fn = relabel.make_teacher_fn(pairs if rcfg.method == 'edc' else pairs[0])
    seeds = config.relabel.get('seeds', 5)
    key = jax.random.key(config.seed + 1)
    t0 = time.time()
    # Each set's students train in one compiled program, silent until it ends: say what
    # runs, and time the first so that the second (the same shapes) has an ETA.
    log(f'relabel: {seeds} students x {lcfg.epochs} epochs on the distilled set '
        f'({images.shape[0]} images), then the same on a random real subset')
    res = relabel.evaluate_relabel(key, student, teacher_fn, images, labels, ds.x_test,
                                   ds.y_test, seeds, lcfg)
    first = time.time() - t0
    log(f'relabel: distilled set done in {first:.0f} s; random subset next, ETA '
        f'{first:.0f} s')
    real_x, real_y = eval_lib.random_subset(config.seed, ds, int(config.ipc))
    base = relabel.evaluate_relabel(key, student, teacher_fn, real_x, real_y, ds.x_test,
                                    ds.y_test, seeds, lcfg)
    results.update(
        accuracy_mean=res['accuracy_mean'], accuracy_std=res['accuracy_std'],
        accuracies=res['accuracies'], readout=lcfg.readout,
        random_baseline_mean=base['accuracy_mean'],
        random_baseline_std=base['accuracy_std'],
        random_baseline_accuracies=base['accuracies'],
        relabel=lcfg._asdict(), eval_seconds=round(time.time() - t0, 2))
    log(f'relabel ({lcfg.readout}): distilled {100 * res["accuracy_mean"]:.2f} ± '
        f'{100 * res["accuracy_std"]:.2f} %, random subset '
        f'{100 * base["accuracy_mean"]:.2f} ± {100 * base["accuracy_std"]:.2f} %')
  results['seconds'] = round(time.time() - t_start, 2)
  if is_main:
    write_json(workdir / 'results.json', results)
  return results
