// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IComputeMarket
/// @notice Escrow between requesters who pay OMNIT for AI compute and the GPU nodes that provide it.
///
/// Money model: every participant has an internal account in the market, `available` (free to withdraw or
/// spend) and `locked` (held for open jobs and allocations). Opening a job moves its fee from available to
/// locked; settling it credits the node and the model owner's `available` — no token transfer per job.
/// Tokens move in or out only through deposit, withdraw, stake, unstake and slash.
///
/// Job storage: a job is stored as one hash, `commitment = keccak256(abi.encode(job))`. Everything about the
/// job travels in the `JobOpened` event, and whoever settles or refunds passes the `Job` back in calldata.
/// A job id is `requester << 64 | n`, where `n` counts that requester's jobs, so opening a job writes no
/// global counter.
///
/// Assignment: each job is assigned to one node when it is opened — the requester's choice, or round-robin
/// over active nodes when the requester passes `address(0)`. Only the assigned node may settle until
/// `fallbackAt` (`assignWindow` seconds after opening, capped at the deadline); from then on any active node
/// may. Nodes therefore run only their own jobs in the normal case, and pick up another node's job only once
/// its fallback time has passed and the job is still open. After the deadline nobody may settle it; anyone
/// may refund it to its requester.
interface IComputeMarket {
    // ─── Types ────────────────────────────────────────────────────────────

    /// @notice Everything the market commits to when a job is opened.
    /// @dev Passed back in calldata to settle or refund; must hash to the stored commitment.
    struct Job {
        address requester;
        address node;
        address modelOwner;
        uint64 modelId;
        uint96 modelFee;
        uint96 nodeFee;
        uint64 deadline;
        uint64 fallbackAt;
    }

    /// @notice One entry of a batch settlement. `failureCode == 0` means fulfilled with the given output.
    struct Settlement {
        uint256 jobId;
        Job job;
        uint16 failureCode;
        bytes32 outputDigest;
        bytes output;
    }

    /// @notice A node's public record.
    struct NodeInfo {
        uint96 stake;
        uint96 pricePerJob;
        uint96 pricePerSecond;
        bool active;
        uint64 unlockAt;
    }

    /// @notice A compute allocation as a user watches it.
    struct AllocationInfo {
        address requester;
        address node;
        uint32 reservedSeconds;
        uint32 usedSeconds;
        uint32 remainingSeconds;
        uint96 pricePerSecond;
        uint256 escrow;
        uint256 costSoFar;
        uint64 expiresAt;
        bool closed;
    }

    // ─── Errors ───────────────────────────────────────────────────────────

