"""Backend settings, from `OMNITENSOR_API_*` environment variables (or keyword arguments in tests)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from omnitensor.paths import DEFAULT_STATE_DIR

MIB = 1024 * 1024


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMNITENSOR_API_", extra="forbid")

    # ── chain ──
    rpc_url: str = "http://127.0.0.1:8545"
    manifest: Path | None = Field(None, description="default: .omnitensor/deployments/<chain id>.json")
    relayer_private_key: SecretStr | None = Field(None, description="pays the gas of relayed writes")
    relayer_keystore: Path | None = None
    relayer_keystore_password: SecretStr | None = None

    # ── storage ──
    database_url: str = f"sqlite:///{DEFAULT_STATE_DIR / 'api.db'}"
    data_dir: Path = DEFAULT_STATE_DIR / "api"  # upload chunks in progress
    blob_dir: Path = DEFAULT_STATE_DIR / "blobs"  # the content-addressed store nodes read models and inputs from
    public_url: str | None = Field(None, description="this API's public URL; when set, blobs are registered as "
                                   "<public_url>/blobs/<sha256> so that remote nodes can fetch them")

    # ── secrets and auth ──
    secret: SecretStr | None = Field(None, description="server secret: signs tokens, encrypts custodial keys")
    admin_token: SecretStr | None = Field(None, description="enables POST /admin/accounts with this bearer token")
    scrypt_n: int = 262144  # Web3 Secret Storage work factor for custodial keys
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    siwe_domain: str = "localhost:8000"
    siwe_nonce_ttl_s: int = 600
    clock_skew_s: int = 60

    # ── limits ──
    chunk_bytes: int = 8 * MIB  # the chunk size handed out; also the most one chunk request may carry
    single_upload_bytes: int = 8 * MIB  # most bytes of a one-request upload
    max_model_bytes: int = 512 * MIB
    max_dataset_bytes: int = 2048 * MIB
    upload_ttl_s: int = 24 * 3600
    max_tensor_bytes: int = 4 * MIB
    max_output_bytes: int = 64 * MIB  # largest job output the API fetches from a node to show it

    # ── fetching (outputs named by nodes) and model validation (omnitensor.sandbox) ──
    fetch_allow_file: bool = False  # file:// URIs: paths on this host (local networks only)
    fetch_allow_private: bool = False  # loopback, private and link-local addresses (local networks only)
    fetch_deadline_s: float = 30.0
    validate_memory_bytes: int = 4 * 1024 * MIB  # a model being validated may grow its worker by this much
    validate_timeout_s: float = 120.0
    requests_per_minute: int = 600
    relays_per_minute: int = 60
    relays_total: int = 100_000

    # ── inference ──
    default_job_ttl_s: int = 600
    default_wait_s: float = 30.0
    poll_interval: float = 0.002  # settlement polling while a request waits (two RPCs of ~0.3 ms on a local node)
    idle_poll_interval: float = 0.5
    refund_interval_s: float = 5.0
