"""Whole-iteration CUDA graphs: one training iteration captured once, replayed for every full batch.

On a GPU a training iteration of this suite is host-bound: PreActResNet-18 at batch 128 launches
a few thousand small kernels per Fast-BAT step, and Python queues them more slowly than the GPU
runs them. :class:`GraphedIteration` records one whole iteration (the method's step and the
optimizer's step) as a CUDA graph and replays it, one launch per batch, copying each batch into
the graph's static input buffers. What this needs, and where it is done:

* Nothing in the iteration may wait for the host or change shape with the data: the methods
  keep their tensors' shapes fixed and never read a value back (Fast-AT-GA's regularizer masks
  instead of indexing).
* The learning rate is read from device memory: :func:`tensor_learning_rates` turns the
  optimizer's learning rates into device tensors that the LR scheduler fills in place and the
  fused SGD kernel reads at replay time, so the schedule goes on working under replay.
* Random numbers (random starts, GradAlign's noise) come from torch's CUDA generator, or from
  the run's own generator when it is packed with others (registered with the graph before
  capture), both graph-safe: every replay advances the generator's philox offset, so each replay
  draws new numbers, as eager iterations do.
* Several runs may share a process, each in its own thread on its own stream
  (``suite.engine.packed``). torch allows one capture at a time in a process, so captures take
  :data:`CAPTURE_LOCK`, record on a stream of their own (not torch's shared default capture
  stream), and use the "thread_local" capture mode, in which another thread's work (an
  allocation, a synchronization) during the capture is not an error. Every capture registers
  torch's default CUDA generator, so captures also hold the global generators' lock
  (``suite.engine.rng.GLOBAL_RNG``): no other run reseeds or draws from it meanwhile.
* Autocast's weight-cast cache must be off during capture (``cache_enabled=False``).
* Capture needs a warm-up on a side stream (cuDNN autotuning, the optimizer's momentum
  buffers, autograd's lazily built state). The warm-up really trains; the model, its buffers,
  the optimizer's state and the generator are restored to what they were before it, so the
  first replay continues training exactly where the eager loop would have.
"""

from __future__ import annotations

import threading

import torch

from ..errors import warn
from .rng import GLOBAL_RNG

WARMUP_ITERATIONS = 3
CAPTURE_LOCK = threading.Lock()
CAPTURE_MODE = "thread_local"


def lr_dtype(device: torch.device) -> torch.dtype:
    """float32 on CUDA (what the fused SGD kernel reads), float64 elsewhere (the float LR exactly)."""
    return torch.float32 if device.type == "cuda" else torch.float64


