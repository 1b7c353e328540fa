"""Distributed grid search on keras-tuner's chief/worker mode: one coordinator, many workers.

keras-tuner runs the Oracle in a *chief* process behind a gRPC server; *workers* (any number, on any
host) ask it for trials and run them. Roles come from keras-tuner's environment variables:

    KERASTUNER_TUNER_ID      "chief" for the coordinator, a unique name per worker ("worker0", ...)
    KERASTUNER_ORACLE_IP     the address the chief listens on / workers connect to (127.0.0.1 here)
    KERASTUNER_ORACLE_PORT   its port

keras-tuner's chief listens on KERASTUNER_ORACLE_IP with no authentication: anyone who reaches the port
can take and report trials. So the coordinator stays on loopback unless told otherwise (`--oracle_bind`),
says so in one line when it listens beyond loopback, and workers on other hosts reach its loopback port
through an SSH tunnel (README, several hosts).

Our `GridOracle` takes its state from the records, which the workers write into the (shared)
experiment directory, so records, TensorBoard and `bpfree.results.load` see one experiment whatever
the number of workers. Failure handling, decided by tests/test_distributed.py:

- a worker killed mid-trial is restarted under the same KERASTUNER_TUNER_ID (by `supervise`), and
  keras-tuner's oracle hands it back the trial it was running, which resumes from its executions'
  checkpoints;
- a coordinator killed: `supervise` stops the workers and exits with 3, train.bash re-runs the whole
  command, and the new chief resumes from the records; one stopped by SIGTERM or SIGINT (the pid the
  lock names) stops the search: exit 143 or 130, which train.bash does not restart;
- a worker that starts late simply connects (keras-tuner waits up to 60 minutes for the chief, #990).
"""

import errno
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from bpfree import checks, io

CHIEF = "chief"
RESTARTS = 5
LOOPBACK = "127.0.0.1"
NVIDIA_DRIVER = "/proc/driver/nvidia"  # present where NVIDIA's kernel driver is loaded
BIND_CHOICES = "an IPv4 address of this host (127.0.0.1: loopback, the default; 0.0.0.0: every interface)"


