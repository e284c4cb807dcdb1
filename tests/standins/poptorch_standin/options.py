"""STAND-IN (tests only) for ``poptorch.Options`` and the option objects mae.ipu uses.

Same method names and parameters as PopTorch 3.3 (graphcore/poptorch tag sdk/poptorch/3.3.0,
python/options.py, recorded in tests/poptorch_manifest.json); the values are stored, the
constraints the runtime part of the stand-in enforces read them.
"""
from __future__ import annotations

import enum

import torch


class OutputMode(enum.IntEnum):
    Final = 0
    EveryN = 1
    All = 2
    Sum = 3
    Default = 4


class ReductionType(enum.IntEnum):
    Sum = 0
    Mean = 1
    NoReduction = 2


class MeanReductionStrategy(enum.IntEnum):
    Running = 0
    Post = 1


class AutoStage(enum.IntEnum):
    SameAsIpu = 0
    AutoIncrement = 1


class DataLoaderMode(enum.IntEnum):
    Sync = 0
    Async = 1
    AsyncRebatched = 2


class PipelinedExecution:
    """``PipelinedExecution(*args)``: an AutoStage (default SameAsIpu) or explicit block ids."""

    sharded = False

    def __init__(self, *args):
        self.auto_stage = AutoStage.SameAsIpu
        self.block_ids: list[str] = []
        if len(args) == 1 and isinstance(args[0], AutoStage):
            self.auto_stage = args[0]
        else:
            for arg in args:
                self.block_ids.extend([arg] if isinstance(arg, str) else list(arg))


class ShardedExecution(PipelinedExecution):
    sharded = True


class TensorLocationSettings:
    def __init__(self):
        self.values: dict = {}

    def useOnChipStorage(self, use: bool = True) -> "TensorLocationSettings":
        self.values["onChip"] = int(use)
        return self

    def useReplicatedTensorSharding(self, use: bool = True) -> "TensorLocationSettings":
        self.values["useReplicatedTensorSharding"] = int(use)
        return self

    def minElementsForReplicatedTensorSharding(self, min_elements: int) -> "TensorLocationSettings":
        self.values["minElementsForReplicatedTensorSharding"] = min_elements
        return self


class _TrainingOptions:
    def __init__(self):
        self.gradient_accumulation = 1
        self.accumulation_and_replication_reduction_type = ReductionType.Mean

    def gradientAccumulation(self, gradient_accumulation: int) -> "_TrainingOptions":
        self.gradient_accumulation = int(gradient_accumulation)
        return self

    def accumulationAndReplicationReductionType(self, reduction_type: ReductionType) -> "_TrainingOptions":
        if reduction_type not in (ReductionType.Sum, ReductionType.Mean):  # options.py _check_reduction_arg
            raise ValueError("accumulationAndReplicationReductionType must be set to Sum or Mean")
        self.accumulation_and_replication_reduction_type = reduction_type
        return self


class _PrecisionOptions:
    def __init__(self):
        self.stochastic_rounding = False
        self.partials_type = torch.float32

    def enableStochasticRounding(self, enabled: bool) -> "_PrecisionOptions":
        self.stochastic_rounding = bool(enabled)
        return self

    def setPartialsType(self, dtype: torch.dtype) -> "_PrecisionOptions":
        if dtype not in (torch.float, torch.float32, torch.half, torch.float16):  # options.py setPartialsType
            raise ValueError("parameter to setPartialsType should be either torch.float or torch.half")
        self.partials_type = dtype
        return self


class _TensorLocationOptions:
    def __init__(self):
        self.optimizer: TensorLocationSettings | None = None

    def setOptimizerLocation(self, location: TensorLocationSettings) -> "_TensorLocationOptions":
        if not isinstance(location, TensorLocationSettings):
            raise TypeError("setOptimizerLocation takes a poptorch.TensorLocationSettings")
        self.optimizer = location
        return self


class Options:
    """STAND-IN for ``poptorch.Options`` (values stored; read by the stand-in's models)."""

    def __init__(self):
        self.replication_factor = 1
        self.device_iterations = 1
        self.output_mode = OutputMode.Default
        self.random_seed = None
        self.executable_cache = None
        self.strategy: PipelinedExecution | None = None
        self.available_memory_proportion: dict = {}
        self.Training = _TrainingOptions()
        self.Precision = _PrecisionOptions()
        self.TensorLocations = _TensorLocationOptions()

    def replicationFactor(self, replication_factor: int) -> "Options":
        self.replication_factor = int(replication_factor)
        return self

    def deviceIterations(self, device_iterations: int) -> "Options":
        self.device_iterations = int(device_iterations)
        return self

    def outputMode(self, output_mode: OutputMode, output_return_period=None) -> "Options":
        self.output_mode = output_mode
        return self

    def randomSeed(self, random_seed: int) -> "Options":
        self.random_seed = int(random_seed)
        return self

    def enableExecutableCaching(self, path: str) -> "Options":
        self.executable_cache = path
        return self

    def setExecutionStrategy(self, strategy) -> "Options":
        if not isinstance(strategy, PipelinedExecution):
            raise TypeError("setExecutionStrategy takes an execution strategy")
        self.strategy = strategy
        return self

    def setAvailableMemoryProportion(self, available_memory_proportion: dict):
        for key, value in available_memory_proportion.items():  # options.py: keys "IPU<n>", 0 < value <= 1
            if not (key.startswith("IPU") and key[3:].isdigit()) or not 0.0 < float(value) <= 1.0:
                raise ValueError(f"setAvailableMemoryProportion: bad entry {key!r}: {value!r}")
        self.available_memory_proportion = dict(available_memory_proportion)
        return self
