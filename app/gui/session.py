"""Who is at the station: login, the first administrator, logout after inactivity, and the admin's
user list. The checks themselves are in the core (inspection.access.users: every change re-reads the
user's row); the window only greys out what the logged-in role may not do.

`SessionController` runs every password check and user change on the line controller's worker
(scrypt takes a while, and the store is the open line's); its signals come back on the GUI thread.
Logging out takes effect at once on the GUI thread, the record follows on the worker. The line
keeps running while nobody is logged in: an operator's session ending must not stop production,
and Stop is never locked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.controller import LineController
from app.gui.widgets import append_item
from inspection.access import users
from inspection.access.users import Permission, Role, User
from inspection.errors import AuthError
from inspection.record.store import Store

log = logging.getLogger(__name__)


class SessionController(QObject):
    user_changed = Signal(object)  # User or None
    first_start = Signal(bool)  # True: no account exists yet; the first administrator must be created
    accounts_loaded = Signal(object)  # [users.Account]
    failed = Signal(str)  # one sentence

    def __init__(self, line: LineController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.line = line
        self.user: User | None = None
        self.idle_timer = QTimer(self)
        self.idle_timer.setSingleShot(True)
        self.idle_timer.timeout.connect(self._idle_timeout)

    def may(self, permission: Permission) -> bool:
        return self.user is not None and users.allowed(self.user, permission)

    # -- GUI thread --------------------------------------------------------------------------
    def check(self) -> None:
        """After the line opened: is there an account at all?"""
        self.line.submit("Reading the user accounts", self._check_job)

    def login(self, name: str, password: str) -> None:
        self.line.submit(
            "Checking the password",
            lambda: self._with_store(lambda store: self._logged_in(users.authenticate(store, name, password))),
        )

    def create_admin(self, name: str, password: str, repeat: str) -> None:
        if password != repeat:
            self.failed.emit("The two passwords differ; type the same password twice.")
            return

        def create(store: Store) -> None:
            users.create_first_admin(store, name, password)
            self._logged_in(users.authenticate(store, name, password))

        self.line.submit("Creating the administrator", lambda: self._with_store(create))

    def logout(self, reason: str = "") -> None:
        """Lock at once (GUI thread); the logout is recorded on the worker."""
        user, self.user = self.user, None
        self.idle_timer.stop()
        self.user_changed.emit(None)
        if user is not None:
            self.line.submit("Logging out", lambda: self._with_store(lambda store: users.logout(store, user, reason)))

    def touch(self) -> None:
        """Any key or click: the inactivity countdown starts again."""
        if self.user is not None and self.idle_timer.interval() > 0:
            self.idle_timer.start()

    def set_idle_minutes(self, minutes: float) -> None:
        self.idle_timer.setInterval(int(minutes * 60_000))
        if minutes <= 0:
            self.idle_timer.stop()

    # -- the admin's user list ---------------------------------------------------------------
    def load_accounts(self) -> None:
        self.line.submit(
            "Reading the user accounts", lambda: self.accounts_loaded.emit(users.list_users(self._store()))
        )

    def add_user(self, name: str, role: str, password: str) -> None:
        self._change("Adding the user", lambda store, by: users.create_user(store, by, name, role, password))

    def set_role(self, name: str, role: str) -> None:
        self._change("Changing the role", lambda store, by: users.set_role(store, by, name, role))

    def set_active(self, name: str, active: bool) -> None:
        self._change("Changing the account", lambda store, by: users.set_active(store, by, name, active))

    def set_password(self, name: str, password: str) -> None:
        self._change("Setting the password", lambda store, by: users.set_password(store, by, name, password))

    # -- worker ----------------------------------------------------------------------------------
    def _store(self) -> Store:
        """(worker) The open line's store."""
        line = self.line.line
        if line is None:
            raise AuthError("The station is not open yet; wait until the line is ready.")
        return line.store

    def _with_store(self, job: Callable[[Store], None]) -> None:
        """`job(store)` on the open line's store, or - when the line could not open (a model that does
        not load, a missing camera) - on the database opened for this job alone: someone must be
        able to log in and put the station right (pick another camera, roll a model back)."""
        line = self.line.line
        if line is not None:
            job(line.store)
            return
        from inspection.record.opening import open_record

        with open_record(self.line.db) as store:
            job(store)

    def _check_job(self) -> None:
        self._with_store(lambda store: self.first_start.emit(not users.has_users(store)))

    def _logged_in(self, user: User) -> None:
        self.first_start.emit(False)
        self.user_changed.emit(user)

    def _change(self, what: str, change: Callable[[Store, User], object]) -> None:
        """(GUI thread) An administrator's change of the accounts, `change(store, admin)`, on the worker."""
        by = self.user
        if by is None:
            self.failed.emit("Log in as an administrator first.")
            return

        def job() -> None:
            store = self._store()
            change(store, by)
            self.accounts_loaded.emit(users.list_users(store))

        self.line.submit(what, job)

    # -- signals back on the GUI thread ----------------------------------------------------------
    def on_user_changed(self, user: User | None) -> None:
        """Connected by the window (GUI thread): remember who is in and start the countdown."""
        self.user = user
        if user is not None:
            self.touch()

    def _idle_timeout(self) -> None:
        if self.user is not None:
            log.info(
                "logging %s out after %d minutes without input", self.user.name, self.idle_timer.interval() // 60_000
            )
            self.logout("inactivity")


