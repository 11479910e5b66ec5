"""Vars plugin: the toolkit's wiring (plugins/vars/wiring.yml), given to the `all` group at the
lowest inventory level, so that an operator's value for the same name wins wherever it is set:
inventories/<env>/group_vars/all, a group's file, or host_vars.

Ansible ranks playbook-level group_vars/all above the inventory's group_vars/all, so wiring kept
there silently beat operators' values. A vars plugin that runs only at the inventory stage is
merged into the inventory's own `all` group variables, which every group_vars/ and host_vars/ file
outranks; role defaults rank below it, so the wiring still beats a role's standalone default.
The values are Jinja templates, rendered only when a task uses them.
"""
import os

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

WIRING = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'wiring.yml')


class VarsModule(BaseVarsPlugin):
    REQUIRES_ENABLED = True

    def get_vars(self, loader, path, entities, cache=True):
        super().get_vars(loader, path, entities)
        if not any(isinstance(e, Group) and e.name == 'all' for e in entities):
            return {}
        # Loaded as Ansible loads group_vars files: trusted as templates (ansible-core 2.19 renders
        # only trusted strings).
        return dict(loader.load_from_file(WIRING, cache='all', unsafe=True, trusted_as_template=True))
