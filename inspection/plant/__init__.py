"""Plant: the station's wiring to the rest of the plant - the PLC handshake (handshake.py, its
signals in signals.py, what it needs of the line in line_view.py), its transports (opcua.py,
modbus.py over the threaded server base in server.py), the link that starts one (link.py), and
the verdict log a downstream system reads (verdict_log.py).

May import runtime/ and the rooms below it, never engineering/ or reports/ (its siblings) and
never SQLAlchemy: the plant database's forwarder belongs to the record."""
