"""The node's settings: environment variables prefixed OMNITENSOR_NODE_ (or command-line flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from omnitensor.paths import DEFAULT_STATE_DIR

OMNIT = 10**18


class NodeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMNITENSOR_NODE_", extra="ignore")

    rpc_url: str = "http://127.0.0.1:8545"
    # The node's key: an encrypted keystore (production) or a raw key (local development only).
    keystore: Path | None = None
    keystore_password: SecretStr | None = None
    private_key: SecretStr | None = None
    manifest: Path | None = Field(None, description="default: .omnitensor/deployments/<chain id>.json")

    confirmations: int = Field(0, ge=0, description="blocks behind head before an event is handled")
    poll_interval: float = Field(0.05, gt=0, description="seconds between log polls")
    max_pending_settlements: int = Field(2, ge=1, description="settlement transactions in flight at once; more jobs "
                                         "wait and join the next, larger batch")
    max_block_range: int = Field(1000, ge=1, description="blocks per eth_getLogs request")
    reorg_depth: int = Field(64, ge=1, description="blocks re-read after a reorg is noticed")
    max_batch: int = Field(32, ge=1, description="jobs per engine batch and per settlement transaction")
    fallback_grace: float = Field(2.0, ge=0, description="seconds after fallbackAt before taking a silent node's job")

    device: Literal["auto", "cuda", "cpu"] = "auto"
    blob_dir: Path = DEFAULT_STATE_DIR / "blobs"
    state_db: Path | None = Field(None, description="the node's SQLite file; default: .omnitensor/node-<address>.db")
    model_cache_bytes: int = Field(512 * 2**20, ge=0)
    max_model_bytes: int = Field(512 * 2**20, ge=1)
    max_input_bytes: int = Field(64 * 2**20, ge=1)
    max_output_bytes: int = Field(64 * 2**20, ge=1, description="largest encoded outputs of one job")

    # Fetching models and by-reference inputs (omnitensor.blobs.FetchPolicy).
    fetch_allow_file: bool = Field(False, description="accept file:// URIs (paths on this host); local networks only")
    fetch_allow_private: bool = Field(False, description="fetch from loopback, private and link-local addresses")
    fetch_deadline_s: float = Field(120.0, gt=0, description="total seconds one fetch may take")

    # Engine workers (omnitensor.sandbox): every model loads and runs in a child process with these limits.
    max_workers: int = Field(2, ge=1, description="engine worker processes; each holds the models it loaded")
    worker_memory_bytes: int = Field(4 * 2**30, ge=64 * 2**20, description="resident memory a worker may grow by "
                                     "(its models and one batch); above it the worker is killed and replaced")
    load_timeout_s: float = Field(120.0, gt=0, description="seconds to load one model in a worker")
    batch_timeout_s: float = Field(30.0, gt=0, description="seconds one engine batch may run")
    public_url: str | None = Field(None, description="the URL at which this node's metrics port is reachable from "
                                   "elsewhere; outputs above the inline limit are named <public_url>/blobs/<sha256>")

    stake: int = Field(100 * OMNIT, ge=0, description="stake to register with, wei")
    price_per_job: int = Field(OMNIT // 100, ge=0)
    price_per_second: int = Field(OMNIT // 1000, ge=0)
    usage_report_interval: float = Field(5.0, gt=0, description="seconds between allocation usage reports")

    # Fault-injection aids for crash tests: sleep at these points so the process can be killed there.
    pause_before_settle_s: float = Field(0.0, ge=0)
    pause_after_send_s: float = Field(0.0, ge=0)

    metrics_port: int = Field(9464, ge=0, le=65535, description="Prometheus metrics and /health; 0 turns it off")
    metrics_host: str = "127.0.0.1"
