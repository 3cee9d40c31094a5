"""kami agent (arrives with its own issue; depends only on bridge/)."""
