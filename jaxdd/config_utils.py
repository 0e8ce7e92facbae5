"""Helpers for config files (``configs/*.py``): argument parsing and the common fields.

A config file defines ``get_config(arg)``; ``arg`` is what follows the colon in
``--config=configs/NAME.py:ARG``, e.g. ``10`` or ``ipc=10,runlocal``.
"""

import importlib.util
import os

import ml_collections

from jaxdd import augment
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
  c.objective = ml_collections.ConfigDict(
      dict(name='dm', batch_real=256, dsa=True, dsa_strategy=augment.DEFAULT_STRATEGY))
  c.optim = ml_collections.ConfigDict()
  c.optim.images = ml_collections.ConfigDict(dict(name='sgd', lr=1.0, momentum=0.5))
  c.eval = ml_collections.ConfigDict(
      dict(model='convnet', seeds=5, epochs=1000, batch_size=256, lr=0.01, dsa=True,
           loss='ce'))
  return c


def load_config_file(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """``get_config(arg)`` of a config file, as ``--config=PATH:ARG`` would call it."""
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(f'jaxdd_config_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)
