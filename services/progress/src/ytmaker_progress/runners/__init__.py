"""What runs: each runner owns one job of the progress service and its I/O, around the pure
rules one level up (`fold`, `eta`, `stall`, `release`, `records`, `positions`).

- `fold.FoldService`: the fold's consumer group, its lanes' lifecycle and their restore;
- `lane.LaneWorker`: one lane's folding task, transactions and checkpoints;
- `sink.Sink`: `progress.updates` into the read model;
- `eta.EtaProjector`: stage durations into ETA estimates (`progress.eta`), fed by the sink;
- `stall.StallWatch`: tasks silent past their stage's time limit, failed as `stalled`.
"""
