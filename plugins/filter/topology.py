"""The toolkit's topology rules, in one tested place: how addresses become URLs and backends (IPv6
in brackets), which backends the edge sends to, where media are read, the name and secret rules
that preflight and the roles' own checks share, Sidekiq's processes, the arithmetic of the
database connection budget (preflight reports it), and which hosts may reach which service port
(the firewall).

Plain functions over plain data, exposed as filters (ansible.cfg and Molecule's config put
plugins/filter on the filter path) and imported by roles/preflight/filter_plugins/preflight.py.
Unit tests: tests/topology/test_topology.py.
"""
import ipaddress
import re

# Threads of a Sidekiq process that sets no `concurrency` (upstream's default is 5 too).
SIDEKIQ_DEFAULT_CONCURRENCY = 5
# PostgreSQL's default superuser_reserved_connections; reserved_connections (16+) defaults to 0.
PG_SUPERUSER_RESERVED = 3
# Shortest random secret accepted (passwords of Redis, object storage keys, Swift's hash suffix).
MIN_SECRET_LENGTH = 16
# Shortest key accepted for pgBackRest's repository (it encrypts every backup): `openssl rand -hex 32`.
MIN_CIPHER_PASS_LENGTH = 32
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def is_dns_name(name):
    """A lowercase DNS name of at least two labels (example.com), as LOCAL_DOMAIN, WEB_DOMAIN, the
    media domain and nginx's server names must be: Mastodon builds URLs and account handles from it."""
    if not isinstance(name, str) or len(name) > 253:
        return False
    labels = name.split(".")
    return len(labels) >= 2 and all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def is_bucket_name(name):
    """An S3 bucket name the toolkit accepts: 3 to 63 lowercase letters, digits, dots and hyphens."""
    return isinstance(name, str) and bool(_BUCKET.match(name))


def is_secret(value, minimum=MIN_SECRET_LENGTH):
    """A string secret of at least `minimum` characters (YAML may read an all-digit one as a number)."""
    return isinstance(value, (str, int)) and not isinstance(value, bool) and len(str(value)) >= minimum


def is_cipher_pass(value):
    """A key for pgBackRest's repository: a secret of at least MIN_CIPHER_PASS_LENGTH characters."""
    return is_secret(value, MIN_CIPHER_PASS_LENGTH)


def host_address(address):
    """An address as it goes into a URL or host:port: IPv6 in brackets, names and IPv4 unchanged."""
    text = str(address).strip("[]")
    try:
        if ipaddress.ip_address(text).version == 6:
            return "[%s]" % text
    except ValueError:
        pass
    return text


def host_port(address, port):
    return "%s:%s" % (host_address(address), port)


def url(scheme, address, port=None, path=""):
    """scheme://address[:port]path, IPv6 in brackets."""
    return "%s://%s%s" % (scheme, host_port(address, port) if port else host_address(address), path)


