"""What pins a re-ranker to the list order: trains a model on a pipeline run's marts with one change at a time, over
several seeds, and prints per variant the validation GAUC per epoch, whether it collapsed onto the list order, and
the test GAUC against DLCM's list order and the best hand rule.

    python bench/ablations.py --home .edgerec [--model crban_hubsm_ie_ipv] [--variants all] [--seeds 0,1,2]
                              [--epochs 6] [--warm-from VERSION] [--out docs/figures/ablations.md]

Reads the marts of the day the state directory's warehouse was last built for (`edgerec run` leaves the last day's) and
the feature spec of that day. The variants are the measurements docs/quality.md reports: revision 2 of the full model
(before the fix) with one thing changed at a time, then the fix's two parts one at a time, then both. Each is a
change of the training config or of one module, so the rest stays as shipped. With --warm-from (a registry number or
version id) every variant starts from that version's weights of the model, as the daily run's warm start does, and
the table's first line gives that version's own test GAUC.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from edgerec import registry
from edgerec.config import load_settings
from edgerec.features import MATCH_FEATURES, load_spec
from training.checkpoints import model_from_checkpoint, warm_start
from training.compare import COLLAPSE_TOLERANCE
from training.config import TrainConfig
from training.data import date_range
from training.evaluation import paired_gain
from training.models import build_model
from training.models.base import MASKED, BahdanauAttention, Reranker, mlp, pool_by_request
from training.pipeline import daily_checkpoints, evaluate_rules
from training.runner import Parent, day_data, evaluate_on_test, train_and_test
from training.trainer import initial_order_gauc, seed_everything


def revision2_pool(self: BahdanauAttention, energy: Tensor, values: Tensor, match: Tensor, request: Tensor,
                   softmax: str = "null") -> Tensor:
    """The pool before the fix: [sum_j a_nj values_j, log partition], without the pooled match indicators; with
    softmax="plain", without the null event either. The energies are revision 2's (MASKED at padding steps)."""
    if softmax == "plain":
        mass = torch.logsumexp(energy, -1, keepdim=True)
        weights = torch.softmax(energy, dim=-1) * (energy != MASKED)  # a request without events pools nothing
    else:
        weights, mass = self.normalised(energy)
    return torch.cat([pool_by_request(weights, values, request), mass], dim=-1)


def revision2(model: Reranker, softmax: str = "null") -> Reranker:
    """The attention pools as revision 2 did (with min_item_count=0 in the config, the whole of revision 2)."""
    for module in model.modules():
        if isinstance(module, BahdanauAttention):
            module.pool = functools.partial(revision2_pool, module, softmax=softmax)
    first = model.score[0]
    model.score = mlp(first.in_features - len(MATCH_FEATURES) * len(model.behaviours), first.out_features)
    return model


def counted_pool(self: BahdanauAttention, energy: Tensor, values: Tensor, match: Tensor, request: Tensor) -> Tensor:
    """The shipped pool plus log(1 + sum_j m_nj): how many events match the candidate, whatever the attention."""
    pooled = BahdanauAttention.pool(self, energy, values, match, request)
    real = (energy != MASKED).to(match.dtype).unsqueeze(-1)  # every padding step's energy is MASKED exactly
    return torch.cat([pooled, torch.log1p((match * real).sum(dim=1))], dim=-1)


def match_counts(model: Reranker) -> Reranker:
    """The score also reads, per behaviour type, the log count of events matching the candidate (item, category,
    brand): the hand rules' own input, open from the first step."""
    for module in model.modules():
        if isinstance(module, BahdanauAttention):
            module.pool = functools.partial(counted_pool, module)
    first = model.score[0]
    model.score = mlp(first.in_features + len(MATCH_FEATURES) * len(model.behaviours), first.out_features)
    return model


def branch_dropout(model: Reranker, p: float = 0.25) -> Reranker:
    """In training, each request's pool of each behaviour type is dropped (zero: as if it had no such events) with
    probability p, so the model also learns to score from its other inputs alone, as the models that see a subset of
    them do."""
    attend = model.attend

    def dropped(x, behaviour, candidate, request, match):
        pooled = attend(x, behaviour, candidate, request, match)
        if not model.training:
            return pooled
        keep = (torch.rand(x.candidates.size(0), device=pooled.device) >= p).to(pooled.dtype)
        return pooled * keep.index_select(0, request).unsqueeze(-1)

    model.attend = dropped
    return model


