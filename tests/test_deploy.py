"""The systemd units in deploy/ name what the repository ships, and the settings it reads."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
PREFIX = "/opt/anjuka/"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / name)
    return parser


def console_scripts() -> set[str]:
    setup = configparser.ConfigParser(interpolation=None)
    setup.read(REPO / "setup.cfg")
    lines = setup["options.entry_points"]["console_scripts"].strip().splitlines()
    return {line.split("=")[0].strip() for line in lines}


def command(service: str) -> list[str]:
    return unit(service)["Service"]["ExecStart"].replace("\\\n", " ").split()


@pytest.mark.parametrize(
    ("service", "program"),
    [
        ("anjuka-web.service", "gunicorn"),
        ("anjuka-webhooks.service", "anjuka"),
        ("anjuka-sweep.service", "anjuka"),
        ("anjuka-cardreader.service", "anjuka-cardreader"),
    ],
)
def test_each_service_runs_a_program_the_package_installs(service, program):
    argv = command(service)
    assert argv[0] == f"{PREFIX}.venv/bin/{program}"
    assert program == "gunicorn" or program in console_scripts()


def test_the_web_app_runs_the_shipped_gunicorn_config():
    argv = command("anjuka-web.service")
    config = argv[argv.index("-c") + 1]
    assert config.startswith(PREFIX)
    assert (REPO / config.removeprefix(PREFIX)).is_file()
    assert argv[-1] == "anjuka:create_app()"


def test_the_commands_are_those_the_cli_offers():
    from click.testing import CliRunner

    from anjuka.cli import cli

    for service in ("anjuka-webhooks.service", "anjuka-sweep.service"):
        args = command(service)[1:]
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, (service, result.output)


def test_the_sweep_timer_starts_the_sweep_hourly():
    timer = unit("anjuka-sweep.timer")
    assert timer["Timer"]["OnCalendar"] == "hourly"
    assert "Unit" not in timer["Timer"]  # defaults to the service of the same name
    assert (DEPLOY / "anjuka-sweep.service").is_file()
    assert unit("anjuka-sweep.service")["Service"]["Type"] == "oneshot"


def test_the_environment_example_names_only_settings_something_reads():
    readers = "".join(
        (REPO / path).read_text() for path in ("anjuka/config.py", "gunicorn.conf.py")
    )
    names = re.findall(r"^([A-Z_]+)=", (DEPLOY / "anjuka.env.example").read_text(), re.M)
    assert "ANJUKA_DATABASE_URL" in names
    for name in names:
        if name.startswith("ANJUKA_"):
            assert f'"{name}"' in readers, name
    # The metrics directory is one the web unit creates.
    example = (DEPLOY / "anjuka.env.example").read_text()
    directory = re.search(r"^PROMETHEUS_MULTIPROC_DIR=/run/(\S+)$", example, re.M)
    assert directory is not None
    runtime = unit("anjuka-web.service")["Service"]["RuntimeDirectory"].split()
    assert directory.group(1) in runtime
