"""``docker stats``: what the kernel counts for a running container, in the shape of Docker's stats JSON.

Docker reads its numbers from the container's cgroup: ``memory.current`` / ``memory.usage_in_bytes``,
``cpu.stat`` / ``cpuacct.usage``, ``pids.current``, and the network namespace's interface counters. So do
we, with one difference a student may meet. On a machine with cgroup v1 controllers (like the one this
course is developed on) a container joins the ``memory`` and ``cpu`` hierarchies only when it has a limit
there (each hierarchy joined costs every start an RCU grace period: see ``cgroup.Cgroup.create``). For the
others, and for rootless and proot containers, which have no cgroup at all, the same quantities are added
up from their processes instead (``/proc/PID/statm``, ``stat``, ``io``), and ``summed`` says which.

The dictionary follows the Docker Engine API (``GET /containers/{id}/stats``): ``read``, ``cpu_stats``,
``precpu_stats``, ``memory_stats``, ``pids_stats``, ``networks``, ``blkio_stats``, so docker-py code reads it
as it reads Docker's. ``cpu_percent`` and ``memory_percent`` are the CLI's formulas.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .cgroup import PARENT, machine_layout
from .container import Container, cgroup_of, now_iso, processes

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
HEADERS = {"ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT",
           "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}  # (docker stats')
PROCESSES_SENTENCE = ("{what} of {names} {are} added up from their processes: no cgroup of theirs counts "
                      "{it} on this machine (cgroup v1 hierarchies are joined only for a limit; rootless and proot "
                      "containers have no cgroup).")


def _read(path: Path | str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _keyed(text: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat) as a dict."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


# ------------------------------------------------------------------------------------------ the machine


def system_cpu_ns() -> int:
    """All CPU time of the machine since boot (every field of /proc/stat's ``cpu`` line), in ns: Docker's
    ``system_cpu_usage``, the denominator of CPU %."""
    fields = _read("/proc/stat").split("\n", 1)[0].split()[1:]
    return sum(int(v) for v in fields) * TICK_NS


def online_cpus() -> int:
    return len(os.sched_getaffinity(0)) or 1


def machine_memory() -> int:
    """MemTotal: the LIMIT Docker shows for a container without a memory limit."""
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


# ------------------------------------------------------------------------------------------ the cgroup


def cgroup_memory(container: Container) -> dict[str, Any] | None:
    """``memory_stats`` from the container's memory cgroup, or None if it is in none."""
    cg = cgroup_of(container)
    if cg.version == "v2":
        d = cg.dirs["unified"]
        usage, limit = _int(_read(d / "memory.current").strip()), _read(d / "memory.max").strip()
        stat = _keyed(_read(d / "memory.stat"))
    else:
        d = cg.dirs.get("memory")
        if d is None:
            return None
        usage, limit = _int(_read(d / "memory.usage_in_bytes").strip()), _read(d / "memory.limit_in_bytes").strip()
        stat = _keyed(_read(d / "memory.stat"))
    if usage is None:
        return None
    # A limit of "max" (v2), or v1's huge number, means none: Docker then shows the machine's memory.
    machine = machine_memory()
    value = _int(limit)
    return {"usage": usage, "limit": value if value is not None and value < machine else machine, "stats": stat}


def cgroup_cpu_ns(container: Container) -> int | None:
    """CPU time of everything that ever ran in the container's cgroup, in ns (``cpu_usage.total_usage``)."""
    cg = cgroup_of(container)
    if cg.version == "v2":
        usec = _keyed(_read(cg.dirs["unified"] / "cpu.stat")).get("usage_usec")
        return None if usec is None else usec * 1000
    where = machine_layout().where("cpuacct")  # (often one hierarchy with cpu, "cpu,cpuacct"; not here)
    return None if where is None else _int(_read(Path(where, PARENT, cg.name, "cpuacct.usage")).strip())


def cgroup_pids(container: Container) -> dict[str, int] | None:
    cg = cgroup_of(container)
    d = cg.dirs["unified"] if cg.version == "v2" else cg.dirs.get("pids")
    if d is None or (current := _int(_read(d / "pids.current").strip())) is None:
        return None
    limit = _int(_read(d / "pids.max").strip())  # "max": no limit
    return {"current": current, **({"limit": limit} if limit is not None else {})}


# ----------------------------------------------------------------------------------- the processes


def process_memory(pids: list[int]) -> int:
    """Resident memory of *pids*, added up (statm's second field, in pages)."""
    total = 0
    for pid in pids:
        fields = _read(f"/proc/{pid}/statm").split()
        if len(fields) > 1:
            total += int(fields[1]) * PAGE
    return total


def process_cpu_ns(pids: list[int]) -> int:
    """utime + stime of *pids*, and of the children they have waited for (cutime + cstime), in ns."""
    total = 0
    for pid in pids:
        text = _read(f"/proc/{pid}/stat")
        fields = text[text.rfind(")") + 2:].split()  # after "(comm)", which may hold spaces
        if len(fields) > 14:
            total += sum(int(v) for v in fields[11:15]) * TICK_NS
    return total


def process_io(pids: list[int]) -> tuple[int, int]:
    """Bytes *pids* made the storage read and write (``/proc/PID/io``: ``read_bytes``, ``write_bytes``)."""
    read = write = 0
    for pid in pids:
        counters = {k: v for k, _, v in (line.partition(": ") for line in _read(f"/proc/{pid}/io").splitlines())}
        read += int(counters.get("read_bytes", 0))
        write += int(counters.get("write_bytes", 0))
    return read, write


def cgroup_io(container: Container) -> tuple[int, int] | None:
    """Bytes read and written, from cgroup v2's ``io.stat`` (when the io controller is enabled for it)."""
    cg = cgroup_of(container)
    if cg.version != "v2" or not (d := cg.dirs["unified"] / "io.stat").exists():
        return None
    read = write = 0
    for line in _read(d).splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key == "rbytes":
                read += int(value)
            elif key == "wbytes":
                write += int(value)
    return read, write


def networks(container: Container) -> dict[str, dict[str, int]]:
    """The counters of the container's interfaces (``/proc/PID/net/dev`` of its network namespace), without
    ``lo``; none when it shares the host's network (whose traffic is not its own)."""
    pid = container.state.get("pid")
    # (network none: only lo. And a runc container's recorded PID is runc's, in our network namespace then.)
    if not pid or container.spec.network in ("host", "none") or container.state.get("backend") == "proot":
        return {}
    out = {}
    for line in _read(f"/proc/{pid}/net/dev").splitlines()[2:]:
        name, _, counters = line.partition(":")
        values = [int(v) for v in counters.split()]
        if name.strip() != "lo" and len(values) >= 12:
            out[name.strip()] = {"rx_bytes": values[0], "rx_packets": values[1], "rx_errors": values[2],
                                 "rx_dropped": values[3], "tx_bytes": values[8], "tx_packets": values[9],
                                 "tx_errors": values[10], "tx_dropped": values[11]}
    return out


# ------------------------------------------------------------------------------------------ a sample


def sample(container: Container, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """One stats reading of a running container, in Docker's shape; *previous* (the last reading) becomes
    ``precpu_stats``, from which CPU % is worked out. ``summed`` lists the CLI's columns whose figures were
    added up from the processes, for want of a cgroup counting them (see above)."""
    running = container.reload().status == "running"
    pids = processes(container) if running else []
    memory = cgroup_memory(container) if running else None
    cpu_ns = cgroup_cpu_ns(container) if running else None
    io = cgroup_io(container) if running else None
    summed = [column for column, counted in (("MEM USAGE", memory), ("CPU %", cpu_ns), ("BLOCK I/O", io))
              if running and counted is None]
    if memory is None:
        memory = {"usage": process_memory(pids), "limit": machine_memory(), "stats": {}} if running else {}
    if cpu_ns is None:
        cpu_ns = process_cpu_ns(pids)
    read, write = io if io is not None else process_io(pids)
    pids_stats = (cgroup_pids(container) if running else None) or ({"current": len(pids)} if running else {})
    cpu = {"cpu_usage": {"total_usage": cpu_ns}, "system_cpu_usage": system_cpu_ns(), "online_cpus": online_cpus()}
    return {
        "read": now_iso(), "preread": previous["read"] if previous else "0001-01-01T00:00:00Z",
        "id": container.id, "name": "/" + container.name,
        "cpu_stats": cpu if running else {},
        "precpu_stats": previous["cpu_stats"] if previous else {},
        "memory_stats": memory, "pids_stats": pids_stats,
        "networks": networks(container) if running else {},
        "blkio_stats": {"io_service_bytes_recursive": [{"op": "read", "value": read}, {"op": "write", "value": write}]}
        if running else {},
        "summed": summed,
    }


def cpu_percent(stats: dict[str, Any]) -> float:
    """The CLI's CPU %: the container's share of all CPU time between two readings, times the CPUs (so one
    busy CPU is 100 %)."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    if not cpu or not pre:
        return 0.0
    used = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
    elapsed = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
    if used <= 0 or elapsed <= 0:  # (a process that ended takes its counted time along: never below 0)
        return 0.0
    return used / elapsed * cpu["online_cpus"] * 100.0


def memory_used(stats: dict[str, Any]) -> int:
    """The CLI's MEM USAGE: usage without the page cache the kernel can drop at once (v2 ``inactive_file``,
    v1 ``total_inactive_file``), as Docker shows it."""
    memory = stats.get("memory_stats") or {}
    usage = memory.get("usage", 0)
    stat = memory.get("stats") or {}
    cache = stat.get("inactive_file", stat.get("total_inactive_file", 0))
    return usage - cache if cache < usage else usage


def memory_percent(stats: dict[str, Any]) -> float:
    limit = (stats.get("memory_stats") or {}).get("limit") or 0
    return memory_used(stats) / limit * 100.0 if limit else 0.0


def row(stats: dict[str, Any], container: Container, no_trunc: bool = False) -> dict[str, str]:
    """One line of ``docker stats``' table, formatted as Docker's CLI formats it."""
    from .units import bytes_size, human_size

    memory = stats.get("memory_stats") or {}
    net = stats.get("networks") or {}
    rx, tx = sum(n["rx_bytes"] for n in net.values()), sum(n["tx_bytes"] for n in net.values())
    io = {e["op"]: e["value"] for e in (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []}
    running = bool(stats.get("cpu_stats"))
    return {
        "ID": container.id if no_trunc else container.short_id, "Name": container.name, "Container": container.name,
        "CPUPerc": f"{cpu_percent(stats):.2f}%" if running else "--",
        "MemUsage": f"{bytes_size(memory_used(stats))} / {bytes_size(memory.get('limit', 0))}"
        if running else "-- / --",
        "MemPerc": f"{memory_percent(stats):.2f}%" if running else "--",
        "NetIO": f"{human_size(rx)} / {human_size(tx)}" if running else "-- / --",
        "BlockIO": f"{human_size(io.get('read', 0))} / {human_size(io.get('write', 0))}" if running else "-- / --",
        "PIDs": str((stats.get("pids_stats") or {}).get("current", 0)) if running else "--",
    }


def summed_from_processes(readings: list[dict[str, Any]]) -> list[str]:
    """``PROCESSES_SENTENCE`` for the readings whose columns were added up from their processes: one
    sentence for each set of columns, naming the containers."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for r in readings:
        if r.get("summed"):
            groups.setdefault(tuple(r["summed"]), []).append(r["name"].lstrip("/"))
    return [PROCESSES_SENTENCE.format(what=", ".join(what), names=", ".join(names),
                                      are="is" if len(what) == 1 else "are", it="it" if len(what) == 1 else "them")
            for what, names in groups.items()]

