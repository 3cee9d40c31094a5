"""The local store: one directory holding the log, its lock, cursors, PAUSE file and the fold."""
