"""The `mitogen_linear` strategy, from the `mitogen` package on PyPI (requirements.txt), found here
so that ansible.cfg needs no path into a virtualenv. docs/speed.md says when to use it.

Mitogen's CPU pinning is turned off. On a control node with 2 or 3 CPUs it keeps CPU 0 for its
connection multiplexer and pins the controller, its workers and every process they start (ssh,
local commands and whatever those start in turn) to the other CPUs: on 2 CPUs, all of it to one.
Test hosts started from a task inherited that mask, so a whole test run used one of two cores."""
import ansible_mitogen.affinity
from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule  # noqa: F401

# The base Policy assigns nothing: every process keeps the CPUs it was started with.
ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()
