"""`crosscheck users add|list|disable` and `crosscheck serve --help` (api.cli), through click's
runner on a store of their own."""

from __future__ import annotations

import hashlib
import sys

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient

from api.app import SWITCH_INTERVAL, create_app
from engine.cli import main
from store.db import Store
from store.models import User
from store.settings import Settings


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def cli(data_dir):
    def invoke(*args: str):
        return CliRunner().invoke(main, [*args, "--data-dir", str(data_dir)], env={"CROSSCHECK_DATABASE_URL": ""})

    return invoke


def test_adding_a_user_prints_the_token_once_and_keeps_only_its_hash(cli, data_dir):
    result = cli("users", "add", "王芳", "--role", "caseworker", "--region", "320303001")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("cc_") and len(token) > 40 and "\n" not in token  # stdout: the token alone
    assert "王芳" in result.stderr and "once" in result.stderr
    with Store.open(Settings(data_dir=data_dir)) as store, store.read() as session:
        user = session.scalars(sa.select(User)).one()
    assert (user.name, user.role, user.region) == ("王芳", "caseworker", "320303001")
    assert user.token_hash == hashlib.sha256(token.encode()).hexdigest() and token not in user.token_hash
    listed = cli("users", "list")
    assert listed.exit_code == 0 and "王芳\tcaseworker\t320303001\tactive" in listed.stdout
    assert token not in listed.output


def test_the_token_opens_the_api_until_the_user_is_disabled(cli, data_dir):
    token = cli("users", "add", "sys", "--role", "system", "--region", "32").stdout.strip()
    settings = Settings(data_dir=data_dir)
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/rules", headers=headers).status_code == 200
    result = cli("users", "disable", "sys")
    assert result.exit_code == 0 and "disabled" in result.stdout
    assert "\tdisabled " in cli("users", "list").stdout
    with TestClient(create_app(settings)) as client:  # a server started afterwards: refused at once
        assert client.get("/api/v1/rules", headers=headers).status_code == 401


@pytest.mark.parametrize(("args", "words"), [
    (["users", "add", "x", "--role", "admin", "--region", "32"], "admin"),
    (["users", "add", "x", "--role", "system", "--region", "32AB"], "--region"),
    (["users", "add", "x", "--role", "system"], "--region"),
    (["users", "disable", "nobody"], "nobody"),
])
def test_bad_arguments_are_refused_with_a_message(cli, args, words):
    result = cli(*args)
    assert result.exit_code == 2 and words in result.output and "Traceback" not in result.output


def test_a_name_is_taken_once(cli):
    assert cli("users", "add", "王芳", "--role", "caseworker", "--region", "320303001").exit_code == 0
    result = cli("users", "add", "王芳", "--role", "supervisor", "--region", "320303")
    assert result.exit_code == 2 and "王芳" in result.output


def test_serve_has_help():
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "--host" in result.output


def test_a_running_server_hands_the_gil_over_sooner_and_gives_the_default_back(data_dir):
    # Its pipe threads to the check process must not wait 5 ms behind the event loop.
    before = sys.getswitchinterval()
    assert SWITCH_INTERVAL < before
    with TestClient(create_app(Settings(data_dir=data_dir, check_process=False))):
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    assert sys.getswitchinterval() == pytest.approx(before)
