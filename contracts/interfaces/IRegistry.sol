// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IRegistry
/// @notice Registry of AI models and datasets, each identified on-chain by the SHA-256 digest of its bytes.
/// @dev Ids are sequential from 1; id 0 never exists. Blobs live off-chain (content-addressed store, IPFS,
///      S3...) at `uri`; whoever fetches them must check the bytes against `digest`.
interface IRegistry {
    /// @notice Serialization of a model file.
    enum ModelFormat {
        ONNX,
        TorchScript
    }

    /// @notice A model record as returned by the views.
    struct Model {
        uint64 id;
        address owner;
        uint88 pricePerInference;
        bool active;
        ModelFormat format;
        uint64 registeredAt;
        bytes32 digest;
        string uri;
        string name;
    }

    /// @notice A dataset record as returned by the views.
    struct Dataset {
        uint64 id;
        address owner;
        uint64 sizeBytes;
        uint64 registeredAt;
        bytes32 digest;
        string uri;
        string metadata;
    }

    // ─── Errors ───────────────────────────────────────────────────────────

    /// @notice `digest` was zero: every blob must be identified by its SHA-256.
    error RegistryZeroDigest();
    /// @notice `uri` was empty or longer than `maxLength` bytes.
    error RegistryInvalidUri(uint256 length, uint256 maxLength);
    /// @notice A string field other than the URI (`name`, `metadata`) was longer than `maxLength` bytes.
    error RegistryFieldTooLong(uint256 length, uint256 maxLength);
    /// @notice A dataset was registered with a size of zero bytes.
    error RegistryZeroSize();
    /// @notice No model has id `modelId`.
    error RegistryUnknownModel(uint256 modelId);
    /// @notice No dataset has id `datasetId`.
    error RegistryUnknownDataset(uint256 datasetId);
    /// @notice `caller` tried to change a record owned by `owner`.
    error RegistryNotOwner(address caller, address owner);
    /// @notice A page larger than `maxLimit` records was asked for.
    error RegistryPageTooLarge(uint256 limit, uint256 maxLimit);

    // ─── Events ───────────────────────────────────────────────────────────

    /// @notice A model was registered.
    event ModelRegistered(
        uint64 indexed modelId,
        address indexed owner,
        bytes32 indexed digest,
        ModelFormat format,
        uint88 pricePerInference,
        string uri,
        string name
    );
    /// @notice A model's price, URI or active flag was changed by its owner.
    event ModelUpdated(uint64 indexed modelId, uint88 pricePerInference, bool active, string uri);
    /// @notice A dataset was registered.
    event DatasetRegistered(
        uint64 indexed datasetId,
        address indexed owner,
        bytes32 indexed digest,
        uint64 sizeBytes,
        string uri,
        string metadata
    );
    /// @notice A dataset's URI or metadata was changed by its owner.
    event DatasetUpdated(uint64 indexed datasetId, string uri, string metadata);

    // ─── Models ───────────────────────────────────────────────────────────

    /// @notice Registers a model owned by the caller.
    /// @param digest SHA-256 of the model file.
    /// @param format Serialization of the file.
    /// @param pricePerInference OMNIT (wei) paid to the owner for each inference job on this model.
    /// @param uri Where the file can be fetched.
    /// @param name Human-readable name.
    /// @return modelId The new model's id.
    function registerModel(
        bytes32 digest,
        ModelFormat format,
        uint88 pricePerInference,
        string calldata uri,
        string calldata name
    ) external returns (uint64 modelId);

    /// @notice Changes a model's price, URI and active flag. Owner only.
    /// @param modelId The model to change.
    /// @param pricePerInference New price per inference in OMNIT (wei); applies to jobs opened afterwards.
    /// @param active Whether new jobs may be opened on the model.
    /// @param uri New location of the same bytes (the digest never changes).
    function updateModel(uint64 modelId, uint88 pricePerInference, bool active, string calldata uri) external;

    /// @notice The terms the market needs to open a job, read from a single storage slot.
    /// @param modelId The model.
    /// @return owner Who is paid the model fee.
    /// @return pricePerInference The model fee.
    /// @return active Whether jobs may be opened.
    function modelTerms(uint64 modelId) external view returns (address owner, uint88 pricePerInference, bool active);

    /// @notice One model record.
    /// @param modelId The model.
    function getModel(uint64 modelId) external view returns (Model memory);

    /// @notice Models with ids in `[fromId, fromId + limit)`, stopping at the last registered id.
    /// @param fromId First id of the page (ids start at 1).
    /// @param limit Maximum number of records.
    function getModels(uint64 fromId, uint256 limit) external view returns (Model[] memory);

    /// @notice Number of models ever registered (= the highest id).
    function modelCount() external view returns (uint64);

    // ─── Datasets ─────────────────────────────────────────────────────────

    /// @notice Registers a dataset owned by the caller.
    /// @param digest SHA-256 of the dataset file.
    /// @param sizeBytes Size of the file in bytes.
    /// @param uri Where the file can be fetched.
    /// @param metadata Free-form description (JSON recommended).
    /// @return datasetId The new dataset's id.
    function registerDataset(bytes32 digest, uint64 sizeBytes, string calldata uri, string calldata metadata)
        external
        returns (uint64 datasetId);

    /// @notice Changes a dataset's URI and metadata. Owner only.
    /// @param datasetId The dataset to change.
    /// @param uri New location of the same bytes.
    /// @param metadata New description.
    function updateDataset(uint64 datasetId, string calldata uri, string calldata metadata) external;

    /// @notice One dataset record.
    /// @param datasetId The dataset.
    function getDataset(uint64 datasetId) external view returns (Dataset memory);

    /// @notice Datasets with ids in `[fromId, fromId + limit)`, stopping at the last registered id.
    /// @param fromId First id of the page (ids start at 1).
    /// @param limit Maximum number of records.
    function getDatasets(uint64 fromId, uint256 limit) external view returns (Dataset[] memory);

    /// @notice Number of datasets ever registered (= the highest id).
    function datasetCount() external view returns (uint64);
}
