"""``python -m mae.pretrain --config NAME [--data_path DIR | --generated_data] [--output_dir DIR]
[--resume [CKPT]] [--<any config key> VALUE ...]``

Masked Autoencoder pretraining. The named config (mae/configs.yml) supplies the defaults and flags
override them (``--help`` lists every key). Bad input is reported in one line with exit status 2.
The loop itself lives in :mod:`mae.engine_pretrain` (CPU/CUDA) and :mod:`mae.engine_ipu` (IPU),
imported after the flags and the data path are checked, so ``--help`` and such errors are instant.
"""
from __future__ import annotations

import sys

from mae import config
from mae.errors import user_errors


def main(argv: list[str] | None = None) -> int:
    with user_errors("mae.pretrain"):
        cfg = config.parse(argv, job="pretrain")
        if cfg.device == "ipu":
            from mae import engine_ipu  # poptorch is imported only on this path

            engine_ipu.run(cfg)
            return 0
        if not cfg.generated_data and cfg.data_path:
            from mae import data

            data.preflight(cfg.data_path, "train")  # bad data paths fail before torch loads
        from mae import engine_pretrain

        engine_pretrain.run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