    /// @notice An amount of zero was passed where a positive one is required.
    error MarketZeroAmount();
    /// @notice The zero address was passed where an account is required.
    error MarketZeroAddress();
    /// @notice `account` has `available` OMNIT free in its deposit but the operation needs `required`.
    error MarketInsufficientDeposit(address account, uint256 available, uint256 required);
    /// @notice A node's stake `stake` is below the market's minimum `minStake`.
    error MarketStakeTooLow(uint256 stake, uint256 minStake);
    /// @notice `node` is already registered.
    error MarketNodeAlreadyRegistered(address node);
    /// @notice `node` is not registered.
    error MarketNodeNotRegistered(address node);
    /// @notice `node` is registered but not accepting work (exiting, or slashed below the minimum stake).
    error MarketNodeNotActive(address node);
    /// @notice `node` has asked to exit; its stake unlocks at `unlockAt`.
    error MarketNodeExiting(address node, uint64 unlockAt);
    /// @notice `node` cannot withdraw its stake before `unlockAt` (0: it has not asked to exit).
    error MarketStakeLocked(address node, uint64 unlockAt);
    /// @notice A job was opened without a node and no node is active.
    error MarketNoActiveNode();
    /// @notice `modelId` does not exist in the registry.
    error MarketUnknownModel(uint64 modelId);
    /// @notice `modelId` has been deactivated by its owner.
    error MarketModelInactive(uint64 modelId);
    /// @notice The job would cost `fee` but the requester allowed at most `maxFee`.
    error MarketFeeAboveMax(uint256 fee, uint256 maxFee);
    /// @notice `deadline` is not in `(now, now + maxTtl]`.
    error MarketInvalidDeadline(uint64 deadline, uint64 now, uint64 maxTtl);
    /// @notice Inline data of `length` bytes is above the market's `maxLength`; pass a digest and a URI instead.
    error MarketDataTooLarge(uint256 length, uint256 maxLength);
    /// @notice Job `jobId` is not open: it never existed, or was already settled or refunded.
    error MarketJobNotOpen(uint256 jobId);
    /// @notice The `Job` passed for `jobId` is not the one committed when it was opened.
    error MarketJobMismatch(uint256 jobId);
    /// @notice `caller` may not settle `jobId`: it is assigned to `assigned` until `fallbackAt`.
    error MarketNotAssignedNode(uint256 jobId, address caller, address assigned, uint64 fallbackAt);
    /// @notice Job `jobId` passed its `deadline`; it can only be refunded.
    error MarketJobExpired(uint256 jobId, uint64 deadline);
    /// @notice Job `jobId` cannot be refunded before its `deadline`.
    error MarketJobNotExpired(uint256 jobId, uint64 deadline);
    /// @notice A failure was reported with code 0, which means success.
    error MarketInvalidFailureCode();
    /// @notice No allocation has id `allocationId`.
    error MarketUnknownAllocation(uint64 allocationId);
    /// @notice Allocation `allocationId` is already closed.
    error MarketAllocationClosed(uint64 allocationId);
    /// @notice Allocation `allocationId` expired at `expiresAt`.
    error MarketAllocationExpired(uint64 allocationId, uint64 expiresAt);
    /// @notice `caller` is neither party of allocation `allocationId`, and it has not expired yet.
    error MarketNotAllocationParty(uint64 allocationId, address caller);
    /// @notice Only the allocation's `requester` may bill jobs to it.
    error MarketNotAllocationRequester(uint64 allocationId, address caller, address requester);
    /// @notice Only the allocation's `node` may report its usage.
    error MarketNotAllocationNode(uint64 allocationId, address caller, address node);
    /// @notice Usage is cumulative: `reported` is below the `previous` report.
    error MarketUsageDecreased(uint64 allocationId, uint32 previous, uint32 reported);
    /// @notice `reported` seconds exceed the `reserved` seconds of the allocation.
    error MarketUsageAboveReserved(uint64 allocationId, uint32 reported, uint32 reserved);
    /// @notice `duration` is not in `(0, maxDuration]`.
    error MarketInvalidDuration(uint64 duration, uint64 maxDuration);
    /// @notice A slash of `amount` exceeds the `stake` of `node`.
    error MarketSlashAboveStake(address node, uint256 amount, uint256 stake);

    // ─── Events ───────────────────────────────────────────────────────────

    /// @notice `account` deposited `amount` OMNIT.
    event Deposited(address indexed account, uint256 amount);
    /// @notice `account` withdrew `amount` OMNIT.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice `node` registered with `stake` and its prices.
    event NodeRegistered(address indexed node, uint256 stake, uint96 pricePerJob, uint96 pricePerSecond);
    /// @notice `node` changed its prices (for jobs and allocations opened afterwards).
    event NodeUpdated(address indexed node, uint96 pricePerJob, uint96 pricePerSecond);
    /// @notice `node` added `amount` to its stake, now `stake`.
    event NodeStakeIncreased(address indexed node, uint256 amount, uint256 stake);
    /// @notice `node` stopped taking work; its stake unlocks at `unlockAt`.
    event NodeExitRequested(address indexed node, uint64 unlockAt);
    /// @notice `node` left and took back `stake`.
    event NodeExited(address indexed node, uint256 stake);
    /// @notice `amount` of `node`'s stake was sent to `recipient`; `stake` remains.
    event NodeSlashed(address indexed node, uint256 amount, uint256 stake, address recipient);
    /// @notice A job was opened. Its requester is `address(uint160(jobId >> 64))` (see the job id scheme
    ///         above); with it and `node`, the other fields make up the `Job`. `inputDigest == 0`: `input` is the
    ///         inline input; otherwise `input` is the UTF-8 URI of a blob whose SHA-256 is `inputDigest`.
    event JobOpened(
        uint256 indexed jobId,
        address indexed node,
        address modelOwner,
        uint64 modelId,
        uint96 modelFee,
        uint96 nodeFee,
        uint64 deadline,
        uint64 fallbackAt,
        bytes32 inputDigest,
        bytes input
    );
    /// @notice Job `jobId` (emitted just before as `JobOpened`, with `nodeFee == 0`) is billed to allocation
    ///         `allocationId`: its node meters the GPU time and reports it as the allocation's usage.
    event AllocationJobOpened(uint256 indexed jobId, uint64 indexed allocationId);
    /// @notice Job `jobId` was fulfilled by `node`; `output` is inline, or a URI when `outputDigest != 0`.
    event JobFulfilled(uint256 indexed jobId, address indexed node, bytes32 outputDigest, bytes output);
    /// @notice Job `jobId` failed with `code` as reported by `node`; its requester was refunded in full.
    event JobFailed(uint256 indexed jobId, address indexed node, uint16 code);
    /// @notice Job `jobId` expired unsettled and `amount` went back to `requester`.
    event JobRefunded(uint256 indexed jobId, address indexed requester, uint256 amount);
    /// @notice `requester` reserved `reservedSeconds` of `node`'s GPU time until `expiresAt`.
    event AllocationOpened(
        uint64 indexed allocationId,
        address indexed requester,
        address indexed node,
        uint32 reservedSeconds,
        uint96 pricePerSecond,
        uint64 expiresAt
    );
    /// @notice The node reported `usedSeconds` in total for `allocationId`.
    event UsageReported(uint64 indexed allocationId, uint32 usedSeconds);
    /// @notice Allocation `allocationId` closed: `paid` to the node, `refunded` to the requester.
    event AllocationClosed(uint64 indexed allocationId, uint32 usedSeconds, uint256 paid, uint256 refunded);

