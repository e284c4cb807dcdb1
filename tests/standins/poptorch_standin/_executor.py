"""STAND-IN (tests only) for PopTorch's ``PoplarExecutor`` (``trainingModel`` / ``inferenceModel``).

Runs the wrapped module on the CPU. "Compiling" traces one call and enforces what PopTorch/PopART
would reject at compile time (sources: graphcore/poptorch sdk/poptorch/3.3.0, graphcore/popart
sdk/poplar/3.3.0):

* pipelining needs enough micro-batches in flight: training ``gradientAccumulation`` >= the
  training stages (2 x forward - 1), inference ``deviceIterations`` >= the forward stages
  (popart willow/src/transforms/pipeline.cpp; poptorch docs/user_guide/overview.rst);
* ``AutoStage.SameAsIpu`` needs an ``ipu_id`` on every block (options.py ``_DefaultStageManager``)
  and stage ids in execution order (popart willow/src/transforms/inferpipelinestages.cpp
  ``checkOrder``: "consumed in an earlier pipeline stage than it is produced"); explicit stages must
  name every block (options.py ``PipelineStageManager``);
* a call's batch is ``micro x deviceIterations x replicationFactor (x gradientAccumulation)``:
  anything else is an error (poptorch docs/user_guide/batching.rst);
* static loss scaling multiplies the loss in its own dtype: an fp16 loss with ``loss_scaling`` above
  65504 overflows (the stand-in refuses it);
* ``detachFromDevice`` / ``attachToDevice`` need a compiled model, attached / detached
  (python/_poplar_executor.py).

Weights are shared with the host model (PopTorch's ``copyWeightsToHost`` is then a no-op here).
"""
from __future__ import annotations

import torch

from .options import AutoStage, Options, ShardedExecution

FP16_MAX = 65504.0


class PoptorchError(RuntimeError):
    pass


def _stages(blocks: list, strategy) -> int:
    """Forward stages from the executed blocks ``[(user_id, ipu_id), ...]``, PopTorch's way."""
    if not blocks:
        return 1
    if strategy is None:  # PopTorch's default once blocks exist: PipelinedExecution(SameAsIpu)
        from .options import PipelinedExecution
        strategy = PipelinedExecution()
    if strategy.block_ids:
        unknown = [b for b, _ in blocks if b not in strategy.block_ids]
        if unknown:
            raise PoptorchError(f"Unknown Block '{unknown[0]}' list of expected Blocks: {strategy.block_ids}")
        ids = [strategy.block_ids.index(b) for b, _ in blocks]
    elif strategy.auto_stage == AutoStage.SameAsIpu:
        missing = [b for b, ipu in blocks if ipu is None]
        if missing:
            raise PoptorchError(f"poptorch.AutoStage.SameAsIpu was selected but no IPU was specified for block "
                                f"{missing[0]}")
        ids = [ipu for _, ipu in blocks]
    else:
        ids, seen = [], {}
        for b, _ in blocks:
            seen.setdefault(b, len(seen) + 1)
            ids.append(seen[b])
    if any(b < a for a, b in zip(ids, ids[1:])):
        raise PoptorchError(f"Tensor is consumed in an earlier pipeline stage than it is produced (stages {ids})")
    # consecutive stages on the same IPU are merged into one (popart pipeline.cpp
    # mergeConsecutivePipelineStages; poptorch overview.rst "Pipelined execution")
    where = [ipu if ipu is not None else stage for (_, ipu), stage in zip(blocks, ids)]
    return 1 + sum(1 for a, b in zip(where, where[1:]) if a != b)


