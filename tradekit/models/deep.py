"""LSTM and Transformer models (torch) over sliding windows of ``seq_len`` rows per symbol.

torch is an optional extra, imported only here. Windows never cross symbols: a row gets a
prediction only when its symbol has ``seq_len - 1`` rows before it. Features are standardized
with statistics of the training window (saved with the model); regression targets are scaled
the same way and scaled back on prediction.

Determinism: the weights are initialised from the seed, and each epoch's shuffle and dropout
come from a generator seeded by (seed, epoch), so a run resumed from a checkpoint continues
exactly as an uninterrupted one. On CPU torch's deterministic algorithms are switched on for
the duration of a fit or predict. On CUDA, training uses mixed precision (autocast +
GradScaler). Weights are saved as ``.npz`` (deterministic bytes, no pickle) plus a JSON of
hyperparameters; per-epoch checkpoints use ``torch.save``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from tradekit.errors import InputError, MissingDependency, UsageError
from tradekit.models.base import EpochDone, Model, ModelSpec, Panel, Standardizer

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import torch

log = logging.getLogger("tradekit.models")

LAYERS = 2
DROPOUT = 0.1
PREDICT_BATCH = 4096


def require_torch(kind: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise MissingDependency(f"{kind} needs torch: pip install 'tradekit[deep]'") from None


def resolve_device(name: str) -> str:
    """auto = cuda when available, else cpu; asking for cuda without one is a usage error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA device (use --device cpu or auto)")
    return name


def heads_for(hidden: int) -> int:
    return next(h for h in (4, 2, 1) if hidden % h == 0)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63)


