"""Reader training throughput on this machine's accelerator: steps/s and tokens/s for fp32 and bf16 on
CUDA and for the CPU default, peak GPU memory, and a check that the parameters really sit on the GPU.

Same model as the pipeline's default reader (from-scratch BERT, hidden 128, 2 layers; `--hidden-size`,
`--num-layers` for bigger) on KorQuAD dev windows, `--steps` timed steps after 5 warm-up steps per
row. Under 5 minutes on one GPU with the defaults. Without CUDA it says so in one line and exits 0
after the CPU row.

    .venv/bin/python bench/reader_gpu.py [--steps 60] [--batch-size 16] [--max-length 256]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from odqa.data import load_qa
from odqa.reader.config import ReaderTrainConfig
from odqa.reader.device import Placement
from odqa.reader.features import ReaderSettings, train_features
from odqa.reader.train import _build_model, _Collate, _optimizer, model_input_names, weighted_span_loss
from odqa.settings import korquad_dev_path

WARMUP = 5


def _row(name, config, features, tokenizer, model_factory, placement: Placement, steps: int) -> dict:
    model = model_factory().to(placement.device).train()
    if placement.device.type == "cuda":
        assert all(p.device.type == "cuda" for p in model.parameters()), "parameters are not on CUDA"
        torch.cuda.reset_peak_memory_stats(placement.device)
    optimizer = _optimizer(config, model)
    scaler = placement.grad_scaler()
    collate = _Collate(tokenizer, features, model_input_names(tokenizer, model, features[0]))
    tokens, t0 = 0, None
    for step in range(WARMUP + steps):
        if step == WARMUP:
            if placement.device.type == "cuda":
                torch.cuda.synchronize(placement.device)
            t0, tokens = time.perf_counter(), 0
        start = (step * config.batch_size) % max(1, len(features) - config.batch_size)
        inputs = collate(list(range(start, start + config.batch_size)))
        tokens += int(inputs["attention_mask"].sum())
        inputs = {k: v.to(placement.device, non_blocking=True) for k, v in inputs.items()}
        labels = [inputs.pop(k) for k in ("start_positions", "end_positions", "weights")]
        with placement.autocast():
            out = model(**inputs)
        loss = weighted_span_loss(out.start_logits, out.end_logits, *labels)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad()
    if placement.device.type == "cuda":
        torch.cuda.synchronize(placement.device)
    seconds = time.perf_counter() - t0
    row = {"row": name, "device": str(placement.device), "precision": placement.precision,
           "steps_per_s": steps / seconds, "tokens_per_s": tokens / seconds, "final_loss": loss.item()}  # fmt: skip
    if placement.device.type == "cuda":
        row["peak_gib"] = torch.cuda.max_memory_allocated(placement.device) / 2**30
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--cpu-steps", type=int, default=20, help="timed steps of the CPU row")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--num-threads", type=int, default=2, help="CPU row threads")
    p.add_argument("--questions", type=int, default=2000)
    args = p.parse_args(argv)

    config = ReaderTrainConfig(
        max_length=args.max_length, batch_size=args.batch_size, hidden_size=args.hidden_size,
        num_layers=args.num_layers, num_heads=max(2, args.hidden_size // 64),
    )  # fmt: skip
    examples = load_qa(korquad_dev_path()).examples[: args.questions]
    model, tokenizer = _build_model(config, examples, None, None)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def fresh():
        m, _ = type(model)(model.config), None
        m.load_state_dict(state)
        return m

    settings = ReaderSettings(
        max_length=config.max_length, doc_stride=config.doc_stride, question_overlap=True
    )
    features = train_features(examples, tokenizer, settings)
    rows = []
    if torch.cuda.is_available():
        for precision in ("fp32", "bf16"):
            rows.append(
                _row(
                    f"cuda {precision}",
                    config,
                    features,
                    tokenizer,
                    fresh,
                    Placement.resolve("cuda", precision),
                    args.steps,
                )
            )
    torch.set_num_threads(args.num_threads)
    rows.append(
        _row(
            f"cpu fp32 ({args.num_threads} threads)",
            config,
            features,
            tokenizer,
            fresh,
            Placement.resolve("cpu", "fp32"),
            args.cpu_steps,
        )
    )
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
    print(
        f"\nreader h{config.hidden_size}/L{config.num_layers}, batch {config.batch_size} x {config.max_length}, {name}"
    )
    print("| row | steps/s | tokens/s | peak GPU GiB | final loss |")
    print("|---|---|---|---|---|")
    for r in rows:
        peak = f"{r['peak_gib']:.2f}" if "peak_gib" in r else "-"
        print(
            f"| {r['row']} | {r['steps_per_s']:.2f} | {r['tokens_per_s']:,.0f} | {peak} | {r['final_loss']:.3f} |"
        )
    if not torch.cuda.is_available():
        print("no CUDA on this machine: GPU rows skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
