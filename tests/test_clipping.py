"""clip_by_running_norm against a numpy transcription of RaT-BPTT's ema_update + clip."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdd.clipping import clip_by_running_norm
from jaxdd.errors import ConfigError


def _numpy_reference(grads, factor, decay):
  """The reference loop (framework/base.py train): shadow sentinel, EMA of the raw norm,
  then torch.nn.utils.clip_grad_norm_(max_norm=factor * shadow)."""
  shadow, out = None, []
  for g in grads:
    flat = np.concatenate([np.ravel(x) for x in g.values()]).astype(np.float64)
    norm = np.sqrt(np.sum(flat ** 2))
    shadow = norm if shadow is None else shadow - (1 - decay) * (shadow - norm)
    coef = factor * shadow / (norm + 1e-6)
    out.append({k: v * min(coef, 1.0) for k, v in g.items()})
  return out


def _grads(seed=0, n=8):
  rng = np.random.default_rng(seed)
  scales = [1.0, 1.2, 10.0, 0.5, 30.0, 1.0, 0.0, 3.0][:n]   # spikes, a zero gradient
  return [{'a': s * rng.normal(size=(3, 4)).astype(np.float32),
           'b': s * rng.normal(size=(5,)).astype(np.float32)} for s in scales]


@pytest.mark.parametrize('factor,decay', [(2.0, 0.9), (1.5, 0.5)])
def test_matches_numpy_over_a_sequence(factor, decay):
  grads = _grads()
  tx = clip_by_running_norm(factor, decay)
  update = jax.jit(tx.update)
  state = tx.init(grads[0])
  expected = _numpy_reference(grads, factor, decay)
  clipped_any = False
  for g, e in zip(grads, expected):
    u, state = update(g, state)
    for k in g:
      np.testing.assert_allclose(np.asarray(u[k]), e[k], rtol=1e-5, atol=1e-7)
    clipped_any |= not np.allclose(np.asarray(u['a']), g['a'])
  assert clipped_any            # the sequence exercises the clipping branch
  assert int(state.count) == len(grads)


def test_first_step_is_not_clipped_and_state_is_a_pytree():
  g = {'w': jnp.full((4,), 100.0)}
  tx = clip_by_running_norm()
  state = tx.init(g)
  u, state = tx.update(g, state)
  np.testing.assert_allclose(np.asarray(u['w']), 100.0, rtol=1e-6)
  np.testing.assert_allclose(float(state.ema), 200.0, rtol=1e-6)
  leaves = jax.tree_util.tree_leaves(state)
  assert len(leaves) == 2 and all(l.shape == () for l in leaves)
  # Composes with an optimizer, inside one jitted update.
  opt = optax.chain(clip_by_running_norm(), optax.sgd(1.0))
  params = {'w': jnp.zeros(4)}
  opt_state = opt.init(params)
  big = {'w': jnp.full((4,), 1000.0)}
  step = jax.jit(lambda s: opt.update(big, s, params))
  _, opt_state = step(opt_state)                   # EMA = 2000
  small = {'w': jnp.full((4,), 1.0)}
  u, _ = jax.jit(lambda s: opt.update(small, s, params))(opt_state)
  np.testing.assert_allclose(np.asarray(u['w']), -1.0, rtol=1e-6)   # below threshold


@pytest.mark.parametrize('kwargs,field', [({'factor': 0.0}, 'clip_factor'),
                                          ({'decay': 1.0}, 'clip_decay'),
                                          ({'decay': -0.1}, 'clip_decay')])
def test_bad_arguments_raise(kwargs, field):
  with pytest.raises(ConfigError, match=field):
    clip_by_running_norm(**kwargs)
