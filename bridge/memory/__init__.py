"""A bridge held in this process (``memory://NAME``): the contract without a file, for tests."""

from ._backend import MemoryBridge, MemoryFollower, forget

__all__ = ["MemoryBridge", "MemoryFollower", "forget"]
