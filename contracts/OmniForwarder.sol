// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC2771Forwarder} from "@openzeppelin/contracts/metatx/ERC2771Forwarder.sol";

/// @title OmniForwarder
/// @notice OpenZeppelin's ERC-2771 forwarder under the network's EIP-712 domain name: a relayer submits a
///         request signed by a user and pays its gas; the target contracts see the user as the sender.
contract OmniForwarder is ERC2771Forwarder {
    constructor() ERC2771Forwarder("OmniTensor Forwarder") {}
}