def role():
    """"chief", "worker" or None (a plain single-process search)."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    for name in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        if name not in os.environ:
            raise ValueError(f"KERASTUNER_ORACLE_IP is set but {name} is not; set both for a distributed search.")
    return "chief" if CHIEF in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def serve(tuner, poll_seconds=0.2, reply_seconds=1.0):
    """Serves `tuner`'s grid oracle to the workers until every worker has been told the grid is done.

    The server is keras-tuner's own, through its public path: `Tuner.search()` in the chief
    (KERASTUNER_TUNER_ID "chief") serves the oracle and returns once the workers are done. Its loop
    polls every 20 s once stopping, which would add up to 20 s to every search, so it runs in a daemon
    thread and this returns as soon as the oracle itself knows every worker that asked for a trial has
    been told the grid is done (`GridOracle.all_told`); the server goes with the process.

    The oracle knows before gRPC has sent its reply, so the server is given `reply_seconds` to send it.
    """
    if role() != "chief":  # keras-tuner's Tuner.search decides by the same variable
        raise RuntimeError(f"serve() runs in the chief (KERASTUNER_TUNER_ID {os.environ.get('KERASTUNER_TUNER_ID')!r}).")
    oracle = tuner.oracle
    host, port = os.environ["KERASTUNER_ORACLE_IP"], os.environ["KERASTUNER_ORACLE_PORT"]
    _check_port(host, int(port))  # bad input (exit 2) before the thread, not a RuntimeError inside it
    failure = []

    def run():
        try:
            tuner.search()
        except BaseException as e:  # handed to the main thread
            failure.append(e)
        finally:
            oracle.all_told.set()

    threading.Thread(target=run, name="keras-tuner chief", daemon=True).start()
    while not oracle.all_told.wait(poll_seconds):  # a short wait: SIGINT still reaches the main thread
        pass
    if failure:
        raise failure[0]
    time.sleep(reply_seconds)


def check_bind(address, what="--oracle_bind"):
    """`address` if the coordinator can listen on it (`BIND_CHOICES`, or a name of one of this host's IPv4
    addresses); a ValueError naming it and `what` set it otherwise."""
    with socket.socket() as s:
        try:
            if not address.strip():  # "" would mean every interface, unasked
                raise OSError("empty")
            s.bind((address, 0))
        except OSError as e:
            reason = e.strerror or str(e)
            raise checks.invalid(what, address, f"{BIND_CHOICES}; this host cannot listen on it ({reason})") from None
    return address


def is_loopback(address):
    try:
        return address == "localhost" or ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name: beyond loopback
        return False


def bind_warning(address, port):
    """The one line a coordinator listening beyond loopback prints; None on loopback."""
    if is_loopback(address):
        return None
    return (f"warning: the coordinator listens on {address}:{port}, beyond loopback, without authentication: "
            "anyone who can reach that port can take and report trials; prefer --oracle_bind 127.0.0.1 and an "
            "SSH tunnel from the workers' hosts (README, several hosts).")


def connect_address(bind):
    """Where workers on this host reach a coordinator listening on `bind` (every interface: loopback)."""
    return LOOPBACK if bind == "0.0.0.0" else bind


def _check_port(host, port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does: a TIME_WAIT port is free
        try:
            s.bind((host, port))
        except OSError as e:
            hint = "; port in use?" if e.errno == errno.EADDRINUSE else ""
            raise ValueError(f"The coordinator cannot listen on {host}:{port} ({e.strerror}{hint}).") from None


def free_port(host=LOOPBACK):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def gpu_count():
    """The NVIDIA GPUs on this host (`nvidia-smi -L`; 0 without it), whatever CUDA_VISIBLE_DEVICES says."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def visible_gpus(environ=None):
    """The GPUs the workers share, as CUDA_VISIBLE_DEVICES entries: those CUDA_VISIBLE_DEVICES names if it is
    set (indices or UUIDs, up to the first invalid entry as CUDA reads it; "" or -1: none), else every GPU of
    the host (`gpu_count`)."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" not in environ:
        return [str(i) for i in range(gpu_count())]
    ids = []
    for entry in environ["CUDA_VISIBLE_DEVICES"].split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):  # CUDA ignores this entry and every one after it
            break
        ids.append(entry)
    return ids


def worker_cpus(index, workers, cores):
    """The cores worker `index` is pinned to when there is no GPU: an equal, disjoint share.

    Limiting TensorFlow's intra-op pool is not enough on its own: XLA's CPU backend and tf.data run
    their own thread pools over every core, so unpinned workers fight over all of them
    (bench/workers.py measured 1.2× for 2 workers on 2 cores without affinity).
    """
    share = int(os.environ.get("BPFREE_THREADS_PER_WORKER") or 0) or max(1, cores // workers)
    first = (index * share) % cores
    return sorted({(first + k) % cores for k in range(share)})


def worker_env(index, workers, gpus, cores):
    """Worker `index` sees one GPU, gpus[index % len(gpus)] (`visible_gpus`: so --workers len(gpus) is one
    worker per GPU, more share them, memory growing as needed); without GPUs, its share of the CPU cores."""
    env = {"KERASTUNER_TUNER_ID": f"worker{index}"}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    else:
        env["CUDA_VISIBLE_DEVICES"] = ""
        threads = os.environ.get("BPFREE_THREADS_PER_WORKER") or str(max(1, cores // workers))
        env.update(BPFREE_INTRA_OP_THREADS=threads, OMP_NUM_THREADS=threads)
    return env


def supervise(experiment_dir, args, workers, host=LOOPBACK, log=print):
    """Runs `python -m bpfree *args` (the command line, experiment dir included) as a coordinator
    listening on `host` and `workers` workers on this host; restarts crashed workers; returns the exit
    code (0 done, 2 bad input, 3 crashed)."""
    port = int(os.environ.get("KERASTUNER_ORACLE_PORT") or free_port(host))
    base = {**os.environ, "KERASTUNER_ORACLE_IP": connect_address(host), "KERASTUNER_ORACLE_PORT": str(port)}
    command = [sys.executable, "-m", "bpfree", *args, "--workers=0"]
    gpus, cores = visible_gpus(), os.cpu_count() or 1
    state_path = os.path.join(experiment_dir, "distributed.json")

    def start(tuner_id, extra, cpus=None):
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus and hasattr(os, "sched_setaffinity") else None
        return subprocess.Popen(command, env={**base, **extra, "KERASTUNER_TUNER_ID": tuner_id}, preexec_fn=pin)

    chief = start(CHIEF, {"CUDA_VISIBLE_DEVICES": "", "KERASTUNER_ORACLE_IP": host})
    envs = {f"worker{i}": worker_env(i, workers, gpus, cores) for i in range(workers)}
    cpus = {f"worker{i}": None if gpus else worker_cpus(i, workers, cores) for i in range(workers)}
    procs = {tid: start(tid, env, cpus[tid]) for tid, env in envs.items()}
    restarts = dict.fromkeys(procs, 0)
    finished = set()
    placement = (f"CUDA_VISIBLE_DEVICES {', '.join(env['CUDA_VISIBLE_DEVICES'] for env in envs.values())}" if gpus
                 else f"CPU cores {list(cpus.values())}")
    log(f"coordinator on {host}:{port} (pid {chief.pid}, no GPU), {workers} workers ({placement})")
    if not gpus and "CUDA_VISIBLE_DEVICES" not in os.environ and os.path.exists(NVIDIA_DRIVER):
        log("note: this host has an NVIDIA driver but `nvidia-smi -L` lists no GPU, so the workers run on the "
            "CPU; set CUDA_VISIBLE_DEVICES to the GPUs they should share (e.g. 0,1)")

    def write_state():
        io.write_json(state_path, {"host": host, "port": port, "chief": chief.pid,
                                               "workers": {t: p.pid for t, p in procs.items()}})

    def stop_all(sig=signal.SIGTERM):
        for p in [chief, *procs.values()]:
            if p.poll() is None:
                p.send_signal(sig)
        for p in [chief, *procs.values()]:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()

    write_state()
    try:
        while True:
            time.sleep(0.5)
            rc = chief.poll()
            if rc is not None:
                if rc != 0:
                    log(f"coordinator exited with {rc}; stopping the workers")
                    stop_all()
                    if rc in (-signal.SIGTERM, -signal.SIGINT, 128 + signal.SIGTERM, 130):
                        return 128 + abs(rc) if rc < 0 else rc  # stopped by the user: train.bash does not restart
                    return 2 if rc in (1, 2) else 3
                for p in procs.values():  # the grid is done: workers have been told so
                    try:
                        p.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        p.terminate()
                return 0
            for tid, p in list(procs.items()):
                rc = p.poll()
                if rc is None or tid in finished:
                    continue
                if rc == 0:
                    finished.add(tid)
                elif rc in (1, 2):
                    log(f"{tid} refused its input (exit {rc}); stopping")
                    stop_all()
                    return 2
                elif restarts[tid] < RESTARTS:
                    restarts[tid] += 1
                    log(f"{tid} exited with {rc}; restart {restarts[tid]} of {RESTARTS} (it resumes its trial)")
                    procs[tid] = start(tid, envs[tid], cpus[tid])
                    write_state()
                else:
                    finished.add(tid)
            if len(finished) == len(procs) and any(restarts[t] >= RESTARTS for t in finished):
                log("every worker gave up; stopping the coordinator")
                stop_all()
                return 3
    except KeyboardInterrupt:
        stop_all(signal.SIGINT)
        return 130
