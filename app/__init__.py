"""The Qt GUI and the command line. Nothing imports `app`."""