def probe_address(bind):
    """Where a process bound to `bind` answers: loopback for a wildcard bind, else the bind itself."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(str(bind).strip("[]"), str(bind).strip("[]"))


def health_checkers(bind, edge_hosts, host):
    """Hosts that must see a restarted process healthy before the next host restarts: the edge hosts
    when it listens on an address they reach, else the host itself (loopback or wildcard bind)."""
    try:
        # A wildcard bind is probed on loopback (probe_address).
        only_local = ipaddress.ip_address(probe_address(bind)).is_loopback
    except ValueError:
        only_local = False
    return [host] if only_local or not edge_hosts else list(edge_hosts)


def duration_seconds(value):
    """An nginx time ("10s", "1m", "500ms", "30") in whole seconds, at least 1."""
    match = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h|d)?\s*", str(value))
    if not match:
        raise ValueError("not an nginx time: %r" % (value,))
    number, unit = int(match.group(1)), match.group(2) or "s"
    seconds = number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return max(1, int(round(seconds)))


def backends(hosts, hostvars, port_var, address_var="wiring_private_address"):
    """host:port for every port of every host, in inventory order: the edge's upstreams. A host's
    ports are its `port_var` (a number or a list; the role's default is among its hostvars)."""
    out = []
    for host in hosts or []:
        ports = hostvars[host][port_var]
        for port in ports if isinstance(ports, (list, tuple)) else [ports]:
            out.append(host_port(hostvars[host][address_var], port))
    return out


def s3_endpoint(external, external_endpoint, swift_address, swift_port):
    """Where Mastodon talks S3: the external provider's endpoint, or the first Swift host's s3api."""
    if external:
        return (external_endpoint or "").rstrip("/")
    return url("http", swift_address, swift_port) if swift_address else ""


def s3_public_url(endpoint, bucket, external=False, external_public_url="", access_key_id=""):
    """Where anyone reads an object anonymously (the media proxy fetches from here): the provider's
    public URL (else endpoint/bucket), or Swift's own path for the account that owns the bucket
    (AUTH_<account>, the part of the key id before the colon)."""
    if not endpoint and not external:
        return ""
    if external:
        return ((external_public_url or "") or "%s/%s" % (endpoint, bucket)).rstrip("/")
    return "%s/v1/AUTH_%s/%s" % (endpoint, str(access_key_id or "").split(":")[0], bucket)


def sidekiq_instances(processes, default_concurrency=SIDEKIQ_DEFAULT_CONCURRENCY):
    """One systemd instance per process and count: <name>-<n> for n in 1..count."""
    out = []
    for p in processes or []:
        for n in range(1, int(p.get("count", 1)) + 1):
            out.append({"instance": "%s-%d" % (p["name"], n), "queues": p["queues"],
                        "concurrency": p.get("concurrency", default_concurrency)})
    return out


def sidekiq_fleet_problems(processes_by_host, known_queues):
    """Every problem of the Sidekiq processes of all hosts together ({host: [process, ...]}): the
    scheduler in other than exactly one process, unknown queues, and queues nobody serves. A queue
    may carry a weight ("default,8")."""
    fleet = [{"host": host, "name": p.get("name"), "count": int(p.get("count", 1)),
              "queues": [str(q).split(",")[0] for q in p.get("queues", [])]}
             for host, processes in processes_by_host.items() for p in processes or []]
    schedulers = [p for p in fleet if "scheduler" in p["queues"]]
    count = sum(p["count"] for p in schedulers)
    served = []
    for p in fleet:
        served += [q for q in p["queues"] if q not in served]
    unknown = [q for q in served if q not in known_queues]
    missing = [q for q in known_queues if q not in served]
    problems = []
    if count != 1:
        problems.append(
            "The scheduler queue must run in exactly one process across all hosts, but %d do (%s): it enqueues "
            "periodic jobs, and two schedulers run each of them twice. Give exactly one process (with count 1) "
            "the scheduler queue." % (count, ", ".join("%s:%s" % (p["host"], p["name"]) for p in schedulers)))
    if unknown:
        problems.append("Unknown queue(s) %s: Mastodon has %s." % (", ".join(unknown), ", ".join(known_queues)))
    if missing:
        problems.append("No process serves %s: jobs on these queues would pile up forever. Add the queue(s) "
                        "to a process." % ", ".join(missing))
    return problems


def sidekiq_fleet_problems_of(hosts, hostvars, default_processes, known_queues):
    """sidekiq_fleet_problems for inventory hosts, each with its own mastodon_sidekiq_processes or the default."""
    return sidekiq_fleet_problems(
        {h: hostvars[h].get("mastodon_sidekiq_processes", default_processes) for h in hosts or []}, known_queues)


def pg_reserved_slots(settings):
    """Connection slots ordinary users cannot have, from a server's settings (as postgresql.conf):
    superuser_reserved_connections (default 3) + reserved_connections (default 0)."""
    settings = settings or {}
    return (int(settings.get("superuser_reserved_connections", PG_SUPERUSER_RESERVED))
            + int(settings.get("reserved_connections", 0)))


def pgbouncer_server_connections(databases, default_pool, reserve, users, max_db_connections=0):
    """Server connections one PgBouncer may open to PostgreSQL: for each database (its own
    pool_size, else default_pool) and each auth user, pool + reserve, capped per database by
    max_db_connections (0: no cap). Returns (total, [(pool, reserve), ...] per database)."""
    users = max(int(users), 1)
    total, shapes = 0, []
    for db in databases or [{}]:
        pool = int((db or {}).get("pool_size") or default_pool)
        per_db = (pool + int(reserve)) * users
        if max_db_connections:
            per_db = min(per_db, int(max_db_connections))
        total += per_db
        shapes.append((pool, int(reserve)))
    return total, shapes


LOOPBACK = "127.0.0.1"
# Networks a private address may be on: RFC 1918, CGNAT (RFC 6598) and IPv6 unique local (RFC 4193).
PRIVATE_NETWORKS = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                       "100.64.0.0/10", "fc00::/7")]


