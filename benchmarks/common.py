"""What the step benchmarks share: a random stand-in data set and the results file."""

import json
import os
import tempfile

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results')


def random_npz(name: str, image_shape, per_class: int = 300, classes: int = 10) -> str:
  """``npz:PATH`` of random uint8 images of ``image_shape`` (step times do not depend
  on pixel values), ``per_class`` per class, the first 100 reused as the test split."""
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, size=(classes * per_class,) + tuple(image_shape), dtype=np.uint8)
  y = np.repeat(np.arange(classes), per_class)
  path = os.path.join(tempfile.mkdtemp(), f'{name}.npz')
  np.savez(path, x_train=x, y_train=y, x_test=x[:100], y_test=y[:100])
  return 'npz:' + path


def write_result(filename: str, result: dict) -> None:
  """Writes ``results/filename`` and prints the same JSON."""
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, filename), 'w') as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result, indent=2))
