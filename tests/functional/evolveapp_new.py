"""The class of the stored objects after the rename test: ``Item`` in
this module, which was ``Thing`` in :mod:`tests.functional.evolveapp_old`."""

from persistent import Persistent


class Item(Persistent):
    def __init__(self, number: int = 0) -> None:
        self.number = number
        self.version = 1
