"""Using squeeze-stage teachers: pick one of a set, score images, test them, ensemble.

``jaxdd.pretrain.teachers`` trains sets of teachers (``Teachers``: one architecture, variables
with a leading teacher axis [T, ...]); this module reads them: ``num_teachers``,
``teacher`` (the variables of one), ``teacher_logits`` (one teacher on a batch, eval
mode), ``evaluate_teachers`` (test accuracy of every teacher of a set, all at once
through ``train.members.over_members``) and ``make_teacher_fn`` (the mean logits of an
ensemble of teachers, the ``teacher_fn`` of the relabel protocol, ``jaxdd.sre.relabel``).
Every teacher runs in eval mode: batch norm uses the running statistics, as SRe2L,
UniDD/CFM and EDC run their teachers (docs/methods.md §1 "SRe2L Relabel", §2 "EDC").
``jaxdd.sre.relabel`` re-exports the last.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdd import evaluate
from jaxdd import models as models_lib
from jaxdd import sharding
from jaxdd.pretrain import teachers as tch
from jaxdd.errors import ConfigError
from jaxdd.train import members

# ----------------------------------------------------------------------------------
# One set: its teachers, their logits, their test accuracy.
# ----------------------------------------------------------------------------------


def num_teachers(teachers: tch.Teachers) -> int:
  """T, the size of the leading axis of ``teachers.variables``."""
  return int(jax.tree_util.tree_leaves(teachers.variables)[0].shape[0])


def teacher(teachers: tch.Teachers, i: int) -> dict:
  """The variables of teacher ``i`` (no leading axis), ready for ``models.apply_model``."""
  return jax.tree_util.tree_map(lambda a: a[i], teachers.variables)


@functools.partial(jax.jit, static_argnames=('model',))
def _eval_logits(variables, x, *, model):
  return models_lib.apply_model(model, variables, x, train=False)[0]


def teacher_logits(teachers: tch.Teachers, i: int, x) -> jax.Array:
  """Logits [N, K] of teacher ``i`` on images x [N, H, W, C], in eval mode (batch norm
  uses the running statistics, as SRe2L/CFM/EDC run their teachers). Jitted; inside
  a jitted caller use ``models.apply_model(model, teacher(teachers, i), x)``."""
  return _eval_logits(teacher(teachers, i), jnp.asarray(x, jnp.float32),
                      model=teachers.model)


@functools.partial(jax.jit, static_argnames=('model', 'test_batch_size', 'seed_loop'))
def _accuracy_all(variables, x, y, *, model, test_batch_size, seed_loop):
  accuracy = evaluate.make_accuracy_fn(model, evaluate.EvalConfig(
      test_batch_size=test_batch_size))
  return members.over_members(lambda v: accuracy(v, x, y), variables, seed_loop)


def evaluate_teachers(teachers: tch.Teachers, x_test, y_test, *,
                      test_batch_size: int = 1000, seed_loop: str = 'auto') -> np.ndarray:
  """Test accuracy [T] of every teacher (eval mode: running batch-norm statistics)."""
  tch.check_teacher_data(x_test, y_test, teachers.model.num_classes, 'test')
  acc = _accuracy_all(teachers.variables, jnp.asarray(x_test, jnp.float32),
                      jnp.asarray(y_test, jnp.int32), model=teachers.model,
                      test_batch_size=int(test_batch_size), seed_loop=seed_loop)
  return np.asarray(sharding.to_host(acc), np.float64)   # from every process


# ----------------------------------------------------------------------------------
# Ensembles: the teacher_fn of the relabel protocol.
# ----------------------------------------------------------------------------------


class _Ensemble(NamedTuple):
  """Hashable ``(variables, x) -> mean logits`` of fixed modules (a pytree-free aux).

  ``stacked[i]``: the variables of entry i carry a leading teacher axis [T_i, ...].
  """
  models: tuple
  stacked: tuple

  def __call__(self, variables, x):
    total, count = 0.0, 0
    for model, v, stacked in zip(self.models, variables, self.stacked):
      logits = lambda v, m=model: models_lib.apply_model(m, v, x, train=False)[0]
      if stacked:
        out = jax.vmap(logits)(v)                      # [T_i, N, K]
        total, count = total + jnp.sum(out, 0), count + out.shape[0]
      else:
        total, count = total + logits(v), count + 1
    return total / count


def make_teacher_fn(teachers) -> jax.tree_util.Partial:
  """``teacher_fn(x [N,H,W,C]) -> [N, K]``: the mean logits of teachers in eval mode.

  Args:
    teachers: one teacher or a list of them (EDC averages the logits of its 8
      backbones, docs/methods.md §2 EDC). A teacher is a ``(model, variables)`` pair, or a
      set of same-architecture teachers with ``.model`` and ``.variables`` whose leaves
      have a leading teacher axis (``jaxdd.pretrain.teachers.Teachers``); every network of a
      set counts once in the mean.

  Returns:
    A ``jax.tree_util.Partial`` whose leaves are the teachers' variables, so passing it
    to a jitted function makes them arguments rather than constants baked into the
    program.
  """
  is_set = lambda t: hasattr(t, 'model') and hasattr(t, 'variables')
  is_pair = lambda t: isinstance(t, tuple) and len(t) == 2 and not is_set(t) and not (
      isinstance(t[0], tuple) or is_set(t[0]))
  if is_set(teachers) or is_pair(teachers):
    teachers = [teachers]
  if not teachers or not all(is_set(t) or is_pair(t) for t in teachers):
    raise ConfigError('teachers must be a (model, variables) pair, a teacher set with '
                      '.model and .variables, or a non-empty list of those')
  models = tuple(t.model if is_set(t) else t[0] for t in teachers)
  variables = tuple(t.variables if is_set(t) else t[1] for t in teachers)
  stacked = tuple(is_set(t) for t in teachers)
  return jax.tree_util.Partial(_Ensemble(models, stacked), variables)

