"""deploy/compose.yaml as `docker compose` loads it (compose-go, through deploy/composecheck):
the services and images, the replicas' settings and command line against the real Settings
and CLI, the image build's inputs, and the loader's errors. No container runs here (no Docker
engine): what the images do at run time is checked in test_runtime.py with local servers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import SecretStr

from cli.main import _register, app
from core.settings import Settings
from tests.deploy.conftest import COMPOSE, DEPLOY, ROOT, SHOPRANK, TEST_VARS, run_checker
from tests.servers import servers_required

REPLICAS = ("api-a", "api-b")
REQUIRED = re.compile(r"\$\{(\w+):\?([^}]*)\}")


def required() -> list[tuple[str, str]]:
    """(variable, message) of each ${VAR:?message} in the file, outside comments."""
    lines = [ln for ln in COMPOSE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    return REQUIRED.findall("\n".join(lines))


def replica_command(resolved: dict[str, Any]) -> list[str]:
    command: list[str] = resolved["services"]["api-a"]["command"]
    return command


def dockerfile(resolved: dict[str, Any]) -> list[list[str]]:
    """The replicas' Dockerfile as instructions (continuation lines joined, comments out)."""
    text = resolved["services"]["api-a"]["build"]["dockerfile_inline"].replace("\\\n", " ")
    return [ln.split() for ln in text.splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]


def parse_cli(argv: list[str]) -> dict[str, Any]:
    """The parameters the real `shoprank` CLI parses from ``argv`` (the command is not run)."""
    assert argv[0] == "shoprank" and not argv[1].startswith("-"), argv
    group = typer.main.get_command(app)
    root = typer.Context(group, info_name="shoprank")
    command = group.get_command(root, argv[1])  # type: ignore[attr-defined]
    assert command is not None, f"shoprank has no command {argv[1]!r}"
    with command.make_context(argv[1], list(argv[2:]), parent=root) as ctx:
        return dict(ctx.params)


@pytest.fixture(scope="module", autouse=True)
def _commands() -> None:
    _register()


