"""The remote backends: URLs, SSH, the wire, `bridge serve` and its client, the SFTP fallback."""