def _ip(address):
    """An IP address, IPv6 with or without brackets (ValueError for anything else)."""
    return ipaddress.ip_address(str(address).strip("[]"))


def is_private_address(address):
    """Whether an address is on a private network (PRIVATE_NETWORKS); names and loopback are not."""
    try:
        ip = _ip(address)
    except ValueError:
        return False
    return any(ip in net for net in PRIVATE_NETWORKS if net.version == ip.version)


def serves_only_itself(host, clients):
    """Whether every client of a service on `host` runs on `host` itself (a one-box layout): the
    service then listens on loopback only, and its clients connect to 127.0.0.1."""
    return bool(host) and all(c == host for c in clients or [])


def reach(host, clients, hostvars, address_var="wiring_private_address"):
    """Where the clients of a service on `host` connect: 127.0.0.1 when they all run on that host,
    else its private address ("" when there is no such host)."""
    if not host:
        return ""
    return LOOPBACK if serves_only_itself(host, clients) else hostvars[host][address_var]


def _ips(addresses, what):
    out = []
    for a in addresses:
        try:
            ip = _ip(a)
        except ValueError:
            raise ValueError("%s: %r is not an IP address (private_address must be one)" % (what, a))
        if ip.compressed not in out:
            out.append(ip.compressed)
    return out


def firewall_services(host, groups, hostvars, address_var="wiring_private_address"):
    """The service ports `host` serves to other hosts, each open only to the hosts that the wiring
    connects to it: [{name, ports, sources}], sources being their private addresses (the host
    itself reaches its own services over loopback or its own address, which the firewall accepts)."""
    def group(name):
        return list(groups.get(name) or [])
    app = list(dict.fromkeys(group("web") + group("sidekiq") + group("streaming")))
    db = group("db_primary") + group("db_replica")
    mine = hostvars[host]
    # (service, its ports on this host, the hosts that connect to it), as plugins/vars/wiring.yml wires them.
    wired = []
    if host in db:
        # The pooler, the app (migrations go straight to the primary, reads to the replica) and the
        # replicas (streaming replication, pg_basebackup).
        wired.append(("postgresql", [mine["postgres_port"]], group("pgbouncer") + app + db))
    if host in group("pgbouncer"):
        wired.append(("pgbouncer", [mine["pgbouncer_port"]], app))
    backup = group("backup")
    if host in group("redis"):
        wired.append(("redis", [i["port"] for i in mine["redis_instances"]], app))
        main_ports = [i["port"] for i in mine["redis_instances"] if i.get("profile") == "main"]
        # The backup host copies the main instances' data (redis-cli --rdb).
        wired.append(("redis backup", main_ports, backup))
        # New Redis hosts replicate the main instances before a move (playbooks/migrate.yml).
        wired.append(("redis replication", main_ports, group("redis_replica")))
    if backup and host in db:
        # pgBackRest's TLS server: the repository host takes backups and restores through it.
        wired.append(("pgbackrest", [mine["pgbackrest_port"]], backup))
    if host in backup and db:
        # The repository host's TLS server: the database hosts push WAL and fetch backups.
        wired.append(("pgbackrest repository", [mine["pgbackrest_port"]], db))
    if host in group("web"):
        wired.append(("puma", [mine["mastodon_web_port"]], group("proxy")))
    if host in group("streaming"):
        wired.append(("streaming", mine["mastodon_streaming_ports"], group("proxy")))
    if host in group("object_storage") and mine.get("object_storage_backend", "swift") == "swift":
        # The app reads and writes media; the media proxy on the edge fetches them; the backup
        # host copies them.
        wired.append(("object storage", [mine["object_storage_swift_port"]], app + group("proxy") + backup))
    if group("monitoring"):
        # Metrics endpoints (exporters, Mastodon's, streaming's /metrics), for Prometheus.
        wired.append(("metrics", [e["port"] for e in metrics_endpoints(host, groups, hostvars, address_var)], group("monitoring")))
    out = []
    for name, ports, clients in wired:
        others = [c for c in dict.fromkeys(clients) if c != host]
        sources = _ips([hostvars[c][address_var] for c in others], "%s's %s clients" % (host, name))
        if sources and ports:
            out.append({"name": name, "ports": sorted({int(p) for p in ports}), "sources": sources})
    if host in group("monitoring") and mine.get("monitoring_web_sources"):
        # Prometheus's and Alertmanager's web pages, for the operator's own networks.
        out.append({"name": "monitoring web", "sources": list(mine["monitoring_web_sources"]),
                    "ports": sorted({int(mine["monitoring_prometheus_port"]), int(mine["monitoring_alertmanager_port"])})})
    return out


