"""PAD's data difficulty: EL2N against numpy, orderings, the scheduler against its table."""

import jax
import numpy as np
import pytest

from jaxdd import models
from jaxdd.pretrain import experts
from jaxdd.pretrain import difficulty
from jaxdd.errors import ConfigError

SHAPE = (8, 8, 1)
K = 3


def _np_el2n(logits, y, k):
  logits = np.asarray(logits, np.float64)
  p = np.exp(logits - logits.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  return np.sqrt(((p - np.eye(k)[y]) ** 2).sum(-1))


def test_el2n_from_logits_matches_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(7, 4)).astype(np.float32) * 3
  y = rng.integers(0, 4, size=7)
  np.testing.assert_allclose(np.asarray(difficulty.el2n_from_logits(logits, y, 4)),
                             _np_el2n(logits, y, 4), rtol=1e-5, atol=1e-6)
  # Closed forms: a confident right answer scores ~0, a confident wrong one ~sqrt(2).
  s = difficulty.el2n_from_logits(np.array([[50., 0., 0.], [0., 50., 0.]]),
                                  np.array([0, 0]), 3)
  np.testing.assert_allclose(np.asarray(s), [0.0, np.sqrt(2)], atol=1e-6)


def test_el2n_scores_average_the_networks_numpy_el2n(monkeypatch):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(11,) + SHAPE).astype(np.float32)
  y = np.arange(11) % K
  model = models.get_model('convnet', K, image_shape=SHAPE, width=8, depth=1)
  seen = {}
  real_train = experts.train_experts

  def spy(*args, **kwargs):
    seen['cfg'] = args[5]
    seen['buffer'] = real_train(*args, **kwargs)
    return seen['buffer']

  monkeypatch.setattr(experts, 'train_experts', spy)
  scores = difficulty.el2n_scores(model, SHAPE, x, y, K, jax.random.key(0), num_nets=2,
                                  epochs=1, batch_size=4, lr=0.05, dsa=False)
  cfg, buf = seen['cfg'], seen['buffer']
  assert (cfg.num_experts, cfg.epochs, cfg.batch_size, cfg.lr) == (2, 1, 4, 0.05)
  apply = jax.jit(lambda flat: model.apply({'params': buf.unflatten(flat)}, x))
  expected = np.mean([_np_el2n(apply(buf.trajectories[i, -1]), y, K) for i in range(2)], 0)
  assert scores.shape == (11,)
  np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
  # Chunks that do not divide N (padding) give the same scores.
  again = difficulty.el2n_of_buffer(model, buf, x, y, K, chunk=4)
  np.testing.assert_allclose(again, expected, rtol=1e-4, atol=1e-5)


def test_class_orderings_sort_each_class_easy_to_hard():
  rng = np.random.default_rng(2)
  y = rng.integers(0, K, size=40)
  scores = rng.integers(0, 5, size=40).astype(float)  # many ties
  got = difficulty.class_orderings(scores, y, K)
  for c in range(K):
    expected = sorted((i for i in range(40) if y[i] == c), key=lambda i: (scores[i], i))
    assert got[c].tolist() == expected


# Hand-computed: (dropped-easiest fraction, kept-up-to fraction) of docs/methods.md §2 PAD
# with IR 0.75, AEE 20, removal after epochs 40 (10 %) and 60 (20 %).
TABLE = {0: (0, 0.75), 1: (0, 0.7625), 10: (0, 0.875), 19: (0, 0.9875), 20: (0, 1),
         21: (0, 1), 40: (0, 1), 41: (0.1, 1), 60: (0.1, 1), 61: (0.2, 1), 99: (0.2, 1)}
# Kept images per class, int() truncation as the released code: class sizes 5000
# (CIFAR-10, the released code's constant), 40, 37.
COUNTS = {
    5000: {0: 3750, 1: 3812, 10: 4375, 19: 4937, 20: 5000, 21: 5000, 40: 5000,
           41: 4500, 60: 4500, 61: 4000, 99: 4000},
    40: {0: 30, 1: 30, 10: 35, 19: 39, 20: 40, 21: 40, 40: 40, 41: 36, 60: 36, 61: 32,
         99: 32},
    37: {0: 27, 1: 28, 10: 32, 19: 36, 20: 37, 21: 37, 40: 37, 41: 34, 60: 34, 61: 30,
         99: 30},
}


def test_schedule_fractions_follow_the_table():
  for e, (lo, hi) in TABLE.items():
    assert difficulty.schedule_fractions(e) == pytest.approx((lo, hi), abs=1e-12), e
  # Parameters move the boundaries: IR 0.5, AEE 10, one removal stage after 15.
  kw = dict(initial_ratio=0.5, add_end_epoch=10, remove_epochs=(15,),
            remove_fractions=(0.3,))
  for e, want in {0: (0, 0.5), 5: (0, 0.75), 10: (0, 1), 15: (0, 1), 16: (0.3, 1),
                  50: (0.3, 1)}.items():
    assert difficulty.schedule_fractions(e, **kw) == pytest.approx(want), e


def test_pad_schedule_keeps_the_right_images_per_class():
  rng = np.random.default_rng(3)
  sizes = (5000, 40, 37)
  y = rng.permutation(np.repeat(np.arange(3), sizes))
  scores = rng.normal(size=y.size)
  orderings = difficulty.class_orderings(scores, y, 3)
  schedule = difficulty.pad_schedule(orderings)
  for e in TABLE:
    allowed = schedule(e)
    assert np.all(np.diff(allowed) > 0)  # sorted, no duplicates
    for c, n in enumerate(sizes):
      mine = set(allowed[y[allowed] == c].tolist())
      assert len(mine) == COUNTS[n][e], (e, n)
      o = orderings[c].tolist()
      if e <= 20:  # the easiest ones
        assert mine == set(o[:COUNTS[n][e]])
      else:  # all but the easiest
        assert mine == set(o[n - COUNTS[n][e]:])


@pytest.mark.parametrize('field,kw', [
    ('initial_ratio', dict(initial_ratio=0.0)),
    ('initial_ratio', dict(initial_ratio=1.5)),
    ('add_end_epoch', dict(add_end_epoch=0)),
    ('remove_epochs', dict(remove_epochs=(60, 40))),
    ('remove_epochs', dict(remove_epochs=(10, 60))),  # before add_end_epoch=20
    ('remove_epochs', dict(remove_epochs=(40,))),  # length differs from fractions
    ('remove_fractions', dict(remove_fractions=(0.1, 1.0))),
])
def test_bad_scheduler_values_raise(field, kw):
  with pytest.raises(ConfigError, match=f'objective.pad.{field}'):
    difficulty.pad_schedule([np.arange(10)], **kw)
  with pytest.raises(ConfigError, match=f'objective.pad.{field}'):
    difficulty.schedule_fractions(0, **kw)
