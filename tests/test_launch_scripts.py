"""launch/*.sh --dry_run: the exact command sequence each script would run.

Each script runs under bash with PATH holding only what it may call: the few coreutils
tpu_pod.sh needs and a ``gcloud`` that records any call (a dry run must make none); no
``scontrol``, so slurm_gpu.sh's fallback parses the node list. The printed lines are
split with ``shlex`` (as bash would) and compared word for word, and the remote / per
task command strings are executed by bash against a fake ``python3`` that prints its
arguments, so quoting and the per-task ``$SLURM_PROCID`` are checked as a shell sees
them. Offline, no cluster tools, a few ms per script.
"""

import os
import re
import shlex
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(REPO, 'launch')
BASH = shutil.which('bash')
CONFIG = 'configs/dm_cifar10.py'
NASTY = "--config.name=it's a $HOME `x`"   # a launcher argument needing quotes


def setup_cfg_version() -> str:
  with open(os.path.join(REPO, 'setup.cfg')) as f:
    return re.search(r'^version\s*=\s*(\S+)\s*$', f.read(), re.M).group(1)


def _fake(path, body):
  with open(path, 'w') as f:
    f.write(f'#!{BASH}\n{body}\n')
  os.chmod(path, 0o755)


@pytest.fixture
def bin_dir(tmp_path):
  """A PATH directory: coreutils tpu_pod.sh uses, a recording gcloud, a printing python3."""
  d = tmp_path / 'bin'
  d.mkdir()
  for tool in ('sed', 'head', 'basename', 'dirname'):
    os.symlink(shutil.which(tool), d / tool)
  _fake(d / 'gcloud', f'echo "$*" >> {shlex.quote(str(tmp_path / "gcloud_calls"))}; exit 1')
  _fake(d / 'python3', 'echo "TFDS_DATA_DIR=${TFDS_DATA_DIR-unset}"; printf "%s\\n" "$@"')
  return d


def run(script, args, bin_dir, **env):
  proc = subprocess.run([BASH, os.path.join(LAUNCH, script), *args], cwd=REPO,
                        capture_output=True, text=True, timeout=20,
                        env={'PATH': str(bin_dir), 'LC_ALL': 'C', **env})
  assert not (bin_dir.parent / 'gcloud_calls').exists(), 'a dry run called gcloud'
  return proc


def run_remote(command, bin_dir, **env):
  """``command`` as the remote / per-task shell runs it; the fake python3's output."""
  proc = subprocess.run([BASH, '-c', command], capture_output=True, text=True, timeout=20,
                        env={'PATH': str(bin_dir), **env}, check=True)
  return proc.stdout.splitlines()


def ssh_command(words, tpu, where):
  assert words[:6] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', tpu]
  assert words[6:-2] == where + ['--worker=all']
  assert words[-2] == '--command'
  return words[-1]


def test_tpu_pod_dry_run_creates_installs_copies_and_runs(bin_dir):
  proc = run('tpu_pod.sh', ['--tpu=my-pod', '--zone=us-central2-b', '--accelerator=v4-32',
                            '--project=my-proj', f'--config={CONFIG}:50',
                            '--workdir=gs://bkt/runs/dm50', '--data_dir=gs://bkt/tfds',
                            '--dry_run', '--', '--config.eval.epochs=300', NASTY], bin_dir)
  assert proc.returncode == 0, proc.stderr
  assert proc.stderr == ''
  lines = proc.stdout.splitlines()
  assert len(lines) == 4, proc.stdout
  where = ['--zone', 'us-central2-b', '--project', 'my-proj']
  assert lines[0] == (
      'gcloud compute tpus tpu-vm describe my-pod --zone us-central2-b --project my-proj '
      '>/dev/null 2>&1 || gcloud compute tpus tpu-vm create my-pod --zone us-central2-b '
      '--project my-proj --accelerator-type v4-32 --version tpu-ubuntu2204-base')

  install = ssh_command(shlex.split(lines[1]), 'my-pod', where)
  assert shlex.split(install) == [
      'python3', '-m', 'pip', 'install', '-q',
      f'jaxdd[tpu] @ git+https://github.com/jaxdd/jaxdd.git@v{setup_cfg_version()}',
      '&&', 'mkdir', '-p', 'jaxdd_configs']

  assert shlex.split(lines[2]) == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'scp', CONFIG,
                                   'my-pod:jaxdd_configs/', *where, '--worker=all']

  launch = ssh_command(shlex.split(lines[3]), 'my-pod', where)
  assert launch.startswith('TFDS_DATA_DIR=gs://bkt/tfds python3 -m jaxdd.launch --multihost '
                           '--config=jaxdd_configs/dm_cifar10.py:50 '
                           '--workdir=gs://bkt/runs/dm50 --config.eval.epochs=300 ')
  assert run_remote(launch, bin_dir) == [
      'TFDS_DATA_DIR=gs://bkt/tfds', '-m', 'jaxdd.launch', '--multihost',
      '--config=jaxdd_configs/dm_cifar10.py:50', '--workdir=gs://bkt/runs/dm50',
      '--config.eval.epochs=300', NASTY]


