"""`shoprank serve --workers N`: uvicorn's workers over the stores, replaced when they die; a
port in use is one line and exit code 2."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.serving.conftest import two_worker_server


def _children(pid: int) -> set[int]:
    kids = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.add(int(d.name))
    return kids


def _workers(pid: int) -> set[int]:
    """The server's worker processes (uvicorn's spawn start method adds a resource tracker
    child, which is not a worker: it has no socket of its own to answer on)."""
    out = set()
    for kid in _children(pid):
        try:
            cmd = Path(f"/proc/{kid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmd:
            out.add(kid)
    return out


def test_both_workers_dying_at_once_are_replaced(restart_home: Path) -> None:
    with two_worker_server(restart_home) as (base, _, pid):
        workers = _workers(pid)
        assert len(workers) == 2
        for w in workers:
            os.kill(w, signal.SIGKILL)
        deadline = time.monotonic() + 180
        while True:  # the supervisor keeps the socket and starts two new workers
            assert time.monotonic() < deadline, "the server did not come back"
            now = _workers(pid)
            if len(now) >= 2 and not now & workers:
                try:
                    if httpx.get(f"{base}/healthz", timeout=10).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        r = httpx.get(f"{base}/v1/trending", params={"n": 3}, timeout=30)
        assert r.status_code == 200, r.text


def _serve_exits_2(home: Path, port: int) -> None:
    env = {**os.environ, "SHOPRANK_HOME": str(home), "SHOPRANK_SEARCH_BACKEND": "embedded"}
    r = subprocess.run(
        [sys.executable, "-m", "cli.main", "serve", "--workers", "2", "--port", str(port)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert r.returncode == 2, r.stderr
    assert f"127.0.0.1:{port}" in r.stderr and "--port" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_serve_on_a_port_in_use_exits_2_with_one_line(restart_home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        _serve_exits_2(restart_home, busy.getsockname()[1])
    # another shoprank there too
    with two_worker_server(restart_home) as (base, _, _):
        _serve_exits_2(restart_home, int(urlsplit(base).port or 0))


def test_an_idle_keep_alive_connection_stays_open_for_the_configured_time(
    restart_home: Path,
) -> None:
    """The server closes an idle keep-alive connection after ``keep_alive_seconds`` (here 2 s;
    uvicorn's own default is 5 s and ours 75 s, longer than a load balancer's idle time)."""
    with two_worker_server(restart_home, SHOPRANK_KEEP_ALIVE_SECONDS="2") as (base, _, _pid):
        url = urlsplit(base)
        with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            got = b""
            while b"\r\n\r\n" not in got:
                got += sock.recv(4096)
            assert got.startswith(b"HTTP/1.1 200")
            answered = time.monotonic()
            sock.settimeout(30)
            while sock.recv(4096):  # the rest of the answer, then the server's close
                pass
            idle = time.monotonic() - answered
        assert 1.5 <= idle < 4.5, idle


def test_a_connection_is_closed_after_keep_alive_requests_and_the_client_reconnects(
    restart_home: Path,
) -> None:
    with two_worker_server(restart_home, SHOPRANK_KEEP_ALIVE_REQUESTS="4") as (base, _, _pid):
        ports: list[int] = []
        closes: list[bool] = []

        def note(response: httpx.Response) -> None:
            stream = response.extensions["network_stream"]
            ports.append(stream.get_extra_info("client_addr")[1])
            closes.append(response.headers.get("connection") == "close")
            assert "server" not in response.headers  # serve's uvicorn options (serving.http)

        with httpx.Client(base_url=base, timeout=30, event_hooks={"response": [note]}) as c:
            for _ in range(10):
                assert c.get("/healthz").status_code == 200
        assert closes == [False, False, False, True] * 2 + [False, False]
        # one connection per four requests: the fifth and the ninth came on new connections
        assert len(set(ports[0:4])) == len(set(ports[4:8])) == 1
        assert len({ports[0], ports[4], ports[8]}) == 3


def test_serve_compiles_the_ranking_kernels_before_the_workers_start(
    restart_home: Path, tmp_path: Path
) -> None:
    """The preparing child loads the models, so numba's cache holds the kernels the workers
    call (a fresh checkout: an empty cache folder) before any worker starts."""
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "SHOPRANK_HOME": str(restart_home), "SHOPRANK_SEARCH_BACKEND": "embedded",
           "NUMBA_CACHE_DIR": str(cache)}
    code = (
        "import cli.serve as s; from core.settings import get_settings; "
        "s._prepare_stores(get_settings())"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    compiled = {p.name.split(".")[1].rsplit("-", 1)[0] for p in cache.rglob("kernels.*.nbi")}
    assert {"pruned_top", "history_top"} <= compiled, sorted(cache.rglob("*"))


def _owners(workers: set[int], port: int, clients: set[int]) -> dict[int, int]:
    """Client port (of ``clients``) → the worker holding the server side of that connection
    on ``port``."""
    pid_of = {}
    for w in workers:
        for fd in Path(f"/proc/{w}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                pid_of[int(target[8:-1])] = w
    got = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        local, remote, inode = int(f[1].rsplit(":", 1)[1], 16), f[2], int(f[9])
        client = int(remote.rsplit(":", 1)[1], 16)
        if local == port and f[3] == "01" and inode in pid_of and client in clients:
            got[client] = pid_of[inode]
    return got


def test_a_skewed_split_of_keep_alive_connections_evens_out(restart_home: Path) -> None:
    """Eight connections opened at once mostly land unevenly on two workers; with requests
    flowing, the busier worker closes connections (``Connection: close``) until each holds
    four. The keep-alive limit is off, so nothing else closes a connection."""
    with two_worker_server(restart_home, SHOPRANK_KEEP_ALIVE_REQUESTS="0") as (base, _, pid):
        workers = _workers(pid)
        port = int(urlsplit(base).port or 0)
        for _attempt in range(30):  # a burst of connects until one lands 6/2 or worse
            conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(8)]
            for c in conns:
                c.connect()
            ports = {c.sock.getsockname()[1] for c in conns}
            deadline = time.monotonic() + 30
            while len(owners := _owners(workers, port, ports)) < 8:  # accepted by then
                assert time.monotonic() < deadline, "the workers did not accept the connections"
                time.sleep(0.01)
            split = sorted(Counter(owners.values()).values(), reverse=True)
            if split[0] >= 6:
                break
            for c in conns:
                c.close()
        else:
            raise AssertionError("30 bursts of 8 connections all landed within 5/3")
        closed = 0
        deadline = time.monotonic() + 60
        while True:
            for c in conns:  # a closed connection reconnects on the next request
                c.request("GET", "/healthz")
                r = c.getresponse()
                assert r.status == 200 and r.read()
                closed += r.will_close
            ports = {c.sock.getsockname()[1] for c in conns if c.sock is not None}
            owners = _owners(workers, port, ports)
            if sorted(Counter(owners.values()).values()) == [4, 4]:
                break
            assert time.monotonic() < deadline, (split, owners)
        assert closed >= split[0] - 4  # each move was a close by the busier worker
        for c in conns:
            c.close()


def _cpus_allowed(pid: int) -> set[str]:
    """The CPU list of every thread of ``pid``."""
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                out.add(line.split()[1])
    return out


def test_pinned_workers_each_hold_a_cpu_and_a_replacement_takes_the_one_freed(
    restart_home: Path,
) -> None:
    assert len(os.sched_getaffinity(0)) >= 2, "this test needs two CPUs (CI has them)"
    with two_worker_server(restart_home, SHOPRANK_PIN_WORKERS="1") as (base, _, pid):
        workers = _workers(pid)
        pinned = {w: _cpus_allowed(w) for w in workers}
        assert all(len(c) == 1 for c in pinned.values()), pinned  # every thread: one list
        cpus = [next(iter(c)) for c in pinned.values()]
        assert len(set(cpus)) == 2 and all(c.isdigit() for c in cpus), pinned
        dead = min(workers)
        os.kill(dead, signal.SIGKILL)
        deadline = time.monotonic() + 180
        while True:  # the supervisor starts a new worker; its lifespan pins it
            assert time.monotonic() < deadline, "no replacement worker was pinned"
            new = _workers(pid) - workers
            if new and httpx.get(f"{base}/healthz", timeout=10).status_code == 200:
                got = _cpus_allowed(next(iter(new)))
                if len(got) == 1 and next(iter(got)).isdigit():  # "0-1" until it is pinned
                    break
            time.sleep(0.1)
        assert got == pinned[dead]


def test_pin_workers_beyond_the_cpus_or_with_one_worker_exits_2(tmp_path: Path) -> None:
    # refused before the stores are opened: an empty home is enough
    env = {**os.environ, "SHOPRANK_HOME": str(tmp_path),
           "SHOPRANK_SEARCH_BACKEND": "embedded"}
    for workers in (len(os.sched_getaffinity(0)) + 1, 1):
        r = subprocess.run(
            [sys.executable, "-m", "cli.main", "serve", "--workers", str(workers),
             "--pin-workers", "--port", "1"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )
        assert r.returncode == 2, r.stderr
        assert "--pin-workers" in r.stderr and "--workers" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
