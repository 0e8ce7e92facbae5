"""Data difficulty for PAD: EL2N scores, easy-to-hard orderings, the expert scheduler.

PAD (Li et al., "Prioritize Alignment in Dataset Distillation", §3.2 "Filtering
Information Extraction"; docs/methods.md §2 PAD; code ``NUS-HPC-AI-Lab/PAD:
buffer/buffer_CL.py``, ``utils/utils_cl_scheduler.py``) trains its expert
trajectories on a schedule of the data: first only the easiest samples (an initial
ratio IR of each class), then harder ones added linearly until the add-end epoch
AEE, then all data, then the easiest samples removed in one step per stage.

Difficulty is the EL2N score of Paul et al. (2021), PAD Eq. 3:

    χ(x, y) = E_w ‖ softmax(f(w, x)) − onehot(y) ‖₂,

the expectation over networks ``w`` trained briefly from different inits. Higher is
harder. The PAD paper does not say how many networks or epochs; Paul et al.
average 10 networks early in training (epoch 20 of 200 on CIFAR-10). PAD's released
code does not compute scores at all: it loads precomputed per-class orderings
(``data_indices/CIFAR10_GraNd.pt``; the paper says EL2N, the file says GraNd).

Use::

    scores = el2n_scores(model, shape, x, y, K, key)
    schedule = pad_schedule(class_orderings(scores, y, K))
    buffer = experts.train_experts(..., schedule=schedule)
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdd.pretrain import experts as experts_lib
from jaxdd import models as models_lib
from jaxdd import sharding
from jaxdd.errors import ConfigError, DataError, is_int, is_num

_FIELD = 'objective.pad.'


def el2n_from_logits(logits, y, num_classes: int) -> jnp.ndarray:
  """EL2N of one network: ‖softmax(logits) − onehot(y)‖₂ per sample (PAD Eq. 3).

  Args:
    logits: float [N, K]; y: int [N].

  Returns:
    float32 [N], in [0, √2].
  """
  probs = jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1)
  return jnp.linalg.norm(probs - jax.nn.one_hot(y, num_classes), axis=-1)


def el2n_of_buffer(model, buffer: experts_lib.Buffer, x, y, num_classes: int, *,
                   epoch: int = -1, chunk: int = 1000) -> np.ndarray:
  """EL2N of every sample, averaged over the experts of ``buffer`` at ``epoch``.

  Scored on the un-augmented images, networks in inference mode (as Paul et al.).

  Args:
    model: the buffer's model; x: float32 [N, H, W, C]; y: int [N].
    epoch: trajectory entry to score with (-1: the last).
    chunk: images per forward pass.

  Returns:
    float64 [N].
  """
  flats = jnp.asarray(buffer.trajectories[:, epoch])
  x = np.asarray(x, np.float32)
  y = np.asarray(y, np.int32)
  n = x.shape[0]
  chunk = min(chunk, n)
  pad = -n % chunk
  xs = jnp.asarray(np.pad(x, ((0, pad),) + ((0, 0),) * (x.ndim - 1)))
  ys = jnp.asarray(np.pad(y, (0, pad)))

  @jax.jit
  def score(flats, xs, ys):
    def one_net(flat):
      variables = {'params': buffer.unflatten(flat)}

      def one_chunk(xy):
        logits, _ = models_lib.apply_model(model, variables, xy[0], train=False)
        return el2n_from_logits(logits, xy[1], num_classes)

      return jax.lax.map(one_chunk, (xs.reshape((-1, chunk) + xs.shape[1:]),
                                     ys.reshape(-1, chunk))).reshape(-1)

    return jnp.mean(jax.lax.map(one_net, flats), axis=0)

  return np.asarray(sharding.to_host(score(flats, xs, ys)), np.float64)[:n]


def el2n_scores(model, image_shape, x, y, num_classes: int, key, *, num_nets: int = 3,
                epochs: int = 2, batch_size: int = 256, lr: float = 0.01,
                dsa: bool = True, seed_loop: str = 'auto') -> np.ndarray:
  """EL2N scores (PAD Eq. 3): train ``num_nets`` networks briefly, average their EL2N.

  The networks are trained as MTT experts (``experts.train_experts``: SGD, batch
  256, per-sample DSA) for ``epochs`` epochs and scored, without augmentation, after
  the last one. PAD's paper gives no numbers; Paul et al. average 10 networks early
  in training (epoch 20 of 200 on CIFAR-10). The defaults here, 3 networks x 2
  epochs (6 expert-epochs of ConvNet-3: minutes on a 2-core CPU for MNIST), are sized
  for a CPU.

  Args:
    model: a model without batch norm; image_shape: (H, W, C).
    x: float32 [N, H, W, C]; y: int [N]; num_classes: K.
    key: PRNG key; the networks' seed is drawn from it.

  Returns:
    float64 [N]: higher is harder.
  """
  seed = int(jax.random.randint(key, (), 0, np.iinfo(np.int32).max))
  cfg = experts_lib.ExpertConfig(num_experts=num_nets, epochs=epochs, lr=lr,
                                 batch_size=batch_size, dsa=dsa, seed=seed,
                                 seed_loop=seed_loop)
  buffer = experts_lib.train_experts(model, image_shape, x, y, num_classes, cfg)
  return el2n_of_buffer(model, buffer, x, y, num_classes)


def class_orderings(scores, y, num_classes: int) -> list[np.ndarray]:
  """Per class, the training indices from easiest (lowest score) to hardest.

  Ties keep index order (stable sort). PAD's ``sorted_diff_indices`` [C, n].

  Returns:
    ``num_classes`` int64 arrays (lengths = class sizes).
  """
  scores, y = np.asarray(scores), np.asarray(y)
  if scores.shape != y.shape or scores.ndim != 1:
    raise DataError(f'scores {scores.shape} and labels {y.shape} must both be [N]')
  out = []
  for c in range(num_classes):
    idx = np.flatnonzero(y == c)
    out.append(idx[np.argsort(scores[idx], kind='stable')])
  return out


def check_schedule_args(initial_ratio: float, add_end_epoch: int,
                        remove_epochs: Sequence[int],
                        remove_fractions: Sequence[float]) -> None:
  """Raises ConfigError naming ``objective.pad.<field>`` for invalid scheduler values."""
  if not is_num(initial_ratio) or not 0 < initial_ratio <= 1:
    raise ConfigError(f'{_FIELD}initial_ratio must be in (0, 1], got {initial_ratio!r}')
  if not is_int(add_end_epoch) or add_end_epoch < 1:
    raise ConfigError(f'{_FIELD}add_end_epoch must be an integer >= 1, got '
                      f'{add_end_epoch!r}')
  if len(remove_epochs) != len(remove_fractions):
    raise ConfigError(f'{_FIELD}remove_epochs and remove_fractions must have the same '
                      f'length, got {list(remove_epochs)} and {list(remove_fractions)}')
  epochs = list(remove_epochs)
  if (any(not is_int(r) for r in epochs)
      or any(b <= a for a, b in zip(epochs, epochs[1:]))
      or (epochs and epochs[0] < add_end_epoch)):
    raise ConfigError(f'{_FIELD}remove_epochs must be increasing integers >= '
                      f'add_end_epoch={add_end_epoch}, got {epochs}')
  if any(not is_num(f) or not 0 <= f < 1 for f in remove_fractions):
    raise ConfigError(f'{_FIELD}remove_fractions must be in [0, 1), got '
                      f'{list(remove_fractions)}')


def schedule_fractions(epoch: int, *, initial_ratio: float = 0.75,
                       add_end_epoch: int = 20, remove_epochs: Sequence[int] = (40, 60),
                       remove_fractions: Sequence[float] = (0.1, 0.2)
                       ) -> tuple[float, float]:
  """(dropped-easiest fraction, kept-up-to fraction) of each class in ``epoch``.

  PAD's scheduler as released (``buffer_CL.py``; docs/methods.md §2 PAD), epochs 0-based:

    e ≤ AEE:                 (0, min(1, IR + (1 − IR)·e/AEE))   # linear addition
    AEE < e ≤ r₁:            (0, 1)                             # all data
    rᵢ < e ≤ rᵢ₊₁:           (fᵢ, 1)                            # drop the easiest fᵢ
    e > r_last:              (f_last, 1)

  With the defaults (IR 0.75, AEE 20, r = (40, 60), f = (0.1, 0.2)) this is the
  table of docs/methods.md §2. The paper's Table 10 and the code's argparse default
  remove 10 % in both stages; 20 % after epoch 60 is docs/methods.md's reading.

  Returns:
    (lo, hi): the epoch uses, per class, ordering[int(lo·n):int(hi·n)].
  """
  check_schedule_args(initial_ratio, add_end_epoch, remove_epochs, remove_fractions)
  if epoch <= add_end_epoch:
    # The same float expression as linear_cl_scheduler_acse, so int() truncates alike.
    return 0.0, min(1.0, 1.0 * initial_ratio + (1 - initial_ratio) * 1.0 * epoch
                    / add_end_epoch)
  drop = 0.0
  for r, f in zip(remove_epochs, remove_fractions):
    if epoch > r:
      drop = float(f)
  return drop, 1.0


def pad_schedule(orderings: Sequence[np.ndarray], *, initial_ratio: float = 0.75,
                 add_end_epoch: int = 20, remove_epochs: Sequence[int] = (40, 60),
                 remove_fractions: Sequence[float] = (0.1, 0.2)
                 ) -> Callable[[int], np.ndarray]:
  """PAD's expert data scheduler: ``schedule(e)`` -> sorted allowed indices of epoch e.

  For every class with ordering ``o`` (easy to hard, ``class_orderings``) of length
  n, epoch e keeps ``o[int(lo·n) : int(hi·n)]`` with ``(lo, hi) =
  schedule_fractions(e, ...)`` (the paper's IR and AEE, and the removal epochs and
  fractions). Pass the result to ``experts.train_experts(schedule=...)``.

  Differs from the released code: its class size is the constant 5000 of CIFAR;
  here each class uses its own size (identical on balanced data).
  """
  check_schedule_args(initial_ratio, add_end_epoch, remove_epochs, remove_fractions)
  orderings = [np.asarray(o, np.int64) for o in orderings]
  kwargs = dict(initial_ratio=initial_ratio, add_end_epoch=add_end_epoch,
                remove_epochs=tuple(remove_epochs),
                remove_fractions=tuple(remove_fractions))

  def schedule(epoch: int) -> np.ndarray:
    lo, hi = schedule_fractions(epoch, **kwargs)
    parts = [o[int(lo * len(o)):int(hi * len(o))] for o in orderings]
    return np.sort(np.concatenate(parts))

  return schedule