@pytest.mark.parametrize('version, ref', [(None, 'v' + setup_cfg_version()),
                                          ('0.2.0rc1', 'v0.2.0rc1'), ('abc1234', 'abc1234')])
def test_tpu_pod_existing_slice_pinned_ref(bin_dir, version, ref):
  args = ['--tpu', 'pod', '--zone', 'z', f'--config={CONFIG}', '--workdir=gs://b/r',
          '--repo=https://example.org/fork.git', '--dry_run']
  proc = run('tpu_pod.sh', args + ([f'--version={version}'] if version else []), bin_dir)
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.splitlines()
  assert len(lines) == 3, proc.stdout   # no describe / create without --accelerator
  assert ssh_command(shlex.split(lines[0]), 'pod', ['--zone', 'z']) == (
      f"python3 -m pip install -q 'jaxdd[tpu] @ git+https://example.org/fork.git@{ref}' "
      '&& mkdir -p jaxdd_configs')
  assert ssh_command(shlex.split(lines[2]), 'pod', ['--zone', 'z']) == (
      'python3 -m jaxdd.launch --multihost --config=jaxdd_configs/dm_cifar10.py '
      '--workdir=gs://b/r')


@pytest.mark.parametrize('drop, bad, message', [
    ('--workdir', None, '--workdir is required'),
    ('--tpu', None, '--tpu is required'),
    ('--zone', None, '--zone is required'),
    ('--config', None, '--config is required'),
    (None, '--workdir=/shared/runs/x', '--workdir must be a gs:// path'),
    (None, '--workdir=gs://', '--workdir must be a gs:// path'),
    (None, '--data_dir', '--data_dir needs a value'),
    (None, '--config.eval.epochs=3', 'unknown flag --config.eval.epochs'),
])
def test_tpu_pod_refuses_in_one_line(bin_dir, drop, bad, message):
  args = {'--tpu': 'pod', '--zone': 'z', '--config': CONFIG, '--workdir': 'gs://b/r'}
  argv = [f'{k}={v}' for k, v in args.items() if k != drop] + ['--dry_run']
  proc = run('tpu_pod.sh', argv + ([bad] if bad else []), bin_dir)
  assert proc.returncode == 2
  assert proc.stdout == ''
  assert len(proc.stderr.splitlines()) == 1, proc.stderr
  assert message in proc.stderr


@pytest.mark.parametrize('nodes, host', [('gpu[003-004,007],cpu01', 'gpu003'),
                                         ('a1,b2', 'a1'), ('node001', 'node001'),
                                         ('rack1-n[7-8]-ib', 'rack1-n7-ib')])
