"""Runs named stages on this process's devices and saves what they compute.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 \
        python tests/sharding_worker.py OUT.npz DATA.npz CACHE_DIR CASE [CASE ...]

Used by tests/test_sharding.py: the same cases on 1 and on 8 simulated devices must
give the same numbers. Each case runs on the default mesh of its config (every device
along ``members``, the distillation step's work over all of them) and saves
``CASE/name`` arrays; a case that is not sharded would still pass, so the test also
checks the compiled step's per-device FLOPs fall with the device count.
"""

import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conftest import load_config   # noqa: E402
from jaxdd import distill, models, sharding   # noqa: E402
from jaxdd.config_utils import set_fields   # noqa: E402
from jaxdd import evaluate as eval_lib   # noqa: E402
from jaxdd.pretrain import experts as experts_lib   # noqa: E402
from jaxdd.sre import recover   # noqa: E402

STEPS = int(os.environ.get('SHARDING_STEPS', 2))   # distillation steps per objective


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get('flops', 0.0))


def distill_case(config, name: str, out: dict) -> None:
  """``STEPS`` steps of ``config``'s distillation: the images, losses and FLOPs."""
  config.steps, config.checkpoint_every = STEPS, STEPS
  mesh = sharding.make_mesh(config.get('mesh'))
  with jax.set_mesh(mesh):
    run = distill.setup(config, mesh)
    state = run.state
    losses = []
    for _ in range(STEPS):
      state, metrics = run.step_fn(state, run.base_key, run.x_train, run.index)
      losses.append(float(metrics['loss']))
    # The step compiled once on the mesh (its outputs keep the layouts of its inputs);
    # the FLOPs from a second lowering (a persistent-cache hit in the tests).
    out[f'{name}/compiles'] = np.asarray(run.step_fn._cache_size())
    compiled = run.step_fn.lower(state, run.base_key, run.x_train, run.index).compile()
    params = jax.tree_util.tree_map(sharding.to_host, state['params'])
  syn = run.param.decode(params['syn'])
  out[f'{name}/images'] = np.asarray(syn.images)
  out[f'{name}/labels'] = np.asarray(syn.labels)
  out[f'{name}/loss'] = np.asarray(losses)
  out[f'{name}/flops'] = np.asarray(_flops(compiled))


def tiny(config, data: str, **fields):
  """``config`` on the tiny data set, compiled small: sharding does not depend on the
  augmentation, the width or the convolution's implementation, compile time does."""
  config.data = data
  config.model.width, config.model.conv_impl = 8, 'xla'
  config.select.every = 0
  for flag in ('dsa', 'real_dsa', 'syn_dsa'):
    if flag in config.objective:
      config.objective[flag] = False
  if 'experts' in config.objective:
    config.objective.experts.dsa = False
  # SGD for every learned tensor: Adam's first step is lr * sign(g), so a gradient
  # entry that is 0 up to rounding moves by ±lr on one device count and not the other.
  for group in config.optim.values():
    group.name, group.momentum = 'sgd', 0.0
  set_fields(config, fields)
  return config


def case_eval(data, cache, out):
  with np.load(data.split(':', 1)[1]) as f:
    x, y = f['x_train'].astype(np.float32) / 255, f['y_train']
    xt, yt = f['x_test'].astype(np.float32) / 255, f['y_test']
  model = models.get_model('convnet', 3, image_shape=x.shape[1:])
  cfg = eval_lib.EvalConfig(epochs=2, batch_size=16)
  with jax.set_mesh(sharding.make_mesh()):
    res = eval_lib.evaluate_synset(jax.random.key(0), model, x, y, xt, yt, num_seeds=5,
                                   cfg=cfg, num_classes=3)
  out['eval/accuracies'] = np.asarray(res['accuracies'])
  out['eval/final_loss'] = np.asarray(res['final_train_loss_mean'])


def case_experts(data, cache, out):
  with np.load(data.split(':', 1)[1]) as f:
    x, y = f['x_train'].astype(np.float32) / 255, f['y_train']
  model = models.get_model('convnet', 3, image_shape=x.shape[1:])
  cfg = experts_lib.ExpertConfig(num_experts=5, epochs=1, batch_size=16)
  with jax.set_mesh(sharding.make_mesh()):
    buffer = experts_lib.train_experts(model, x.shape[1:], x, y, 3, cfg, verbose=False)
  out['experts/trajectories'] = np.asarray(buffer.trajectories)


def case_dm(data, cache, out):
  distill_case(tiny(load_config('dm_mnist', 'runlocal'), data, ipc=2,
                    **{'objective.batch_real': 15}), 'dm', out)


def case_dsa(data, cache, out):
  distill_case(tiny(load_config('dsa_mnist', 'runlocal'), data, ipc=2,
                    **{'objective.batch_real': 15}), 'dsa', out)


def case_mtt(data, cache, out):
  config = tiny(load_config('mtt_mnist', 'runlocal'), data, ipc=2,
                **{'objective.experts.cache_dir': cache,
                   'objective.param_mask': 'depth', 'objective.mask_ratio': 0.5})
  distill_case(config, 'mtt', out)


def case_ratbptt(data, cache, out):
  distill_case(tiny(load_config('ratbptt_digits', 'runlocal'), data, ipc=2), 'ratbptt',
               out)


def case_podd(data, cache, out):
  distill_case(tiny(load_config('podd_digits', 'runlocal'), data), 'podd', out)


def case_kip(data, cache, out):
  # A ridge of 1e-2, not 1e-6: the float32 solve then does not amplify the rounding
  # of a different summation order (with 1e-6 the 1- and 8-device sets part at 1e-3).
  distill_case(tiny(load_config('kip_digits', 'runlocal'), data, ipc=2,
                    **{'objective.batch_real': 15, 'objective.reg': 1e-2}), 'kip', out)


def case_frepo(data, cache, out):
  distill_case(tiny(load_config('frepo_digits', 'runlocal'), data, ipc=2,
                    **{'objective.batch_real': 15, 'objective.reg': 1e-2}), 'frepo', out)


def case_cfm(data, cache, out):
  """Two CFM recover iterations of one batch (one image per class) against a fresh
  batch-norm teacher: the per-class statistics and the frequency targets on the mesh."""
  with np.load(data.split(':', 1)[1]) as f:
    x, y = f['x_train'].astype(np.float32) / 255, f['y_train']
  model = models.get_model('convnet_bn', 3, image_shape=x.shape[1:])
  variables = models.init_model(model, jax.random.key(3), x.shape[1:])
  cfg = recover.default_config('cfm', ipc=1, iterations=2)
  with jax.set_mesh(sharding.make_mesh()):
    targets = recover.prepare_targets('cfm', (model, variables), x, y, 3, cfg,
                                      log=lambda _: None)
    images, _ = recover.synthesize(jax.random.key(0), (model, variables), targets, cfg,
                                   3, x.shape[1:], data=(x, y), log=lambda _: None)
  out['cfm/images'] = np.asarray(images)


CASES = {name[len('case_'):]: fn for name, fn in globals().items()
         if name.startswith('case_')}


def main(out_path, data, cache, *cases):
  out = {'devices': np.asarray(len(jax.devices()))}
  for case in cases:
    CASES[case](data, cache, out)
  np.savez(out_path, **out)


if __name__ == '__main__':
  main(*sys.argv[1:])
