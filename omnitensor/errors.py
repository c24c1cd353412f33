"""The one exception tree of OmniTensor's shared code; each process extends it from `OmniTensorError`."""

from __future__ import annotations

from typing import Any


class OmniTensorError(Exception):
    """Root of every error raised on purpose by OmniTensor code."""

    code = "internal_error"


class ConfigError(OmniTensorError, ValueError):
    """A setting, file or environment the process needs is missing or wrong."""

    code = "config_error"


class CompilationError(OmniTensorError, RuntimeError):
    """The Solidity sources did not compile."""

    code = "compilation_error"


class DeploymentNotFound(ConfigError, FileNotFoundError):
    """No deployment manifest where one was expected, or its contracts are not on the chain."""

    code = "deployment_not_found"


class ChainError(OmniTensorError, RuntimeError):
    """The chain could not be reached, or it refused a transaction for a reason other than a revert."""

    code = "chain_error"


class ContractRevert(ChainError):
    """A call or transaction reverted. `name` and `args` come from the contract's custom error, decoded
    through the ABIs; `name` is "Error"/"Panic" for string reverts and panics, and "Unknown" when the
    revert data matches no error in the ABIs."""

    code = "contract_revert"

    def __init__(self, name: str, args: dict[str, Any], data: str) -> None:
        self.name = name
        self.args_by_name = args
        self.data = data
        shown = ", ".join(f"{k}={v}" for k, v in args.items())
        super().__init__(f"{name}({shown})")


class TransactionTimeout(ChainError, TimeoutError):
    """A transaction was not mined in time, even after its fees were bumped."""

    code = "transaction_timeout"
