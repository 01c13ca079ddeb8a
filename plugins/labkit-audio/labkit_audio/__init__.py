"""labkit-audio: audio classification as a labkit plugin (plugin name ``audio``).

Modules: ``wav`` (read/write PCM WAV), ``synth`` (the seeded ``tones`` synthesiser),
``features`` (STFT, power and log-mel spectrograms, numpy only), ``dataset`` (``AudioFolder``
and the ``tones`` loader), ``task`` (``AudioClassification``), ``models`` (``AudioCNN``),
``plots`` (spectrogram figures), ``catalog`` (the ``tones`` DatasetSpec), ``checks`` (the
conformance kit's example), ``plugin`` (``register(registry)``). Importing this package
imports none of them.
"""

__version__ = "0.1.1"
