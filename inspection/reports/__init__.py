"""Reports: figures read from the record - the shift report's data, CSV and JSON (figures.py),
its PDF (pdf.py), the automatic shift reporter (shifts.py) and the window's counters and trend
(stats.py).

May import runtime/ (overlays), access/, record/, settings/ and the shared vocabulary, never
plant/ or engineering/ (its siblings)."""
