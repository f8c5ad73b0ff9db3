"""Training: one loop for every learned method (``trainer``: ``Trainer``, the ``Objective``
a method implements, ``TrainBatch`` in ``batch``), SPIN's objective (``spin``) and the
synthetic training sets they read (``data``). See docs/training.md."""
