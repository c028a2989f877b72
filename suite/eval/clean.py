"""Clean accuracy."""

import torch


@torch.no_grad()
def clean_accuracy(model, x, y, *, batch_size: int = 1024) -> float:
    """Clean accuracy in percent, model in eval mode."""
    was_training = model.training
    model.eval()
    correct = sum(
        int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    model.train(was_training)
    return 100.0 * correct / len(x)
