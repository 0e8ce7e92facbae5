"""Label losses of one batch: cross-entropy (hard, soft), MSE, KL to a teacher, EDC.

Logits are [N, K]. Every loss returns the batch mean the reference reduces to, in the
order of floating-point operations the protocols have always used (the slow-loop tests
compare them to hand-written PyTorch-style loops).
"""

import jax
import jax.numpy as jnp

from jaxdd.errors import ConfigError

LABEL_LOSSES = ('ce', 'soft_ce', 'mse')


def as_targets(labels, num_classes: int) -> jax.Array:
  """Class ids [N] become one-hot [N, K]; soft labels [N, K] pass through as float32."""
  labels = jnp.asarray(labels)
  if labels.ndim == 1:
    return jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  return labels.astype(jnp.float32)


def label_loss(logits, targets, kind: str) -> jax.Array:
  """Mean loss of a batch against targets [N, K].

  'ce': −mean_n Σ_k t_nk log softmax(z_n)_k (targets are one-hot rows or
  probabilities: PyTorch's ``CrossEntropyLoss`` with class ids or probabilities);
  'soft_ce': the same with t = softmax(targets) (targets are logits, as DATM's learned
  soft labels); 'mse': ½ mean_n ‖z_n − t_n‖² (FRePo's and KIP's regression).

  Raises:
    ConfigError: ``kind`` is not one of ``LABEL_LOSSES``.
  """
  if kind == 'ce':
    return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits), axis=-1))
  if kind == 'soft_ce':
    probs = jax.nn.softmax(targets)
    return -jnp.mean(jnp.sum(probs * jax.nn.log_softmax(logits), axis=-1))
  if kind == 'mse':
    return 0.5 * jnp.mean(jnp.sum((logits - targets) ** 2, axis=-1))
  raise ConfigError(f'label loss must be one of {", ".join(LABEL_LOSSES)}, got {kind!r}')


def ce_rows(logits, labels) -> jax.Array:
  """float [N]: −log softmax(z_n)[y_n] per row, labels int [N] (PyTorch's
  ``CrossEntropyLoss(reduction='none')``)."""
  return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1)[:, 0]


def masked_mean(values, mask) -> jax.Array:
  """Σ values·mask / Σ mask: the mean over the rows with mask 1 (a smaller batch)."""
  return jnp.sum(values * mask) / jnp.sum(mask)


def kl_loss(student_logits, teacher_logits, temperature: float) -> jax.Array:
  """KL(softmax(t/T) ‖ softmax(s/T)) summed over [N, K], divided by N; no T² factor.

  PyTorch's ``KLDivLoss(reduction='batchmean')(log_softmax(s/T), softmax(t/T))`` as in
  SRe2L's ``relabel_cifar.py`` and UniDD's ``generate_soft_label_online.py``.
  """
  log_ps = jax.nn.log_softmax(student_logits / temperature, axis=-1)
  log_pt = jax.nn.log_softmax(teacher_logits / temperature, axis=-1)
  return jnp.sum(jnp.exp(log_pt) * (log_pt - log_ps)) / student_logits.shape[0]


def edc_loss(student_logits, teacher_logits, hard_labels, ce_weight: float) -> jax.Array:
  """EDC's ``mse_gt``: mean over [N, K] of (s − t)² + ce_weight · mean CE(s, labels)."""
  mse = jnp.mean((student_logits - teacher_logits) ** 2)
  log_ps = jax.nn.log_softmax(student_logits, axis=-1)
  ce = -jnp.mean(jnp.take_along_axis(log_ps, hard_labels[:, None], axis=-1))
  return mse + ce_weight * ce