class PoplarExecutor:
    def __init__(self, model: torch.nn.Module, options: Options | None, optimizer, training: bool):
        self._model, self._options = model, options or Options()
        self._optimizer, self._training = optimizer, training
        self._compiled = self._attached = False
        if training:
            names = {id(p): n for n, p in model.named_parameters()}
            mine = [p for g in optimizer.param_groups for p in g["params"]]
            if any(id(p) not in names for p in mine):
                raise PoptorchError("the optimizer holds parameters that are not the model's")
            optimizer._names = names
            if optimizer._pending_ipu_state:
                optimizer._apply_pending()
            self._device_hyper = self._hyper(optimizer)

    @staticmethod
    def _hyper(optimizer):
        return [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]

    @property
    def model(self) -> torch.nn.Module:
        return self._model

    @property
    def options(self) -> Options:
        return self._options

    # -- compile ------------------------------------------------------------------------------
    def _multiple(self) -> int:
        o = self._options
        ga = o.Training.gradient_accumulation if self._training else 1
        return o.device_iterations * o.replication_factor * ga

    def compile(self, *args, **kwargs) -> None:
        self._check_batch(args)
        blocks: list = []
        hooks = [m.register_forward_pre_hook(lambda mod, _in: blocks.append(mod._standin_block))
                 for m in self._model.modules() if hasattr(m, "_standin_block")]
        try:
            with torch.no_grad():
                out = self._model(*[a[: a.shape[0] // self._multiple()] for a in args])
        finally:
            for h in hooks:
                h.remove()
        self._check_pipeline(blocks)
        if self._training:
            self._check_loss(out)
        self._compiled = self._attached = True

    def _check_batch(self, args) -> None:
        n, multiple = args[0].shape[0], self._multiple()
        if n % multiple or n == 0:
            raise PoptorchError(f"the input batch of {n} is not a multiple of deviceIterations x replicationFactor"
                                f"{' x gradientAccumulation' if self._training else ''} = {multiple}")

    def _check_pipeline(self, blocks) -> None:
        strategy = self._options.strategy
        merged = []
        for b in blocks:  # a block entered twice in a row is the same stage
            if not merged or merged[-1] != b:
                merged.append(b)
        fwd = _stages(merged, strategy)
        if fwd < 2 or isinstance(strategy, ShardedExecution):
            return
        if self._training and self._options.Training.gradient_accumulation < 2 * fwd - 1:
            raise PoptorchError(f"For pipelining, depth (gradient accumulation factor) must equal at least the "
                                f"number of pipeline stages ({2 * fwd - 1})")
        if not self._training and self._options.device_iterations < fwd:
            raise PoptorchError(f"For pipelining, depth (batchesPerStep) must equal at least the number of "
                                f"pipeline stages ({fwd})")

    def _check_loss(self, out) -> None:
        loss = _find_loss(out)
        scale = self._optimizer.loss_scaling
        if loss.dtype == torch.float16 and scale > FP16_MAX:
            raise PoptorchError(f"loss_scaling {scale:g} does not fit the fp16 loss (largest fp16 value "
                                f"{FP16_MAX:g}): the scaled loss overflows")

    # -- run ----------------------------------------------------------------------------------
    def __call__(self, *args):
        if not self._compiled:
            self.compile(*args)
        if not self._attached:
            raise PoptorchError("Device is not attached")
        self._check_batch(args)
        o = self._options
        if not self._training:
            with torch.no_grad():
                return self._model(*args)
        return self._train(args, o.device_iterations, o.Training.gradient_accumulation * o.replication_factor)

    def _train(self, args, iterations: int, micro_per_step: int):
        opt, scale = self._optimizer, self._optimizer.loss_scaling
        chunks = list(zip(*[a.chunk(iterations * micro_per_step) for a in args]))
        losses = []
        for it in range(iterations):
            opt.zero_grad()
            for micro in chunks[it * micro_per_step:(it + 1) * micro_per_step]:
                loss = _find_loss(self._model(*micro))
                (loss * scale / micro_per_step).backward()  # ReductionType.Mean
                losses.append(loss.detach().float().reshape(-1))
            for g in opt.param_groups:
                for p in g["params"]:
                    if p.grad is not None:
                        p.grad.div_(scale)
            host = self._hyper(opt)
            for g, h in zip(opt.param_groups, self._device_hyper):  # the values last sent by setOptimizer
                g.update(h)
            opt.step()
            for g, h in zip(opt.param_groups, host):
                g.update(h)
        return torch.cat(losses)

    def setOptimizer(self, optimizer) -> None:
        if optimizer is not self._optimizer:
            raise PoptorchError("setOptimizer: pass the optimizer the model was built with")
        self._device_hyper = self._hyper(optimizer)

    def copyWeightsToHost(self) -> None:
        if not self._compiled:
            raise PoptorchError("Model has not been compiled or has been destroyed.")

    def isCompiled(self) -> bool:
        return self._compiled

    def isAttachedToDevice(self) -> bool:
        return self._compiled and self._attached

    def detachFromDevice(self) -> None:
        if not self._compiled:
            raise PoptorchError("Model has not been compiled or has been destroyed.")
        if not self._attached:
            raise PoptorchError("Device is not attached")
        self._attached = False

    def attachToDevice(self) -> None:
        if not self._compiled:
            raise PoptorchError("Model has not been compiled or has been destroyed.")
        if self._attached:
            raise PoptorchError("Device is already attached")
        self._attached = True


def _find_loss(out):
    for t in (out if isinstance(out, (tuple, list)) else (out,)):
        if isinstance(t, torch.Tensor) and getattr(t, "_standin_loss", False):
            return t
    raise PoptorchError("training model output has no tensor marked by poptorch.identity_loss")