def gated(model: Reranker, behaviours: tuple[str, ...] | None = None) -> Reranker:
    """Each pool of `behaviours` (default: every behaviour type) enters the score times a learned scalar that starts
    at 0: the model starts as the one without those inputs and takes them up as far as the gradient finds them
    useful."""
    attend = model.attend
    model.gates = torch.nn.ParameterDict({b: torch.nn.Parameter(torch.zeros(())) for b in behaviours or
                                          model.behaviours})

    def gated_attend(x, behaviour, candidate, request, match):
        pooled = attend(x, behaviour, candidate, request, match)
        return pooled * model.gates[behaviour] if behaviour in model.gates else pooled

    model.attend = gated_attend
    return model


def no_match(model: Reranker) -> Reranker:
    """Match indicators zeroed: the attention must tell 'the same item' from the learned item rows alone."""
    for attention in getattr(model, "attention", {}).values():
        torch.nn.init.zeros_(attention.match.weight)
        attention.match.weight.requires_grad_(False)
    return model


def no_list_scores(model: Reranker) -> Reranker:
    """The score MLP does not read the list GRU's outputs (o_i and s): the only path that can reproduce the list
    order exactly. o_i stays the attention's query."""
    weight = model.score[0].weight
    hidden = model.context_gru.hidden_size
    with torch.no_grad():
        weight[:, -2 * hidden:] = 0.0
    weight.register_hook(lambda grad: torch.cat([grad[:, :-2 * hidden], torch.zeros_like(grad[:, -2 * hidden:])], 1))
    return model


def small_item_rows(model: Reranker) -> Reranker:
    """Item table rows drawn at std 0.01 instead of 1 (initialisation and scale of the item features)."""
    for table in model.items.tables.values():
        torch.nn.init.normal_(table.weight, std=0.01)
    return model


def balanced(model: Reranker) -> Reranker:
    """Binary cross-entropy with the clicks weighted up to the non-clicks' total (class imbalance)."""
    def loss(logits: Tensor, label: Tensor, mask: Tensor) -> Tensor:
        labelled = mask > 0
        positives = (label.float() * labelled).sum().clamp(min=1)
        weight = ((labelled.sum() - positives) / positives).clamp(min=1.0)
        losses = F.binary_cross_entropy_with_logits(logits, label.to(logits.dtype), reduction="none",
                                                    pos_weight=weight)
        return torch.where(labelled, losses, 0.0).sum() / labelled.sum().clamp(min=1)

    model.loss = loss
    return model


R2 = {"min_item_count": 0}  # every item row learned, as before the fix
# name -> (what changes, TrainConfig overrides, model transform). "r2" rows change one thing of revision 2 (the model
# before the fix); the last rows add the fix's two parts one at a time, then both (as shipped).
Variant = tuple[str, dict, Callable[[Reranker], Reranker]]
VARIANTS: dict[str, Variant] = {
    "r2": ("revision 2 (before the fix)", R2, revision2),
    "r2_paper_lr": ("r2, Adam at the paper's 0.005, constant", R2 | {"lr": 0.005, "lr_schedule": "constant"},
                    revision2),
    "r2_no_early_stop": ("r2, no early stopping (last epoch's weights)", R2 | {"validation_share": 0.0}, revision2),
    "r2_no_match": ("r2, no match indicators", R2, lambda m: no_match(revision2(m))),
    "r2_no_null_event": ("r2, plain softmax (no null event)", R2, lambda m: revision2(m, softmax="plain")),
    "r2_item_id": ("r2, hashed item-id table on (2^17 rows)", R2 | {"item_id_buckets": 131_072}, revision2),
    "r2_small_init": ("r2, item rows initialised at std 0.01", R2, lambda m: small_item_rows(revision2(m))),
    "r2_balanced": ("r2, clicks weighted to the non-clicks' total", R2, lambda m: balanced(revision2(m))),
    "r2_no_list_scores": ("r2, score MLP without the list GRU's outputs", R2,
                          lambda m: no_list_scores(revision2(m))),
    "r2_match_pooled": ("r2 + match indicators pooled", R2, lambda m: m),
    "r2_rare_rows_oov": ("r2 + rows seen < 10 times read the OOV row", {}, revision2),
    "shipped": ("as shipped (revision 4)", {}, lambda m: m),
    "match_counts": ("shipped + the log count of matching events", {}, match_counts),
    "branch_dropout": ("shipped + each behaviour pool dropped with p 0.25 in training", {}, branch_dropout),
    "gated": ("shipped + every behaviour pool through a learned gate starting at 0", {}, gated),
    "gated_ie": ("shipped + the exposures' pool through a learned gate starting at 0", {},
                 lambda m: gated(m, ("ie",))),
}


