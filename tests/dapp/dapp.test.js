// A dApp against the running local network (`omnitensor up`): a wallet signs an ERC-2612 permit and deposits,
// opens an inference job on the demo model, and receives the settlement event posted by the real oracle node.
// Run by tests/test_dapp.py with OMNITENSOR_RPC_URL, OMNITENSOR_MANIFEST and OMNITENSOR_HOME set.
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { ethers } = require("ethers");
const hre = require("hardhat");

// anvil's development account 3 (`omnitensor up` gives accounts 1-4 10,000 OMNIT; it has ETH for gas).
const DEV_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";

// A safetensors archive: 8-byte little-endian header length, the JSON header, then the raw tensor bytes.
function safetensors(name, values) {
  const data = Buffer.from(new Float32Array(values).buffer);
  let header = JSON.stringify({ [name]: { dtype: "F32", shape: [1, values.length], data_offsets: [0, data.length] } });
  header += " ".repeat((8 - (header.length % 8)) % 8);
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([size, Buffer.from(header), data]);
}

function readSafetensors(bytes) {
  const buf = Buffer.from(bytes);
  const size = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + size).toString());
  return { header, body: buf.subarray(8 + size) };
}

describe("a dApp on the local OmniTensor network", function () {
  this.timeout(120_000);

  it("deposits with a permit, opens a job and sees the oracle node settle it", async () => {
    const home = process.env.OMNITENSOR_HOME;
    const manifest = JSON.parse(fs.readFileSync(process.env.OMNITENSOR_MANIFEST, "utf8"));
    const demo = JSON.parse(fs.readFileSync(path.join(home, "demo.json"), "utf8"));
    const input = JSON.parse(fs.readFileSync(path.join(home, "demo-input.json"), "utf8")).inputs.input;

    const provider = new ethers.JsonRpcProvider(process.env.OMNITENSOR_RPC_URL, undefined, { cacheTimeout: -1 });
    const wallet = new ethers.Wallet(DEV_KEY, provider);
    const abi = async (name) => (await hre.artifacts.readArtifact(name)).abi;
    const token = new ethers.Contract(manifest.contracts.OmniToken, await abi("OmniToken"), wallet);
    const market = new ethers.Contract(manifest.contracts.ComputeMarket, await abi("ComputeMarket"), wallet);
    const registry = new ethers.Contract(manifest.contracts.Registry, await abi("Registry"), wallet);

    // 1. Permit + deposit in one transaction.
    const amount = ethers.parseEther("5");
    const deadline = BigInt(Math.floor(Date.now() / 1000) + 3600);
    const { chainId } = await provider.getNetwork();
    const signature = ethers.Signature.from(await wallet.signTypedData(
      { name: "OmniTensor", version: "1", chainId, verifyingContract: manifest.contracts.OmniToken },
      { Permit: [{ name: "owner", type: "address" }, { name: "spender", type: "address" },
                 { name: "value", type: "uint256" }, { name: "nonce", type: "uint256" },
                 { name: "deadline", type: "uint256" }] },
      { owner: wallet.address, spender: manifest.contracts.ComputeMarket, value: amount,
        nonce: await token.nonces(wallet.address), deadline }));
    const [before] = await market.balanceOf(wallet.address);
    await (await market.depositWithPermit(amount, deadline, signature.v, signature.r, signature.s)).wait();
    const [after] = await market.balanceOf(wallet.address);
    assert.equal(after - before, amount);

    // 2. Open a job on the demo model, paid from the deposit.
    const startBlock = await provider.getBlockNumber();
    const modelId = BigInt(demo.demo_model_id);
    const model = await registry.getModel(modelId);
    assert.equal(model.name, "digits-mlp");
    const receipt = await (await market.openJob(modelId, ethers.ZeroAddress, ethers.parseEther("1"), deadline,
      ethers.ZeroHash, safetensors("input", input.data))).wait();
    const opened = receipt.logs.map((log) => market.interface.parseLog(log)).find((e) => e && e.name === "JobOpened");
    const jobId = opened.args.jobId;
    assert.equal(jobId >> 64n, BigInt(wallet.address));

    // 3. The oracle node's settlement arrives as a JobFulfilled event for this job. (Querying logs from a known
    // block, rather than only subscribing, cannot miss an event the node posts within milliseconds.)
    const end = Date.now() + 60_000;
    let events = [];
    while (events.length === 0 && Date.now() < end) {
      events = await market.queryFilter(market.filters.JobFulfilled(jobId), startBlock);
      if (events.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(events.length, 1, `job ${jobId} was not settled exactly once`);
    const settled = events[0].args;
    const { header, body } = readSafetensors(ethers.getBytes(settled.output));
    assert.deepEqual(header.label.shape, [1]);
    assert.equal(Number(body.readBigInt64LE(header.label.data_offsets[0])), demo.demo_expected_label);
    const [available, locked] = await market.balanceOf(wallet.address);
    assert.equal(locked, 0n);
    assert.equal(after - available, opened.args.modelFee + opened.args.nodeFee);
  });
});
