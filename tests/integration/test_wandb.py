"""logger=wandb without an account: offline mode writes a local run whose history and summary hold
val/psnr, with the resolved config, the sweep group and wandb.finish() after the job."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from deblur.training import train
from tests.integration.conftest import TINY_TRAIN

wandb = pytest.importorskip("wandb")


def read_records(run_file: Path) -> list[Any]:
    """The protobuf records of an offline run's ``.wandb`` file: a 7-byte header (``:W&B``, magic, version)
    then LevelDB-log-style 32 KiB blocks of chunks (crc32 u32, length u16, type u8: 1 full, 2 first,
    3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    raw = run_file.read_bytes()
    assert raw[:4] == b":W&B"
    block, pos, chunks, pending = 32768, 7, [], b""
    while pos + 7 <= len(raw):
        if block - pos % block < 7:  # zero padding at the end of a block
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        data, pos = raw[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 1:
            chunks.append(data)
        elif kind in (2, 3):
            pending = (b"" if kind == 2 else pending) + data
        elif kind == 4:
            chunks.append(pending + data)
    records = []
    for data in chunks:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        records.append(record)
    return records


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def test_wandb_offline_run_holds_val_psnr_and_the_resolved_config(compose_train, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose_train(
        "logger=wandb", "logger.wandb.group=test_study", "debug=limit", "callbacks=default",
        "trainer.max_epochs=1", *TINY_TRAIN,
    )  # fmt: skip
    assert cfg.logger.wandb.mode == "offline"
    payload = train(cfg)
    assert wandb.run is None  # wandb.finish() was called
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run_file = next(runs[0].glob("*.wandb"))
    deadline = time.monotonic() + 60  # wandb's service process may still be flushing the file
    while True:
        records = read_records(run_file)
        kinds = [r.WhichOneof("record_type") for r in records]
        if "exit" in kinds or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "exit" in kinds  # the run was finished
    run_record = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run_record.run_group == "test_study"
    history = [
        {_key(item): json.loads(item.value_json) for item in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    psnr = [h["val/psnr"] for h in history if "val/psnr" in h]
    assert psnr and psnr[-1] == pytest.approx(payload["val/psnr"], abs=1e-4)
    assert any("train/loss" in h for h in history)
    gain = [h["val/psnr_gain"] for h in history if "val/psnr_gain" in h]
    assert gain and gain[-1] == pytest.approx(payload["val/psnr_gain"], abs=1e-4)
    logged = {key.split("/_type")[0] for h in history for key in h if key.endswith("/_type")}
    assert {"val/triplets", "figures/val_psnr", "figures/before_after", "figures/frequency_gap"} <= logged
    config = {
        _key(item): json.loads(item.value_json)
        for r in records
        if r.WhichOneof("record_type") == "config"
        for item in r.config.update
    }
    assert config["data"]["crop_size"] == 32 and config["paths"]["output_dir"] == str(tmp_path)  # resolved
    assert "${" not in json.dumps(config)
    # the resolved training settings, not trainer.precision=auto
    assert config["precision"] == payload["precision"] == "32-true" and config["settings_chosen_by"] == "rule"
    assert config["channels_last"] is True and config["device"] == payload["device"]


def test_wandb_disabled_needs_nothing(compose_train, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = compose_train("logger=wandb", "debug=fdr", *TINY_TRAIN)
    assert cfg.logger.wandb.mode == "disabled"
    train(cfg)
    assert not list(tmp_path.glob("wandb/offline-run-*"))
