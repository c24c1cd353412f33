// Hardhat 2 compiles the same contracts with the same pinned compiler (npm `solc`, offline) and the same
// settings as the Python toolchain (omnitensor/compiler.py), for dApp developers and the JavaScript tests.
const path = require("path");
const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");

const SOLC_VERSION = require("solc/package.json").version;

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (args, hre, runSuper) => {
  if (args.solcVersion !== SOLC_VERSION) return runSuper();
  const compilerPath = path.join(path.dirname(require.resolve("solc/package.json")), "soljson.js");
  return { compilerPath, isSolcJs: true, version: SOLC_VERSION, longVersion: require("solc").version() };
});

/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  solidity: {
    version: SOLC_VERSION,
    settings: { optimizer: { enabled: true, runs: 10000 }, viaIR: true, evmVersion: "cancun" },
  },
  paths: {
    sources: "./contracts",
    tests: "./tests/dapp",
    cache: "./build/hardhat-cache",
    artifacts: "./build/hardhat-artifacts",
  },
  networks: {
    localhost: { url: process.env.OMNITENSOR_RPC_URL || "http://127.0.0.1:8545" },
  },
};
