"""Whether a role's apt task has work to do, from one dpkg-query read per host.

site.yml reads every host's package states once (`dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n'`,
registered as `site_dpkg_status`). A role's apt task then runs only when something it wants is
missing: `when: [...] | any_package_missing(site_dpkg_status | default(none))`. Each apt call opens
apt's cache, about a second of CPU per host, and a run with nothing to install made dozens of them.
Without a read (a role played on its own, another playbook) apt decides, as before.
"""


def installed_packages(dpkg_status):
    """The names dpkg reports as installed ("ii", no error flag) in dpkg-query's output."""
    names = set()
    for line in (dpkg_status or '').splitlines():
        abbrev, _, name = line.partition(' ')
        # db:Status-Abbrev is three characters: wanted, status, error (a space when none).
        if abbrev[:2] == 'ii' and len(abbrev) == 2 and name.strip():
            names.add(name.strip())
    return names


def any_package_missing(wanted, dpkg_probe):
    """Whether apt has work for `wanted`: some name is not installed. `dpkg_probe` is the registered
    dpkg-query result (its stdout) or None. A name with a version or a release (pkg=1.0, pkg/trixie)
    is never known to be installed, nor is anything without a probe: apt decides, as before."""
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    if not dpkg_probe or 'stdout' not in dpkg_probe:
        return True
    installed = installed_packages(dpkg_probe['stdout'])
    return any(name not in installed for name in wanted)


class FilterModule:
    def filters(self):
        return {
            "any_package_missing": any_package_missing,
        }
