"""The `mitogen_linear` strategy, from the `mitogen` package on PyPI (requirements.txt), found here
so that ansible.cfg needs no path into a virtualenv. docs/speed.md says when to use it."""
from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule  # noqa: F401
