"""Helpers for config files (``configs/*.py``): argument parsing and the common fields.

A config file defines ``get_config(arg)``; ``arg`` is what follows the colon in
``--config=configs/NAME.py:ARG``, e.g. ``10`` or ``ipc=10,runlocal``. The methods'
recipes that configs call are in ``jaxdd.recipes``; this module holds what every config
shares: ``parse_arg``, ``base_config``, ``load_config_file`` and ``shrink_for_runlocal``.
"""

import importlib.util
import os

import ml_collections

from jaxdd.augment import dsa as dsa_lib
from jaxdd.errors import ConfigError


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses ``'ipc=10,runlocal'`` (or a bare ``'10'`` for the first key) over defaults.

  A bare name sets a boolean default to True. Values are cast to the default's type.
  """
  out = dict(defaults)
  first = next(iter(defaults)) if defaults else None
  for token in filter(None, (arg or '').split(',')):
    key, sep, value = token.partition('=')
    if not sep:
      if key in defaults and isinstance(defaults[key], bool):
        out[key] = True
        continue
      key, value = first, token
    if key not in defaults:
      raise ConfigError(f'config argument {key!r} is unknown; accepted: '
                        f'{", ".join(defaults)}')
    kind = type(defaults[key])
    try:
      out[key] = (value.lower() in ('1', 'true', 'yes')) if kind is bool else kind(value)
    except ValueError:
      raise ConfigError(f'config argument {key}={value!r} is not a '
                        f'{kind.__name__}') from None
  return ml_collections.ConfigDict(out)


def base_config(*, data: str, ipc: int) -> ml_collections.ConfigDict:
  """The fields every distillation config has, at the literature's defaults."""
  c = ml_collections.ConfigDict()
  c.data = data                 # digits | npz:PATH | tfds:NAME
  c.data_dir = ''               # tfds data_dir ('' = tfds default)
  c.manual_dir = ''             # tfds manual_dir for offline archives
  c.data_download = False       # tfds: download a missing data set (needs internet)
  c.zca = 'none'                # none | raw (MTT) | krr (KIP/FRePo/PoDD)
  c.ipc = ipc
  c.seed = 0
  c.steps = 1000
  c.checkpoint_every = 500
  c.log_every = 50
  c.model = ml_collections.ConfigDict(
      dict(name='convnet', width=128, depth=3, norm='instancenorm', pooling='avgpooling',
           conv_impl='auto'))
  c.parameterization = ml_collections.ConfigDict(
      dict(name='pixels', init='real', learn_labels=False))
  # param_mask/mask_ratio: PAD's selection of the deeper layers' embeddings (DM and DC;
  # objectives/param_mask.py); off by default.
  c.objective = ml_collections.ConfigDict(
      dict(name='dm', batch_real=256, dsa=True, dsa_strategy=dsa_lib.DEFAULT_STRATEGY,
           param_mask='none', mask_ratio=0.0))
  c.optim = ml_collections.ConfigDict()
  c.optim.images = ml_collections.ConfigDict(dict(name='sgd', lr=1.0, momentum=0.5))
  c.eval = ml_collections.ConfigDict(
      dict(model='convnet', seeds=5, epochs=1000, batch_size=256, lr=0.01, dsa=True,
           loss='ce'))
  # Model selection (PoDD selects on training-set accuracy): every ``every`` steps, and
  # at the last, ``seeds`` networks train on the current set by the eval protocol and
  # are scored on ``samples`` training images (a fixed random subset, or all of them);
  # the best set is the output. 0 = off: the last step's set.
  c.select = ml_collections.ConfigDict(dict(every=0, seeds=1, samples=10000))
  # PAD's filtered real pool (data/real_filter.py): drop none | hard | easy, the ``ratio``
  # of each class by EL2N difficulty; off by default.
  c.real_filter = ml_collections.ConfigDict(dict(
      drop='none', ratio=0.0, el2n_nets=3, el2n_epochs=2, cache_dir=''))
  c.mesh = mesh_config()
  return c


def mesh_config() -> ml_collections.ConfigDict:
  """``config.mesh`` (``jaxdd.sharding.MeshConfig``): devices along ``members``
  (independent networks) and ``data`` (a batch); -1 = the rest."""
  return ml_collections.ConfigDict(dict(members=-1, data=1))


def set_fields(config: ml_collections.ConfigDict, fields: dict) -> ml_collections.ConfigDict:
  """``config`` with each dotted field of ``fields`` set, e.g. ``{'objective.reg': 1e-2}``
  (as ``--config.objective.reg=0.01`` would); returns ``config``."""
  for key, value in fields.items():
    section = config
    *parents, leaf = key.split('.')
    for p in parents:
      section = section[p]
    section[leaf] = value
  return config


def load_config_file(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """``get_config(arg)`` of a config file, as ``--config=PATH:ARG`` would call it."""
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(f'jaxdd_config_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def shrink_for_runlocal(c: ml_collections.ConfigDict, steps: int = 4, *,
                        checkpoint_every: int = 2, log_every: int = 2,
                        eval_epochs: int = 10) -> ml_collections.ConfigDict:
  """The ``runlocal`` sizes every config shares: a few steps, a short 2-seed eval,
  narrow networks (``_narrow``).

  A ``pipeline='sre'`` config (squeeze -> recover -> relabel) has no steps: it gets
  IPC ≤ 2, narrow 1-epoch teachers, 2 recover iterations and a 2-epoch, 2-seed relabel
  (``_shrink_sre``); the step and eval arguments do not apply to it.
  """
  if c.get('pipeline', 'distill') == 'sre':
    return _shrink_sre(c)
  c.steps = steps
  c.checkpoint_every = checkpoint_every
  c.log_every = log_every
  c.eval.epochs = eval_epochs
  c.eval.seeds = 2
  return _narrow(c)


def _narrow(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Narrow networks for ``runlocal``: a width-16 ConvNet distils, ConvNet-W32 evaluates.

  ``runlocal`` checks the wiring from data to results, not accuracy; the width-128
  networks' evaluation alone took half of a run (2 CPU cores), and every test of a
  config runs it. Other architectures and ConvNet variants keep their names.
  """
  if c.model.name == 'convnet' and c.model.get('width', 16) > 16:
    c.model.width = 16
  if c.eval.model == 'convnet':
    c.eval.model = 'convnetw32'
  return c


def _shrink_sre(c: ml_collections.ConfigDict, width: int = 8
                ) -> ml_collections.ConfigDict:
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
