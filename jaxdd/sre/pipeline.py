"""Squeeze → recover → relabel: the teacher-statistics pipeline (SRe2L, CFM, EDC).

METHODS.md §1 SRe2L, §2 UniDD/CFM and EDC. Unlike the generic loop of
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

A config selects this pipeline with ``pipeline='sre'`` (``python -m jaxdd.launch``
dispatches on it). Its sections: ``teachers`` (``cache_dir`` and ``sets``: a list of
``TeacherConfig`` fields, one entry per architecture; EDC uses several in turn),
``recover`` (``RecoverConfig`` fields) and ``relabel`` (``RelabelConfig`` fields, plus
``student`` and ``seeds``). Outputs in the workdir: ``distilled.npz`` / ``.png`` (reused
when present: a rerun resumes at the relabel stage), ``results.json``.
"""

import os
import time

import jax
import numpy as np
import ml_collections

from jaxdd import data as data_lib
from jaxdd import evaluate as eval_lib
from jaxdd import models as models_lib
from jaxdd.sre import recover
from jaxdd.sre import relabel
from jaxdd.pretrain import teacher_eval, teacher_store, teachers
from jaxdd.errors import ConfigError
from jaxdd.outputs import save_grid_png, write_json

DEFAULT_CACHE = os.path.join('~', '.cache', 'jaxdd', 'teachers')


def _plain(v):
  """ConfigDict values -> the plain Python the NamedTuple configs hold."""
  if hasattr(v, 'to_dict'):
    return {k: _plain(x) for k, x in v.to_dict().items()}
  if isinstance(v, dict):
    return {k: _plain(x) for k, x in v.items()}
  if isinstance(v, list):
    return tuple(_plain(x) for x in v)
  return v


def _fields(section, cls, name: str) -> dict:
  """The fields of config section ``name`` for NamedTuple ``cls``; unknown ones refused."""
  values = _plain(section)
  unknown = sorted(set(values) - set(cls._fields))
  if unknown:
    raise ConfigError(f'{name} has unknown field(s) {", ".join(unknown)}; accepted: '
                      f'{", ".join(cls._fields)}')
  return values


def teacher_configs(config) -> list:
  sets = config.teachers.get('sets', None)
  if not sets:
    raise ConfigError('teachers.sets must list at least one teacher architecture '
                      '(a dict of jaxdd.pretrain.teachers.TeacherConfig fields)')
  cfgs = [teachers.TeacherConfig(**_fields(s, teachers.TeacherConfig, 'teachers.sets[i]'))
          for s in sets]
  for c in cfgs:
    teachers.check_teacher_config(c)
  return cfgs


def recover_config(config, ds) -> 'recover.RecoverConfig':
  """``config.recover`` as a RecoverConfig, with the IPC and, for pixel clipping, the
  data's normalisation (``config_utils.sre_config`` fills the section with the method's
  authors' defaults, so every field is visible and overridable)."""
  fields = _fields(config.recover, recover.RecoverConfig, 'recover')
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
  fields = _plain(config.relabel)
  for k in ('student', 'seeds'):
    fields.pop(k, None)
  cfg = relabel.RelabelConfig(**_fields(fields, relabel.RelabelConfig, 'relabel'))
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


def run(config, workdir: str, *, evaluate: bool = True, log=print) -> dict:
  """Runs the three stages; returns (and writes) ``results.json``'s content."""
  t_start = time.time()
  os.makedirs(workdir, exist_ok=True)
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

  # ---- Recover (skipped when this workdir already holds the distilled set).
  path = os.path.join(workdir, 'distilled.npz')
  t0 = time.time()
  if os.path.exists(path):
    with np.load(path) as f:
      images, labels = f['images'], f['labels']
    log(f'recover: reusing {path} ({images.shape[0]} images)')
    recover_seconds = None
  else:
    targets = recover.prepare_targets(rcfg.method, recover_teachers, ds.x_train,
                                      ds.y_train, k, rcfg, log=log)
    images, labels = recover.synthesize(
        jax.random.key(config.seed), recover_teachers, targets, rcfg, k, image_shape,
        data=(ds.x_train, ds.y_train), log=log)
    images, labels = np.asarray(images), np.asarray(labels)
    recover_seconds = round(time.time() - t0, 2)
    np.savez(path, images=images, labels=labels)
    save_grid_png(os.path.join(workdir, 'distilled.png'),
                  data_lib.denormalize(ds, images), labels, k)
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
  write_json(os.path.join(workdir, 'results.json'), results)
  return results