def split_families(networks):
    """Addresses and networks (CIDR) as {"ipv4": [...], "ipv6": [...]}, for nftables' ip and ip6 sets."""
    out = {"ipv4": [], "ipv6": []}
    for n in networks or []:
        net = ipaddress.ip_network(str(n), strict=False)
        text = str(net.network_address) if net.num_addresses == 1 else str(net)
        family = "ipv4" if net.version == 4 else "ipv6"
        if text not in out[family]:
            out[family].append(text)
    return out


def address_in(address, networks):
    """Whether an address lies in any of the networks (CIDR or single addresses)."""
    ip = _ip(address)
    return any(ip in ipaddress.ip_network(str(n), strict=False) for n in networks or [])


def firewall_openings(ssh_port, ssh_sources, public_ports, services):
    """Every opening of a host's firewall: SSH from its sources, the public ports from anywhere,
    then the services ([{name, ports, sources, protocol}]) as given."""
    out = [{"name": "ssh", "ports": [int(ssh_port)], "sources": list(ssh_sources)}]
    if public_ports:
        out.append({"name": "public", "ports": [int(p) for p in public_ports], "sources": ["0.0.0.0/0", "::/0"]})
    return out + list(services or [])


def bad_networks(networks):
    """The entries that are not an address or a CIDR network."""
    bad = []
    for n in networks or []:
        try:
            ipaddress.ip_network(str(n), strict=False)
        except ValueError:
            bad.append(n)
    return bad


def nft_accept_rules(services):
    """nftables input rules for [{name, ports, sources, protocol}]: one accept rule per address
    family that has sources, its name as the comment."""
    lines = []
    for s in services or []:
        ports = sorted({int(p) for p in s["ports"]})
        dport = str(ports[0]) if len(ports) == 1 else "{ %s }" % ", ".join(str(p) for p in ports)
        families = split_families(s["sources"])
        for family, match in (("ipv4", "ip"), ("ipv6", "ip6")):
            if families[family]:
                lines.append('%s saddr { %s } %s dport %s accept comment "%s"' % (
                    match, ", ".join(families[family]), s.get("protocol") or "tcp", dport,
                    re.sub(r"[^A-Za-z0-9 ._-]", "", s["name"])))
    return lines


