"""Training and evaluation with RecBole's own Trainer and evaluator, with simmine's options switched on by
config keys; ``run`` is what ``python -m simmine.recbole`` calls."""
from __future__ import annotations

import os
import time
from typing import Optional

import numpy as np
from recbole.trainer import Trainer as _RecBoleTrainer

from .compat import trusted_torch_load
from .contrastive import with_contrastive
from .every_position import every_position_loader
from .fearec import with_simmine_same_target


class Trainer(_RecBoleTrainer):
    """RecBole's Trainer, plus: the model's ``set_epoch`` before each epoch (positives fresh per epoch and
    deterministic), seconds per training epoch (``epoch_seconds``, wall; ``epoch_cpu_seconds``, this process's
    CPU time, which a busy shared machine disturbs less), every validation result
    (``valid_history``), and RecBole's checkpoints loaded under ``trusted_torch_load``.

    >>> trainer = Trainer(config, model)                      # doctest: +SKIP
    >>> trainer.fit(train_data, valid_data)                   # doctest: +SKIP
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        self.epoch_seconds, self.epoch_cpu_seconds, self.valid_history = [], [], []

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if hasattr(self.model, "set_epoch"):
            self.model.set_epoch(epoch_idx)
        start, cpu = time.perf_counter(), time.process_time()
        out = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        self.epoch_seconds.append(time.perf_counter() - start)
        self.epoch_cpu_seconds.append(time.process_time() - cpu)
        return out

    def _valid_epoch(self, valid_data, show_progress=False):
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        self.valid_history.append({k: float(v) for k, v in result.items()})
        return score, result

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        with trusted_torch_load():
            return super().evaluate(eval_data, load_best_model=load_best_model, model_file=model_file,
                                    show_progress=show_progress)

    def resume_checkpoint(self, resume_file):
        with trusted_torch_load():
            return super().resume_checkpoint(resume_file)


def bundled_data_path() -> str:
    """RecBole's bundled example datasets (ml-100k ships in the recbole wheel).

    >>> os.path.exists(os.path.join(bundled_data_path(), "ml-100k", "ml-100k.inter"))
    True
    """
    import recbole
    return os.path.join(os.path.dirname(recbole.__file__), "dataset_example")


def lines_to_atomic(lines: str, data_path: str, name: str) -> str:
    """Converts a one-user-per-line log (``user item item ...`` in time order) into RecBole's atomic
    ``data_path/name/name.inter`` (timestamp = position in the user's sequence); returns the .inter path.

    >>> lines_to_atomic("beauty.txt", "/tmp/recbole-data", "beauty")   # doctest: +SKIP
    '/tmp/recbole-data/beauty/beauty.inter'
    """
    folder = os.path.join(data_path, name)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.inter")
    with open(lines) as src, open(path + ".tmp", "w") as dst:
        dst.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for line in src:
            fields = line.split()
            if len(fields) >= 2:
                dst.writelines(f"{fields[0]}\t{item}\t{t}\n" for t, item in enumerate(fields[1:]))
    os.replace(path + ".tmp", path)
    return path


def _config(model_class, dataset: str, config_files, config_dict: dict):
    from recbole.config import Config

    try:
        return Config(model=model_class, dataset=dataset, config_file_list=config_files, config_dict=config_dict)
    except ValueError as exc:  # RecBole's default negative sampling contradicts a CE model
        if "train_neg_sample_args" not in str(exc) or "train_neg_sample_args" in config_dict:
            raise
        return Config(model=model_class, dataset=dataset, config_file_list=config_files,
                      config_dict=dict(config_dict, train_neg_sample_args=None))


def run(model: str = "SASRec", dataset: str = "ml-100k", config_files: Optional[list] = None,
        config_dict: Optional[dict] = None, saved: bool = True, verbose: bool = False) -> dict:
    """Trains and evaluates a RecBole model with RecBole's Trainer and evaluator; simmine's options are config
    keys (``contrastive``, ``every_position``, ``cl_*``, ``simmine_*``; docs/recbole.md). Returns the best
    validation result, the test result, seconds per epoch, the time spent mining and every validation result.

    >>> result = run("SASRec", "ml-100k", config_dict={"epochs": 1, "contrastive": "rcl"})   # doctest: +SKIP
    >>> result["test"]["ndcg@10"]                                                            # doctest: +SKIP
    """
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, init_seed

    config_dict = dict(config_dict or {})
    if dataset == "ml-100k" and not config_files and "data_path" not in config_dict:
        config_dict["data_path"] = bundled_data_path()
    base = get_model(model) if isinstance(model, str) else model
    if base.__name__ == "FEARec" and config_dict.get("fearec_sampling", "simmine") == "simmine":
        base = with_simmine_same_target(base)
    model_class = with_contrastive(base)
    config = _config(model_class, dataset, config_files, config_dict)
    init_seed(config["seed"], config["reproducibility"])
    data = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, data)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    start = time.perf_counter()
    net = model_class(config, train_data._dataset).to(config["device"])
    setup_s = time.perf_counter() - start
    loader = every_position_loader(train_data, config) if net.cl["every_position"] else train_data
    trainer = Trainer(config, net)
    started = time.perf_counter()
    best_score, best_valid = trainer.fit(loader, valid_data, saved=saved, verbose=verbose,
                                         show_progress=bool(config["show_progress"]))
    train_s = time.perf_counter() - started
    test = trainer.evaluate(test_data, load_best_model=saved, show_progress=bool(config["show_progress"]))
    history = trainer.valid_history
    best_epoch = int(np.argmax([h.get(config["valid_metric"].lower(), -np.inf) for h in history])) if history \
        else None
    return {"model": base.__name__, "dataset": dataset, "best_valid_score": float(best_score),
            "best_valid": {k: float(v) for k, v in (best_valid or {}).items()},
            "test": {k: float(v) for k, v in test.items()}, "best_epoch": best_epoch,
            "epoch_seconds": trainer.epoch_seconds, "epoch_cpu_seconds": trainer.epoch_cpu_seconds,
            "setup_seconds": setup_s, "train_seconds": train_s,
            "train_rows": len(loader._dataset), "valid_history": history,
            "options": dict(net.cl), "simmine_params": net.simmine.params if net.simmine else None,
            "config": {k: v for k, v in config_dict.items()}}
