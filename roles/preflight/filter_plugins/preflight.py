"""The preflight's checks and the connection budget, as pure functions of plain data.

tasks/main.yml collects, for every inventory host, the settings the checks need (from hostvars,
which hold the roles' defaults where the inventory sets nothing) and hands them to `preflight_report`.
Nothing here reads Ansible state, so tests/preflight/test_filters.py calls it with dicts.

Input of preflight_report (every key optional):
  groups: {group: [hosts]}               Ansible's `groups`, "all" included
  hosts: {host: {                        one record per inventory host
      groups: [..],                      its group_names (informative)
      address: "10.0.0.5" | None,        wiring_private_address (None: could not be worked out)
      os: {distribution, version, arch} | None (no facts),
      settings: {name: value | None},    the variables below, None when unset or not renderable
      secrets: {name: {length, placeholder}},
      env: {state: absent|read|error|skipped, path, values: {LOCAL_DOMAIN, WEB_DOMAIN}, error}}}
  admin_connections: 10                  headroom for tootctl, rake and psql
  secrets_problem: ""                    the mastodon role's secrets check's message, if it failed
Output: {problems: [..], table: [lines], rows: [..], totals: {..}, release: [lines]}; `release` says
which floors of the chosen Mastodon release were checked (one line per mastodon_version).
"""

import base64
import importlib.util
import ipaddress
import os
import re

# The rules the wiring and the roles' own checks share (plugins/filter/topology.py).
_TOPOLOGY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "plugins", "filter", "topology.py")
_SPEC = importlib.util.spec_from_file_location("mastodon_toolkit_topology", _TOPOLOGY)
topology = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(topology)
is_dns_name = topology.is_dns_name
MIN_SECRET_LENGTH = topology.MIN_SECRET_LENGTH

MODEL_GROUPS = ["proxy", "web", "streaming", "sidekiq", "db_primary", "db_replica", "pgbouncer", "redis",
                "redis_replica", "object_storage", "monitoring", "backup"]
REQUIRED_GROUPS = {
    "proxy": "nginx in front of Puma and streaming",
    "web": "Puma",
    "streaming": "the streaming API",
    "sidekiq": "the background jobs",
    "db_primary": "the PostgreSQL primary",
    "redis": "Redis",
}
APP_GROUPS = ["web", "sidekiq", "streaming"]
DB_GROUPS = ["db_primary", "db_replica"]
MIN_CIPHER_PASS_LENGTH = topology.MIN_CIPHER_PASS_LENGTH
SUPPORTED_OS = {"Debian": ["12", "13"]}
SUPPORTED_ARCH = ["x86_64", "aarch64"]
# A Sidekiq process without `concurrency` (plugins/filter/topology.py, as the mastodon_sidekiq role) and without `count`.
SIDEKIQ_DEFAULT_CONCURRENCY = topology.SIDEKIQ_DEFAULT_CONCURRENCY
PLACEHOLDER = "CHANGE-ME"
SECRETS_FILE = "inventories/<env>/group_vars/all/secrets.yml"


def _hosts_text(hosts):
    return ", ".join(hosts)


def _int(value):
    """An int from an int or a string of digits; None for anything else (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    return None


def _bool(value):
    """Ansible's truthiness for a setting that may come out of a template as a string."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return bool(value)


class _Ctx:
    def __init__(self, data):
        self.data = data or {}
        self.groups = {name: list(hosts or []) for name, hosts in (self.data.get("groups") or {}).items()}
        self.hosts = self.data.get("hosts") or {}
        self.problems = []
        self.unknown = []  # hosts outside this run whose numbers the inventory alone does not give

    def in_run(self, host):
        return self.record(host).get("in_run", True)

    def skip_unknown(self, host, value, name=None):
        """True when `value` is unknown because the host is outside this run (a budget `name` is noted)."""
        if value is None and not self.in_run(host):
            if name and f"{host} {name}" not in self.unknown:
                self.unknown.append(f"{host} {name}")
            return True
        return False

    def group(self, name):
        return self.groups.get(name, [])

    def record(self, host):
        return self.hosts.get(host) or {}

    def setting(self, host, name, default=None):
        value = (self.record(host).get("settings") or {}).get(name)
        return default if value is None else value

    def in_groups(self, names):
        out = []
        for name in names:
            out += [h for h in self.group(name) if h not in out]
        return out


# --- 2. Inventory shape -------------------------------------------------------------------------

def check_groups(ctx):
    grouped = set(ctx.in_groups(MODEL_GROUPS))
    stray = [h for h in ctx.group("all") if h not in grouped]
    if stray:
        ctx.problems.append(
            f"Hosts in no group of the model: {_hosts_text(stray)}. The roles only know the groups "
            f"{', '.join(MODEL_GROUPS)} (children of `mastodon`): put each host in the group(s) of what it "
            f"runs, or remove it from the inventory.")
    for name, what in REQUIRED_GROUPS.items():
        if not ctx.group(name):
            ctx.problems.append(
                f"Group {name} has no hosts, but Mastodon needs {what}: add at least one host under "
                f"mastodon: children: {name}: hosts: in the inventory.")
    primaries = ctx.group("db_primary")
    if len(primaries) > 1:
        ctx.problems.append(
            f"Group db_primary has {len(primaries)} hosts ({_hosts_text(primaries)}): there is exactly one "
            f"PostgreSQL primary. Keep one host in db_primary and move the others to db_replica.")
    both = [h for h in primaries if h in ctx.group("db_replica")]
    if both:
        ctx.problems.append(
            f"{_hosts_text(both)} in both db_primary and db_replica: a PostgreSQL server is either the primary "
            f"or a replica. Remove it from one of the two groups.")
    check_redis_replica_group(ctx)
    check_backup_group(ctx)