def test_slurm_dry_run_srun_line(bin_dir, nodes, host):
  proc = run('slurm_gpu.sh', ['--dry_run', f'--config={CONFIG}:50', '--workdir=/shared/r',
                              '--', '--config.eval.epochs=300', NASTY], bin_dir,
             SLURM_JOB_NODELIST=nodes, SLURM_NTASKS='16')
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.splitlines()
  assert len(lines) == 1, proc.stdout
  words = shlex.split(lines[0])
  assert words[:4] == ['srun', '--kill-on-bad-exit=1', 'bash', '-c'] and len(words) == 5
  assert words[4].startswith(
      f'exec python3 -m jaxdd.launch --coordinator_address={host}:8476 --num_processes=16 '
      f'--process_id=$SLURM_PROCID --config={CONFIG}:50 --workdir=/shared/r '
      '--config.eval.epochs=300 ')
  # Each task's bash expands its own SLURM_PROCID.
  assert run_remote(words[4], bin_dir, SLURM_PROCID='5') == [
      'TFDS_DATA_DIR=unset', '-m', 'jaxdd.launch', f'--coordinator_address={host}:8476',
      '--num_processes=16', '--process_id=5', f'--config={CONFIG}:50', '--workdir=/shared/r',
      '--config.eval.epochs=300', NASTY]


def test_slurm_port_scontrol_and_header(bin_dir):
  _fake(bin_dir / 'scontrol', '[ "$1 $2 $3" = "show hostnames n[1-2]" ] && printf "n1\\nn2\\n"')
  proc = run('slurm_gpu.sh', ['--config', CONFIG, '--workdir', '/s', '--port=9000',
                              '--dry_run'], bin_dir, SLURM_JOB_NODELIST='n[1-2]',
             SLURM_NTASKS='8')
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout == ("srun --kill-on-bad-exit=1 bash -c 'exec python3 -m jaxdd.launch "
                         '--coordinator_address=n1:9000 --num_processes=8 '
                         f"--process_id=$SLURM_PROCID --config={CONFIG} --workdir=/s'\n")
  with open(os.path.join(LAUNCH, 'slurm_gpu.sh')) as f:
    header = []
    for line in f.read().splitlines()[1:]:   # sbatch reads #SBATCH up to the first command
      if line and not line.startswith('#'):
        break
      header.append(line)
  assert '#SBATCH --ntasks-per-node=8' in header
  assert '#SBATCH --gpus-per-task=1' in header


@pytest.mark.parametrize('argv, env, message', [
    (['--workdir=/s', '--dry_run'], {'SLURM_JOB_NODELIST': 'a', 'SLURM_NTASKS': '8'},
     '--config is required'),
    ([f'--config={CONFIG}', '--dry_run'], {'SLURM_JOB_NODELIST': 'a', 'SLURM_NTASKS': '8'},
     '--workdir is required'),
    ([f'--config={CONFIG}', '--workdir=/s', '--dry_run'], {},
     'SLURM_JOB_NODELIST and SLURM_NTASKS are not set'),
])
def test_slurm_refuses_in_one_line(bin_dir, argv, env, message):
  proc = run('slurm_gpu.sh', argv, bin_dir, **env)
  assert proc.returncode == 2
  assert proc.stdout == ''
  assert len(proc.stderr.splitlines()) == 1, proc.stderr
  assert message in proc.stderr


def test_multi_gpu_host_dry_run(bin_dir):
  proc = run('multi_gpu_host.sh', ['--dry_run', '10.0.0.1:8476', '2', '1', f'{CONFIG}:50',
                                   '/shared/r', '--config.eval.epochs=300'], bin_dir)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout == ('python3 -m jaxdd.launch --coordinator_address=10.0.0.1:8476 '
                         f'--num_processes=2 --process_id=1 --config={CONFIG}:50 '
                         '--workdir=/shared/r --config.eval.epochs=300\n')


@pytest.mark.parametrize('argv, message', [
    (['10.0.0.1:8476', '2', '2', CONFIG, '/s'], 'PROCESS_ID must be in 0 .. 1'),
    (['10.0.0.1', '2', '0', CONFIG, '/s'], 'COORDINATOR must be HOST:PORT'),
    (['10.0.0.1:8476', '2', '0', CONFIG], 'usage:'),
])
def test_multi_gpu_host_refuses_in_one_line(bin_dir, argv, message):
  proc = run('multi_gpu_host.sh', ['--dry_run', *argv], bin_dir)
  assert proc.returncode == 2
  assert proc.stdout == ''
  assert len(proc.stderr.splitlines()) == 1, proc.stderr
  assert message in proc.stderr
