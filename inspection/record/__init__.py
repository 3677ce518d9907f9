"""The record: what the station keeps - the schema and its migrations, the store and its openers
(opening.py), part images on disk (images.py), the writer, a run's start (runs.py), crash
reconciliation, retention, recipe versions, the event log, SQL helpers (sqlfn.py), plant-database
servers (server.py) and the forwarder that fills one (forwarding.py).

May import settings/ and the shared vocabulary (inspection.errors, .result, .priority), never
access/ or anything above: the store keeps rows; the rules about them live above it."""
