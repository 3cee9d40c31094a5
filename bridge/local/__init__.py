"""The local backend: a bridge directory on this machine."""