def check_redis_replica_group(ctx):
    """Hosts that replicate the main Redis (a move to a new Redis host, playbooks/migrate.yml)."""
    replicas = ctx.group("redis_replica")
    both = [h for h in replicas if h in ctx.group("redis")]
    if both:
        ctx.problems.append(
            f"{_hosts_text(both)} in both redis and redis_replica: a Redis host either serves the app or replicates "
            f"the one that does. Remove it from one of the two groups.")
    if replicas and not ctx.group("redis"):
        ctx.problems.append(
            f"Group redis_replica ({_hosts_text(replicas)}) has no Redis to replicate: the group redis is empty.")


def check_backup_group(ctx):
    """The backup host: pgBackRest's one repository host, away from the databases it backs up."""
    backup = ctx.group("backup")
    if not backup:
        return
    if len(backup) > 1:
        ctx.problems.append(
            f"Group backup has {len(backup)} hosts ({_hosts_text(backup)}): pgBackRest keeps the backups in one "
            f"repository, on the one backup host. Keep one host in backup and take the others out of the group.")
    for host in backup:
        db = [name for name in DB_GROUPS if host in ctx.group(name)]
        if db:
            ctx.problems.append(
                f"The backup host {host} is also in {' and '.join(db)}: a backup on the database's own host is lost "
                f"with it. Use a separate machine for the backup group: put another host in backup and take "
                f"{host} out of it.")
    if not ctx.group("db_primary"):
        ctx.problems.append(
            f"Group backup ({_hosts_text(backup)}) has no PostgreSQL primary to back up: db_primary is empty, and "
            f"pgBackRest takes its backups from the primary. Put the primary in db_primary, or leave backup empty.")


# --- 1. Required settings -----------------------------------------------------------------------

def _required_secrets(ctx):
    """(variable, hosts that need it, minimum length, what it is, how to set it) for the inventory's shape."""
    app = ctx.in_groups(APP_GROUPS)
    random = "a random value (`openssl rand -hex 32`)"
    needs = [
        ("mastodon_db_password", ctx.in_groups(["db_primary"]) + [h for h in app if h not in ctx.group("db_primary")],
         1, "the database password of Mastodon's role", random),
        ("redis_app_password", ctx.in_groups(["redis", "redis_replica"] + APP_GROUPS), MIN_SECRET_LENGTH, "the password Mastodon uses for Redis", random),
        ("redis_admin_password", ctx.in_groups(["redis", "redis_replica"]), MIN_SECRET_LENGTH, "the password of Redis' admin user", random),
    ]
    if ctx.group("pgbouncer"):
        needs.append(("pgbouncer_stats_password", ctx.group("pgbouncer"), 1, "PgBouncer's stats user password", random))
    if ctx.group("monitoring") and ctx.group("redis"):
        needs.append(("redis_monitor_password", ctx.group("redis"), MIN_SECRET_LENGTH,
                      "the password of the Prometheus exporter's Redis user", random))
    if ctx.group("backup") and ctx.group("redis"):
        needs.append(("redis_backup_password", ctx.in_groups(["redis", "backup"]), MIN_SECRET_LENGTH,
                      "the password of the Redis user the backup host copies Redis with", random))
    if ctx.group("redis_replica"):
        needs.append(("redis_replication_password", ctx.in_groups(["redis", "redis_replica"]), MIN_SECRET_LENGTH,
                      "the password of the Redis user new Redis hosts replicate with", random))
    if ctx.group("db_replica"):
        needs.append(("postgres_replication_password", ctx.in_groups(DB_GROUPS), 1,
                      "the password replicas stream with", random))
    if ctx.group("backup"):
        needs.append(("pgbackrest_repo_cipher_pass", ctx.in_groups(DB_GROUPS + ["backup"]),
                      MIN_CIPHER_PASS_LENGTH,
                      "the key the pgBackRest repository of PostgreSQL's backups is encrypted with",
                      random + " and keep a copy of it off-site (no backup can be restored without it)"))
    storage = list(ctx.group("object_storage"))
    storage_users = storage + [h for h in app if h not in storage and _bool(ctx.setting(h, "mastodon_s3_enabled"))]
    if storage_users:
        # The backup host copies the media bucket with the same key.
        storage_users += [h for h in ctx.group("backup") if h not in storage_users]
        needs += [
            ("object_storage_access_key_id", storage_users, 1, "the object storage key id Mastodon writes media with",
             '"<account>:<user>" (letters, digits, "-") with Swift, or your S3 provider\'s key id'),
            ("object_storage_secret_access_key", storage_users, MIN_SECRET_LENGTH, "the object storage secret key",
             random + " with Swift, or your S3 provider's secret key"),
        ]
    swift = [h for h in storage if ctx.setting(h, "object_storage_backend", "swift") == "swift"]
    if swift:
        needs.append(("object_storage_swift_hash_path_suffix", swift, MIN_SECRET_LENGTH, "Swift's hash path suffix", random))
    return needs


def check_secrets(ctx):
    for name, hosts, min_length, what, how in _required_secrets(ctx):
        missing, placeholder, short = [], [], []
        for host in hosts:
            state = (ctx.record(host).get("secrets") or {}).get(name) or {}
            if state.get("unknown"):
                continue
            length = _int(state.get("length")) or 0
            if state.get("placeholder"):
                placeholder.append(host)
            elif length == 0:
                missing.append(host)
            elif length < min_length:
                short.append(host)
        fix = f"set it in {SECRETS_FILE} to {how}, and keep that file encrypted (ansible-vault encrypt)"
        if missing:
            ctx.problems.append(f"{name} ({what}) is not set for {_hosts_text(missing)}: {fix}.")
        if placeholder:
            ctx.problems.append(f"{name} ({what}) is still a {PLACEHOLDER} placeholder for "
                                f"{_hosts_text(placeholder)}: {fix}.")
        if short:
            ctx.problems.append(f"{name} ({what}) is shorter than {min_length} characters for "
                                f"{_hosts_text(short)}: {fix}.")


