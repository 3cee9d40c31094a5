"""Kami, the WhatsApp agent: Green API in, the bridge in between, WhatsApp out.

``kami run --config /etc/kami-bridge/kami.toml`` (docs/kami.md). Importing this
package does nothing; :mod:`kami._main` is the command line.
"""