    // ─── Deposits ─────────────────────────────────────────────────────────

    /// @notice Moves `amount` OMNIT from the caller's wallet into its market deposit (needs an allowance).
    /// @param amount OMNIT (wei) to deposit.
    function deposit(uint256 amount) external;

    /// @notice Approves with an ERC-2612 signature and deposits in the same call.
    /// @dev If the permit was already used (e.g. front-run), the deposit still goes through on the allowance.
    /// @param amount OMNIT (wei) to deposit; also the permit's value.
    /// @param permitDeadline The permit's deadline.
    /// @param v Signature part.
    /// @param r Signature part.
    /// @param s Signature part.
    function depositWithPermit(uint256 amount, uint256 permitDeadline, uint8 v, bytes32 r, bytes32 s) external;

    /// @notice Sends `amount` of the caller's available deposit back to its wallet. Works while paused.
    /// @param amount OMNIT (wei) to withdraw.
    function withdraw(uint256 amount) external;

    /// @notice An account's deposit: `available` to spend or withdraw, `locked` in open jobs and allocations.
    /// @param account The account.
    function balanceOf(address account) external view returns (uint256 available, uint256 locked);

    // ─── Nodes ────────────────────────────────────────────────────────────

    /// @notice Registers the caller as a GPU node, taking `stake` OMNIT from its wallet.
    /// @param stake At least `minStake` OMNIT (wei).
    /// @param pricePerJob Node fee per inference job.
    /// @param pricePerSecond Node fee per reserved GPU-second in allocations.
    function registerNode(uint96 stake, uint96 pricePerJob, uint96 pricePerSecond) external;

    /// @notice Changes the caller's prices for work opened from now on.
    /// @param pricePerJob Node fee per inference job.
    /// @param pricePerSecond Node fee per GPU-second.
    function updateNode(uint96 pricePerJob, uint96 pricePerSecond) external;

    /// @notice Adds `amount` OMNIT from the caller's wallet to its stake; reactivates a slashed node whose
    ///         stake is back at the minimum.
    /// @param amount OMNIT (wei) to add.
    function increaseStake(uint96 amount) external;

    /// @notice Stops the caller taking new work; its stake unlocks after `unbondingDelay`. It must still settle
    ///         the jobs already assigned to it.
    function requestExit() external;

    /// @notice Returns the caller's stake to its wallet once unlocked, and removes its registration.
    function withdrawStake() external;

    /// @notice Sends `amount` of `node`'s stake to `slashRecipient`. Slasher role only (a dispute game is later
    ///         work). A node left below the minimum stake stops taking work.
    /// @param node The node to slash.
    /// @param amount OMNIT (wei) to take.
    function slash(address node, uint96 amount) external;

    /// @notice A node's record (all zero if not registered).
    /// @param node The node.
    function getNode(address node) external view returns (NodeInfo memory);

    /// @notice Active nodes in positions `[offset, offset + limit)` of the active set (order changes on exit).
    /// @param offset First position.
    /// @param limit Maximum number of nodes.
    function getActiveNodes(uint256 offset, uint256 limit) external view returns (address[] memory);

    /// @notice Number of active nodes.
    function activeNodeCount() external view returns (uint256);

    // ─── Jobs ─────────────────────────────────────────────────────────────

