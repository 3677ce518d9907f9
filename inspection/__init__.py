"""The inspection core: runner, verdicts, config and recipes, the SQLite record. No Qt here."""
