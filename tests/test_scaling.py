"""benchmarks/scaling.py: the HLO collective parser, the cost and memory readers, the
record schema and the tables (offline, one device, plus one 2-device subprocess)."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

from benchmarks import scaling  # noqa: E402

# A hand-written module: sync collectives (one tuple-shaped), async -start/-done pairs,
# an async-start wrapper around a reduce-scatter, and lines that only mention
# collectives (an operand name, metadata) without being one.
HLO = """\
HloModule jit_step, entry_computation_layout={(f32[128,10]{1,0})->f32[64]{0}}

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %add.1 = f32[] add(f32[] %a, f32[] %b)
}

%rs_body (p: f32[8]) -> f32[4] {
  %p = f32[8]{0} parameter(0)
  ROOT %reduce-scatter.1 = f32[4]{0} reduce-scatter(f32[8]{0} %p), dimensions={0}, to_apply=%add
}

ENTRY %main (p0: f32[128,10]) -> f32[64] {
  %p0 = f32[128,10]{1,0} parameter(0), sharding={replicated}
  %all-reduce.3 = f32[128,10]{1,0} all-reduce(f32[128,10]{1,0} %p0), channel_id=1, replica_groups={{0,1}}, to_apply=%add, metadata={op_name="jit(f)/psum" source_line=3}
  %fusion.2 = f32[128,10]{1,0} fusion(%all-reduce.3), kind=kLoop, calls=%add, metadata={op_name="jit(f)/all-gather"}
  %all-reduce.4 = (f32[128,10]{1,0}, bf16[64]{0}, pred[3]{0}) all-reduce(%p0, %x, %y), to_apply=%add
  %all-gather-start = (f32[8]{0}, f32[64]{0}) all-gather-start(f32[8]{0} %x), dimensions={0}
  %all-gather-done = f32[64]{0} all-gather-done((f32[8]{0}, f32[64]{0}) %all-gather-start)
  %ars = f32[32]{0} all-reduce-start(f32[32]{0} %y), to_apply=%add
  %ard = f32[32]{0} all-reduce-done(f32[32]{0} %ars)
  %cps = (f32[16,2]{1,0}, f32[16,2]{1,0}, u32[], u32[]) collective-permute-start(%z), source_target_pairs={{0,1},{1,0}}
  %cpd = f32[16,2]{1,0} collective-permute-done(%cps)
  %rs-start = ((f32[8]{0}), f32[4]{0}, s32[]) async-start(f32[8]{0} %x), calls=%rs_body
  %rs-done = f32[4]{0} async-done(%rs-start)
  %a2a = (s8[10]{0}, s8[10]{0}) all-to-all(%u, %v), dimensions={0}
  %rs.2 = s32[4,4]{1,0} reduce-scatter(s32[8,4]{1,0} %w), dimensions={0}, to_apply=%add
  ROOT %out = f32[64]{0} copy(%all-gather-done)
}
"""


def test_collective_bytes_exact():
  total, per_op = scaling.collective_bytes_of(HLO)
  assert per_op == {
      # 128*10*4; (128*10*4 + 64*2 + 3*1); all-reduce-start f32[32] (not its -done)
      'all-reduce': {'count': 3, 'bytes': 5120 + 5251 + 128},
      'all-gather': {'count': 1, 'bytes': 64 * 4},          # the start's result part
      'collective-permute': {'count': 1, 'bytes': 16 * 2 * 4},
      'reduce-scatter': {'count': 2, 'bytes': 4 * 4 + 4 * 4 * 4},  # wrapped + sync
      'all-to-all': {'count': 1, 'bytes': 20},
  }
  assert total == 10499 + 256 + 128 + 80 + 20
  assert scaling.largest_collectives(HLO, 2) == [
      {'op': 'all-reduce', 'bytes': 5251, 'shape': '(f32[128,10], bf16[64], pred[3])',
       'op_name': ''},
      {'op': 'all-reduce', 'bytes': 5120, 'shape': 'f32[128,10]', 'op_name': 'jit(f)/psum'}]


def test_collective_shapes():
  assert scaling.shape_bytes('f32[128,10]{1,0}') == 5120
  assert scaling.shape_bytes('(bf16[2,3]{1,0}, f16[4]{0}, f64[2], s64[1], u8[5], s8[3])') \
      == 12 + 8 + 16 + 8 + 5 + 3
  assert scaling.shape_bytes('f32[]') == 4                       # a scalar
  assert scaling.shape_bytes('f32[8,128]{1,0:T(8,128)S(1)}') == 4096   # TPU layouts
  assert scaling.shape_bytes('f32[<=10]{0}') == 40                     # dynamic bound
  with pytest.raises(ValueError, match='unknown HLO element type'):
    scaling.shape_bytes('q7[3]')
  # Multi-operand async all-gather: ((operands), (results)) -> the results only.
  line = ('  %ag = ((f32[8]{0}, f32[4]{0}), (f32[64]{0}, f32[32]{0})) '
          'all-gather-start(%a, %b), dimensions={0}')
  assert scaling.parse_instruction(line)[1] == 'all-gather-start'
  assert scaling.collective_bytes_of(line) == (384, {'all-gather': {'count': 1,
                                                                    'bytes': 384}})
  assert scaling.parse_instruction('ENTRY %main (p0: f32[2]) -> f32[2] {') is None
  assert scaling.parse_instruction('}') is None


def test_flops_and_memory_of_a_matmul():
  m, k, n = 64, 32, 16
  compiled = jax.jit(lambda a, b: a @ b).lower(
      jnp.ones((m, k)), jnp.ones((k, n))).compile()
  fields = scaling.measure(compiled)
  assert fields['flops_per_device'] == pytest.approx(2 * m * n * k, rel=0.01)
  assert fields['collective_bytes'] == 0 and fields['collectives'] == {}
  mem = fields['memory']
  assert mem['argument_bytes'] == 4 * (m * k + k * n)
  assert mem['output_bytes'] == 4 * m * n
  assert fields['memory_per_device'] == (mem['argument_bytes'] + mem['output_bytes']
                                         + mem['temp_bytes'] - mem['alias_bytes'])


def test_memory_subtracts_donated_aliases():
  compiled = jax.jit(lambda x: x * 2 + 1, donate_argnums=0).lower(
      jnp.ones((64, 16))).compile()
  fields = scaling.memory_fields(compiled)
  assert fields['memory']['alias_bytes'] == 4096
  assert fields['memory_per_device'] == 4096 + 4096 + fields['memory']['temp_bytes'] - 4096


class _FakeCompiled:
  def __init__(self, cost):
    self.cost = cost

  def cost_analysis(self):
    return self.cost

  def memory_analysis(self):
    return None


@pytest.mark.parametrize('cost, flops', [
    ({'flops': 7.0, 'bytes accessed': 3.0}, 7.0),
    ([{'flops': 9.0}, {'flops': 9.0}], 9.0),     # one dict per program (older jax)
    ([], None), (None, None), ({'bytes accessed': 1.0}, None)])
def test_cost_fields_dict_or_list(cost, flops):
  assert scaling.cost_fields(_FakeCompiled(cost))['flops_per_device'] == flops
  assert scaling.memory_fields(_FakeCompiled(cost)) == {'memory_per_device': None,
                                                        'memory': None}


def _tiny_case():
  def lower(config, mesh, opts, tmp):
    f = jax.jit(lambda a: jnp.tanh(a @ a.T))
    return f.lower(jax.ShapeDtypeStruct((8, 4), jnp.float32)), {'what': 'tiny'}
  return scaling.Case('dm', 'small', 'tiny 8x4', lambda: None, lower, 'none')


def test_record_schema(tmp_path):
  opts = {'seed_loop': 'vmap', 'mesh_override': None, 'buffer_experts': 2}
  rec = scaling.run_case(_tiny_case(), 1, opts, str(tmp_path))
  assert rec['error'] is None, rec['error']
  scaling.check_record(rec)
  json.loads(json.dumps(rec))                              # JSON-able as written
  assert set(rec) == set(scaling.RECORD_FIELDS)
  assert rec['mesh'] == {'members': 1, 'data': 1}
  assert rec['flops_per_device'] == pytest.approx(2 * 8 * 8 * 4, rel=0.01)
  assert rec['compile_seconds'] >= 0 and rec['what'] == 'tiny'
  bad = [{k: v for k, v in rec.items() if k != 'shape'},     # missing field
         {**rec, 'extra': 1},                                 # unknown field
         {**rec, 'devices': '1'},                             # wrong type
         {**rec, 'flops_per_device': None},                   # null without an error
         {**rec, 'mesh': {'members': 2, 'data': 1}},          # mesh != devices
         {**rec, 'step': 'nope'}]
  for r in bad:
    with pytest.raises(ValueError):
      scaling.check_record(r)
  # A failing case is a record with its error, not an exception.
  def broken(config, mesh, opts, tmp):
    raise RuntimeError('boom')
  err = scaling.run_case(scaling.Case('mtt', 'paper', 'x', lambda: None, broken), 1,
                         opts, str(tmp_path))
  scaling.check_record(err)
  assert err['error'].startswith('RuntimeError: boom') and err['flops_per_device'] is None


def test_table_from_results():
  def rec(devices, flops, error=None):
    fields = {} if error else dict(
        mesh={'members': devices, 'data': 1}, flops_per_device=flops, collective_bytes=0,
        collectives={}, memory_per_device=2 ** 20, compile_seconds=1.0)
    return scaling.make_record('dm', devices, 'small', 'MNIST IPC 10', error=error,
                               **fields)
  results = {'records': [rec(1, 8e9), rec(8, 1e9), rec(64, None, 'timeout')],
             'provenance': {'git': {'commit': 'abc', 'dirty': True}}}
  for r in results['records']:
    scaling.check_record(r)
  text = scaling.markdown_tables(results)
  assert '| dm | MNIST IPC 10 | 8 | 1 (8×) | error |' in text
  assert '| dm | MNIST IPC 10 | 1 | 1 | error |' in text     # memory MB
  assert 'timeout' in text and 'abc (dirty)' in text
  assert 'different jaxdd sources' not in text
  results['records'][0]['options'] = {'jaxdd_digest': 'd1'}
  results['records'][1]['options'] = {'jaxdd_digest': 'd2'}
  assert 'different jaxdd sources** (edited during the sweep): d1: 1 dev; d2: 8 dev' \
      in scaling.markdown_tables(results)


def test_worker_env_sets_the_device_count(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_cpu_foo=1 --xla_force_host_platform_device_count=3')
  monkeypatch.setenv('JAX_COMPILATION_CACHE_DIR', '/tmp/x')
  env = scaling.worker_env(16)
  assert env['XLA_FLAGS'].split() == ['--xla_cpu_foo=1',
                                      '--xla_force_host_platform_device_count=16']
  assert env['JAX_PLATFORMS'] == 'cpu' and env['JAX_ENABLE_COMPILATION_CACHE'] == 'false'
  assert 'JAX_COMPILATION_CACHE_DIR' not in env


_TWO_DEVICES = """
import jax, jax.numpy as jnp
from benchmarks import scaling
from jaxdd import sharding
mesh = sharding.make_mesh({'members': 1, 'data': 2})
with jax.set_mesh(mesh):
  f = jax.jit(lambda x: sharding.constrain(x, sharding.DATA).sum(0))
  c = f.lower(jax.ShapeDtypeStruct((8, 4), jnp.float32)).compile()
print(jax.device_count(), scaling.collective_bytes_of(c.as_text()))
"""


def test_two_simulated_devices_all_reduce():
  """The parser on XLA's own text: rows split over 2 devices, a column sum is one
  all-reduce of f32[4] (16 bytes) per device (~5 s, one subprocess)."""
  proc = subprocess.run([sys.executable, '-c', _TWO_DEVICES], cwd=REPO,
                        env=scaling.worker_env(2), capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip().splitlines()[-1] == \
      "2 (16, {'all-reduce': {'count': 1, 'bytes': 16}})"