def run(db: Path, spec: dict, name: str, variant: Variant, seed: int, epochs: int, fields: dict,
        parent: Parent | None = None) -> dict:
    _, overrides, transform = variant
    cfg = TrainConfig(**{"epochs": epochs, "seed": seed, "device": "cpu", **fields, **overrides})
    data = day_data(db, spec, cfg.validation_share)  # without early stopping: every train request, no curve
    seed_everything(seed)
    model = build_model(name, spec, cfg)
    if parent is not None:
        warm_start(model, parent.checkpoint, spec, f"{name} of {parent.version}")
    model = transform(model)
    start = time.perf_counter()
    history, report, _ = train_and_test(model, data, cfg, torch.device("cpu"), warm=parent is not None)
    return {"curve": [r.validation_gauc for r in history], "report": report, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=None, help="state directory [default: EDGEREC_HOME]")
    parser.add_argument("--model", default="crban_hubsm_ie_ipv")
    parser.add_argument("--variants", default="all", help=f"comma-separated of: {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a TrainConfig field for every variant (JSON value), e.g. --set min_item_count=100")
    parser.add_argument("--warm-from", default=None, metavar="VERSION",
                        help="start every variant from this registered version's weights of the model")
    parser.add_argument("--out", type=Path, default=None, help="also write the table as markdown here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = load_settings(os.environ | ({"EDGEREC_HOME": args.home} if args.home else {}))
    db = settings.duckdb_path
    ds = date_range(db, "test")[0]
    spec = load_spec(settings.layout(ds).feature_spec)
    names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    fields = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    cfg = TrainConfig()
    data = day_data(db, spec, cfg.validation_share)
    initial = initial_order_gauc(data.validation.batches(cfg.batch_requests))
    rules = evaluate_rules(settings, spec, data.test, cfg)
    best_rule = max(rules.values(), key=lambda r: r.gauc.value)
    # popularity is counted over the whole train window, the held-out requests' own clicks included: left out here
    best_held_out = max(r.gauc.value for name, r in evaluate_rules(settings, spec, data.validation, cfg).items()
                        if name != "popular_first")
    print(f"ds={ds}: test requests {best_rule.requests:,}; initial order test GAUC {best_rule.gauc_initial:.5f}, "
          f"best rule {best_rule.gauc.value:.5f}; validation: initial order {initial:.5f}, best rule "
          f"{best_held_out:.5f}", flush=True)
    parent, start = None, ""
    if args.warm_from:
        client = registry.connect(settings)
        version = registry.find_version(client, args.warm_from)
        parent = daily_checkpoints(client, version, [args.model]).get(args.model)
        if parent is None:
            raise SystemExit(f"{version.label} has no checkpoint of {args.model}")
        model = model_from_checkpoint(parent.checkpoint, version.label)  # as the evaluation gate scores it
        start = (f" Every run starts from {version.id} (ds={version.ds}), whose own test GAUC here is "
                 f"{evaluate_on_test(data.test, model, cfg, torch.device('cpu')).gauc.value:.5f}.")
        print(start.strip(), flush=True)
    lines = [f"Model {args.model}, ds={ds}, {args.epochs} epochs, seeds {args.seeds}; test GAUC of the initial order "
             f"{best_rule.gauc_initial:.5f}, of the best hand rule {best_rule.gauc.value:.5f}.{start}", "",
             "| variant | seed | validation GAUC per epoch | collapsed | test GAUC | vs list order | vs best rule |",
             "|---|---|---|---|---|---|---|"]
    for name in names:
        for seed in seeds:
            result = run(db, spec, args.model, VARIANTS[name], seed, args.epochs, fields, parent)
            rep, curve = result["report"], result["curve"]
            collapsed = len(curve) > 1 and all(g is not None and abs(g - initial) <= COLLAPSE_TOLERANCE
                                               for g in curve[1:])
            vs_list = paired_gain(rep.per_request, rep.per_request_initial)
            vs_rule = paired_gain(rep.per_request, best_rule.per_request)
            line = (f"| {VARIANTS[name][0]} | {seed} | {', '.join('-' if g is None else f'{g:.4f}' for g in curve)} | "
                    f"{'yes' if collapsed else 'no'} | {rep.gauc.value:.5f} | {vs_list.value:+.2%} | "
                    f"{vs_rule.value:+.2%} |")
            print(line + f"  ({result['seconds']:.0f} s)", flush=True)
            lines.append(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    summary = {"ds": ds, "rows": len(lines) - 4}
    print(json.dumps(summary))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
