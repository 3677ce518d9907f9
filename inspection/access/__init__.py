"""Access: who may do what (users.py: roles, permissions, accounts) and the audit trail that keeps
what was done (audit.py), with a run's start audited (runs.py).

May import record/, settings/ and the shared vocabulary; the record only as the session provider."""
