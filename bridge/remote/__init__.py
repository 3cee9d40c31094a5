"""The remote backends: bridge URLs, SSH, the wire protocol, `bridge serve` and its client, the SFTP fallback."""
