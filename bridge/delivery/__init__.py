"""Delivery: watching the log for change and following it from a position."""
