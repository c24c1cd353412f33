// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {Context} from "@openzeppelin/contracts/utils/Context.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IComputeMarket} from "./interfaces/IComputeMarket.sol";
import {IRegistry} from "./interfaces/IRegistry.sol";

/// @title ComputeMarket
/// @notice Escrow for OmniTensor inference jobs, GPU allocations and node stakes. See `IComputeMarket` for the
///         money model, job commitments and how jobs are assigned to nodes.
/// @dev Invariant: `token.balanceOf(this) == Σ available + Σ locked + Σ stake`. No function loops over
///      anything that grows with jobs, nodes, models or users (batch settlement loops over its own calldata).
contract ComputeMarket is IComputeMarket, AccessControl, Pausable, ReentrancyGuardTransient, ERC2771Context {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    // ─── Storage ──────────────────────────────────────────────────────────

    /// @dev One slot: a job opening reads and writes it once.
    struct Account {
        uint112 available;
        uint112 locked;
        uint32 jobNonce; // number of jobs opened; low 64 bits of the next job id
    }

    struct Node {
        uint96 stake; // slot 0
        uint96 pricePerJob;
        uint32 activePosition; // 1-based index in _activeNodes; 0 = not active
        bool registered;
        uint96 pricePerSecond; // slot 1
        uint64 unlockAt; // 0 = not exiting
    }

    struct Allocation {
        address requester; // slot 0
        uint64 expiresAt;
        uint32 reservedSeconds;
        address node; // slot 1
        uint96 pricePerSecond;
        uint32 usedSeconds; // slot 2: the only slot a usage report writes
        bool closed;
    }

    mapping(address account => Account) private _accounts;
    mapping(uint256 jobId => bytes32 commitment) private _jobs;
    mapping(address node => Node) private _nodes;
    mapping(uint64 allocationId => Allocation) private _allocations;
    address[] private _activeNodes;
    uint256 private _roundRobin;
    uint64 private _allocationCount;

    // ─── Constants ────────────────────────────────────────────────────────

    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");
    uint256 public constant MAX_INLINE_BYTES = 8192;
    uint64 public constant MAX_JOB_TTL = 7 days;
    uint64 public constant MAX_ALLOCATION_DURATION = 90 days;

    IERC20 public immutable token;
    IRegistry public immutable registry;
    uint96 public immutable minStake;
    uint64 public immutable unbondingDelay;
    uint64 public immutable assignWindow;
    address public immutable slashRecipient;

    /// @param token_ The OMNIT token.
    /// @param registry_ The model registry.
    /// @param trustedForwarder The ERC-2771 forwarder.
    /// @param admin Receives the admin, pauser and slasher roles.
    /// @param slashRecipient_ Receives slashed stake.
    /// @param minStake_ Minimum node stake (wei).
    /// @param unbondingDelay_ Seconds between a node's exit request and its stake withdrawal.
    /// @param assignWindow_ Seconds a job stays reserved for its assigned node before any node may settle it.
    constructor(
        IERC20 token_,
        IRegistry registry_,
        address trustedForwarder,
        address admin,
        address slashRecipient_,
        uint96 minStake_,
        uint64 unbondingDelay_,
        uint64 assignWindow_
    ) ERC2771Context(trustedForwarder) {
        if (address(token_) == address(0) || address(registry_) == address(0) || admin == address(0)) {
            revert MarketZeroAddress();
        }
        if (slashRecipient_ == address(0)) revert MarketZeroAddress();
        if (minStake_ == 0) revert MarketZeroAmount();
        token = token_;
        registry = registry_;
        slashRecipient = slashRecipient_;
        minStake = minStake_;
        unbondingDelay = unbondingDelay_;
        assignWindow = assignWindow_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
        _grantRole(SLASHER_ROLE, admin);
    }

    // ─── Deposits ─────────────────────────────────────────────────────────

    /// @inheritdoc IComputeMarket
    function deposit(uint256 amount) external nonReentrant {
        _deposit(_msgSender(), amount);
    }

    /// @inheritdoc IComputeMarket
    function depositWithPermit(uint256 amount, uint256 permitDeadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
    {
        address account = _msgSender();
        // A front-run permit makes this call revert; the allowance it set still lets the deposit succeed.
        try IERC20Permit(address(token)).permit(account, address(this), amount, permitDeadline, v, r, s) {} catch {}
        _deposit(account, amount);
    }

    /// @inheritdoc IComputeMarket
    function withdraw(uint256 amount) external nonReentrant {
        if (amount == 0) revert MarketZeroAmount();
        address account = _msgSender();
        Account storage a = _accounts[account];
        if (a.available < amount) revert MarketInsufficientDeposit(account, a.available, amount);
        a.available -= uint112(amount);
        token.safeTransfer(account, amount);
        emit Withdrawn(account, amount);
    }

    /// @inheritdoc IComputeMarket
    function balanceOf(address account) external view returns (uint256 available, uint256 locked) {
        Account storage a = _accounts[account];
        return (a.available, a.locked);
    }

    // ─── Nodes ────────────────────────────────────────────────────────────

    /// @inheritdoc IComputeMarket
    function registerNode(uint96 stake, uint96 pricePerJob, uint96 pricePerSecond)
        external
        whenNotPaused
        nonReentrant
    {
        address node = _msgSender();
        Node storage n = _nodes[node];
        if (n.registered) revert MarketNodeAlreadyRegistered(node);
        if (stake < minStake) revert MarketStakeTooLow(stake, minStake);
        n.registered = true;
        n.stake = stake;
        n.pricePerJob = pricePerJob;
        n.pricePerSecond = pricePerSecond;
        _activate(node, n);
        token.safeTransferFrom(node, address(this), stake);
        emit NodeRegistered(node, stake, pricePerJob, pricePerSecond);
    }

    /// @inheritdoc IComputeMarket
    function updateNode(uint96 pricePerJob, uint96 pricePerSecond) external {
        address node = _msgSender();
        Node storage n = _registeredNode(node);
        n.pricePerJob = pricePerJob;
        n.pricePerSecond = pricePerSecond;
        emit NodeUpdated(node, pricePerJob, pricePerSecond);
    }

    /// @inheritdoc IComputeMarket
    function increaseStake(uint96 amount) external nonReentrant {
        if (amount == 0) revert MarketZeroAmount();
        address node = _msgSender();
        Node storage n = _registeredNode(node);
        uint96 stake = n.stake + amount;
        n.stake = stake;
        if (n.activePosition == 0 && n.unlockAt == 0 && stake >= minStake) _activate(node, n);
        token.safeTransferFrom(node, address(this), amount);
        emit NodeStakeIncreased(node, amount, stake);
    }

    /// @inheritdoc IComputeMarket
    function requestExit() external {
        address node = _msgSender();
        Node storage n = _registeredNode(node);
        if (n.unlockAt != 0) revert MarketNodeExiting(node, n.unlockAt);
        uint64 unlockAt = uint64(block.timestamp) + unbondingDelay;
        n.unlockAt = unlockAt;
        _deactivate(n);
        emit NodeExitRequested(node, unlockAt);
    }

    /// @inheritdoc IComputeMarket
    function withdrawStake() external nonReentrant {
        address node = _msgSender();
        Node storage n = _registeredNode(node);
        if (n.unlockAt == 0 || block.timestamp < n.unlockAt) revert MarketStakeLocked(node, n.unlockAt);
        uint256 stake = n.stake;
        delete _nodes[node];
        if (stake != 0) token.safeTransfer(node, stake);
        emit NodeExited(node, stake);
    }

    /// @inheritdoc IComputeMarket
    function slash(address node, uint96 amount) external onlyRole(SLASHER_ROLE) nonReentrant {
        if (amount == 0) revert MarketZeroAmount();
        Node storage n = _registeredNode(node);
        if (amount > n.stake) revert MarketSlashAboveStake(node, amount, n.stake);
        uint96 stake = n.stake - amount;
        n.stake = stake;
        if (stake < minStake) _deactivate(n);
        token.safeTransfer(slashRecipient, amount);
        emit NodeSlashed(node, amount, stake, slashRecipient);
    }

    /// @inheritdoc IComputeMarket
    function getNode(address node) external view returns (NodeInfo memory) {
        Node storage n = _nodes[node];
        return NodeInfo(n.stake, n.pricePerJob, n.pricePerSecond, n.activePosition != 0, n.unlockAt);
    }

    /// @inheritdoc IComputeMarket
    function getActiveNodes(uint256 offset, uint256 limit) external view returns (address[] memory page) {
        uint256 total = _activeNodes.length;
        uint256 n = offset >= total ? 0 : (total - offset < limit ? total - offset : limit);
        page = new address[](n);
        for (uint256 i; i < n; ++i) {
            page[i] = _activeNodes[offset + i];
        }
    }

    /// @inheritdoc IComputeMarket
    function activeNodeCount() external view returns (uint256) {
        return _activeNodes.length;
    }

    // ─── Jobs ─────────────────────────────────────────────────────────────

    /// @inheritdoc IComputeMarket
    function openJob(
        uint64 modelId,
        address node,
        uint96 maxFee,
        uint64 deadline,
        bytes32 inputDigest,
        bytes calldata input
    ) external whenNotPaused returns (uint256 jobId) {
        if (node == address(0)) node = _nextNode();
        Node storage n = _nodes[node];
        if (n.activePosition == 0) revert MarketNodeNotActive(node);
        return _openJob(modelId, node, n.pricePerJob, maxFee, deadline, inputDigest, input);
    }

    /// @inheritdoc IComputeMarket
    function openAllocationJob(
        uint64 allocationId,
        uint64 modelId,
        uint96 maxFee,
        uint64 deadline,
        bytes32 inputDigest,
        bytes calldata input
    ) external whenNotPaused returns (uint256 jobId) {
        Allocation storage al = _openAllocation(allocationId);
        if (al.requester != _msgSender()) {
            revert MarketNotAllocationRequester(allocationId, _msgSender(), al.requester);
        }
        jobId = _openJob(modelId, al.node, 0, maxFee, deadline, inputDigest, input);
        emit AllocationJobOpened(jobId, allocationId);
    }

    /// @inheritdoc IComputeMarket
    function fulfil(uint256 jobId, Job calldata job, bytes32 outputDigest, bytes calldata output) external {
        address node = _msgSender();
        _closeJob(jobId, job, node, true);
        _checkData(output);
        _release(job.requester, uint256(job.modelFee) + job.nodeFee, 0);
        _credit(job.modelOwner, job.modelFee);
        _credit(node, job.nodeFee);
        emit JobFulfilled(jobId, node, outputDigest, output);
    }

    /// @inheritdoc IComputeMarket
    function fail(uint256 jobId, Job calldata job, uint16 code) external {
        if (code == 0) revert MarketInvalidFailureCode();
        address node = _msgSender();
        _closeJob(jobId, job, node, true);
        uint256 fee = uint256(job.modelFee) + job.nodeFee;
        _release(job.requester, fee, fee);
        emit JobFailed(jobId, node, code);
    }

    /// @inheritdoc IComputeMarket
    function settleBatch(Settlement[] calldata settlements) external returns (uint256 settled) {
        address node = _msgSender();
        uint256 nodeEarned;
        // Consecutive entries usually share a requester or a model owner: add up and write once per run.
        address requester;
        uint256 released;
        uint256 refunded;
        address owner;
        uint256 ownerEarned;
        for (uint256 i; i < settlements.length; ++i) {
            Settlement calldata s = settlements[i];
            Job calldata job = s.job;
            if (!_closeJob(s.jobId, job, node, false)) continue;
            if (job.requester != requester) {
                _release(requester, released, refunded);
                (requester, released, refunded) = (job.requester, 0, 0);
            }
            uint256 fee = uint256(job.modelFee) + job.nodeFee;
            released += fee;
            if (s.failureCode != 0) {
                refunded += fee;
                emit JobFailed(s.jobId, node, s.failureCode);
            } else {
                _checkData(s.output);
                if (job.modelOwner != owner) {
                    _credit(owner, ownerEarned);
                    (owner, ownerEarned) = (job.modelOwner, 0);
                }
                ownerEarned += job.modelFee;
                nodeEarned += job.nodeFee;
                emit JobFulfilled(s.jobId, node, s.outputDigest, s.output);
            }
            ++settled;
        }
        _release(requester, released, refunded);
        _credit(owner, ownerEarned);
        _credit(node, nodeEarned);
    }

    /// @inheritdoc IComputeMarket
    function refund(uint256 jobId, Job calldata job) external {
        _checkCommitment(jobId, job);
        if (block.timestamp <= job.deadline) revert MarketJobNotExpired(jobId, job.deadline);
        delete _jobs[jobId];
        uint256 fee = uint256(job.modelFee) + job.nodeFee;
        _release(job.requester, fee, fee);
        emit JobRefunded(jobId, job.requester, fee);
    }

    /// @inheritdoc IComputeMarket
    function jobCommitments(uint256[] calldata jobIds) external view returns (bytes32[] memory commitments) {
        commitments = new bytes32[](jobIds.length);
        for (uint256 i; i < jobIds.length; ++i) {
            commitments[i] = _jobs[jobIds[i]];
        }
    }

    /// @inheritdoc IComputeMarket
    function hashJob(Job calldata job) public pure returns (bytes32) {
        return keccak256(abi.encode(job));
    }

    // ─── Allocations ──────────────────────────────────────────────────────

    /// @inheritdoc IComputeMarket
    function openAllocation(address node, uint32 reservedSeconds, uint64 duration)
        external
        whenNotPaused
        returns (uint64 allocationId)
    {
        if (reservedSeconds == 0) revert MarketZeroAmount();
        if (duration == 0 || duration > MAX_ALLOCATION_DURATION) {
            revert MarketInvalidDuration(duration, MAX_ALLOCATION_DURATION);
        }
        Node storage n = _nodes[node];
        if (n.activePosition == 0) revert MarketNodeNotActive(node);
        address requester = _msgSender();
        uint96 price = n.pricePerSecond;
        _lock(requester, uint256(reservedSeconds) * price);
        allocationId = ++_allocationCount;
        uint64 expiresAt = uint64(block.timestamp) + duration;
        Allocation storage al = _allocations[allocationId];
        (al.requester, al.expiresAt, al.reservedSeconds) = (requester, expiresAt, reservedSeconds);
        (al.node, al.pricePerSecond) = (node, price);
        emit AllocationOpened(allocationId, requester, node, reservedSeconds, price, expiresAt);
    }

    /// @inheritdoc IComputeMarket
    function reportUsage(uint64 allocationId, uint32 usedSeconds) external {
        Allocation storage al = _openAllocation(allocationId);
        if (al.node != _msgSender()) revert MarketNotAllocationNode(allocationId, _msgSender(), al.node);
        if (usedSeconds < al.usedSeconds) revert MarketUsageDecreased(allocationId, al.usedSeconds, usedSeconds);
        if (usedSeconds > al.reservedSeconds) {
            revert MarketUsageAboveReserved(allocationId, usedSeconds, al.reservedSeconds);
        }
        al.usedSeconds = usedSeconds;
        emit UsageReported(allocationId, usedSeconds);
    }

    /// @inheritdoc IComputeMarket
    function closeAllocation(uint64 allocationId) external {
        Allocation storage al = _allocations[allocationId];
        if (al.requester == address(0)) revert MarketUnknownAllocation(allocationId);
        if (al.closed) revert MarketAllocationClosed(allocationId);
        address caller = _msgSender();
        if (caller != al.requester && caller != al.node && block.timestamp < al.expiresAt) {
            revert MarketNotAllocationParty(allocationId, caller);
        }
        al.closed = true;
        uint256 escrow = uint256(al.reservedSeconds) * al.pricePerSecond;
        uint256 paid = uint256(al.usedSeconds) * al.pricePerSecond;
        _release(al.requester, escrow, escrow - paid);
        _credit(al.node, paid);
        emit AllocationClosed(allocationId, al.usedSeconds, paid, escrow - paid);
    }

    /// @inheritdoc IComputeMarket
    function getAllocation(uint64 allocationId) external view returns (AllocationInfo memory) {
        Allocation storage al = _allocations[allocationId];
        if (al.requester == address(0)) revert MarketUnknownAllocation(allocationId);
        return AllocationInfo({
            requester: al.requester,
            node: al.node,
            reservedSeconds: al.reservedSeconds,
            usedSeconds: al.usedSeconds,
            remainingSeconds: al.reservedSeconds - al.usedSeconds,
            pricePerSecond: al.pricePerSecond,
            escrow: uint256(al.reservedSeconds) * al.pricePerSecond,
            costSoFar: uint256(al.usedSeconds) * al.pricePerSecond,
            expiresAt: al.expiresAt,
            closed: al.closed
        });
    }

    // ─── Emergency ────────────────────────────────────────────────────────

    /// @inheritdoc IComputeMarket
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @inheritdoc IComputeMarket
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    // ─── Internal: jobs ───────────────────────────────────────────────────

    function _openJob(
        uint64 modelId,
        address node,
        uint96 nodeFee,
        uint96 maxFee,
        uint64 deadline,
        bytes32 inputDigest,
        bytes calldata input
    ) private returns (uint256 jobId) {
        _checkData(input);
        uint64 now_ = uint64(block.timestamp);
        if (deadline <= now_ || deadline > now_ + MAX_JOB_TTL) revert MarketInvalidDeadline(deadline, now_, MAX_JOB_TTL);
        (address modelOwner, uint88 modelFee, bool active) = _modelTerms(modelId);
        if (modelOwner == address(0)) revert MarketUnknownModel(modelId);
        if (!active) revert MarketModelInactive(modelId);
        uint256 fee = uint256(modelFee) + nodeFee;
        if (fee > maxFee) revert MarketFeeAboveMax(fee, maxFee);
        address requester = _msgSender();
        uint64 fallbackAt = now_ + assignWindow;
        if (fallbackAt > deadline) fallbackAt = deadline;
        jobId = (uint256(uint160(requester)) << 64) | _lock(requester, fee);
        // Same encoding as `hashJob(Job)`: abi.encode of a static struct is the encoding of its fields.
        _jobs[jobId] = keccak256(
            abi.encode(requester, node, modelOwner, modelId, modelFee, nodeFee, deadline, fallbackAt)
        );
        emit JobOpened(
            jobId, node, modelOwner, modelId, modelFee, nodeFee, deadline, fallbackAt,
            inputDigest, input
        );
    }

    /// @dev `registry.modelTerms(modelId)` without the high-level call's extra checks (the registry is ours,
    ///      immutable, and returns three static words), to keep job opening cheap.
    function _modelTerms(uint64 modelId) private view returns (address owner, uint88 price, bool active) {
        address target = address(registry);
        bytes4 selector = IRegistry.modelTerms.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, selector)
            mstore(add(ptr, 4), modelId)
            if iszero(staticcall(gas(), target, ptr, 0x24, ptr, 0x60)) {
                returndatacopy(ptr, 0, returndatasize())
                revert(ptr, returndatasize())
            }
            owner := mload(ptr)
            price := mload(add(ptr, 0x20))
            active := mload(add(ptr, 0x40))
        }
    }

    /// @dev Checks that `job` is open and that `node` may settle it now, then deletes its commitment.
    ///      With `strict`, every problem reverts; otherwise a closed or expired job returns false.
    function _closeJob(uint256 jobId, Job calldata job, address node, bool strict) private returns (bool) {
        bytes32 stored = _jobs[jobId];
        if (stored == bytes32(0)) {
            if (strict) revert MarketJobNotOpen(jobId);
            return false;
        }
        if (stored != hashJob(job)) revert MarketJobMismatch(jobId);
        if (block.timestamp > job.deadline) {
            if (strict) revert MarketJobExpired(jobId, job.deadline);
            return false;
        }
        if (node != job.node && (block.timestamp < job.fallbackAt || _nodes[node].activePosition == 0)) {
            revert MarketNotAssignedNode(jobId, node, job.node, job.fallbackAt);
        }
        delete _jobs[jobId];
        return true;
    }

    function _checkCommitment(uint256 jobId, Job calldata job) private view {
        bytes32 stored = _jobs[jobId];
        if (stored == bytes32(0)) revert MarketJobNotOpen(jobId);
        if (stored != hashJob(job)) revert MarketJobMismatch(jobId);
    }

    function _checkData(bytes calldata data) private pure {
        if (data.length > MAX_INLINE_BYTES) revert MarketDataTooLarge(data.length, MAX_INLINE_BYTES);
    }

    // ─── Internal: accounts ───────────────────────────────────────────────

    function _deposit(address account, uint256 amount) private {
        if (amount == 0) revert MarketZeroAmount();
        Account storage a = _accounts[account];
        a.available = (uint256(a.available) + amount).toUint112();
        token.safeTransferFrom(account, address(this), amount);
        emit Deposited(account, amount);
    }

    /// @dev Moves `amount` from available to locked; returns the account's job counter before the call.
    function _lock(address account, uint256 amount) private returns (uint32 nonce) {
        Account storage a = _accounts[account];
        Account memory m = a;
        if (m.available < amount) revert MarketInsufficientDeposit(account, m.available, amount);
        nonce = m.jobNonce;
        // One SSTORE: available, locked and the counter share the slot. `locked + amount` cannot exceed the
        // token's supply, which fits in uint112.
        unchecked {
            a.available = m.available - uint112(amount);
            a.locked = m.locked + uint112(amount);
        }
        a.jobNonce = nonce + 1;
    }

    /// @dev Unlocks `amount` of `account`'s locked balance, of which `refunded` goes back to available.
    function _release(address account, uint256 amount, uint256 refunded) private {
        if (amount == 0) return;
        Account storage a = _accounts[account];
        a.locked -= uint112(amount);
        if (refunded != 0) a.available += uint112(refunded);
    }

    function _credit(address account, uint256 amount) private {
        if (amount != 0) _accounts[account].available += uint112(amount);
    }

    // ─── Internal: nodes and allocations ──────────────────────────────────

    function _registeredNode(address node) private view returns (Node storage n) {
        n = _nodes[node];
        if (!n.registered) revert MarketNodeNotRegistered(node);
    }

    function _activate(address node, Node storage n) private {
        _activeNodes.push(node);
        n.activePosition = uint32(_activeNodes.length);
    }

    /// @dev Swap-and-pop: O(1) whatever the number of nodes.
    function _deactivate(Node storage n) private {
        uint256 position = n.activePosition;
        if (position == 0) return;
        address last = _activeNodes[_activeNodes.length - 1];
        _activeNodes[position - 1] = last;
        _nodes[last].activePosition = uint32(position);
        _activeNodes.pop();
        n.activePosition = 0;
    }

    function _nextNode() private returns (address) {
        uint256 count = _activeNodes.length;
        if (count == 0) revert MarketNoActiveNode();
        uint256 i = _roundRobin % count;
        _roundRobin = i + 1;
        return _activeNodes[i];
    }

    function _openAllocation(uint64 allocationId) private view returns (Allocation storage al) {
        al = _allocations[allocationId];
        if (al.requester == address(0)) revert MarketUnknownAllocation(allocationId);
        if (al.closed) revert MarketAllocationClosed(allocationId);
        if (block.timestamp >= al.expiresAt) revert MarketAllocationExpired(allocationId, al.expiresAt);
    }

    // ─── ERC-2771 ─────────────────────────────────────────────────────────

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
