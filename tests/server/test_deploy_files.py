"""The deployment files under ``server/`` run commands the real CLI accepts.

The systemd unit's ``ExecStart`` and the Containerfile's ``CMD`` are expanded with the settings of
``server/nlp182.env`` (and the image's ``ENV``) the way systemd and ``sh`` would, then parsed with
``nlp182.cli.build_parser``: a renamed or removed ``nlp182 serve`` flag fails here, not in
production. The production guide includes these files as they are.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from nlp182.cli import build_parser

SERVER = Path(__file__).resolve().parents[2] / "server"


def env_file() -> dict[str, str]:
    """``KEY=value`` lines of ``nlp182.env``, as systemd's ``EnvironmentFile=`` reads them."""
    settings = {}
    for line in (SERVER / "nlp182.env").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            settings[key.strip()] = value.strip()
    return settings


def unit_field(name: str) -> str:
    unit = (SERVER / "nlp182.service").read_text(encoding="utf-8")
    return re.search(rf"^{name}=(.*)$", unit, re.M).group(1)


def systemd_expand(command: str, env: dict[str, str]) -> list[str]:
    """systemd's rules: ``${VAR}`` is one argument, ``$VAR`` alone splits on whitespace."""
    argv = []
    for word in command.split():
        whole = re.fullmatch(r"\$([A-Z0-9_]+)", word)
        if whole:
            argv += env[whole.group(1)].split()
        else:
            argv.append(re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: env[m.group(1)], word))
    return argv


def parse_serve(argv: list[str]):
    assert Path(argv[0]).name == "nlp182", argv
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve"
    return args


def test_systemd_unit_runs_a_serve_command_the_cli_accepts() -> None:
    env = env_file()
    args = parse_serve(systemd_expand(unit_field("ExecStart"), env))
    assert args.run == env["NLP182_RUN"]
    assert (args.host, args.port, args.workers) == (env["NLP182_HOST"], int(env["NLP182_PORT"]),
                                                    int(env["NLP182_WORKERS"]))
    assert args.pid_file == "/run/nlp182/serve.pid"
    assert unit_field("RuntimeDirectory") == "nlp182"  # where the pid file goes
    assert int(unit_field("LimitNOFILE")) >= 16384  # a descriptor per connection, slow clients included
    assert unit_field("ExecReload") == "/bin/kill -HUP $MAINPID"


def test_the_unit_answers_requests_to_its_own_address() -> None:
    """``--allowed-hosts localhost`` in the env file refused every request to the bind address
    127.0.0.1: the guide's curl, health checks and metrics scrapes."""
    from nlp182.server.config import ServeConfig

    env = env_file()
    args = parse_serve(systemd_expand(unit_field("ExecStart"), env))
    config = ServeConfig(host=args.host, port=args.port, allowed_hosts=args.allowed_hosts)
    assert {env["NLP182_HOST"], "localhost", "127.0.0.1"} <= set(config.app_config().allowed_hosts)


def test_the_image_takes_host_names_from_its_serve_flags() -> None:
    text = (SERVER / "Containerfile").read_text(encoding="utf-8")
    command = json.loads(re.search(r"^CMD (.*)$", text, re.M).group(1))
    env = {"NLP182_RUN": "/run", "NLP182_HOST": "0.0.0.0", "NLP182_PORT": "8000", "NLP182_WORKERS": "2",
           "NLP182_SERVE_FLAGS": "--allowed-hosts api.example.org"}
    script = re.sub(r"\$(\w+)", lambda m: env[m.group(1)], command[2]).removeprefix("exec ")
    assert parse_serve(shlex.split(script)).allowed_hosts == "api.example.org"
    import tomllib

    project = tomllib.loads((SERVER.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    torch_spec = next(spec for spec in project["dependencies"] if spec.startswith("torch"))
    assert f'"{torch_spec}"' in text  # the range the package asks for, not the newest (CUDA) torch


def test_every_setting_the_unit_names_is_in_the_env_file() -> None:
    used = set(re.findall(r"\$\{?([A-Z0-9_]+)\}?", unit_field("ExecStart")))
    assert used <= set(env_file()), used - set(env_file())


def test_containerfile_runs_a_serve_command_the_cli_accepts() -> None:
    text = (SERVER / "Containerfile").read_text(encoding="utf-8")
    lines = re.findall(r"^ENV (.*)$", text, re.M)
    env = dict(pair.split("=", 1) for line in lines for pair in shlex.split(line))
    command = json.loads(re.search(r"^CMD (.*)$", text, re.M).group(1))
    assert command[:2] == ["sh", "-c"]
    script = re.sub(r"\$(\w+)", lambda m: env[m.group(1)], command[2]).removeprefix("exec ")
    args = parse_serve(shlex.split(script))
    assert (args.run, args.host, args.port) == ("/srv/nlp182/run", "0.0.0.0", 8000)
    assert args.allowed_hosts == "*"
    assert args.max_k == 100  # the image's serve flags reach the command, as the unit's do
    assert re.search(r"^EXPOSE 8000$", text, re.M)


def test_a_renamed_flag_would_fail_these_checks() -> None:
    env = {**env_file(), "NLP182_SERVE_FLAGS": "--max-answers 100"}
    with pytest.raises(SystemExit):
        parse_serve(systemd_expand(unit_field("ExecStart"), env))
