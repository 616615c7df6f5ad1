"""Built-in search spaces. Importing this package registers them with ``raynas``.

Each module declares one space with the raynas DSL and builds its PyTorch model; the pure
network code lives in ``search_spaces.models`` and is imported only when a model is built.
"""

from search_spaces import darts, mlp, mobilenet, nb201

__all__ = ["darts", "mlp", "mobilenet", "nb201"]
