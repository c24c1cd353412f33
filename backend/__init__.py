"""OmniTensor's HTTP API: the documented endpoints for clients without a wallet, each write a signed
transaction relayed through the ERC-2771 forwarder."""
