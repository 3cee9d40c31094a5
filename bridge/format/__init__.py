"""The log format: records, their ids and times, and reading complete lines from any offset."""
