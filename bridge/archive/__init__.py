"""The archive: rotating old records out of the log, and searching the archives."""
