"""Pipeline placement of MAE and ViT on IPUs (pure: no SDK needed, tested everywhere).

``pipeline`` lists blocks per IPU: the first half for the encoder, the second half for the decoder
(for a classifier, ``dec_depth == 0``, the whole list is the encoder). The patch embedding goes with
encoder block 0, the decoder embedding with decoder block 0, each norm with the last block before
it, the decoder prediction (and the loss after it) on the last IPU; a classifier's fc_norm and head
on the last IPU.
"""
from __future__ import annotations

from mae.errors import ConfigError

def _split_pipeline(pipeline, enc_depth: int, dec_depth: int) -> tuple[list[int], list[int]]:
    """Validate ``pipeline`` (blocks per IPU) and split it into encoder and decoder stages."""
    where = f"config key `pipeline` {list(pipeline)!r}"
    if not isinstance(pipeline, (list, tuple)) or not pipeline:
        raise ConfigError(f"{where}: give a non-empty list of blocks per IPU, e.g. [3, 3, 3, 3, 2, 2, 2, 2]")
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in pipeline):
        raise ConfigError(f"{where}: every entry must be a whole number of blocks (0 or more)")
    if dec_depth == 0:  # encoder-only model (classifier): the whole list is the encoder
        enc, dec = list(pipeline), []
    else:
        if len(pipeline) % 2:
            raise ConfigError(f"{where}: needs an even length, the first half for the encoder and the second "
                              "half for the decoder, one entry per IPU")
        half = len(pipeline) // 2
        enc, dec = list(pipeline[:half]), list(pipeline[half:])
    if sum(enc) != enc_depth:
        raise ConfigError(f"{where}: the encoder stages hold {sum(enc)} blocks but the model has {enc_depth} "
                          "encoder blocks; make the encoder entries add up to the model's depth")
    if sum(dec) != dec_depth:
        raise ConfigError(f"{where}: the decoder stages hold {sum(dec)} blocks but the model has {dec_depth} "
                          "decoder blocks; make the decoder entries add up to the decoder depth")
    return enc, dec


def ipus_per_replica(pipeline, enc_depth: int, dec_depth: int) -> int:
    """How many IPUs one replica of the model spans under ``pipeline``."""
    enc, _ = _split_pipeline(pipeline, enc_depth, dec_depth)
    return len(enc)


def _block_ipus(stages: list[int]) -> list[int]:
    return [ipu for ipu, count in enumerate(stages) for _ in range(count)]


def assign_stages(pipeline, enc_depth: int, dec_depth: int, classifier: bool = False) -> dict[str, int]:
    """Module name -> IPU, as the reference places MAE on a pipeline of IPUs.

    ``pipeline`` lists blocks per IPU: the first half for the encoder, the second half for the
    decoder (with ``dec_depth == 0`` the whole list is the encoder). The patch embedding goes with
    encoder block 0, the decoder embedding with decoder block 0, each norm with the last block
    before it, and the decoder prediction (and so the loss computed after it) on the last IPU.
    The dict is in execution order: each entry starts a new pipeline stage.
    """
    enc, dec = _split_pipeline(pipeline, enc_depth, dec_depth)
    enc_ipus = _block_ipus(enc)
    stages: dict[str, int] = {"patch_embed": enc_ipus[0]}
    stages.update({f"blocks.{i}": ipu for i, ipu in enumerate(enc_ipus)})
    stages["norm"] = enc_ipus[-1]
    if dec_depth:
        dec_ipus = _block_ipus(dec)
        stages["decoder_embed"] = dec_ipus[0]
        stages.update({f"decoder_blocks.{i}": ipu for i, ipu in enumerate(dec_ipus)})
        stages["decoder_norm"] = dec_ipus[-1]
        stages["decoder_pred"] = len(dec) - 1
    if classifier:
        stages["fc_norm"] = enc_ipus[-1]
        stages["head"] = enc_ipus[-1]
    return stages
