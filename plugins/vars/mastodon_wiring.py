"""Vars plugin: the toolkit's wiring (plugins/vars/wiring.yml) over every role's defaults, given
to the `all` group at the lowest inventory level, so that an operator's value for the same name
wins wherever it is set: inventories/<env>/group_vars/all, a group's file, or host_vars.

Every role's defaults are here too (the same files, the same values: role names prefix every
variable, none is defined by two roles), so that whatever reads another host's settings (the
wiring, preflight) sees that host's values as its roles will, defaults included, even on hosts
where the role does not run: the wiring never repeats a default, preflight never loads one.

Ansible ranks playbook-level group_vars/all above the inventory's group_vars/all, so wiring kept
there silently beat operators' values. A vars plugin that runs only at the inventory stage is
merged into the inventory's own `all` group variables, which every group_vars/ and host_vars/ file
outranks; role defaults rank below it, so the wiring still beats a role's standalone default.
The values are Jinja templates, rendered only when a task uses them.
"""
import glob
import os

from ansible.errors import AnsibleError
from ansible.inventory.group import Group
from ansible.plugins.vars import BaseVarsPlugin

DOCUMENTATION = '''
    name: mastodon_wiring
    short_description: The toolkit's wiring as the lowest-ranked inventory variables of group all
    description:
      - Loads wiring.yml next to this file and returns it for the group all only.
    options:
      stage:
        description: Only at inventory load, so the values rank as the inventory's own all-group variables.
        type: str
        default: inventory
        choices: [inventory]
'''

HERE = os.path.dirname(os.path.abspath(__file__))
WIRING = os.path.join(HERE, 'wiring.yml')
ROLE_DEFAULTS = os.path.join(HERE, '..', '..', 'roles', '*', 'defaults', 'main.yml')


class VarsModule(BaseVarsPlugin):
    REQUIRES_ENABLED = True

    def get_vars(self, loader, path, entities, cache=True):
        super().get_vars(loader, path, entities)
        all_group = next((e for e in entities if isinstance(e, Group) and e.name == 'all'), None)
        if all_group is None:
            return {}
        # Ansible ranks vars plugins' values for `all` above the `all: vars:` of the inventory file
        # (hosts.yml): leave those names out, so an operator's value there wins too.
        inline = all_group.get_vars()
        return {name: value for name, value in self._merged(loader).items() if name not in inline}

    _data = None

    @classmethod
    def _merged(cls, loader):
        """Every role's defaults, then the wiring over them: built once per process (Ansible asks
        for the inventory's variables on every task of every host)."""
        if cls._data is None:
            data, owner = {}, {}
            for path in sorted(glob.glob(ROLE_DEFAULTS)):
                role = path.split(os.sep)[-3]
                for name, value in cls._load(loader, path).items():
                    if name in owner:
                        raise AnsibleError('%s is a default of both roles %s and %s: one name, one owner'
                                           % (name, owner[name], role))
                    owner[name] = role
                    data[name] = value
            data.update(cls._load(loader, WIRING))  # the wiring beats a role's default of the same name
            cls._data = data
        return cls._data

    @staticmethod
    def _load(loader, path):
        # As Ansible loads group_vars files: trusted as templates (ansible-core 2.19 renders only
        # trusted strings).
        return loader.load_from_file(path, cache='all', unsafe=True, trusted_as_template=True) or {}