def _distinct(ctx, hosts, name):
    values = {}
    for host in hosts:
        value = ctx.setting(host, name)
        if not ctx.skip_unknown(host, value):
            values.setdefault(value, []).append(host)
    return values


def check_domains(ctx):
    hosts = ctx.in_groups(APP_GROUPS + ["proxy"])
    if not hosts:
        return
    local = _distinct(ctx, hosts, "mastodon_local_domain")
    if len(local) > 1:
        ctx.problems.append(
            "mastodon_local_domain differs between hosts ("
            + "; ".join(f"{value!r} on {_hosts_text(h)}" for value, h in local.items())
            + "): every host must use the same value. Set it once, in inventories/<env>/group_vars/all.")
    for value, on in local.items():
        if value in (None, "") or (isinstance(value, str) and value.startswith(PLACEHOLDER)):
            ctx.problems.append(
                f"mastodon_local_domain is not set (needed by {_hosts_text(on)}): set it to the domain of your "
                f"users' handles (@alice@example.com: example.com) in inventories/<env>/group_vars/all.")
        elif not is_dns_name(value):
            ctx.problems.append(
                f"mastodon_local_domain {value!r} is not a lowercase DNS name like example.com: fix it in "
                f"inventories/<env>/group_vars/all (it can never change after the first setup).")
    for host in hosts:
        web = ctx.setting(host, "mastodon_web_domain") or ctx.setting(host, "mastodon_local_domain")
        if web is not None and web != ctx.setting(host, "mastodon_local_domain") and not is_dns_name(web):
            ctx.problems.append(
                f"mastodon_web_domain {web!r} on {host} is not a lowercase DNS name like mastodon.example.com: "
                f"fix it, or remove it to serve the web interface on mastodon_local_domain.")
            break
    for host in hosts:
        media = ctx.setting(host, "mastodon_media_domain")
        if media in (None, ""):
            continue
        web = ctx.setting(host, "mastodon_web_domain") or ctx.setting(host, "mastodon_local_domain")
        if not is_dns_name(media):
            ctx.problems.append(
                f"mastodon_media_domain {media!r} is not a lowercase DNS name like files.example.com: fix it, "
                f"or remove it to serve media without a media domain.")
        elif media in (web, ctx.setting(host, "mastodon_local_domain")):
            ctx.problems.append(
                f"mastodon_media_domain {media!r} is the web domain: media must come from a name of their own "
                f"(user uploads must not run with the site's cookies), e.g. files.{web}. Change "
                f"mastodon_media_domain.")
        break


# --- 7. Operating systems -----------------------------------------------------------------------

def check_os(ctx):
    unsupported, unknown = [], []
    for host in ctx.group("all"):
        facts = ctx.record(host).get("os")
        if not facts or not facts.get("distribution"):
            unknown.append(host)
            continue
        dist, version, arch = facts.get("distribution"), str(facts.get("version")), facts.get("arch")
        if version not in SUPPORTED_OS.get(dist, []) or arch not in SUPPORTED_ARCH:
            unsupported.append(f"{host} ({dist} {version}, {arch})")
    if unsupported:
        ctx.problems.append(
            f"Unsupported operating system on {', '.join(unsupported)}: the toolkit supports Debian 12 (bookworm) "
            f"and 13 (trixie) on x86_64 or aarch64. Reinstall these hosts with one of them.")
    if unknown:
        ctx.problems.append(
            f"No facts for {_hosts_text(unknown)} (outside this run and not in the fact cache, or unreachable): "
            f"run without --limit, or make the hosts reachable, so their system can be checked.")
    # Debian 12's postgres exporter (0.11) lacks the replication, slot and WAL metrics the alerts
    # read, and its pgbouncer exporter is another program with other metrics and settings.
    if ctx.group("monitoring"):
        old = [h for h in ctx.in_groups(["db_primary", "db_replica", "pgbouncer"])
               if str((ctx.record(h).get("os") or {}).get("version")) == "12"]
        if old:
            ctx.problems.append(
                f"Monitoring needs Debian 13 on the database hosts: {_hosts_text(old)} run Debian 12, whose PostgreSQL "
                f"and PgBouncer exporters lack the replication, WAL and pool metrics the alerts read. Upgrade these "
                f"hosts to Debian 13, or leave the monitoring group empty.")


