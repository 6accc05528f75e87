"""`crosscheck serve` and `crosscheck users`, registered onto engine.cli's `main` group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

__all__ = ["register"]


def _settings(data_dir: Path | None, database_url: str | None, **more: Any) -> Any:
    from store.settings import load_settings

    return load_settings(data_dir=data_dir, database_url=database_url, **more)


def _store_options(function: Any) -> Any:
    from store.cli import _store_options as options

    return options(function)


@click.command("serve")
@click.option("--host", default=None, help="监听地址 address to listen on (CROSSCHECK_HOST; default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="端口 port (CROSSCHECK_PORT; default 8000).")
@_store_options
def serve_command(host: str | None, port: int | None, data_dir: Path | None, database_url: str | None) -> None:
    """启动服务 run the REST API (and the caseworkers' pages) under uvicorn; /docs has the
    OpenAPI page. One server; its check process keeps the latest snapshots in memory for
    POST /checks and batches."""
    import uvicorn

    from .app import create_app

    settings = _settings(data_dir, database_url, host=host, port=port)
    from store.db import Store

    Store.open(settings).close()  # migrate and report a bad database before uvicorn starts
    click.echo(f"crosscheck API on http://{settings.host}:{settings.port}/api/v1 (docs: /docs)", err=True)
    # No access log: the audit log already records every request with its user, and a line
    # printed per request costs the one event loop more than a cached check of a household.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info",
                access_log=False, proxy_headers=False, server_header=False)


@click.group("users")
def users_group() -> None:
    """用户与令牌 API users: add (prints a token once), list, disable."""


@users_group.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["caseworker", "supervisor", "auditor", "system"]),
              help="角色 caseworker 低保专干, supervisor 审核主管, auditor 审计, system 系统对接.")
@click.option("--region", required=True, help="辖区 region_code prefix the user may see, e.g. 320303001.")
@_store_options
def users_add(name: str, role: str, region: str, data_dir: Path | None, database_url: str | None) -> None:
    """添加用户 add a user and print their token (shown only this once; only its hash is kept)."""
    from store.db import Store
    from store.users import add_user

    with Store.open(_settings(data_dir, database_url)) as store:
        user, token = add_user(store, name, role, region)
    click.echo(f"用户 user {user.name} ({user.role}, region {user.region}) added. Token (shown once):", err=True)
    click.echo(token)


@users_group.command("list")
@_store_options
def users_list(data_dir: Path | None, database_url: str | None) -> None:
    """列出用户 list users (never their tokens)."""
    from store.db import Store
    from store.users import list_users

    with Store.open(_settings(data_dir, database_url)) as store:
        for user in list_users(store):
            state = f"disabled {user.disabled_at:%Y-%m-%d}" if user.disabled_at else "active"
            click.echo(f"{user.name}\t{user.role}\t{user.region}\t{state}")


@users_group.command("disable")
@click.argument("name")
@_store_options
def users_disable(name: str, data_dir: Path | None, database_url: str | None) -> None:
    """停用用户 disable a user: their token stops working (within seconds on a running server)."""
    from store.db import Store
    from store.users import disable_user

    with Store.open(_settings(data_dir, database_url)) as store:
        disable_user(store, name)
    click.echo(f"用户 user {name} disabled")


COMMANDS = (serve_command, users_group)


def register(group: click.Group) -> None:
    for command in COMMANDS:
        group.add_command(command)
