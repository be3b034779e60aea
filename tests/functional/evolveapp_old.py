"""The class of the stored objects before a rename (the rename test
moves it to :mod:`tests.functional.evolveapp_new`)."""

from persistent import Persistent


class Thing(Persistent):
    def __init__(self, number: int = 0) -> None:
        self.number = number
        self.version = 1
