"""A throw-away, single-node SLURM cluster for integration tests.

``start_cluster(workdir)`` brings up a private ``munged``, ``slurmctld`` and ``slurmd`` on this
machine and returns a :class:`Cluster`; ``Cluster.stop()`` brings it down again.  Everything the
cluster writes lives under ``workdir`` (``slurm.conf``, state, spool, logs), except the MUNGE key,
socket and pid file, which live in a short private directory under the system temp dir that
belongs to user ``munge`` (munged refuses to use files it does not own, and the munge user must
be able to reach them, which a pytest ``tmp_path`` does not allow).

Design notes:

* Nothing under ``/etc`` is written.  The SLURM client tools (``sbatch``, ``squeue``, ``sinfo``,
  ``srun``, ``scontrol``) find the private configuration through the ``SLURM_CONF`` environment
  variable: pass :attr:`Cluster.env` to every subprocess that talks to the cluster, Snakemake
  included.  ``sbatch --export=ALL`` (what the Snakemake SLURM executor uses) carries that
  environment into the jobs, so the job steps find the same cluster and the same Python.
* The daemons use free TCP ports on 127.0.0.1 and their own MUNGE socket, so they cannot clash
  with a system SLURM or munged, or with another test's cluster.
* Each daemon runs in the foreground as a direct child of this process, in its own session.  Its
  PID is recorded at start, and :meth:`Cluster.stop` signals exactly those PIDs plus processes
  that stayed in the daemons' own sessions (job step daemons), never anything found by name.
* No accounting daemon: ``sacct`` does not work.  The Snakemake executor must therefore be told
  to poll with ``squeue`` (see :func:`snakemake_slurm_flags`), and ``MinJobAge`` is kept long
  enough for ``squeue`` to still show finished jobs when Snakemake polls.
* No memory or CPU enforcement (``TaskPlugin=task/none``, ``ProctrackType=proctrack/linuxproc``,
  no cgroups): ``mem_mb`` only has to fit the node's ``RealMemory`` at submission.  Time limits
  are enforced by ``slurmctld`` (granularity one minute, checked about every 30 s).

Any failure raises :class:`ClusterUnavailable` with a readable reason, meant to become a
``pytest.skip`` in the test.  Starting needs root (package installation, running munged as user
``munge``).

Used by ``tests/test_slurm.py`` (its ``slurm`` fixture and ``slurm_snakemake``).
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "APT_PACKAGES",
    "Cluster",
    "ClusterUnavailable",
    "PLUGIN_VERSION_VERIFIED",
    "snakemake_slurm_flags",
    "start_cluster",
]

#: Debian packages that provide the daemons and the client tools.
APT_PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
#: Commands that must exist after installation (daemons live in /usr/sbin).
REQUIRED_COMMANDS = ("munged", "slurmctld", "slurmd", "sinfo", "squeue", "sbatch", "srun", "scontrol")
#: Client tools given a wrapper that pins SLURM_CONF (see :func:`_write_client_wrappers`).
WRAPPED_CLIENTS = ("srun", "sbatch", "squeue", "sinfo", "scontrol", "scancel")
#: The snakemake-executor-plugin-slurm version the flags below were checked against.
PLUGIN_VERSION_VERIFIED = "2.8.0"

#: Seconds the Snakemake SLURM executor waits before its first status check.  Between checks
#: it adds 10 s each time no job finished, up to 180 s.
INIT_SECONDS_BEFORE_STATUS_CHECKS = 2
#: How long (s) slurmctld keeps finished jobs visible to ``squeue``.  It must exceed the
#: executor's longest poll interval (180 s), and it must be at least three times
#: INIT_SECONDS_BEFORE_STATUS_CHECKS, or the executor falls back to the broken ``sacct``.
MIN_JOB_AGE = 300

#: ``slurmd -C`` fields copied into the node line of slurm.conf.
_NODE_FIELDS = (
    "NodeName",
    "CPUs",
    "Boards",
    "SocketsPerBoard",
    "CoresPerSocket",
    "ThreadsPerCore",
    "RealMemory",
)
_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin")
# Unix socket paths are limited to 108 bytes; slurmstepd puts sockets named like
# "<node>_<jobid>.<step>" into the spool directory.
_MAX_SPOOL_PATH = 70


class ClusterUnavailable(RuntimeError):
    """The SLURM test cluster could not be installed or started.

    ``reason`` is a one-line explanation suitable for ``pytest.skip``.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Daemon:
    name: str
    proc: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Cluster:
    """A running private SLURM cluster; see the module docstring.

    Use it as a context manager, or call :meth:`stop` (idempotent) when done.
    """

    workdir: Path
    conf_path: Path
    partition: str
    node_name: str
    #: Environment for every subprocess talking to the cluster (SLURM_CONF, PATH, ...).
    env: dict[str, str]
    #: Logs of the daemons, by daemon name (munged, slurmctld, slurmd).
    logs: dict[str, Path]
    #: Node's memory and CPUs as configured (``mem_mb`` and ``threads`` must fit them).
    real_memory_mb: int
    cpus: int
    _daemons: list[_Daemon] = field(default_factory=list, repr=False)
    _runtime_dir: Path | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)
    _owner_pid: int = field(default_factory=os.getpid, repr=False)

    # -- information ---------------------------------------------------------------------------

    @property
    def pids(self) -> dict[str, int]:
        """PIDs of the daemons started by :func:`start_cluster`, by daemon name."""
        return {d.name: d.pid for d in self._daemons}

    @property
    def running(self) -> bool:
        return not self._stopped and all(d.proc.poll() is None for d in self._daemons)

    def run(self, *args: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        """Run a SLURM client command (``squeue``, ``sinfo``...) against this cluster."""
        return subprocess.run(
            list(args), env=self.env, capture_output=True, text=True, timeout=timeout, check=check
        )

    def squeue(self) -> str:
        """All jobs slurmctld still knows of: ``JOBID|NAME|STATE|REASON`` lines."""
        return self.run("squeue", "--all", "--states=all", "--noheader", "--format=%i|%j|%T|%r").stdout

    def snakemake_flags(self, **kwargs) -> list[str]:
        """:func:`snakemake_slurm_flags` for this cluster's partition (same keyword arguments)."""
        return snakemake_slurm_flags(self.partition, **kwargs)

    # -- shutdown ------------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel this cluster's jobs, then stop exactly the daemons started for it.

        SIGTERM first, SIGKILL for whatever is still alive after ``timeout`` seconds.  Job step
        daemons or job processes that survive ``scancel`` are found by this cluster's private
        ``SLURM_CONF`` in their environment (see :func:`_leftovers`), never by name.  Calling
        it again does nothing.
        """
        if self._stopped:
            return
        self._stopped = True
        if self.env and self._daemons and all(d.proc.poll() is None for d in self._daemons):
            try:  # Let SLURM end the jobs cleanly while slurmctld and slurmd still run.
                self.run("scancel", "--quiet", f"--partition={self.partition}", timeout=10, check=False)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and _active_jobs(self):
                    time.sleep(0.5)
            except (OSError, subprocess.SubprocessError):
                pass
        sessions = {d.pid for d in self._daemons}
        # Reverse start order: slurmd, slurmctld, munged.
        _terminate([d.proc for d in reversed(self._daemons)], timeout)
        _kill_leftovers(sessions, self.conf_path, timeout)
        if self._runtime_dir is not None:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __del__(self):  # Last resort; never leave daemons behind a crashed test session.
        if os.getpid() != self._owner_pid:  # A forked child's copy must not stop the parent's.
            return
        try:
            self.stop(timeout=2)
        except Exception:
            pass


def snakemake_slurm_flags(
    partition: str,
    *,
    jobs: int = 2,
    latency_wait: int = 10,
    init_seconds: int = INIT_SECONDS_BEFORE_STATUS_CHECKS,
    logdir: str | os.PathLike | None = None,
    keep_logs: bool = True,
) -> list[str]:
    """Snakemake command-line flags that make ``--executor slurm`` work on this test cluster.

    Checked against snakemake 9.27.1 and snakemake-executor-plugin-slurm 2.8.0:

    * ``--slurm-status-command squeue``: there is no accounting daemon, so ``sacct`` fails; the
      plugin would otherwise pick ``sacct`` because it is on PATH, and then wait forever.
    * ``--slurm-init-seconds-before-status-checks``: first poll after ``init_seconds`` (default
      40 s).  The plugin falls back to ``sacct`` anyway unless slurm.conf's MinJobAge is at least
      three times this value, which :func:`start_cluster` guarantees for the default.
    * ``--slurm-no-account``: no accounting, so there are no accounts.  Plugin 2.8.0 accepts the
      flag but never reads it: it still tries once per run to guess an account with ``sacct``,
      logs "Unable to guess SLURM account. Trying to proceed without." and submits without
      ``-A``.  Kept for plugin versions that honour it.
    * ``--default-resources slurm_partition=...``: submit to this cluster's partition.
    * ``--latency-wait``: seconds to wait for output files after a job ends (shared filesystem,
      so a few seconds are plenty; Snakemake's default is 5).
    * ``--slurm-keep-successful-logs``: keep ``.snakemake/slurm_logs/**.log`` of successful jobs
      too (proof that jobs ran through SLURM); drop with ``keep_logs=False``.
    """
    if init_seconds < 1 or MIN_JOB_AGE < 3 * init_seconds:
        raise ValueError(f"init_seconds must be in 1..{MIN_JOB_AGE // 3}")
    flags = [
        "--executor",
        "slurm",
        "--jobs",
        str(jobs),
        "--latency-wait",
        str(latency_wait),
        "--default-resources",
        f"slurm_partition={partition}",
        "--slurm-no-account",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        str(init_seconds),
    ]
    if keep_logs:
        flags.append("--slurm-keep-successful-logs")
    if logdir is not None:
        flags += ["--slurm-logdir", str(logdir)]
    return flags


# -- start-up -----------------------------------------------------------------------------------


def start_cluster(
    workdir: Path,
    *,
    partition: str = "serflow",
    timeout: float = 60.0,
    install: bool = True,
) -> Cluster:
    """Install SLURM if needed and start a private one-node cluster under ``workdir``.

    Returns when ``sinfo`` reports the node idle.  Raises :class:`ClusterUnavailable` on any
    failure (after stopping whatever it had started).
    """
    if os.name != "posix" or not sys.platform.startswith("linux"):
        raise ClusterUnavailable("the SLURM test cluster needs Linux")
    if os.geteuid() != 0:
        raise ClusterUnavailable("the SLURM test cluster needs root (munged runs as user munge)")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", partition):
        raise ValueError(f"bad partition name {partition!r}")
    _ensure_installed(install)
    try:
        munge_user = pwd.getpwnam("munge")
    except KeyError:
        raise ClusterUnavailable("user 'munge' does not exist (is the munge package installed?)") from None

    workdir = Path(workdir).resolve()
    dirs = {name: workdir / name for name in ("state", "log", "run")}
    cluster = Cluster(
        workdir=workdir,
        conf_path=workdir / "slurm.conf",
        partition=partition,
        node_name="",
        env={},
        logs={"slurmctld": dirs["log"] / "slurmctld.log", "slurmd": dirs["log"] / "slurmd.log"},
        real_memory_mb=0,
        cpus=0,
    )
    try:
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        # Short private directory for MUNGE's key/socket (and the spool if workdir is too deep).
        cluster._runtime_dir = runtime_dir = Path(tempfile.mkdtemp(prefix="slurmtest-"))
        os.chmod(runtime_dir, 0o755)
        munge_dir = runtime_dir / "munge"
        munge_dir.mkdir()
        os.chmod(munge_dir, 0o755)  # munged insists that everyone can reach its socket.
        os.chown(munge_dir, munge_user.pw_uid, munge_user.pw_gid)
        cluster.logs["munged"] = munge_dir / "munged.log"
        spool = workdir / "spool"
        if len(str(spool)) > _MAX_SPOOL_PATH:
            spool = runtime_dir / "spool"
        spool.mkdir(exist_ok=True)
        _start(cluster, munge_dir, munge_user, spool, dirs, timeout)
    except OSError as exc:
        cluster.stop(timeout=5)
        raise ClusterUnavailable(f"cannot set up the SLURM test cluster: {exc}") from exc
    except BaseException:
        cluster.stop(timeout=5)
        raise
    return cluster


def _start(cluster: Cluster, munge_dir: Path, munge_user, spool: Path, dirs: dict, timeout: float):
    deadline = time.monotonic() + timeout

    # 1. MUNGE with a fresh key, its own socket, as user munge.
    key = munge_dir / "munge.key"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "wb") as fh:
        fh.write(os.urandom(1024))
    os.chown(key, munge_user.pw_uid, munge_user.pw_gid)
    munge_socket = munge_dir / "munge.socket"
    munged_cmd = [
        _which("munged"),
        "--foreground",
        f"--socket={munge_socket}",
        f"--key-file={key}",
        f"--pid-file={munge_dir / 'munged.pid'}",
        f"--seed-file={munge_dir / 'munged.seed'}",
        f"--log-file={cluster.logs['munged']}",
        "--num-threads=2",
    ]
    _spawn(cluster, "munged", munged_cmd, user=munge_user)
    _wait_for(cluster, "munged", lambda: munge_socket.is_socket(), deadline)

    # 2. slurm.conf describing this machine as one node.
    node = _probe_node()
    cluster.node_name = node["NodeName"]
    cluster.cpus = int(node.get("CPUs", "1"))
    cluster.real_memory_mb = int(node.get("RealMemory", "1"))
    ctld_port, slurmd_port = _free_ports(2)
    cluster.conf_path.write_text(
        _slurm_conf(
            node=node,
            partition=cluster.partition,
            ctld_port=ctld_port,
            slurmd_port=slurmd_port,
            munge_socket=munge_socket,
            state=dirs["state"],
            spool=spool,
            log=dirs["log"],
            run=dirs["run"],
        )
    )
    bin_dir = _write_client_wrappers(cluster.workdir / "bin", cluster.conf_path)
    cluster.env = _client_env(cluster.conf_path, bin_dir)

    # 3. The controller, then the node daemon.
    conf = str(cluster.conf_path)
    _spawn(cluster, "slurmctld", [_which("slurmctld"), "-D", "-c", "-f", conf])
    _wait_for(
        cluster,
        "slurmctld",
        lambda: "is UP" in cluster.run("scontrol", "ping", timeout=10, check=False).stdout,
        deadline,
    )
    _spawn(cluster, "slurmd", [_which("slurmd"), "-D", "-f", conf, "-N", cluster.node_name])

    # 4. Wait for the node to register and become idle.
    def node_idle() -> bool:
        out = cluster.run(
            "sinfo", "--noheader", "--Node", f"--partition={cluster.partition}", "--format=%t", check=False
        ).stdout.split()
        if out and out[0] in ("drain", "drng", "down", "down*", "drain*"):
            cluster.run("scontrol", "update", f"NodeName={cluster.node_name}", "State=RESUME", check=False)
        return out == ["idle"]

    _wait_for(cluster, "slurmd", node_idle, deadline, what="node to become idle in sinfo")


def _slurm_conf(*, node, partition, ctld_port, slurmd_port, munge_socket, state, spool, log, run) -> str:
    node_line = " ".join(f"{k}={v}" for k, v in node.items() if k in _NODE_FIELDS)
    return f"""\
# Private single-node test cluster, written by tests/slurm_cluster.py. Do not edit.
ClusterName=slurmtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
StateSaveLocation={state}
SlurmdSpoolDir={spool}
SlurmctldPidFile={run}/slurmctld.pid
SlurmdPidFile={run}/slurmd.pid
SlurmctldLogFile={log}/slurmctld.log
SlurmdLogFile={log}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# Reject impossible requests (e.g. more CPUs than the node has) at submission instead of
# leaving them PENDING forever, which would hang Snakemake.
EnforcePartLimits=ALL
# squeue is the executor's only status source: keep finished jobs visible long enough.
MinJobAge={MIN_JOB_AGE}
# Quick kills when a job exceeds its time limit (SIGTERM, then SIGKILL after KillWait).
KillWait=5
OverTimeLimit=0
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
{node_line} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName={partition} Nodes={node["NodeName"]} Default=YES MaxTime=INFINITE State=UP
"""


# -- helpers ------------------------------------------------------------------------------------


def _which(cmd: str) -> str:
    found = shutil.which(cmd) or shutil.which(cmd, path=os.pathsep.join(_SBIN_DIRS))
    if not found:
        raise ClusterUnavailable(f"{cmd} not found")
    return found


def _missing_commands() -> list[str]:
    return [
        c
        for c in REQUIRED_COMMANDS
        if not (shutil.which(c) or shutil.which(c, path=os.pathsep.join(_SBIN_DIRS)))
    ]


def _ensure_installed(install: bool) -> None:
    """Install the Debian packages when a daemon or client tool is missing."""
    missing = _missing_commands()
    if not missing:
        return
    if not install:
        raise ClusterUnavailable(f"SLURM not installed (missing: {', '.join(missing)})")
    if not shutil.which("apt-get"):
        raise ClusterUnavailable(f"missing {', '.join(missing)} and no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install_cmd = ["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES]

    def apt(cmd: list[str]) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterUnavailable(f"{' '.join(cmd)} failed: {exc}") from exc

    result = apt(install_cmd)
    if result.returncode != 0:  # Stale or missing package lists: update, then retry once.
        update = apt(["apt-get", "update"])
        if update.returncode != 0:
            raise ClusterUnavailable(f"apt-get update failed: {_last_line(update.stderr)}")
        result = apt(install_cmd)
        if result.returncode != 0:
            raise ClusterUnavailable(f"apt-get install failed: {_last_line(result.stderr)}")
    missing = _missing_commands()
    if missing:
        raise ClusterUnavailable(f"still missing after apt-get install: {', '.join(missing)}")


def _probe_node() -> dict[str, str]:
    """This machine as SLURM sees it: ``slurmd -C``'s NodeName/CPUs/RealMemory... fields."""
    try:
        out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClusterUnavailable(f"slurmd -C failed: {exc}") from exc
    fields = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0] if out else ""))
    if "NodeName" not in fields or "RealMemory" not in fields:
        raise ClusterUnavailable(f"cannot parse `slurmd -C` output: {out.strip()!r}")
    return fields


def _write_client_wrappers(bin_dir: Path, conf_path: Path) -> Path:
    """Write ``srun``, ``sbatch``... wrappers that always use this cluster's slurm.conf.

    Needed because snakemake-executor-plugin-slurm-jobstep (0.6.1) removes every SLURM_*
    variable except the job's identity before it calls ``srun`` inside the job; a bare
    ``srun`` then looks for /etc/slurm/slurm.conf and fails with "DNS SRV lookup failed".
    The wrappers come first on :attr:`Cluster.env`'s PATH, which ``sbatch --export=ALL``
    carries into the jobs.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in WRAPPED_CLIENTS:
        real = shutil.which(tool, path=os.pathsep.join(_SBIN_DIRS)) or _which(tool)
        wrapper = bin_dir / tool
        wrapper.write_text(
            "#!/bin/sh\n"
            "# Written by tests/slurm_cluster.py: always talk to the private test cluster.\n"
            f"SLURM_CONF={shlex.quote(str(conf_path))}\n"
            "export SLURM_CONF\n"
            f'exec {shlex.quote(real)} "$@"\n'
        )
        wrapper.chmod(0o755)
    return bin_dir


def _client_env(conf_path: Path, bin_dir: Path) -> dict[str, str]:
    """Environment for SLURM clients and Snakemake.

    SLURM_CONF names our slurm.conf; PATH starts with the client wrappers, then the directory
    of the running Python (the venv's ``bin``, so jobs find the same ``python`` and
    ``snakemake``).  Inherited SLURM_* variables (e.g. when the tests themselves run inside a
    SLURM job) would point the clients at another cluster or job, so they are dropped.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["SLURM_CONF"] = str(conf_path)
    path = [
        str(bin_dir),
        str(Path(sys.executable).parent),
        *env.get("PATH", "").split(os.pathsep),
        *_SBIN_DIRS,
    ]
    env["PATH"] = os.pathsep.join(dict.fromkeys(p for p in path if p))
    return env


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _spawn(cluster: Cluster, name: str, cmd: list[str], user=None) -> None:
    """Start one daemon in the foreground, in its own session, and record it."""
    out = cluster.workdir / "log" / f"{name}.stdout"
    kwargs = {}
    if user is not None:
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    try:
        with open(out, "ab") as fh:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=cluster.env or None,
                **kwargs,
            )
    except OSError as exc:
        raise ClusterUnavailable(f"cannot start {name}: {exc}") from exc
    cluster._daemons.append(_Daemon(name, proc, out))


def _wait_for(cluster: Cluster, name: str, ready, deadline: float, what: str | None = None) -> None:
    """Poll ``ready()`` until true; fail early if any recorded daemon died."""
    while True:
        for d in cluster._daemons:
            if d.proc.poll() is not None:
                raise ClusterUnavailable(
                    f"{d.name} exited with code {d.proc.returncode}: {_log_tail(cluster, d.name)}"
                )
        try:
            if ready():
                return
        except (OSError, subprocess.SubprocessError):
            pass
        if time.monotonic() > deadline:
            raise ClusterUnavailable(f"timed out waiting for {what or name}: {_log_tail(cluster, name)}")
        time.sleep(0.25)


def _active_jobs(cluster: Cluster) -> bool:
    out = cluster.run(
        "squeue",
        "--noheader",
        "--states=PENDING,RUNNING,COMPLETING,SUSPENDED",
        "--format=%i",
        timeout=10,
        check=False,
    ).stdout
    return bool(out.strip())


def _terminate(procs: list[subprocess.Popen], timeout: float) -> None:
    """SIGTERM the given children, SIGKILL those still alive after ``timeout``; reap all."""
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _leftovers(sessions: set[int], conf: Path) -> list[int]:
    """Processes that can only belong to this cluster, found without matching names.

    Either still in one of the daemons' own sessions, or a job step daemon or job process of
    this cluster: ``slurmstepd`` calls setsid(), but it inherits slurmd's environment, whose
    ``SLURM_CONF`` names this cluster's private slurm.conf, and job processes carry it together
    with ``SLURM_JOB_ID``.  (The caller's own processes also carry SLURM_CONF, but neither a
    daemon's session nor SLURM_JOB_ID, so they are never touched.)
    """
    marker = f"SLURM_CONF={conf}".encode()
    me = os.getpid()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            stat = (entry / "stat").read_text()
            # Fields after the ")" closing the command name: state ppid pgrp session ...
            fields = stat.rsplit(")", 1)[-1].split()
            if fields[0] == "Z":  # Already dead, waiting for its parent to reap it.
                continue
            if int(fields[3]) in sessions:
                pids.append(int(entry.name))
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if marker in environ and (
            stat.startswith(f"{entry.name} (slurmstepd)")
            or any(v.startswith(b"SLURM_JOB_ID=") for v in environ)
        ):
            pids.append(int(entry.name))
    return pids


def _kill_leftovers(sessions: set[int], conf: Path, timeout: float) -> None:
    """SIGTERM, then SIGKILL, whatever :func:`_leftovers` finds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = _leftovers(sessions, conf)
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 2)
        while time.monotonic() < deadline and _leftovers(sessions, conf):
            time.sleep(0.2)


def _log_tail(cluster: Cluster, name: str, lines: int = 3) -> str:
    texts = []
    for path in (cluster.logs.get(name), cluster.workdir / "log" / f"{name}.stdout"):
        if path is not None and path.exists():
            texts += path.read_text(errors="replace").splitlines()
    tail = [t.strip() for t in texts if t.strip()][-lines:]
    return " | ".join(tail) if tail else "(no log output)"


def _last_line(text: str) -> str:
    lines = [t for t in text.splitlines() if t.strip()]
    return lines[-1] if lines else "(no output)"
