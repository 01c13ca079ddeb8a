"""``labkit.nn``: modules, parameters, containers and initialisers.

import labkit.nn as nn

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
"""

from __future__ import annotations

from labkit.nn import init
from labkit.nn.containers import ModuleDict, ModuleList, Sequential
from labkit.nn.module import IncompatibleKeys, Module
from labkit.nn.parameter import Parameter

__all__ = ["IncompatibleKeys", "Module", "ModuleDict", "ModuleList", "Parameter", "Sequential", "init"]

# ---- layers: one module per family, each name exported here -------------------------

from labkit.nn.activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Softplus, Tanh
from labkit.nn.attention import MultiheadAttention, causal_mask, padding_mask
from labkit.nn.cells import GRUCell, LSTMCell, RNNCell, RNNCellBase
from labkit.nn.conv import Conv1d, Conv2d
from labkit.nn.dropout import Dropout
from labkit.nn.embedding import Embedding
from labkit.nn.linear import Bilinear, Flatten, Identity, Linear, Unflatten
from labkit.nn.loss import (
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
    sequence_cross_entropy,
)
from labkit.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from labkit.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from labkit.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEmbedding
from labkit.nn.recurrent import GRU, LSTM, RNN, RNNBase
from labkit.nn.sequence import lengths_to_mask, pad_sequence, unpad_sequence
from labkit.nn.transformer import TransformerEncoder, TransformerEncoderLayer

__all__ += [
    "ELU", "GELU", "LeakyReLU", "LogSoftmax", "ReLU", "SiLU", "Sigmoid", "Softmax", "Softplus", "Tanh",
    "Conv1d", "Conv2d", "Dropout", "Embedding", "Bilinear", "Flatten", "Identity", "Linear", "Unflatten",
    "BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "MSELoss", "NLLLoss", "SmoothL1Loss", "sequence_cross_entropy",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d",
    "LearnedPositionalEmbedding", "MultiheadAttention", "SinusoidalPositionalEmbedding", "TransformerEncoder",
    "TransformerEncoderLayer", "causal_mask", "padding_mask",
    "GRU", "LSTM", "RNN", "RNNBase", "GRUCell", "LSTMCell", "RNNCell", "RNNCellBase",
    "lengths_to_mask", "pad_sequence", "unpad_sequence",
]  # fmt: skip