def test_services_and_the_official_images(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == {"postgres", "redis", "opensearch", "api-a", "api-b", "haproxy",
                             "train"}
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    assert services["haproxy"]["image"].startswith("haproxy:2.")
    # the OpenSearch the test suite runs (scripts/opensearch: 3.x with Java 21+, else 2.19)
    script = (ROOT / "scripts" / "opensearch").read_text()
    tested = {".".join(v.split(".")[:3])
              for v in re.findall(r"^(?:NEW|OLD)_VERSION=([\d.]+)", script, re.M)}
    image, _, version = services["opensearch"]["image"].partition(":")
    assert image == "opensearchproject/opensearch" and version in tested, (version, tested)
    # training runs on demand only (docker compose run --rm train)
    assert services["train"]["profiles"] == ["jobs"]
    # only the proxy is published: the stores and the replicas stay inside the compose network
    assert [n for n, s in services.items() if s.get("ports")] == ["haproxy"]


def _local_major_minor(argv: list[str], pattern: str) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    found = re.search(pattern, out.stdout + out.stderr)
    return found.group(1) if found else None


def test_images_are_the_versions_the_suite_runs(resolved: dict[str, Any]) -> None:
    """Each official image has the major version of the Debian server tests/ run."""
    initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    local = {
        "postgres": initdb[-1].parts[-3] if initdb else None,
        "redis": _local_major_minor(["redis-server", "--version"], r"v=(\d+)\."),
        "haproxy": _local_major_minor(["haproxy", "-v"], r"version (\d+\.\d+)\."),
    }
    missing = [name for name, v in local.items() if v is None]
    if missing:
        if servers_required():
            pytest.fail(f"{missing} not installed (REQUIRE_SERVERS=1)", pytrace=False)
        pytest.skip(f"{missing} not installed (./dev test installs them)")
    for name, version in local.items():
        assert resolved["services"][name]["image"] == f"{name}:{version}", (name, version)


def test_the_replicas_are_identical(resolved: dict[str, Any]) -> None:
    a, b = (resolved["services"][r] for r in REPLICAS)
    for key in ("environment", "command", "healthcheck", "build", "volumes", "depends_on"):
        assert a.get(key) == b.get(key), key
    assert a["environment"], "the replicas set no environment"
    assert {"postgres", "redis", "opensearch"} <= set(a["depends_on"])
    assert all(d["condition"] == "service_healthy" for d in a["depends_on"].values())


def test_every_variable_the_replicas_set_is_a_setting(
    resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env: dict[str, str] = resolved["services"]["api-a"]["environment"]
    prefix = str(Settings.model_config.get("env_prefix", ""))
    delimiter = Settings.model_config.get("env_nested_delimiter") or "\0"
    assert prefix == "SHOPRANK_"
    names = {}
    for key in env:
        assert key.upper().startswith(prefix), f"{key} is not a shoprank setting"
        field = key[len(prefix):].lower().split(delimiter)[0]
        assert field in Settings.model_fields, f"{key}: Settings has no field {field!r}"
        names[key] = field
    # the values are ones Settings accepts, and it reads them back as set
    for var in [v for v in os.environ if v.startswith(prefix)]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("SHOPRANK_CONFIG", str(tmp_path / "absent.toml"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = Settings()
    for key, field in names.items():
        got = getattr(s, field)
        got = got.get_secret_value() if isinstance(got, SecretStr) else str(got)
        assert got == env[key], key
    # the stores and search the replicas use are this file's services, on their ports
    services = resolved["services"]
    for url, service, port in ((s.database_url, "postgres", 5432), (s.redis_url, "redis", 6379),
                               (s.opensearch_url, "opensearch", 9200)):
        parts = urlsplit(url or "")
        assert (parts.hostname, parts.port) == (service, port) and service in services, url
    assert urlsplit(s.database_url).password == TEST_VARS["POSTGRES_PASSWORD"]
    assert s.effective_search_backend == "opensearch"
    # the model registry the replicas read is the volume `train` writes
    mounts = {v["target"]: v for v in services["api-a"]["volumes"]}
    assert str(s.models_dir) in mounts and mounts[str(s.models_dir)].get("read_only") is True
    train = {v["target"]: v for v in services["train"]["volumes"]}
    assert train[str(s.models_dir)]["source"] == mounts[str(s.models_dir)]["source"]
    assert not train[str(s.models_dir)].get("read_only")
    assert services["train"]["environment"] == env


def test_the_replicas_command_is_one_the_cli_accepts(resolved: dict[str, Any]) -> None:
    command = replica_command(resolved)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert command[0] in scripts  # the console script `pip install .` puts on PATH
    params = parse_cli(command)
    assert params["host"] == "0.0.0.0"  # reachable from the proxy's container
    assert params["port"] == 8000 and params["workers"] == 2
    assert parse_cli(resolved["services"]["train"]["command"])["promote"] is True
    # the parse can fail: a misspelt flag is refused as the CLI refuses it
    with pytest.raises(Exception, match="No such option: --worker") as refused:
        parse_cli([*command[:2], "--worker", "2"])
    assert type(refused.value).__name__ == "NoSuchOption"
    # and the installed console script knows these flags
    out = subprocess.run([str(SHOPRANK), command[1], "--help"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    for flag in (a for a in command[2:] if a.startswith("--")):
        assert flag in out.stdout, flag


def test_the_image_build_copies_what_pip_install_reads(resolved: dict[str, Any]) -> None:
    build = resolved["services"]["api-a"]["build"]
    assert Path(build["context"]) == ROOT
    lines = dockerfile(resolved)
    assert lines[0][:2] == ["FROM", "python:3.11-slim"]
    copied = {src for ln in lines if ln[0] == "COPY" for src in ln[1:-1]}
    assert "." not in copied  # never the whole checkout (.venv/, var/ with its admin key)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    needed = {"pyproject.toml", project["project"]["readme"]} | {
        p.rstrip("*") for p in packages}
    assert needed <= copied, needed - copied
    for src in copied:
        assert (ROOT / src).exists(), src
    for ln in lines:  # a package folder lands under its own name (COPY dir dir)
        if ln[0] == "COPY" and ln[1] in needed and (ROOT / ln[1]).is_dir():
            assert ln[1:] == [ln[1], ln[1]], ln
    assert lines[-1] == ["RUN", "pip", "install", "--no-cache-dir", "."]


def _debian_packages(paths: set[str]) -> set[str]:
    """The Debian packages owning ``paths`` (each asked as /usr/lib/... and /lib/...)."""
    asked = paths | {p.removeprefix("/usr") for p in paths}
    out = subprocess.run(["dpkg-query", "-S", *sorted(asked)], capture_output=True,
                         text=True, timeout=60, check=False).stdout
    owners: dict[str, set[str]] = {}
    for line in out.splitlines():
        pkgs, _, path = line.partition(": ")
        for pkg in pkgs.split(", "):
            owners.setdefault(os.path.realpath(path), set()).add(pkg.split(":")[0])
    missing = {p for p in paths if os.path.realpath(p) not in owners}
    assert not missing, f"no Debian package owns {missing}"
    return {pkg for p in paths for pkg in owners[os.path.realpath(p)]}


def test_the_image_has_the_system_libraries_the_wheels_load(resolved: dict[str, Any]) -> None:
    """Each system library the compiled modules of shoprank's dependencies (not the dev
    extras) load, as installed here, is in python:3.11-slim (Debian 12 slim: what apt and
    dpkg depend on) or installed by the Dockerfile's apt-get."""
    if shutil.which("dpkg-query") is None or shutil.which("ldd") is None:
        pytest.skip("not a Debian machine: the image's Debian packages cannot be compared")
    seen: set[str] = set()
    todo, modules = ["shoprank"], []
    while todo:
        dist = metadata.distribution(todo.pop())
        if canonicalize_name(dist.metadata["Name"]) in seen:
            continue
        seen.add(canonicalize_name(dist.metadata["Name"]))
        modules += [str(dist.locate_file(f)) for f in dist.files or []
                    if ".so" in Path(str(f)).name]
        todo += [r.name for r in map(Requirement, dist.requires or [])
                 if r.marker is None or r.marker.evaluate({"extra": ""})]
    assert {"implicit", "lightgbm", "numpy"} <= seen and modules
    out = subprocess.run(["ldd", *modules], capture_output=True, text=True, timeout=120,
                         check=False).stdout
    system = {os.path.realpath(ln.split("=> ")[1].split(" (")[0]) for ln in out.splitlines()
              if "=> /" in ln}
    system = {p for p in system if "-packages/" not in p}
    needed = _debian_packages(system)
    assert "libc6" in needed
    fields = subprocess.run(["dpkg-query", "-W", "-f", "${Depends}, ${Pre-Depends}\n", "apt",
                             "dpkg"], capture_output=True, text=True, timeout=30,
                            check=True).stdout
    base = {re.split(r"[\s(:]", alt.strip())[0] for dep in fields.replace("\n", ",").split(",")
            for alt in dep.split("|") if alt.strip()}
    runs = [" ".join(ln) for ln in dockerfile(resolved) if ln[0] == "RUN"]
    installed = {w for run in runs if "apt-get install" in run
                 for w in run.split("apt-get install", 1)[1].split("&&")[0].split()
                 if not w.startswith("-")}
    assert needed <= base | installed, needed - base - installed


def test_opensearch_starts_without_the_security_demo(resolved: dict[str, Any]) -> None:
    """The image's entrypoint (opensearch-build, opensearch-docker-entrypoint-2.x.sh) runs
    the security demo set-up unless DISABLE_INSTALL_DEMO_CONFIG=true, and since 2.12 that
    set-up exits without OPENSEARCH_INITIAL_ADMIN_PASSWORD."""
    env = resolved["services"]["opensearch"]["environment"]
    assert env.get("DISABLE_SECURITY_PLUGIN") == "true"
    assert env.get("DISABLE_INSTALL_DEMO_CONFIG") == "true"
    assert env.get("discovery.type") == "single-node"


@pytest.mark.parametrize("missing", sorted({m[0] for m in required()}))
def test_a_missing_secret_stops_the_loader_with_its_message(
    composecheck: Path, missing: str
) -> None:
    messages = {m[1] for m in required() if m[0] == missing}
    variables = {k: v for k, v in TEST_VARS.items() if k != missing}
    proc = run_checker(composecheck, COMPOSE, variables)
    assert proc.returncode == 1 and not proc.stdout
    assert f"required variable {missing} is missing a value" in proc.stderr, proc.stderr
    for message in messages:
        assert message in proc.stderr


def test_the_required_variables_are_the_documented_ones() -> None:
    header = COMPOSE.read_text().split("\nname:", 1)[0]
    names = {m[0] for m in required()}
    assert names == set(TEST_VARS)
    for name in names:
        assert name in header, f"{name} is required but not in the header comment"


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (("  api-b:\n    <<: *api\n", "  api-b:\n    <<: *api\n    replicaz: 2\n"),
         "services.api-b.replicaz"),
        (("depends_on: [api-a, api-b]", "depends_on: [api-a, api-c]"), "api-c"),
        (('"8080:8080"', '"8080:http"'), "Invalid containerPort: http"),
    ],
    ids=["unknown-key", "unknown-dependency", "bad-port"],
)
def test_a_broken_copy_fails_the_checker(
    composecheck: Path, tmp_path: Path, edit: tuple[str, str], error: str
) -> None:
    folder = tmp_path / "deploy"
    shutil.copytree(DEPLOY, folder, ignore=shutil.ignore_patterns("composecheck"))
    copy = folder / "compose.yaml"
    intact = run_checker(composecheck, copy, TEST_VARS, "jobs")
    assert intact.returncode == 0, intact.stderr  # the copy itself loads
    text = copy.read_text()
    assert edit[0] in text
    copy.write_text(text.replace(edit[0], edit[1]))
    proc = run_checker(composecheck, copy, TEST_VARS, "jobs")
    assert proc.returncode == 1 and not proc.stdout
    assert error in proc.stderr, proc.stderr
