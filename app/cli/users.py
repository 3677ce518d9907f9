"""`users`: the station's accounts and their roles (init, add, list, set-role, disable, enable, passwd)."""

from __future__ import annotations

import argparse

from app.cli.common import ask_password, logged_in, open_read_only


def cmd_users(args: argparse.Namespace) -> int:
    from inspection.access import users
    from inspection.record.opening import open_record
    from inspection.settings.config import default_db

    if args.users_command == "list":
        with open_read_only(args.db) as store:
            accounts = users.list_users(store)
        if not accounts:
            print("No users yet: create the first admin with `lepton-inspect users init --name NAME`.")
        for a in accounts:
            state = "active" if a.active else "disabled"
            print(f"{a.name:<24} {a.role:<9} {state:<9} created {a.created_at:%Y-%m-%d %H:%M} UTC by {a.created_by}")
        return 0
    with open_record(args.db or default_db()) as store:
        if args.users_command == "init":
            users.create_first_admin(store, args.name, ask_password(args.name, new=True))
            print(f"created admin {args.name.strip()} in {store.path}")
            return 0
        with logged_in(store, args.user) as (me, password):
            if args.users_command == "add":
                users.create_user(store, me, args.name, args.role, ask_password(args.name, new=True))
                done = f"added {args.name.strip()} ({args.role})"
            elif args.users_command == "set-role":
                users.set_role(store, me, args.name, args.role)
                done = f"{args.name.strip()} is now {args.role}"
            elif args.users_command in ("disable", "enable"):
                users.set_active(store, me, args.name, args.users_command == "enable")
                done = f"{args.name.strip()} {args.users_command}d"
            else:
                whose = args.name or me.name
                users.setask_password(store, me, whose, ask_password(whose, new=True), old_password=password)
                done = f"password of {whose.strip()} changed"
    print(done)
    return 0