def sre_config(*, data: str, ipc: int, method: str, teacher_sets, relabel_preset: str,
               recover_overrides=None, relabel_overrides=None, student: str = 'convnet',
               seeds: int = 5):
  """A ``pipeline='sre'`` config with every stage's fields spelled out.

  Args:
    data, ipc: as every config.
    method: 'sre2l', 'cfm' or 'edc': ``recover`` holds ``recover.default_config(method)``
      (the authors' CIFAR values) with ``recover_overrides`` over them.
    teacher_sets: a list of dicts of ``TeacherConfig`` fields, one per architecture.
    relabel_preset: a key of ``relabel.PRESETS`` ('sre2l', 'unidd', 'edc'), with
      ``relabel_overrides`` over it.
    student: the evaluated architecture (``models.get_model`` name).
    seeds: students trained per evaluation.
  """
  c = ml_collections.ConfigDict()
  c.pipeline = 'sre'
  c.data = data
  c.data_dir = ''
  c.manual_dir = ''
  c.data_download = False
  c.zca = 'none'
  c.ipc = ipc
  c.seed = 0
  sets = []
  for s in teacher_sets:
    t = {**teachers.TeacherConfig()._asdict(), **s}
    t['model_kw'] = dict(t['model_kw'])
    sets.append(t)
  c.teachers = ml_collections.ConfigDict(dict(cache_dir='', sets=sets))
  c.recover = ml_collections.ConfigDict(
      recover.default_config(method, **(recover_overrides or {}))._asdict())
  if relabel_preset not in relabel.PRESETS:
    raise ConfigError(f'relabel preset must be one of {", ".join(relabel.PRESETS)}, '
                      f'got {relabel_preset!r}')
  c.relabel = ml_collections.ConfigDict(
      {**relabel.PRESETS[relabel_preset]._replace(**(relabel_overrides or {}))._asdict(),
       'student': student, 'seeds': seeds})
  return c


def shrink_for_runlocal(c, width: int = 8):
  """The smoke-run sizes of every ``pipeline='sre'`` config: IPC ≤ 2, narrow 1-epoch
  teachers, 2 recover iterations, a 2-epoch, 2-seed relabel."""
  c.ipc = min(c.ipc, 2)
  for s in c.teachers.sets:
    s.update(epochs=1, num_teachers=1)
    if s['model'].startswith('convnet'):
      s['model_kw'] = {**s['model_kw'], 'width': width}
  c.recover.update(iterations=2, stats_batch_size=64)
  c.relabel.update(epochs=2, seeds=2, eval_every=1, ema_start_epoch=0,
                   milestones=(1,))
  return c


# The papers' CIFAR squeeze recipes (CFM's Table 2: SGD 0.1, momentum 0.9, weight decay
# 5e-4, batch 128, cosine, random crop with padding 4 and flip; 200 epochs on CIFAR-10,
# 100 on CIFAR-100).
CONVNET_TEACHER = dict(model='convnet', model_kw={'norm': 'batchnorm'}, epochs=200,
                       batch_size=128, lr=0.1, crop_pad=4, flip=True)
RESNET_TEACHER = dict(model='resnet18_bn', model_kw={}, epochs=200, batch_size=128,
                      lr=0.1, crop_pad=4, flip=True)
