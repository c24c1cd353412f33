// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {Context} from "@openzeppelin/contracts/utils/Context.sol";

/// @title OmniToken (OMNIT)
/// @notice The OmniTensor network's ERC-20: 18 decimals, ERC-2612 permit, a supply fixed at deployment.
/// @dev There is no mint function: `_mint` is reachable only from the constructor. Transfers and approvals
///      can be relayed through the network's ERC-2771 forwarder, so accounts without ETH can move tokens.
contract OmniToken is ERC20Permit, ERC2771Context {
    /// @param initialHolder Receives the whole supply.
    /// @param supply Total supply in wei (18 decimals).
    /// @param trustedForwarder The ERC-2771 forwarder whose relayed calls are attributed to their signer.
    constructor(address initialHolder, uint256 supply, address trustedForwarder)
        ERC20("OmniTensor", "OMNIT")
        ERC20Permit("OmniTensor")
        ERC2771Context(trustedForwarder)
    {
        _mint(initialHolder, supply);
    }

    function _msgSender() internal view override(Context, ERC2771Context) returns (address) {
        return ERC2771Context._msgSender();
    }

    function _msgData() internal view override(Context, ERC2771Context) returns (bytes calldata) {
        return ERC2771Context._msgData();
    }

    function _contextSuffixLength() internal view override(Context, ERC2771Context) returns (uint256) {
        return ERC2771Context._contextSuffixLength();
    }
}
