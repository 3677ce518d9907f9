"""Users, roles and permissions, checked in the core (not only by greying out buttons).

Four roles; `ROLE_PERMISSIONS` is the one matrix. `require()` re-reads the user's row every time, so
a user disabled or demoted is refused at once, also in a window that is still logged in. Passwords
are stored as salted scrypt hashes that name their own parameters. There is no default account:
the first admin is created once, while there are no users at all (`create_first_admin`). Every
login, logout and user change is a row of the audit trail (never with a password or its hash).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import functools
import hashlib
import hmac
import logging
import os

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inspection.access import audit
from inspection.errors import AuthError, PermissionDenied
from inspection.record.schema import User as UserRow
from inspection.record.store import Store, utcnow

log = logging.getLogger(__name__)

MAX_NAME = 64
MIN_PASSWORD = 8
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN, SALT_BYTES = 2**14, 8, 1, 32, 16


class Role(enum.StrEnum):
    OPERATOR = "operator"
    ENGINEER = "engineer"
    QA = "qa"
    ADMIN = "admin"


class Permission(enum.StrEnum):
    RUN_LINE = "run the line"  # start, stop, choose the recipe at changeover
    ACK_ALARMS = "acknowledge alarms"
    RELABEL = "relabel parts"
    TRAIN = "train models"
    PROMOTE = "promote or roll back models"
    CHANGE_THRESHOLDS = "change thresholds"
    EXPORT_REPORT = "export reports"
    EXPORT_DATASET = "export datasets"
    MANAGE_USERS = "manage users"


_OPERATOR = frozenset({Permission.RUN_LINE, Permission.ACK_ALARMS})
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OPERATOR: _OPERATOR,
    Role.ENGINEER: _OPERATOR
    | {
        Permission.RELABEL,
        Permission.TRAIN,
        Permission.PROMOTE,
        Permission.CHANGE_THRESHOLDS,
        Permission.EXPORT_DATASET,
        Permission.EXPORT_REPORT,
    },
    Role.QA: frozenset({Permission.ACK_ALARMS, Permission.EXPORT_REPORT, Permission.EXPORT_DATASET}),
    Role.ADMIN: frozenset(Permission),
}


@dataclasses.dataclass(frozen=True)
class User:
    """Who is logged in (what `authenticate` returns); checked afresh by `require` at each use."""

    id: int
    name: str
    role: Role


@dataclasses.dataclass(frozen=True)
class Account:
    """A row of the user list."""

    id: int
    name: str
    role: Role
    active: bool
    created_at: dt.datetime  # naive UTC
    created_by: str


# -- passwords --------------------------------------------------------------------------------
def hash_password(password: str) -> str:
    """`scrypt$n=16384,r=8,p=1$<salt>$<key>` (base64), with a fresh random salt."""
    salt = os.urandom(SALT_BYTES)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_DKLEN)
    return f"scrypt$n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a `hash_password` string (by its own parameters); False for a malformed one."""
    try:
        scheme, params, salt, key = stored.split("$")
        p = dict(kv.split("=") for kv in params.split(","))
        n, r, par = int(p["n"]), int(p["r"]), int(p["p"])
        salt_b, key_b = base64.b64decode(salt), base64.b64decode(key)
        # (a hash written with absurd costs is not worked through)
        if scheme != "scrypt" or n > 2**20 or r > 32 or par > 16:
            return False
        got = hashlib.scrypt(password.encode("utf-8"), salt=salt_b, n=n, r=r, p=par, dklen=len(key_b), maxmem=2**28)
    except (ValueError, KeyError, TypeError):
        return False
    return hmac.compare_digest(got, key_b)


@functools.cache
def _dummy_hash() -> str:
    """Worked through for an unknown name, so that a login takes as long either way."""
    return hash_password(os.urandom(8).hex())


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _check_password(password: str, name: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"The password for {name} is too short: it needs at least {MIN_PASSWORD} characters.")


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable() or name == audit.STATION:
        raise AuthError(
            f"A user name is 1 to {MAX_NAME} printable characters (and not {audit.STATION!r}), "
            f"not {name[: MAX_NAME + 1]!r}."
        )
    return name


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise AuthError(f"There is no role {role!r}; the roles are {', '.join(Role)}.") from None


# -- checks ------------------------------------------------------------------------------------
def require(store: Store, user: User, permission: Permission) -> User:
    """`user` as the record has them now, if their account exists, is active and their role grants
    `permission`; else PermissionDenied naming the user, role and what was refused."""
    now = _fresh(store, user, str(permission))
    if permission not in ROLE_PERMISSIONS[now.role]:
        roles = [r.value for r in Role if permission in ROLE_PERMISSIONS[r]]
        needs = roles[0] if len(roles) == 1 else ", ".join(roles[:-1]) + " or " + roles[-1]
        raise PermissionDenied(f"User {now.name} ({now.role}) may not {permission}: that needs the role {needs}.")
    return now


def _fresh(store: Store, user: User, what: str) -> User:
    """`user` re-read from the record; PermissionDenied if the account is gone or disabled."""
    with store.session() as s:
        row = s.get(UserRow, user.id)
    if row is None or row.name != user.name or not row.active:
        raise PermissionDenied(f"User {user.name} ({user.role}) may not {what}: the account was disabled or removed.")
    return User(row.id, row.name, Role(row.role))


def allowed(user: User, permission: Permission) -> bool:
    """What the window may offer `user` (by the role they logged in with); the core still checks with `require`."""
    return permission in ROLE_PERMISSIONS[user.role]