def metrics_endpoints(host, groups, hostvars, address_var="wiring_private_address"):
    """The metrics endpoints `host` serves to Prometheus, by what it runs: [{job, port, address,
    labels}]. Exporters listen on loopback when the monitoring hosts are this host alone, else on
    the private address (Mastodon's exporter on 0.0.0.0, its web and Sidekiq send to 127.0.0.1);
    streaming serves /metrics where it serves the proxy."""
    def group(name):
        return list(groups.get(name) or [])
    mine = hostvars[host]
    local = serves_only_itself(host, group("monitoring"))
    address = LOOPBACK if local else mine[address_var]
    out = [("node", mine["exporters_node_port"], {})]
    if host in group("db_primary") or host in group("db_replica"):
        role = "primary" if host in group("db_primary") else "replica"
        out.append(("postgres", mine["exporters_postgres_port"], {"role": role}))
    if host in group("pgbouncer"):
        out.append(("pgbouncer", mine["exporters_pgbouncer_port"], {}))
    if host in group("redis"):
        for index, instance in enumerate(mine["redis_instances"]):
            out.append(("redis", int(mine["exporters_redis_first_port"]) + index, {"redis_instance": instance["name"]}))
    if host in group("backup"):
        out.append(("pgbackrest", mine["exporters_pgbackrest_port"], {}))
    if host in group("proxy"):
        # nginx's connections (stub_status), and its responses by status class (mtail).
        out += [("nginx", mine["exporters_nginx_port"], {}), ("edge", mine["exporters_edge_log_port"], {})]
    if (host in group("web") or host in group("sidekiq")) and mine["mastodon_prometheus_exporter_enabled"]:
        serves = "+".join(g for g in ("web", "sidekiq") if host in group(g))
        out.append(("mastodon", mine["mastodon_prometheus_exporter_port"], {"serves": serves}))
    endpoints = [{"job": job, "port": int(port), "address": address, "labels": labels} for job, port, labels in out]
    if host in group("streaming"):
        endpoints += [{"job": "streaming", "port": int(port), "address": mine["wiring_proxied_address"], "labels": {}}
                      for port in mine["mastodon_streaming_ports"]]
    return endpoints


def scrape_jobs(hosts, groups, hostvars, address_var="wiring_private_address"):
    """Prometheus scrape jobs for every metrics endpoint of `hosts`: [{job_name, static_configs}],
    one static config per endpoint, labelled with its inventory host (and role, instance name)."""
    jobs = {}
    for host in hosts or []:
        for e in metrics_endpoints(host, groups, hostvars, address_var):
            labels = dict(e["labels"], host=host)
            jobs.setdefault(e["job"], []).append({"targets": [host_port(e["address"], e["port"])], "labels": labels})
    return [{"job_name": job, "static_configs": configs} for job, configs in jobs.items()]


def pgbackrest_pg_hosts(groups, hostvars, address_var="wiring_private_address"):
    """The database hosts as the repository host's pgBackRest reaches them, pg1 first: [{host,
    address, path, port}]; the primary is pg1, each replica follows (backups come from the first
    replica when there is one: backup-standby). `path` is each host's data directory, which the
    pgbackrest role reads from the running cluster (pgbackrest_pg_path)."""
    hosts = list(groups.get("db_primary") or []) + list(groups.get("db_replica") or [])
    return [{"host": h, "address": hostvars[h][address_var], "path": hostvars[h].get("pgbackrest_pg_path", ""),
             "port": int(hostvars[h]["postgres_port"])} for h in hosts]


def backup_redis_instances(groups, hostvars, address_var="wiring_private_address"):
    """The Redis instances the backup host copies: [{name, address, port}] of the first Redis
    host's main-profile instances (the cache holds nothing to restore)."""
    hosts = list(groups.get("redis") or [])
    if not hosts:
        return []
    mine = hostvars[hosts[0]]
    return [{"name": i["name"], "address": mine[address_var], "port": int(i["port"])}
            for i in mine["redis_instances"] if i.get("profile") == "main"]


def addresses(hosts, hostvars, address_var="wiring_private_address"):
    """[{host, address}] of each host, by its private address."""
    return [{"host": h, "address": hostvars[h][address_var]} for h in hosts or []]


