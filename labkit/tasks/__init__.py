"""Tasks: one per domain (image classification, text classification, language modelling, sequences).

Each is registered in the plugin registry under the ``task`` kind, as a plugin's task would be.
"""

from labkit.plugins.registry import registry
from labkit.tasks.base import Loaders, Task
from labkit.tasks.image_classification import ImageClassification
from labkit.tasks.language_model import LanguageModel
from labkit.tasks.sequence import SequenceClassification, SequenceRegression
from labkit.tasks.text_classification import TextClassification

for _task in (ImageClassification, TextClassification, LanguageModel, SequenceClassification, SequenceRegression):
    registry.register("task", _task.__name__, _task, owner="labkit")

__all__ = [
    "ImageClassification", "LanguageModel", "Loaders", "SequenceClassification", "SequenceRegression", "Task",
    "TextClassification",
]  # fmt: skip