# -- accounts ----------------------------------------------------------------------------------
def has_users(store: Store) -> bool:
    with store.session() as s:
        return bool(s.scalar(select(func.count()).select_from(UserRow)))


def list_users(store: Store) -> list[Account]:
    with store.session() as s:
        rows = s.scalars(select(UserRow).order_by(UserRow.name)).all()
    return [Account(r.id, r.name, Role(r.role), r.active, r.created_at, r.created_by) for r in rows]


def create_first_admin(store: Store, name: str, password: str) -> User:
    """The first account, an admin: only while the record has no users at all (there is no default
    account or password)."""
    name = _check_name(name)
    _check_password(password, name)
    hashed = hash_password(password)
    with audit.session(store) as s:
        if s.scalar(select(func.count()).select_from(UserRow)):
            raise AuthError("The first admin exists already; an admin adds further users.")
        row = _add(s, name, Role.ADMIN, hashed, by=name)
    log.info("first admin %s created", name)
    return User(row.id, row.name, Role.ADMIN)


def create_user(store: Store, by: User, name: str, role: Role | str, password: str) -> User:
    by = require(store, by, Permission.MANAGE_USERS)
    name, role = _check_name(name), _role(role)
    _check_password(password, name)
    hashed = hash_password(password)
    with audit.session(store) as s:
        if s.scalar(select(UserRow).where(UserRow.name == name)) is not None:
            raise AuthError(f"There is already a user {name}.")
        row = _add(s, name, role, hashed, by=by.name)
    return User(row.id, row.name, role)


def _add(s: Session, name: str, role: Role, hashed: str, *, by: str) -> UserRow:
    row = UserRow(name=name, role=role.value, password_hash=hashed, active=True, created_at=utcnow(), created_by=by)
    s.add(row)
    s.flush()
    audit.append(s, who=by, action="user_created", target=name, detail={"role": role.value})
    return row


def authenticate(store: Store, name: str, password: str) -> User:
    """The user, if `name` is an active account and `password` its password (audited `login`);
    else AuthError that never says which was wrong (audited `login_failed`, with the name tried
    only when it is an account's)."""
    tried = name.strip()[:MAX_NAME]
    with store.session() as s:
        row = s.scalar(select(UserRow).where(UserRow.name == tried))
    good = verify_password(password, row.password_hash if row is not None else _dummy_hash())
    with audit.session(store) as s:
        if row is not None and good and row.active:
            audit.append(s, who=row.name, action="login", target=row.name, detail={"role": row.role})
            return User(row.id, row.name, Role(row.role))
        reason = "unknown user" if row is None else "wrong password" if not good else "account disabled"
        # A name that is no account is not kept (people type their password into the name field).
        shown = tried if row is not None else "(unknown user)"
        audit.append(s, who=audit.STATION, action="login_failed", target=shown, detail={"reason": reason})
    log.warning("login refused for %s (%s)", shown, reason)
    raise AuthError(f"Login as {tried} refused: the user name or password is wrong, or the account is disabled.")


def logout(store: Store, user: User, reason: str = "") -> None:
    """Audited `logout`; `reason` e.g. "inactivity", "window closed"."""
    with audit.session(store) as s:
        audit.append(s, who=user.name, action="logout", target=user.name, detail={"reason": reason})


def set_role(store: Store, by: User, name: str, role: Role | str) -> None:
    by, role = require(store, by, Permission.MANAGE_USERS), _role(role)
    with audit.session(store) as s:
        row = _row(s, name)
        if row.role == role.value:
            return
        _keep_an_admin(s, row, f"make {row.name} {role}")
        audit.append(
            s, who=by.name, action="role_changed", target=row.name, detail={"from": row.role, "to": role.value}
        )
        row.role = role.value


def set_active(store: Store, by: User, name: str, active: bool) -> None:
    by = require(store, by, Permission.MANAGE_USERS)
    with audit.session(store) as s:
        row = _row(s, name)
        if row.active == active:
            return
        if not active:
            _keep_an_admin(s, row, f"disable {row.name}")
        audit.append(
            s,
            who=by.name,
            action="user_enabled" if active else "user_disabled",
            target=row.name,
            detail={"role": row.role},
        )
        row.active = active


def set_password(store: Store, by: User, name: str, new_password: str, *, old_password: str | None = None) -> None:
    """An admin sets anyone's password; any other user only their own, giving the old one."""
    name = name.strip()
    by = _fresh(store, by, f"change the password of {name}")
    is_admin = allowed(by, Permission.MANAGE_USERS)
    if not is_admin and name != by.name:
        raise PermissionDenied(
            f"User {by.name} ({by.role}) may not change the password of {name}: that needs the role admin."
        )
    _check_password(new_password, name)
    hashed = hash_password(new_password)
    with audit.session(store) as s:
        row = _row(s, name)
        if not is_admin and not verify_password(old_password or "", row.password_hash):
            raise AuthError(f"The password of {row.name} was not changed: the old password is wrong.")
        audit.append(s, who=by.name, action="password_changed", target=row.name, detail={})
        row.password_hash = hashed


def _row(s: Session, name: str) -> UserRow:
    row = s.scalar(select(UserRow).where(UserRow.name == name.strip()))
    if row is None:
        raise AuthError(f"There is no user {name.strip()}.")
    return row


def _keep_an_admin(s: Session, row: UserRow, what: str) -> None:
    if row.role == Role.ADMIN and row.active:
        admins = s.scalar(
            select(func.count()).select_from(UserRow).where(UserRow.role == Role.ADMIN.value, UserRow.active.is_(True))
        )
        if (admins or 0) <= 1:
            raise AuthError(f"Cannot {what}: {row.name} is the last active admin (make another admin first).")
