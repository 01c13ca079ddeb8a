"""Models for the built-in tasks, built from ``labkit.nn`` layers.

Each constructor takes the sizes its task reports (``Task.model_kwargs()``) plus its own
hyperparameters and a ``generator`` for the initial weights and dropout masks:

- images: ``SmallCNN``, ``MLP``
- text classification (``model(ids, lengths)``): ``BagOfEmbeddings``, ``TextLSTM``, ``TextTransformer``
- character language modelling: ``CharLSTMLM`` (with ``generate``)
- sequences (classification and regression): ``SequenceRNN``
"""

from labkit.models.language import CharLSTMLM
from labkit.models.sequence import SequenceRNN
from labkit.models.text import BagOfEmbeddings, TextLSTM, TextTransformer
from labkit.models.vision import MLP, SmallCNN

__all__ = ["MLP", "BagOfEmbeddings", "CharLSTMLM", "SequenceRNN", "SmallCNN", "TextLSTM", "TextTransformer"]
