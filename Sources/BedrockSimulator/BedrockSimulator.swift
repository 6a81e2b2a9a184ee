// A faithful Bedrock Runtime stand-in (DESIGN.md). It lands with the Gateway issue; this file keeps
// the target compiling until then.
internal import StreamCore

package enum BedrockSimulatorStatus {
    package static let summary = "Bedrock simulator: not built yet."
}
