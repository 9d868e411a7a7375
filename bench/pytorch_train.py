"""PyTorch's nn.LSTM training step at charbook's sizes: the reference issue 15 measures charbook against.

    /path/to/python-with-torch bench/pytorch_train.py --sizes='{"demo": [32, 192, 64, 64]}' [--seconds=3]

Needs only torch (charbook does not depend on it): run it with a Python that has it, e.g. a scratch venv with
`pip install torch==2.13.0`; bench/train.py --pytorch_python=... runs it between its own rounds so the figures
come from the same minutes. The step is charbook's model and training step written in PyTorch: an Embedding, a
two-layer nn.LSTM (oneDNN's fused LSTM on CPUs), a Linear over the vocabulary, cross-entropy, gradients clipped
to a global norm of 5 (charbook's --clipnorm) and Adam, on one batch of random ids; float32, and bfloat16 under
torch.autocast as PyTorch's users would run it. Prints one JSON line: `<size>_pytorch_<float32|bfloat16>_chars_per_sec`
for each size (input characters per second, the best of --rounds timings of --seconds each); where PyTorch
cannot train in bfloat16 (oneDNN has no bfloat16 LSTM on CPUs without bfloat16 instructions),
`<size>_pytorch_bfloat16_unavailable` holds its error instead.
"""

import argparse
import json
import sys
import time

try:
    import torch
except ImportError:
    sys.exit(f"pytorch_train: {sys.executable} has no torch; run this script with a Python that has (pip install torch).")

CLIPNORM = 5.0  # charbook's default --clipnorm (config.py)


class CharLSTM(torch.nn.Module):
    def __init__(self, vocab_size: int, embedding_dim: int, rnn_units: int):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, embedding_dim)
        self.lstm = torch.nn.LSTM(embedding_dim, rnn_units, num_layers=2, batch_first=True)
        self.logits = torch.nn.Linear(rnn_units, vocab_size)

    def forward(self, ids):
        return self.logits(self.lstm(self.embedding(ids))[0])


def chars_per_sec(vocab_size, embedding_dim, rnn_units, batch_size, seq_len, *, bfloat16: bool, seconds: float, rounds: int) -> float:
    torch.manual_seed(0)
    model = CharLSTM(vocab_size, embedding_dim, rnn_units)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    ids = torch.randint(0, vocab_size, (batch_size, seq_len + 1))
    inputs, targets = ids[:, :-1], ids[:, 1:].reshape(-1)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, vocab_size), targets)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIPNORM)
        optimizer.step()
        return loss.item()  # the host waits for each step, as charbook's timing does

    for _ in range(2):  # warm-up: oneDNN picks and caches its kernels
        step()
    best = 0.0
    for _ in range(rounds):
        steps, start = 0, time.perf_counter()
        while steps < 2 or time.perf_counter() - start < seconds:
            step()
            steps += 1
        best = max(best, steps * batch_size * seq_len / (time.perf_counter() - start))
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", required=True, help='JSON: {"name": [embedding_dim, rnn_units, batch_size, seq_len], ...}')
    parser.add_argument("--vocab_size", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0, help="Seconds of timed steps per round.")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    result = {}
    for name, (embedding_dim, rnn_units, batch_size, seq_len) in json.loads(args.sizes).items():
        sizes = (args.vocab_size, embedding_dim, rnn_units, batch_size, seq_len)
        for precision in ("float32", "bfloat16"):
            try:
                speed = chars_per_sec(*sizes, bfloat16=precision == "bfloat16", seconds=args.seconds, rounds=args.rounds)
            except RuntimeError as error:  # oneDNN has no bfloat16 LSTM on CPUs without bfloat16 instructions
                if precision == "float32":
                    raise
                result[f"{name}_pytorch_{precision}_unavailable"] = str(error).splitlines()[0]
                continue
            result[f"{name}_pytorch_{precision}_chars_per_sec"] = round(speed, 1)
    result.update(pytorch=torch.__version__, threads=torch.get_num_threads())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
