"""Tests for jaxdd.models: shapes, numerics against numpy, PyTorch init and batch-norm
semantics, depth-ordered parameter flattening, and configuration errors.

Shapes are checked with `jax.eval_shape` (tracing only), so the large models cost
no compilation; numerical checks use tiny widths.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdd import models
from jaxdd.errors import ConfigError
from jaxdd.models import layers

SHAPES = [(8, 8, 1), (28, 28, 1), (32, 32, 3)]
# Written out by hand from DCrepo's architectures (not computed by jaxdd):
# embedding size on 28x28x1 and 32x32x3 (equal thanks to the first-conv padding),
# on 8x8x1 (None: rejected), and the number of 'layers' entries.
EXPECTED = {
    #  name:        (28/32,  8x8,  n_layers)
    'convnet': (128 * 4 * 4, 128, 3),
    'convnet_bn': (128 * 4 * 4, 128, 3),
    'convnetd1': (128 * 16 * 16, 128 * 4 * 4, 1),
    'convnetd2': (128 * 8 * 8, 128 * 2 * 2, 2),
    'convnetd4': (128 * 2 * 2, None, 4),
    'convnetw32': (32 * 4 * 4, 32, 3),
    'convnetw64': (64 * 4 * 4, 64, 3),
    'mlp': (128, 128, 2),
    'lenet': (84, None, 4),
    'alexnet': (192 * 4 * 4, 192, 5),
    'alexnet_bn': (192 * 4 * 4, 192, 5),
    'vgg11': (512, None, 8),
    'vgg11_bn': (512, None, 8),
    'resnet18': (512, None, 5),
    'resnet18_bn': (512, 512, 5),
}
BN_MODELS = {'convnet_bn', 'alexnet_bn', 'vgg11_bn', 'resnet18_bn'}


def _np_input(shape, seed=0, loc=0.0, scale=1.0):
  # numpy inputs: jax.random would compile threefry for every new shape on CPU.
  return (loc + scale * np.random.default_rng(seed).standard_normal(shape)).astype(
      np.float32)


def _random_variables(model, shape, seed=0):
  """Variables with the structure of init_model's, filled by numpy: non-trivial
  values (norm scale != 1, bias != 0, running var > 0) that do not depend on the
  init code, and no PRNG compilation."""
  struct = jax.eval_shape(lambda k: models.init_model(model, k, shape),
                          jax.random.key(0))
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    v = rng.uniform(-0.5, 0.5, leaf.shape)
    if jax.tree_util.keystr(path).endswith("['var']"):
      v = 1.0 + v
    return jnp.asarray(v, jnp.float32)

  return jax.tree_util.tree_map_with_path(fill, struct)


def test_model_names_cover_the_api():
  assert set(models.MODEL_NAMES) == set(EXPECTED)


def _shapes(name, shape, features, batch=2):
  """(out shapes, variables shapes) of init + apply(train=True), by tracing only."""
  model = models.get_model(name, 10, image_shape=shape)
  variables = jax.eval_shape(
      lambda k: models.init_model(model, k, shape), jax.random.key(0))
  out = jax.eval_shape(
      lambda v, x: models.apply_model(model, v, x, train=True,
                                      features=features),
      variables, jax.ShapeDtypeStruct((batch, *shape), jnp.float32))
  return out, variables


@pytest.mark.parametrize('shape', SHAPES, ids=lambda s: 'x'.join(map(str, s)))
@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_output_shapes(name, shape):
  emb_dim = EXPECTED[name][1] if shape == (8, 8, 1) else EXPECTED[name][0]
  if emb_dim is None:
    with pytest.raises(ConfigError, match='image_shape'):
      models.get_model(name, 10, image_shape=shape)
    return
  (logits, new_vars), variables = _shapes(name, shape, features=False)
  assert logits.shape == (2, 10) and logits.dtype == jnp.float32
  assert models.has_batch_norm(variables) == (name in BN_MODELS)
  assert set(new_vars) == set(variables)
  (logits, feats), _ = _shapes(name, shape, features=True)[0]
  assert logits.shape == (2, 10)
  assert feats['embedding'].shape == (2, emb_dim)
  assert isinstance(feats['layers'], tuple)
  assert len(feats['layers']) == EXPECTED[name][2]
  assert all(a.shape[0] == 2 for a in feats['layers'])


def test_convnet_embedding_is_2048_on_mnist_and_cifar():
  for shape in [(28, 28, 1), (32, 32, 3)]:
    (_, feats), _ = _shapes('convnet', shape, features=True)[0]
    assert feats['embedding'].shape == (2, 2048)
    # First block: 32x32 conv output (padding 3 on 28x28x1), pooled to 16x16.
    assert feats['layers'][0].shape == (2, 16, 16, 128)


def test_init_model_runs_and_features_agree_with_logits():
  model = models.get_model('convnet', 3, image_shape=(8, 8, 1), width=8, depth=1)
  variables = jax.jit(lambda k: models.init_model(model, k, (8, 8, 1)))(
      jax.random.key(0))
  assert set(variables) == {'params'}
  x = _np_input((4, 8, 8, 1))
  apply = jax.jit(model.apply, static_argnames=('train', 'features'))
  logits = apply(variables, x)
  logits2, feats = apply(variables, x, features=True)
  np.testing.assert_allclose(logits, logits2, rtol=1e-6)
  cls = variables['params']['classifier']
  np.testing.assert_allclose(
      feats['embedding'] @ cls['kernel'] + cls['bias'], logits, rtol=1e-5,
      atol=1e-6)
  np.testing.assert_allclose(feats['embedding'],
                             feats['layers'][-1].reshape(4, -1))
  assert np.all(np.isfinite(logits)) and np.std(logits[:, 0]) > 0


# ----------------------------------------------------------------- numpy checks


def _np_conv(x, kernel, bias, pad):
  """Cross-correlation with explicit loops over the output positions."""
  n, h, w, _ = x.shape
  kh, kw, _, cout = kernel.shape
  xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  ho, wo = h + 2 * pad - kh + 1, w + 2 * pad - kw + 1
  out = np.zeros((n, ho, wo, cout))
  for i in range(ho):
    for j in range(wo):
      patch = xp[:, i:i + kh, j:j + kw, :]  # [n, kh, kw, cin]
      out[:, i, j, :] = np.einsum('nhwc,hwco->no', patch, kernel)
  return out + bias


def _np_group_norm(x, groups, scale, bias, eps=1e-5):
  n, h, w, c = x.shape
  g = x.reshape(n, h, w, groups, c // groups)
  mean = g.mean(axis=(1, 2, 4), keepdims=True)
  var = ((g - mean) ** 2).mean(axis=(1, 2, 4), keepdims=True)
  return ((g - mean) / np.sqrt(var + eps)).reshape(x.shape) * scale + bias


@pytest.mark.parametrize('shape,pad', [((6, 6, 2), 1), ((28, 28, 1), 3)])
def test_convnet_block_matches_numpy(shape, pad):
  model = models.get_model('convnet', 3, image_shape=shape, width=4, depth=1)
  params = _random_variables(model, shape)['params']
  x = _np_input((2, *shape))
  logits, feats = jax.jit(lambda p, x: model.apply({'params': p}, x,
                                                   features=True))(params, x)

  p = jax.tree_util.tree_map(np.asarray, params)['block_0']
  y = _np_conv(x.astype(np.float64), p['conv']['kernel'], p['conv']['bias'], pad)
  y = _np_group_norm(y, 4, p['norm']['scale'], p['norm']['bias'])  # groups = C
  y = np.maximum(y, 0)
  n, h, w, c = y.shape
  y = y.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))  # avg-pool 2x2
  np.testing.assert_allclose(feats['layers'][0], y, rtol=1e-4, atol=1e-4)
  cls = params['classifier']
  np.testing.assert_allclose(
      logits, y.reshape(n, -1) @ np.asarray(cls['kernel']) + np.asarray(cls['bias']),
      rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('kind', ['instancenorm', 'groupnorm', 'layernorm'])
def test_norms_match_numpy(kind):
  x = _np_input((2, 3, 5, 8), loc=3.0, scale=2.0)
  norm = layers.Norm(kind)
  struct = jax.eval_shape(norm.init, jax.random.key(0), x)
  rng = np.random.default_rng(1)
  params = jax.tree_util.tree_map(
      lambda l: jnp.asarray(rng.uniform(0.5, 1.5, l.shape), jnp.float32), struct)
  out = jax.jit(norm.apply)(params, x)
  s, b = (np.asarray(params['params'][k]) for k in ('scale', 'bias'))
  if kind == 'layernorm':
    assert s.shape == b.shape == (3, 5, 8)  # torch LayerNorm([C, H, W])
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = x.var(axis=(1, 2, 3), keepdims=True)
    want = (x - mean) / np.sqrt(var + 1e-5) * s + b
  else:
    assert s.shape == b.shape == (8,)
    want = _np_group_norm(x, 8 if kind == 'instancenorm' else 4, s, b)
  np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


def test_activation_and_pooling_options():
  x = jnp.asarray([[[[-2.0], [1.0]], [[3.0], [0.5]]]])  # [1, 2, 2, 1]
  np.testing.assert_allclose(layers.activation('leakyrelu')(x).ravel(),
                             [-0.02, 1.0, 3.0, 0.5], rtol=1e-6)
  np.testing.assert_allclose(layers.activation('sigmoid')(x).ravel(),
                             1 / (1 + np.exp(-np.array([-2.0, 1.0, 3.0, 0.5]))),
                             rtol=1e-6)
  assert float(layers.pool2x2(x, 'maxpooling').squeeze()) == 3.0
  assert float(layers.pool2x2(x, 'avgpooling').squeeze()) == 0.625
  assert layers.pool2x2(x, 'none').shape == x.shape


# ----------------------------------------------------------------- torch init


@pytest.mark.parametrize('module,x_shape,fan_in', [
    (layers.Conv(256), (1, 3, 3, 64), 3 * 3 * 64),
    (layers.Dense(512), (1, 300), 300),
])
def test_torch_default_init(module, x_shape, fan_in):
  p = module.init(jax.random.key(0), jnp.zeros(x_shape))['params']
  bound = 1 / math.sqrt(fan_in)
  for name in ('kernel', 'bias'):
    v = np.asarray(p[name])
    assert np.abs(v).max() <= bound
    assert np.abs(v).max() > 0.95 * bound  # uniform fills the interval
  k = np.asarray(p['kernel'])
  assert k.size > 100_000
  np.testing.assert_allclose(k.std(), 1 / math.sqrt(3 * fan_in), rtol=0.01)
  assert abs(k.mean()) < 0.01 * bound


@pytest.mark.parametrize('kind', ['instancenorm', 'layernorm', 'batchnorm'])
def test_norm_init_is_identity_affine(kind):
  variables = layers.Norm(kind).init(jax.random.key(0), jnp.zeros((1, 2, 2, 3)))
  np.testing.assert_array_equal(variables['params']['scale'], 1.0)
  np.testing.assert_array_equal(variables['params']['bias'], 0.0)


# ----------------------------------------------------------------- batch norm


def test_batchnorm_pytorch_semantics():
  x = _np_input((4, 3, 3, 2), loc=2.0, scale=3.0)
  bn = layers.Norm('batchnorm')
  variables = bn.init(jax.random.key(1), jnp.asarray(x), train=True)
  # init creates running stats without updating them.
  np.testing.assert_array_equal(variables['batch_stats']['mean'], 0.0)
  np.testing.assert_array_equal(variables['batch_stats']['var'], 1.0)

  n = 4 * 3 * 3
  mean = x.mean(axis=(0, 1, 2))
  var_biased = x.var(axis=(0, 1, 2))
  var_unbiased = var_biased * n / (n - 1)
  out, upd = bn.apply(variables, jnp.asarray(x), train=True,
                      mutable=['batch_stats'])
  # Normalises with the biased batch variance (as PyTorch in train mode) ...
  np.testing.assert_allclose(out, (x - mean) / np.sqrt(var_biased + 1e-5),
                             rtol=1e-4, atol=1e-4)
  # ... and the running averages use momentum 0.1 and the unbiased variance.
  np.testing.assert_allclose(upd['batch_stats']['mean'], 0.1 * mean, rtol=1e-5)
  np.testing.assert_allclose(upd['batch_stats']['var'],
                             0.9 + 0.1 * var_unbiased, rtol=1e-5)
  # A second step folds into the running values.
  variables2 = {**variables, **upd}
  _, upd2 = bn.apply(variables2, jnp.asarray(x), train=True,
                     mutable=['batch_stats'])
  np.testing.assert_allclose(upd2['batch_stats']['mean'],
                             0.9 * 0.1 * mean + 0.1 * mean, rtol=1e-5)

  # Eval mode uses the running statistics and changes nothing.
  stats = {'mean': jnp.asarray([0.5, -1.0]), 'var': jnp.asarray([4.0, 0.25])}
  out = bn.apply({**variables, 'batch_stats': stats}, jnp.asarray(x))
  want = (x - np.array([0.5, -1.0])) / np.sqrt(np.array([4.0, 0.25]) + 1e-5)
  np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


def test_apply_model_threads_batch_stats():
  shape = (8, 8, 3)
  model = models.get_model('convnet_bn', 10, image_shape=shape, width=4)
  variables = _random_variables(model, shape)
  assert models.has_batch_norm(variables)
  x = _np_input((5, *shape), loc=1.0)

  (logits, feats), new = models.apply_model(model, variables, x, train=True,
                                            features=True)
  assert logits.shape == (5, 10) and feats['embedding'].shape == (5, 4)
  assert new['params'] is variables['params']
  old_mean = variables['batch_stats']['block_0']['norm']['mean']
  # Block 0 normalises the first conv's output: running mean moves 10% of the
  # way to that output's batch mean.
  p = jax.tree_util.tree_map(np.asarray, variables['params']['block_0']['conv'])
  conv = _np_conv(x.astype(np.float64), p['kernel'], p['bias'], 1)
  np.testing.assert_allclose(new['batch_stats']['block_0']['norm']['mean'],
                             0.9 * old_mean + 0.1 * conv.mean(axis=(0, 1, 2)),
                             rtol=1e-4, atol=1e-6)
  # Eval: running statistics, variables returned untouched.
  out, same = models.apply_model(model, new, x)
  assert same is new and out.shape == (5, 10)
  # A model without batch norm returns its variables unchanged even in train mode.
  plain = models.get_model('mlp', 10, image_shape=shape)
  pv = _random_variables(plain, shape)
  assert not models.has_batch_norm(pv)
  assert models.apply_model(plain, pv, x, train=True)[1] is pv


# ----------------------------------------------------------------- flatten_params


def _deep_convnet():
  shape = (4, 4, 1)
  model = models.get_model('convnet', 3, image_shape=shape, width=2, depth=11,
                           pooling='none')
  return model, _random_variables(model, shape)['params']


def test_flatten_params_is_depth_ordered():
  _, params = _deep_convnet()
  # Expected order, written out: blocks 0..10 (conv then norm; kernel/scale then
  # bias), classifier last. String sorting would put block_10 before block_2.
  want = []
  for d in range(11):
    want += [f'block_{d}/conv/kernel', f'block_{d}/conv/bias',
             f'block_{d}/norm/scale', f'block_{d}/norm/bias']
  want += ['classifier/kernel', 'classifier/bias']
  spec = models.param_spec(params)
  assert [path for path, _, _ in spec] == want

  vec, unflatten = models.flatten_params(params)
  assert vec.dtype == jnp.float32
  offset = 0
  for path, shape, off in spec:
    assert off == offset
    leaf = params
    for k in path.split('/'):
      leaf = leaf[k]
    assert shape == leaf.shape
    np.testing.assert_array_equal(vec[off:off + leaf.size], np.ravel(leaf))
    offset += leaf.size
  assert offset == vec.size
  first = params['block_0']['conv']['kernel']
  np.testing.assert_array_equal(vec[:first.size], np.ravel(first))

  back = unflatten(vec)
  assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(params)
  jax.tree_util.tree_map(np.testing.assert_array_equal, back, params)


def test_flatten_params_ignores_dict_order():
  _, params = _deep_convnet()
  # jit and tree_map rebuild dicts with string-sorted keys.
  resorted = jax.jit(lambda p: p)(params)
  assert list(resorted)[:3] == ['block_0', 'block_1', 'block_10']
  np.testing.assert_array_equal(models.flatten_params(resorted)[0],
                                models.flatten_params(params)[0])
  # Plain Flax names sort naturally too.
  tree = {'Dense_0': {'bias': jnp.full(1, 4.0), 'kernel': jnp.full(1, 3.0)},
          'Conv_10': {'kernel': jnp.full(1, 2.0)},
          'Conv_2': {'kernel': jnp.full(1, 1.0)}}
  np.testing.assert_array_equal(models.flatten_params(tree)[0], [1, 2, 3, 4])


def test_flatten_params_under_jit_and_grad():
  _, deep = _deep_convnet()
  np.testing.assert_array_equal(
      jax.jit(lambda p: models.flatten_params(p)[0])(deep),
      models.flatten_params(deep)[0])
  # Gradients on a small net: compiling grads through 11 blocks takes seconds.
  model = models.get_model('convnet', 3, image_shape=(4, 4, 1), width=2, depth=2)
  params = _random_variables(model, (4, 4, 1))['params']
  vec, unflatten = models.flatten_params(params)
  # grad through flatten: d/dp <flatten(p), w> = unflatten(w).
  w = jnp.arange(vec.size, dtype=jnp.float32)
  g = jax.jit(jax.grad(lambda p: jnp.vdot(models.flatten_params(p)[0], w)))(params)
  jax.tree_util.tree_map(np.testing.assert_array_equal, g, unflatten(w))
  # grad through unflatten (how MTT's student uses one flat theta).
  x = _np_input((2, 4, 4, 1))

  def loss(theta):
    return jnp.sum(model.apply({'params': unflatten(theta)}, x) ** 2)

  g_vec = jax.jit(jax.grad(loss))(vec)
  g_tree = jax.jit(jax.grad(
      lambda p: jnp.sum(model.apply({'params': p}, x) ** 2)))(params)
  g_tree = models.flatten_params(g_tree)[0]
  # float32 round-off: compare on the scale of the gradient.
  np.testing.assert_allclose(g_vec, g_tree, rtol=0,
                             atol=1e-5 * float(jnp.abs(g_tree).max()))


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_flatten_order_is_creation_order(name):
  """The name-based order equals the order in which init creates the layers."""
  shape = (32, 32, 3)
  model = models.get_model(name, 10, image_shape=shape)
  created = []

  def record(tree, prefix=''):  # insertion order, as init built the dict
    for k, v in tree.items():
      if isinstance(v, dict):
        record(v, f'{prefix}{k}/')
      else:
        created.append(f'{prefix}{k}')

  def init(key):
    variables = models.init_model(model, key, shape)
    record(variables['params'])
    return variables

  params = jax.eval_shape(init, jax.random.key(0))['params']
  # Within a layer the creation order is kernel/scale then bias already.
  assert [p for p, _, _ in models.param_spec(params)] == created


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize('kwargs,field', [
    (dict(name='convnet9'), 'model'),
    (dict(norm='batchnorm2d'), 'norm'),
    (dict(pooling='avg'), 'pooling'),
    (dict(act='gelu'), 'act'),
    (dict(conv_impl='fft'), 'conv_impl'),
    (dict(width=0), 'width'),
    (dict(depth=-1), 'depth'),
    (dict(num_classes=0), 'num_classes'),
    (dict(image_shape=(32, 32)), 'image_shape'),
    (dict(name='convnet_bn', norm='instancenorm'), 'norm'),
    (dict(name='lenet', norm='batchnorm'), 'norm'),
    (dict(name='resnet18_bn', norm='layernorm'), 'norm'),
    (dict(norm='groupnorm', width=6), 'width'),
])
def test_bad_config_raises(kwargs, field):
  kwargs = {'name': 'convnet', 'num_classes': 10, 'image_shape': (32, 32, 3),
            **kwargs}
  with pytest.raises(ConfigError, match=field) as err:
    models.get_model(kwargs.pop('name'), kwargs.pop('num_classes'), **kwargs)
  assert isinstance(err.value, ValueError)
  assert 'accepted' in str(err.value)
  assert '\n' not in str(err.value)


def test_unknown_model_lists_names():
  with pytest.raises(ConfigError) as err:
    models.get_model('resnet50', 10, image_shape=(32, 32, 3))
  for name in models.MODEL_NAMES:
    assert name in str(err.value)


def test_conv_impl_checked_in_layer():
  with pytest.raises(ConfigError, match='conv_impl'):
    layers.Conv(2, impl='fft').init(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))


def test_numpy_ints_accepted():
  shape = np.zeros((5, 28, 28, 1)).shape[1:]
  m = models.get_model('convnet', np.int64(10), image_shape=np.array(shape),
                       width=np.int32(16))
  assert m.num_classes == 10 and m.width == 16 and type(m.width) is int
  with pytest.raises(ConfigError, match='width'):
    models.get_model('convnet', 10, image_shape=shape, width=16.0)


def test_names_are_case_insensitive_and_norm_override():
  m = models.get_model('ConvNet_BN', 10, image_shape=(32, 32, 3))
  assert m.norm == 'batchnorm' and m.depth == 3
  assert models.get_model('convnetd1', 10, image_shape=(32, 32, 3)).depth == 1
  assert models.get_model('convnetw32', 10, image_shape=(32, 32, 3)).width == 32
  assert models.get_model('vgg11', 10, image_shape=(32, 32, 3),
                          norm='batchnorm').norm == 'batchnorm'


@pytest.mark.parametrize('name,shape', [
    ('lenet', (8, 8, 1)), ('vgg11', (8, 8, 1)), ('convnetd4', (8, 8, 1)),
    ('resnet18', (8, 8, 1)), ('convnet', (4, 4, 3)),
])
def test_too_small_inputs_rejected(name, shape):
  with pytest.raises(ConfigError, match='image_shape'):
    models.get_model(name, 10, image_shape=shape)


def test_instancenorm_on_one_pixel_would_be_constant():
  """Why resnet18 (instancenorm) rejects 8x8: its 1x1 last stage ignores the input."""
  x = _np_input((3, 1, 1, 16))
  norm = layers.Norm('instancenorm')
  out = norm.apply(norm.init(jax.random.key(1), x), x)
  np.testing.assert_allclose(out, 0.0, atol=1e-6)
  # resnet18_bn is fine on 8x8 and depends on its input.
  model = models.get_model('resnet18_bn', 10, image_shape=(8, 8, 1))
  variables = _random_variables(model, (8, 8, 1))
  x = _np_input((4, 8, 8, 1))
  logits, _ = jax.jit(
      lambda v, x: models.apply_model(model, v, x, train=True))(variables, x)
  assert np.all(np.std(np.asarray(logits), axis=0) > 0)


@pytest.mark.parametrize('kernel, stride, padding', [
    (3, 1, 1), (3, 1, 3), (5, 1, 2), (3, 2, 1), (1, 2, 0), (5, 1, 0), (3, 1, 'SAME')])
def test_matmul_convolution_equals_xla_values_and_gradients(kernel, stride, padding):
  from jaxdd.models.layers import conv2d
  rng = np.random.default_rng(kernel * 10 + stride)
  x = jnp.asarray(rng.normal(size=(2, 9, 9, 3)).astype(np.float32))
  w = jnp.asarray(rng.normal(size=(kernel, kernel, 3, 4)).astype(np.float32))
  f = lambda impl: lambda x, w: jnp.sum(
      jnp.sin(conv2d(x, w, (stride, stride), padding, impl)))
  np.testing.assert_allclose(conv2d(x, w, (stride, stride), padding, 'matmul'),
                             conv2d(x, w, (stride, stride), padding, 'xla'),
                             rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.grad(f('matmul'), argnums=(0, 1))(x, w),
                  jax.grad(f('xla'), argnums=(0, 1))(x, w)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def _numpy_conv3x3(x, w, pads):
  """Cross-correlation as the defining sum, written the slow way."""
  x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  n, h, wd, _ = x.shape
  out = np.zeros((n, h - 2, wd - 2, w.shape[-1]))
  for i in range(h - 2):
    for j in range(wd - 2):
      out[:, i, j] = np.einsum('nabc,abco->no', x[:, i:i + 3, j:j + 3], w)
  return out


@pytest.mark.parametrize('hw, pads', [
    ((7, 7), ((1, 1), (1, 1))), ((8, 5), ((1, 1), (1, 1))), ((6, 9), ((0, 0), (0, 0))),
    ((5, 6), ((2, 0), (1, 3)))])
def test_winograd_convolution_equals_direct_sum_and_xla_gradients(hw, pads):
  """F(2x2, 3x3) on even and odd outputs and asymmetric padding: values against the
  slow numpy sum; first and second derivatives (the meta-gradients of DC and MTT
  differentiate through a gradient) against XLA's convolution."""
  from jaxdd.models.winograd import conv3x3_winograd
  from jaxdd.models.layers import conv2d
  rng = np.random.default_rng(hw[0] * 10 + hw[1])
  x = rng.normal(size=(2, *hw, 16)).astype(np.float32)
  w = (rng.normal(size=(3, 3, 16, 5)) / 12).astype(np.float32)
  np.testing.assert_allclose(conv3x3_winograd(jnp.asarray(x), jnp.asarray(w), pads),
                             _numpy_conv3x3(x, w, pads), rtol=1e-4, atol=1e-4)
  # cin = 16 reaches the Winograd path through conv2d too.
  f = lambda impl: lambda x, w: jnp.sum(jnp.sin(conv2d(x, w, (1, 1), list(pads), impl)))
  for a, b in zip(jax.grad(f('winograd'), argnums=(0, 1))(x, w),
                  jax.grad(f('xla'), argnums=(0, 1))(x, w)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  g2 = lambda impl: jax.grad(lambda x: jnp.sum(jax.grad(f(impl), argnums=1)(x, w) ** 2))
  np.testing.assert_allclose(g2('winograd')(x), g2('xla')(x), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize('kernel, stride, cin', [(3, 2, 16), (5, 1, 16), (3, 1, 3)])
def test_winograd_falls_back_to_matmul(kernel, stride, cin, monkeypatch):
  """Strided, non-3x3 and few-channel convs keep the im2col matmul, same values."""
  from jaxdd.models import winograd
  from jaxdd.models.layers import conv2d

  def not_here(*args):
    raise AssertionError('Winograd used where it does not apply')

  monkeypatch.setattr(winograd, 'conv3x3_winograd', not_here)
  rng = np.random.default_rng(kernel + stride + cin)
  x = jnp.asarray(rng.normal(size=(2, 9, 9, cin)).astype(np.float32))
  w = jnp.asarray(rng.normal(size=(kernel, kernel, cin, 4)).astype(np.float32))
  np.testing.assert_allclose(conv2d(x, w, (stride, stride), 1, 'winograd'),
                             conv2d(x, w, (stride, stride), 1, 'xla'),
                             rtol=1e-4, atol=1e-4)
