"""Expert buffers on disk: npz storage, layout checks and the training cache.

A buffer (``experts.Buffer``) is written as one .npz (``save_buffer``): the float32
trajectories [E, epochs + 1, P] and two JSON strings, the depth-ordered parameter spec
and the training metadata. ``load_or_train`` keys the file by everything that
determines the buffer (``cache_key``: data digests, model, expert config, data
schedule), so a second distillation with the same settings reuses it. Digests, the
file name, the atomic write and the multi-process rule (one process writes, all
read; ``store.cached``) are ``jaxdd.pretrain.store``'s.
"""

import json
import math

import numpy as np
from etils import epath

from jaxdd.errors import DataError
from jaxdd.pretrain import experts
from jaxdd.pretrain import store


def save_buffer(path: epath.PathLike, buffer: experts.Buffer) -> None:
  """Writes ``buffer`` to one .npz atomically (``store.write_file_atomically``).

  Arrays: ``trajectories`` float32 [E, epochs + 1, P], ``spec_json`` and
  ``meta_json`` (JSON strings). An interrupted write leaves no file at ``path``.
  """
  spec = [[p, list(s), int(o)] for p, s, o in buffer.spec]

  def write(f):  # a file object: np.savez would append '.npz' to a name
    np.savez(f, trajectories=np.asarray(buffer.trajectories, np.float32),
             spec_json=np.array(store.to_json(spec)),
             meta_json=np.array(store.to_json(buffer.meta)))

  store.write_file_atomically(path, write)


def load_buffer(path: epath.PathLike, model, image_shape) -> experts.Buffer:
  """Reads a buffer written by ``save_buffer``; checks it fits ``model``.

  Raises:
    DataError: missing/unreadable file, or a parameter layout different from the
      model's (another architecture or image size).
  """
  try:
    with epath.Path(path).open('rb') as fp, np.load(fp, allow_pickle=False) as f:
      traj = np.asarray(f['trajectories'], np.float32)
      spec = [(p, tuple(s), o) for p, s, o in json.loads(str(f['spec_json']))]
      meta = json.loads(str(f['meta_json']))
  except (OSError, KeyError, ValueError) as e:
    raise DataError(f'expert buffer {path!r} is not readable ({e})') from None
  model_spec, unflatten = experts.model_layout(model, image_shape)
  if spec != model_spec or traj.ndim != 3 or traj.shape[2] != sum(
      math.prod(s) for _, s, _ in spec):
    raise DataError(f'expert buffer {path!r} does not fit model {type(model).__name__} '
                    f'on images {tuple(image_shape)}: stored layout differs')
  return experts.Buffer(traj, unflatten, spec, meta)


def cache_key(ds_name: str, x_train, y_train, num_classes: int, model_config: dict,
              model, cfg: experts.ExpertConfig, schedule_name: str) -> dict:
  """Everything that determines a buffer (``seed_loop`` only changes float rounding).

  Digests of the arrays keep e.g. ZCA-whitened and plain images of one data set apart.
  """
  return {
      'version': 1, 'dataset': ds_name, 'x_shape': list(np.shape(x_train)),
      'x_digest': store.digest(x_train), 'y_digest': store.digest(y_train),
      'num_classes': int(num_classes), 'model': type(model).__name__,
      'model_config': model_config,
      'experts': {k: v for k, v in cfg._asdict().items() if k != 'seed_loop'},
      'schedule': schedule_name,
  }


def load_or_train(cache_dir: str, model, image_shape, ds_name: str, x_train, y_train,
                  num_classes: int, cfg: experts.ExpertConfig, *, model_config: dict,
                  schedule=None, schedule_name: str = 'none') -> experts.Buffer:
  """Loads the cached buffer for these arguments, or trains and caches it.

  The file is ``cache_dir/experts_<dataset>_<hash>.npz`` where the hash is the
  first 16 hex digits of SHA-256 of ``cache_key(...)`` as sorted JSON.
  ``schedule_name`` must identify ``schedule`` (the function itself is not hashed),
  e.g. ``'pad_el2n_ir0.75_aee20'``.
  """
  experts.check_expert_config(cfg)
  key = cache_key(ds_name, x_train, y_train, num_classes, model_config, model, cfg,
                  schedule_name)
  path = store.cache_file(cache_dir, 'experts', ds_name, key)
  if store.cached(path):
    print(f'experts: loading cached buffer {path}', flush=True)
    return load_buffer(path, model, image_shape)
  print(f'experts: no cache at {path}; training {cfg.num_experts} experts', flush=True)
  buffer = experts.train_experts(model, image_shape, x_train, y_train, num_classes, cfg,
                         schedule=schedule)
  buffer = buffer._replace(meta={**buffer.meta, 'cache_key': key})
  save_buffer(path, buffer)
  store.log(f'experts: saved {path}')
  return buffer
