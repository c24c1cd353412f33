// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {IRegistry} from "./interfaces/IRegistry.sol";

/// @title Registry
/// @notice Models and datasets of the OmniTensor network, registered by SHA-256 digest.
contract Registry is IRegistry, ERC2771Context {
    // ─── Storage ──────────────────────────────────────────────────────────

    /// @dev Slot 0 holds exactly what the market reads to open a job, so that costs one SLOAD.
    struct ModelRecord {
        address owner; // slot 0: 160 bits
        uint88 pricePerInference; //         88 bits
        bool active; //                      8 bits
        ModelFormat format; // slot 1: 8 bits
        uint64 registeredAt; //        64 bits
        bytes32 digest; // slot 2
        string uri;
        string name;
    }

    struct DatasetRecord {
        address owner; // slot 0: 160 bits
        uint64 sizeBytes; //         64 bits
        uint64 registeredAt; // slot 1
        bytes32 digest; // slot 2
        string uri;
        string metadata;
    }

    mapping(uint64 modelId => ModelRecord) private _models;
    mapping(uint64 datasetId => DatasetRecord) private _datasets;
    uint64 private _modelCount;
    uint64 private _datasetCount;

    // ─── Constants ────────────────────────────────────────────────────────

    uint256 public constant MAX_URI_LENGTH = 512;
    uint256 public constant MAX_TEXT_LENGTH = 4096;
    uint256 public constant MAX_PAGE = 200;

    constructor(address trustedForwarder) ERC2771Context(trustedForwarder) {}

    // ─── Models ───────────────────────────────────────────────────────────

    /// @inheritdoc IRegistry
    function registerModel(
        bytes32 digest,
        ModelFormat format,
        uint88 pricePerInference,
        string calldata uri,
        string calldata name
    ) external returns (uint64 modelId) {
        _checkBlob(digest, uri);
        _checkText(name);
        address owner = _msgSender();
        modelId = ++_modelCount;
        ModelRecord storage m = _models[modelId];
        m.owner = owner;
        m.pricePerInference = pricePerInference;
        m.active = true;
        m.format = format;
        m.registeredAt = uint64(block.timestamp);
        m.digest = digest;
        m.uri = uri;
        m.name = name;
        emit ModelRegistered(modelId, owner, digest, format, pricePerInference, uri, name);
    }

    /// @inheritdoc IRegistry
    function updateModel(uint64 modelId, uint88 pricePerInference, bool active, string calldata uri) external {
        ModelRecord storage m = _models[modelId];
        _checkOwner(m.owner, modelId == 0 || modelId > _modelCount, modelId, true);
        _checkBlob(m.digest, uri);
        m.pricePerInference = pricePerInference;
        m.active = active;
        m.uri = uri;
        emit ModelUpdated(modelId, pricePerInference, active, uri);
    }

    /// @inheritdoc IRegistry
    function modelTerms(uint64 modelId) external view returns (address owner, uint88 pricePerInference, bool active) {
        ModelRecord storage m = _models[modelId];
        return (m.owner, m.pricePerInference, m.active);
    }

    /// @inheritdoc IRegistry
    function getModel(uint64 modelId) public view returns (Model memory) {
        ModelRecord storage m = _models[modelId];
        if (m.owner == address(0)) revert RegistryUnknownModel(modelId);
        return Model(modelId, m.owner, m.pricePerInference, m.active, m.format, m.registeredAt, m.digest, m.uri, m.name);
    }

    /// @inheritdoc IRegistry
    function getModels(uint64 fromId, uint256 limit) external view returns (Model[] memory page) {
        (uint64 start, uint256 n) = _page(fromId, limit, _modelCount);
        page = new Model[](n);
        for (uint256 i; i < n; ++i) {
            page[i] = getModel(start + uint64(i));
        }
    }

    /// @inheritdoc IRegistry
    function modelCount() external view returns (uint64) {
        return _modelCount;
    }

    // ─── Datasets ─────────────────────────────────────────────────────────

    /// @inheritdoc IRegistry
    function registerDataset(bytes32 digest, uint64 sizeBytes, string calldata uri, string calldata metadata)
        external
        returns (uint64 datasetId)
    {
        _checkBlob(digest, uri);
        _checkText(metadata);
        if (sizeBytes == 0) revert RegistryZeroSize();
        address owner = _msgSender();
        datasetId = ++_datasetCount;
        DatasetRecord storage d = _datasets[datasetId];
        d.owner = owner;
        d.sizeBytes = sizeBytes;
        d.registeredAt = uint64(block.timestamp);
        d.digest = digest;
        d.uri = uri;
        d.metadata = metadata;
        emit DatasetRegistered(datasetId, owner, digest, sizeBytes, uri, metadata);
    }

    /// @inheritdoc IRegistry
    function updateDataset(uint64 datasetId, string calldata uri, string calldata metadata) external {
        DatasetRecord storage d = _datasets[datasetId];
        _checkOwner(d.owner, datasetId == 0 || datasetId > _datasetCount, datasetId, false);
        _checkBlob(d.digest, uri);
        _checkText(metadata);
        d.uri = uri;
        d.metadata = metadata;
        emit DatasetUpdated(datasetId, uri, metadata);
    }

    /// @inheritdoc IRegistry
    function getDataset(uint64 datasetId) public view returns (Dataset memory) {
        DatasetRecord storage d = _datasets[datasetId];
        if (d.owner == address(0)) revert RegistryUnknownDataset(datasetId);
        return Dataset(datasetId, d.owner, d.sizeBytes, d.registeredAt, d.digest, d.uri, d.metadata);
    }

    /// @inheritdoc IRegistry
    function getDatasets(uint64 fromId, uint256 limit) external view returns (Dataset[] memory page) {
        (uint64 start, uint256 n) = _page(fromId, limit, _datasetCount);
        page = new Dataset[](n);
        for (uint256 i; i < n; ++i) {
            page[i] = getDataset(start + uint64(i));
        }
    }

    /// @inheritdoc IRegistry
    function datasetCount() external view returns (uint64) {
        return _datasetCount;
    }

    // ─── Internal ─────────────────────────────────────────────────────────

    function _checkBlob(bytes32 digest, string calldata uri) private pure {
        if (digest == bytes32(0)) revert RegistryZeroDigest();
        uint256 len = bytes(uri).length;
        if (len == 0 || len > MAX_URI_LENGTH) revert RegistryInvalidUri(len, MAX_URI_LENGTH);
    }

    function _checkText(string calldata text) private pure {
        if (bytes(text).length > MAX_TEXT_LENGTH) revert RegistryFieldTooLong(bytes(text).length, MAX_TEXT_LENGTH);
    }

    function _checkOwner(address owner, bool unknown, uint64 id, bool isModel) private view {
        if (unknown) {
            if (isModel) revert RegistryUnknownModel(id);
            revert RegistryUnknownDataset(id);
        }
        if (owner != _msgSender()) revert RegistryNotOwner(_msgSender(), owner);
    }

    /// @dev Clamps a page request to the registered ids; id 0 is read as 1.
    function _page(uint64 fromId, uint256 limit, uint64 count) private pure returns (uint64 start, uint256 n) {
        if (limit > MAX_PAGE) revert RegistryPageTooLarge(limit, MAX_PAGE);
        start = fromId == 0 ? 1 : fromId;
        if (start > count) return (start, 0);
        uint256 left = uint256(count) - start + 1;
        n = left < limit ? left : limit;
    }
}
