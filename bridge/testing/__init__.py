"""Local stand-ins for services out of reach in tests and demos.

They speak the real wire format, so the real client libraries are used against
them unchanged: :mod:`bridge.testing.messages_api` is the Anthropic Messages
API, :mod:`bridge.testing.greenapi` is Green API (WhatsApp), :mod:`bridge.testing.health`
an agent's ``/health``. Nothing here is imported by the library itself.
"""