def tensor_learning_rates(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Hold every parameter group's learning rate (and LR schedulers' ``initial_lr``) in a device tensor.

    Idempotent, and works on an optimizer freshly loaded from a checkpoint with float or tensor
    learning rates. LR schedulers then ``fill_`` these tensors in place instead of assigning floats.
    """
    for group in optimizer.param_groups:
        for key in ("lr", "initial_lr"):
            if key in group:
                group[key] = torch.tensor(float(group[key]), dtype=lr_dtype(device), device=device)


def make_sgd(
    params, *, lr: float, momentum: float, weight_decay: float, device: torch.device, tensor_lr: bool
) -> torch.optim.SGD:
    """The training optimizer; with ``tensor_lr`` its learning rate lives on the device (fused kernel)."""
    if not tensor_lr:
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    # The foreach implementation turns a tensor LR into a Python number (a host sync, fatal to
    # capture); the fused kernel reads it from device memory.
    return torch.optim.SGD(
        params,
        lr=torch.tensor(lr, dtype=lr_dtype(device), device=device),
        momentum=momentum,
        weight_decay=weight_decay,
        fused=True,
    )


class GraphedIteration:
    """Replays ``iteration(x, y) -> (loss, logits)`` from a CUDA graph captured at its first full batch.

    ``iteration`` runs one training iteration with the parameter gradients starting from None
    (the method's step and ``optimizer.step()``); ``model`` and ``optimizer`` are what it trains
    (their state is restored after the warm-up). Each call copies the batch into the static
    inputs, replays the graph and returns the static ``(loss, logits)``: read them before the
    next call. The batch must have the shape (and memory format) of the first one.
    """

    def __init__(
        self,
        iteration,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        warmup: int = WARMUP_ITERATIONS,
        generator: torch.Generator | None = None,
    ):
        self.iteration, self.model, self.optimizer, self.warmup = iteration, model, optimizer, warmup
        self.generator = generator  # the iteration's own generator, if not the default CUDA one
        self.graph = None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def accepts(self, x: torch.Tensor) -> bool:
        """Whether this batch can be replayed (the captured shape), else it must run eagerly."""
        return self.graph is None or x.shape == self.static_x.shape

    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        if self.graph is None:
            self.capture(x, y)
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        self.graph.replay()
        return self.static_out

    def capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.static_x, self.static_y = x.clone(), y.clone()  # clone keeps channels_last
        saved = self._snapshot()
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.optimizer.zero_grad(set_to_none=True)
                self.iteration(self.static_x, self.static_y)
        torch.cuda.current_stream(x.device).wait_stream(side)
        self.optimizer.zero_grad(set_to_none=True)  # the graph's backward allocates its own gradients
        graph = torch.cuda.CUDAGraph()
        if self.generator is not None:
            graph.register_generator_state(self.generator)
        with GLOBAL_RNG, CAPTURE_LOCK, torch.cuda.graph(graph, stream=side, capture_error_mode=CAPTURE_MODE):
            self.static_out = self.iteration(self.static_x, self.static_y)
        self._grads = [p.grad for p in self.model.parameters()]  # keep the graph's gradient buffers alive
        self._restore(saved)
        self.graph = graph

    # The warm-up trains for real; capture itself runs nothing. Undo the warm-up in place (the
    # graph holds these tensors' addresses).
    def _snapshot(self):
        model_state = [t.detach().clone() for t in self.model.state_dict().values()]
        optim_state = {}
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                buf = self.optimizer.state.get(p, {}).get("momentum_buffer")
                optim_state[p] = None if buf is None else buf.clone()
        rng = (
            self.generator.get_state() if self.generator is not None else torch.cuda.get_rng_state(self.static_x.device)
        )
        return model_state, optim_state, rng

    @torch.no_grad()
    def _restore(self, saved) -> None:
        model_state, optim_state, rng = saved
        for t, value in zip(self.model.state_dict().values(), model_state):
            t.copy_(value)
        for p, value in optim_state.items():
            buf = self.optimizer.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                # No buffer yet means SGD's first step (buffer = gradient): a zero buffer gives exactly that.
                buf.copy_(value) if value is not None else buf.zero_()
        if self.generator is not None:
            self.generator.set_state(rng)
        else:
            torch.cuda.set_rng_state(rng, self.static_x.device)


class GraphedFunction:
    """Replays a pure function of tensors, ``fn(*tensors) -> tuple of tensors``, from a CUDA graph.

    For loops that call the same work on same-shaped tensors many times without changing any
    state, such as an evaluation attack's iterates (the model in eval mode, only an input
    gradient). The graph is captured at the first call, after a warm-up on a side stream; each
    later call must pass tensors of the first call's shapes, which are copied into the static
    inputs before the replay. The outputs are the graph's static tensors: the
    next call overwrites them, so read or copy them first (passing them back in is fine).

    If capture fails the function runs eagerly from then on, after a warning: an evaluation
    that ends a long run is not lost to an operation that cannot be captured.
    """

    def __init__(self, fn, warmup: int = WARMUP_ITERATIONS):
        self.fn, self.warmup = fn, warmup
        self.graph, self.failed = None, False

    def __call__(self, *args: torch.Tensor):
        if self.failed:
            return self.fn(*args)
        if self.graph is None:
            try:
                self._capture(args)
            except RuntimeError as err:
                self.failed = True
                warn(f"CUDA graph capture failed ({err}); running eagerly instead")
                return self.fn(*args)
        for static, a in zip(self.static_in, args, strict=True):
            static.copy_(a)
        self.graph.replay()
        return self.static_out

    def _capture(self, args) -> None:
        self.static_in = tuple(a.clone() for a in args)
        stream = torch.cuda.current_stream(args[0].device)
        side = torch.cuda.Stream(device=args[0].device)
        side.wait_stream(stream)
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.fn(*self.static_in)
        stream.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with GLOBAL_RNG, CAPTURE_LOCK, torch.cuda.graph(graph, stream=side, capture_error_mode=CAPTURE_MODE):
            self.static_out = self.fn(*self.static_in)
        self.graph = graph
