#!/usr/bin/env python3
"""Inventory fixtures: a base inventory, a small overlay, and what a run against it must print.
One format for the preflight fixtures (tests/preflight/<name>/fixture.yml, on a base under
tests/preflight/base/) and the whole-stack bad inventories (tests/whole-stack/bad-inventories/,
on the Molecule scenario's inventory). A fixture's keys, each optional:

  base: small.yml                  preflight only: the inventory under tests/preflight/base/
  group_vars: {group: {var: v}}    host-level values for every host of the group (`all`: every
                                   host): they beat every value the base inventory has
  hosts: {host: {var: v} | null}   a host's own values (a new host is added; null: the host is
                                   taken out of the inventory)
  groups: {group: [host, ...]}     the group's own hosts, replaced
  args: [--check, --limit, a,b]    more arguments for ansible-playbook
  exit: 2                          the exit status (default: any but 0)
  expect: [regex, ...]             each must match the output (multi-line: ^ and $ match lines)
  expect_not: [regex, ...]         none may match

  inventory_fixture.py compose FIXTURE OUT_DIR     OUT_DIR/hosts.yml (+ app/ if the fixture has one)
  inventory_fixture.py args FIXTURE                the extra arguments, one per line
  inventory_fixture.py check FIXTURE OUTPUT RC     the failures, one per line; exit 1 if any
"""
import os
import re
import shutil
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
PREFLIGHT_BASES = os.path.join(HERE, 'preflight', 'base')


def load(path):
    return yaml.safe_load(open(path)) or {}


def _groups(node, name='all'):
    """Every group of an Ansible YAML inventory: {name: its mapping}, nested children included."""
    out = {name: node}
    for child, sub in ((node or {}).get('children') or {}).items():
        if sub is None:
            sub = node['children'][child] = {}
        out.update(_groups(sub, child))
    return out


def _all_groups(inventory):
    # Molecule writes groups at the top level beside `all`; hand-written inventories nest them.
    out = {}
    for name in list(inventory):
        if inventory[name] is None:
            inventory[name] = {}
        out.update(_groups(inventory[name], name))
    return out


def _members(groups, name):
    node = groups.get(name) or {}
    hosts = list((node.get('hosts') or {}).keys())
    for child in (node.get('children') or {}):
        hosts += [h for h in _members(groups, child) if h not in hosts]
    return hosts


def overlay(inventory, fixture, new_groups=False):
    """Applies the fixture's groups and removed hosts to `inventory` (in place) and returns the
    host-level values to give each host: {host: {var: value}}. With new_groups, a group the
    inventory lacks is added (Molecule's inventory has only the groups its platforms are in)."""
    if new_groups:
        for name in fixture.get('groups') or {}:
            if name not in _all_groups(inventory):
                inventory[name] = {'hosts': {}}
    groups = _all_groups(inventory)
    every_host = []
    for name in groups:
        every_host += [h for h in _members(groups, name) if h not in every_host]
    for name, hosts in (fixture.get('groups') or {}).items():
        if name not in groups:
            raise SystemExit(f'fixture: no group {name} in the base inventory')
        groups[name]['hosts'] = {h: None for h in hosts or []}
    values = {}
    for name, group_values in (fixture.get('group_vars') or {}).items():
        for host in (every_host if name == 'all' else _members(groups, name)):
            values.setdefault(host, {}).update(group_values)
    for host, host_values in (fixture.get('hosts') or {}).items():
        if host_values is None:
            for node in groups.values():
                (node.get('hosts') or {}).pop(host, None)
            values.pop(host, None)
        else:
            values.setdefault(host, {}).update(host_values)
    return values


def compose(fixture_path, out_dir):
    """A preflight fixture's inventory: the base with the overlay, host values inline (the base has
    no host_vars files, so inline host values rank highest)."""
    fixture = load(fixture_path)
    inventory = load(os.path.join(PREFLIGHT_BASES, fixture['base']))
    values = overlay(inventory, fixture)
    hosts = inventory['all']['hosts'] = inventory['all'].get('hosts') or {}
    for host, host_values in values.items():
        hosts[host] = dict(hosts.get(host) or {}, **host_values)
    os.makedirs(out_dir, exist_ok=True)
    yaml.safe_dump(inventory, open(os.path.join(out_dir, 'hosts.yml'), 'w'), sort_keys=False)
    app = os.path.join(os.path.dirname(os.path.abspath(fixture_path)), 'app')
    if os.path.isdir(app) and not os.path.exists(os.path.join(out_dir, 'app')):
        os.symlink(app, os.path.join(out_dir, 'app'))


def molecule_copy(fixture, tmp):
    """A copy of the current Molecule scenario's inventory under `tmp`, with the fixture applied:
    its groups and removed hosts in the inventory file, its host-level values in host_vars files
    (the highest inventory precedence, above the wiring and the scenario's own host_vars).
    A spare host the fixture puts into a group (tests/hosts/spare-host.yml) gets its connection
    settings. Returns the inventory file's path. Needs MOLECULE_EPHEMERAL_DIRECTORY (a Molecule step)."""
    spare_file = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'spare-hosts.yml')
    spare = load(spare_file) if os.path.exists(spare_file) else {}
    grouped = {h for hosts in (fixture.get('groups') or {}).values() for h in hosts or []}
    fixture = dict(fixture, hosts={**{h: v for h, v in spare.items() if h in grouped}, **(fixture.get('hosts') or {})})
    source = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'inventory')
    inv_dir = os.path.join(tmp, 'inventory')
    shutil.copytree(source, inv_dir, symlinks=True)
    inv_file = os.path.join(inv_dir, 'ansible_inventory.yml')
    inventory = load(inv_file)
    values = overlay(inventory, fixture, new_groups=True)
    yaml.safe_dump(inventory, open(inv_file, 'w'))
    host_vars = os.path.join(inv_dir, 'host_vars')
    if os.path.islink(host_vars):
        target = os.path.realpath(host_vars)
        os.unlink(host_vars)
        shutil.copytree(target, host_vars)
    os.makedirs(host_vars, exist_ok=True)
    for host, host_values in values.items():
        path = os.path.join(host_vars, f'{host}.yml')
        current = (load(path) if os.path.exists(path) else None) or {}
        current.update(host_values)
        yaml.safe_dump(current, open(path, 'w'))
    return inv_file


def check(fixture, output, rc):
    problems = []
    want = fixture.get('exit')
    if want is None and rc == 0:
        problems.append('exit status 0, expected a failure')
    elif want is not None and rc != int(want):
        problems.append(f'exit status {rc}, expected {want}')
    for pattern in fixture.get('expect') or []:
        if not re.search(pattern, output, re.M):
            problems.append(f'no match for {pattern!r}')
    for pattern in fixture.get('expect_not') or []:
        if re.search(pattern, output, re.M):
            problems.append(f'unexpected match for {pattern!r}')
    return problems


def main(argv):
    command, fixture_path = argv[0], argv[1]
    if command == 'compose':
        compose(fixture_path, argv[2])
    elif command == 'args':
        print('\n'.join(str(a) for a in load(fixture_path).get('args') or []))
    elif command == 'check':
        problems = check(load(fixture_path), open(argv[2]).read(), int(argv[3]))
        print('\n'.join(problems))
        return 1 if problems else 0
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