class LoginBar(QWidget):
    """Above the tabs: the login fields (or, at first start, the administrator's), else who is in."""

    def __init__(self, session: SessionController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("loginBar")
        self.session = session
        self.first = False
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 2, 8, 2)
        self.prompt = QLabel("Log in:")
        self.name = QLineEdit()
        self.name.setPlaceholderText("name")
        self.name.setObjectName("loginName")
        self.password = QLineEdit()
        self.password.setPlaceholderText("password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setObjectName("loginPassword")
        self.repeat = QLineEdit()
        self.repeat.setPlaceholderText("password again")
        self.repeat.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat.hide()
        self.login_button = QPushButton("Log in")
        self.login_button.setObjectName("loginButton")
        self.who = QLabel("")
        self.who.setObjectName("loginWho")
        self.logout_button = QPushButton("Log out")
        self.logout_button.setObjectName("logoutButton")
        for w in (self.prompt, self.name, self.password, self.repeat, self.login_button):
            layout.addWidget(w)
        layout.addStretch(1)
        layout.addWidget(self.who)
        layout.addWidget(self.logout_button)
        self.login_button.clicked.connect(self._submit)
        self.password.returnPressed.connect(self._submit)
        self.repeat.returnPressed.connect(self._submit)
        self.logout_button.clicked.connect(self._logout)
        session.first_start.connect(self.set_first_start)
        self.show_user(None)

    def set_first_start(self, first: bool) -> None:
        self.first = first
        self.repeat.setVisible(first and self.session.user is None)
        self.prompt.setText("No account yet - create the administrator:" if first else "Log in:")
        self.login_button.setText("Create administrator" if first else "Log in")

    def show_user(self, user: User | None) -> None:
        logged_out = user is None
        for w in (self.prompt, self.name, self.password, self.login_button):
            w.setVisible(logged_out)
        self.repeat.setVisible(logged_out and self.first)
        self.logout_button.setVisible(not logged_out)
        self.who.setText(
            f"Logged in: {user.name} ({user.role.value})"
            if user
            else "Nobody logged in: the line runs, changes need a login"
        )
        self.password.clear()
        self.repeat.clear()

    def _submit(self) -> None:
        name, password = self.name.text().strip(), self.password.text()
        if self.first:
            self.session.create_admin(name, password, self.repeat.text())
        else:
            self.session.login(name, password)
        self.password.clear()
        self.repeat.clear()

    def _logout(self) -> None:
        self.session.logout("logged out")


class UsersView(QWidget):
    """The administrator's tab: the accounts, adding one, changing a role, disabling, a new password."""

    def __init__(self, session: SessionController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.list = QListWidget()
        self.list.setObjectName("userList")
        self.accounts: list[users.Account] = []
        self.name = QLineEdit()
        self.name.setObjectName("userName")
        self.role = QComboBox()
        self.role.setObjectName("userRole")
        for r in Role:
            self.role.addItem(r.value, r.value)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setObjectName("userPassword")
        self.add_button = QPushButton("Add user")
        self.add_button.setObjectName("addUserButton")
        self.role_button = QPushButton("Set role")
        self.toggle_button = QPushButton("Disable / enable")
        self.password_button = QPushButton("Set password")
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Role", self.role)
        form.addRow("Password (8 characters or more)", self.password)
        buttons = QHBoxLayout()
        for b in (self.add_button, self.role_button, self.toggle_button, self.password_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Accounts (a user is disabled, never deleted: the audit trail names them)"))
        layout.addWidget(self.list, 1)
        layout.addLayout(form)
        layout.addLayout(buttons)
        self.list.currentRowChanged.connect(self._pick)
        self.add_button.clicked.connect(self._add)
        self.role_button.clicked.connect(
            lambda: self.session.set_role(self.name.text().strip(), self.role.currentData())
        )
        self.toggle_button.clicked.connect(self._toggle)
        self.password_button.clicked.connect(self._password)
        session.accounts_loaded.connect(self.show_accounts)

    def activate(self) -> None:
        self.session.load_accounts()

    def show_accounts(self, accounts: list) -> None:
        self.accounts = list(accounts)
        self.list.clear()
        for a in self.accounts:
            append_item(self.list, f"{a.name}  -  {a.role.value}" + ("" if a.active else "  (disabled)"))
        self.password.clear()

    def _pick(self, row: int) -> None:
        if 0 <= row < len(self.accounts):
            a = self.accounts[row]
            self.name.setText(a.name)
            self.role.setCurrentIndex(self.role.findData(a.role.value))

    def _add(self) -> None:
        self.session.add_user(self.name.text().strip(), self.role.currentData(), self.password.text())

    def _toggle(self) -> None:
        name = self.name.text().strip()
        account = next((a for a in self.accounts if a.name == name), None)
        if account is not None:
            self.session.set_active(name, not account.active)

    def _password(self) -> None:
        self.session.set_password(self.name.text().strip(), self.password.text())
