"""Request and response bodies of the API, as they appear in the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from omnitensor.tensors import DTYPES

Wei = Annotated[str, Field(pattern=r"^[0-9]{1,78}$", description="an OMNIT amount in wei (10^-18 OMNIT), as a "
                           "decimal string", examples=["1000000000000000000"])]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$", examples=["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"])]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$", description="hex SHA-256 of the whole file")]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$",
                            examples=["digits-mlp"])]
TxHash = Annotated[str, Field(pattern=r"^0x[0-9a-f]{64}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ── errors ──
class ErrorDetail(BaseModel):
    code: str = Field(examples=["insufficient_deposit"])
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    request_id: str


class ErrorBody(BaseModel):
    error: ErrorDetail
    model_config = ConfigDict(json_schema_extra={"example": {"error": {
        "code": "insufficient_deposit", "message": "the contract refused the transaction: MarketInsufficientDeposit(…)",
        "details": {"revert": {"error": "MarketInsufficientDeposit", "args": {"available": "0", "required": "30"}}},
        "request_id": "0b7c6d1e2f3a4b5c"}}})


# ── auth ──
class ApiKeyGrant(Strict):
    grant_type: Literal["api_key"]
    api_key: str = Field(min_length=1, max_length=200, examples=["omt_3q2…"])


class RefreshGrant(Strict):
    grant_type: Literal["refresh_token"]
    refresh_token: str = Field(min_length=1, max_length=200)


class SiweGrant(Strict):
    grant_type: Literal["siwe"]
    message: str = Field(min_length=1, max_length=4000, description="the EIP-4361 message the wallet signed")
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


TokenRequest = Annotated[ApiKeyGrant | RefreshGrant | SiweGrant, Field(discriminator="grant_type")]


class AccountRef(BaseModel):
    id: str
    kind: Literal["custodial", "wallet"]
    address: Address


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    account: AccountRef


class SiweNonceResponse(BaseModel):
    nonce: str
    expires_at: float
    domain: str
    chain_id: int
    uri: str
    version: Literal["1"]


class NewAccount(Strict):
    label: str = Field("", max_length=100)


class CreatedAccount(BaseModel):
    account: AccountRef
    api_key: str = Field(description="shown once; store it safely")


# ── uploads ──
class ModelUploadRequest(Strict):
    name: Name
    format: Literal["onnx", "torchscript"]
    price_wei: Wei = Field(description="paid to you per inference")
    size: int = Field(gt=0, description="bytes of the whole file")
    sha256: Sha256


class DatasetUploadRequest(Strict):
    name: Name
    size: int = Field(gt=0)
    sha256: Sha256
    metadata: dict[str, Any] = Field(default_factory=dict, description="free-form JSON, stored on-chain")


class UploadSession(BaseModel):
    upload_id: str
    kind: Literal["model", "dataset"]
    status: Literal["open", "complete"]
    size: int
    sha256: str
    chunk_size: int
    chunk_count: int
    received: list[int]
    expires_at: float
    chunk_url: str = Field(examples=["/uploads/upl_…/chunks/{index}"])
    complete_url: str
    result: dict[str, Any] | None = None


class CompleteUpload(Strict):
    sha256: Sha256


class RegisteredModel(BaseModel):
    model_id: int
    digest: str
    uri: str
    tx_hash: TxHash
    block: int
    upload_id: str


class RegisteredDataset(BaseModel):
    dataset_id: int
    digest: str
    uri: str
    tx_hash: TxHash
    block: int
    upload_id: str


class ChunkReceived(BaseModel):
    upload_id: str
    index: int
    size: int
    received: int
    chunk_count: int


# ── models ──
class ModelInfo(BaseModel):
    model_id: int
    owner: Address
    name: str
    format: Literal["onnx", "torchscript"]
    price_wei: Wei
    active: bool
    digest: str
    uri: str
    registered_at: int


class ModelPage(BaseModel):
    items: list[ModelInfo]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at the end")


class TensorIn(Strict):
    # A plain string, so a dtype outside DTYPES gets the API's `unsupported_dtype` error rather than a schema
    # error; the document still lists the supported ones.
    dtype: str = Field(max_length=32, json_schema_extra={"enum": list(DTYPES)})
    shape: list[Annotated[int, Field(ge=0, le=1 << 31)]] = Field(max_length=8, description="[] for a 0-d tensor")
    data: list[Any] | StrictBool | StrictInt | StrictFloat = Field(
        description="row-major values; nested lists are accepted; a 0-d tensor's value may be given bare")


class InferenceRequest(Strict):
    inputs: dict[str, TensorIn] = Field(min_length=1, max_length=64, examples=[
        {"input": {"dtype": "float32", "shape": [1, 64], "data": [0.0] * 64}}])
    node: Address | None = Field(None, description="a node to run the job; default: the next active node")
    max_fee_wei: Wei | None = Field(None, description="default: the model's price plus the highest node price")
    ttl_s: int | None = Field(None, ge=30, le=7 * 24 * 3600, description="seconds until the job may be refunded")


class TensorOut(BaseModel):
    dtype: str
    shape: list[int]
    data: list[Any]


class Timings(BaseModel):
    accepted_at: float = Field(description="unix time the API accepted the request")
    opened_at: float = Field(description="unix time the job's transaction was mined")
    settled_at: float | None
    queued_ms: float = Field(description="accepted → job open on-chain")
    engine_ms: float | None = Field(description="the model's run time as the node reported it")
    onchain_ms: float | None = Field(description="job open on-chain → settlement seen")


class JobView(BaseModel):
    job_id: str
    model_id: int
    status: Literal["pending", "settled", "failed", "refunded"]
    node: Address
    outputs: dict[str, TensorOut] | None
    failure_code: int | None = Field(description="the node's reason code when failed (see the README)")
    failure: str | None = Field(None, description="the reason code's name, e.g. TIMEOUT", examples=["TIMEOUT"])
    output_error: str | None = Field(None, description="why a settled job's outputs cannot be shown (the node's "
                                     "output URI could not be fetched under this API's policy, or is not tensors)")
    fee_locked_wei: Wei
    fee_charged_wei: Wei
    deadline: int
    request_tx: TxHash
    settle_tx: TxHash | None
    timings: Timings


class JobPage(BaseModel):
    items: list[JobView]
    next_cursor: str | None


# ── compute ──
class AllocateRequest(Strict):
    gpu_seconds: int = Field(gt=0, le=2**32 - 1, examples=[600])
    duration_s: int = Field(3600, gt=0, le=30 * 24 * 3600, description="seconds until the allocation expires")
    node: Address | None = Field(None, description="default: the cheapest active node")
    max_price_per_second_wei: Wei | None = None


class AllocationView(BaseModel):
    allocation_id: int
    node: Address
    reserved_seconds: int
    used_seconds: int
    remaining_seconds: int
    price_per_second_wei: Wei
    escrow_wei: Wei
    cost_so_far_wei: Wei
    expires_at: int
    closed: bool
    open_tx: TxHash
    close_tx: TxHash | None


class AllocationPage(BaseModel):
    items: list[AllocationView]


# ── data ──
class DatasetMetadata(BaseModel):
    dataset_id: int
    owner: Address
    name: str | None
    digest: str
    size_bytes: int
    uri: str
    metadata: dict[str, Any] | str
    registered_at: int
    tx_hash: TxHash | None
    block: int | None


# ── account ──
class Balance(BaseModel):
    address: Address
    wallet_wei: Wei = Field(description="OMNIT in the account's wallet")
    available_wei: Wei = Field(description="OMNIT in the market deposit, free to spend or withdraw")
    locked_wei: Wei = Field(description="OMNIT held for open jobs and allocations")


class TransferRequest(Strict):
    to: str = Field(description="an address, or another account's id (acct_…)", examples=["acct_5f0e…"],
                    max_length=64)
    amount_wei: Wei


class AmountRequest(Strict):
    amount_wei: Wei


class TxResult(BaseModel):
    tx_hash: TxHash
    block: int
    balance: Balance


# ── relay ──
class ForwardRequest(Strict):
    from_: Address = Field(alias="from")
    to: Address
    value: Annotated[str, Field(pattern=r"^0$")] = "0"
    gas: Annotated[str, Field(pattern=r"^[0-9]{1,10}$")]
    nonce: Annotated[str, Field(pattern=r"^[0-9]{1,78}$")]
    deadline: Annotated[str, Field(pattern=r"^[0-9]{1,15}$")]
    data: Annotated[str, Field(pattern=r"^0x([0-9a-fA-F]{2})*$", max_length=65536)]
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RelayRequest(Strict):
    request: ForwardRequest
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


class RelayResult(BaseModel):
    tx_hash: TxHash
    block: int
    events: list[dict[str, Any]]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    chain_id: int
    block: int | None
    contracts: dict[str, str]
    relayer: Address
    relayer_balance_wei: Wei | None
    database: Literal["ok", "error"]
