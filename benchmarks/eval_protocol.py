"""Benchmark: the evaluation protocol on MNIST IPC 10, 5 seeds trained at once.

300 epochs, DSA, batch 256, ConvNet-3 (width 128, instance norm), testing on the
10 000 MNIST test images included. Target (issue 2): <= 150 s on 2 CPU cores; the
authors' PyTorch code takes 92 s per network (460 s for 5) on this machine.

    python benchmarks/eval_protocol.py [--data=npz:../shared/data/mnist.npz] [--seeds=5]

Writes benchmarks/results/eval_protocol.json (wall time split into compile and run).
"""

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp

from jaxdd import data as data_lib
from jaxdd import evaluate, models

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--data', default='npz:' + os.path.join(HERE, '..', '..', 'shared', 'data',
                                                          'mnist.npz'))
  p.add_argument('--ipc', type=int, default=10)
  p.add_argument('--seeds', type=int, default=5)
  p.add_argument('--epochs', type=int, default=300)
  p.add_argument('--conv_impl', default='auto')
  p.add_argument('--seed_loop', default='auto', choices=evaluate.SEED_LOOPS)
  p.add_argument('--out', default=os.path.join(HERE, 'results', 'eval_protocol.json'))
  a = p.parse_args()

  ds = data_lib.load_dataset(a.data)
  images, labels = evaluate.random_subset(0, ds, a.ipc)
  model = models.get_model('convnet', ds.num_classes, image_shape=ds.x_train.shape[1:],
                           conv_impl=a.conv_impl)
  cfg = evaluate.EvalConfig(epochs=a.epochs, batch_size=256, dsa=True)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(a.seeds))
  args = (keys, jnp.asarray(images), evaluate.as_targets(labels, ds.num_classes),
          jnp.asarray(ds.x_test), jnp.asarray(ds.y_test))

  t0 = time.time()
  compiled = evaluate._train_and_test.lower(model, tuple(images.shape[1:]), cfg,
                                            a.seed_loop, *args).compile()
  compile_s = time.time() - t0
  t0 = time.time()
  accs, _ = jax.block_until_ready(compiled(*args))
  run_s = time.time() - t0
  result = {
      'benchmark': 'evaluation protocol, random real subset',
      'data': a.data, 'ipc': a.ipc, 'seeds': a.seeds, 'epochs': a.epochs,
      'batch_size': 256, 'dsa': True, 'model': 'convnet (ConvNet-3 w128 instancenorm)',
      'conv_impl': a.conv_impl, 'seed_loop': a.seed_loop, 'test_images': int(ds.x_test.shape[0]),
      'compile_seconds': round(compile_s, 1), 'run_seconds': round(run_s, 1),
      'total_seconds': round(compile_s + run_s, 1),
      'accuracy_mean': float(accs.mean()), 'accuracy_std': float(accs.std()),
      'accuracies': [float(x) for x in accs],
      'target_seconds': 150, 'pytorch_reference_seconds_per_network': 92,
      'hardware': f'{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})',
      'jax': jax.__version__,
  }
  os.makedirs(os.path.dirname(a.out), exist_ok=True)
  with open(a.out, 'w') as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result, indent=2))


if __name__ == '__main__':
  main()