    /// @notice Opens an inference job paid from the caller's deposit. The fee (model price + node price) is
    ///         locked until the job is settled or refunded; nothing above it is taken.
    /// @param modelId The registry model to run.
    /// @param node The node to run it, or `address(0)` for the next active node in round-robin order.
    /// @param maxFee The most the caller will pay; reverts if the fee is higher.
    /// @param deadline Unix time after which the job can no longer be settled and may be refunded.
    /// @param inputDigest Zero for an inline input, else the SHA-256 of the input blob.
    /// @param input The inline input, or the blob's URI when `inputDigest != 0`.
    /// @return jobId The job's id.
    function openJob(
        uint64 modelId,
        address node,
        uint96 maxFee,
        uint64 deadline,
        bytes32 inputDigest,
        bytes calldata input
    ) external returns (uint256 jobId);

    /// @notice Opens an inference job billed to one of the caller's allocations: the node is paid through the
    ///         allocation's metered GPU-seconds, so only the model fee is locked here.
    /// @param allocationId The caller's open allocation; its node runs the job.
    /// @param modelId The registry model to run.
    /// @param maxFee The most the caller will pay for the model fee.
    /// @param deadline Unix time after which the job may be refunded.
    /// @param inputDigest Zero for an inline input, else the SHA-256 of the input blob.
    /// @param input The inline input, or the blob's URI.
    /// @return jobId The job's id.
    function openAllocationJob(
        uint64 allocationId,
        uint64 modelId,
        uint96 maxFee,
        uint64 deadline,
        bytes32 inputDigest,
        bytes calldata input
    ) external returns (uint256 jobId);

    /// @notice Settles a job with its output: pays the node and the model owner, releases the lock.
    /// @param jobId The job.
    /// @param job The job as emitted in `JobOpened`.
    /// @param outputDigest Zero for an inline output, else the SHA-256 of the output blob.
    /// @param output The inline output, or the blob's URI.
    function fulfil(uint256 jobId, Job calldata job, bytes32 outputDigest, bytes calldata output) external;

    /// @notice Settles a job as failed (bad input, model error...): the requester is refunded in full at once.
    /// @param jobId The job.
    /// @param job The job as emitted in `JobOpened`.
    /// @param code Non-zero reason code (see the node's documentation).
    function fail(uint256 jobId, Job calldata job, uint16 code) external;

    /// @notice Settles many jobs in one transaction. Jobs already settled or refunded, or past their deadline,
    ///         are skipped (a race with another node or the clock must not sink the batch); a job that does not
    ///         match its commitment or that the caller may not settle reverts the whole batch.
    /// @param settlements The jobs and their outcomes.
    /// @return settled How many jobs were settled.
    function settleBatch(Settlement[] calldata settlements) external returns (uint256 settled);

    /// @notice Returns an expired, unsettled job's fee to its requester. Anyone may call.
    /// @param jobId The job.
    /// @param job The job as emitted in `JobOpened`.
    function refund(uint256 jobId, Job calldata job) external;

    /// @notice The commitment stored for each job id; zero when not open (never opened, settled or refunded).
    /// @param jobIds The jobs.
    function jobCommitments(uint256[] calldata jobIds) external view returns (bytes32[] memory);

    /// @notice The commitment a `Job` hashes to.
    /// @param job The job.
    function hashJob(Job calldata job) external pure returns (bytes32);

    // ─── Allocations ──────────────────────────────────────────────────────

    /// @notice Reserves `reservedSeconds` of `node`'s GPU time at its current price until `now + duration`,
    ///         locking `reservedSeconds * pricePerSecond` from the caller's deposit.
    /// @param node The node.
    /// @param reservedSeconds GPU-seconds to reserve.
    /// @param duration Seconds until the allocation expires.
    /// @return allocationId The allocation's id.
    function openAllocation(address node, uint32 reservedSeconds, uint64 duration)
        external
        returns (uint64 allocationId);

    /// @notice The node reports the cumulative GPU-seconds used so far (monotonic, at most reserved).
    /// @param allocationId The allocation.
    /// @param usedSeconds Total seconds used since it opened.
    function reportUsage(uint64 allocationId, uint32 usedSeconds) external;

    /// @notice Closes an allocation: pays used × price to the node and refunds the rest. The requester or the
    ///         node may close at any time; anyone may after expiry.
    /// @param allocationId The allocation.
    function closeAllocation(uint64 allocationId) external;

    /// @notice Reserved, used and remaining seconds, escrow, cost so far and expiry of an allocation.
    /// @param allocationId The allocation.
    function getAllocation(uint64 allocationId) external view returns (AllocationInfo memory);

    // ─── Emergency ────────────────────────────────────────────────────────

    /// @notice Stops new jobs, allocations and node registrations. Pauser role only. Settlement, refunds and
    ///         withdrawals keep working.
    function pause() external;

    /// @notice Lifts `pause`. Pauser role only.
    function unpause() external;
}