# --- 8. What the chosen Mastodon release needs ---------------------------------------------------
# Floors of each release series the toolkit deploys, read from upstream Mastodon's source
# (github.com/mastodon/mastodon) at the newest release of the series:
#   4.6: v4.6.5, commit 1440d55b139e39ec722c2a3db7f60b66cd889048 ("Bump version to v4.6.5")
#   4.5: v4.5.15, commit bf046ffab90464faff67f98a0fbd9fca3058e588 ("Bump version to v4.5.15")
# ruby: Gemfile:4 (`ruby '>= X', '< Y'`, bundler refuses any other Ruby); node: package.json:6 and
# streaming/package.json:6 (engines); node_recommended: .nvmrc:1 (24.17 / 24.10); postgresql:
# lib/tasks/db.rake:66 (aborts below 14.0; CHANGELOG.md "Remove support for PostgreSQL 13" in 4.5.0)
# and README.md:60; redis: README.md:61; ffmpeg: README.md:63 of 4.6 and its CHANGELOG.md:260
# (`fps_mode`, "FFmpeg >= 5.1 now required"); 4.5 states no FFmpeg floor.
RELEASES = {
    (4, 6): {"tag": "v4.6.5", "ruby": ((3, 3), (4, 1)), "node": 22, "node_recommended": 24,
             "postgresql": 14, "redis": (7, 0), "ffmpeg": (5, 1)},
    (4, 5): {"tag": "v4.5.15", "ruby": ((3, 2), (3, 5)), "node": 20, "node_recommended": 24,
             "postgresql": 14, "redis": (7, 0), "ffmpeg": None},
}
NEWEST_SERIES = max(RELEASES)
OLDEST_SERIES = min(RELEASES)
# What Debian ships, by major release (bookworm: nodejs 18, ruby 3.1, postgresql 15, redis 7.0,
# ffmpeg 5.1; trixie: nodejs 20, ruby 3.3, postgresql 17, redis 8.0, ffmpeg 7.1). PostgreSQL's
# column is the postgres role's own table (roles/postgres/vars/main.yml, __postgres_debian_versions).
DEBIAN_PROVIDES = {
    "12": {"nodejs": (18,), "ruby": (3, 1), "postgresql": (15,), "redis": (7, 0), "ffmpeg": (5, 1)},
    "13": {"nodejs": (20,), "ruby": (3, 3), "postgresql": (17,), "redis": (8, 0), "ffmpeg": (7, 1)},
}
_TAG = re.compile(r"^v(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?$")


def _v(numbers):
    return ".".join(str(n) for n in numbers)


