"""PAD's filtering of information extraction (FIEX) for objectives that read real batches.

PAD (Li et al., "Prioritize Alignment in Dataset Distillation") schedules the data of
trajectory-matching experts by difficulty (``jaxdd.pretrain.difficulty``). Its appendix
("Gradient Matching", "Distribution Matching"; Tables 6 and 7) carries the same idea to
DC and DM, whose real batches come straight from the data set: "When IPC is small, a
certain ratio of hard samples is removed from the target dataset so that the recorded
gradients only contain simple information. Conversely, when IPC becomes large, we
remove easy samples instead." Difficulty is EL2N (PAD Eq. 3, ``difficulty.el2n_scores``).

Here the removal is per class (``ratio`` of each class, by the per-class easy-to-hard
orderings PAD's scheduler uses), so class-balanced real batches stay possible; PAD's
appendix does not say whether its ratio is per class or global. The filtered pool
serves the real batches and the real-image initialisation (PAD removes the samples from
"the target dataset"); evaluation, the random-subset baseline and model selection keep
the whole training set.

Config (``config.real_filter``; absent or ``drop='none'`` = off):
  drop: 'none' | 'hard' | 'easy'.
  ratio: the fraction of each class removed, in [0, 1).
  el2n_nets, el2n_epochs: networks and epochs of ``difficulty.el2n_scores`` (3, 2).
  cache_dir: where the scores are kept ('' = ~/.cache/jaxdd/difficulty); a second run
    on the same data, model and settings reads them instead of training the networks.
"""

import os

import jax
import numpy as np
from etils import epath

from jaxdd import models as models_lib
from jaxdd.errors import ConfigError, is_int, is_num
from jaxdd.pretrain import difficulty
from jaxdd.pretrain import store

DROPS = ('none', 'hard', 'easy')
DEFAULTS = dict(drop='none', ratio=0.0, el2n_nets=3, el2n_epochs=2, cache_dir='')
DEFAULT_CACHE = os.path.join('~', '.cache', 'jaxdd', 'difficulty')


def settings(config) -> dict:
  """``config.real_filter`` over ``DEFAULTS``, checked.

  Raises:
    ConfigError: an unknown field, or a value out of range, naming the field.
  """
  given = dict(config.get('real_filter', None) or {})
  for k in given:
    if k not in DEFAULTS:
      raise ConfigError(f'real_filter.{k} is unknown; accepted: {", ".join(DEFAULTS)}')
  s = {**DEFAULTS, **given}
  if s['drop'] not in DROPS:
    raise ConfigError(f'real_filter.drop must be one of {", ".join(DROPS)}, '
                      f'got {s["drop"]!r}')
  ratio = s['ratio']
  if not is_num(ratio) or not 0 <= ratio < 1:
    raise ConfigError(f'real_filter.ratio must be a number in [0, 1), got {ratio!r}')
  for k in ('el2n_nets', 'el2n_epochs'):
    v = s[k]
    if not is_int(v) or v <= 0:
      raise ConfigError(f'real_filter.{k} must be a positive integer, got {v!r}')
  return s


def is_on(s: dict) -> bool:
  return s['drop'] != 'none' and s['ratio'] > 0


def kept_indices(orderings, drop: str, ratio: float) -> np.ndarray:
  """The training indices that remain, sorted, when every class loses ⌊ratio·n_c⌋ of
  its hardest (``drop='hard'``) or easiest (``'easy'``) samples.

  Args:
    orderings: per class, its indices from easiest to hardest
      (``difficulty.class_orderings``).
    drop: 'none', 'hard' or 'easy'; ratio: in [0, 1).

  With ratio < 1 every class keeps at least one sample (⌊ratio·n⌋ < n).
  """
  kept = []
  for order in orderings:
    order = np.asarray(order)
    k = int(ratio * len(order)) if drop != 'none' else 0
    kept.append(order[:len(order) - k] if drop == 'hard' else order[k:])
  return np.sort(np.concatenate(kept))


def _cache_path(cache_dir: str, ds, model_config: dict, s: dict, seed: int) -> str:
  key = {'version': 1, 'dataset': ds.name, 'x_shape': list(np.shape(ds.x_train)),
         'x_digest': store.digest(ds.x_train), 'y_digest': store.digest(ds.y_train),
         'model_config': model_config, 'el2n_nets': s['el2n_nets'],
         'el2n_epochs': s['el2n_epochs'], 'seed': seed}
  return store.cache_file(cache_dir, 'el2n', ds.name, key)


def el2n_scores_cached(ds, config, s: dict) -> np.ndarray:
  """EL2N of every training image under ``config.model`` (``difficulty.el2n_scores``),
  read from the cache when this data, model and setting were scored before."""
  cache_dir = os.path.expanduser(s['cache_dir'] or DEFAULT_CACHE)
  seed = int(config.get('seed', 0))
  path = _cache_path(cache_dir, ds, dict(config.model), s, seed)
  if store.cached(path):
    with epath.Path(path).open('rb') as fp, np.load(fp) as f:
      scores = f['scores']
    if scores.shape == (len(ds.y_train),):
      print(f'real_filter: loading cached EL2N scores {path}', flush=True)
      return scores
  image_shape = tuple(ds.x_train.shape[1:])
  model = models_lib.from_config(config.model, ds.num_classes, image_shape)
  print(f'real_filter: scoring {len(ds.y_train)} images by EL2N ({s["el2n_nets"]} nets x '
        f'{s["el2n_epochs"]} epochs)', flush=True)
  scores = difficulty.el2n_scores(model, image_shape, ds.x_train, ds.y_train,
                                  ds.num_classes, jax.random.key(seed),
                                  num_nets=s['el2n_nets'], epochs=s['el2n_epochs'])
  # A run stopped while writing leaves no truncated cache file.
  store.write_file_atomically(path, lambda f: np.savez(f, scores=scores))
  return scores


def real_pool(ds, config) -> np.ndarray | None:
  """The training indices DM/DC/... may read (FIEX), or None when the filter is off."""
  s = settings(config)
  if not is_on(s):
    return None
  scores = el2n_scores_cached(ds, config, s)
  orderings = difficulty.class_orderings(scores, ds.y_train, ds.num_classes)
  keep = kept_indices(orderings, s['drop'], s['ratio'])
  print(f'real_filter: {s["drop"]} {s["ratio"]:.0%} of each class removed, '
        f'{keep.size} of {len(ds.y_train)} images remain', flush=True)
  return keep
