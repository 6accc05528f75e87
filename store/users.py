"""Who may use the API: a name, a role, a region prefix and a token held only as its hash.

    add_user(store, name, role, region) -> (User, token)    the token is shown once, never stored
    authenticate(store, token) -> User                       NotAuthenticated when nobody holds it

Roles (what each may do is api.access's table):
    caseworker   reads and reviews the flags of their own region prefix (a township, 9 digits)
    supervisor   the same over a region subtree, and decides stops, recoveries and resolutions
    auditor      reads everything of their region, IDs masked; reads the audit log
    system       other government systems: checks, batches, runs, snapshots

Tokens are 32 random bytes (urlsafe base64); since they are random, not chosen by people, one
SHA-256 is enough to store them (a slow password hash protects guessable secrets, not these).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

import sqlalchemy as sa

from engine.errors import NotAuthenticated, NotFound, StoreError

from .db import Store
from .models import User, utcnow

__all__ = ["ROLES", "ROLES_ZH", "add_user", "authenticate", "disable_user", "list_users", "token_hash"]

ROLES = ("caseworker", "supervisor", "auditor", "system")
ROLES_ZH = {"caseworker": "低保专干", "supervisor": "审核主管", "auditor": "审计", "system": "系统对接"}
TOKEN_PREFIX = "cc_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


def _check(name: str, role: str, region: str) -> None:
    problems = []
    if not name or not name.strip() or len(name) > 255:
        problems.append("NAME must be 1–255 characters")
    if role not in ROLES:
        problems.append(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    if not re.fullmatch(r"\d{2,12}", region or ""):
        problems.append(f"--region is a region code prefix of 2–12 digits (e.g. 320303 or 320303001), not {region!r}")
    if problems:
        raise StoreError("无法添加用户 cannot add the user: " + "; ".join(problems))


def add_user(store: Store, name: str, role: str, region: str, now: datetime | None = None) -> tuple[User, str]:
    """Create a user; returns the user and their token (the only time it exists in clear)."""
    _check(name, role, region)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user = User(name=name.strip(), role=role, region=region, token_hash=token_hash(token),
                created_at=now or utcnow(), disabled_at=None)
    with store.read() as session:
        if session.scalars(sa.select(User.id).where(User.name == user.name)).first() is not None:
            raise StoreError(f"用户 {user.name} 已存在 (a user named {user.name!r} exists): pick another name")
    with store.write() as session:
        session.add(user)
    return user, token


def authenticate(store: Store, token: str | None) -> User:
    if not token or not token.strip():
        raise NotAuthenticated("需要令牌 a bearer token is required: Authorization: Bearer TOKEN")
    with store.read() as session:
        user = session.scalars(sa.select(User).where(User.token_hash == token_hash(token))).first()
    if user is None or user.disabled_at is not None:
        raise NotAuthenticated("令牌无效 the token is unknown or its user is disabled")
    return user


def disable_user(store: Store, name: str, now: datetime | None = None) -> User:
    with store.write() as session:
        user = session.scalars(sa.select(User).where(User.name == name)).first()
        if user is None:
            raise NotFound(f"没有用户 {name} (no user {name!r})")
        if user.disabled_at is None:
            user.disabled_at = now or utcnow()
    return user


def list_users(store: Store) -> list[User]:
    with store.read() as session:
        return list(session.scalars(sa.select(User).order_by(User.id)))