@lru_cache(maxsize=1)
def _nets() -> dict[str, type[torch.nn.Module]]:
    import torch
    from torch import nn

    class LSTMNet(nn.Module):
        def __init__(self, n_features: int, hidden: int, seq_len: int) -> None:
            super().__init__()
            self.lstm = nn.LSTM(
                n_features, hidden, num_layers=LAYERS, batch_first=True, dropout=DROPOUT
            )
            self.head = nn.Linear(hidden, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm(x)
            result: torch.Tensor = self.head(out[:, -1]).squeeze(-1)
            return result

    class TransformerNet(nn.Module):
        def __init__(self, n_features: int, hidden: int, seq_len: int) -> None:
            super().__init__()
            self.proj = nn.Linear(n_features, hidden)
            self.pos = nn.Parameter(torch.randn(1, seq_len, hidden) * 0.02)
            layer = nn.TransformerEncoderLayer(
                hidden,
                heads_for(hidden),
                dim_feedforward=2 * hidden,
                dropout=DROPOUT,
                batch_first=True,
            )
            # Nested tensors only help padded batches; ours are dense, and torch warns otherwise.
            self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(hidden)
            self.head = nn.Linear(hidden, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.encoder(self.proj(x) + self.pos)
            result: torch.Tensor = self.head(self.norm(h[:, -1])).squeeze(-1)
            return result

    return {"lstm": LSTMNet, "transformer": TransformerNet}


@contextlib.contextmanager
def _torch_settings(device: str, threads: int) -> Iterator[None]:
    """Thread count and deterministic kernels for one fit or predict, then restore them."""
    import torch

    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    if device == "cpu":
        torch.use_deterministic_algorithms(True)
    else:  # CUDA's deterministic mode needs CUBLAS_WORKSPACE_CONFIG; cuDNN's flag is enough
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)


class DeepModel(Model):
    kind: ClassVar[str] = "deep"

    def __init__(self, spec: ModelSpec, features: Sequence[str]) -> None:
        super().__init__(spec, features)
        require_torch(spec.kind)
        self.net: torch.nn.Module | None = None
        self.scaler: Standardizer | None = None
        self.y_mean = 0.0
        self.y_std = 1.0
        self.device = "cpu"

    @property
    def lookback(self) -> int:
        return self.spec.seq_len

    def _build(self) -> torch.nn.Module:
        cls = _nets()[self.spec.kind]
        return cls(len(self.features), self.spec.hidden, self.spec.seq_len)

    def _windows(
        self, panel: Panel, ends: npt.NDArray[np.int64], device: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The standardized rows the windows ending at ``ends`` need, and the window ends as
        indices into them (only that slice of the panel is copied to the device)."""
        import torch

        assert self.scaler is not None
        lo = int(ends.min()) - self.spec.seq_len + 1
        hi = int(ends.max()) + 1
        xs = torch.from_numpy(self.scaler.transform(panel.X[lo:hi])).to(device)
        return xs, torch.from_numpy(ends - lo).to(device)

    def fit(
        self,
        panel: Panel,
        rows: npt.NDArray[np.int64],
        *,
        epoch_done: EpochDone | None = None,
        checkpoint: Path | None = None,
    ) -> None:
        import numpy as np
        import torch

        s = self.spec
        length = s.seq_len
        ends = rows[panel.pos[rows] >= length - 1]
        if not len(ends):
            raise InputError(
                f"no training windows: no labelled row has {length - 1} rows of history "
                "before it (lower seq_len or give more data)"
            )
        device = resolve_device(s.device)
        self.device = device
        self.scaler = Standardizer.fit(panel.X[rows])
        y = panel.y[ends]
        if s.objective == "regression":
            self.y_mean = float(y.mean())
            std = float(y.std())
            self.y_std = std if std > 1e-12 else 1.0
        target = torch.from_numpy(((y - self.y_mean) / self.y_std).astype(np.float32)).to(device)
        xs, idx = self._windows(panel, ends, device)
        offsets = torch.arange(-length + 1, 1, device=device)
        amp = device == "cuda"
        with _torch_settings(device, s.n_threads):
            torch.manual_seed(s.seed)
            net = self._build().to(device)
            opt = torch.optim.AdamW(net.parameters(), lr=s.deep_learning_rate)
            grad_scaler = torch.amp.GradScaler("cuda", enabled=amp)
            loss_fn: torch.nn.Module = (
                torch.nn.BCEWithLogitsLoss()
                if s.objective == "classification"
                else torch.nn.MSELoss()
            )
            first = 0
            if checkpoint is not None and checkpoint.exists():
                first = self._restore(checkpoint, net, opt, grad_scaler, device) + 1
                log.info("%s: resuming after epoch %d of %d", checkpoint.name, first, s.epochs)
                for _ in range(first):  # the progress bar counts the epochs done before
                    if epoch_done:
                        epoch_done()
            for epoch in range(first, s.epochs):
                gen = torch.Generator().manual_seed(_epoch_seed(s.seed, epoch))
                torch.manual_seed(_epoch_seed(s.seed, epoch) + 1)  # dropout masks
                perm = torch.randperm(len(ends), generator=gen).to(device)
                net.train()
                for i in range(0, len(perm), s.batch_size):
                    b = perm[i : i + s.batch_size]
                    xb = xs[idx[b].unsqueeze(1) + offsets]
                    ctx = (
                        torch.autocast(device_type="cuda", dtype=torch.float16)
                        if amp
                        else contextlib.nullcontext()
                    )
                    with ctx:
                        out = net(xb)
                    loss = loss_fn(out.float(), target[b])
                    opt.zero_grad(set_to_none=True)
                    grad_scaler.scale(loss).backward()
                    grad_scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                    grad_scaler.step(opt)
                    grad_scaler.update()
                if checkpoint is not None:
                    self._checkpoint(checkpoint, epoch, net, opt, grad_scaler, device)
                if epoch_done:
                    epoch_done()
        net.eval()
        self.net = net

    def _checkpoint(
        self,
        path: Path,
        epoch: int,
        net: torch.nn.Module,
        opt: torch.optim.Optimizer,
        grad_scaler: torch.amp.GradScaler,
        device: str,
    ) -> None:
        import torch

        state = {
            "name": path.stem,
            "epoch": epoch,
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "grad_scaler": grad_scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if device == "cuda" else [],
        }
        tmp = path.with_name(f".{path.name}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, tmp)
        os.replace(tmp, path)  # a kill mid-write leaves the previous epoch's checkpoint

    def _restore(
        self,
        path: Path,
        net: torch.nn.Module,
        opt: torch.optim.Optimizer,
        grad_scaler: torch.amp.GradScaler,
        device: str,
    ) -> int:
        import torch

        try:
            state = torch.load(path, map_location=device, weights_only=True)
            net.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            grad_scaler.load_state_dict(state["grad_scaler"])
        except (RuntimeError, KeyError, ValueError, EOFError) as e:
            raise InputError(f"{path}: unreadable checkpoint ({e}); run without --resume") from None
        torch.set_rng_state(state["rng_cpu"].cpu())
        if device == "cuda" and state["rng_cuda"]:
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        return int(state["epoch"])

    def predict(self, panel: Panel, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        import numpy as np
        import torch

        assert self.net is not None, "predict before fit/load"
        out = np.full(len(rows), np.nan)
        ok = panel.pos[rows] >= self.spec.seq_len - 1
        ends = rows[ok]
        if not len(ends):
            return out
        xs, idx = self._windows(panel, ends, self.device)
        offsets = torch.arange(-self.spec.seq_len + 1, 1, device=self.device)
        parts = []
        with _torch_settings(self.device, self.spec.n_threads), torch.inference_mode():
            self.net.eval()
            for i in range(0, len(idx), PREDICT_BATCH):
                b = idx[i : i + PREDICT_BATCH]
                logits = self.net(xs[b.unsqueeze(1) + offsets]).float()
                if self.spec.objective == "classification":
                    logits = torch.sigmoid(logits)
                parts.append(logits.cpu().numpy().astype(np.float64))
        values = np.concatenate(parts)
        if self.spec.objective == "regression":
            values = values * self.y_std + self.y_mean
        out[ok] = values
        return out

    def hyperparameters(self) -> dict[str, Any]:
        assert self.scaler is not None
        return {
            "kind": self.spec.kind,
            "objective": self.spec.objective,
            "n_features": len(self.features),
            "hidden": self.spec.hidden,
            "seq_len": self.spec.seq_len,
            "layers": LAYERS,
            "heads": heads_for(self.spec.hidden) if self.spec.kind == "transformer" else None,
            "dropout": DROPOUT,
            "scaler": self.scaler.as_json(),
            "target": {"mean": self.y_mean, "std": self.y_std},
        }

    def save(self, directory: Path, stem: str) -> list[str]:
        import numpy as np

        assert self.net is not None, "save before fit"
        weights = {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        np.savez(directory / f"{stem}.npz", **weights)  # type: ignore[arg-type]
        text = json.dumps(self.hyperparameters(), indent=2, sort_keys=True) + "\n"
        (directory / f"{stem}.json").write_text(text, encoding="utf-8")
        return [f"{stem}.npz", f"{stem}.json"]

    @classmethod
    def load(
        cls, directory: Path, stem: str, spec: ModelSpec, features: Sequence[str]
    ) -> DeepModel:
        import numpy as np
        import torch

        model = cls(spec, features)
        hp_path, w_path = directory / f"{stem}.json", directory / f"{stem}.npz"
        try:
            hp = json.loads(hp_path.read_text(encoding="utf-8"))
            model.scaler = Standardizer.from_json(hp["scaler"])
            model.y_mean = float(hp["target"]["mean"])
            model.y_std = float(hp["target"]["std"])
            if hp["n_features"] != len(features) or hp["seq_len"] != spec.seq_len:
                raise InputError(f"{hp_path}: hyperparameters do not match the manifest")
            net = model._build()
            with np.load(w_path, allow_pickle=False) as npz:
                state = {k: torch.from_numpy(npz[k].copy()) for k in npz.files}
            net.load_state_dict(state)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise InputError(f"{directory}: cannot load {spec.kind} model {stem} ({e})") from None
        net.eval()
        model.net = net
        model.device = "cpu"
        return model
