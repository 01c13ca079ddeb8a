"""labkit-mingru: minGRU (Feng et al. 2024, "Were RNNs All We Needed?") as a labkit plugin.

Light on purpose (labkit's plugin discovery imports ``labkit_mingru.plugin``, never this
package's heavy modules): import ``labkit_mingru.ops`` (``parallel_scan``, ``min_gru_scan``),
``labkit_mingru.layers`` (``MinGRU``, ``MinGRUBlock``) and ``labkit_mingru.models``
(``MinGRULM``) directly.
"""

__version__ = "0.1.0"
