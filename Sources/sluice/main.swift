import BedrockSimulator
import Gateway

// Thin CLI (STYLE.md §1): the real subcommands (serve, simulate, token, usage) arrive with the
// Gateway issues. Until then the binary says what it is instead of pretending to serve.
print(GatewayStatus.summary)
print(BedrockSimulatorStatus.summary)
