"""The Qt main window and its widgets (PySide6 lives only in this package)."""
