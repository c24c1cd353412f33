"""The backend's error tree: every failure the API returns is an `ApiError` with an HTTP status and a
stable `code`, rendered as `{"error": {"code", "message", "details", "request_id"}}`."""

from __future__ import annotations

from typing import Any

from omnitensor.errors import ContractRevert, OmniTensorError


class ApiError(OmniTensorError):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}
        self.headers = headers or {}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PaymentRequired(ApiError):
    status, code = 402, "insufficient_funds"


class TooLarge(ApiError):
    status, code = 413, "too_large"


class RangeNotSatisfiable(ApiError):
    status, code = 416, "chunk_out_of_range"


class Invalid(ApiError):
    status, code = 422, "validation_error"


class SignatureRequired(ApiError):
    """A wallet account's write: the wallet signs the forward request in `details`, then POSTs it to /relay."""

    status, code = 428, "wallet_signature_required"


class RateLimited(ApiError):
    status, code = 429, "rate_limited"

    def __init__(self, message: str, retry_after: int, **kwargs: Any) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)}, **kwargs)


class BadGateway(ApiError):
    status, code = 502, "chain_unavailable"


class Unavailable(ApiError):
    status, code = 503, "unavailable"


class GatewayTimeout(ApiError):
    status, code = 504, "chain_timeout"


# Custom errors of the contracts → (status, stable code). Anything else is 409 `contract_revert`; the error's
# name and arguments are always in `details`.
_REVERTS: dict[str, tuple[type[ApiError], str]] = {
    "MarketInsufficientDeposit": (PaymentRequired, "insufficient_deposit"),
    "ERC20InsufficientBalance": (PaymentRequired, "insufficient_balance"),
    "MarketNoActiveNode": (Unavailable, "no_node_available"),
    "MarketNodeNotActive": (Invalid, "node_not_active"),
    "MarketNodeNotRegistered": (NotFound, "node_not_found"),
    "MarketUnknownModel": (NotFound, "model_not_found"),
    "RegistryUnknownModel": (NotFound, "model_not_found"),
    "RegistryUnknownDataset": (NotFound, "dataset_not_found"),
    "MarketUnknownAllocation": (NotFound, "allocation_not_found"),
    "MarketModelInactive": (Conflict, "model_inactive"),
    "MarketFeeAboveMax": (Conflict, "fee_above_max"),
    "MarketAllocationClosed": (Conflict, "allocation_closed"),
    "MarketAllocationExpired": (Conflict, "allocation_expired"),
    "MarketInvalidDeadline": (Invalid, "invalid_deadline"),
    "MarketInvalidDuration": (Invalid, "invalid_duration"),
    "MarketDataTooLarge": (TooLarge, "input_too_large"),
    "MarketZeroAmount": (Invalid, "zero_amount"),
    "MarketZeroAddress": (Invalid, "zero_address"),
    "ERC20InvalidReceiver": (Invalid, "invalid_receiver"),
    "RegistryFieldTooLong": (Invalid, "field_too_long"),
    "RegistryInvalidUri": (Invalid, "invalid_uri"),
    "EnforcedPause": (Unavailable, "market_paused"),
}


def from_revert(exc: ContractRevert) -> ApiError:
    kind, code = _REVERTS.get(exc.name, (Conflict, "contract_revert"))
    args = {k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in exc.args_by_name.items()}
    return kind(f"the contract refused the transaction: {exc}", code=code,
                details={"revert": {"error": exc.name, "args": args}})