def units_no_longer_served(host, groups):
    """The systemd units (globs) a host stops and disables once the inventory no longer puts it in
    the groups that ran them (playbooks/migrate.yml, the old host): the services and their
    exporters, which Prometheus no longer scrapes there and the firewall no longer opens."""
    def within(*names):
        return any(host in (groups.get(n) or []) for n in names)
    units = []
    if not within("web", "sidekiq", "streaming"):
        units.append("mastodon-*")  # mastodon-prometheus-exporter.service among them
    if not within("redis", "redis_replica"):
        units += ["redis@*", "prometheus-redis-exporter*"]
    if not within("pgbouncer"):
        units += ["pgbouncer.service", "prometheus-pgbouncer-exporter.service"]
    if not within("proxy"):
        units += ["nginx.service", "prometheus-nginx-exporter.service", "mtail.service"]
    return units


def switchover_plan(states, new_primary):
    """What playbooks/switchover.yml does, from each database host's state (roles/postgres
    tasks/state.yml: primary, standby, primary-stopped, standby-stopped or none) and the host the
    inventory now makes primary. Returns:
      promote   the new primary is a standby and must be promoted
      fence     hosts running as primary that stop and become standbys first (a planned switchover:
                the new primary replays their last WAL before it is promoted)
      failover  promote with no primary running: whatever it had not received is lost
      rewind    hosts that rejoin with pg_rewind: every former primary, every stopped host, and in
                a failover every standby too (it may have replayed more than the new primary)
      errors    why it must not go on; nothing has changed
    """
    state = states.get(new_primary)
    others = sorted(h for h in states if h != new_primary)
    running = [h for h in others if states[h] == "primary"]
    errors = []
    if state not in ("primary", "standby"):
        errors.append("%s must run PostgreSQL as a standby (or already as the primary) to be promoted, but it is %s; start it first"
                      % (new_primary, state or "not a database host"))
    if state == "standby" and len(running) > 1:
        errors.append("%s all run as primaries: which one holds the newest data is not clear; stop all but that one"
                      % ", ".join(running))
    promote = state == "standby"
    failover = promote and not running
    rewind = [h for h in others
              if states[h] in ("primary", "primary-stopped", "standby-stopped")
              or (failover and states[h] == "standby")]
    return {"promote": promote, "fence": running if promote else [], "failover": failover,
            "rewind": rewind, "errors": errors}


class FilterModule:
    def filters(self):
        return {
            "topology_is_dns_name": is_dns_name,
            "topology_is_bucket_name": is_bucket_name,
            "topology_is_secret": is_secret,
            "topology_is_cipher_pass": is_cipher_pass,
            "topology_host_address": host_address,
            "topology_backends": backends,
            "topology_probe_address": probe_address,
            "topology_health_checkers": health_checkers,
            "topology_duration_seconds": duration_seconds,
            "topology_s3_endpoint": s3_endpoint,
            "topology_s3_public_url": s3_public_url,
            "topology_sidekiq_instances": sidekiq_instances,
            "topology_sidekiq_fleet_problems": sidekiq_fleet_problems_of,
            "topology_firewall_services": firewall_services,
            "topology_serves_only_itself": serves_only_itself,
            "topology_is_private_address": is_private_address,
            "topology_reach": reach,
            "topology_split_families": split_families,
            "topology_address_in": address_in,
            "topology_bad_networks": bad_networks,
            "topology_firewall_openings": firewall_openings,
            "topology_nft_accept_rules": nft_accept_rules,
            "topology_metrics_endpoints": metrics_endpoints,
            "topology_scrape_jobs": scrape_jobs,
            "topology_addresses": addresses,
            "topology_pgbackrest_pg_hosts": pgbackrest_pg_hosts,
            "topology_backup_redis_instances": backup_redis_instances,
            "topology_switchover_plan": switchover_plan,
            "topology_units_no_longer_served": units_no_longer_served,
        }
