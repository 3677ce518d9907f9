"""Runtime: what happens to each part while the line runs - the runner's pipeline of threads
(runner.py; a lost camera's reconnection in camera_loss.py), the station's cameras and trigger gate
(station.py), a part's views and results (part.py), verdicts (verdict.py), alarms (alarms.py),
the reject gate (reject_gate.py), the state the runner reports (status.py), the events the core
pushes (events.py), overlays drawn on a part (overlay.py) and predicting on image files (files.py).

May import access/, record/, settings/ and the shared vocabulary, never SQLAlchemy itself: what
it keeps goes through the record's functions."""
