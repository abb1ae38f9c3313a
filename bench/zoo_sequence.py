"""Sequence and tabular classifiers for the model-zoo table, at the sizes of real ones.

tools/make_zoo_fixtures.py builds small versions of these from torch.nn so that the fixtures
stay under a few MB; the benchmark needs the sizes that such models have in use, so that the
time goes where it goes in practice (the recurrent steps of an LSTM over 128 tokens, the
matrix products of a 256-wide encoder, the 10^5-row batches of a tabular MLP):

* transformer_encoder  4 pre-norm encoder layers (d_model 256, 4 heads, feed-forward 1024,
                       GELU) over [N, 128, 256] embedded tokens, mean over time, 10 classes;
* lstm_text            int64 token ids [N, 128] from a vocabulary of 8000, embedding 128,
                       LSTM with 256 hidden units, the last hidden state to 4 classes;
* gru_sequence         float features [N, 100, 32] (a sensor window), 2-layer GRU with 128
                       hidden units, the last step to 6 classes;
* cnn1d                12-lead signals [N, 12, 1000] (an ECG strip), 4 Conv1d blocks of
                       64..256 channels with BatchNorm, ReLU and pooling, 5 classes;
* mlp_tabular          256 tabular features, 3 hidden layers of 512, 512 and 256 with
                       BatchNorm and ReLU, 10 classes.

MODELS maps each name to (builder, input maker): the maker turns a NumPy generator and a
sample count into that many inputs in the model's own type (float32 features or int64 ids).
"""

import numpy as np
import torch.nn as nn

VOCAB = 8000
TOKENS = 128


class EncoderClassifier(nn.Module):
    """nn.TransformerEncoder over [N, T, D], mean over time, a linear head."""

    def __init__(self, d_model=256, heads=4, feedforward=1024, layers=4, classes=10):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model, heads, feedforward, dropout=0.1,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, x):
        return self.head(self.encoder(x).mean(dim=1))


class LSTMText(nn.Module):
    """int64 tokens -> Embedding -> LSTM -> Linear on the last hidden state."""

    def __init__(self, embed=128, hidden=256, classes=4):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, tokens):
        _, (h, _) = self.lstm(self.embed(tokens))
        return self.head(h[-1])


class GRUSequence(nn.Module):
    """float features [N, T, F] -> 2-layer GRU -> Linear on the last time step's output."""

    def __init__(self, features=32, hidden=128, classes=6):
        super().__init__()
        self.gru = nn.GRU(features, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out[:, -1])


def cnn1d(leads=12, classes=5):
    def block(cin, cout, kernel):
        return [nn.Conv1d(cin, cout, kernel, padding=kernel // 2), nn.BatchNorm1d(cout),
                nn.ReLU(), nn.MaxPool1d(2)]

    return nn.Sequential(*block(leads, 64, 7), *block(64, 128, 5), *block(128, 128, 5),
                         *block(128, 256, 3), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                         nn.Linear(256, classes))


def mlp_tabular(features=256, classes=10):
    return nn.Sequential(
        nn.Linear(features, 512), nn.BatchNorm1d(512), nn.ReLU(),
        nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
        nn.Linear(512, 256), nn.BatchNorm1d(256), nn.ReLU(),
        nn.Linear(256, classes))


def normal(*shape):
    return lambda rng, n: rng.standard_normal((n,) + shape, dtype=np.float32)


def token_ids(rng, n):
    return rng.integers(0, VOCAB, (n, TOKENS), dtype=np.int64)


MODELS = {
    "transformer_encoder": (EncoderClassifier, normal(TOKENS, 256)),
    "lstm_text": (LSTMText, token_ids),
    "gru_sequence": (GRUSequence, normal(100, 32)),
    "cnn1d": (cnn1d, normal(12, 1000)),
    "mlp_tabular": (mlp_tabular, normal(256)),
}