CFM_RELABEL_BATCH = {1: 10, 10: 50, 50: 100}   # UniDD CIFAR: batch by IPC


def cfm_cifar_config(data: str, ipc: int, teacher_epochs: int, runlocal: bool):
  """CFM on CIFAR-10/100 (configs/cfm_cifar10.py documents the settings)."""
  c = sre_config(data=data, ipc=ipc, method='cfm',
                 teacher_sets=[{**CONVNET_TEACHER, 'epochs': teacher_epochs}],
                 relabel_preset='unidd',
                 relabel_overrides=dict(batch_size=CFM_RELABEL_BATCH.get(ipc, 50),
                                        readout='final'),
                 student='convnet_bn')
  return shrink_for_runlocal(c) if runlocal else c


# CPU-sized settings on scikit-learn's 8x8 digits, MNIST and CIFAR-10 (configs/*_digits.py,
# configs/*_mnist.py, configs/*_cifar10.py:cpu): data -> (teacher epochs, crop padding,
# teacher width, flips). Digits are never flipped; CIFAR-10 is, as every CIFAR recipe.
SMALL_DATA = {'digits': (30, 1, 64, False), 'tfds:mnist': (3, 2, 64, False),
              'tfds:cifar10': (10, 4, 64, True)}
_SMALL = {'sre2l': 'sre2l', 'cfm': 'unidd', 'edc': 'edc'}   # method -> relabel preset


def small_config(method: str, data: str, ipc: int, runlocal: bool, iterations: int = 300,
                 epochs: int = 300):
  """``method`` on digits, MNIST or CIFAR-10 for 2 CPU cores: the authors' recover and
  relabel settings with ``iterations`` per batch and ``epochs`` of relabel, flips only
  on CIFAR-10, crops and the recover roll jitter sized for small images (RRC area
  ≥ 0.5; jitter = the crop padding: 4 px on 32x32 as the authors', 1 on 8x8), relabel
  batch 50, the final epoch's accuracy; EDC's multistep milestones and weight-EMA start
  scaled to ``epochs`` and three teachers used in turn (ConvNet-3, ConvNet-2, ConvNet-3
  at half width)."""
  if data not in SMALL_DATA:
    raise ConfigError(f'sre.small_config: data must be one of {", ".join(SMALL_DATA)}, '
                      f'got {data!r}')
  t_epochs, pad, width, flip = SMALL_DATA[data]
  teacher = dict(model='convnet', model_kw={'norm': 'batchnorm', 'width': width},
                 epochs=t_epochs, batch_size=128, lr=0.1, crop_pad=pad, flip=flip)
  sets = [teacher]
  if method == 'edc':
    sets += [{**teacher, 'model': 'convnetd2'},
             {**teacher, 'model_kw': {'norm': 'batchnorm', 'width': width // 2}}]
  preset = _SMALL[method]
  relabel_overrides = dict(epochs=epochs, flip=flip, crop_padding=pad,
                           rrc_scale=(0.5, 1.0), batch_size=50, readout='final')
  if preset == 'edc':
    relabel_overrides.update(milestones=tuple(int(epochs * f) for f in (0.8, 0.9, 0.95)),
                             ema_start_epoch=int(epochs * 0.8))
  recover_overrides = dict(iterations=iterations, flip=flip)
  # SRe2L's and CFM's roll of up to 4 px on 32x32, scaled as the crop padding is: 4 on
  # CIFAR-10, 2 on MNIST, 1 on 8x8 digits (EDC does not roll).
  if method != 'edc':
    recover_overrides['jitter'] = pad
  if method != 'sre2l':
    recover_overrides.update(crop_scale=(0.5, 1.0))
  c = sre_config(data=data, ipc=ipc, method=method, teacher_sets=sets,
                 relabel_preset=preset, relabel_overrides=relabel_overrides,
                 recover_overrides=recover_overrides, student='convnet_bn')
  return shrink_for_runlocal(c) if runlocal else c