def release_series(version):
    """(major, minor) of a release tag ('v4.6.5', 'v4.6.0-rc.1'); None for anything else (a commit,
    a branch), which is checked against the newest series known."""
    match = _TAG.match(str(version).strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def release_floors(version):
    """What mastodon_version needs: {series, label, supported, ruby, node, node_recommended,
    postgresql, redis, ffmpeg}. A series newer than the newest known gets the newest floors."""
    series = release_series(version)
    if series is None:
        label = (f"Mastodon at {version!r} (not a vX.Y.Z tag, so checked as the newest series, "
                 f"{_v(NEWEST_SERIES)})")
        return dict(RELEASES[NEWEST_SERIES], series=NEWEST_SERIES, label=label, supported=True)
    label = f"Mastodon {_v(series)} ({version})"
    if series < OLDEST_SERIES:
        return {"series": series, "label": label, "supported": False}
    known = series if series in RELEASES else max(s for s in RELEASES if s <= series)
    if known != series:
        label = f"Mastodon {_v(series)} ({version}, newer than the toolkit knows, so checked as {_v(known)})"
    return dict(RELEASES[known], series=series, label=label, supported=True)


def _version_tuple(value):
    """(3, 4) of '3.4.7', (16,) of 16 or '16'; None when it is no version."""
    if value is None or isinstance(value, bool):
        return None
    match = re.match(r"^\s*(\d+)(?:\.(\d+))?", str(value))
    return tuple(int(g) for g in match.groups() if g is not None) if match else None


def _debian(ctx, host):
    """What Debian ships on host, or None when its system is unknown or unsupported (check_os says so)."""
    facts = ctx.record(host).get("os") or {}
    if facts.get("distribution") != "Debian":
        return None, None
    version = str(facts.get("version"))
    return version, DEBIAN_PROVIDES.get(version)


def _release_problems(ctx, host, floors, found):
    """Node and Ruby of one app host against floors; problems go to found {text with {hosts}: [hosts]}."""
    def note(text):
        found.setdefault(text, []).append(host)

    osv, debian = _debian(ctx, host)
    label = floors["label"]
    node_source = ctx.setting(host, "mastodon_node_source")
    need = floors["node"]
    why = "package.json engines"
    if node_source == "debian" and debian and debian["nodejs"] < (need,):
        note(f"{label} needs Node >= {need} ({why}), but Debian {osv}'s nodejs is {_v(debian['nodejs'])} on "
             f"{{hosts}} (mastodon_node_source: debian): use mastodon_node_source: nodesource with "
             f"mastodon_node_major: {floors['node_recommended']} (upstream's .nvmrc).")
    elif node_source == "nodesource":
        major = _int(ctx.setting(host, "mastodon_node_major"))
        if major is not None and major < need:
            note(f"{label} needs Node >= {need} ({why}), but mastodon_node_major is {major} on {{hosts}}: set "
                 f"mastodon_node_major: {floors['node_recommended']} (upstream's .nvmrc).")
    low, high = floors["ruby"]
    wants = f"Ruby >= {_v(low)} and < {_v(high)} (Gemfile)"
    ruby_source = ctx.setting(host, "mastodon_ruby_source")
    if ruby_source == "system" and debian and not low <= debian["ruby"] < high:
        note(f"{label} needs {wants}, but Debian {osv}'s ruby is {_v(debian['ruby'])} on {{hosts}} "
             f"(mastodon_ruby_source: system): use mastodon_ruby_source: rbenv (it builds the Ruby the release's "
             f".ruby-version names).")
    elif ruby_source == "rbenv":
        # Empty: the checkout's .ruby-version, in range by construction; a pinned version is checked.
        pinned = _version_tuple(ctx.setting(host, "mastodon_ruby_version"))
        if pinned is not None and not low <= pinned[:2] < high:
            note(f"{label} needs {wants}, but mastodon_ruby_version is "
                 f"{ctx.setting(host, 'mastodon_ruby_version')} on {{hosts}}: set it to \"\" to build the Ruby "
                 f"the release's .ruby-version names.")
    ffmpeg = floors.get("ffmpeg")
    if ffmpeg and debian and debian["ffmpeg"] < ffmpeg:
        note(f"{label} needs FFmpeg >= {_v(ffmpeg)} (upstream's README), but Debian {osv}'s ffmpeg is "
             f"{_v(debian['ffmpeg'])} on {{hosts}}: run these hosts on Debian 13.")


def check_release(ctx):
    """The chosen release (mastodon_version) against what each app host's Ruby and Node, the
    primary's PostgreSQL and the Redis hosts give. Returns the floors applied, one line per version."""
    found, old, applied = {}, {}, {}
    newest = None
    for host in ctx.in_groups(APP_GROUPS):
        version = ctx.setting(host, "mastodon_version")
        if version is None:  # outside the run and not renderable there: the run that includes it checks it
            continue
        floors = release_floors(version)
        if not floors["supported"]:
            old.setdefault(str(version), []).append(host)
            continue
        applied.setdefault(str(version), floors)
        if newest is None or floors["series"] > newest["series"]:
            newest = floors
        _release_problems(ctx, host, floors, found)
    for version, hosts in old.items():
        ctx.problems.append(
            f"mastodon_version {version} on {_hosts_text(hosts)} is Mastodon {_v(release_series(version))}, "
            f"older than the toolkit supports (Mastodon {_v(OLDEST_SERIES)} and newer): set mastodon_version to a "
            f"{' or '.join('v' + _v(s) + '.x' for s in sorted(RELEASES))} release tag (newest known: "
            f"{RELEASES[NEWEST_SERIES]['tag']}).")
    if newest is not None:
        # The data tier serves every app host: held to the newest series any of them runs.
        label = newest["label"]
        for host in ctx.group("db_primary"):
            osv, debian = _debian(ctx, host)
            raw = ctx.setting(host, "postgres_version")
            chosen = _version_tuple(raw)
            have, what = (chosen, f"postgres_version is {raw}") if chosen else \
                ((debian["postgresql"], f"Debian {osv}'s PostgreSQL is {_v(debian['postgresql'])}") if debian
                 else (None, ""))
            if have is not None and have[0] < newest["postgresql"]:
                found.setdefault(
                    f"{label} needs PostgreSQL >= {newest['postgresql']} (lib/tasks/db.rake refuses older), but "
                    f"{what} on {{hosts}}: set postgres_version to {newest['postgresql']} or newer (empty: "
                    f"Debian's, 15 on Debian 12 and 17 on 13).", []).append(host)
        for host in ctx.group("redis"):
            osv, debian = _debian(ctx, host)
            if debian and debian["redis"] < newest["redis"]:
                found.setdefault(
                    f"{label} needs Redis >= {_v(newest['redis'])} (upstream's README), but Debian {osv}'s redis "
                    f"is {_v(debian['redis'])} on {{hosts}}: run these hosts on Debian 13.", []).append(host)
    for text, hosts in found.items():
        ctx.problems.append(text.replace("{hosts}", _hosts_text(hosts)))
    lines = []
    for version, f in applied.items():
        parts = [f"Ruby >= {_v(f['ruby'][0])} < {_v(f['ruby'][1])}", f"Node >= {f['node']}",
                 f"PostgreSQL >= {f['postgresql']}", f"Redis >= {_v(f['redis'])}"]
        if f.get("ffmpeg"):
            parts.append(f"FFmpeg >= {_v(f['ffmpeg'])}")
        lines.append(f"Release: {f['label']} needs {', '.join(parts)}.")
    return lines


# --- 5. TRUSTED_PROXY_IP ------------------------------------------------------------------------

def _covers(entries, address):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address in entries
    for entry in entries:
        try:
            if ip in ipaddress.ip_network(str(entry).strip(), strict=False):
                return True
        except ValueError:
            continue
    return False


def check_trusted_proxies(ctx):
    proxies = {}
    unknown = []
    for proxy in ctx.group("proxy"):
        address = ctx.record(proxy).get("address")
        if ctx.skip_unknown(proxy, address):
            continue
        if address:
            proxies[proxy] = address
        else:
            unknown.append(proxy)
    if unknown:
        ctx.problems.append(
            f"No private address for the proxy {_hosts_text(unknown)} (no private_address and no default IPv4 "
            f"fact): set private_address in its host entry.")
    for web in ctx.group("web"):
        trusted = ctx.setting(web, "mastodon_trusted_proxy_ips")
        if ctx.skip_unknown(web, trusted):
            continue
        trusted = trusted or []
        if isinstance(trusted, str):
            trusted = [t.strip() for t in trusted.split(",") if t.strip()]
        missing = [f"{proxy} ({address})" for proxy, address in proxies.items() if not _covers(trusted, address)]
        if missing:
            ctx.problems.append(
                f"TRUSTED_PROXY_IP on {web} (mastodon_trusted_proxy_ips: {list(trusted)}) leaves out the proxy "
                f"{', '.join(missing)}: Mastodon would take that proxy for the client of every request it passes "
                f"(rate limits and IP blocks would hit everyone). Remove your override of mastodon_trusted_proxy_ips "
                f"(the wiring lists every proxy's private_address) or add the missing address(es).")


# --- 5b. Private addresses ---------------------------------------------------------------------

def check_addresses(ctx):
    """With more than one host, each host's private address is what the others connect to and what
    their firewalls let in: it must be an IP address the host has, on a private network, unless the
    operator allows a public one for that host. One box talks over loopback and needs none."""
    if len(ctx.hosts) < 2:
        return
    for host in ctx.hosts:
        record = ctx.record(host)
        address = record.get("address")
        if address is None:
            continue
        what = (f"The private_address of {host}, {address}," if record.get("address_set")
                else f"{host} has no private_address, and its default IPv4 address {address}")
        try:
            ip = ipaddress.ip_address(str(address).strip("[]"))
        except ValueError:
            ctx.problems.append(
                f"{what} is not an IP address: the other hosts connect to it and the firewalls let them in by it. "
                f"Set private_address to the host's address on the private network.")
            continue
        addresses = record.get("addresses")
        if addresses is not None and ip.compressed not in [ipaddress.ip_address(a).compressed for a in addresses]:
            ctx.problems.append(
                f"{what} is not an address {host} has (it has {', '.join(addresses) or 'none'}): the services there "
                f"would fail to listen on it. Set private_address to one of the host's addresses.")
        elif not topology.is_private_address(ip.compressed) and not _bool(ctx.setting(host, "preflight_allow_public_address")):
            ctx.problems.append(
                f"{what} is a public address: PostgreSQL, PgBouncer, Redis, Puma and the object storage would listen "
                f"on it and the hosts would talk across the internet. Set private_address to the host's address on a "
                f"private network (RFC 1918, CGNAT 100.64.0.0/10 or IPv6 ULA fc00::/7), or, if the hosts have no "
                f"private network, set preflight_allow_public_address: true for {host} (and narrow firewall_ssh_sources).")


# --- 6. LOCAL_DOMAIN of an installed instance ---------------------------------------------------

def check_installed_domains(ctx):
    changed, unreadable = {}, []
    for host in ctx.in_groups(APP_GROUPS):
        env = ctx.record(host).get("env") or {}
        if env.get("state") == "error":
            unreadable.append(f"{host} ({env.get('path')}: {env.get('error')})")
            continue
        if env.get("state") != "read":
            continue
        values = env.get("values") or {}
        local = ctx.setting(host, "mastodon_local_domain")
        wanted = {"LOCAL_DOMAIN": local, "WEB_DOMAIN": ctx.setting(host, "mastodon_web_domain") or local}
        for key, want in wanted.items():
            have = values.get(key)
            if have and have != want:
                changed.setdefault((key, have, want), []).append(host)
    for (key, have, want), hosts in changed.items():
        var = "mastodon_local_domain" if key == "LOCAL_DOMAIN" else "mastodon_web_domain"
        ctx.problems.append(
            f"{_hosts_text(hosts)} already run Mastodon with {key}={have}, but {var} is now {want!r}: the domain "
            f"cannot change after the first setup (accounts, keys and every federated URL carry it). Set {var} "
            f"back to {have}; a new domain needs a new instance.")
    if unreadable:
        ctx.problems.append(
            f"Could not read .env.production on {', '.join(unreadable)}: fix the access (the check reads it with "
            f"become), so the domain of an installed instance can be compared.")


# --- 3. Connection budget -----------------------------------------------------------------------

def _not_a_number(ctx, host, name, raw, minimum=0):
    if raw is None:
        ctx.problems.append(
            f"{name} on {host} could not be worked out (its template fails, or the host has no facts): fix the "
            f"value in the inventory, or make sure the host's facts are gathered.")
    else:
        ctx.problems.append(f"{name} on {host} is {raw!r}, not a whole number >= {minimum}: set it to one (or "
                            f"remove it for the role's default).")


def _number(ctx, host, name, minimum=0):
    raw = ctx.setting(host, name)
    if ctx.skip_unknown(host, raw, name):
        return None
    value = _int(raw)
    if value is None or value < minimum:
        _not_a_number(ctx, host, name, raw, minimum)
        return None
    return value


def _pg_limits(ctx, host):
    """max_connections and the slots ordinary users cannot have (postgres_settings wins, as in the role)."""
    settings = ctx.setting(host, "postgres_settings", {}) or {}
    raw = settings.get("max_connections", ctx.setting(host, "postgres_max_connections"))
    reserved = topology.pg_reserved_slots(
        {k: _int(v) or 0 for k, v in settings.items() if k in ("superuser_reserved_connections", "reserved_connections")})
    if ctx.skip_unknown(host, raw, "postgres_max_connections"):
        return None, reserved
    max_conn = _int(raw)
    if max_conn is None:
        _not_a_number(ctx, host, "postgres_max_connections", raw, 1)
    return max_conn, reserved


def _client_rows(ctx):
    rows = []
    for host in ctx.group("web"):
        workers = _number(ctx, host, "mastodon_web_concurrency", minimum=1)
        threads = _number(ctx, host, "mastodon_web_max_threads", minimum=1)
        if workers is not None and threads is not None:
            rows.append({"host": host, "process": "puma (workers x threads)", "count": workers, "each": threads,
                         "connections": workers * threads})
    for host in ctx.group("sidekiq"):
        processes = ctx.setting(host, "mastodon_sidekiq_processes")
        if ctx.skip_unknown(host, processes, "mastodon_sidekiq_processes"):
            continue
        if not isinstance(processes, list) or not all(isinstance(p, dict) for p in processes):
            ctx.problems.append(f"mastodon_sidekiq_processes on {host} is not a list of processes: see "
                                f"roles/mastodon_sidekiq/defaults/main.yml for its form.")
            continue
        for p in processes:
            concurrency = _int(p.get("concurrency", SIDEKIQ_DEFAULT_CONCURRENCY))
            count = _int(p.get("count", 1))
            if concurrency is None or count is None:
                ctx.problems.append(f"Sidekiq process {p.get('name')!r} on {host}: concurrency and count must be "
                                    f"whole numbers.")
                continue
            rows.append({"host": host, "process": f"sidekiq {p.get('name')}", "count": count, "each": concurrency,
                         "connections": count * concurrency})
    for host in ctx.group("streaming"):
        ports = ctx.setting(host, "mastodon_streaming_ports")
        if ctx.skip_unknown(host, ports, "mastodon_streaming_ports"):
            continue
        pool = _number(ctx, host, "mastodon_streaming_db_pool", minimum=1)
        if not isinstance(ports, list):
            ctx.problems.append(f"mastodon_streaming_ports on {host} is not a list of ports.")
            continue
        if pool is not None:
            rows.append({"host": host, "process": "streaming :" + ",".join(str(p) for p in ports),
                         "count": len(ports), "each": pool, "connections": len(ports) * pool})
    return rows


def _pgbouncer_server(ctx, host):
    """Server connections one PgBouncer may open: per database and user pair, pool + reserve
    (capped by max_db_connections)."""
    settings = ctx.setting(host, "pgbouncer_settings", {}) or {}
    default_pool = _int(settings.get("default_pool_size", ctx.setting(host, "pgbouncer_default_pool_size")))
    reserve = _int(settings.get("reserve_pool_size", ctx.setting(host, "pgbouncer_reserve_pool_size")))
    max_db = _int(settings.get("max_db_connections", ctx.setting(host, "pgbouncer_max_db_connections", 0))) or 0
    if default_pool is None or reserve is None:
        if not ctx.skip_unknown(host, None if default_pool is None else reserve, "pgbouncer pools"):
            ctx.problems.append(f"pgbouncer_default_pool_size and pgbouncer_reserve_pool_size on {host} must be "
                                f"whole numbers: fix them (group_vars/pgbouncer.yml).")
        return None, ""
    databases = [{"pool_size": _int((db or {}).get("pool_size"))}
                 for db in ctx.setting(host, "pgbouncer_databases", []) or [{}]]
    users = max(len(ctx.setting(host, "pgbouncer_auth_users", []) or []), 1)
    total, shapes = topology.pgbouncer_server_connections(databases, default_pool, reserve, users, max_db)
    parts = [f"{pool}+{res}" + (f" x {users} users" if users > 1 else "") for pool, res in shapes]
    return total, " + ".join(f"({p})" for p in parts)


def budget(ctx):
    admin = _int(ctx.data.get("admin_connections"))
    admin = 10 if admin is None else admin
    rows = _client_rows(ctx)
    rows.append({"host": "(admin)", "process": "tootctl, rake, psql", "count": 1, "each": admin, "connections": admin})
    clients = sum(r["connections"] for r in rows)
    consumers = ("or lower the consumers in the table (Puma workers x threads, Sidekiq concurrency x count, "
                 "streaming ports x pool)")
    limits = []  # (what, needs, limit, how to fix)

    primary = (ctx.group("db_primary") or [None])[0]
    p_max, p_reserved = _pg_limits(ctx, primary) if primary else (None, 0)
    poolers = ctx.group("pgbouncer")
    if poolers:
        server_total, shapes = 0, []
        for host in poolers:
            settings = ctx.setting(host, "pgbouncer_settings", {}) or {}
            raw = settings.get("max_client_conn", ctx.setting(host, "pgbouncer_max_client_conn"))
            max_client = _int(raw)
            if ctx.skip_unknown(host, raw, "pgbouncer_max_client_conn"):
                pass
            elif max_client is None:
                _not_a_number(ctx, host, "pgbouncer_max_client_conn", raw, 1)
            else:
                limits.append((f"PgBouncer {host}: client connections (max_client_conn)", clients, max_client,
                               f"raise pgbouncer_max_client_conn to at least {clients} (group_vars/pgbouncer.yml) "
                               + consumers))
            server, shape = _pgbouncer_server(ctx, host)
            if server is not None:
                server_total += server
                shapes.append(shape)
        if primary and p_max is not None:
            pools = (f"{len(poolers)} x {shapes[0]}" if len(set(shapes)) == 1 else " + ".join(shapes)) if shapes else "?"
            needs = server_total + admin + p_reserved
            limits.append((f"PostgreSQL {primary} (primary): PgBouncer {pools} + {admin} admin + {p_reserved} reserved",
                           needs, p_max,
                           f"raise postgres_max_connections to at least {needs} (group_vars/db_primary.yml; replicas "
                           f"need at least the primary's value) or lower pgbouncer_default_pool_size and "
                           f"pgbouncer_reserve_pool_size (group_vars/pgbouncer.yml)"))
    elif primary and p_max is not None:
        needs = clients + p_reserved
        limits.append((f"PostgreSQL {primary} (primary, no PgBouncer): {clients} clients + {p_reserved} reserved",
                       needs, p_max,
                       f"raise postgres_max_connections to at least {needs} (group_vars/db_primary.yml), add a "
                       f"PgBouncer host, " + consumers))

    replicas = ctx.group("db_replica")
    if replicas:
        first = replicas[0]
        r_max, r_reserved = _pg_limits(ctx, first)
        if r_max is not None:
            needs = clients + r_reserved
            limits.append((f"PostgreSQL {first} (replica, Mastodon's reads): {clients} clients + {r_reserved} reserved",
                           needs, r_max,
                           f"Mastodon reads from the first replica directly, with as many connections as its pools: "
                           f"raise postgres_max_connections of the replicas to at least {needs} "
                           f"(group_vars/db_replica.yml) " + consumers))
        for host in replicas:
            h_max = _int((ctx.setting(host, "postgres_settings", {}) or {}).get(
                "max_connections", ctx.setting(host, "postgres_max_connections")))
            if h_max is not None and p_max is not None and h_max < p_max:
                ctx.problems.append(
                    f"postgres_max_connections on the replica {host} is {h_max}, lower than the primary's {p_max}: a "
                    f"hot standby refuses to start with less. Give the replicas at least the primary's value "
                    f"(group_vars/db_replica.yml).")

    for what, needs, limit, fix in limits:
        if needs > limit:
            ctx.problems.append(f"Connection budget: {what} = {needs}, over the limit of {limit}: {fix}.")
    return rows, clients, limits


def _table(ctx, rows, clients, limits):
    host_w = max([len(r["host"]) for r in rows] + [len("host")])
    proc_w = max([len(r["process"]) for r in rows] + [len("clients in total")])
    lines = ["Connection budget: database connections each consumer may hold (DB_POOL per process)",
             f"{'host':<{host_w}}  {'consumer':<{proc_w}}  {'procs':>5}  {'pool':>4}  {'conns':>6}"]
    for r in rows:
        lines.append(f"{r['host']:<{host_w}}  {r['process']:<{proc_w}}  {r['count']:>5}  {r['each']:>4}  "
                     f"{r['connections']:>6}")
    lines.append(f"{'':<{host_w}}  {'clients in total':<{proc_w}}  {'':>5}  {'':>4}  {clients:>6}")
    if limits:
        what_w = max(len(w) for w, _, _, _ in limits)
        lines.append(f"{'limit':<{what_w}}  {'needs':>6}  {'max':>6}  status")
        for what, needs, limit, _ in limits:
            status = "ok" if needs <= limit else f"OVER by {needs - limit}"
            lines.append(f"{what:<{what_w}}  {needs:>6}  {limit:>6}  {status}")
    outside = [h for h in ctx.group("all") if not ctx.in_run(h)]
    if outside:
        lines.append(f"Outside this run (checked from the inventory and cached facts only): {', '.join(outside)}.")
    if ctx.unknown:
        lines.append(f"Left out: {', '.join(ctx.unknown)} (hosts outside this run: these settings need the other "
                     f"hosts' context). Run without --limit for the whole budget.")
    lines.append("Replicas' WAL senders do not count against max_connections (max_wal_senders is its own limit "
                 "since PostgreSQL 12).")
    return [line.rstrip() for line in lines]


def _result(ctx, rows, clients, limits, release=()):
    return {"problems": ctx.problems, "table": _table(ctx, rows, clients, limits), "rows": rows,
            "release": list(release),
            "totals": {"clients": clients,
                       "limits": [{"what": w, "needs": n, "limit": m, "ok": n <= m} for w, n, m, _ in limits]}}


def preflight_budget(data):
    """Only the connection budget: {problems, table, rows, totals}."""
    ctx = _Ctx(data)
    return _result(ctx, *budget(ctx))


def check_sidekiq_fleet(ctx):
    """The mastodon_sidekiq role's fleet rules (plugins/filter/topology.py), as one problem."""
    hosts = [h for h in ctx.group("sidekiq") if not ctx.skip_unknown(h, ctx.setting(h, "mastodon_sidekiq_processes"))]
    if not hosts:
        return
    processes = {h: ctx.setting(h, "mastodon_sidekiq_processes") for h in hosts}
    if not all(isinstance(p, list) and all(isinstance(x, dict) for x in p) for p in processes.values()):
        return  # budget() names the host whose processes are not a list
    problems = topology.sidekiq_fleet_problems(processes, ctx.setting(hosts[0], "mastodon_sidekiq_known_queues", []))
    if problems:
        ctx.problems.append("Sidekiq processes in the inventory: " + " ".join(problems))


def preflight_report(data):
    """Every check, problems in a fixed order: {problems, table, rows, totals}."""
    ctx = _Ctx(data)
    check_groups(ctx)
    check_secrets(ctx)
    check_domains(ctx)
    check_os(ctx)
    release = check_release(ctx)
    check_trusted_proxies(ctx)
    check_addresses(ctx)
    check_installed_domains(ctx)
    check_sidekiq_fleet(ctx)
    if (ctx.data.get("secrets_problem") or "").strip():
        ctx.problems.append(ctx.data["secrets_problem"].strip())
    return _result(ctx, *budget(ctx), release=release)


def preflight_env_file(result, path="", names=("LOCAL_DOMAIN", "WEB_DOMAIN")):
    """What a slurp of .env.production (at `path`) says: {state: skipped|absent|read|error, path,
    values, error}. Only the entries in `names` are kept: the file holds secrets."""
    result = result or {}
    path = path or result.get("source") or ""
    if result.get("skipped"):
        return {"state": "skipped", "path": path, "values": {}, "error": ""}
    if result.get("unreachable"):
        return {"state": "error", "path": path, "values": {}, "error": "unreachable: " + str(result.get("msg", ""))}
    if "content" not in result:
        msg = str(result.get("msg", ""))
        if "not found" in msg.lower():
            return {"state": "absent", "path": path, "values": {}, "error": ""}
        return {"state": "error", "path": path, "values": {}, "error": msg.splitlines()[0] if msg else "unknown error"}
    text = base64.b64decode(result["content"]).decode("utf-8", "replace")
    values = {}
    for match in re.finditer(r'^([A-Z0-9_]+)="?(.*?)"?\s*$', text, re.MULTILINE):
        if match.group(1) in names:
            values[match.group(1)] = match.group(2)
    return {"state": "read", "path": path, "values": values, "error": ""}


class FilterModule:
    def filters(self):
        return {
            "preflight_report": preflight_report,
            "preflight_budget": preflight_budget,
            "preflight_env_file": preflight_env_file,
        }
