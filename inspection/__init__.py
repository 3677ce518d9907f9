"""The inspection core, headless (no Qt), in rooms in the order a part's data flows through them:

- settings/     station config and recipes, checked (the bottom room)
- record/       what the station keeps: schema, migrations, the store, images, the writer, retention
- access/       users, roles and permissions, the audit trail
- runtime/      the runner's threads, verdicts, alarms, the reject gate, the events it pushes
- plant/        the PLC handshake and its transports, the verdict log
- engineering/  review, relabels, dataset export, retraining, promotions, threshold changes
- reports/      shift reports (figures, PDF) and the window's counters
- line.py       the composition root: `Line` and `open_line` put the rooms together

Shared by all: errors.py (the error hierarchy), result.py (`InspectionResult`, `Verdict`) and
priority.py (background threads). A room imports only the rooms listed before it, and siblings
(plant, engineering, reports) never each other; pyproject.toml's import contracts keep it so.
"""
